"""Streams that the output's container cannot hold as they are, written in a form it can: sound
re-encoded with the encoder ``--audio-codec`` names, text subtitles converted to the container's
own kind (SRT in Matroska to MP4's timed text, and back, or to WebVTT for WebM).

Sound is re-encoded only when asked, as a lossy encoder loses something each time; a subtitle's
words are kept whole by any text format, so it is converted without asking and the report says so.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import OutputError, UsageError

# Text subtitle formats whose FFmpeg decoders give whole cues (closed captions, also text to
# FFmpeg, are a stream of screen updates tied to the video's frames, and are left to the refusal).
TEXT_SUBTITLES = frozenset({"subrip", "ass", "ssa", "mov_text", "webvtt", "text"})

# What a text subtitle is converted to, the first the output's container holds: MP4 and QuickTime
# hold MP4's timed text alone, Matroska SRT (the kind most players and editors read) and WebM
# WebVTT alone.
TEXT_ENCODERS = ("mov_text", "subrip", "webvtt")

# Styled formats: converting them keeps the words, bold, italics and colours, but not the
# positions, fonts and effects that other formats have no place for.
STYLED_SUBTITLES = frozenset({"ass", "ssa"})

SOUND_BITS_PER_CHANNEL = 96_000  # a lossy encoder's bit rate for each channel: transparent for AAC and Opus

BROADCAST_RATE = 48_000  # the rate MXF takes, and every sound encoder

# AVI and DV state a channel count, not a layout: one or two channels are mono or stereo.
UNORDERED = {"1 channels": "mono", "2 channels": "stereo"}


@dataclass(frozen=True)
class Conversion:
    """How a stream of the input is written into the output: with ``encoder``, and for sound at ``rate``."""

    encoder: str
    rate: int = 0


def is_text_subtitle(stream: av.stream.Stream) -> bool:
    return stream.type == "subtitle" and stream.codec_context.codec.canonical_name in TEXT_SUBTITLES


def trial_cue(codec: str) -> av.Packet:
    """One cue, "trial", in the text subtitle format ``codec``, as FFmpeg's encoder writes it."""
    decoder = av.CodecContext.create("subrip", "r")
    text = av.Packet(b"trial")
    text.pts, text.duration, text.time_base = 0, 1000, Fraction(1, 1000)
    cue = decoder.decode2(text)
    encoder = av.CodecContext.create(codec, "w")
    encoder.subtitle_header = decoder.subtitle_header
    return encoder.encode_subtitle(cue)


def container_sound(output: str | Path) -> str:
    """The sound encoder FFmpeg gives the container of ``output``; "none" where it holds no sound
    (pictures, GIF)."""
    scratch = io.BytesIO()
    scratch.name = Path(output).name
    with contextlib.closing(av.open(scratch, "w")) as out:
        return out.default_audio_codec


def sound_encoder(output: str | Path, wanted: str) -> str:
    """The encoder ``--audio-codec wanted`` names for ``output`` ("auto": the one FFmpeg gives its
    container: AAC for .mp4 and .mov, Opus for .webm, 16-bit PCM for .mxf); "" for none, and where
    the container holds no sound at all (pictures, GIF)."""
    own = container_sound(output) if wanted else "none"
    if own == "none":
        return ""
    wanted = own if wanted == "auto" else wanted
    try:
        codec = av.Codec(wanted, "w")
    except av.error.FFmpegError:
        codec = None
    if codec is None or codec.type != "audio":
        raise UsageError(f"--audio-codec {wanted}: not a sound encoder this FFmpeg has (try aac, libopus, flac or pcm_s24le)")
    return codec.name


def converted_stream(out: av.container.OutputContainer, stream: av.stream.Stream, conversion: Conversion) -> av.stream.Stream:
    """Add to ``out`` a stream that writes ``stream`` of an input through ``conversion``, with its
    tags and disposition: sound with its channels (a lossy encoder at :data:`SOUND_BITS_PER_CHANNEL`),
    a subtitle with the styles its decoder read (the encoder turns them into its own)."""
    codec = av.Codec(conversion.encoder, "w")
    if stream.type == "subtitle":
        copy = out.add_stream(codec.name)
        if not stream.codec_context.is_open:  # the decoder states its styles (an ASS header) once open
            stream.codec_context.open()
        copy.codec_context.subtitle_header = stream.codec_context.subtitle_header
    else:
        copy = out.add_stream(codec.name, rate=conversion.rate)
        layout = stream.codec_context.layout.name
        copy.layout = UNORDERED.get(layout, layout)
        if codec.lossy:
            copy.bit_rate = SOUND_BITS_PER_CHANNEL * stream.codec_context.layout.nb_channels
    copy.disposition = stream.disposition
    copy.metadata.update(stream.metadata)
    return copy


def _sound(source: av.stream.Stream, copy: av.stream.Stream, packet: av.Packet | None) -> Iterator[av.Packet]:
    """The sound of ``packet`` (None: what the decoder and encoder still hold) encoded again."""
    for frame in source.codec_context.decode(packet):
        yield from copy.encode(frame)
    if packet is None:
        yield from copy.encode(None)


def _decoded(source: av.stream.Stream, packet: av.Packet) -> av.subtitles.subtitle.SubtitleSet | None:
    """The cue of ``packet``; text that is not UTF-8 (an SRT in Windows-1252, muxed as it was
    written) is read in that code page, as players do, where FFmpeg refuses it. MP4's timed text,
    which states its length in bytes before its styles, must be UTF-8."""
    try:
        return source.codec_context.decode2(packet)
    except av.error.InvalidDataError:
        if source.codec_context.codec.canonical_name == "mov_text":
            raise
        legacy = av.Packet(bytes(packet).decode("cp1252", "replace").encode())
        legacy.pts, legacy.dts, legacy.duration, legacy.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
        return source.codec_context.decode2(legacy)


def _subtitle(source: av.stream.Stream, copy: av.stream.Stream, packet: av.Packet | None) -> Iterator[av.Packet]:
    """The cue of ``packet`` in the format of ``copy``, shown at the same time for as long. An
    empty cue (MP4 writes one to clear the screen between two) is left out: every other format
    states how long each cue lasts."""
    try:
        cue = _decoded(source, packet) if packet is not None else None
        converted = copy.codec_context.encode_subtitle(cue) if cue is not None and len(cue.rects) else None
    except av.error.FFmpegError as exc:
        raise OutputError(f"cannot convert the cue of subtitle stream {source.index} at {float(packet.pts * packet.time_base):.3f} s "
                          f"to {copy.codec_context.name} ({exc.strerror or exc}); write a container that holds {source.codec_context.name} as it is") from exc
    if converted is None:
        return
    converted.pts, converted.dts, converted.duration = packet.pts, packet.dts, packet.duration
    converted.time_base = packet.time_base
    yield converted


def converting(packets: Iterator[tuple[tuple[str, int], av.Packet]],
               streams: dict[tuple[str, int], tuple[av.stream.Stream, av.stream.Stream]]) -> Iterator[tuple[tuple[str, int], av.Packet]]:
    """``packets``, but those of ``streams`` (key: (input stream, its conversion in the output))
    decoded and encoded again; what the sound encoders still hold comes at the end."""
    for key, packet in packets:
        if key not in streams:
            yield key, packet
            continue
        source, copy = streams[key]
        write = _subtitle if source.type == "subtitle" else _sound
        yield from ((key, converted) for converted in write(source, copy, packet))
    for key, (source, copy) in streams.items():
        write = _subtitle if source.type == "subtitle" else _sound
        yield from ((key, converted) for converted in write(source, copy, None))
