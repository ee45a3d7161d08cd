"""Sound cut at an excerpt's edges to the sample, where the output allows: decoded sound trimmed,
plain PCM packets split between samples, and how much sound before the start a decoder needs to
sound at the start as it does in the whole input.
"""

from __future__ import annotations

import functools
import io
import math
import re
import struct
from fractions import Fraction

import av
import av.packet
import numpy as np

from .containers import ISO_MEDIA_MUXERS
from .excerpt import Cut

# How much sound before an excerpt's start its decoder needs where that is more than the packet
# before the one that holds the start (which overlapping windows, as AAC's and AC-3's, draw on):
# MP3 frames may take their bits from up to 511 bytes before them (some 130 ms at 32 kb/s), and
# Opus asks for 80 ms to converge.
SOUND_PREROLL_S = {"mp3": Fraction(3, 20), "opus": Fraction(2, 25)}


def sound_preroll(stream: av.stream.Stream) -> Fraction:
    """Seconds of ``stream`` (sound) that its decoder needs before the sample it should start at."""
    return SOUND_PREROLL_S.get(stream.codec_context.codec.canonical_name, Fraction(0))


# Plain PCM, whose packets are their samples one after another, and its bits a sample (not DVD's or
# Blu-ray's, whose packets start with a header, nor planar PCM, a block a channel).
_PLAIN_PCM = re.compile(r"pcm_[suf](\d+)(le|be)?|pcm_(alaw|mulaw|vidc)")


def _sample_bytes(stream: av.stream.Stream) -> int:
    """Bytes of one sample of every channel of ``stream`` where its packets can be cut between
    any two samples (plain PCM), else 0."""
    name = stream.codec_context.codec.canonical_name if stream.type == "audio" else ""
    plain = _PLAIN_PCM.fullmatch(name)
    return int(plain[1] or 8) // 8 * stream.codec_context.layout.nb_channels if plain else 0


def splits(stream: av.stream.Stream) -> bool:
    """Whether the packets of ``stream`` can be cut between any two samples (plain PCM)."""
    return _sample_bytes(stream) > 0


def split_within(packet: av.Packet, cut: Cut) -> av.Packet | None:
    """The samples of ``packet`` (of a stream that :func:`splits`) that lie within ``cut``, as a
    packet of their own at their time; None where none do."""
    width, rate = _sample_bytes(packet.stream), packet.stream.codec_context.sample_rate
    samples, time = packet.size // width, Fraction(packet.pts or 0) * packet.time_base
    first, last = _span(time, samples, rate, cut)
    if (first, last) == (0, samples):
        return packet
    if last <= first:
        return None
    part = av.Packet(bytes(packet)[first * width:last * width])
    part.time_base, part.is_keyframe = packet.time_base, True
    part.pts = (packet.pts or 0) + round(Fraction(first, rate) / packet.time_base)
    part.dts = part.pts if packet.dts is not None else None
    part.duration = round(Fraction(last - first, rate) / packet.time_base)
    part.stream = packet.stream
    return part


def trimmed(frame: av.AudioFrame, within: Cut, time: Fraction | None = None) -> av.AudioFrame | None:
    """The samples of ``frame`` (decoded) that lie ``within`` (seconds), or None where none do;
    ``time``: where it starts (seconds), if not where its timestamp says."""
    rate = frame.sample_rate
    time = Fraction(frame.pts or 0) * frame.time_base if time is None else time
    first, last = _span(time, frame.samples, rate, within)
    if (first, last) == (0, frame.samples):
        return frame
    if last <= first:
        return None
    # cut interleaved: PyAV (18) counts one plane too many for planar sound of 8 channels (7.1), and
    # reading them failed or crashed the process; the part goes back to the frame's own format,
    # which the encoder's resampler was set up for
    step, packed = frame.layout.nb_channels, frame.format.packed.name
    samples = (_as(frame, packed) if frame.format.is_planar else frame).to_ndarray()[:, first * step:last * step]
    part = av.AudioFrame.from_ndarray(samples.copy(), format=packed, layout=frame.layout.name)
    part.sample_rate = rate
    part = _as(part, frame.format.name) if frame.format.is_planar else part
    part.time_base = frame.time_base
    part.pts = round((time + Fraction(first, rate)) / frame.time_base)
    return part


def _as(frame: av.AudioFrame, sample_format: str) -> av.AudioFrame:
    """``frame``'s samples in ``sample_format``, converted by FFmpeg's resampler (same layout and rate)."""
    resampler = av.AudioResampler(format=sample_format, layout=frame.layout, rate=frame.sample_rate)
    [converted] = [*resampler.resample(frame), *resampler.resample(None)]
    return converted


# Muxers that can say where in its last packet a sound stream ends: Matroska (and WebM) by the
# block's DiscardPadding, which FFmpeg writes from the packet's skip-samples side data; QuickTime
# and the ISO family by the edit list, which ends where the last packet's duration does.
_DISCARD_PADDING_MUXERS = frozenset({"matroska", "webm"})


def ended_at(packet: av.Packet, end: Fraction, muxer: str) -> av.Packet:
    """``packet`` (copied sound, on the output's clock) told to end at ``end`` (seconds) where it
    runs past it and ``muxer`` can say so; else as it is."""
    time, rate = Fraction(packet.pts or 0) * packet.time_base, packet.stream.codec_context.sample_rate
    if not packet.duration or not rate or time + packet.duration * packet.time_base <= end:
        return packet
    if muxer in ISO_MEDIA_MUXERS:
        packet.duration = max(1, math.ceil((end - time) / packet.time_base))
    elif muxer in _DISCARD_PADDING_MUXERS and (delayed := _delayed_packet()) is not None:
        past = math.floor((time + packet.duration * packet.time_base - end) * rate)
        padding = av.packet.PacketSideData.from_packet(delayed, "skip_samples")
        padding.update(struct.pack("<IIBB", 0, past, 0, 0))  # samples to skip at the start, at the end; reasons
        padding.to_packet(packet)
    return packet


@functools.cache
def _delayed_packet() -> av.Packet | None:
    """A packet with side data of FFmpeg's skip-samples kind, for :func:`ended_at` to copy and fill
    in: PyAV makes packet side data only as a copy of a packet's. The first packet of AAC read
    from an MP4 has some (the encoder's delay, which the edit list skips); None if this FFmpeg
    gives none there."""
    made = io.BytesIO()
    with av.open(made, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000, layout="mono")
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        silence.sample_rate, silence.pts = 48000, 0
        for packet in [*stream.encode(silence), *stream.encode(None)]:
            out.mux(packet)
    made.seek(0)
    with av.open(made) as read:
        first = next(read.demux(read.streams.audio[0]))
    return first if first.has_sidedata("skip_samples") else None


def _span(time: Fraction, samples: int, rate: int, within: Cut) -> tuple[int, int]:
    """Which of ``samples`` at ``rate`` from ``time`` (seconds) lie ``within``: from the first to
    before the last (equal where none do)."""
    first = max(0, math.ceil((within.start - time) * rate))
    last = samples if within.end is None else max(0, min(samples, math.ceil((within.end - time) * rate)))
    return first, max(first, last)
