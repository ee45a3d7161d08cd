"""Video input and output with PyAV: probing, streaming decode, encode, and remux of other streams."""

from .encoders import EncodeOptions
from .probe import VideoInfo, probe
from .reader import Frame, VideoReader
from .remux import remux
from .writer import VideoWriter

__all__ = ["EncodeOptions", "Frame", "VideoInfo", "VideoReader", "VideoWriter", "probe", "remux"]
