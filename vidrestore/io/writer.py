"""Encode restored frames and remux the input's other streams, without losing anything.

The video is encoded alone first; :func:`remux` then copies the input's audio, subtitle and data
packets beside it untouched. Keeping the two steps apart means the zero-face case and the batch
join both reuse the same remux, and audio is never re-encoded.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import itertools
import math
import os
import queue
import shutil
import struct
import tempfile
import threading
from collections.abc import Iterator, Sequence
import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Self

import av
import numpy as np
from av.bitstream import BitStreamFilterContext
from av.video.reformatter import VideoReformatter

from ..errors import OutputError, UsageError
from .exr import COLOUR_CHANNELS, channels_of
from .headers import carry_headers
from .linear import LINEAR_FORMATS, float_format, is_linear, linear_frame
from .probe import FIELD_ORDERS, ColorInfo, VideoInfo, as_fraction, codec_name, open_input, probe, side_data
from .sequence import IMAGE_ENCODERS, SEGMENT_SUFFIX, find_sequence, hidden_stem, is_sequence, numbered, numbers_in, remove_others, unsupported_type
from .patch import Box, copy_samples, patch_frame, patchable, rgb_format, rotate_box, with_alpha_of
from .reader import bit_depth, rotate_to_coded

ARCHIVAL_CODECS = {"ffv1": ".mkv", "prores_ks": ".mov"}
# Containers that store one time per frame, in decode order, and no presentation times: frames an
# encoder reorders (B-frames) would be read back with scrambled timestamps, so it may not reorder.
DECODE_ORDER_ONLY = {"avi", "mxf", "asf"}
# QuickTime and the ISO media family (MP4 and its kin), which name a codec by a four-letter tag.
ISO_MEDIA_MUXERS = {"mov", "mp4", "ipod", "3gp", "3g2", "psp", "ismv", "f4v"}
# x264's macroblock-tree rate control gives different bits for the same frames depending on what the
# process did before (seen after a PyAV decode); clips that must be byte-reproducible turn it off.
REPRODUCIBLE_X264 = {"x264-params": "no-mbtree=1"}


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "auto"  # "auto": libx264, or what the output's container holds (see resolve_encoder)
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "auto"  # "auto": the input's pixel format when the encoder takes it, else its first


def _mastering_display(data: bytes) -> str:
    """AVMasteringDisplayMetadata (R, G, B and white point xy, min and max luminance, as rationals;
    then two flags) in the x264/x265 notation: G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min), chromaticity in
    units of 0.00002 and luminance of 0.0001 cd/m2. Empty unless primaries and luminance are both set."""
    *rationals, has_primaries, has_luminance = struct.unpack_from("<22i", data)
    rx, ry, gx, gy, bx, by, wx, wy, lmin, lmax = (n / d if d else 0.0 for n, d in zip(rationals[::2], rationals[1::2]))
    if not (has_primaries and has_luminance):
        return ""

    def xy(x: float, y: float) -> str:
        return f"({round(x * 50000)},{round(y * 50000)})"
    return f"G{xy(gx, gy)}B{xy(bx, by)}R{xy(rx, ry)}WP{xy(wx, wy)}L({round(lmax * 10000)},{round(lmin * 10000)})"


def _content_light(data: bytes) -> str:
    """AVContentLightMetadata (MaxCLL, MaxFALL) as x264/x265 take it: "MaxCLL,MaxFALL"."""
    return "{},{}".format(*struct.unpack_from("<2I", data))


_HDR10_FORMAT = {"MASTERING_DISPLAY_METADATA": _mastering_display, "CONTENT_LIGHT_LEVEL": _content_light}
_HDR10_PARAMS = {  # encoder -> side data kind -> its parameter
    "libx264": {"MASTERING_DISPLAY_METADATA": "mastering-display", "CONTENT_LIGHT_LEVEL": "cll"},
    "libx265": {"MASTERING_DISPLAY_METADATA": "master-display", "CONTENT_LIGHT_LEVEL": "max-cll"},
}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(target: str | Path, number_offset: int = 0) -> Iterator[Path]:
    """Yield a temp path beside ``target``; rename it onto ``target`` only if the block succeeds.

    Any exception, KeyboardInterrupt included, removes the temp file, so no partial output remains.
    An image sequence (``f_%06d.png``) is written into a hidden folder instead, and its pictures are
    renamed into place with ``number_offset`` added to their numbers (:func:`_placed_sequence`).
    """
    target = Path(target)
    if not target.parent.is_dir():
        raise OutputError(f"output folder does not exist: {target.parent}")
    stem = hidden_stem(target)
    try:
        if is_sequence(target):
            tmp = tempfile.mkdtemp(dir=target.parent, prefix=f".{stem}.", suffix=f".part{target.suffix}")
        else:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{stem}.", suffix=f".part{target.suffix}")
            os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {target.parent} ({exc.strerror})") from exc
    tmp_path = Path(tmp)
    try:
        if tmp_path.is_dir():
            yield tmp_path / target.name
            _placed_sequence(tmp_path / target.name, target, number_offset)
        else:
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get a normal file's mode
            os.replace(tmp_path, target)
    finally:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        else:
            tmp_path.unlink(missing_ok=True)


def _placed_sequence(staged: Path, target: Path, offset: int) -> None:
    """Rename the pictures of the finished sequence ``staged`` into place as ``target``'s, each with
    ``offset`` added to its number; then remove ``target``'s other pictures, which an earlier run
    left (the caller refused an existing output unless told to overwrite it), so that the sequence
    on disk is this run's alone."""
    mode = 0o666 & ~_umask()
    placed = []
    for number in numbers_in(staged):
        picture = numbered(staged, number)
        os.chmod(picture, mode)
        os.replace(picture, numbered(target, number + offset))
        placed.append(number + offset)
    remove_others(target, set(placed))


def _subsampling_fits(pix_fmt: str, width: int, height: int) -> bool:
    """False when ``pix_fmt`` subsamples chroma along an odd dimension (x264 then refuses to open)."""
    chroma = [c for c in av.VideoFormat(pix_fmt, 2, 2).components if not c.is_luma and not c.is_alpha]
    if not chroma:
        return True
    return not ((chroma[0].width == 1 and width % 2) or (chroma[0].height == 1 and height % 2))


_RGB_PICTURE_ENCODERS = {"png", "tiff", "bmp", "dpx", "exr"}  # pictures viewers expect in RGB, though some of these take YUV
# GIF holds 256 colours a frame: each frame gets its own palette (FFmpeg's palettegen and
# paletteuse): by hand, the encoder's fixed 3-3-2 palette was off by 16.6 levels on the sample
# clip, a palette of the frame's own by 2.2.
_PALETTE_ENCODERS = {"gif"}


def _pick_pix_fmt(codec: av.Codec, requested: str, source: str, width: int, height: int) -> str:
    supported = [f.name for f in (codec.video_formats or [])]
    if requested == "auto" and codec.name in _PALETTE_ENCODERS:
        return "pal8"
    if requested == "auto" and codec.name in _RGB_PICTURE_ENCODERS:
        if is_linear(source) and float_format(source) in supported:
            return float_format(source)  # half samples widen exactly; the encoder writes them as half (codec_options)
        if av.VideoFormat(source).is_rgb and source in supported:
            return source  # a 10-bit DPX scan stays 10-bit DPX
        deep = av.VideoFormat(source).components[0].bits > 8
        requested = next((f for f in (["rgb48be", "rgb48le"] if deep else []) + ["rgb24"] if f in supported), "auto")
    if requested == "auto" and not _subsampling_fits(source, width, height):
        requested = "yuv444p"  # odd sizes cannot be chroma-subsampled; keep the exact frame size instead
    if requested != "auto":
        if supported and requested not in supported:
            raise OutputError(f"encoder {codec.name} does not take pixel format {requested}; it takes {', '.join(supported)}")
        return requested
    if not supported or source in supported:
        return _jfif_format(codec, source, supported)
    return _jfif_format(codec, "yuv420p", supported) if "yuv420p" in supported else _closest_format(source, supported)


def _jfif_format(codec: av.Codec, pix_fmt: str, supported: list[str]) -> str:
    """JPEG's full-range twin of a limited-range YUV ``pix_fmt`` (yuvj420p for yuv420p): FFmpeg's
    MJPEG encoder refused limited-range video (an H.264 clip into an MJPEG .avi)."""
    full = "yuvj" + pix_fmt[3:]
    return full if codec.name in _JFIF_ENCODERS and pix_fmt.startswith("yuv") and full in supported else pix_fmt


def output_pix_fmt(codec: av.Codec, options: EncodeOptions, source: VideoInfo) -> str:
    """The pixel format ``codec`` writes ``source`` in (:func:`_pick_pix_fmt`). Video that was not
    delivery video (a master, a camera's MJPEG, a DPX scan, broadcast's 4:2:2 MPEG-2) written by a
    delivery encoder is 4:2:0 at its depth unless --pix-fmt says otherwise: a ProRes 4:2:2 reel came
    out as 4:2:2 HEVC and a camera's MJPEG as 4:2:2 H.264, which almost no phone, TV or browser
    decodes. Alpha is kept where the encoder takes it (VP9 in .webm, as renders for the web are)."""
    pix_fmt = source.pix_fmt
    if codec.name in _DELIVERY_ENCODERS and source.codec not in _DELIVERY_CODECS:
        pix_fmt = _delivery_format(source.pix_fmt)
    return _pick_pix_fmt(codec, options.pix_fmt, pix_fmt, source.width, source.height)


_DELIVERY_ENCODERS = {"libx264", "libx265", "libvpx-vp9", "libsvtav1", "libaom-av1"}
_DELIVERY_CODECS = {"h264", "hevc", "vp9", "av1"}


def _delivery_format(pix_fmt: str) -> str:
    if any(c.is_alpha for c in av.VideoFormat(pix_fmt).components):
        return "yuva420p"
    if pix_fmt.startswith("yuvj"):
        return "yuvj420p"  # full range stays full range
    return "yuv420p10le" if bit_depth(pix_fmt) > 8 else "yuv420p"


def yuv_colours(info: VideoInfo, pix_fmt: str, encoder: str) -> ColorInfo:
    """The colour tags, and the conversion, of an output in ``pix_fmt`` by ``encoder`` from a source
    ``info`` describes. An RGB source (pictures, an RGB master) that states no matrix, written as YUV
    video, is converted with BT.709 and tagged BT.709, limited range: left untagged, FFmpeg converted
    it with BT.601 while players read untagged HD as BT.709, which shifts its colours (reds by ~19
    levels). JPEG keeps JFIF's full-range BT.601, which its decoders assume whatever the tags say."""
    source, output = av.VideoFormat(info.pix_fmt), av.VideoFormat(pix_fmt)
    rgb_to_yuv = (source.is_rgb or source.has_palette) and not (output.is_rgb or output.has_palette) and "gray" not in pix_fmt
    if not rgb_to_yuv or info.color.matrix not in (0, 2) or encoder in _JFIF_ENCODERS or pix_fmt.startswith("yuvj"):
        return _range_said(info.color, output, encoder)
    unset = 2  # AVCOL_*_UNSPECIFIED
    return ColorInfo(primaries=1 if info.color.primaries == unset else info.color.primaries,
                     transfer=1 if info.color.transfer == unset else info.color.transfer, matrix=1, range=1)


_JFIF_ENCODERS = {"mjpeg", "ljpeg", "jpegls"}
# Encoders whose stream says that its samples are full range (H.264's and HEVC's VUI, VP9, AV1,
# FFV1), or that are full range by definition (JPEG).
_FULL_RANGE_ENCODERS = {"libx264", "libx265", "libvpx-vp9", "libsvtav1", "libaom-av1", "ffv1", *_JFIF_ENCODERS}


def _range_said(colours: ColorInfo, output: av.VideoFormat, encoder: str) -> ColorInfo:
    """``colours``, limited range where full-range YUV (a camera's MJPEG) would be written by an
    encoder whose stream cannot say so (MPEG-4 Part 2, MPEG-2, DV, ProRes): written full, it was
    read back from an AVI as limited, its contrast stretched by 16%."""
    full = colours.range == 2 and not output.is_rgb and not output.name.startswith("yuvj")
    return dataclasses.replace(colours, range=1) if full and encoder not in _FULL_RANGE_ENCODERS else colours


def _closest_format(source: str, candidates: list[str]) -> str:
    """The one of ``candidates`` that keeps most of ``source``: its alpha, then its chroma resolution,
    then its bit depth (a 12-bit ProRes 4444 with alpha goes to ProRes's 10-bit 4444 with alpha, not
    to its first format, 4:2:2 without)."""
    def described(name: str) -> tuple[bool, int, int]:
        fmt = av.VideoFormat(name, 16, 16)
        chroma = sum(c.width * c.height for c in fmt.components if not c.is_luma and not c.is_alpha)
        return any(c.is_alpha for c in fmt.components), chroma, max(c.bits for c in fmt.components)

    alpha, chroma, bits = described(source)

    def loss(name: str) -> tuple[bool, int, int, int]:
        has_alpha, has_chroma, has_bits = described(name)
        return alpha and not has_alpha, max(0, chroma - has_chroma), max(0, bits - has_bits), abs(bits - has_bits)
    return min(candidates, key=loss)


# Encoders for a container that cannot hold the one asked for (or for "auto"), best first.
_VIDEO_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "ffv1", "prores_ks", "mpeg4", "mpeg2video", "dvvideo")
# FFmpeg's MPEG-1/2/4 and JPEG encoders aim at 200 kbit/s unless given a quantiser: a 480x360 face
# clip came out at 32 dB through MPEG-4 against 39-41 dB at quantisers 2-3.
# MPEG-1/2 code one of a few frame rates, not a time base: they refuse a container's (1/12288, 1/1200000)
_FRAME_RATE_ENCODERS = {"mpeg1video", "mpeg2video"}
# AVI counts frames at one rate: given the input's tick (1/12288), FFmpeg wrote a 600 fps stream of
# mostly empty frames. A video at a constant rate is written at that rate (one of varying rate keeps
# its times as FFmpeg can, with empty frames between, in milliseconds where its tick is finer than
# AVI's encoders take).
_FRAME_RATE_MUXERS = {"avi"}
_FIELD_ENCODERS = {"mpeg2video", "mpeg4"}  # of these, the ones that code interlaced frames as two fields
_QUANTISER_ENCODERS = {"mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "msmpeg4", "msmpeg4v2", "h263p", "flv", "wmv1", "wmv2"}


MPEG_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(50),
              Fraction(60000, 1001), Fraction(60))


def mpeg_rate(rate: Fraction) -> Fraction:
    """The rate MPEG-1/2 code ``rate`` at: the nearest of theirs where it is within 1% of one (an
    .mp4 whose stream duration counts a long last frame stated 29.77 fps for 29.97, which the
    encoder refused), else ``rate`` itself."""
    nearest = min(MPEG_RATES, key=lambda r: abs(r - rate))
    return nearest if abs(nearest - rate) <= nearest / 100 else rate


def _takes(output: Path, codec: str | None) -> bool:
    """Whether FFmpeg knows a container by ``output``'s name and it can hold a stream of ``codec``
    (None: any container it knows)."""
    scratch = io.BytesIO()
    scratch.name = output.name  # FFmpeg picks the container by the name
    try:
        with av.open(scratch, "w") as out:
            if codec is not None:
                out.add_stream(codec)
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def copy_of(out: av.container.OutputContainer, stream: av.stream.Stream) -> av.stream.Stream:
    """A stream of ``out`` that ``stream``'s packets are copied into. PyAV sets a video stream up
    around the encoder of its codec's name; FFmpeg decodes AV1 with libdav1d, which encodes
    nothing, so every AV1 copy failed (a face-less YouTube download, a --codec libsvtav1 output's
    own segments): such a stream is set up from the codec parameters alone."""
    try:
        av.Codec(stream.codec_context.name, "w")
    except ValueError:
        return out.add_stream_from_template(stream, opaque=True)
    return out.add_stream_from_template(stream)


def _holds_tag(output: Path, stream: av.video.stream.VideoStream) -> bool:
    """Whether a container named like ``output`` takes a copy of ``stream`` with its four-letter
    tag (FFmpeg checks the tag against the codec as it writes the header)."""
    if is_sequence(output) or not stream.codec_context.codec_tag.strip("\0"):
        return False
    scratch = io.BytesIO()
    scratch.name = output.name
    try:
        with av.open(scratch, "w") as out:
            copy_of(out, stream).codec_context.codec_tag = stream.codec_context.codec_tag
            out.start_encoding()
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def _muxer(output: Path) -> str | None:
    """The name of the muxer FFmpeg writes a file named like ``output`` with (None: it knows none)."""
    scratch = io.BytesIO()
    scratch.name = output.name
    with contextlib.suppress(av.error.FFmpegError, ValueError), av.open(scratch, "w") as out:
        return out.format.name
    return None


def stores_rotation(output: str | Path) -> bool:
    """Whether a file named like ``output`` stores a display rotation (QuickTime/MP4's matrix,
    Matroska's projection); AVI, MPEG-TS, FLV, ASF, MXF and NUT do not."""
    return _muxer(Path(output)) in ISO_MEDIA_MUXERS | {"matroska", "webm"}


def one_rate_only(output: str | Path, options: EncodeOptions, source: VideoInfo) -> str:
    """Why video whose frame rate varies cannot be written to ``output`` with ``options`` ("": it
    can): AVI counts frames at one rate, and MPEG-1/2 code one of a few rates."""
    if _muxer(Path(output)) in _FRAME_RATE_MUXERS:
        return f"{Path(output).suffix} files count frames at one rate"
    codec = check_encoder(options, output, source).name
    return f"{codec} codes frames at one of a few rates" if codec in _FRAME_RATE_ENCODERS else ""


def holds_copy(source: str | Path, output: str | Path) -> bool:
    """Whether a file named like ``output`` can hold ``source``'s video stream copied as it is (an
    .mp4 cannot hold a GIF's, nor a .webm H.264)."""
    scratch = io.BytesIO()
    scratch.name = Path(output).name  # FFmpeg picks the container by the name
    with open_input(source) as container:
        try:
            with av.open(scratch, "w") as out:
                copy_of(out, container.streams.video[0])
        except (av.error.FFmpegError, ValueError):
            return False
    return True


def copies_into(output: str | Path, codec: str) -> bool:
    """Whether video of ``codec`` copied into a file named like ``output`` can be read back: a
    program stream's H.264 could not (FFmpeg found no video in it)."""
    return _muxer(Path(output)) not in _PROGRAM_STREAM_MUXERS or codec in ("mpeg1video", "mpeg2video")


def _is_picture_name(output: Path) -> bool:
    """Whether FFmpeg writes a file named like ``output`` as pictures, with its image2 muxer (.exr, .tga, .jp2 ...)."""
    return _muxer(output) == "image2"


# Containers whose users' tools expect another codec than H.264: MXF is broadcast's, read by
# playout servers and editors as MPEG-2 (XDCAM, IMX), FFmpeg's own default for it. In ASF (.wmv),
# H.264 came back a frame late with its last timestamp doubled; Windows Media Video 8 is exact.
# MPEG program streams (.mpg, .vob) are DVD's, whose players decode MPEG-2 and no H.264. AVI's
# own is MPEG-4 Part 2 (Xvid, DivX): FFmpeg reads H.264 from AVI a frame late, whatever wrote it.
_HOUSE_ENCODERS = {".mxf": "mpeg2video", ".wmv": "wmv2", ".asf": "wmv2", ".mpg": "mpeg2video", ".mpeg": "mpeg2video",
                   ".vob": "mpeg2video", ".dvd": "mpeg2video", ".avi": "mpeg4", ".gif": "gif"}
# Program streams take MPEG-1/2 alone here: H.264 in one came back with unstamped frames, and
# FFmpeg's own demuxer could not find it in a small file.
_PROGRAM_STREAM_MUXERS = {"mpeg", "vob", "svcd", "dvd", "vcd"}


# Intra-frame codecs editors and archives keep footage in, and the encoder that writes each: a
# restored master stays a master (a ProRes HQ reel came back as delivery H.264). A lossless one
# whose own codec the output's container cannot hold becomes FFV1, lossless too; so does
# uncompressed video, at a third of its size.
_MASTER_ENCODERS = {"prores": "prores_ks", "dnxhd": "dnxhd", "ffv1": "ffv1", "huffyuv": "huffyuv", "ffvhuff": "ffvhuff",
                    "utvideo": "utvideo", "magicyuv": "magicyuv", "v210": "v210", "qtrle": "qtrle", "rawvideo": "ffv1"}
# The master encoders each container is written with, as FFmpeg writes them and reads them back.
# FFmpeg also writes FFV1 into an .mp4 and ProRes into MPEG-TS, which players (FFmpeg's own
# demuxer, for the second) do not read, and its MXF muxer takes UT Video until it writes the header.
_MASTER_MUXERS = {"mov": {"prores_ks", "dnxhd", "qtrle", "v210", "magicyuv"}, "matroska": {"prores_ks", "ffv1"},
                  "avi": {"ffv1", "huffyuv", "ffvhuff", "utvideo", "magicyuv", "v210"}, "mxf": {"prores_ks", "dnxhd", "ffv1"}}
_LOSSLESS = {"ffv1", "huffyuv", "ffvhuff", "utvideo", "magicyuv", "v210", "qtrle", "rawvideo"}


def _master_encoder(output: Path, source: VideoInfo) -> str | None:
    """The encoder that keeps ``source``, a master, one in ``output``'s container (None: it is no
    master, or the container holds no encoder that would)."""
    own = _MASTER_ENCODERS.get(source.codec)
    if own is None:
        return None
    held = _MASTER_MUXERS.get(_muxer(output) or "", set())
    choices = [own, *(["ffv1"] if source.codec in _LOSSLESS else [])]
    return next((c for c in choices if c in av.codecs_available and c in held), None)


def _fitting_encoder(output: Path, source: VideoInfo | None = None) -> str | None:
    """The encoder a file named like ``output`` is best written with from ``source``: by its type
    for a picture; the master's own for a master (:data:`_MASTER_ENCODERS`); by its type for an
    MXF or a WMV file; else the first of :data:`_VIDEO_ENCODERS` its container holds, x265 first
    for a source deeper than 8 bits (an iPhone's HDR video), since H.264 at 10 bits plays on
    almost no phone, TV or browser, and HEVC at 10 bits on most."""
    suffix = output.suffix.lower()
    picture = IMAGE_ENCODERS.get(suffix)
    chosen = picture or (_master_encoder(output, source) if source is not None else None) or _HOUSE_ENCODERS.get(suffix)
    if chosen is not None:
        return chosen
    deep = source is not None and bit_depth(source.pix_fmt) > 8
    order = sorted(_VIDEO_ENCODERS, key=lambda c: c != "libx265") if deep else _VIDEO_ENCODERS
    return next((c for c in order if c in av.codecs_available and _takes(output, c)), None)


def check_encoder(options: EncodeOptions, output: str | Path | None = None, source: VideoInfo | None = None) -> av.Codec:
    """The encoder of ``options`` for ``output``: the one named, which ``output``'s container must
    hold, or for "auto" the one that fits the container and ``source`` (:func:`_fitting_encoder`:
    x264 for most, x265 for deep sources, a master's own codec for a master, VP9 for .webm, MPEG-2
    for .mxf, WMV for .wmv, PNG or JPEG for a picture). Checked before any work, so a typo or a
    mismatch fails at once."""
    if output is not None and not _takes(Path(output), None):
        raise OutputError(f"no container is known by the name {Path(output).name!r}: end it in a video type such as "
                          ".mp4, .mkv, .mov or .webm")
    if output is not None and _is_picture_name(Path(output)) and Path(output).suffix.lower() not in IMAGE_ENCODERS:
        raise OutputError(f"cannot write {Path(output).name}: {unsupported_type(output)}")
    name = options.codec
    if name == "auto":
        name = (_fitting_encoder(Path(output), source) if output is not None else None) or "libx264"
    try:
        codec = av.Codec(name, "w")
    except (av.error.FFmpegError, ValueError) as exc:
        raise OutputError(f"encoder {name!r} is not in this FFmpeg build") from exc
    top = _CRF_TOP.get(codec.name)
    if options.crf < 0 or (top is not None and options.crf > top):  # x264 took 60 as its 51 without a word
        raise UsageError(f"--crf {options.crf} is outside what {codec.name} takes, 0 to {top} (lower is better)" if top
                         else f"--crf {options.crf}: expected 0 or more (lower is better)")
    if output is None:
        return codec
    fits = _fitting_encoder(Path(output))
    if _muxer(Path(output)) in ("ogg", "ogv"):
        raise OutputError(f"vidrestore does not write Ogg video ({Path(output).suffix}): FFmpeg has no Theora encoder here, and "
                          "VP8 in Ogg keeps no timestamps; write a .webm (VP9) or a .mkv")
    if not copies_into(output, codec.name):
        raise OutputError(f"{codec.name} video in a {Path(output).suffix} program stream is not read back by FFmpeg itself, nor "
                          f"played by DVD players; leave --codec out for MPEG-2, or write a .ts or .mkv")
    if not _takes(Path(output), codec.name) or (Path(output).suffix.lower() in IMAGE_ENCODERS and codec.name != fits):
        others = " or ".join(c for c in (".mkv", ".mov") if c != Path(output).suffix.lower())
        hint = f"give --codec {fits} (or leave --codec out), or write a {others}" if fits else f"write a {others}"
        raise OutputError(f"{codec.name} video cannot be stored in {Path(output).suffix} files; {hint}")
    if source is not None and is_linear(source.pix_fmt) != (codec.name == "exr"):
        raise UsageError(f"an OpenEXR plate's linear light cannot go into {codec.name} {'pictures' if is_sequence(output) else 'video'} "
                         "without clipping its highlights: write OpenEXR pictures (name_%04d.exr)" if is_linear(source.pix_fmt) else
                         f"OpenEXR pictures are written from OpenEXR plates (linear light); this input is display-referred "
                         f"{source.pix_fmt}: write TIFF, DPX or PNG pictures")
    return codec


def master_note(source: VideoInfo, encoder: str, output: str | Path) -> list[str]:
    """A note when ``source`` is a master but ``encoder``, chosen for ``output``'s container
    (an .mp4, a .webm), writes delivery video."""
    if source.codec not in _MASTER_ENCODERS or encoder in _MASTER_ENCODERS.values():
        return []
    lossless = source.codec in _LOSSLESS
    kind = f"{source.codec} {source.profile}" if source.profile else source.codec
    keep = "ffv1" if lossless else _MASTER_ENCODERS[source.codec]
    *others, last = [suffix for muxer, suffix in _MASTER_SUFFIXES.items() if keep in _MASTER_MUXERS[muxer]]
    holders = f"{', '.join(others)} or {last}" if others else last
    return [f"the input is {kind} ({'lossless' if lossless else 'an editing master'}), and the {Path(output).suffix} output "
            f"was encoded with {encoder}, which is lossy: write a {holders} to keep a master (--codec {keep})"]


_MASTER_SUFFIXES = {"matroska": ".mkv", "mov": ".mov", "mxf": ".mxf", "avi": ".avi"}


def dolby_vision_note(source: VideoInfo) -> list[str]:
    """A note when ``source`` is Dolby Vision: re-encoded, its video keeps the base layer's picture
    and loses the dynamic metadata (RPU), which vidrestore does not carry (a copied stream keeps its RPU units)."""
    if not source.dolby_vision:
        return []
    return ["the input is Dolby Vision: its dynamic metadata (RPU) is not carried into the re-encoded video, which players "
            "show as its base layer (HDR10, HLG or SDR, by the input's profile)"]


_CRF_TOP = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libvpx": 63, "libsvtav1": 63}  # the largest --crf each takes


def codec_options(name: str, pix_fmt: str, info: VideoInfo, options: EncodeOptions) -> dict[str, str]:
    """Quality settings, and interlaced coding in the input's field order when its fields were
    kept (x264 coded them as progressive frames, flagged progressive; ProRes codes interlaced
    frames with interlaced DCT)."""
    fields = info.parity if info.interlaced else ""
    if name == "libx264":
        return {"crf": str(options.crf), "preset": options.preset,
                **({"x264-params": f"{fields}=1"} if fields else {})}
    if name == "libx265":  # x265 prints its settings banner unless told not to
        return {"crf": str(options.crf), "preset": options.preset, "x265-params": "log-level=error"}
    if name == "ffv1":
        return {"level": "3", "slicecrc": "1"}
    if name == "libvpx-vp9":  # constant quality (libvpx otherwise aims at 256 kbit/s), rows in parallel
        return {"crf": str(options.crf), "b": "0", "row-mt": "1"}
    if name == "libvpx":  # VP8 takes --crf as a quality level only under a bit rate ceiling (with none it ignored it)
        return {"crf": str(options.crf), "b": "100M"}
    if name == "libsvtav1":  # its own presets are numbers, not x264's names: its default one is kept
        return {"crf": str(options.crf)}
    if name in _QUANTISER_ENCODERS:  # a constant quantiser from --crf: 18 -> 3 (2 is the finest these take)
        q = str(min(31, max(2, round(options.crf / 6))))
        fielded = {"flags": "+ildct+ilme"} if fields and name in _FIELD_ENCODERS else {}  # fields coded as fields, as DVD and broadcast MPEG-2 are
        return {"qmin": q, "qmax": q, **fielded}
    if name.startswith("prores"):
        return {"profile": _prores_profile(info, pix_fmt), **({"flags": "+ildct"} if fields else {})}
    if name == "dnxhd":
        return {"profile": _dnxhr_profile(info, pix_fmt)}
    if name == "exr":  # the plate's own sample type; ZIP, lossless, as most plates are (FFmpeg's default is none)
        return {"format": "half" if LINEAR_FORMATS.get(info.pix_fmt) == np.float16 else "float", "compression": "zip16"}
    return {}


def describe_encoding(options: EncodeOptions, output: str | Path, source: VideoInfo) -> str:
    """How the video of ``output`` is encoded from ``source``, in words: "libx264, yuv420p, crf 18,
    preset medium", "prores_ks, yuv422p10le, profile HQ" or "exr, gbrpf32le, samples half,
    compression zip16"."""
    codec = check_encoder(options, output, source)
    pix_fmt = output_pix_fmt(codec, options, source)
    chosen = codec_options(codec.name, pix_fmt, source, options)
    names = {v: k for k, v in _PRORES_PROFILES.items()} if codec.name.startswith("prores") else {}
    labels = {"crf": "crf", "preset": "preset", "profile": "profile", "qmin": "quantiser", "format": "samples", "compression": "compression"}
    shown = [f"{labels[key]} {names.get(value, value)}" for key, value in chosen.items() if key in labels]
    return ", ".join([codec.name, pix_fmt, *shown])


_PRORES_PROFILES = {"Proxy": "0", "LT": "1", "Standard": "2", "HQ": "3", "4444": "4", "XQ": "5"}


def _prores_profile(source: VideoInfo, pix_fmt: str) -> str:
    """A ProRes source's own profile (an LT reel stays LT, an XQ one XQ), where ``pix_fmt`` allows
    it; else 4444 for 4:4:4 (and alpha) pictures and 422 HQ for the rest, which would drop both."""
    four = pix_fmt.startswith(("yuv444", "yuva444"))
    own = _PRORES_PROFILES.get(source.profile or "") if source.codec == "prores" else None
    return own if own is not None and (own in "45") == four else ("4" if four else "3")


def _dnxhr_profile(source: VideoInfo, pix_fmt: str) -> str:
    """The DNxHR profile for pictures in ``pix_fmt``: 444 for 4:4:4 and HQX for 10-bit 4:2:2, which
    no other takes; for 8 bits a DNxHR source's own (LB, SQ, HQ), else HQ. DNxHR, unlike DNxHD,
    codes any frame size at any rate; Avid, Resolve and Premiere read both."""
    if pix_fmt.startswith(("yuv444", "gbr")):
        return "dnxhr_444"
    if bit_depth(pix_fmt) > 8:
        return "dnxhr_hqx"
    own = (source.profile or "").lower().replace(" ", "_") if source.codec == "dnxhd" else ""
    return own if own in ("dnxhr_lb", "dnxhr_sq", "dnxhr_hq") else "dnxhr_hq"


class VideoWriter:
    """Encode frames (RGB in display orientation, or untouched decoded frames) with the input's timing."""

    def __init__(self, path: str | Path, info: VideoInfo, options: EncodeOptions):
        self.path = Path(path)
        self.info = info
        self.options = options
        self.frames_written = 0
        codec = check_encoder(options, self.path, info)
        self.container = av.open(str(self.path), "w")
        try:
            self.stream = self._add_stream(codec)
        except BaseException:
            self.container.close()
            raise
        # Colour conversion and encoding run in their own thread (FFmpeg releases the GIL), so the
        # next frames are restored while these are encoded; the queue bounds the frames held.
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._reformatter = VideoReformatter()  # one conversion set up for the whole stream (the encode thread's)
        self._patch_reformatter = VideoReformatter()  # for regions, whose sizes change from frame to frame
        self._palettes: av.filter.Graph | None = None  # GIF: a palette for each frame (see _palettized)
        self._error: BaseException | None = None
        self._opened = False  # the encoder opens on the first frame, with options read from it
        self._thread = threading.Thread(target=self._encode_loop, name="vidrestore-encode", daemon=True)
        self._thread.start()

    def _add_stream(self, codec: av.Codec) -> av.video.stream.VideoStream:
        info, opts = self.info, self.options
        try:
            stream = self.container.add_stream(codec.name)
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"{codec.name} cannot be stored in {self.path.suffix} files; try a .mkv or .mov output") from exc
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = output_pix_fmt(codec, opts, info)
        self.info = info = dataclasses.replace(info, color=yuv_colours(info, stream.pix_fmt, codec.name))
        # Encoder timestamps are the input's own: VFR stays VFR and every PTS survives.
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        if codec.name in _FRAME_RATE_ENCODERS and info.average_rate:  # frames are moved onto the rate's grid
            info = dataclasses.replace(info, average_rate=mpeg_rate(info.average_rate))
            stream.codec_context.time_base = 1 / info.average_rate
        if self.container.format.name in _FRAME_RATE_MUXERS and info.average_rate and info.constant_rate:
            stream.time_base = stream.codec_context.time_base = 1 / info.average_rate
        elif self.container.format.name in _FRAME_RATE_MUXERS and info.time_base.denominator > 0xFFFF:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)  # MPEG-TS's 1/90000 was refused
        if codec.name in _PALETTE_ENCODERS:  # GIF counts time in hundredths of a second
            stream.time_base = stream.codec_context.time_base = Fraction(1, 100)
        if info.average_rate:
            stream.codec_context.framerate = info.average_rate
        cc = stream.codec_context
        cc.color_primaries, cc.color_trc = info.color.primaries, info.color.transfer
        cc.colorspace, cc.color_range = info.color.matrix, info.color.range
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        if self.container.format.name in DECODE_ORDER_ONLY:
            cc.max_b_frames = 0
        if codec.name == "libx265" and self.container.format.name in ISO_MEDIA_MUXERS:
            stream.codec_tag = "hvc1"  # the muxer's default, hev1, is refused by Apple's players
        if info.field_order != "unknown":  # kept fields keep their declared order, and deinterlaced frames say they
            # are progressive (FFV1, ProRes and MPEG-2 in Matroska and QuickTime said "unknown" unless told)
            cc.field_order = {v: k for k, v in FIELD_ORDERS.items()}[info.field_order]
        stream.options = codec_options(codec.name, stream.pix_fmt, info, opts)
        return stream

    def write(self, source: av.VideoFrame | None, pts: int | None, image: np.ndarray | None = None,
              regions: list[Box] | None = None) -> None:
        """Queue one frame for encoding: ``source`` as decoded when ``image`` is None, else ``image``
        (RGB uint8 or uint16, display orientation: the source with faces pasted in).

        The faces are written into ``source`` itself (see :meth:`_paint`), so what the decoder
        attached to it reaches the encoder (x264 writes the frame's A53 closed captions back). The
        frame is the writer's from then on. ``regions``: the boxes (display pixels) outside which
        ``image`` is ``source`` unchanged; only they are converted back (see :mod:`.patch`) when
        the frame's format allows. None: the whole image is new. ``source`` None: an image with no
        decoded frame behind it (the side-by-side preview)."""
        self._raise_pending()
        self._queue.put((source, pts, image, regions))
        self.frames_written += 1

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _encode_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so a producer blocked on a full queue is released
            try:
                self._encode(*item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer's thread
                self._error = exc

    def _encode(self, source: av.VideoFrame | None, pts: int | None, image: np.ndarray | None,
                regions: list[Box] | None) -> None:
        if source is not None and is_linear(source.format.name):  # an OpenEXR plate: never through FFmpeg's scaler
            frame = linear_frame(source, image, regions, self.info.chromaticities)
        else:
            frame = self._in_output_format(source) if source is not None else None
            if image is not None:
                frame = self._paint(frame, image, regions)
        frame.pts = pts
        frame.time_base = self.info.time_base
        # The encoder chooses its own frame types. A decoded frame keeps its type from the source,
        # and x264 obeys it: an all-intra master (ProRes, MJPEG, FFV1) came out all keyframes.
        frame.pict_type = av.video.frame.PictureType.NONE
        opening = not self._opened
        if opening:
            self._carry_hdr10(frame)
            self._opened = True
        name = self.stream.codec_context.name  # read before: PyAV 19 crashes on a context that failed to open
        try:
            packets = self.stream.encode(frame)
        except av.error.FFmpegError as exc:
            if not opening:
                raise
            raise OutputError(f"the {name} encoder refused this video's settings ({exc.strerror or exc}: "
                              f"{self.info.width}x{self.info.height} {self.stream.pix_fmt}, time base {self.info.time_base}); "
                              "try another --codec") from exc
        self._mux(packets)

    def _carry_hdr10(self, frame: av.VideoFrame) -> None:
        """Have x264/x265 write the HDR10 static metadata (mastering display, content light level)
        that the decoder attached to the first frame. Their FFmpeg wrappers read it from the codec's
        side data, which PyAV cannot set, and not from the frames: an HDR10 master lost it."""
        names = _HDR10_PARAMS.get(self.stream.codec_context.name)
        found = {str(sd.type).rsplit(".", 1)[-1]: bytes(sd) for sd in side_data(frame)}
        params = [f"{name}={value}" for kind, name in (names or {}).items()
                  if kind in found and (value := _HDR10_FORMAT[kind](found[kind]))]
        if params:
            key = f"{self.stream.codec_context.name[3:]}-params"  # x264-params, x265-params
            options = dict(self.stream.codec_context.options)
            options[key] = ":".join(filter(None, [options.get(key, ""), *params]))
            self.stream.codec_context.options = options

    def _in_output_format(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` converted to the stream's pixel format; a conversion keeps the frame's side data."""
        if frame.format.name == self.stream.pix_fmt and not frame.format.has_palette:
            return frame
        if self.stream.pix_fmt == "pal8":
            return self._palettized(frame)
        return self._reformatter.reformat(frame, format=self.stream.pix_fmt, **self._yuv_kwargs())

    def _palettized(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` in 256 colours of its own (see :data:`_PALETTE_ENCODERS`)."""
        rgb = self._reformatter.reformat(frame, format="rgb24")
        if self._palettes is None:
            graph = self._palettes = av.filter.Graph()
            source = graph.add_buffer(width=rgb.width, height=rgb.height, format="rgb24", time_base=Fraction(1, 100))
            split, sink = graph.add("split"), graph.add("buffersink")
            colours, mapped = graph.add("palettegen", "stats_mode=single"), graph.add("paletteuse", "new=1")
            source.link_to(split)
            split.link_to(colours, 0, 0)
            split.link_to(mapped, 1, 0)
            colours.link_to(mapped, 0, 1)
            mapped.link_to(sink)
            graph.configure()
        self._palettes.vpush(rgb)
        return self._palettes.vpull()

    def _paint(self, base: av.VideoFrame | None, image: np.ndarray, regions: list[Box] | None) -> av.VideoFrame:
        """``image`` written into ``base``, the decoded frame in the output format: its boxes
        ``regions`` alone when the format allows, else all of it. A new frame only when there is
        no ``base``. Painting into the decoded frame rather than a new one keeps its side data,
        which the encoder reads: a new frame dropped the captions of every frame with a face."""
        coded = rotate_to_coded(image, self.info.rotation)
        if base is None or base.format.has_palette:  # a palette is made for the whole picture
            return self._in_output_format(self._to_video_frame(coded))
        base.make_writable()  # copies the samples first while the decoder still references them
        coded = with_alpha_of(base, coded)
        if regions is not None and patchable(base):
            height, width = image.shape[:2]
            turns = -(self.info.rotation // 90) % 4  # as rotate_to_coded turns the image
            patch_frame(base, coded, [rotate_box(b, turns, height, width) for b in regions],
                        self._patch_reformatter, **self._yuv_kwargs())
        else:
            copy_samples(base, self._in_output_format(self._to_video_frame(coded)))
        return base

    def _stop_thread(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _yuv_kwargs(self) -> dict[str, int]:
        # One thread: FFmpeg's threaded RGB48-to-10-bit conversion (libswscale 9.5) races and
        # writes wrong chroma into a few samples of a row, differently from run to run
        # (tests/test_patch.py). The conversion runs on the encode thread, beside the rest.
        kwargs = {"threads": 1}
        if self.info.color.matrix not in (0, 2):
            kwargs["dst_colorspace"] = self.info.color.matrix
        if self.info.color.range:
            kwargs["dst_color_range"] = self.info.color.range
        return kwargs

    @staticmethod
    def _to_video_frame(coded: np.ndarray) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(coded), format=rgb_format(coded))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            _repair_decode_time(packet)
        try:
            self.container.mux(packets)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path} ({exc.strerror or exc})") from exc
        except av.error.FFmpegError as exc:  # the header, written with the first packet, holds the settings
            reason = exc.log[2].strip() if exc.log else exc.strerror or str(exc)
            raise OutputError(f"FFmpeg's {self.container.format.name} muxer refused the {self.stream.codec_context.name} "
                              f"video ({reason}); write a .mkv or .mov") from exc

    def close(self) -> None:
        try:
            self._stop_thread()
            self._raise_pending()
            self._mux(self.stream.encode(None))
        finally:
            self.container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._error = self._error or RuntimeError("stopped")  # skip the frames still queued
            self._stop_thread()
            with contextlib.suppress(Exception):
                self.container.close()


def _from_zero(packets: Iterator[tuple[tuple[str, int], av.Packet]]) -> Iterator[tuple[tuple[str, int], av.Packet]]:
    """``packets`` of each stream moved later where its first lies before 0, so that it starts at 0.
    AVI counts frames from 0: for AAC's priming packet (-21 ms), FFmpeg moved every stream later,
    which on AVI's frame grid put the second picture a frame late and added an empty frame. The
    sound starts 21 ms late instead, under what lips show."""
    shifts: dict[tuple[str, int], int] = {}
    for key, packet in packets:
        first = packet.dts if packet.dts is not None else packet.pts
        shift = shifts.setdefault(key, max(0, -first) if first is not None else 0)
        if shift:
            packet.pts = packet.pts + shift if packet.pts is not None else None
            packet.dts = packet.dts + shift if packet.dts is not None else None
        yield key, packet


def _repair_decode_time(packet: av.Packet) -> None:
    """Give ``packet`` its presentation time as decode time where the encoder left it unset: x265
    does so now and then for a stream of one or two frames (7 of 40 one-frame encodes had a random
    decode time, and the MP4 muxer refused the file). No encoder decodes a frame after showing it,
    or an hour before."""
    if packet.dts is None or packet.pts is None:
        return
    if packet.dts > packet.pts or (packet.pts - packet.dts) * packet.time_base > 3600:
        packet.dts = packet.pts


def _packet_time(packet: av.Packet) -> Fraction:
    ts = packet.dts if packet.dts is not None else packet.pts
    return Fraction(ts or 0) * packet.time_base


# Tags that describe the input's encoding of the video, which the output's encoding replaces
# (Matroska statistics tags, some with a language suffix, like "BPS-eng").
_ENCODING_TAGS = ("bps", "duration", "number_of_frames", "number_of_bytes", "encoder")


def _is_encoding_tag(key: str) -> bool:
    key = key.lower().split("-")[0]
    return key in _ENCODING_TAGS or key.startswith("_statistics")


def _label(stream: av.stream.Stream) -> str:
    if _is_cover(stream):
        return f"cover art (stream {stream.index}, {stream.codec_context.name})"
    if stream.type == "attachment":
        what = stream.metadata.get("filename", "")
    else:  # data streams (a timecode track) have no codec context
        what = stream.codec_context.name if stream.codec_context is not None else stream.metadata.get("handler_name", "")
    return f"{stream.type} stream {stream.index} ({what or 'unknown codec'})"


_PICTURE_TYPES = {"mjpeg": ("jpg", "image/jpeg"), "png": ("png", "image/png"), "bmp": ("bmp", "image/bmp"),
                  "gif": ("gif", "image/gif"), "webp": ("webp", "image/webp")}


def unrestored_videos_note(source: str | Path) -> list[str]:
    """A note naming the video streams of ``source`` after its first (a second camera angle, a
    picture-in-picture track), which are copied as they are: faces are restored in the first alone."""
    with open_input(source) as container:
        others = [s for s in container.streams.video[1:] if not _is_cover(s)]
        if not others:
            return []
        named = ", ".join(_label(s) + (f" \"{s.metadata['title']}\"" if s.metadata.get("title") else "") for s in others)
    return [f"faces are restored in the first video stream only; the others are copied as they are: {named}"]


def _is_cover(stream: av.stream.Stream) -> bool:
    """Cover art: a one-picture video stream (an MP4 covr atom; a Matroska image attachment, which FFmpeg reads as one)."""
    return stream.type == "video" and bool(stream.disposition & av.stream.Disposition.attached_pic)


def _picture(stream: av.stream.Stream) -> bytes:
    """The picture of a cover art stream, read through a container of its own (the caller's
    container must not be moved: remux reads it from the start afterwards)."""
    with open_input(stream.container.name) as container:
        return next((bytes(p) for p in container.demux(container.streams[stream.index]) if p.size), b"")


def _carry(out: av.container.OutputContainer, stream: av.stream.Stream) -> av.stream.Stream:
    """Add ``stream`` of an input to ``out`` as it is: codec parameters (or an attachment's file),
    tags and disposition (default, forced, commentary...). Cover art going into Matroska becomes an
    image attachment named cover.*, as Matroska players look for it (the Matroska muxer would
    write it as a video track with one frame); an attachment is written into the header and
    takes no packets."""
    if _is_cover(stream) and "matroska" in out.format.name:
        ext, mimetype = _PICTURE_TYPES.get(stream.codec_context.name, ("bin", "application/octet-stream"))
        copy = out.add_attachment(stream.metadata.get("filename", f"cover.{ext}"),
                                  stream.metadata.get("mimetype", mimetype), _picture(stream))
    elif stream.type == "attachment":
        copy = out.add_attachment(stream.metadata.get("filename", f"attachment{stream.index}"),
                                  stream.metadata.get("mimetype", "application/octet-stream"), stream.data)
    else:
        copy = copy_of(out, stream)
        copy.disposition = stream.disposition
        if stream.type == "audio" and stream.codec_context.layout.name in _UNORDERED:
            # AVI and DV state a channel count, not a layout; the MP4 muxer then failed on its
            # last write, after the whole video was restored. One or two channels are mono or stereo.
            copy.codec_context.layout = _UNORDERED[stream.codec_context.layout.name]
    copy.metadata.update(stream.metadata)
    return copy


_UNORDERED = {"1 channels": "mono", "2 channels": "stereo"}


def fits_rate(timecode: str, rate: Fraction | None) -> bool:
    """Whether ``timecode``'s frame field counts within ``rate`` (frame 24 does not exist at 24 fps,
    and QuickTime's muxer would fail on it at the very end of a run)."""
    frames = timecode.replace(";", ":").rsplit(":", 1)[-1]
    return bool(rate) and frames.isdigit() and int(frames) < math.ceil(rate)


def timecode_at(timecode: str, rate: Fraction | None, new_rate: Fraction | None) -> str:
    """``timecode`` (HH:MM:SS:FF, ";" before FF when drop-frame) counted at ``new_rate``. A whole
    multiple of ``rate`` counts the same moments in finer frames: 50p made from 50i counts 50 a
    second, so frame 12 at 25 is frame 24 there. Film decimated from video (24000/1001 from
    30000/1001) counts its frames from the same start: the video's frame number (drop-frame
    timecodes skip numbers, not frames) times 4/5, in non-drop-frame timecode at 24 a second.
    Equal rates, or none, leave it as it is."""
    parts = timecode.replace(";", ":").replace(".", ":").split(":")
    if not (rate and new_rate) or new_rate == rate or len(parts) != 4 or not all(p.isdigit() for p in parts):
        return timecode
    if new_rate % rate == 0:
        head, sep, frames = timecode[:-3], timecode[-3], timecode[-2:]
        return f"{head}{sep}{int(frames) * int(new_rate / rate):02d}"
    nominal, new_nominal = round(rate), round(new_rate)
    hours, minutes, seconds, frames = map(int, parts)
    count = ((hours * 60 + minutes) * 60 + seconds) * nominal + frames
    if ";" in timecode:  # drop-frame: two numbers (four at 60) skipped each minute but every tenth
        total_minutes = hours * 60 + minutes
        count -= (nominal // 15) * (total_minutes - total_minutes // 10)
    count = count * new_rate // rate
    frames, seconds = count % new_nominal, count // new_nominal
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{frames:02d}"


def _timecode_tracks(container: av.container.InputContainer) -> list[av.stream.Stream]:
    """QuickTime timecode (tmcd) tracks: FFmpeg reads each as a data stream with a ``timecode`` tag."""
    return [s for s in container.streams if s.type == "data" and "timecode" in s.metadata]


def _carried(container: av.container.InputContainer) -> list[av.stream.Stream]:
    """The streams of ``container`` that remux copies as streams: all but its first video stream
    and its timecode tracks. A timecode travels as the video stream's ``timecode`` tag, from which
    the QuickTime and MP4 muxers write a new timecode track at the video's rate and Matroska a tag.
    (A copied tmcd track made the QuickTime muxer fail when closing the file: PyAV cannot give
    the copy its frame rate.)"""
    first_video = container.streams.video[0].index if container.streams.video else -1
    timecodes = {s.index for s in _timecode_tracks(container)}
    return [s for s in container.streams if s.index != first_video and s.index not in timecodes]


def unfit_streams(source: str | Path, output: str | Path) -> list[str]:
    """The streams remux would copy from ``source`` that the container of ``output`` (by its
    extension) cannot hold, described for a message: "subtitle stream 2 (subrip)". Each is tried
    alone in an empty container of that kind, up to its header; cover art is written whole and
    read back, as the QuickTime muxer drops it without a word."""
    with open_input(source) as container:
        video = container.streams.video[0] if container.streams.video else None
        return [_label(stream) for stream in _carried(container) if not _holds(Path(output).name, stream, video)]


def _holds(name: str, stream: av.stream.Stream, video: av.stream.Stream | None = None) -> bool:
    """Whether a container named like ``name`` holds ``stream`` of an input, put after a copy of
    ``video`` as in the output (MXF takes no sound without a picture before it), or alone where
    the container does not take that video."""
    scratch = io.BytesIO()
    scratch.name = name  # FFmpeg picks the container by the name
    out = av.open(scratch, "w")
    try:
        if video is not None:
            with contextlib.suppress(av.error.FFmpegError, ValueError):
                # with its rate, as remux writes it: MXF refuses a picture without one (and then
                # each sound stream of an Avid MXF was said not to fit in MXF)
                picture = copy_of(out, video)
                if video.average_rate:
                    picture.codec_context.framerate = video.average_rate
        copy = _carry(out, stream)
        out.start_encoding()
        picture = _is_cover(stream) and copy.type != "attachment"  # a picture to read back
        if picture:
            packet = av.Packet(_picture(stream))
            packet.stream, packet.pts, packet.dts, packet.time_base = copy, 0, 0, copy.time_base
            out.mux(packet)
    except (av.error.FFmpegError, ValueError):
        return False
    finally:
        with contextlib.suppress(av.error.FFmpegError, ValueError):
            out.close()
    if not picture:
        return True
    scratch.seek(0)
    try:
        with av.open(scratch) as written:
            return any(_is_cover(s) for s in written.streams)
    except av.error.FFmpegError:
        return False


def check_output(source: str | Path, output: str | Path, options: EncodeOptions, drop: bool, info: VideoInfo | None = None) -> None:
    """Refuse, before any work, an ``output`` that could not be written from ``source`` (``info``:
    its video as it will be written, default as probed): an encoder its container cannot hold
    (:func:`check_encoder`), settings they refuse (:func:`check_writable`), a video into a picture
    file, or streams it cannot hold (:func:`check_streams`, unless ``drop``)."""
    info = info or probe(source)
    check_encoder(options, output, info)
    check_channels(source)
    check_writable(output, options, info)
    if is_sequence(output) and not _takes(Path(SEGMENT_SUFFIX), IMAGE_ENCODERS[Path(output).suffix.lower()]):
        raise OutputError(f"vidrestore cannot write {Path(output).suffix} sequences; write a .png sequence, which is as lossless")
    frames = probe(source).estimated_frames
    if Path(output).suffix.lower() in IMAGE_ENCODERS and frames > 1 and not is_sequence(output):
        numbered_name = f"{Path(output).stem}_%06d{Path(output).suffix}"
        raise OutputError(f"{Path(output).suffix} files hold one picture, and {Path(source).name} has about {frames} frames; "
                          f"write a video file (.mp4, .mkv, .mov) or a numbered sequence ({numbered_name})")
    check_streams(source, output, drop)


def check_channels(source: str | Path) -> None:
    """Refuse an OpenEXR plate with channels beyond R, G, B and A (depth, normals, another layer's
    colours): FFmpeg reads and writes those four alone, so the restored pictures would lose the rest."""
    if Path(source).suffix.lower() != ".exr":
        return
    first = numbered(Path(source), find_sequence(source).first) if is_sequence(source) else Path(source)
    others = [c for c in channels_of(first) if c not in COLOUR_CHANNELS]
    if others:
        shown = ", ".join(others[:6]) + (", ..." if len(others) > 6 else "")
        raise UsageError(f"{first.name} holds channels beyond R, G, B and A ({shown}), which the restored pictures would lose: "
                         "split its colour channels into a plate of their own first")


def check_writable(output: str | Path, options: EncodeOptions, source: VideoInfo) -> None:
    """Encode one blank frame of ``source`` into a scratch file of ``output``'s type, so that a
    container or an encoder that refuses this video's settings (MXF at 20 fps) fails before any
    work, with FFmpeg's reason, and not when the restored video is written."""
    if is_sequence(output):
        return  # written picture by picture, by encoders that take any size and rate
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # FFmpeg's reason reaches the exception, and Capture keeps it off the terminal
    try:
        with tempfile.TemporaryDirectory() as scratch, av.logging.Capture(local=False):  # the encoding thread's too
            with VideoWriter(Path(scratch) / f"trial{Path(output).suffix}", source, options) as writer:
                width, height = source.display_size
                writer.write(None, source.start_pts or 0, np.zeros((height, width, 3), np.uint8))
    except OutputError as exc:
        raise OutputError(f"{Path(output).name} cannot be written: {exc}") from exc
    finally:
        av.logging.set_level(level)


def check_streams(source: str | Path, output: str | Path, drop: bool) -> None:
    """Refuse, before any work, an output whose container cannot hold every stream of ``source``
    (SRT subtitles or font attachments in .mp4, a timecode track in .mkv), unless ``drop``: then
    they are left out, and the report says which."""
    unfit = unfit_streams(source, output)
    if unfit and not drop:
        raise OutputError(f"{Path(output).suffix or 'the output'} files cannot hold {', '.join(unfit)} of {Path(source).name}; "
                          "write a .mkv, or give --drop-streams to leave them out")


def left_out_note(left_out: list[str], output: str | Path) -> list[str]:
    return [f"left out, as {Path(output).suffix} files cannot hold them: {', '.join(left_out)}"] if left_out else []


def remux(video_source: str | Path | Sequence[Path], other_source: str | Path, output: str | Path, comment: str = "",
          starts: Sequence[Fraction | None] = (), tick: Fraction | None = None) -> list[str]:
    """Write ``output`` with the video stream of ``video_source`` and every other stream of
    ``other_source`` (audio, subtitles, data, attachments), packets copied without re-encoding,
    interleaved by decode time; returns the streams left out because the output's container
    cannot hold them (see :func:`check_streams`). The container tags and chapters of
    ``other_source`` are kept, and its video stream's tags and disposition, less those that
    describe its encoding when the video was re-encoded; ``comment`` is appended to the comment tag.

    ``video_source`` may be the encoded segments of one video, in order: their video streams are
    joined as they are copied (:func:`_joined_packets`), with no intermediate file, so the disk
    holds the segments and the output, never a third copy. ``starts``: the presentation time in
    seconds that each part's first frame has in the input (None where unknown); a part whose
    muxer moved its timestamps is moved back (:func:`_start_shift`). ``tick``: the time one frame of
    an image sequence was played for, when it is not FFmpeg's 1/25 s (see ``played_at``), so that
    pictures made from it are numbered as its own were."""
    parts = [Path(video_source)] if isinstance(video_source, (str, Path)) else [Path(p) for p in video_source]
    unfit = unfit_streams(other_source, output)
    renumbered = is_sequence(output) and is_sequence(other_source)
    with open_input(parts[0]) as vin, open_input(other_source) as oin:
        # Pictures made from a sequence are named by their frames' timestamps, so each goes back to
        # its input's number (see vidrestore.io.sequence.number_offset); else FFmpeg counts from 1.
        out = av.open(str(output), "w", options={"frame_pts": "1"} if renumbered else None)
        try:
            out.metadata.update(oin.metadata)
            if comment:  # Matroska reads its tags back in capitals
                earlier = [out.metadata.pop(k) for k in list(out.metadata) if k.lower() == "comment"]
                out.metadata["comment"] = " | ".join([*earlier, comment])
            vstream = vin.streams.video[0]
            try:
                video = copy_of(out, vstream)
            except ValueError as exc:  # only a copy of the input's own video gets here (no face was found)
                raise OutputError(f"{Path(output).suffix} files cannot hold the {codec_name(vstream)} video of "
                                  f"{Path(other_source).name}, which has no face to restore and is copied as it is; "
                                  "write a .mkv") from exc
            if renumbered:  # one tick a frame (QuickTime segments count 512 to a frame), as the frames were played:
                # 1/25 s as FFmpeg reads a sequence, or a DPX scan's own rate, at which 1/25 s ticks would skip numbers
                video.time_base = tick or oin.streams.video[0].time_base
            to_annex_b = _annex_b_filter(vstream, video, out.format.name)
            if to_annex_b is None and _holds_tag(Path(output), vstream):
                # The muxer picks its own tag for a copied stream: iPhone HEVC's hvc1 became hev1,
                # which Apple's players refuse, ProRes 4444's ap4h became HQ's apch, and UT Video
                # 4:2:2 in AVI (ULY2) became RGBA's ULRA, which no decoder could read.
                video.codec_context.codec_tag = vstream.codec_context.codec_tag
            mapping = {("v", vstream.index): video}
            if oin.streams.video:
                original = oin.streams.video[0]
                re_encoded = [p.resolve() for p in parts] != [Path(other_source).resolve()]
                video.metadata.update({k: v for k, v in original.metadata.items() if not (re_encoded and _is_encoding_tag(k))})
                video.disposition = original.disposition
            if any(k.lower() == "alpha_mode" and v == "1" for k, v in vstream.metadata.items()):
                # Matroska's AlphaMode, which browsers need to show VP9's alpha: its muxer writes it
                # for an encoder's yuva420p, but a copy's template says yuv420p (FFmpeg's decoder has no alpha)
                video.metadata["alpha_mode"] = "1"
            # a QuickTime master's timecode tracks, or a DPX scan's first timecode
            timecodes = [track.metadata["timecode"] for track in _timecode_tracks(oin)] or \
                [code for code in [probe(other_source).timecode] if code and fits_rate(code, vstream.average_rate)]
            if timecodes:
                video.metadata.setdefault("timecode", timecodes[0])
            if "timecode" in video.metadata and oin.streams.video:  # on video made at another rate (--double-rate, --decimate)
                # the streams' base rates: an .mp4's average rate counts the last frame's and the audio's durations
                rates = [as_fraction(s.base_rate) or as_fraction(s.average_rate) for s in (oin.streams.video[0], vstream)]
                video.metadata["timecode"] = timecode_at(video.metadata["timecode"], *rates)
            if vstream.average_rate:
                # The output's declared rate (Matroska's default duration, the rate a timecode
                # counts in) comes from the codec's; a copied stream has the codec's tick rate
                # there (1000 for a Matroska input, 12800 for x264 at 25 fps), which Matroska
                # then declared as the frame rate and no timecode accepts.
                video.codec_context.framerate = vstream.average_rate
            carried = [s for s in _carried(oin) if _label(s) not in unfit]
            for s in carried:
                copy = _carry(out, s)
                if copy.type != "attachment":
                    mapping[("o", s.index)] = copy
            if oin.chapters():
                out.set_chapters(oin.chapters())
            packets = _joined_packets(parts, starts)
            if to_annex_b is not None:
                packets = _filtered(packets, to_annex_b)
            vsrc = ((("v", vstream.index), p) for p in packets)
            osrc_streams = [s for s in carried if ("o", s.index) in mapping]
            osrc = ((("o", p.stream.index), p) for p in (oin.demux(osrc_streams) if osrc_streams else []) if p.size)
            if out.format.name in _FRAME_RATE_MUXERS:
                osrc = _from_zero(osrc)
            for key, packet in heapq.merge(vsrc, osrc, key=lambda kp: _packet_time(kp[1])):
                packet.stream = mapping[key]
                out.mux(packet)
            out.close()  # writes the trailer, which can fail too
        except OSError as exc:
            raise OutputError(f"cannot write {output} ({exc.strerror or exc})") from exc
        except av.error.FFmpegError as exc:
            raise OutputError(f"FFmpeg's {out.format.name} muxer could not write {Path(output).name} "
                              f"({exc.strerror or exc}); try a .mkv output") from exc
        finally:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                out.close()  # after a failure; closing again is a no-op
    carry_headers(Path(other_source), Path(output), comment)
    return unfit


_ANNEX_B_FILTERS = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}


def _annex_b_filter(stream: av.video.stream.VideoStream, copy: av.video.stream.VideoStream,
                    output_format: str) -> BitStreamFilterContext | None:
    """The filter that rewrites ``stream``'s packets for an AVI ``copy``, or None when none is needed.
    MP4 and Matroska store H.264 and HEVC with length-prefixed NAL units; AVI takes only the Annex B
    byte stream, and FFmpeg's AVI muxer does not convert (the MPEG-TS muxer does). Without it, a
    face-less .mp4 copied to .avi failed inside FFmpeg."""
    name = _ANNEX_B_FILTERS.get(stream.codec_context.name)
    extradata = stream.codec_context.extradata or b""
    if output_format != "avi" or name is None or extradata[:1] != b"\x01":  # 1: avcC/hvcC version, not a start code
        return None
    return BitStreamFilterContext(name, stream, copy)


def _filtered(packets: Iterator[av.Packet], bsf: BitStreamFilterContext) -> Iterator[av.Packet]:
    for packet in packets:
        yield from bsf.filter(packet)
    yield from bsf.filter(None)


def _start_shift(packet: av.Packet, start: Fraction | None) -> int:
    """How many ticks of its time base the first ``packet`` of a part lies after ``start`` (seconds),
    where that part's first frame belongs.

    Containers that cannot store a decode time before 0 (MPEG-TS) delay every timestamp of a
    part whose encoder reorders frames: x264's first frame is decoded two frames before it is shown.
    In a file of video alone, as a part is, that delay is not shared with the audio, which then
    plays a frame or two early. A part's first packet is its first frame (an encoder starts with a
    keyframe that nothing precedes), so the difference is the delay; the final muxer, which sees
    every stream, delays them all together when it must."""
    if start is None or packet.pts is None:
        return 0
    ticks = start / packet.time_base
    nearest = math.floor(abs(ticks) + Fraction(1, 2))  # rounded as FFmpeg rescales: halves away from zero
    # never earlier: AVI puts its first frame at 0 whenever it is shown (an MPEG-TS's at 83 ms), and
    # its later frames at their own times, which moving them back by that would make late
    return max(0, packet.pts - (nearest if ticks >= 0 else -nearest))


def _joined_packets(parts: list[Path], starts: Sequence[Fraction | None] = ()) -> Iterator[av.Packet]:
    """The video packets of ``parts`` (the segments of one video, encoded with the same settings),
    one part after the other; they keep their own timestamps, but for the delay a muxer added
    (``starts``: see :func:`remux` and :func:`_start_shift`).

    Each segment starts with a keyframe and its encoder's decode delay is the same in every part,
    so decode timestamps stay increasing across joins; if they do not, the join is refused rather
    than written with timestamps a player would misread."""
    last_dts = None
    for part, start in itertools.zip_longest(parts, starts[: len(parts)]):
        with open_input(part) as container:
            shift = None
            for packet in container.demux(container.streams.video[0]):
                if not packet.size:
                    continue
                shift = _start_shift(packet, start) if shift is None else shift
                if shift:
                    packet.pts = packet.pts - shift if packet.pts is not None else None
                    packet.dts = packet.dts - shift if packet.dts is not None else None
                if packet.dts is not None and last_dts is not None and packet.dts <= last_dts:
                    raise OutputError(f"cannot join segment {part.name}: its timestamps overlap the previous segment's; "
                                      "restore this video as one segment (--segment-frames 0)")
                last_dts = packet.dts if packet.dts is not None else last_dts
                yield packet
