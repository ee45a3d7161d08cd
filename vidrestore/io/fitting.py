"""Frames of another size than their stream's first, brought to it with their shape kept.

Broadcast captures and spliced files change size mid-stream (a 720x576 programme in a 1080p
recording, an SD advert in an HD one); the filters, the encoder and the tracker take one size.
FFmpeg's tools scale such frames to the first size whatever their shape, which stretches faces
the model then restores stretched; here they are scaled to fit and letterboxed or pillarboxed in
black, each part's pixel aspect taken from its own stream headers.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .patch import plane_array
from .probe import VideoInfo

# A part whose shape differs from the stream's by less than this is scaled to fill the frame, as
# FFmpeg does: bars of a pixel or two would only flicker at each change.
_SAME_SHAPE = 0.01


def _pixel_aspect(sar: Fraction | None) -> Fraction:
    """A stated pixel aspect, or square where none is stated (as players show such video)."""
    return sar if sar and sar > 0 else Fraction(1)


def _grid(pix_fmt: str, fields: bool) -> tuple[int, int]:
    """The steps, across and down, in which a picture can be placed in frames of ``pix_fmt``
    without moving its chroma against its luma; down in even rows, so that an interlaced picture's
    fields stay its fields, and for an interlaced picture (``fields``) in even chroma rows too,
    whose fields alternate as its luma's do."""
    fmt = av.VideoFormat(pix_fmt)
    down = 64 // fmt.chroma_height(64)
    return 64 // fmt.chroma_width(64), down * 2 if fields else max(2, down)


def placed_size(width: int, height: int, sar: Fraction | None, info: VideoInfo, fields: bool = False) -> tuple[int, int]:
    """The size, in the stream's pixels, that a ``width`` x ``height`` picture of pixel aspect
    ``sar`` takes inside the stream's frame when its shape is kept: the whole frame where the shapes
    (nearly) agree, else as wide or as tall as the frame, its other side on the grid of :func:`_grid`."""
    shape = width * _pixel_aspect(sar) / height
    frame_shape = info.width * _pixel_aspect(info.sample_aspect_ratio) / info.height
    if abs(float(shape / frame_shape) - 1) < _SAME_SHAPE:
        return info.width, info.height
    step_w, step_h = _grid(info.pix_fmt, fields)
    if shape > frame_shape:
        return info.width, min(info.height, max(step_h, round(info.height * frame_shape / shape / step_h) * step_h))
    return min(info.width, max(step_w, round(info.width * shape / frame_shape / step_w) * step_w)), info.height


def _bytes_a_pixel(fmt: av.VideoFormat) -> list[int] | None:
    """Bytes a pixel takes in each plane of ``fmt``; None for formats whose pixels are not whole
    bytes (bit streams, Bayer mosaics) or are palette indices, which are not placed (only scaled)."""
    if fmt.has_palette or fmt.is_bit_stream or fmt.is_bayer:
        return None
    if not fmt.is_planar:
        return [fmt.padded_bits_per_pixel // 8] if fmt.padded_bits_per_pixel % 8 == 0 else None
    planes = max(c.plane for c in fmt.components) + 1
    return [sum(1 if c.bits <= 8 else 2 for c in fmt.components if c.plane == p) for p in range(planes)]


class StreamFitter:
    """Brings each decoded frame to the size and pixel format its stream starts with (``info``).
    Frames already so pass through untouched. Others are scaled with FFmpeg's bicubic filter (an
    interlaced frame's fields each alone, as swscale scales them); those of another shape are placed
    centred on black, an interlaced one from a row that keeps its fields' chroma with their luma.
    Timestamps and side data are kept.

    A frame carries no pixel aspect that PyAV shows, so a part's is read from its decoder's
    context when the first frame of its size comes out; the decoder has by then parsed the headers
    of the packets it holds, the ones of that part. Later parts of the same size take the same."""

    def __init__(self, info: VideoInfo) -> None:
        self.info = info
        self._reformatter = VideoReformatter()
        self._aspects: dict[tuple[int, int], Fraction | None] = {(info.width, info.height): info.sample_aspect_ratio}
        self._black: dict[int, list[np.ndarray]] = {}
        self.boxed = 0  # frames placed on black bars

    def __call__(self, frame: av.VideoFrame, decoder_sar: Fraction | None) -> av.VideoFrame:
        """``frame`` at the stream's size and format; ``decoder_sar`` is its decoder's pixel aspect now."""
        info = self.info
        if (frame.width, frame.height, frame.format.name) == (info.width, info.height, info.pix_fmt):
            return frame
        sar = self._aspects.setdefault((frame.width, frame.height), decoder_sar)
        filled = self._reformatter.reformat(frame, width=info.width, height=info.height, format=info.pix_fmt,
                                            interpolation="BICUBIC")
        placed = placed_size(frame.width, frame.height, sar, info, frame.interlaced_frame)
        widths = _bytes_a_pixel(filled.format)
        if placed == (info.width, info.height) or widths is None:
            return filled
        picture = self._reformatter.reformat(frame, width=placed[0], height=placed[1], format=info.pix_fmt,
                                             interpolation="BICUBIC")
        step_w, step_h = _grid(info.pix_fmt, frame.interlaced_frame)
        x, y = (info.width - placed[0]) // 2 // step_w * step_w, (info.height - placed[1]) // 2 // step_h * step_h
        for plane, part, black, width in zip(filled.planes, picture.planes, self._black_planes(filled), widths, strict=True):
            rows, row_bytes = plane_array(plane), plane.width * width
            rows[:, :row_bytes] = black[:, :row_bytes]
            px, py = x * plane.width // info.width, y * plane.height // info.height
            rows[py : py + part.height, px * width : (px + part.width) * width] = plane_array(part)[:, : part.width * width]
        self.boxed += 1
        return filled

    def _black_planes(self, like: av.VideoFrame) -> list[np.ndarray]:
        """Black in the stream's format and ``like``'s range (16 in limited-range YUV, whatever its matrix)."""
        key = int(like.color_range)
        if key not in self._black:
            black = av.VideoFrame.from_ndarray(np.zeros((like.height, like.width, 3), np.uint8), format="rgb24")
            converted = VideoReformatter().reformat(black, format=like.format.name, dst_color_range=like.color_range or None)
            self._black[key] = [plane_array(p).copy() for p in converted.planes]
        return self._black[key]
