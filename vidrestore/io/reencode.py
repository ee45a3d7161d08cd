"""Streams that the output's container cannot hold as they are, written in a form it can: sound
re-encoded with the encoder ``--audio-codec`` names, subtitles converted to the container's own
kind: text to text (SRT in Matroska to MP4's timed text, and back, or to WebVTT for WebM),
pictures to pictures (a Blu-ray's PGS or a broadcast's DVB subtitles to DVD's for MP4).

Sound is re-encoded only when asked, as a lossy encoder loses something each time; a subtitle's
words are kept whole by any text format, and its pictures keep their place and shape, so it is
converted without asking and the report says so.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import OutputError, UsageError
from .containers import muxer_of, stream_tags
from .excerpt import Cut
from .probe import codec_name, open_input
from .soundcut import trimmed

# Text subtitle formats whose FFmpeg decoders give whole cues, each at its packet's time.
TEXT_SUBTITLES = frozenset({"subrip", "ass", "ssa", "mov_text", "webvtt", "text"})

# Closed captions (CEA-608, in QuickTime's c608 tracks), converted to text as text subtitles are.
# They are commands that draw on a screen, not cues: FFmpeg's decoder gives a caption once it
# leaves the screen, with the time it came on and how long it stayed (a pop-on caption whole, a
# roll-up one line by line), so a caption's packet is not its time, and one still on the screen
# at the end comes out only when the screen is erased (:data:`_ERASE_SCREEN`). Its words and line
# breaks are kept; its place on the screen and its colours are not.
CAPTIONS = frozenset({"eia_608"})

# CEA-608's Erase Displayed Memory on channel 1, sent twice as broadcasters do, as the cc_data the
# decoder reads (field 1, valid): fed to the decoder at the end, it gives the caption on the screen.
_ERASE_SCREEN = bytes.fromhex("fc942cfc942c")

# What a text subtitle is converted to, the first the output's container holds: MP4 and QuickTime
# hold MP4's timed text alone, Matroska SRT (the kind most players and editors read) and WebM
# WebVTT alone.
TEXT_ENCODERS = ("mov_text", "subrip", "webvtt")

# Styled formats: converting them keeps the words, bold, italics and colours, but not the
# positions, fonts and effects that other formats have no place for.
STYLED_SUBTITLES = frozenset({"ass", "ssa"})

# Subtitle formats of pictures (Blu-ray's, DVD's, DVB's), and what they are converted to: DVD's,
# for MP4 and MPEG-PS. No text is read off the pictures (that would take OCR). DVB's is not made:
# MPEG-TS states no durations, and a DVB picture stays until a packet clears it, which PyAV
# cannot make.
BITMAP_SUBTITLES = frozenset({"hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle"})
BITMAP_ENCODERS = ("dvdsub",)

# A DVD subtitle has four colours (of a palette of 16); PGS's and DVB's have up to 256, whose
# anti-aliased edges lose their steps in it.
FOUR_COLOURS = "dvdsub"

# A DVD subtitle of one picture, 20 by 6 pixels, as FFmpeg's encoder wrote it: decoded, it is the
# picture a trial cue of a bitmap format is encoded from (PyAV makes no picture cue of its own).
_TRIAL_SPU = bytes.fromhex("002e0010051005100510051005100510000000280300100400f005004017004009060004000a01ff002b002802ff")

# A PGS display set that clears the screen (its composition, a window count of 0, its end): the
# trial cue of a format FFmpeg cannot encode.
_TRIAL_PGS = bytes.fromhex("16000b0040003010000000000000" "17000100" "800000")

# The end a decoder gives a cue that lasts until the next one clears it (PGS's, DVB's).
_UNTIL_CLEARED = 0xFFFFFFFF


SOUND_BITS_PER_CHANNEL = 96_000  # a lossy encoder's bit rate for each channel: transparent for AAC and Opus

BROADCAST_RATE = 48_000  # the rate MXF takes, and every sound encoder

# AVI and DV state a channel count, not a layout, and so does Matroska for PCM: one or two channels
# are mono or stereo, six and eight the order WAVE files and every player take for them, 5.1 and
# 7.1. (The MP4 muxer refuses a count alone, at its last write.)
UNORDERED = {"1 channels": "mono", "2 channels": "stereo", "6 channels": "5.1", "8 channels": "7.1"}


@dataclass(frozen=True)
class Conversion:
    """How a stream of the input is written into the output: with ``encoder``, and for sound at
    ``rate``. ``recut``: sound that the container holds as it is, re-encoded without loss so that
    an excerpt's sound is cut to the sample (:func:`lossless_recut`). ``layout``: see
    :func:`speaker_names`."""

    encoder: str
    rate: int = 0
    recut: bool = False
    layout: str = ""  # sound's channel layout as written, where the encoder names its speakers otherwise ("" its own)


# FFmpeg's FLAC encoder writes 32-bit samples as 24 bits (32-bit FLAC is a recent, experimental
# part of the format): sound of more bits would lose its lowest.
FLAC_MOST_BITS = 24


# Lossless sound of at most 24 bits a sample that decodes to 32-bit samples: DVD's and Blu-ray's
# PCM, TrueHD, MLP and TTA (and PCM named for its 24 bits).
_AT_MOST_24_BITS = re.compile(r"pcm_dvd|pcm_bluray|truehd|mlp|tta|pcm_[su]24\w*")

# The lossless encoder an excerpt's sound of each lossless codec is written again with, so that it
# is cut to the sample: its own codec's where FFmpeg's encoder writes the decoded samples again
# exactly; FLAC for TTA, since FFmpeg's Matroska demuxer makes TTA's header from the file's duration,
# and an excerpt's TTA, copied or re-encoded, read back with 256 times too many samples and did not
# decode. TrueHD and MLP have no encoder, and TrueHD's Atmos objects would not survive another
# codec: they are cut at their packets.
_RECUT_INTO = {"flac": "flac", "alac": "alac", "wavpack": "wavpack", "tta": "flac"}

# The most bits a sample that each of those encoders keeps: FLAC's and ALAC's write 32-bit samples
# as 24 bits; WavPack keeps 32-bit and float samples.
_RECUT_MOST_BITS = {"flac": FLAC_MOST_BITS, "alac": 24, "wavpack": 32}

# The PCM encoder that writes decoded samples of each (packed) format as they are.
_PCM_ENCODERS = {"u8": "pcm_u8", "s16": "pcm_s16le", "s32": "pcm_s32le", "flt": "pcm_f32le", "dbl": "pcm_f64le"}


def lossless_recut(stream: av.stream.Stream) -> str:
    """The encoder that writes the sound ``stream`` again sample for sample, so that it can be cut
    between any two samples: FLAC's, ALAC's or WavPack's for sound in that codec, FLAC's for TTA
    (:data:`_RECUT_INTO`), where it takes the decoded samples as they are and keeps all their
    bits; "" for any other sound. Plain PCM is split as it is (``soundcut.splits``)."""
    encoder = _RECUT_INTO.get(stream.codec_context.codec.canonical_name if stream.type == "audio" else "", "")
    if not encoder:
        return ""
    takes = stream.codec_context.format.name in (f.name for f in av.Codec(encoder, "w").audio_formats or ())
    return encoder if takes and _bits(stream) <= _RECUT_MOST_BITS[encoder] else ""


def _lossless_encoders(stream: av.stream.Stream) -> list[str]:
    """The encoders that write the sound ``stream`` again sample for sample, where it is lossless
    (DVD's or Blu-ray's PCM, FLAC, TrueHD...): FLAC where it keeps every bit, then PCM of its decoded
    samples (24-bit where they hold no more); none for lossy sound."""
    codec = stream.codec_context.codec
    if not codec.lossless or codec.lossy:  # DTS is both: its lossless part is an extension of a lossy core
        return []
    packed, bits = stream.codec_context.format.packed.name, _bits(stream)
    flac = ["flac"] if packed in ("s16", "s32") and bits <= FLAC_MOST_BITS else []
    pcm = "pcm_s24le" if packed == "s32" and bits <= 24 else _PCM_ENCODERS.get(packed)
    return flac + ([pcm] if pcm else [])


def _bits(stream: av.stream.Stream) -> int:
    """Bits a sample of the sound ``stream`` holds: FLAC's and ALAC's from their setup, 24 for the
    codecs of :data:`_AT_MOST_24_BITS`, else the width of its decoded samples."""
    context = stream.codec_context
    name = context.codec.canonical_name
    if name in _SETUP_BITS and context.extradata:
        return _SETUP_BITS[name](context.extradata)
    return 24 if _AT_MOST_24_BITS.fullmatch(name) else context.format.bytes * 8


def _flac_bits(setup: bytes) -> int:
    """Bits a sample of the FLAC sound whose decoder setup is ``setup``: its STREAMINFO block,
    after the "fLaC" marker and the block's header where a container keeps those."""
    info = setup[8:] if setup[:4] == b"fLaC" else setup
    return ((info[12] & 0x01) << 4 | info[13] >> 4) + 1  # 5 bits, after the rate's 20 and the channels' 3


def _alac_bits(setup: bytes) -> int:
    """Bits a sample of the ALAC sound whose decoder setup is ``setup``: its ALACSpecificConfig,
    after the "alac" atom's header where a container keeps that."""
    info = setup[12:] if setup[4:8] == b"alac" else setup
    return info[5]  # after the frame length's 4 bytes and the version's 1


# The codecs whose decoder setup states the bits of a sample, and how to read them from it.
_SETUP_BITS = {"flac": _flac_bits, "alac": _alac_bits}


def _sample_format(codec: av.Codec, source: av.AudioFormat) -> str:
    """The sample format ``codec`` encodes sound decoded as ``source`` in: the same where the
    encoder takes it (packed or planar), else the encoder's first. FLAC's first is 16-bit, which
    lost 24-bit sound's lower bits."""
    formats = [f.name for f in codec.audio_formats or ()]
    return next((name for name in (source.name, source.packed.name, source.planar.name) if name in formats),
                formats[0] if formats else source.name)


def is_text_subtitle(stream: av.stream.Stream) -> bool:
    return stream.type == "subtitle" and stream.codec_context.codec.canonical_name in TEXT_SUBTITLES


def subtitle_encoders(stream: av.stream.Stream) -> tuple[str, ...]:
    """The encoders a subtitle ``stream`` may be converted with, in order of preference; none
    for other streams and for subtitles of other formats (CEA-708, teletext)."""
    name = stream.codec_context.codec.canonical_name if stream.type == "subtitle" else ""
    return TEXT_ENCODERS if name in TEXT_SUBTITLES | CAPTIONS else BITMAP_ENCODERS if name in BITMAP_SUBTITLES else ()


def is_caption(stream: av.stream.Stream) -> bool:
    """Whether ``stream`` holds closed captions (:data:`CAPTIONS`)."""
    return stream.type == "subtitle" and stream.codec_context.codec.canonical_name in CAPTIONS


# How far back from an excerpt's start the commands that drew its caption are looked for: a
# roll-up caption of three rows lifted from the frames, a pair a frame, takes a hundred packets or so.
_REDRAW_REACH = 1024

_PADDING_PAIR = b"\x80\x80"  # CEA-608's pair that says nothing (0 and 0, with odd parity)


def redrawn(packets: Sequence[av.Packet]) -> bytes:
    """The CEA-608 commands (cc_data triplets, padding left out) of the last of ``packets`` (a
    caption track's, before an excerpt's start) that leave on the screen what all of them leave
    there, joined: replayed at the start, they redraw it. The fewest that do, found by halving
    (more of them redraw whatever fewer do); b"" when the screen is left blank, or when the last
    :data:`_REDRAW_REACH` packets do not redraw it."""
    shown = _screen(packets)
    if shown is None:
        return b""

    def redraws(first: int) -> bool:
        return _screen([av.Packet(_commands(packets[first:]))]) == shown

    low, high = max(len(packets) - _REDRAW_REACH, 0), len(packets) - 1
    if not redraws(low):
        return b""
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if redraws(middle) else (low, middle - 1)
    return _commands(packets[low:])


def _commands(packets: Sequence[av.Packet]) -> bytes:
    """The cc_data triplets of ``packets`` joined, but those that carry padding: a player plays a
    pair a frame, so a replay is as short as its commands."""
    data = b"".join(bytes(packet) for packet in packets)
    triplets = (data[i:i + 3] for i in range(0, len(data) - 2, 3))
    return b"".join(triplet for triplet in triplets if triplet[1:] != _PADDING_PAIR)


def _screen(packets: Sequence[av.Packet]) -> tuple[bytes, ...] | None:
    """What CEA-608 ``packets`` leave on the screen, row by row with each row's place (as FFmpeg's
    decoder writes the caption once :data:`_ERASE_SCREEN` takes it off), or None when it is blank."""
    decoder = av.CodecContext.create(next(iter(CAPTIONS)), "r")
    for packet in packets:
        decoder.decode2(packet)
    cue = decoder.decode2(av.Packet(_ERASE_SCREEN))
    if cue is None or not len(cue.rects):
        return None
    return tuple(rect.ass.split(b",", 8)[-1] for rect in cue.rects)  # after the order a cue was read in


def trial_cue(codec: str) -> av.Packet:
    """One cue in the subtitle format ``codec`` as FFmpeg's encoder writes it: the word "trial",
    or a picture; for PGS and CEA-608, which FFmpeg cannot encode, a display set that clears the
    screen, and a command that erases it."""
    if codec == "hdmv_pgs_subtitle":
        return av.Packet(_TRIAL_PGS)
    if codec in CAPTIONS:
        return av.Packet(_ERASE_SCREEN)
    encoder = av.CodecContext.create(codec, "w")
    bitmap = encoder.codec.bitmap_sub
    decoder = av.CodecContext.create("dvdsub" if bitmap else "subrip", "r")
    sample = av.Packet(_TRIAL_SPU if bitmap else b"trial")
    sample.pts, sample.duration, sample.time_base = 0, 1000, Fraction(1, 1000)
    cue = decoder.decode2(sample)
    encoder.subtitle_header = decoder.subtitle_header
    return encoder.encode_subtitle(cue)


def container_sound(output: str | Path) -> str:
    """The sound encoder FFmpeg gives the container of ``output``; "none" where it holds no sound
    (pictures, GIF)."""
    scratch = io.BytesIO()
    scratch.name = Path(output).name
    with contextlib.closing(av.open(scratch, "w")) as out:
        return out.default_audio_codec


AUTO_SOUND = "auto"


def own_sound_encoder(output: str | Path) -> str:
    """The encoder of the sound FFmpeg gives the container of ``output`` (:func:`container_sound`),
    by its encoder's name (libopus for Opus)."""
    return av.Codec(container_sound(output), "w").name


def sound_encoder(output: str | Path, wanted: str) -> str:
    """The encoder ``--audio-codec wanted`` names for ``output``, or "auto" (:data:`AUTO_SOUND`),
    which :func:`sound_encoders` chooses for each stream; "" for none, and where the container
    holds no sound at all (pictures, GIF)."""
    own = container_sound(output) if wanted else "none"
    if own == "none":
        return ""
    if wanted == AUTO_SOUND:
        return AUTO_SOUND
    try:
        codec = av.Codec(wanted, "w")
    except (av.error.FFmpegError, ValueError):  # PyAV 18 names an unknown codec with a ValueError
        codec = None
    if codec is None or codec.type != "audio":
        raise UsageError(f"--audio-codec {wanted}: not a sound encoder this FFmpeg has (try aac, libopus, flac or pcm_s24le)")
    return codec.name


# The same speakers under FFmpeg's other name: a surround pair said to be at the side or at the
# back. AC-3 and DTS say side (DVD's 5.1), Opus and Vorbis take only back, and a DVD's 5.1 into
# .webm was refused. Written so, the samples are the same (swresample moves side to back).
_OTHER_SPEAKER_NAMES = {"5.1(side)": "5.1", "5.0(side)": "5.0", "quad(side)": "quad",
                        "5.1": "5.1(side)", "5.0": "5.0(side)", "quad": "quad(side)"}


def speaker_names(stream: av.audio.stream.AudioStream) -> list[str]:
    """The layouts to write sound ``stream`` with, in order: its own ("" for it), then its
    speakers under another name, for an encoder that takes that alone."""
    return ["", *filter(None, [_OTHER_SPEAKER_NAMES.get(stream.codec_context.layout.name)])]


def sound_encoders(stream: av.stream.Stream, output: str | Path, sound: str) -> list[str]:
    """The encoders to try, in order, for the sound ``stream`` going into ``output`` re-encoded with
    ``sound`` (as :func:`sound_encoder` gives it): that encoder; for "auto", lossless sound's
    lossless encoders (:func:`_lossless_encoders`: DVD's PCM into .mkv became AC-3), then the
    one FFmpeg gives the container (AAC for .mp4 and .mov, Opus for .webm, 16-bit PCM for .mxf),
    then, for surround sound, AC-3, where that one takes two channels at most (MP3, .avi's: a
    film's 5.1 E-AC-3 had no way into an .avi)."""
    if sound != AUTO_SOUND:
        return [sound]
    lossless = _lossless_encoders(stream)
    if muxer_of(Path(output)) == "avi":  # FLAC in AVI is FFmpeg's own mapping, which few players read; PCM all do
        lossless.sort(key=lambda encoder: encoder == "flac")
    surround = ["ac3"] if stream.codec_context.layout.nb_channels > 2 else []
    return list(dict.fromkeys([*lossless, own_sound_encoder(output), *surround]))


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
        copy.layout = conversion.layout or UNORDERED.get(layout, layout)
        copy.format = _sample_format(codec, stream.codec_context.format)
        if codec.lossy:
            copy.bit_rate = SOUND_BITS_PER_CHANNEL * stream.codec_context.layout.nb_channels
    copy.disposition = stream.disposition
    copy.metadata.update(stream_tags(stream, out.format.name))
    return copy


class _Sound:
    """The sound of ``source`` encoded again as ``copy``; only its samples ``within`` (seconds on
    the packets' clock) where that is given. Where a container keeps coarser times than the
    samples' (Matroska's milliseconds: ALAC's packets of 4096 samples at 48 kHz start up to 16
    samples off them), a frame that starts within a tick of where the one before it ended is
    taken to start there, so the sound kept is counted in samples from the frame that holds the
    start: it ended 16 samples short at 1.2 s. That frame's own time is as exact as the container's."""

    def __init__(self, source: av.stream.Stream, copy: av.stream.Stream, within: Cut | None, damaged: Counter) -> None:
        self.source, self.copy, self.within, self.damaged = source, copy, within, damaged
        self.reached: Fraction | None = None  # where the last frame kept ended (seconds)
        self.first: tuple[str, str, int] | None = None  # the first frame's sample format, speakers and rate
        self.mixer: tuple[tuple[str, str, int], av.AudioResampler] | None = None  # for frames unlike it

    def __call__(self, packet: av.Packet | None) -> Iterator[av.Packet]:
        """``packet``'s sound encoded again (None: what the decoder and encoder still hold). A
        packet its decoder refuses is left out and counted in ``damaged`` by its stream's index,
        as FFmpeg's command line goes on past it: one damaged packet of a capture's sound failed
        the run after the work."""
        try:
            frames = self.source.codec_context.decode(packet)
        except av.error.EOFError:
            raise
        except av.error.FFmpegError:
            self.damaged[self.source.index] += 1
            frames = []
        for frame in (alike for decoded in frames for alike in self._alike(decoded)):
            time = self._start(frame)
            kept = frame if self.within is None else trimmed(frame, self.within, time)
            if kept is not None:
                self.reached = time + Fraction(frame.samples, frame.sample_rate)
                yield from self.copy.encode(kept)
        if packet is None:
            yield from self.copy.encode(None)

    def _alike(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        """``frame`` as the first frame was (sample format, speakers, rate), which PyAV's encoder
        takes alone after it: a TV capture's sound that went from stereo to 5.1 as a film began
        failed with a traceback. Speakers are mixed, and a rate converted, by swresample."""
        kind = (frame.format.name, frame.layout.name, frame.sample_rate)
        self.first = self.first or kind
        if kind == self.first:
            return [frame]
        if self.mixer is None or self.mixer[0] != kind:
            fmt, layout, rate = self.first
            self.mixer = kind, av.AudioResampler(format=fmt, layout=layout, rate=rate)
        mixed, done = self.mixer[1].resample(frame), 0
        for made in mixed:  # on the decoder's clock, as the frames before were: the encoder keeps to the first's
            made.time_base = frame.time_base
            made.pts = None if frame.pts is None else frame.pts + round(Fraction(done, made.sample_rate) / frame.time_base)
            done += made.samples
        return mixed

    def _start(self, frame: av.AudioFrame) -> Fraction:
        tick = Fraction(self.source.time_base or frame.time_base)
        if frame.pts is None:  # WMA's decoder gives its last frame untimed, as it is flushed: it follows on
            frame.pts, frame.time_base = math.ceil((self.reached or 0) / tick), tick
        stamped = Fraction(frame.pts) * frame.time_base
        return self.reached if self.reached is not None and abs(stamped - self.reached) <= tick else stamped


def damaged_sound_note(source: str | Path, damaged: Counter) -> list[str]:
    """The report's word on the sound packets of ``source`` left out as damaged (see :func:`converting`)."""
    if not damaged:
        return []
    with open_input(source) as container:
        parts = [f"{count} of audio stream {index} ({codec_name(container.streams[index])})" for index, count in sorted(damaged.items())]
    return [f"sound packets their decoder could not read were left out of the re-encoded sound (a gap each): {', '.join(parts)}"]


class _Cues:
    """The cues of the subtitle stream ``source`` in the format of ``copy``, each shown at the
    time of its packet. A text cue lasts as long as it says (text cues may overlap); a picture
    (PGS, DVB, DVD) lasts until the next display set replaces or clears it, or its own end comes
    first (DVB's page time-out), so it is held until the next arrives. None is shown past
    ``until`` (the video's end, in seconds on the packets' clock), which the last held one, never
    cleared, lasts to. Empty cues (MP4's between two, clearing sets) are left out: every other
    format states how long each cue lasts. A closed caption is shown when its decoder says it came
    on (:data:`CAPTIONS`), and not before ``within`` (an excerpt's, whose captions come with every
    packet before its start, since any of them may have drawn what is on the screen there)."""

    def __init__(self, source: av.stream.Stream, copy: av.stream.Stream, until: Fraction | None, within: Cut | None = None) -> None:
        self.source, self.copy, self.until, self.within = source, copy, until, within
        self.pictures = source.codec_context.codec.bitmap_sub
        self.captions = is_caption(source)
        self.held: tuple[av.subtitles.subtitle.SubtitleSet, av.Packet] | None = None
        self.last: av.Packet | None = None  # the last caption packet, for the erase at the end

    def __call__(self, packet: av.Packet | None) -> Iterator[av.Packet]:
        if packet is None:
            if self.held is not None:
                yield from self._encoded(*self.held, None)
            if self.captions and self.last is not None:
                yield from self._caption(self._decoded(self._erase()), self.last)
            return
        cue = self._decoded(packet)
        if self.captions:
            self.last = packet
            yield from self._caption(cue, packet)
            return
        if cue is None:  # a PGS segment before its display set's end
            return
        if self.held is not None:
            yield from self._encoded(*self.held, packet.pts)
            self.held = None
        if len(cue.rects) and self.pictures:
            self.held = cue, packet
        elif len(cue.rects):
            yield from self._encoded(cue, packet, None)

    def _erase(self) -> av.Packet:
        """A packet that erases the caption screen at the video's end (or once the last packet
        has ended, if later or the end is unknown), so that the decoder gives what is on it."""
        last = self.last
        ended = (last.pts + last.duration) * last.time_base
        erase = av.Packet(_ERASE_SCREEN)
        erase.pts = erase.dts = math.ceil(max(ended, self.until if self.until is not None else ended) / last.time_base)
        erase.duration, erase.time_base = 0, last.time_base
        return erase

    def _caption(self, cue: av.subtitles.subtitle.SubtitleSet | None, packet: av.Packet) -> Iterator[av.Packet]:
        """The caption ``cue`` (given at ``packet``) encoded from the time it came on, which the
        decoder counts in microseconds, to its own end; within :attr:`within`."""
        if cue is None or not len(cue.rects):
            return
        start = Fraction(cue.pts, 1_000_000) if cue.pts is not None else packet.pts * packet.time_base
        end = None if cue.end_display_time == _UNTIL_CLEARED else start + Fraction(cue.end_display_time, 1000)
        if self.within is not None and start < self.within.start:
            start = self.within.start
        if end is not None and end <= start:
            return  # gone before the excerpt starts
        shown = av.Packet()
        shown.pts, shown.duration, shown.time_base = math.ceil(start / packet.time_base), 0, packet.time_base
        if end is not None:
            cue.start_display_time, cue.end_display_time = 0, round((end - shown.pts * shown.time_base) * 1000)
        yield from self._encoded(cue, shown, None)

    def _decoded(self, packet: av.Packet) -> av.subtitles.subtitle.SubtitleSet | None:
        """The cue of ``packet``; text that is not UTF-8 (an SRT in Windows-1252, muxed as it was
        written) is read in that code page, as players do, where FFmpeg refuses it. MP4's timed
        text, which states its length in bytes before its styles, must be UTF-8."""
        try:
            return self.source.codec_context.decode2(packet)
        except av.error.InvalidDataError as exc:
            if self.source.codec_context.codec.canonical_name == "mov_text" or not is_text_subtitle(self.source):
                raise self._unconverted(packet, exc) from exc
            legacy = av.Packet(bytes(packet).decode("cp1252", "replace").encode())
            legacy.pts, legacy.dts, legacy.duration, legacy.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
            return self.source.codec_context.decode2(legacy)
        except av.error.FFmpegError as exc:
            raise self._unconverted(packet, exc) from exc

    def _encoded(self, cue: av.subtitles.subtitle.SubtitleSet, packet: av.Packet, end: int | None) -> Iterator[av.Packet]:
        """``cue`` (of ``packet``) encoded, ending at its own end, at ``end`` (in the packet's
        time base) or at the video's, whichever comes first."""
        own = None if cue.end_display_time == _UNTIL_CLEARED else \
            packet.pts + round(Fraction(cue.end_display_time, 1000) / packet.time_base)
        video_end = None if self.until is None else round(self.until / packet.time_base)
        end = min((t for t in (own, end, video_end) if t is not None), default=None)
        duration = packet.duration if end is None else max(end - packet.pts, 1)
        if end is not None:
            cue.end_display_time = round(duration * packet.time_base * 1000)  # (from the packet's time, as the start)
        try:
            converted = self.copy.codec_context.encode_subtitle(cue)
        except av.error.FFmpegError as exc:
            raise self._unconverted(packet, exc) from exc
        converted.pts, converted.dts, converted.duration = packet.pts, packet.pts, duration
        converted.time_base = packet.time_base
        yield converted

    def _unconverted(self, packet: av.Packet, exc: av.error.FFmpegError) -> OutputError:
        return OutputError(f"cannot convert the cue of subtitle stream {self.source.index} at {float(packet.pts * packet.time_base):.3f} s "
                           f"to {self.copy.codec_context.name} ({exc.strerror or exc}); write a container that holds "
                           f"{self.source.codec_context.name} as it is")


def converting(packets: Iterator[tuple[tuple[str, int], av.Packet]],
               streams: dict[tuple[str, int], tuple[av.stream.Stream, av.stream.Stream]],
               until: Fraction | None = None, within: Cut | None = None,
               damaged: Counter | None = None) -> Iterator[tuple[tuple[str, int], av.Packet]]:
    """``packets``, but those of ``streams`` (key: (input stream, its conversion in the output))
    decoded and encoded again; what the encoders still hold comes at the end. ``until``: where
    the video ends, in seconds on the packets' clock, past which no subtitle is shown.
    ``within``: the stretch of the packets' clock that sound is kept in, to the sample, and
    captions are shown in (an excerpt's, whose sound comes with the packets its decoder needs
    before the start, and captions with every packet before it). ``damaged``: counts, by input
    stream, the sound packets left out because their decoder refused them."""
    damaged = Counter() if damaged is None else damaged
    writers = {key: _Cues(source, copy, until, within) if source.type == "subtitle" else _Sound(source, copy, within, damaged)
               for key, (source, copy) in streams.items()}
    for key, packet in packets:
        if key in writers:
            yield from ((key, converted) for converted in writers[key](packet))
        else:
            yield key, packet
    for key, write in writers.items():
        yield from ((key, converted) for converted in write(None))
