"""Copy the input's audio, subtitle, data and attachment streams beside the encoded video, untouched
(:func:`remux`), and check before any work that the output can hold them.

The video is encoded alone first; keeping the two steps apart means the zero-face case and the
batch join both reuse the same remux, and audio is never re-encoded.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import io
import itertools
import math
import os
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import av
import numpy as np
from av.bitstream import BitStreamFilterContext

from ..errors import OutputError, UsageError
from .avi import block_coded, count_in_frames, first_packet, in_frames, time_by_blocks
from .captions import caption_stream, frame_captions, lifted
from .containers import (
    FRAME_RATE_MUXERS,
    ISO_MEDIA_MUXERS,
    copy_of,
    flags_lost,
    holds_tag,
    muxer_of,
    muxer_options,
    stream_tags,
    takes,
    unstated_languages,
)
from .encoders import EncodeOptions, check_encoder
from .excerpt import Cut
from .exr import COLOUR_CHANNELS, channels_of
from .headers import carry_headers
from .probe import VideoInfo, as_fraction, codec_name, frame_rate_of, is_cover, open_input, probe
from .reencode import (
    AUTO_SOUND,
    BROADCAST_RATE,
    FOUR_COLOURS,
    STYLED_SUBTITLES,
    UNORDERED,
    Conversion,
    container_sound,
    converted_stream,
    converting,
    is_caption,
    lossless_recut,
    own_sound_encoder,
    redrawn,
    sound_encoder,
    sound_encoders,
    speaker_names,
    subtitle_encoders,
    trial_cue,
)
from .sequence import IMAGE_ENCODERS, SEGMENT_SUFFIX, find_sequence, is_sequence, numbered
from .soundcut import ended_at, sound_preroll, split_within, splits
from .timecode import fits_rate, timecode_after, timecode_at
from .writer import check_writable


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


def _moved_back(packet: av.Packet, seconds: Fraction) -> av.Packet:
    """``packet`` shown ``seconds`` earlier (to the nearest tick of its time base)."""
    ticks = round(seconds / packet.time_base)
    if packet.pts is not None:
        packet.pts -= ticks
    if packet.dts is not None:
        packet.dts -= ticks
    return packet


def _first_at_zero(packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
    """The video ``packets`` of an excerpt moved back so that the first, its first frame, is shown at
    0. Its time is the excerpt's start but for the part's muxer: QuickTime states a late start in
    the movie's milliseconds (0.4004 s became 0.4 s), and moving back by the start itself put
    the first frame before 0."""
    shift = None
    for packet in packets:
        shift = Fraction(packet.pts or 0) * packet.time_base if shift is None else shift
        yield _moved_back(packet, shift)


def _within(packets: Iterator[tuple[tuple[str, int], av.Packet]], cut: Cut,
            preroll: Mapping[tuple[str, int], Fraction] = MappingProxyType({}),
            drawn: Collection[tuple[str, int]] = (),
            replayed: Collection[tuple[str, int]] = ()) -> Iterator[tuple[tuple[str, int], av.Packet]]:
    """The packets of ``packets`` (the input's other streams) that begin within ``cut``, moved back
    so that its start is 0. Plain PCM is cut between its samples; other sound at its packets,
    which last some tens of milliseconds, but a sound stream of ``preroll`` keeps the packet that
    holds the start and those before it that its decoder needs (the one before, and back to
    ``preroll`` seconds before the start), at times before 0, for a muxer that starts its sound
    at 0 to the sample or an encoder that is given it trimmed. A subtitle shown since before the start is kept for the rest of its time: a cue that
    states how long it lasts (text, DVD's) from the start, and a picture shown until the next
    display set clears it (PGS, DVB) as its last display set before the start (of one packet or
    several), put at the start. Closed captions that are ``drawn`` (converted to text) keep every
    packet before the start, at its time before 0: any of them may have drawn what is on the
    screen at the start, and their decoder shows it from 0 (:class:`~vidrestore.io.reencode._Cues`).
    Closed captions that are ``replayed`` (copied as they are) begin with the commands that draw
    what is on the screen at the start, replayed there (:func:`_redrawing`)."""
    showing: dict[tuple[str, int], list[av.Packet]] = {}
    for key, packet in packets:
        ts = packet.pts if packet.pts is not None else packet.dts
        when = Fraction(ts or 0) * packet.time_base
        if cut.end is not None and when >= cut.end:
            continue
        if splits(packet.stream):
            part = split_within(packet, cut)
            if part is not None:
                yield key, _moved_back(part, cut.start)
            continue
        subtitle = packet.stream.type == "subtitle"
        if when < cut.start and (key in preroll or key in drawn or key in replayed):
            held = showing.setdefault(key, [])
            held.append(packet)
            while key in preroll and len(held) > 2 and _packet_time(held[1]) <= cut.start - preroll[key]:
                held.pop(0)
            continue
        if when < cut.start and subtitle and not packet.duration:
            held = showing.get(key, [])
            showing[key] = [*held, packet] if held and held[0].pts == ts else [packet]
            continue
        if when < cut.start:
            late = math.ceil((cut.start - when) / packet.time_base)
            if not subtitle or packet.duration <= late:
                continue
            packet.pts, packet.duration = ts + late, packet.duration - late
            packet.dts = packet.pts if packet.dts is not None else None
        if key in replayed and key in showing:
            *redraw, packet = _redrawing(showing.pop(key, []), cut, packet)
            yield from ((key, _moved_back(p, cut.start)) for p in redraw)
        yield from ((key, _held(held, cut, key in preroll or key in drawn)) for held in showing.pop(key, []))
        if subtitle and packet.duration and cut.end is not None:  # nor shown past the end
            packet.duration = min(packet.duration, math.ceil((cut.end - Fraction(packet.pts) * packet.time_base) / packet.time_base))
        yield key, _moved_back(packet, cut.start)
    for key, held in showing.items():  # sound that ends before the start is left out
        if key in replayed:
            yield from ((key, _moved_back(packet, cut.start)) for packet in _redrawing(held, cut, None))
        else:
            yield from ((key, _held(packet, cut, key in drawn)) for packet in held if key not in preroll)


def _redrawing(held: list[av.Packet], cut: Cut, following: av.Packet | None) -> list[av.Packet]:
    """The packets of a closed-caption track copied into an excerpt, on its input's clock, from
    those ``held`` from before ``cut`` up to ``following``, the first within it (None: there is
    none): one at the start, which replays the commands that drew what was on the screen there
    (:func:`~vidrestore.io.reencode.redrawn`) and lasts until ``following``, then ``following``;
    or the two joined where ``following`` begins at the start. Cut at its packets instead, the
    track showed nothing until the next caption came."""
    commands = redrawn(held)
    if not commands:
        return [] if following is None else [following]
    time_base = held[-1].time_base
    start = math.ceil(cut.start / time_base)
    if following is not None and following.pts <= start:
        joined = av.Packet(commands + bytes(following))
        joined.pts, joined.dts, joined.duration, joined.time_base = following.pts, following.dts, following.duration, time_base
        return [joined]
    redraw = av.Packet(commands)
    redraw.pts = redraw.dts = start
    redraw.duration, redraw.time_base = max(held[-1].duration or 0, 1) if following is None else following.pts - start, time_base
    return [redraw] if following is None else [redraw, following]


def _sound_prerolls(streams: list[av.stream.Stream], conversions: Mapping[int, Conversion],
                    muxer: str) -> dict[tuple[str, int], Fraction]:
    """The sound ``streams`` of an excerpt, other than plain PCM (which is split), that start at its
    start to the sample, with the seconds before it that their decoders need (:func:`sound_preroll`):
    those re-encoded, which are trimmed once decoded, and all of them in QuickTime and the ISO
    media family, whose edit lists tell players how much of a track to skip. Other containers
    (Matroska, MPEG-TS, AVI) have no such list: their sound starts at its first packet within."""
    return {("o", s.index): sound_preroll(s) for s in streams
            if s.type == "audio" and not splits(s) and (s.index in conversions or muxer in ISO_MEDIA_MUXERS)}


def _sound_ended(packets: Iterator[tuple[tuple[str, int], av.Packet]], end: Fraction | None, streams: list[av.stream.Stream],
                 conversions: Mapping[int, Conversion], muxer: str) -> Iterator[tuple[tuple[str, int], av.Packet]]:
    """``packets`` of an excerpt (on the output's clock) with the sound of ``streams`` that is copied
    at its packets told to end at ``end`` where the ``muxer`` can say so (:func:`ended_at`): its
    last packet may run past the video by some tens of milliseconds. Plain PCM is split and
    re-encoded sound trimmed once decoded instead."""
    cut_at_packets = {("o", s.index) for s in streams if s.type == "audio" and not splits(s) and s.index not in conversions}
    for key, packet in packets:
        yield key, ended_at(packet, end, muxer) if end is not None and key in cut_at_packets else packet


def _held(packet: av.Packet, cut: Cut, before: bool) -> av.Packet:
    """A ``packet`` held back from before ``cut``: sound and captions before its start (``before``),
    a picture shown at it."""
    return _moved_back(packet, cut.start) if before else _at_start(packet, cut)


def _at_start(packet: av.Packet, cut: Cut) -> av.Packet:
    """``packet`` (shown before ``cut``) shown from its start, which becomes 0."""
    packet.pts = packet.dts = math.ceil(cut.start / packet.time_base)
    return _moved_back(packet, cut.start)


def _video_end(source: str | Path, cut: Cut | None) -> Fraction | None:
    """Where the video of ``source`` ends, in seconds on the clock its other streams' packets
    have in the output: the input's, or from the start of ``cut`` (and no later than its end)."""
    info = probe(source)
    end = Fraction(info.start_pts or 0) * info.time_base + Fraction(info.duration_s) if info.duration_s else None
    if cut is None:
        return end
    end = min((t for t in (end, cut.end) if t is not None), default=None)
    return None if end is None else end - cut.start


def _frames_before(video: av.video.stream.VideoStream, cut: Cut, rate: Fraction | None) -> tuple[int, Fraction | None]:
    """How many frames of ``video`` (the input's, played at ``rate``) come before the start of
    ``cut``, and their rate."""
    first = (video.start_time or 0) * video.time_base
    return (round((cut.start - first) * rate) if rate else 0), rate


def _played_rate(video: av.video.stream.VideoStream, source: str | Path | None, tick: Fraction | None) -> Fraction | None:
    """The rate the frames of ``video`` (of ``source``) are played at: an image sequence's as
    ``tick`` times them (FFmpeg reads its pictures at 25 a second, whatever the scan's rate), a
    video's its stream's own (an .mp4's average rate counts the last frame's and the sound's durations)."""
    if tick and source is not None and is_sequence(source):
        return 1 / tick
    return as_fraction(video.base_rate) or frame_rate_of(video)


def _chapters_within(chapters: list[dict], cut: Cut) -> list[dict]:
    """``chapters`` (as PyAV gives them) that overlap ``cut``, trimmed to it and moved back so
    that its start is 0."""
    kept = []
    for chapter in chapters:
        base = chapter["time_base"]
        start, end = chapter["start"] * base, chapter["end"] * base
        if end <= cut.start or (cut.end is not None and start >= cut.end):
            continue
        end = end if cut.end is None else min(end, cut.end)
        kept.append({**chapter, "start": round((max(start, cut.start) - cut.start) / base), "end": round((end - cut.start) / base)})
    return kept


def _packet_time(packet: av.Packet) -> Fraction:
    ts = packet.dts if packet.dts is not None else packet.pts
    return Fraction(ts or 0) * packet.time_base


def _after(packet: av.Packet, last: int | None) -> int | None:
    """Move the sound ``packet`` on to a tick after ``last``, the decode time of its stream's
    packet before it (in its time base), where it comes at that time or before, as FFmpeg's command
    line does: a faulty muxer gave two packets one time, and the output's muxer refused them after
    the work (and a trial of them took MP4 for a container that cannot hold AAC). Returns its decode time."""
    if packet.dts is None:
        return last
    if last is not None and packet.dts <= last:
        step = last + 1 - packet.dts
        packet.dts += step
        packet.pts = None if packet.pts is None else packet.pts + step
    return packet.dts


# Tags that describe the input's encoding of the video, which the output's encoding replaces
# (Matroska statistics tags, some with a language suffix, like "BPS-eng").
_ENCODING_TAGS = ("bps", "duration", "number_of_frames", "number_of_bytes", "encoder")


def _is_encoding_tag(key: str) -> bool:
    key = key.lower().split("-")[0]
    return key in _ENCODING_TAGS or key.startswith("_statistics")


def _label(stream: av.stream.Stream) -> str:
    """"subtitle stream 2 (hdmv_pgs_subtitle)": the codec as ffprobe names it, not FFmpeg's decoder
    (pgssub, mp3float, cc_dec)."""
    if is_cover(stream):
        return f"cover art (stream {stream.index}, {stream.codec_context.codec.canonical_name})"
    if stream.type == "attachment":
        what = stream.metadata.get("filename", "")
    elif stream.codec_context is not None:
        what = stream.codec_context.codec.canonical_name
    else:  # data streams (a timecode track, KLV) have no codec context; a codec is named where FFmpeg knows one
        what = stream.name or stream.metadata.get("handler_name", "")
    return f"{stream.type} stream {stream.index} ({what or 'unknown codec'})"


_PICTURE_TYPES = {"mjpeg": ("jpg", "image/jpeg"), "png": ("png", "image/png"), "bmp": ("bmp", "image/bmp"),
                  "gif": ("gif", "image/gif"), "webp": ("webp", "image/webp")}


def unrestored_videos_note(source: str | Path) -> list[str]:
    """A note naming the video streams of ``source`` after its first (a second camera angle, a
    picture-in-picture track), which are copied as they are: faces are restored in the first alone."""
    with open_input(source) as container:
        others = [s for s in container.streams.video[1:] if not is_cover(s)]
        if not others:
            return []
        named = ", ".join(_label(s) + (f" \"{stream_tags(s)['title']}\"" if stream_tags(s).get("title") else "") for s in others)
    return [f"faces are restored in the first video stream only; the others are copied as they are: {named}"]


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
    if is_cover(stream) and "matroska" in out.format.name:
        ext, mimetype = _PICTURE_TYPES.get(stream.codec_context.name, ("bin", "application/octet-stream"))
        copy = out.add_attachment(stream.metadata.get("filename", f"cover.{ext}"),
                                  stream.metadata.get("mimetype", mimetype), _picture(stream))
    elif stream.type == "attachment":
        copy = out.add_attachment(stream.metadata.get("filename", f"attachment{stream.index}"),
                                  stream.metadata.get("mimetype", "application/octet-stream"), stream.data)
    else:
        copy = copy_of(out, stream)
        copy.disposition = stream.disposition
        if stream.type == "audio" and stream.codec_context.layout.name in UNORDERED:
            # AVI, DV and Matroska's PCM state a channel count, not a layout; the MP4 muxer then
            # failed on its last write, after the whole video was restored (see UNORDERED)
            copy.codec_context.layout = UNORDERED[stream.codec_context.layout.name]
    copy.metadata.update(stream_tags(stream, out.format.name))
    return copy



def stated_timecode(source: str | Path) -> str:
    """The timecode ``source`` states for its first frame: its video stream's tag, a QuickTime
    timecode track's, or a DPX scan's first picture's; "" where it states none."""
    with open_input(source) as container:
        tags = {k.lower(): v for k, v in container.streams.video[0].metadata.items()} if container.streams.video else {}
        codes = [tags["timecode"]] if "timecode" in tags else [track.metadata["timecode"] for track in _timecode_tracks(container)]
    return codes[0] if codes else probe(source).timecode


def _timecode_tracks(container: av.container.InputContainer) -> list[av.stream.Stream]:
    """QuickTime timecode (tmcd) tracks: FFmpeg reads each as a data stream with a ``timecode`` tag."""
    return [s for s in container.streams if s.type == "data" and "timecode" in s.metadata]


def _carried(container: av.container.InputContainer) -> list[av.stream.Stream]:
    """The streams of ``container`` that remux copies as streams: all but its first video stream,
    its timecode tracks, its empty sound streams (:func:`_empty_sound`) and a DVD's navigation
    packets (:func:`left_alone`). A timecode travels as
    the video stream's ``timecode`` tag, from which the QuickTime and MP4 muxers write a new
    timecode track at the video's rate and Matroska a tag. (A copied tmcd track made the QuickTime
    muxer fail when closing the file: PyAV cannot give the copy its frame rate.)"""
    first_video = container.streams.video[0].index if container.streams.video else -1
    left = {s.index for s in [*_timecode_tracks(container), *left_alone(container)]}
    return [s for s in container.streams if s.index != first_video and s.index not in left]


def left_alone(container: av.container.InputContainer) -> list[av.stream.Stream]:
    """The streams of ``container`` left out whatever the output: sound streams that hold nothing
    (:func:`_empty_sound`) and a DVD's navigation packets (:func:`_dvd_navigation`)."""
    return [*_empty_sound(container), *_dvd_navigation(container)]


def _dvd_navigation(container: av.container.InputContainer) -> list[av.stream.Stream]:
    """A DVD's navigation packets (PCI and DSI, which FFmpeg reads from a VOB as a data stream):
    they address sectors of the disc, for its menus and a player's seeking, which no file made
    from it keeps (DVD authoring writes them anew). No muxer takes them, so every VOB was refused
    unless --drop-streams left them out."""
    return [s for s in container.streams.data if s.name == "dvd_nav_packet"]


def _empty_sound(container: av.container.InputContainer) -> list[av.stream.Stream]:
    """The sound streams of ``container`` that hold no packet, and so no sample rate FFmpeg could
    find: a broadcast capture's declared but silent PID. No muxer takes a sound stream without a
    rate, so every output was refused as unable to hold it ("write a .mkv" into a .mkv). A stream
    without a rate that does hold packets is left to that refusal: its sound is not dropped."""
    unset = [s for s in container.streams.audio if not s.codec_context.sample_rate]
    if not unset:
        return []
    stat = os.stat(container.name)
    filled = _filled(container.name, tuple(s.index for s in unset), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return [s for s in unset if s.index not in filled]


@functools.lru_cache(maxsize=4)
def _filled(path: str, indices: tuple[int, ...], *identity: int) -> frozenset[int]:
    """Which of the streams ``indices`` of ``path`` hold a packet; read once for the file as it is
    (the check before any work, the remux and the report each ask), through a container of its
    own, as the caller's must not be moved."""
    with open_input(path) as scan:
        return frozenset(p.stream.index for p in scan.demux(*(scan.streams[i] for i in indices)) if p.size)


def left_alone_notes(source: str | Path) -> list[str]:
    """Notes naming the streams of ``source`` that :func:`left_alone` leaves out."""
    with open_input(source) as container:
        empty, navigation = ([_label(s) for s in found(container)] for found in (_empty_sound, _dvd_navigation))
    return ([f"left out, as they hold no sound: {', '.join(empty)}"] if empty else []) + \
        ([f"left out, as they address the sectors of a DVD, which the output is not: {', '.join(navigation)}"] if navigation else [])


def _unfit(container: av.container.InputContainer, output: str | Path) -> list[av.stream.Stream]:
    video = _trial_video(container, Path(output).name)
    return [stream for stream in _carried(container) if not _holds(Path(output).name, stream, video)]


def _sound_conversion(name: str, stream: av.audio.stream.AudioStream, video: av.stream.Stream | None, encoder: str) -> Conversion | None:
    """How the sound ``stream`` is re-encoded with ``encoder`` for a container named like ``name``:
    at its own rate where the encoder takes it (else the nearest one it does: 48 kHz for Opus),
    else 48 kHz where the container takes only that (MXF); with its own layout, else its speakers
    under the name the encoder takes (:func:`~vidrestore.io.reencode.speaker_names`); None where
    none of these is held."""
    rates = av.Codec(encoder, "w").audio_rates
    own = stream.rate if not rates or stream.rate in rates else min(rates, key=lambda r: (abs(r - stream.rate), -r))
    tried = (Conversion(encoder, rate, layout=layout) for layout in speaker_names(stream) for rate in dict.fromkeys([own, BROADCAST_RATE]))
    return next((conversion for conversion in tried if _holds(name, stream, video, conversion)), None)


def _subtitle_encoder(name: str, stream: av.stream.Stream, video: av.stream.Stream | None) -> str | None:
    """The first encoder of :func:`~vidrestore.io.reencode.subtitle_encoders` that a container
    named like ``name`` holds the subtitle ``stream`` converted with; None where it holds none."""
    return next((encoder for encoder in subtitle_encoders(stream) if _holds(name, stream, video, Conversion(encoder))), None)


def _conversions(container: av.container.InputContainer, output: str | Path, sound: str,
                 unfit: list[av.stream.Stream], excerpt: bool = False) -> dict[int, Conversion]:
    """How each stream of ``container`` that the container of ``output`` cannot hold as it is
    (``unfit``, :func:`_unfit`) is written after all (by stream index): subtitles converted
    (:func:`_subtitle_encoder`), sound re-encoded with ``sound`` (the first of
    :func:`~vidrestore.io.reencode.sound_encoders` as :func:`_sound_conversion` finds it held), where the container
    holds them so. For an ``excerpt`` into a container with no edit lists, lossless
    sound that is not split as it is (FLAC, ALAC, WavPack; TTA as FLAC) is re-encoded without loss too, so that it is cut to
    the sample (:func:`~vidrestore.io.reencode.lossless_recut`), not at its packets."""
    name = Path(output).name
    video = _trial_video(container, name)
    conversions = {}
    for stream in unfit:
        if stream.type == "audio" and sound:
            conversion = next(filter(None, (_sound_conversion(name, stream, video, encoder) for encoder in sound_encoders(stream, output, sound))), None)
            conversions.update({stream.index: conversion} if conversion else {})
        elif subtitle_encoders(stream):
            encoder = _subtitle_encoder(name, stream, video)
            conversions.update({stream.index: Conversion(encoder)} if encoder else {})
    if excerpt and muxer_of(Path(output)) not in ISO_MEDIA_MUXERS:
        left = {s.index for s in unfit}
        fit = [s for s in _carried(container) if s.index not in left and not splits(s)]
        recuts = {s.index: Conversion(encoder, s.rate, recut=True) for s in fit if (encoder := lossless_recut(s))}
        conversions.update({index: c for index, c in recuts.items() if _holds(name, container.streams[index], video, c)})
    return conversions


def carried_notes(source: str | Path, output: str | Path, sound: str, excerpt: bool = False) -> list[str]:
    """The report's notes on the streams of ``source`` that remux converts for ``output``
    (:func:`_conversions`), by encoder: "converted to mov_text, as .mp4 files cannot hold them:
    subtitle stream 2 (subrip)"; on the languages it cannot state (QuickTime's); and for an ``excerpt``, on the sound streams it cuts at their
    packets (not plain PCM, nor re-encoded, nor into QuickTime or the ISO media family:
    :func:`_sound_prerolls`), and how far from its first frame each may start."""
    with open_input(source) as container:
        unfit = _unfit(container, output)
        conversions = _conversions(container, output, sound, unfit, excerpt)
        notes = _converted_notes(container, output, conversions)
        left_out = {s.index for s in unfit} - set(conversions)
        kept = [*container.streams.video[:1], *(s for s in _carried(container) if s.index not in left_out)]
        unstated = unstated_languages(kept, muxer_of(Path(output)) or "")
        notes += [(f"{Path(output).suffix} files have no code for the language of {', '.join(unstated)}, "
                  "which is left unstated (.mp4 and .mkv state any)")] if unstated else []
        if excerpt:
            notes += _packet_cut_notes([s for s in _carried(container) if s.index not in left_out], output, conversions)
    return notes


def _converted_notes(container: av.container.InputContainer, output: str | Path, conversions: dict[int, Conversion]) -> list[str]:
    described: dict[tuple[str, bool], list[str]] = {}
    for index, conversion in conversions.items():
        stream = container.streams[index]
        lost = " without its positions, fonts and effects" if stream.codec_context.codec.canonical_name in STYLED_SUBTITLES else \
            " in four colours" if conversion.encoder == FOUR_COLOURS else \
            f" as {conversion.layout}, the name {conversion.encoder} takes for its {stream.codec_context.layout.name} speakers" if conversion.layout else ""
        described.setdefault((conversion.encoder, conversion.recut), []).append(_label(stream) + lost)
    suffix = Path(output).suffix
    return [f"re-encoded without loss with {encoder}, so that the excerpt's sound is cut to the sample, as {suffix} files "
            f"cannot say where in a packet to start: {', '.join(labels)}" if recut else
            f"{'converted to' if av.Codec(encoder, 'w').type == 'subtitle' else 're-encoded with'} {encoder}, "
            f"as {suffix} files cannot hold them: {', '.join(labels)}" for (encoder, recut), labels in described.items()]


def _packet_cut_notes(carried: list[av.stream.Stream], output: str | Path, conversions: dict[int, Conversion]) -> list[str]:
    exact = _sound_prerolls(carried, conversions, muxer_of(Path(output)) or "")
    cut = [s for s in carried if s.type == "audio" and not splits(s) and ("o", s.index) not in exact]
    if not cut:
        return []
    longest = max((Fraction(s.codec_context.frame_size, s.codec_context.sample_rate) for s in cut
                   if s.codec_context.frame_size and s.codec_context.sample_rate), default=None)
    within = f"{math.ceil(longest * 1000)} ms" if longest else "a packet"
    return [(f"the excerpt's sound is cut at its packets, as {Path(output).suffix} files cannot say where in one to start "
             f"(.mp4 and .mov can): {', '.join(_label(s) for s in cut)}, within {within} of the first frame")]


def _trial_video(container: av.container.InputContainer, name: str) -> av.stream.Stream | None:
    """The video stream to put before each stream in its trial (:func:`_holds`), as the output
    has it (MXF takes no sound without a picture before it): the first of ``container``, where a
    container named like ``name`` takes a copy of it. QuickTime refuses VP9 only when it writes its
    header, which failed every stream's trial, though the video is restored into another codec
    (a copy that does not fit is refused for itself)."""
    video = container.streams.video[0] if container.streams.video else None
    return video if video is not None and _holds(name, None, video) else None


# The key of the captions lifted from the input's frames among the packets remux writes, and how
# the report names them when the output holds no track for them.
LIFTED = ("c", 0)
FRAME_CAPTIONS = "the closed captions in the input's frames"


def _caption_encoder(name: str, captions: av.stream.Stream, video: av.stream.Stream | None) -> str | None:
    """How a container named like ``name`` holds the captions lifted from the frames
    (:mod:`.captions`): "" as they are (QuickTime's c608 track), the text encoder they are
    converted with (:func:`_subtitle_encoder`), or None where it holds neither."""
    return "" if _holds(name, captions, video) else _subtitle_encoder(name, captions, video)


def lifted_captions_note(source: str | Path, video: str | Path | Sequence[Path], output: str | Path) -> list[str]:
    """The report's word on the closed captions of ``source``'s frames that the encoded ``video``
    (its first part) does not carry, where remux puts them in a track of their own."""
    first = Path(video) if isinstance(video, (str, Path)) else Path(video[0])
    if is_sequence(output) or not lifted(source, first):
        return []
    with open_input(source) as container, caption_stream() as captions:
        encoder = _caption_encoder(Path(output).name, captions, _trial_video(container, Path(output).name))
    if encoder is None:
        return []  # named among the streams left out
    how = f"converted to {encoder}" if encoder else "as a c608 track"
    return [f"{FRAME_CAPTIONS}, which its encoder does not write into the video, were put beside it, {how}"]


def _unfit_chapters(output: str | Path, chapters: list[dict]) -> str:
    """How the report names ``chapters`` where a file named like ``output`` does not keep them
    ("2 chapters"), else "": pictures never do, and AVI, MPEG-TS, MPEG-PS, MXF, FLV and Ogg
    write none, without a word (:func:`_keeps_chapters`)."""
    if not chapters:
        return ""
    suffix = Path(output).suffix.lower()
    if suffix not in IMAGE_ENCODERS and _keeps_chapters(suffix) is not False:
        return ""
    return f"{len(chapters)} chapter{'s' if len(chapters) > 1 else ''}"


@functools.cache
def _keeps_chapters(suffix: str) -> bool | None:
    """Whether a file of ``suffix`` keeps a chapter: a trial file with one, and one black frame of
    its container's own video codec (a muxer writes no header without a stream, and a reader
    may find no file without a frame), written and read back; None where it cannot be written."""
    scratch = io.BytesIO()
    scratch.name = f"trial{suffix}"
    try:
        with av.open(scratch, "w") as out:
            picture = out.add_stream(out.default_video_codec, rate=25)
            picture.width, picture.height = 176, 144  # a size every codec takes, H.263 too
            formats = picture.codec_context.codec.video_formats
            picture.pix_fmt = formats[0].name if formats else "yuv420p"
            out.set_chapters([{"id": 1, "start": 0, "end": 1000, "time_base": Fraction(1, 1000), "metadata": {"title": "trial"}}])
            black = av.VideoFrame.from_ndarray(np.zeros((144, 176, 3), np.uint8), format="rgb24").reformat(format=picture.pix_fmt)
            out.mux(picture.encode(black))
            out.mux(picture.encode(None))
        scratch.seek(0)
        with av.open(scratch, format=_demuxer(out.format.name)) as written:
            return bool(written.chapters())
    except (av.error.FFmpegError, ValueError):
        return None


def _holds(name: str, stream: av.stream.Stream | None, video: av.stream.Stream | None, conversion: Conversion | None = None) -> bool:
    """Whether a trial container named like ``name`` (FFmpeg picks the container by the name)
    writes its header with a copy of ``video`` and ``stream`` of an input (either may be None),
    converted by ``conversion`` (:func:`~vidrestore.io.reencode.converted_stream`), and, for a
    stream that :func:`_samples` gives packets, those packets, read back as that stream."""
    scratch = io.BytesIO()
    scratch.name = name
    out = av.open(scratch, "w")
    samples: list[av.Packet] = []
    pictures = None
    try:
        if stream is not None and stream.type == "audio" and out.format.name == "dv":
            pictures = _blank_dv(out)
        elif video is not None:
            with contextlib.suppress(av.error.FFmpegError, ValueError):
                # with its rate, as remux writes it: MXF refuses a picture without one (and then
                # each sound stream of an Avid MXF was said not to fit in MXF)
                picture = copy_of(out, video)
                if frame_rate_of(video):
                    picture.codec_context.framerate = frame_rate_of(video)
        copy = None if stream is None else converted_stream(out, stream, conversion) if conversion else _carry(out, stream)
        out.start_encoding()
        samples = [] if stream is None else _samples(stream, copy, conversion is not None)
        if pictures is not None:  # as many as the sound covers: DV's muxer refuses a picture without its sound
            covered = max((_packet_time(p) + Fraction(p.duration or 0) * p.time_base for p in samples), default=Fraction(0))
            samples = sorted([*_encoded_blank(pictures, math.floor(covered * 25)), *samples], key=_packet_time)
        kind = copy.codec_context.codec.canonical_name if samples and copy.type == "subtitle" else ""
        try:
            for sample in samples:
                out.mux(sample)
            if samples:
                out.close()
        except (av.error.FFmpegError, ValueError):
            if copy.type != "audio" or not out.format.name.startswith("mxf"):
                raise  # MP4 refused sound that states a channel count alone only here, at its last write
            return True  # MXF ends sound only with the video's edit units, which a trial has none of
    except (av.error.FFmpegError, ValueError):
        return False
    finally:
        with contextlib.suppress(av.error.FFmpegError, ValueError):
            out.close()
    if not samples:
        return True
    sound = [p for p in samples if p.stream is copy] if copy.type == "audio" else []
    if out.format.name == "avi" and conversion is None and in_frames(stream):
        count_in_frames(scratch, {copy.index: len(sound)})  # as remux puts the header right
    scratch.seek(0)
    try:
        with av.open(scratch, format=_demuxer(out.format.name)) as written:
            if copy.type == "audio":  # and a decoder opens for it (ADPCM in NUT has no block size)
                same = [s for s in written.streams if s.type == "audio"]
                return bool(same) and _timed_as_written([p for p in written.demux(same[0]) if p.size], sound) \
                    and same[0].codec_context.open() is None
            if not kind:
                return any(is_cover(s) for s in written.streams)
            same = [s for s in written.streams if s.type == "subtitle" and s.codec_context.codec.canonical_name == kind]
            # and each cue: MPEG-PS names a DVD subtitle stream, but packs two of its cues into
            # one packet, which reads back empty
            return bool(same) and sum(1 for p in written.demux(same[0]) if p.size) == len(samples)
    except (av.error.FFmpegError, ValueError):
        return False


def _timed_as_written(read: list[av.Packet], written: list[av.Packet]) -> bool:
    """Whether the sound packets ``read`` back from a trial come in order and span the time the
    ``written`` ones did (to a tenth): AVI times sound it has no frame size for (Vorbis, E-AC-3)
    in bytes over a rate it guesses, and a Vorbis track read back 2.4 s long as 0.03 s."""
    times = [_packet_time(p) for p in read if p.pts is not None or p.dts is not None]
    if not times or any(later < earlier for earlier, later in itertools.pairwise(times)):
        return False
    span = _packet_time(written[-1]) - _packet_time(written[0]) if written else Fraction(0)
    return times[-1] - times[0] >= span * Fraction(9, 10) - Fraction(1, 20)


def _demuxer(muxer: str) -> str | None:
    """The demuxer of the same name as ``muxer``, to read a trial file as what it was written as:
    one this small can pass for a raw subtitle stream (MPEG-PS's for DVB's). None where there is
    none (MP4's iPod variant, .m4v): FFmpeg then finds one by the contents."""
    try:
        return av.format.ContainerFormat(muxer, "r").name
    except ValueError:
        return None


def _samples(stream: av.stream.Stream, copy: av.stream.Stream, converted: bool) -> list[av.Packet]:
    """The packets for ``copy`` (of ``stream``, in a trial container) whose stream must be read
    back to show that the container holds it; none where its header says enough. The QuickTime
    muxer drops cover art without a word; the MPEG-TS and MPEG-PS muxers take any subtitle and
    write what they do not hold (text, DVD's in MPEG-TS, PGS and DVB's in MPEG-PS) as data or as
    another format, which no player shows, and MPEG-TS writes sound it has no stream type for
    (PCM, FLAC, ALAC) as data. Two cues, a second apart, as a muxer may write one alone but not a
    stream of them; sound's first packets (``converted``: noise from the encoder), enough for
    MPEG-TS's reader to know AAC in a Blu-ray's .m2ts by its contents (2 were not, 10 were)."""
    if is_cover(stream) and copy.type != "attachment":
        samples = [av.Packet(_picture(stream))]
    elif stream.type == "audio":
        return _encoded_noise(copy) if converted else _first_packets(stream, copy)
    else:
        samples = [trial_cue(copy.codec_context.codec.canonical_name) for _ in range(2)] if subtitle_encoders(stream) else []
    for second, sample in enumerate(samples):
        sample.stream, sample.pts, sample.dts, sample.time_base = copy, second * 1000, second * 1000, Fraction(1, 1000)
        sample.duration = 1000  # each lasting its second: QuickTime drops a last sample that lasts nothing (a c608 track's)
    return samples


def _first_packets(stream: av.stream.Stream, copy: av.stream.Stream, count: int = 16, within: int = 500) -> list[av.Packet]:
    """Up to ``count`` first packets of ``stream`` for ``copy``, timed from 0, read through a
    container of its own (the caller's must not be moved) among the first ``within`` packets of
    the file."""
    with open_input(stream.container.name) as again:
        ours = (p for p in itertools.islice(again.demux(), within) if p.stream.index == stream.index and p.size)
        found = list(itertools.islice(ours, count))  # no further: the video's packets between are read, not kept
    first = next((p.dts if p.dts is not None else p.pts for p in found), None) or 0
    last = None
    for packet in found:
        packet.pts = None if packet.pts is None else packet.pts - first
        packet.dts = None if packet.dts is None else packet.dts - first
        last = _after(packet, last)  # as remux writes them
        packet.stream = copy
    return found


def _blank_dv(out: av.container.OutputContainer) -> av.video.stream.VideoStream:
    """A DV picture stream (PAL) for the trial of sound in ``out``, a DV file: its muxer writes
    sound inside its pictures' frames, and wrote none with no picture (the sound of every DV
    capture was said not to fit in .dv). The restored video is DV there whatever the input's."""
    stream = out.add_stream("dvvideo", rate=25)
    stream.width, stream.height, stream.pix_fmt = 720, 576, "yuv420p"
    return stream


def _encoded_blank(stream: av.video.stream.VideoStream, frames: int) -> list[av.Packet]:
    """``frames`` blank pictures as the encoder of ``stream`` writes them."""
    packets = []
    for index in range(frames):
        frame = av.VideoFrame(stream.width, stream.height, stream.pix_fmt)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts, frame.time_base = index, stream.codec_context.time_base
        packets.extend(stream.encode(frame))
    return packets + stream.encode(None)


def _encoded_noise(copy: av.stream.Stream, frames: int = 16) -> list[av.Packet]:
    """``frames`` of quiet noise as the encoder of ``copy`` (sound) writes them (silence makes
    packets of a few bytes, too few for a reader that knows a stream by its contents)."""
    context, noise = copy.codec_context, np.random.default_rng(0)
    size, layout = context.frame_size or 1024, context.layout
    packets = []
    for index in range(frames):
        # interleaved: PyAV (18) counts one plane too many for planar sound of 8 channels (7.1), and
        # failed to make such a frame, so 7.1 sound was never re-encoded
        samples = noise.uniform(-0.1, 0.1, (1, layout.nb_channels * size)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout=layout.name)
        frame.sample_rate, frame.pts = context.sample_rate, index * size
        packets.extend(copy.encode(frame))
    return packets + copy.encode(None)


def check_output(source: str | Path, output: str | Path, options: EncodeOptions, drop: bool, info: VideoInfo | None = None,
                 audio_codec: str = "") -> None:
    """Refuse, before any work, an ``output`` that could not be written from ``source`` (``info``:
    its video as it will be written, default as probed): an encoder its container cannot hold
    (:func:`check_encoder`), settings they refuse (:func:`check_writable`), a video into a picture
    file, or streams it cannot hold (:func:`check_streams`: unless ``drop``, or, for sound,
    re-encoded with ``audio_codec``)."""
    info = info or probe(source)
    check_encoder(options, output, info)
    # before the trial encode: a picture encoder refusing a video's settings would hide that a
    # video cannot go into one picture at all
    frames = info.estimated_frames
    if Path(output).suffix.lower() in IMAGE_ENCODERS and frames > 1 and not is_sequence(output):
        numbered_name = f"{Path(output).stem}_%06d{Path(output).suffix}"
        what = Path(source).name if frames == probe(source).estimated_frames else f"its excerpt of {Path(source).name}"
        raise OutputError(f"{Path(output).suffix} files hold one picture, and {what} has about {frames} frames; "
                          f"write a video file (.mp4, .mkv, .mov) or a numbered sequence ({numbered_name})")
    check_channels(source)
    check_writable(output, options, info)
    if is_sequence(output) and not takes(Path(SEGMENT_SUFFIX), IMAGE_ENCODERS[Path(output).suffix.lower()]):
        raise OutputError(f"vidrestore cannot write {Path(output).suffix} sequences; write a .png (lossless) or .jpg sequence")
    check_streams(source, output, drop, audio_codec)


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


def check_streams(source: str | Path, output: str | Path, drop: bool, audio_codec: str = "") -> None:
    """Refuse, before any work, an output whose container cannot hold every stream of ``source``
    (font attachments or PGS subtitles in .mp4, AAC sound in .webm, a timecode track in .mkv),
    unless ``drop``: then they are left out, and the report says which. Text subtitles are
    converted to a format the container holds, and with ``audio_codec`` (``--audio-codec``) sound
    is re-encoded (:func:`_conversions`)."""
    pictures = Path(output).suffix.lower() in IMAGE_ENCODERS
    sound = sound_encoder(output, audio_codec)
    with open_input(source) as container:
        unfit = _unfit(container, output)
        converted = _conversions(container, output, sound, unfit)
        refused = [_label(s) for s in unfit if sound and s.type == "audio" and s.index not in converted]
        left = [_label(s) for s in unfit if s.index not in converted and not (sound and s.type == "audio")]
        left += [chapters] if (chapters := _unfit_chapters(output, container.chapters())) else []
        # streams are read while their file is open: a closed container's streams crash PyAV
        unfit_sound = any(s.type == "audio" for s in unfit)
        # Matroska holds the most kinds of stream; what it does not (a timecode track) QuickTime may
        keeps_more = next((suffix for suffix in (".mkv", ".mov") if left and not drop and not pictures
                           and suffix != Path(output).suffix.lower() and _holds_all(container, Path(output).with_suffix(suffix), sound)), None)
    if refused:
        tried = own_sound_encoder(output) if sound == AUTO_SOUND else sound
        raise OutputError(f"{Path(output).suffix} files cannot hold {', '.join(refused)} of {Path(source).name} re-encoded "
                          f"with {tried} either; give another --audio-codec, write a .mkv, or give --drop-streams to leave it out")
    if left and not drop:
        if pictures:  # a .mkv is not what was asked for
            raise OutputError(f"{Path(output).suffix} pictures cannot hold {', '.join(left)} of {Path(source).name}; "
                              "give --drop-streams to write the pictures without them, or write a video file (.mkv) to keep them")
        takes_sound = unfit_sound and not sound and container_sound(output) != "none"  # not GIF's
        hints = [f"write a {keeps_more}"] if keeps_more else []
        hints += ["give --audio-codec auto to re-encode the sound"] if takes_sound else []
        hints += ["give --drop-streams to leave them out"]
        raise OutputError(f"{Path(output).suffix or 'the output'} files cannot hold {', '.join(left)} of {Path(source).name}; "
                          f"{', '.join(hints[:-1])}{', or ' if len(hints) > 1 else ''}{hints[-1]}")


def _holds_all(container: av.container.InputContainer, output: Path, sound: str) -> bool:
    """Whether a container named like ``output`` holds every stream of ``container``, converted
    where that is how it holds them (:func:`_conversions`)."""
    unfit = _unfit(container, output)
    converted = _conversions(container, output, sound, unfit)
    return all(s.index in converted for s in unfit)


def _unflagged(source: av.container.InputContainer, streams: dict[object, av.stream.Stream], written_as: dict[object, int],
               output: str | Path) -> list[str]:
    """For each of the ``streams`` of ``source`` whose copy in ``output`` (its index ``written_as``)
    was read back without some of its flags: its label and those flags."""
    kinds = Counter(s.type for s in source.streams)
    with open_input(output) as written:
        lost = {key: flags_lost(stream, written.streams[written_as[key]], kinds[stream.type] > 1) for key, stream in streams.items()}
    return [f"{_label(streams[key])}: {', '.join(flags)}" for key, flags in lost.items() if flags]


def unflagged_note(unflagged: list[str], output: str | Path) -> list[str]:
    return [f"{Path(output).suffix} files do not keep these flags of the input's tracks, which are lost: {'; '.join(unflagged)}"] \
        if unflagged else []


def left_out_note(left_out: list[str], output: str | Path) -> list[str]:
    return [f"left out, as {Path(output).suffix} files cannot hold them: {', '.join(left_out)}"] if left_out else []


def remux(video_source: str | Path | Sequence[Path], other_source: str | Path, output: str | Path, comment: str = "",
          starts: Sequence[Fraction | None] = (), tick: Fraction | None = None, cut: Cut | None = None,
          sound: str = "", damaged: Counter | None = None, unflagged: list[str] | None = None) -> list[str]:
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
    pictures made from it are numbered as its own were. ``cut``: the output is an excerpt of the
    input (``--start``/``--end``); the other streams and the chapters are cut to it, the timecode
    counts from its first frame, and every stream is moved back so that it starts at 0. ``sound``:
    an encoder (:func:`sound_encoder`) for the sound streams the output's container cannot hold,
    which are then re-encoded rather than left out. ``damaged``: counts, by input stream, the
    packets of re-encoded sound that their decoder refused, which are left out. ``unflagged``:
    gets, for each stream whose flags (commentary, forced...: :data:`~vidrestore.io.containers.TRACK_FLAGS`)
    the written file does not keep, "audio stream 2 (aac): commentary, forced", as read back."""
    parts = [Path(video_source)] if isinstance(video_source, (str, Path)) else [Path(p) for p in video_source]
    renumbered = is_sequence(output) and is_sequence(other_source)
    lifting = not is_sequence(output) and lifted(other_source, parts[0])
    with open_input(parts[0]) as vin, open_input(other_source) as oin, \
            (caption_stream() if lifting else contextlib.nullcontext()) as frame_captions_in:
        # Pictures made from a sequence are named by their frames' timestamps, so each goes back to
        # its input's number (see vidrestore.io.sequence.number_offset); else FFmpeg counts from 1.
        out = av.open(str(output), "w", options={**muxer_options(output, other_source), **({"frame_pts": "1"} if renumbered else {})})
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
            if to_annex_b is None and holds_tag(Path(output), vstream):
                # The muxer picks its own tag for a copied stream: iPhone HEVC's hvc1 became hev1,
                # which Apple's players refuse, ProRes 4444's ap4h became HQ's apch, and UT Video
                # 4:2:2 in AVI (ULY2) became RGBA's ULRA, which no decoder could read.
                video.codec_context.codec_tag = vstream.codec_context.codec_tag
            mapping = {("v", vstream.index): video}
            if oin.streams.video:
                original = oin.streams.video[0]
                re_encoded = [p.resolve() for p in parts] != [Path(other_source).resolve()]
                video.metadata.update({k: v for k, v in stream_tags(original, out.format.name).items() if not (re_encoded and _is_encoding_tag(k))})
                video.disposition = original.disposition
            if any(k.lower() == "alpha_mode" and v == "1" for k, v in vstream.metadata.items()):
                # Matroska's AlphaMode, which browsers need to show VP9's alpha: its muxer writes it
                # for an encoder's yuva420p, but a copy's template says yuv420p (FFmpeg's decoder has no alpha)
                video.metadata["alpha_mode"] = "1"
            # a QuickTime master's timecode tracks, or a DPX scan's first timecode
            timecodes = [track.metadata["timecode"] for track in _timecode_tracks(oin)] or \
                [code for code in [probe(other_source).timecode] if code and fits_rate(code, frame_rate_of(vstream))]
            if timecodes:
                video.metadata.setdefault("timecode", timecodes[0])
            played = _played_rate(oin.streams.video[0], other_source, tick) if oin.streams.video else None
            if "timecode" in video.metadata and oin.streams.video and cut is not None:
                video.metadata["timecode"] = timecode_after(video.metadata["timecode"], *_frames_before(oin.streams.video[0], cut, played))
            if "timecode" in video.metadata and oin.streams.video:  # on video made at another rate (--double-rate, --decimate)
                video.metadata["timecode"] = timecode_at(video.metadata["timecode"], played, _played_rate(vstream, None, None))
            if frame_rate_of(vstream):
                # The output's declared rate (Matroska's default duration, the rate a timecode
                # counts in) comes from the codec's; a copied stream has the codec's tick rate
                # there (1000 for a Matroska input, 12800 for x264 at 25 fps), which Matroska
                # then declared as the frame rate and no timecode accepts.
                video.codec_context.framerate = frame_rate_of(vstream)
            unfit_streams = _unfit(oin, output)
            unfit = {s.index for s in unfit_streams}
            conversions = _conversions(oin, output, sound, unfit_streams, cut is not None)
            carried = [s for s in _carried(oin) if s.index not in unfit or s.index in conversions]
            left_out = [_label(s) for s in _carried(oin) if s.index in unfit and s.index not in conversions]
            for s in carried:
                copy = converted_stream(out, s, conversions[s.index]) if s.index in conversions else _carry(out, s)
                if copy.type != "attachment":
                    mapping[("o", s.index)] = copy
            converted = {("o", i): oin.streams[i] for i in conversions}
            if frame_captions_in is not None:
                encoder = _caption_encoder(Path(output).name, frame_captions_in, _trial_video(oin, Path(output).name))
                if encoder is None:
                    left_out.append(FRAME_CAPTIONS)
                else:
                    copy = converted_stream(out, frame_captions_in, Conversion(encoder)) if encoder else _carry(out, frame_captions_in)
                    mapping[LIFTED] = copy
                    converted.update({LIFTED: frame_captions_in} if encoder else {})
            chapters = oin.chapters() if cut is None else _chapters_within(oin.chapters(), cut)
            unkept = _unfit_chapters(output, chapters)
            if chapters and not unkept:
                out.set_chapters(chapters)
            left_out += [unkept] if unkept else []
            packets = _joined_packets(parts, starts)
            if cut is not None and not renumbered:  # a sequence's pictures keep their input's numbers
                packets = _first_at_zero(packets)
            if to_annex_b is not None:
                packets = _filtered(packets, to_annex_b)
            vsrc = ((("v", vstream.index), p) for p in packets)
            osrc_streams = [s for s in carried if ("o", s.index) in mapping]
            osrc = ((("o", p.stream.index), p) for p in (oin.demux(osrc_streams) if osrc_streams else []) if p.size)
            if LIFTED in mapping:
                lifted_packets = ((LIFTED, p) for p in frame_captions(other_source, frame_captions_in, cut.end if cut is not None else None))
                osrc = heapq.merge(osrc, lifted_packets, key=lambda kp: _packet_time(kp[1]))
            if cut is not None:
                sources = {("o", s.index): s for s in carried} | ({LIFTED: frame_captions_in} if LIFTED in mapping else {})
                captions = {key for key, stream in sources.items() if key in mapping and is_caption(stream)}
                osrc = _within(osrc, cut, _sound_prerolls(carried, conversions, out.format.name),
                               captions & converted.keys(), captions - converted.keys())
                osrc = _sound_ended(osrc, cut.moved_to_zero().end, carried, conversions, out.format.name)
            if converted:
                osrc = converting(osrc, {key: (stream, mapping[key]) for key, stream in converted.items()},
                                  _video_end(other_source, cut), None if cut is None else cut.moved_to_zero(), damaged)
            if out.format.name in FRAME_RATE_MUXERS:
                osrc = _from_zero(osrc)
            muxed: Counter = Counter()
            sound_times: dict = {}
            for key, packet in heapq.merge(vsrc, osrc, key=lambda kp: _packet_time(kp[1])):
                if not packet.size and out.format.name == "avi":
                    continue  # FLAC's encoder ends with its header's update alone, which AVI has no place for and its muxer refuses
                if key[0] == "v" and not muxed[key] and out.format.name == "avi" and (packet.dts or 0) > 0:
                    out.mux(_empty_frame(video, packet.time_base))
                if mapping[key].type == "audio":
                    sound_times[key] = _after(packet, sound_times.get(key))
                packet.stream = mapping[key]
                out.mux(packet)
                muxed[key] += 1
            out.close()  # writes the trailer, which can fail too
            if out.format.name == "avi":
                copied = [s for s in carried if s.index not in conversions and ("o", s.index) in mapping]
                with open(output, "r+b") as written:
                    count_in_frames(written, {mapping[("o", s.index)].index: muxed[("o", s.index)] for s in copied if in_frames(s)})
                    time_by_blocks(written, {mapping[("o", s.index)].index: first_packet(other_source, s.index)
                                             for s in copied if block_coded(s)})
            if unflagged is not None and not is_sequence(output):
                sources = {key: oin.streams[key[1]] for key in mapping if key[0] == "o"} | \
                    ({("v", vstream.index): oin.streams.video[0]} if oin.streams.video else {})
                unflagged.extend(_unflagged(oin, sources, {key: mapping[key].index for key in sources}, output))
        except OSError as exc:
            raise OutputError(f"cannot write {output} ({exc.strerror or exc})") from exc
        except av.error.FFmpegError as exc:
            raise OutputError(f"FFmpeg's {out.format.name} muxer could not write {Path(output).name} "
                              f"({exc.strerror or exc}); try a .mkv output") from exc
        finally:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                out.close()  # after a failure; closing again is a no-op
    carry_headers(Path(other_source), Path(output), comment)
    return left_out


def _empty_frame(video: av.stream.Stream, time_base: Fraction) -> av.Packet:
    """An empty packet of ``video`` at 0: AVI's muxer writes the first frame first whatever its
    time, and fills the gap before a later frame with empty ones (which players skip) only after
    it; a video whose first frame is shown later (a frame in, where an encoder's delay put it)
    came back with that frame at 0."""
    packet = av.Packet(b"")
    packet.stream, packet.pts, packet.dts, packet.time_base = video, 0, 0, time_base
    return packet


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
    # never earlier: AVI puts its first frame at 0 whenever it is shown (an MPEG-TS's at 83 ms), and
    # its later frames at their own times, which moving them back by that would make late
    return max(0, packet.pts - _tick_of(start, packet.time_base))


def _tick_of(seconds: Fraction, time_base: Fraction) -> int:
    """``seconds`` in ticks of ``time_base``, rounded as FFmpeg rescales: halves away from zero."""
    ticks = seconds / time_base
    nearest = math.floor(abs(ticks) + Fraction(1, 2))
    return nearest if ticks >= 0 else -nearest


def _put_back(packet: av.Packet, start: Fraction | None) -> None:
    """Show the first ``packet`` of an AVI part at ``start`` (seconds), where its frame belongs: AVI's
    muxer writes a file's first frame first whatever its time, so a part that begins later came
    back from it with its first frame at 0 and its second at its own time. AVI holds no frame out
    of decode order, so its decode time is its presentation time."""
    belongs = None if start is None else _tick_of(start, packet.time_base)
    if belongs is not None and packet.pts is not None and packet.pts < belongs:
        packet.pts = packet.dts = belongs


def _joined_packets(parts: list[Path], starts: Sequence[Fraction | None] = ()) -> Iterator[av.Packet]:
    """The video packets of ``parts`` (the segments of one video, encoded with the same settings),
    one part after the other; they keep their own timestamps, but for the delay a muxer added
    (``starts``: see :func:`remux` and :func:`_start_shift`).

    Each segment starts with a keyframe and its encoder's decode delay is the same in every part,
    so decode timestamps stay increasing across joins; if they do not, the join is refused rather
    than written with timestamps a player would misread."""
    last_dts, lead = None, None
    for part, start in itertools.zip_longest(parts, starts[: len(parts)]):
        with open_input(part) as container:
            first = None
            for packet in _decode_times_filled(_part_packets(container, start), lead):
                if packet.dts is not None and last_dts is not None and packet.dts <= last_dts:
                    raise OutputError(f"cannot join segment {part.name}: its timestamps overlap the previous segment's; "
                                      "restore this video as one segment (--segment-frames 0)")
                last_dts = packet.dts if packet.dts is not None else last_dts
                first = packet if first is None else first
                yield packet
            if first is not None and first.pts is not None and first.dts is not None:
                lead = first.pts - first.dts


def _part_packets(container: av.container.InputContainer, start: Fraction | None) -> Iterator[av.Packet]:
    """The video packets of a part, less the delay a muxer added (see :func:`_start_shift`)."""
    shift = None
    for packet in container.demux(container.streams.video[0]):
        if not packet.size:
            continue
        if shift is None and container.format.name == "avi":
            _put_back(packet, start)
        shift = _start_shift(packet, start) if shift is None else shift
        if shift:
            packet.pts = packet.pts - shift if packet.pts is not None else None
            packet.dts = packet.dts - shift if packet.dts is not None else None
        yield packet


def _decode_times_filled(packets: Iterable[av.Packet], lead: int | None) -> Iterator[av.Packet]:
    """``packets`` of one part with the decode times its demuxer left unknown at its start filled.
    Matroska stores none: its demuxer knows a part's first ones only once its B-frames' delay
    shows, and the muxer's guess for a later part's, from the times it had seen, went back in time,
    which it then refused ("Invalid argument": every video longer than a segment failed into .mkv
    after the work). They are counted back from the first known one by each packet's duration; in
    a part with none known (of a frame or two), ``lead`` ticks before each presentation time in
    order, the lead of the part before."""
    held: list[av.Packet] | None = []  # None once past the part's start
    for packet in packets:
        if held is not None and packet.dts is None and packet.pts is not None:
            held.append(packet)
            continue
        if held and packet.dts is not None and all(p.duration for p in held):
            dts = packet.dts
            for earlier in reversed(held):
                dts -= earlier.duration
                earlier.dts = dts
        yield from held or []
        held = None  # a decode time unknown later is the demuxer's to leave
        yield packet
    if held and lead is not None:
        for earlier, pts in zip(held, sorted(p.pts for p in held)):
            earlier.dts = pts - lead
    yield from held or []
