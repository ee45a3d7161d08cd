"""Frames of another size than their stream's first, brought to it with their shape kept.

Broadcast captures and spliced files change size mid-stream (a 720x576 programme in a 1080p
recording, an SD advert in an HD one); the filters, the encoder and the tracker take one size.
FFmpeg's tools scale such frames to the first size whatever their shape, which stretches faces
the model then restores stretched; here they are scaled to fit and letterboxed or pillarboxed in
black, each part's pixel aspect taken from its own stream headers. DVB's SD channels (MPEG-2 or
H.264) and DVDs also switch between 4:3 and 16:9 at one size; each picture's shape is read from
the header before it, and a 4:3 advert in a 16:9 recording is pillarboxed.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .hdr10plus import nal_units, unescape
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


# MPEG-2's sequence header states the shape of the pictures after it (ISO/IEC 13818-2, 6.3.3):
# its aspect_ratio_information, 1 for square pixels, else the display's shape
_SEQUENCE_HEADER = b"\x00\x00\x01\xb3"
_MPEG2_SHAPES = {2: Fraction(4, 3), 3: Fraction(16, 9), 4: Fraction(221, 100)}
# H.264's sequence parameter set states its pixels' aspect in its VUI, by aspect_ratio_idc (Table E-1)
_H264_ASPECTS = [Fraction(*r) for r in ((1, 1), (12, 11), (10, 11), (16, 11), (40, 33), (24, 11), (20, 11), (32, 11),
                                        (80, 33), (18, 11), (15, 11), (64, 33), (160, 99), (4, 3), (3, 2), (2, 1))]
_H264_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}  # whose SPS states chroma and depth
_HEAD = 4096  # bytes of a packet read for its headers, which open it
_HELD = 256  # timestamps of packets whose frames have not come out yet, at most (a damaged stream loses some)
STATED_CODECS = ("mpeg2video", "h264")


class _Bits:
    """A big-endian bit reader for parameter sets (Exp-Golomb codes included); ValueError past the end."""

    def __init__(self, data: bytes) -> None:
        self._value, self._size, self._pos = int.from_bytes(data, "big"), len(data) * 8, 0

    def u(self, n: int) -> int:
        if self._pos + n > self._size:
            raise ValueError("parameter set ends early")
        self._pos += n
        return (self._value >> (self._size - self._pos)) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("not an Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


def h264_pixel_aspect(sps: bytes) -> Fraction:
    """The pixel aspect an H.264 sequence parameter set (its NAL unit, unescaped) states: square
    where it states none (as players show such video). ValueError for a damaged one."""
    bits = _Bits(sps[1:])
    profile = bits.u(8)
    bits.u(16)  # constraint flags and level
    bits.ue()
    if profile in _H264_HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            bits.u(1)
        bits.ue(), bits.ue(), bits.u(1)
        if bits.u(1):  # scaling matrices: skipped, each a run of deltas
            for k in range(12 if chroma == 3 else 8):
                if bits.u(1):
                    last = scale = 8
                    for _ in range(16 if k < 6 else 64):
                        scale = (last + bits.se()) % 256 if scale else scale
                        last = scale or last
    bits.ue()
    order = bits.ue()
    if order == 0:
        bits.ue()
    elif order == 1:
        bits.u(1), bits.se(), bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue(), bits.u(1), bits.ue(), bits.ue()
    if not bits.u(1):  # fields, not frames only
        bits.u(1)
    bits.u(1)
    if bits.u(1):  # cropping
        bits.ue(), bits.ue(), bits.ue(), bits.ue()
    if not bits.u(1) or not bits.u(1):  # no VUI, or no aspect in it
        return Fraction(1)
    idc = bits.u(8)
    if idc == 255:
        width, height = bits.u(16), bits.u(16)
        return Fraction(width, height) if width and height else Fraction(1)
    return _H264_ASPECTS[idc - 1] if 1 <= idc <= len(_H264_ASPECTS) else Fraction(1)


class StatedAspects:
    """Each picture's pixel aspect as the latest header before it (in decoding order) states it,
    by the timestamp of its packet: MPEG-2's sequence header, H.264's sequence parameter set
    (in-band, as MPEG-TS carries it, and MP4 and Matroska files made from TS keep it). The
    decoder's own pixel aspect is the latest packet's, a frame or two ahead of the frames it
    gives (B-frames wait for the next picture). For MPEG-2,
    which states a display shape, the aspect FFmpeg read from the stream's headers (``sar``, for
    pictures of ``width`` x ``height``) stands for the headers that state the shape nearest it."""

    def __init__(self, codec: str, width: int, height: int, sar: Fraction | None) -> None:
        self._read = self._mpeg2 if codec == "mpeg2video" else self._h264
        own = _pixel_aspect(sar)
        # the MPEG-2 header that states the stream's own shape: the one FFmpeg's aspect is nearest
        code = min((1, *_MPEG2_SHAPES), key=lambda c: abs(float(self._mpeg2_aspect(c, width, height) / own) - 1))
        self._own = (code, width, height), own
        self._current: Fraction | None = None
        self._by_pts: dict[int, Fraction] = {}
        self._last: Fraction | None = None
        self._layout: tuple[int | None] | None = None  # once read: bytes of a NAL unit's length (avcC), or None (Annex B)

    def read(self, packet: av.Packet) -> None:
        """Notes the aspect in force for ``packet``'s picture."""
        if self._layout is None:  # MP4's and Matroska's avcC: each NAL unit after its length
            extra = packet.stream.codec_context.extradata or b""
            self._layout = ((extra[4] & 3) + 1 if len(extra) > 4 and extra[0] == 1 else None,)
        if packet.size:
            try:
                self._current = self._read(bytes(memoryview(packet)[:_HEAD])) or self._current
            except ValueError:
                pass  # a damaged header: the aspect before it goes on
        if packet.pts is not None and self._current is not None:
            self._by_pts[packet.pts] = self._current
            if len(self._by_pts) > _HELD:
                del self._by_pts[next(iter(self._by_pts))]

    def of(self, frame: av.VideoFrame) -> Fraction | None:
        """The pixel aspect of ``frame``'s picture; a frame with no timestamp of its packet's (a
        decoder's guess) takes the frame's before it; None before any header was read."""
        self._last = self._by_pts.pop(frame.pts, self._last) if frame.pts is not None else self._last
        return self._last

    def _h264(self, head: bytes) -> Fraction | None:
        # a parameter set in the packets: as MPEG-TS carries it, and MP4 and Matroska files made from TS
        # (a DVB recording remuxed) keep it there beside the one in their avcC
        sps = next((unit for _, unit in nal_units(head, self._layout[0]) if unit and unit[0] & 0x1F == 7), None)
        return None if sps is None else h264_pixel_aspect(unescape(sps))

    def _mpeg2(self, head: bytes) -> Fraction | None:
        at = head.find(_SEQUENCE_HEADER)
        if not 0 <= at < len(head) - 7:
            return None
        width, height = head[at + 4] << 4 | head[at + 5] >> 4, (head[at + 5] & 0x0F) << 8 | head[at + 6]
        code = head[at + 7] >> 4
        if width == 0 or height == 0 or (code != 1 and code not in _MPEG2_SHAPES):
            return None
        header, own = self._own
        return own if (code, width, height) == header else self._mpeg2_aspect(code, width, height)

    @staticmethod
    def _mpeg2_aspect(code: int, width: int, height: int) -> Fraction:
        return _MPEG2_SHAPES[code] * height / width if code != 1 else Fraction(1)


class StreamFitter:
    """Brings each decoded frame to the size and pixel format its stream starts with (``info``).
    Frames already so pass through untouched. Others are scaled with FFmpeg's bicubic filter (an
    interlaced frame's fields each alone, as swscale scales them); those of another shape are placed
    centred on black, an interlaced one from a row that keeps its fields' chroma with their luma.
    Timestamps and side data are kept.

    A frame carries no pixel aspect that PyAV shows. MPEG-2's and H.264's are read from the packets
    (see :class:`StatedAspects`; the reader passes each to :meth:`read`). Other codecs' parts take the
    decoder's when the first frame of their size comes out; the decoder has by then parsed the
    headers of the packets it holds, the ones of that part. Later parts of that size take the same."""

    def __init__(self, info: VideoInfo) -> None:
        self.info = info
        self._reformatter = VideoReformatter()
        self._aspects: dict[tuple[int, int], Fraction | None] = {(info.width, info.height): info.sample_aspect_ratio}
        self._black: dict[int, list[np.ndarray]] = {}
        self._stated = (StatedAspects(info.codec, info.width, info.height, info.sample_aspect_ratio)
                        if info.codec in STATED_CODECS else None)
        self.resized = 0  # frames of another size or pixel format than the stream's first
        self.boxed = 0  # frames placed on black bars

    def read(self, packet: av.Packet) -> None:
        """Takes note of what ``packet`` states of its picture's shape, before it is decoded."""
        if self._stated is not None:
            self._stated.read(packet)

    def __call__(self, frame: av.VideoFrame, decoder_sar: Fraction | None) -> av.VideoFrame:
        """``frame`` at the stream's size and format, with its shape; ``decoder_sar`` is its
        decoder's pixel aspect now."""
        info = self.info
        stated = self._stated.of(frame) if self._stated is not None else None
        resized = (frame.width, frame.height, frame.format.name) != (info.width, info.height, info.pix_fmt)
        sar = stated if stated is not None else self._aspects.setdefault((frame.width, frame.height), decoder_sar)
        placed = placed_size(frame.width, frame.height, sar, info, frame.interlaced_frame)
        if not resized and placed == (info.width, info.height):
            return frame
        self.resized += resized
        widths = _bytes_a_pixel(av.VideoFormat(info.pix_fmt))
        boxed = placed != (info.width, info.height) and widths is not None
        # the frame as FFmpeg scales it, with its timestamps and side data; a boxed one's samples are all written over
        filled = self._reformatter.reformat(frame, width=info.width, height=info.height, format=info.pix_fmt,
                                            interpolation="POINT" if boxed else "BICUBIC")
        if not boxed:
            return filled
        filled.make_writable()  # a frame of the stream's size comes back as it is, its samples the decoder's
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
