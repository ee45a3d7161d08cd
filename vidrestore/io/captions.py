"""Closed captions carried in a video's frames, lifted into a track of their own.

Broadcast video carries CEA-608 captions in its frames (ATSC A/53 cc_data in H.264's and HEVC's
SEI and in MPEG-2's user data), which FFmpeg's decoders attach to each frame and x264, x265 and
MPEG-2 write back (:func:`~vidrestore.io.encoders.writes_captions`). ProRes, FFV1, VP9 and AV1
write none: for them the captions are read from the input's frames and written beside the video,
as a c608 track where the container holds one (.mov), else as text, converted as a c608 track
of an input is (:data:`~vidrestore.io.reencode.CAPTIONS`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from .probe import as_fraction, open_input, probe, side_data

# An SCC file of one padding pair: FFmpeg's SCC demuxer gives its stream as CEA-608 (eia_608),
# which FFmpeg has no encoder for, so a lifted track is set up from it and decoded with its decoder.
_EMPTY_SCC = b"Scenarist_SCC V1.0\n\n00:00:00:00\t8080 8080\n"

_PADDING = (0x80, 0x80)  # a pair that says nothing (both bytes 0 with odd parity)


@contextlib.contextmanager
def caption_stream() -> Iterator[av.stream.Stream]:
    """A CEA-608 stream, open for as long as the context lasts: what a lifted track is made from."""
    with av.open(io.BytesIO(_EMPTY_SCC), format="scc") as container:
        yield container.streams[0]


def lifted(source: str | Path, video: str | Path) -> bool:
    """Whether the frames of ``source`` carry closed captions (its first frame, as
    :attr:`~vidrestore.io.VideoInfo.captions` says) and ``video``, encoded from them, does not."""
    return probe(source).captions and not probe(video).captions


def frame_captions(source: str | Path, captions: av.stream.Stream, end: Fraction | None = None) -> Iterator[av.Packet]:
    """The CEA-608 captions in the frames of ``source``'s video before ``end`` (seconds; None: all),
    as packets of ``captions`` (a :func:`caption_stream`, in whose time base its decoder reads
    times): for each frame that carries more than padding, one of its valid cc_data triplets of
    either field, at the frame's time and for its duration. CEA-708's triplets are left out:
    FFmpeg's caption decoder and QuickTime's c608 track take CEA-608 alone."""
    time_base = as_fraction(captions.time_base)
    with open_input(source) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        codec = video.codec_context.codec.canonical_name
        tick = as_fraction(video.time_base)
        for frame in container.decode(video):
            if end is not None and frame.pts is not None and frame.pts * tick >= end:
                return  # an excerpt's end: the rest of a long input is not decoded for nothing
            cc_data = b"".join(bytes(item) for item in side_data(frame, codec) if item.type == av.sidedata.sidedata.Type.A53_CC)
            triplets = [cc_data[i:i + 3] for i in range(0, len(cc_data) - 2, 3)]
            kept = [t for t in triplets if t[0] & 0x04 and t[0] & 0x03 in (0, 1)]  # valid, field 1 or 2
            if frame.pts is None or all((t[1], t[2]) == _PADDING for t in kept):
                continue
            packet = av.Packet(b"".join(kept))
            packet.stream, packet.time_base = captions, time_base
            packet.pts = packet.dts = round(frame.pts * tick / time_base)
            packet.duration = round((frame.duration or 0) * tick / time_base)
            yield packet
