"""What a container (chosen by FFmpeg from the output's name) stores and holds: its muxer, whether
it keeps rotation, presentation times or a copied stream's codec tag.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
from pathlib import Path

import av

from .languages import language_in
from .probe import open_input
from .sequence import is_sequence

# Containers that store one time per frame, in decode order, and no presentation times: frames an
# encoder reorders (B-frames) would be read back with scrambled timestamps, so it may not reorder.
DECODE_ORDER_ONLY = {"avi", "mxf", "asf"}

# QuickTime and the ISO media family (MP4 and its kin), which name a codec by a four-letter tag.
ISO_MEDIA_MUXERS = {"mov", "mp4", "ipod", "3gp", "3g2", "psp", "ismv", "f4v"}

# AVI counts frames at one rate: given the input's tick (1/12288), FFmpeg wrote a 600 fps stream of
# mostly empty frames. A video at a constant rate is written at that rate (one of varying rate keeps
# its times as FFmpeg can, with empty frames between, in milliseconds where its tick is finer than
# AVI's encoders take). YUV4MPEG states its rate as its time base's: MPEG-TS's made 90000 fps.
FRAME_RATE_MUXERS = {"avi", "yuv4mpegpipe"}
# Muxers that store times in milliseconds, whatever time base a stream asks for
MILLISECOND_MUXERS = {"matroska", "webm", "flv"}


def takes(output: Path, codec: str | None) -> bool:
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
    own segments): such a stream is set up from the codec parameters alone. A data stream that
    FFmpeg has no decoder for (KLV, SCTE-35, GoPro's telemetry) has no codec context at all: it
    is copied from its parameters as they are."""
    if stream.codec_context is None:
        return out.add_stream_from_template(stream)
    try:
        av.Codec(stream.codec_context.name, "w")
    except ValueError:
        return out.add_stream_from_template(stream, opaque=True)
    return out.add_stream_from_template(stream)


def stream_tags(stream: av.stream.Stream, muxer: str = "") -> dict[str, str]:
    """``stream``'s tags as a muxer takes them. FFmpeg reads a QuickTime track's name as "name",
    while every muxer writes a track's name from "title" (QuickTime's name atom, Matroska's Name,
    AVI's strn): copied as read, an MP4's "French" and "Commentary" tracks came out unnamed, and
    into Matroska as a tag that players do not show. Given the ``muxer``, the track's language is
    stated as it can state it (:func:`~vidrestore.io.languages.language_in`), or left out."""
    tags = dict(stream.metadata)
    if "name" in tags and "title" not in tags:
        tags["title"] = tags.pop("name")
    if muxer and "language" in tags:
        language = language_in(tags.pop("language"), muxer)
        tags.update({"language": language} if language else {})
    return tags


# A track's flags that tell a player or a viewer what it is, as the report names them. "default"
# counts only among several tracks of a kind, where it decides which one plays. (MP4's "captions"
# and "descriptions" are its names for hearing and visual impaired, which its demuxer adds to them.)
TRACK_FLAGS = {"default": "default", "dub": "dub", "original": "original language", "comment": "commentary", "lyrics": "lyrics",
               "karaoke": "karaoke", "forced": "forced", "hearing_impaired": "hearing impaired",
               "visual_impaired": "visual impaired", "clean_effects": "clean effects"}


def flags_lost(stream: av.stream.Stream, written: av.stream.Stream, several: bool) -> list[str]:
    """The flags of ``stream`` that its copy ``written`` (read back) lacks, by name; "default"
    only where it has ``several`` streams of its kind."""
    return [name for flag, name in TRACK_FLAGS.items() if (several or flag != "default")
            and stream.disposition & av.stream.Disposition[flag] and not written.disposition & av.stream.Disposition[flag]]


def unstated_languages(streams: list[av.stream.Stream], muxer: str) -> list[str]:
    """The languages of ``streams`` (as "audio stream 1 (fre)") that ``muxer`` has no code for."""
    return [f"{s.type} stream {s.index} ({s.metadata['language']})" for s in streams
            if s.metadata.get("language", "und") != "und" and "language" not in stream_tags(s, muxer)]


def holds_tag(output: Path, stream: av.video.stream.VideoStream) -> bool:
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


def muxer_of(output: Path) -> str | None:
    """The name of the muxer FFmpeg writes a file named like ``output`` with (None: it knows none)."""
    scratch = io.BytesIO()
    scratch.name = output.name
    with contextlib.suppress(av.error.FFmpegError, ValueError), av.open(scratch, "w") as out:
        return out.format.name
    return None


def stores_rotation(output: str | Path) -> bool:
    """Whether a file named like ``output`` stores a display rotation (QuickTime/MP4's matrix,
    Matroska's projection); AVI, MPEG-TS, FLV, ASF, MXF and NUT do not."""
    return muxer_of(Path(output)) in ISO_MEDIA_MUXERS | {"matroska", "webm"}


# Files that state a frame rate and no frame's time: YUV4MPEG and raw elementary streams. Video
# whose frames come at varying times would play at one rate there, out of step with its sound.
TIMELESS_MUXERS = {"yuv4mpegpipe", "h264", "hevc", "mpeg1video", "mpeg2video", "rawvideo"}


# Options of the muxer a file is written with, by its name. YUV4MPEG's muxer calls every format
# deeper than 8 bits or other than 4:2:0 unofficial and refuses it unless told; every tool that
# reads .y4m (x264, x265, aomenc, FFmpeg) takes them, and a 10-bit 4:2:2 master had no way in.
# Matroska's muxer draws random segment and track IDs for every file, so two runs of one command
# wrote files that differed there alone (their packets the same); made bit-exact, it numbers the
# tracks and leaves the optional segment ID out (and writes "Lavf" without its version).
_BIT_EXACT = {"fflags": "+bitexact"}
_MUXER_OPTIONS = {"yuv4mpegpipe": {"strict": "-1"}, "matroska": _BIT_EXACT, "webm": _BIT_EXACT}


def muxer_options(output: str | Path, source: str | Path | None = None) -> dict[str, str]:
    """The options the muxer of ``output`` is opened with; for an animation (GIF, APNG) from
    ``source``, one, as many times as ``source`` says it is played."""
    muxer = muxer_of(Path(output)) or ""
    plays = times_played(source) if source is not None and muxer in ("gif", "apng") else None
    if plays is None:
        return dict(_MUXER_OPTIONS.get(muxer, {}))
    if muxer == "apng":
        return {"plays": str(plays)}
    return {"loop": str(-1 if plays == 1 else max(plays - 1, 0))}  # GIF counts the plays after the first


_GIF_LOOP = re.compile(rb"\x21\xff\x0bNETSCAPE2\.0\x03\x01(..)", re.DOTALL)


def times_played(source: str | Path) -> int | None:
    """How many times the animation ``source`` says it is played (0: for ever); None for a file
    that is no GIF or APNG. FFmpeg's muxers loop a GIF for ever and play an APNG once: a sticker
    that looped came back still after one play, and a GIF that played once came back looping."""
    with contextlib.suppress(OSError), open(source, "rb") as file:
        head = file.read(1 << 16)
        if head.startswith((b"GIF87a", b"GIF89a")):
            loop = _GIF_LOOP.search(head)  # Netscape's extension: the plays after the first (0: for ever)
            repeats = None if loop is None else int.from_bytes(loop[1], "little")
            return 1 if repeats is None else 0 if repeats == 0 else repeats + 1
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return _apng_plays(head)
    return None


def _apng_plays(head: bytes) -> int | None:
    """An APNG's animation control chunk's plays; None for a still PNG (it has none)."""
    at = 8
    while at + 8 <= len(head):
        size, kind = struct.unpack(">I4s", head[at:at + 8])
        if kind == b"acTL":
            return struct.unpack(">I", head[at + 12:at + 16])[0]
        if kind == b"IDAT":
            return None
        at += 12 + size
    return None


def holds_copy(source: str | Path, output: str | Path) -> bool:
    """Whether a file named like ``output`` can hold ``source``'s video stream copied as it is (an
    .mp4 cannot hold a GIF's, nor a .webm H.264). The header is written: QuickTime refuses VP9
    only there, so a faceless VP9 video, to be copied into a .mov, failed after the work."""
    scratch = io.BytesIO()
    scratch.name = Path(output).name  # FFmpeg picks the container by the name
    with open_input(source) as container:
        try:
            with av.open(scratch, "w") as out:
                copy_of(out, container.streams.video[0])
                out.start_encoding()
        except (av.error.FFmpegError, ValueError):
            return False
    return True


def copies_into(output: str | Path, codec: str) -> bool:
    """Whether video of ``codec`` copied into a file named like ``output`` can be read back: a
    program stream's H.264 could not (FFmpeg found no video in it)."""
    return muxer_of(Path(output)) not in PROGRAM_STREAM_MUXERS or codec in ("mpeg1video", "mpeg2video")


def is_picture_name(output: Path) -> bool:
    """Whether FFmpeg writes a file named like ``output`` as pictures, with its image2 muxer (.exr, .tga, .jp2 ...)."""
    return muxer_of(output) == "image2"


# Program streams take MPEG-1/2 alone here: H.264 in one came back with unstamped frames, and
# FFmpeg's own demuxer could not find it in a small file.
PROGRAM_STREAM_MUXERS = {"mpeg", "vob", "svcd", "dvd", "vcd"}
