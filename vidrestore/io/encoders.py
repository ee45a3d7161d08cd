"""The encoder and its settings for an output: which encoder a container takes (delivery, master,
house formats), the pixel format and colour description it writes, and its codec options.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import OutputError, UsageError
from .containers import FRAME_RATE_MUXERS, copies_into, is_picture_name, muxer_of, takes
from .linear import LIGHT_WORDS, LINEAR_FORMATS, float_format, is_linear
from .photo import writes_grey_jpeg
from .probe import ColorInfo, VideoInfo
from .reader import bit_depth
from .sequence import IMAGE_ENCODERS, is_sequence, unsupported_type

ARCHIVAL_CODECS = {"ffv1": ".mkv", "prores_ks": ".mov"}

# Clips made for tests and training, coded alike on any x86 CPU: without macroblock-tree rate control
# x264 runs none of its AVX-512 code that varies (see x264_instruction_sets), nor the CPU's float
# rounding of the tree (x264's plain C and its AVX2 code gave other bits).
REPRODUCIBLE_X264 = {"x264-params": "no-mbtree=1"}


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "auto"  # "auto": libx264, or what the output's container holds (see check_encoder)
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "auto"  # "auto": the input's pixel format when the encoder takes it, else its first


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
PALETTE_ENCODERS = {"gif"}
# Encoders whose pictures keep the input's ICC profile: PNG's and JPEG's write it from the frame
# (an iCCP chunk, APP2 segments); a TIFF or WebP gets it from io.photo
ICC_ENCODERS = {"png", "mjpeg", "tiff", "libwebp"}


def _pick_pix_fmt(codec: av.Codec, requested: str, source: str, width: int, height: int) -> str:
    supported = _formats(codec.name)
    if requested == "auto" and codec.name in PALETTE_ENCODERS:
        return "pal8"
    if requested == "auto" and codec.name in _RGB_PICTURE_ENCODERS:
        if is_linear(source) and float_format(source) in supported:
            return float_format(source)  # half samples widen exactly; the encoder writes them as half (codec_options)
        # a 10-bit DPX scan stays 10-bit DPX, a grey photo grey; a grey one with alpha becomes RGBA,
        # as swscale writes ya8's alpha a level high from 128 up
        if (av.VideoFormat(source).is_rgb or source.startswith(("gray", "monob"))) and source in supported:
            return source
        deep, alpha = av.VideoFormat(source).components[0].bits > 8, has_alpha(source)
        wide = ((["rgba64be", "rgba64le"] if alpha else []) + ["rgb48be", "rgb48le"]) if deep else []
        requested = next((f for f in [*wide, *(["rgba"] if alpha else []), "rgb24"] if f in supported), "auto")
    if requested == "auto" and not _subsampling_fits(source, width, height):
        requested = "yuv444p"  # odd sizes cannot be chroma-subsampled; keep the exact frame size instead
    if requested != "auto":
        if supported and requested not in supported:
            raise OutputError(f"encoder {codec.name} does not take pixel format {requested}; it takes {', '.join(supported)}")
        return _jfif_format(codec, requested, supported)  # --pix-fmt yuv444p asks for 4:4:4, which JPEG codes full range
    if not supported or source in supported:
        return _jfif_format(codec, source, supported)
    repacked = [f for f in supported if _repacks(source, f)]
    if repacked:  # the same samples in the encoder's layout: a capture's packed 4:2:2 (UYVY) as planar 4:2:2
        return _jfif_format(codec, repacked[0], supported)
    if "yuv420p" in supported and not (has_alpha(source) and any(has_alpha(f) for f in supported)):
        return _jfif_format(codec, "yuv420p", supported)
    return _closest_format(source, supported)  # an alpha channel kept where the encoder takes one (WebP's)


def _jfif_format(codec: av.Codec, pix_fmt: str, supported: list[str]) -> str:
    """JPEG's full-range twin of a limited-range YUV ``pix_fmt`` (yuvj420p for yuv420p): FFmpeg's
    MJPEG encoder refused limited-range video (an H.264 clip into an MJPEG .avi, or into a JPEG
    sequence with --pix-fmt yuv444p)."""
    full = "yuvj" + pix_fmt[3:]
    return full if codec.name in _JFIF_ENCODERS and pix_fmt.startswith("yuv") and full in supported else pix_fmt


def output_pix_fmt(codec: av.Codec, options: EncodeOptions, source: VideoInfo) -> str:
    """The pixel format ``codec`` writes ``source`` in (:func:`_pick_pix_fmt`). Video that was not
    delivery video (a master, a camera's MJPEG, a DPX scan, broadcast's 4:2:2 MPEG-2) written by a
    delivery encoder is 4:2:0 at its depth unless --pix-fmt says otherwise: a ProRes 4:2:2 reel came
    out as 4:2:2 HEVC and a camera's MJPEG as 4:2:2 H.264, which almost no phone, TV or browser
    decodes. Alpha is kept where the encoder takes it (VP9 in .webm, as renders for the web are)."""
    pix_fmt = source.pix_fmt
    if codec.name == "libwebp" and options.crf == 0 and options.pix_fmt == "auto":
        return "bgra"  # lossless WebP codes RGB(A): its 4:2:0 input would lose the chroma it keeps
    if codec.name in _DELIVERY_ENCODERS and source.codec not in _DELIVERY_CODECS:
        pix_fmt = _delivery_format(codec.name, source.pix_fmt)
    return _pick_pix_fmt(codec, options.pix_fmt, pix_fmt, source.width, source.height)


_DELIVERY_ENCODERS = {"libx264", "libx265", "libvpx-vp9", "libsvtav1", "libaom-av1"}

_DELIVERY_CODECS = {"h264", "hevc", "vp9", "av1"}


def has_alpha(pix_fmt: str) -> bool:
    """Whether ``pix_fmt`` stores an alpha (transparency) channel."""
    return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)


@functools.cache
def _formats(encoder: str) -> list[str]:
    """The pixel formats ``encoder`` takes: those it lists, less the alpha formats a delivery encoder
    lists but does not open (x265 lists yuva420p, and one built without alpha layers, as this
    one is, refused it: a ProRes 4444 master with alpha failed to write as HEVC)."""
    listed = [f.name for f in (av.Codec(encoder, "w").video_formats or [])]
    return [f for f in listed if encoder not in _DELIVERY_ENCODERS or not has_alpha(f) or _opens(encoder, f)]


def _opens(encoder: str, pix_fmt: str) -> bool:
    context = av.CodecContext.create(encoder, "w")
    context.width, context.height, context.pix_fmt, context.time_base = 64, 64, pix_fmt, Fraction(1, 25)
    context.options = {"x265-params": "log-level=none"} if encoder == "libx265" else {}
    try:
        context.open()
    except av.error.FFmpegError:
        return False
    return True


def _delivery_format(encoder: str, pix_fmt: str) -> str:
    if has_alpha(pix_fmt) and "yuva420p" in _formats(encoder):
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


def _described(name: str) -> tuple[bool, int, int]:
    """A pixel format's alpha, chroma samples (of a 16x16 picture) and bit depth."""
    fmt = av.VideoFormat(name, 16, 16)
    chroma = sum(c.width * c.height for c in fmt.components if not c.is_luma and not c.is_alpha)
    return has_alpha(name), chroma, max(c.bits for c in fmt.components)


def _loss(source: str, name: str) -> tuple[bool, int, int, int]:
    """What writing ``source`` in ``name`` loses (its alpha, chroma samples, bits), and how far their depths differ."""
    (alpha, chroma, bits), (kept_alpha, kept_chroma, kept_bits) = _described(source), _described(name)
    return alpha and not kept_alpha, max(0, chroma - kept_chroma), max(0, bits - kept_bits), abs(bits - kept_bits)


def _repacks(source: str, name: str) -> bool:
    """Whether ``name`` holds ``source``'s samples as they are, laid out otherwise (packed UYVY as
    planar 4:2:2, NV12 as planar 4:2:0, BGR as planar GBR): the same components, each of the same
    size and depth, in the same colour model."""
    def samples(fmt: str) -> tuple:
        picture = av.VideoFormat(fmt, 16, 16)
        return picture.is_rgb, tuple((c.width, c.height, c.bits, c.is_alpha) for c in picture.components)
    return samples(name) == samples(source)


def _closest_format(source: str, candidates: list[str]) -> str:
    """The one of ``candidates`` that keeps most of ``source``: its alpha, then its chroma resolution,
    then its bit depth (a 12-bit ProRes 4444 with alpha goes to ProRes's 10-bit 4444 with alpha, not
    to its first format, 4:2:2 without)."""
    return min(candidates, key=lambda name: _loss(source, name))


# Encoders for a container that cannot hold the one asked for (or for "auto"), best first.
_VIDEO_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "ffv1", "prores_ks", "mpeg4", "mpeg2video", "dvvideo")

# FFmpeg's MPEG-1/2/4 and JPEG encoders aim at 200 kbit/s unless given a quantiser: a 480x360 face
# clip came out at 32 dB through MPEG-4 against 39-41 dB at quantisers 2-3.
# MPEG-1/2 code one of a few frame rates, not a time base: they refuse a container's (1/12288, 1/1200000)
FRAME_RATE_ENCODERS = {"mpeg1video", "mpeg2video"}

_FIELD_ENCODERS = {"mpeg2video", "mpeg4"}  # of these, the ones that code interlaced frames as two fields


_QUANTISER_ENCODERS = {"mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "msmpeg4", "msmpeg4v2", "h263p", "flv", "wmv1", "wmv2"}

MPEG_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(50),
              Fraction(60000, 1001), Fraction(60))


# The rate MPEG-1/2 code video whose frame rate varies at: fine enough that no two frames of a
# phone's video (up to 60 a second) fall on one tick, its 1/60 s. At its average rate, frames
# 40 ms apart did, and the encoder refused them after the work.
VARYING_GRID = Fraction(60)


def mpeg_rate(rate: Fraction) -> Fraction:
    """The rate MPEG-1/2 code ``rate`` at: the nearest of theirs where it is within 1% of one (an
    .mp4 whose stream duration counts a long last frame stated 29.77 fps for 29.97, which the
    encoder refused), else ``rate`` itself."""
    nearest = min(MPEG_RATES, key=lambda r: abs(r - rate))
    return nearest if abs(nearest - rate) <= nearest / 100 else rate


def one_rate_only(output: str | Path, options: EncodeOptions, source: VideoInfo) -> str:
    """Why video whose frame rate varies cannot be written to ``output`` with ``options`` ("": it
    can): AVI counts frames at one rate, and MPEG-1/2 code one of a few rates."""
    if muxer_of(Path(output)) in FRAME_RATE_MUXERS:
        return f"{Path(output).suffix} files count frames at one rate"
    codec = check_encoder(options, output, source).name
    return f"{codec} codes frames at one of a few rates" if codec in FRAME_RATE_ENCODERS else ""


# Containers whose users' tools expect another codec than H.264: MXF is broadcast's, read by
# playout servers and editors as MPEG-2 (XDCAM, IMX), FFmpeg's own default for it. In ASF (.wmv),
# H.264 came back a frame late with its last timestamp doubled; Windows Media Video 8 is exact.
# MPEG program streams (.mpg, .vob) are DVD's, whose players decode MPEG-2 and no H.264. AVI's
# own is MPEG-4 Part 2 (Xvid, DivX): FFmpeg reads H.264 from AVI a frame late, whatever wrote it.
_HOUSE_ENCODERS = {".mxf": "mpeg2video", ".wmv": "wmv2", ".asf": "wmv2", ".mpg": "mpeg2video", ".mpeg": "mpeg2video",
                   ".vob": "mpeg2video", ".dvd": "mpeg2video", ".avi": "mpeg4", ".gif": "gif", ".apng": "apng",
                   ".y4m": "rawvideo"}

# Intra-frame codecs editors and archives keep footage in, and the encoder that writes each: a
# restored master stays a master (a ProRes HQ reel came back as delivery H.264; a PNG QuickTime
# render with alpha, as H.264 without its alpha). A lossless one whose own codec the output's
# container cannot hold becomes FFV1, lossless too; so does uncompressed video, at a third of its size.
# JPEG 2000, the film archives' master (in MXF), is written losslessly (:func:`_quality_options`):
# an archive's JPEG 2000 in MXF came back as MPEG-2, MXF's house codec, without a word.
_MASTER_ENCODERS = {"prores": "prores_ks", "dnxhd": "dnxhd", "cfhd": "cfhd", "ffv1": "ffv1", "huffyuv": "huffyuv",
                    "ffvhuff": "ffvhuff", "utvideo": "utvideo", "magicyuv": "magicyuv", "v210": "v210", "r210": "r210",
                    "qtrle": "qtrle", "png": "png", "tiff": "tiff", "rawvideo": "ffv1", "jpeg2000": "jpeg2000"}

# The master encoders each container is written with, as FFmpeg writes them and reads them back.
# FFmpeg also writes FFV1 into an .mp4 and ProRes into MPEG-TS, which players (FFmpeg's own
# demuxer, for the second) do not read, and its MXF muxer takes UT Video until it writes the header.
_MASTER_MUXERS = {"mov": {"prores_ks", "dnxhd", "cfhd", "qtrle", "v210", "r210", "magicyuv", "png", "tiff", "jpeg2000", "rawvideo"},
                  "matroska": {"prores_ks", "ffv1", "jpeg2000"},
                  "avi": {"ffv1", "huffyuv", "ffvhuff", "utvideo", "magicyuv", "v210", "r210", "cfhd", "png", "jpeg2000"},
                  "mxf": {"prores_ks", "dnxhd", "ffv1", "jpeg2000"}}

_LOSSLESS = {"ffv1", "huffyuv", "ffvhuff", "utvideo", "magicyuv", "v210", "r210", "qtrle", "png", "tiff", "rawvideo"}

# The uncompressed layouts QuickTime stores and FFmpeg reads back as written ('2vuy', the 8-bit
# 4:2:2 of Blackmagic's and AJA's captures, among them); others it takes are read back as another
# format (planar 4:2:2 as RGB555). A capture in one stays uncompressed in a .mov, which holds no
# FFV1: it came back as H.264 4:2:0.
_QUICKTIME_RAW = {"uyvy422", "yuyv422", "rgb24", "bgr24", "argb", "bgra", "rgb48be", "gray16be"}


def _is_master(source: VideoInfo) -> bool:
    """Whether ``source`` is video in a master codec (:data:`_MASTER_ENCODERS`): pictures in PNG
    or TIFF files, a still or a sequence, are not, whatever video they are written into."""
    return source.codec in _MASTER_ENCODERS and not is_picture_name(source.path) and not is_sequence(source.path)


def _master_encoder(output: Path, source: VideoInfo) -> str | None:
    """The encoder that keeps ``source``, a master, one in ``output``'s container (None: it is no
    master, or the container holds no encoder that would)."""
    if not _is_master(source):
        return None
    muxer = muxer_of(output) or ""
    return next((c for c in _keepers(source) if c in av.codecs_available and c in _MASTER_MUXERS.get(muxer, set())), None)


def _keepers(source: VideoInfo) -> list[str]:
    """The encoders that keep ``source``, a master, as it is, the first choice first: its own, FFV1
    for lossless video, and raw video again for a capture in a layout QuickTime stores (in a .mov)."""
    return [_MASTER_ENCODERS[source.codec], *(["ffv1"] if source.codec in _LOSSLESS else []),
            *(["rawvideo"] if source.codec == "rawvideo" and source.pix_fmt in _QUICKTIME_RAW else [])]


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
    return next((c for c in order if c in av.codecs_available and takes(output, c)), None)


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")  # x265's too


def check_encoder(options: EncodeOptions, output: str | Path | None = None, source: VideoInfo | None = None) -> av.Codec:
    """The encoder of ``options`` for ``output``: the one named, which ``output``'s container must
    hold, or for "auto" the one that fits the container and ``source`` (:func:`_fitting_encoder`:
    x264 for most, x265 for deep sources, a master's own codec for a master, VP9 for .webm, MPEG-2
    for .mxf, WMV for .wmv, PNG or JPEG for a picture). Checked before any work, so a typo or a
    mismatch fails at once."""
    if output is not None and not takes(Path(output), None):
        still = source is not None and source.estimated_frames == 1
        raise OutputError(f"no container is known by the name {Path(output).name!r}: end it in a "
                          + ("picture type such as .jpg, .png, .tif, .webp or .avif" if still else
                             "video type such as .mp4, .mkv, .mov or .webm")
                          + (" (FFmpeg writes no HEIC; .avif is HEIF's AV1 kind)" if Path(output).suffix.lower() in (".heic", ".heif") else ""))
    if output is not None and is_picture_name(Path(output)) and Path(output).suffix.lower() not in IMAGE_ENCODERS:
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
    if codec.name in ("libx264", "libx265") and options.preset not in X264_PRESETS:  # it failed at the first frame, "try another --codec"
        raise UsageError(f"--x264-preset {options.preset}: {codec.name} takes {', '.join(X264_PRESETS)}")
    if output is None:
        return codec
    fits = _fitting_encoder(Path(output))
    if muxer_of(Path(output)) in ("ogg", "ogv"):
        raise OutputError(f"vidrestore does not write Ogg video ({Path(output).suffix}): FFmpeg has no Theora encoder here, and "
                          "VP8 in Ogg keeps no timestamps; write a .webm (VP9) or a .mkv")
    if not copies_into(output, codec.name):
        raise OutputError(f"{codec.name} video in a {Path(output).suffix} program stream is not read back by FFmpeg itself, nor "
                          f"played by DVD players; leave --codec out for MPEG-2, or write a .ts or .mkv")
    if not takes(Path(output), codec.name) or (Path(output).suffix.lower() in IMAGE_ENCODERS and codec.name != fits):
        others = " or ".join(c for c in (".mkv", ".mov") if c != Path(output).suffix.lower())
        hint = f"give --codec {fits} (or leave --codec out), or write a {others}" if fits else f"write a {others}"
        raise OutputError(f"{codec.name} video cannot be stored in {Path(output).suffix} files; {hint}")
    if source is not None and is_linear(source.pix_fmt) != (codec.name == "exr"):
        picture = is_picture_name(Path(output)) and not is_sequence(output)
        into = f"a {codec.name} picture" if picture else f"{codec.name} {'pictures' if is_sequence(output) else 'video'}"
        raise UsageError(f"float linear light (an OpenEXR plate's, a float TIFF's) cannot go into {into} without clipping its "
                         f"highlights: write {'an OpenEXR picture (name.exr)' if picture else 'OpenEXR pictures (name_%04d.exr)'}"
                         if is_linear(source.pix_fmt) else
                         f"OpenEXR pictures are written from float linear light (OpenEXR plates, float TIFF pictures); this input is "
                         f"{LIGHT_WORDS[source.light]} {source.pix_fmt}: write TIFF, DPX or PNG pictures")
    if source is not None:
        output_pix_fmt(codec, options, source)  # a --pix-fmt the encoder does not take fails here, not after pass 1
    return codec


def master_note(source: VideoInfo, encoder: str, output: str | Path) -> list[str]:
    """A note when ``source`` is a master but ``encoder``, chosen for ``output``'s container
    (an .mp4, a .webm), writes delivery video."""
    if not _is_master(source) or encoder in _MASTER_ENCODERS.values() or encoder in _LOSSLESS:  # .y4m's raw video
        return []
    lossless = source.codec in _LOSSLESS
    kind = f"{source.codec} {source.profile}" if source.profile else source.codec
    keep = "ffv1" if lossless else _MASTER_ENCODERS[source.codec]
    *others, last = [suffix for muxer, suffix in _MASTER_SUFFIXES.items() if keep in _MASTER_MUXERS[muxer]]
    holders = f"{', '.join(others)} or {last}" if others else last
    # a capture QuickTime stores uncompressed stays so in a .mov, which holds no FFV1
    raw = " (or a .mov, which keeps it uncompressed)" if "rawvideo" in _keepers(source) and ".mov" not in holders else ""
    return [(f"the input is {kind} ({'lossless' if lossless else 'a master'}), and the {Path(output).suffix} output "
             f"was encoded with {encoder}, which is lossy: write a {holders} to keep a master (--codec {keep}){raw}")]


_MASTER_SUFFIXES = {"matroska": ".mkv", "mov": ".mov", "mxf": ".mxf", "avi": ".avi"}


def alpha_note(source: VideoInfo, codec: av.Codec, options: EncodeOptions, output: str | Path) -> list[str]:
    """A note when ``source`` has an alpha channel that ``codec`` does not write into ``output``
    (H.264 in an .mp4 stores none): no encoder here writes a frame's alpha without one."""
    if not source.transparent or has_alpha(output_pix_fmt(codec, options, source)):
        return []
    if codec.name in PALETTE_ENCODERS:  # one colour of each palette is transparent (VideoWriter._palettized)
        return [] if source.codec == "gif" else [
            (f"the input's alpha channel (transparency) was kept as {codec.name}'s transparent colour: pixels under half opaque "
             "are clear, the others opaque; write a .mov (--codec png) or a .mkv (--codec ffv1) to keep its levels")]
    return [(f"the input's alpha channel (transparency) was left out: {codec.name} in a {Path(output).suffix} stores none; "
             "write a .mov (--codec png) or a .mkv (--codec ffv1) to keep it")]


def icc_note(source: VideoInfo, codec: av.Codec, output: Path) -> list[str]:
    """A note when ``source`` is a picture with an ICC profile that ``codec`` does not write."""
    if not source.icc_profile or codec.name in ICC_ENCODERS:
        return []
    return [(f"the input's ICC colour profile is not written into the {Path(output).suffix} output ({codec.name} writes none): "
             "viewers take its colours for sRGB, which a wide-gamut photo's (Display P3, Adobe RGB) are not; "
             "write a .png or .jpg to keep the profile")]


def dolby_vision_note(source: VideoInfo) -> list[str]:
    """A note when ``source`` is Dolby Vision: re-encoded, its video keeps the base layer's picture
    and loses the dynamic metadata (RPU), which vidrestore does not carry (a copied stream keeps its RPU units)."""
    if not source.dolby_vision:
        return []
    return [("the input is Dolby Vision: its dynamic metadata (RPU) is not carried into the re-encoded video, which players "
             "show as its base layer (HDR10, HLG or SDR, by the input's profile)")]


_CRF_TOP = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libvpx": 63, "libsvtav1": 63, "libwebp": 180}  # the largest --crf each takes


@functools.cache
def writes_captions(encoder: str) -> bool:
    """Whether ``encoder`` writes the closed captions its frames carry (A/53 cc_data) into the
    video: those with an ``a53cc`` switch (x264, x265, MPEG-2, NVENC), which :func:`codec_options`
    turns on (x265's is off by default: its output lost them). For the others, remux lifts them
    into a track of their own (:mod:`.captions`)."""
    try:
        return any(option.name == "a53cc" for option in av.CodecContext.create(encoder, "w").supported_options.private)
    except (av.error.FFmpegError, ValueError):
        return False


def codec_options(name: str, pix_fmt: str, info: VideoInfo, options: EncodeOptions) -> dict[str, str]:
    """The encoder's settings: :func:`_quality_options`, and closed captions written where the
    encoder can (:func:`writes_captions`)."""
    return {**_quality_options(name, pix_fmt, info, options), **({"a53cc": "1"} if writes_captions(name) else {})}


# The CPU features x264 runs its AVX-512 code on, all of them (X264_CPU_AVX512 in its cpu.c)
X264_AVX512_FLAGS = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})


@functools.cache
def x264_instruction_sets() -> str:
    """The instruction sets x264 is told to use ("": those it finds itself). On a CPU with
    AVX-512, its AVX2 ones: with its AVX-512 code x264 coded the same frames with other bits from
    run to run (a 720x576 clip 4 ways in 6 runs: the same command wrote another file each time, and
    the segments a stopped run kept did not match what a run in one piece writes). Without
    AVX-512, or without macroblock-tree rate control or adaptive quantisation, it gave the same
    bits every time; the AVX2 code costs about 6% more of x264's time (docs/benchmarks.md).
    The CPU's features are read as Linux lists them, else (another system) as torch dispatches on
    them: importing torch for them made every check of an x264 output wait some 1.5 s for it."""
    flags = cpu_flags()
    if flags is not None:
        return "AVX2" if X264_AVX512_FLAGS <= flags else ""
    import torch

    return "AVX2" if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else ""


def cpu_flags(listing: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The first CPU's feature flags in Linux's ``listing`` (None where there is none, or it lists none)."""
    try:
        text = listing.read_text()
    except OSError:
        return None
    line = next((line for line in text.splitlines() if line.split(":")[0].strip() == "flags"), None)
    return frozenset(line.partition(":")[2].split()) if line is not None else None


def _quality_options(name: str, pix_fmt: str, info: VideoInfo, options: EncodeOptions) -> dict[str, str]:
    """Quality settings, and interlaced coding in the input's field order when its fields were
    kept (x264 coded them as progressive frames, flagged progressive; ProRes codes interlaced
    frames with interlaced DCT)."""
    fields = info.parity if info.interlaced else ""
    if name == "libx264":
        params = [f"{fields}=1" if fields else "", f"asm={sets}" if (sets := x264_instruction_sets()) else ""]
        return {"crf": str(options.crf), "preset": options.preset,
                **({"x264-params": ":".join(filter(None, params))} if any(params) else {})}
    if name == "libx265":  # x265 prints its settings banner unless told not to
        return {"crf": str(options.crf), "preset": options.preset, "x265-params": "log-level=error"}
    if name == "ffv1":
        return {"level": "3", "slicecrc": "1"}
    if name == "jpeg2000":  # the reversible 5/3 wavelet: lossless (FFmpeg's default, the 9/7, is not)
        return {"pred": "dwt53"}
    if name == "libvpx-vp9":  # constant quality (libvpx otherwise aims at 256 kbit/s), rows in parallel
        return {"crf": str(options.crf), "b": "0", "row-mt": "1"}
    if name == "libvpx":  # VP8 takes --crf as a quality level only under a bit rate ceiling (with none it ignored it)
        return {"crf": str(options.crf), "b": "100M"}
    if name == "libsvtav1":  # its own presets are numbers, not x264's names: its default one is kept
        return {"crf": str(options.crf)}
    if name == "libwebp":  # WebP's quality, 0-100 (its default, 75, blurred a face's detail): 18 -> 90; 0 is lossless
        return {"lossless": "1"} if options.crf == 0 else {"quality": str(max(0, round(100 - options.crf * 5 / 9)))}
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
    if writes_grey_jpeg(source.pix_fmt, output):
        pix_fmt = "gray"  # coded again from its luma once written
    names = {v: k for k, v in _PRORES_PROFILES.items()} if codec.name.startswith("prores") else {}
    labels = {"crf": "crf", "preset": "preset", "profile": "profile", "qmin": "quantiser", "format": "samples", "compression": "compression",
              "quality": "quality", "lossless": "lossless"}
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
