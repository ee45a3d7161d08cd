"""Read what the pipeline must preserve from a video: size, timing, rotation, colour, other streams."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from ..errors import InputError
from .dpx import says_printing_density
from .exr import chromaticities_of
from .linear import VIDEO_LIGHTS, Light, light_of, video_chromaticities
from .sequence import find_sequence, is_sequence, numbered, open_sequence
from .sidecar import sidecar_light, sony_settings
from .tiff import check_tiff


@dataclass(frozen=True)
class ColorInfo:
    """FFmpeg enum values (AVColorPrimaries etc.); 2 means unspecified."""

    primaries: int = 2
    transfer: int = 2
    matrix: int = 2
    range: int = 0


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    codec: str
    pix_fmt: str
    time_base: Fraction
    average_rate: Fraction | None
    frames: int  # container's count; 0 when the container does not say
    duration_s: float | None
    rotation: int  # display rotation in degrees, counter-clockwise, multiple of 90
    sample_aspect_ratio: Fraction | None
    color: ColorInfo
    other_streams: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("audio:aac", "subtitle:mov_text")
    field_order: str = "progressive"  # progressive | tt | bb | tb | bt | unknown, as the stream declares it
    timestamps: bool = True  # False for a raw elementary stream (.h264, .m2v, .hevc), whose frames come unstamped
    start_pts: int | None = None  # the stream's first timestamp, as the container states it (a frame may not decode there)
    profile: str | None = None  # the codec's profile as FFmpeg names it ("HQ" for ProRes 422 HQ, "DNXHR HQ")
    # every frame one frame of the average rate after the last: known from a full read (None here: not known)
    constant_rate: bool | None = None
    # An image sequence's pictures store no time, but a DPX scan's headers may: the frame rate and
    # the first picture's SMPTE timecode ("01:00:00:00") as FFmpeg's DPX decoder reads them.
    stated_rate: Fraction | None = None
    timecode: str = ""
    # An OpenEXR plate's primaries and white point (x, y of red, green, blue, white), from its
    # chromaticities attribute, or HDR video's, from its primaries tag; () when it has none (Rec. 709
    # / sRGB is then assumed) or for others
    chromaticities: tuple[float, ...] = ()
    # What the samples stand for: display-referred light (video), linear light (an OpenEXR plate, RGB
    # tagged linear), a film scan's printing density (its DPX headers say so; FFmpeg does not), or
    # HDR video's PQ or HLG (its transfer tag)
    light: Light = Light.DISPLAY
    # Dolby Vision: a sample entry that names it (dvh1, dvhe...), or its metadata (RPU) on the first frame
    dolby_vision: bool = False
    # HDR10+: its dynamic metadata (SMPTE ST 2094-40) on the first frame (see io.hdr10plus)
    hdr10_plus: bool = False
    # the first frame carries closed captions (CEA-608/708 as ATSC A/53 cc_data: H.264's or HEVC's
    # SEI, MPEG-2's user data, as broadcast captures and DVDs carry them)
    captions: bool = False
    # A picture (or a sequence's first) with an ICC colour profile: a phone's Display P3 photo
    icc_profile: bool = False
    # A GIF whose first frame is opaque throughout: FFmpeg decodes every GIF with alpha (bgra),
    # whether or not it has a transparent colour
    alpha_unused: bool = False

    @property
    def frame_ticks(self) -> int:
        """One frame at the average rate, in ticks of the time base (1 when the rate is unknown)."""
        return max(1, round(1 / (self.average_rate * self.time_base))) if self.average_rate else 1

    @property
    def interlaced(self) -> bool:
        """The stream declares interlaced fields (archival transfers are often flagged progressive
        although they are not: ``--deinterlace on`` is for those)."""
        return self.field_order in ("tt", "bb", "tb", "bt")

    @property
    def parity(self) -> str:
        """The field shown first, for a stream that declares its fields: tt and bt (bottom coded,
        top shown first) are "tff"; bb and tb are "bff"."""
        return "tff" if self.field_order in ("tt", "bt") else "bff"

    @property
    def estimated_frames(self) -> int:
        """The container's frame count, else duration times average rate (Matroska and MPEG-TS
        state no count), else 0: for progress totals and ETAs, never where a count must be exact."""
        if self.frames:
            return self.frames
        if self.duration_s and self.average_rate:
            return round(self.duration_s * float(self.average_rate))
        return 0

    @property
    def pixel_aspect(self) -> tuple[float, float]:
        """How much to stretch a display-oriented frame's x and y to make its pixels square: (SAR, 1),
        or (1, SAR) when the rotation turns the stored rows into columns. Anamorphic DV and DVD
        store 16:9 pictures in 720 px (SAR 64:45 for PAL): faces in them are squeezed."""
        sar = float(self.sample_aspect_ratio) if self.sample_aspect_ratio and self.sample_aspect_ratio > 0 else 1.0
        return (1.0, sar) if self.rotation % 180 else (sar, 1.0)

    def read_as(self, light: Light) -> VideoInfo:
        """This stream with its samples read as standing for ``light`` (``--light`` overrides its
        tags): HDR video in its tagged primaries (untagged: BT.2020's)."""
        if light is self.light:
            return self
        return dataclasses.replace(self, light=light, chromaticities=video_chromaticities(light, self.color.primaries))

    @property
    def transparent(self) -> bool:
        """The frames carry an alpha (transparency) channel. JPEG stores none: FFmpeg decodes a CMYK
        JPEG as RGB with an opaque alpha plane (gbrap), which was reported as transparency left out;
        so was every GIF (see ``alpha_unused``)."""
        return self.codec != "mjpeg" and not self.alpha_unused and any(c.is_alpha for c in av.VideoFormat(self.pix_fmt).components)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of frames as the pipeline sees them, after rotation."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open ``path`` for reading, turning every FFmpeg failure into a one-line ``InputError``."""
    path = Path(path)
    if is_sequence(path):
        return open_sequence(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if not path.is_file():
        raise InputError(f"input is not a file: {path}")
    try:
        return av.open(str(path), "r")
    except av.error.PermissionError as exc:
        raise InputError(f"cannot read input (permission denied): {path}") from exc
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        if _lacks_its_index(path):
            raise InputError(f"{path} is an MP4 or QuickTime file without its index (its moov box), as a recording "
                             "cut off by a flat battery or a full card is: FFmpeg cannot read its frames without one; "
                             "rebuild it first (untrunc does, from a whole file the same camera made)") from exc
        raise InputError(f"not a media file FFmpeg can read: {path} ({_reason(exc)})") from exc


_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"pnot", b"junk")


def _lacks_its_index(path: Path) -> bool:
    """Whether ``path`` is an ISO media or QuickTime file (its top-level boxes walked from the start)
    with its media data and no movie box, which holds where each frame is."""
    seen = set()
    size = path.stat().st_size
    with open(path, "rb") as file:
        at = 0
        while at + 8 <= size:
            file.seek(at)
            length, kind = int.from_bytes(file.read(4), "big"), file.read(4)
            if kind not in _ISO_BOXES:
                return False
            seen.add(kind)
            if length == 1:  # a 64-bit length follows
                length = int.from_bytes(file.read(8), "big")
            if length < 8:  # 0: to the end of the file
                break
            at += length
    return b"mdat" in seen and b"moov" not in seen


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or exc.__class__.__name__


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> av.VideoFrame | None:
    """The first decoded frame: display rotation comes on it as side data (FFmpeg >= 6 dropped the
    'rotate' tag), and it says whether the stream stamps its frames."""
    try:
        return next(container.decode(stream), None)
    except av.error.FFmpegError:
        return None


def _opaque(frame: av.VideoFrame) -> bool:
    """Whether every pixel of ``frame`` is opaque (a format without alpha: all are)."""
    if not any(c.is_alpha for c in frame.format.components):
        return True
    return bool((frame.reformat(format="rgba").to_ndarray()[..., 3] == 255).all())


FIELD_ORDERS = {1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}  # FFmpeg's AVFieldOrder


def codec_name(stream: av.stream.Stream) -> str:
    """The name of the codec ``stream`` is coded in ("av1"), not of the decoder FFmpeg picked for it
    ("libdav1d"), which every table here is keyed by; "?" for a stream with none (a data stream)."""
    return stream.codec_context.codec.canonical_name if stream.codec_context else "?"


DOLBY_VISION_TAGS = frozenset({"dvh1", "dvhe", "dva1", "dvav", "dav1"})  # ISO sample entries of Dolby Vision streams
DOLBY_VISION_SIDE_DATA = frozenset({"DOVI_RPU_BUFFER", "DOVI_METADATA"})


def as_fraction(rational: object) -> Fraction | None:
    """A rate, time base or aspect ratio read from PyAV, as a ``Fraction``; None for none or zero.
    PyAV 19 gives its own ``AVRational``, which lacks ``%``, and 0/1 where PyAV 18 gave None."""
    return Fraction(rational.numerator, rational.denominator) if rational else None


# Decoders whose side data carries a dictionary of its own: PNG names its ICC profile. PyAV's
# wrapper of an entry takes that dictionary for its own and frees it, and the frame frees it again:
# a PNG photo with an ICC profile crashed the process (a segmentation fault) once its first frame,
# read for its side data, was freed. Their frames' side data is not read (none of it is needed
# from them: PNG's encoder writes the profile back from the frame itself).
_SIDE_DATA_WITH_METADATA = frozenset({"png", "apng"})


def side_data(frame: av.VideoFrame, codec: str) -> list:
    """The side data of ``frame``, decoded from ``codec``, that PyAV can name and read safely (see
    :data:`_SIDE_DATA_WITH_METADATA`). PyAV 18 reads all of it at once and fails on a kind newer
    than itself (FFmpeg 8 attaches a JPEG's EXIF block as kind 31): a photo crashed the writer.
    Such a frame is read as having none; the encoder still gets all of it. Iterating the container
    gives the side data itself in PyAV 18 and its kinds in PyAV 19 (every video failed to open
    there), so both are taken."""
    if codec in _SIDE_DATA_WITH_METADATA:
        return []
    try:
        container = frame.side_data
        return [item if hasattr(item, "type") else container[item] for item in container]
    except ValueError:
        return []


def side_data_kinds(frame: av.VideoFrame, codec: str) -> list[str]:
    """The names of the kinds of :func:`side_data` ``frame`` carries ("MASTERING_DISPLAY_METADATA"...)."""
    return [str(sd.type).rsplit(".", 1)[-1] for sd in side_data(frame, codec)]


def coded_frames(path: str | Path) -> int:
    """How many frames the first video stream codes, counted from its packets (no decoding): exact
    where :attr:`VideoInfo.estimated_frames` guesses, as in a Matroska file of varying frame rate."""
    with open_input(path) as container:
        return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)


def probe(path: str | Path) -> VideoInfo:
    """Describe the first video stream of ``path``; raises ``InputError`` when there is none.

    A run asks again and again (each pass, each reader, the report); the answer is kept while the
    file's inode, size and modification time stay the same (opening the container costs ~5 ms), and
    those of the camera's settings file beside it, which may say its light (:mod:`.sidecar`)."""
    try:
        stat = os.stat(path)
        settings = sony_settings(Path(path))
        said = os.stat(settings).st_mtime_ns if settings is not None else 0
    except OSError:
        return _probe(path)  # open_input names the problem
    return _probe_file(str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, said)


@functools.lru_cache(maxsize=64)
def _probe_file(path: str, *identity: int) -> VideoInfo:
    return _probe(path)


def frame_rate_of(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's average frame rate; but where the demuxer states its tick rate for it (FFmpeg's
    DV demuxer: 60000 fps, on a clock of 1/60000 s, for NTSC's 29.97), or none (its MXF demuxer,
    for JPEG 2000), the rate its frames' durations give. Taken at 60000 fps, an NTSC DV capture's
    timecode made QuickTime's muxer fail ("fps 60000 is too large"), and its telecine could not be
    recognised; with none, an MXF output of JPEG 2000 could not be written."""
    stated, guessed = as_fraction(stream.average_rate), as_fraction(stream.guessed_rate)
    tick = as_fraction(stream.time_base)
    if stated and tick and guessed and stated == 1 / tick and guessed < stated:
        return guessed
    return stated or guessed


def _picture_header(picture: Path) -> bool:
    """Whether the picture file ``picture`` embeds an ICC profile, read from its header by Pillow
    (PyAV cannot read a PNG's profile safely, see :data:`_SIDE_DATA_WITH_METADATA`)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(picture) as image:
            return bool(image.info.get("icc_profile"))
    except (OSError, UnidentifiedImageError, ValueError):
        return False  # FFmpeg's reading of it says what is wrong


def _animated_webp(picture: Path) -> bool:
    """Whether ``picture`` is an animated WebP: an extended (VP8X) header with its animation flag."""
    try:
        with picture.open("rb") as file:
            head = file.read(21)
    except OSError:
        return False
    return len(head) == 21 and head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and bool(head[20] & 0x02)


def is_cover(stream: av.stream.Stream) -> bool:
    """Cover art: a one-picture video stream (an MP4 covr atom; a Matroska image attachment, which FFmpeg reads as one)."""
    return stream.type == "video" and bool(stream.disposition & av.stream.Disposition.attached_pic)


def _probe(path: str | Path) -> VideoInfo:
    with open_input(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise InputError(f"no video stream in {path} (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        if is_cover(stream):  # an MP3 with its album cover: restored as one frame, its mux failed after the work
            if not any(not is_cover(s) for s in container.streams.video):
                kinds = sorted({s.type for s in container.streams if not is_cover(s)}) or ["none"]
                raise InputError(f"no video stream in {path}: its one picture is cover art (streams: {', '.join(kinds)}); "
                                 "to restore the picture, save it as a file of its own and give that")
            raise InputError(f"the first video stream of {path} is cover art, and vidrestore restores the first video stream; "
                             "remux the file with its video first")
        cc = stream.codec_context
        picture = numbered(Path(path), find_sequence(path).first) if is_sequence(path) else Path(path)  # its header
        pictures = container.format.name == "image2" or container.format.name.endswith("_pipe")
        icc_profile = pictures and _picture_header(picture)
        if codec_name(stream) == "tiff":
            check_tiff(picture)
        if cc.width <= 0 or cc.height <= 0:
            if _animated_webp(picture):  # it was called truncated or corrupt
                raise InputError(f"cannot read {picture.name}: it is an animated WebP, whose frames the FFmpeg in PyAV does not "
                                 "decode; convert it to a video or an image sequence first")
            raise InputError(f"video stream of {path} has no frame size; the file is truncated or corrupt")
        others = tuple(f"{s.type}:{codec_name(s)}"
                       for s in container.streams if s.index != stream.index)
        duration = float(stream.duration * stream.time_base) if stream.duration else (
            container.duration / 1e6 if container.duration else None)
        info = {
            "path": Path(path), "width": cc.width, "height": cc.height, "codec": codec_name(stream),
            "pix_fmt": cc.pix_fmt or "yuv420p", "time_base": as_fraction(stream.time_base), "average_rate": frame_rate_of(stream),
            "frames": find_sequence(path).count if is_sequence(path) else stream.frames or 0, "duration_s": duration, "sample_aspect_ratio": as_fraction(cc.sample_aspect_ratio),
            "color": ColorInfo(cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range),
            "other_streams": others, "field_order": FIELD_ORDERS.get(cc.field_order, "unknown"),
            "start_pts": stream.start_time, "profile": cc.profile,
        }
        first = _first_frame(container, stream)
        info["rotation"] = round(first.rotation) % 360 if first is not None else 0
        info["timestamps"] = first is None or first.pts is not None
        kinds = side_data_kinds(first, info["codec"]) if first is not None else []
        info["dolby_vision"] = cc.codec_tag in DOLBY_VISION_TAGS or any(kind in DOLBY_VISION_SIDE_DATA for kind in kinds)
        info["hdr10_plus"] = "DYNAMIC_HDR_PLUS" in kinds
        info["captions"] = "A53_CC" in kinds
        info["alpha_unused"] = info["codec"] == "gif" and first is not None and _opaque(first)
        if is_sequence(path):
            info["stated_rate"] = as_fraction(cc.framerate)
            info["timecode"] = first.metadata.get("timecode", "") if first is not None else ""
        if picture.suffix.lower() == ".exr":
            info["chromaticities"] = chromaticities_of(picture)
        info["icc_profile"] = icc_profile
        info["light"] = light_of(info["pix_fmt"], cc.color_trc, picture.suffix.lower() == ".dpx" and says_printing_density(picture))
        if info["light"] is Light.DISPLAY and not pictures:  # a camera's log, which its tags do not say
            info["light"] = sidecar_light(picture) or Light.DISPLAY
        if info["light"] in VIDEO_LIGHTS:
            info["chromaticities"] = video_chromaticities(info["light"], cc.color_primaries)
        if not info["timestamps"]:  # a raw stream's demuxer assumes 25 fps; the encoder wrote the true rate into the stream (H.264 VUI)
            info["average_rate"] = as_fraction(cc.framerate) or frame_rate_of(stream)
    return VideoInfo(**info)
