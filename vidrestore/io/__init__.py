"""Video input and output with PyAV: probing, streaming decode, encode, and remux of other streams."""

from .probe import VideoInfo, probe
from .reader import Frame, VideoReader
from .writer import EncodeOptions, VideoWriter, remux

__all__ = ["EncodeOptions", "Frame", "VideoInfo", "VideoReader", "VideoWriter", "probe", "remux"]
