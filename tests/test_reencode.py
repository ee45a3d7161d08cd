"""Streams written in a form the output's container holds: text subtitles converted, sound re-encoded."""

import json
import re
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import ERASE_SCREEN, PADDING, caption_pairs, chirped_clip, dressed_clip, make_clip, pop_on, vp9_flac_clip
from hypothesis import given
from hypothesis import strategies as st

from vidrestore.errors import OutputError, UsageError
from vidrestore.io import remux
from vidrestore.io.excerpt import Cut
from vidrestore.io.reencode import sound_encoder
from vidrestore.io.remux import carried_notes, check_streams
from vidrestore.io.soundcut import trimmed

CUES = [(0, "Hello <i>world</i>"), (500, "Second\nline")]  # MP4 cannot show two at once


def _cues(path: Path) -> list[tuple[int, int, str]]:
    """The cues of the first subtitle stream of ``path``: (start ms, duration ms, their words and
    styles as FFmpeg's decoders give them, in ASS); empty ones (MP4's clearing samples) left out."""
    cues = []
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        for packet in c.demux(stream):
            cue = stream.codec_context.decode2(packet) if packet.size else None
            if cue is not None and len(cue.rects):
                text = b"".join(r.ass for r in cue.rects).decode().split(",", 8)[-1]
                cues.append((round(packet.pts * packet.time_base * 1000), round(packet.duration * packet.time_base * 1000), text))
    return cues


def _words(cues: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """``cues`` with their styles (ASS override blocks: italics, the font MP4 states) taken out."""
    return [(start, duration, re.sub(r"{[^}]*}", "", text)) for start, duration, text in cues]


def _subtitled(folder: Path, suffix: str) -> Path:
    """A clip with SRT subtitles and sound (.mkv, dressed as a programme, with a font attachment
    that .mp4 cannot hold), or with MP4's timed text (.mp4, converted from SRT by vidrestore: its
    encoder writes italics as MP4 states them, and no sound, whose priming MP4 states as a
    negative start that Matroska moves every stream later for)."""
    if suffix == ".mp4":
        srt = make_clip(folder / "srt.mkv", [i * 40 for i in range(25)], subtitles=CUES)
        remux(srt, srt, folder / "timed_text.mp4")
        return folder / "timed_text.mp4"
    plain = make_clip(folder / "plain.mkv", [i * 40 for i in range(25)], audio=True, subtitles=CUES)
    return dressed_clip(folder / "dressed.mkv", plain)


@pytest.mark.parametrize("source, output, encoder", [(".mkv", ".mp4", "mov_text"), (".mp4", ".mkv", "subrip"),
                                                      (".mkv", ".mov", "mov_text")])
def test_text_subtitles_are_converted_to_a_format_the_container_holds(tmp_path, source, output, encoder):
    """SRT in .mkv into .mp4 was refused ("write a .mkv") or left out, as was MP4's timed text into
    .mkv: each is converted, cue for cue, at the same times, italics kept, with its language and
    disposition; MP4's clearing samples between cues do not become cues of their own."""
    src, out = _subtitled(tmp_path, source), tmp_path / f"out{output}"
    named = "subrip" if source == ".mkv" else "mov_text"
    if source == ".mkv":  # the font still cannot go, and the refusal names it alone
        with pytest.raises(OutputError, match=rf"\{output} files cannot hold attachment stream 3 \(font\.ttf\) of dressed\.mkv;"):
            check_streams(src, out, drop=False)
    else:
        check_streams(src, out, drop=False)
    assert remux(src, src, out) == (["attachment stream 3 (font.ttf)"] if source == ".mkv" else [])
    index = 2 if source == ".mkv" else 1
    assert carried_notes(src, out, "") == [f"converted to {encoder}, as {output} files cannot hold them: subtitle stream {index} ({named})"]
    assert _words(_cues(out)) == _words(_cues(src)) == [(0, 500, "Hello world"), (500, 500, "Second\\Nline")]
    assert "{\\i1}world" in _cues(out)[0][2]
    with av.open(str(src)) as before, av.open(str(out)) as after:
        converted = after.streams.subtitles[0]
        assert converted.codec_context.codec.canonical_name == encoder
        if source == ".mkv":  # its language and, where the container states it (not QuickTime), forced
            assert converted.metadata["language"] == "eng"
            assert bool(converted.disposition & av.stream.Disposition.forced) == (output == ".mp4")
        kept = [s.type for s in before.streams if s.type != "attachment"]
        assert [s.type for s in after.streams][: len(kept)] == kept  # (and a chapter track in MP4)


ASS_HEADER = ("[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\nFormat: Name, Fontname, "
              "Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, "
              "ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\nStyle: "
              "Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n[Events]\nFormat: Layer, "
              "Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")


def _mux_frames(out: av.container.OutputContainer, video: av.stream.Stream, count: int) -> None:
    """``count`` frames of 64 by 48, each a shade lighter, encoded with ``video`` into ``out``."""
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5 % 256, np.uint8), format="rgb24")
        frame.pts = i
        out.mux(video.encode(frame))
    out.mux(video.encode(None))


def _cued_clip(path: Path, video_codec: str, subtitle_codec: str, cues: list[tuple[int, bytes]]) -> Path:
    """A clip of 25 frames of ``video_codec`` and a subtitle stream of ``subtitle_codec`` holding
    ``cues`` (start in ms, the packet's bytes as they are), 300 ms each, in German."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(video_codec, rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        subtitles = out.add_stream(subtitle_codec)
        subtitles.codec_context.subtitle_header = ASS_HEADER.encode()
        subtitles.metadata["language"] = "ger"
        for start, payload in cues:
            packet = av.Packet(payload)
            packet.stream, packet.pts, packet.dts, packet.duration = subtitles, start, start, 300
            packet.time_base = Fraction(1, 1000)
            out.mux(packet)
        _mux_frames(out, video, 25)
    return path


def test_styled_subtitles_keep_their_words_and_the_note_says_what_they_lose(tmp_path):
    """ASS into .webm (WebVTT alone): the words and bold are kept, the placement cannot be, and the
    report's note says so."""
    # a VP9 .mkv (which .webm holds) with ASS subtitles (which it does not): one cue bold, one placed
    src = _cued_clip(tmp_path / "styled.mkv", "libvpx-vp9", "ass", [(0, b"0,0,Default,,0,0,0,,{\\b1}Bold{\\b0} words"),
                                                                   (400, b"1,0,Default,,0,0,0,,{\\pos(10,10)}Placed")])
    out = tmp_path / "out.webm"
    check_streams(src, out, drop=False)
    assert remux(src, src, out) == []
    assert carried_notes(src, out, "") == [("converted to webvtt, as .webm files cannot hold them: subtitle stream 1 (ass) "
                                            "without its positions, fonts and effects")]
    assert _cues(out) == [(0, 300, "{\\b1}Bold{\\b0} words"), (400, 300, "Placed")]
    with av.open(str(out)) as c:
        assert (c.streams.subtitles[0].codec_context.name, c.streams.subtitles[0].metadata["language"]) == ("webvtt", "ger")


def test_an_excerpts_subtitles_are_cut_before_they_are_converted(tmp_path):
    """A cue on screen at the excerpt's start keeps the rest of its time, and one on at its end is
    shortened, in the converted stream too."""
    src, out = _subtitled(tmp_path, ".mp4"), tmp_path / "out.mkv"
    remux(src, src, out, cut=Cut(Fraction(1, 5), Fraction(3, 5)))
    assert _words(_cues(out)) == [(0, 300, "Hello world"), (300, 100, "Second\\Nline")]


def test_sound_a_container_cannot_hold_is_re_encoded_when_asked(tmp_path):
    """--audio-codec: FLAC into .webm was refused ("write a .mkv") or left out; it is re-encoded
    with Opus (the container's own), at 48 kHz (the rate Opus takes nearest 44.1), its length,
    channels and tags kept, while the video is still copied."""

    src, out = vp9_flac_clip(tmp_path / "in.mkv"), tmp_path / "out.webm"
    with pytest.raises(OutputError, match=r"write a \.mkv, give --audio-codec auto to re-encode the sound, or give --drop-streams"):
        check_streams(src, out, drop=False)
    assert sound_encoder(out, "auto") == "auto" and sound_encoder(tmp_path / "o.mp4", "aac") == "aac"
    with pytest.raises(OutputError, match=r"audio stream 1 \(flac\) of in\.mkv re-encoded with aac either"):
        check_streams(src, out, drop=False, audio_codec="aac")
    with pytest.raises(UsageError, match="--audio-codec h264: not a sound encoder"):
        check_streams(src, out, drop=False, audio_codec="h264")
    with pytest.raises(UsageError, match="--audio-codec nope: not a sound encoder"):  # a name FFmpeg does not know: a traceback
        check_streams(src, out, drop=False, audio_codec="nope")
    check_streams(src, out, drop=False, audio_codec="auto")
    # a GIF holds no sound at all: neither re-encoding it nor the hint to do so makes sense there
    assert sound_encoder(tmp_path / "o.gif", "auto") == sound_encoder(tmp_path / "o.png", "flac") == ""
    with pytest.raises(OutputError, match=r"\.gif files cannot hold audio stream 1 \(flac\) of in\.mkv; write a \.mkv, or give --drop"):
        check_streams(src, tmp_path / "o.gif", drop=False, audio_codec="auto")
    assert remux(src, src, out, sound="libopus") == []
    assert carried_notes(src, out, "libopus") == ["re-encoded with libopus, as .webm files cannot hold them: audio stream 1 (flac)"]
    with av.open(str(src)) as before, av.open(str(out)) as after:
        assert [(s.type, s.codec_context.name) for s in after.streams] == [("video", "vp9"), ("audio", "opus")]
        sound = after.streams.audio[0]
        assert (sound.rate, sound.layout.name, sound.metadata.get("language")) == (48000, "stereo", "fre")
        assert [bytes(p) for p in before.demux(video=0) if p.size] == [bytes(p) for p in after.demux(video=0) if p.size]
        after.seek(0)
        decoded = np.concatenate([f.to_ndarray()[0] if f.format.is_planar else f.to_ndarray().reshape(-1, 2)[:, 0]
                                  for f in after.decode(audio=0)])  # the left channel
    assert len(decoded) / 48000 == pytest.approx(1.0, abs=0.03)  # one second, as the video
    spectrum = np.abs(np.fft.rfft(decoded[4800:43200]))
    assert np.argmax(spectrum) * 48000 / len(decoded[4800:43200]) == pytest.approx(440, abs=3)  # the same tone
    # MXF takes PCM at 48 kHz alone: 44.1 kHz AAC is re-encoded at that rate (it was refused)
    aac = make_clip(tmp_path / "aac.mkv", [i * 40 for i in range(25)], audio=True)
    check_streams(aac, tmp_path / "out.mxf", drop=False, audio_codec="auto")
    assert remux(aac, aac, tmp_path / "out.mxf", sound=sound_encoder(tmp_path / "out.mxf", "auto")) == []
    with av.open(str(tmp_path / "out.mxf")) as c:
        assert (c.streams.audio[0].codec_context.name, c.streams.audio[0].rate) == ("pcm_s16le", 48000)
        assert sum(f.samples for f in c.decode(audio=0)) / 48000 == pytest.approx(1.0, abs=0.01)  # MXF keeps it to the 25 frames


def test_windows_media_audio_is_re_encoded_to_its_last_frame(tmp_path):
    """WMA's decoder gives its last frame untimed, as it is flushed: re-encoding a WMV's sound for
    an .mp4 or .mkv failed with a traceback after the work."""
    src = chirped_clip(tmp_path / "in.wmv", "wmav2", bit_rate=64000)
    for name in ("out.mp4", "out.mkv"):
        assert remux(src, src, tmp_path / name, sound="auto") == []
        with av.open(str(src)) as before, av.open(str(tmp_path / name)) as after:
            given = sum(f.samples for f in before.decode(audio=0)) / before.streams.audio[0].rate
            written = [(f.time, f.samples / f.sample_rate) for f in after.decode(audio=0)]
        assert written[-1][0] + written[-1][1] - written[0][0] == pytest.approx(given, abs=0.05)


def _damaged_sound_clip(path: Path, codec: str, bad: int = 10) -> Path:
    """40 frames of faceless 64x48 video and a tone encoded with ``codec``, whose packet ``bad``
    is overwritten with bytes its decoder refuses (as a torn capture's are)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream(codec, rate=48000, layout="mono")
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        tone, step = (0.3 * np.sin(np.arange(76800) * 2 * np.pi * 440 / 48000)).astype(np.float32), sound.codec_context.frame_size
        packets = []
        for start in range(0, len(tone), step):
            part = av.AudioFrame.from_ndarray(tone[None, start:start + step], format="fltp", layout="mono")
            part.sample_rate, part.pts = 48000, start
            packets += sound.encode(part)
        for n, packet in enumerate(packets + sound.encode(None), 1):
            if n == bad:
                torn = av.Packet(b"\xff" * packet.size)
                torn.pts, torn.dts, torn.duration, torn.time_base, torn.stream = packet.pts, packet.dts, packet.duration, packet.time_base, sound
                packet = torn
            out.mux(packet)
    return path


@pytest.mark.parametrize("codec", ["mp2", "aac"])
def test_a_damaged_sound_packet_is_left_out_of_the_re_encoded_sound_and_named(tmp_path, codec):
    """One packet that the sound's decoder refused failed the whole run after the work, when the
    sound was re-encoded (into .webm here); FFmpeg's command line goes on past it, and so does this."""
    from vidrestore.cli import main

    src, out, report = _damaged_sound_clip(tmp_path / "in.mkv", codec), tmp_path / "out.webm", tmp_path / "r.json"
    assert main([str(src), str(out), "--model", "none", "--audio-codec", "auto", "--quiet", "--json", str(report)]) == 0
    assert f"left out of the re-encoded sound (a gap each): 1 of audio stream 1 ({codec})" in " ".join(json.loads(report.read_text())["notes"])
    with av.open(str(out)) as written:
        assert sum(f.samples for f in written.decode(audio=0)) / 48000 == pytest.approx(1.6, abs=0.1)


def test_sound_whose_speakers_change_is_re_encoded_through_the_change(tmp_path):
    """A TV capture's AC-3 goes from stereo to 5.1 as a film begins; PyAV's encoder takes frames
    like its first alone, and re-encoding it (into .webm) failed with a traceback after the work.
    The later frames are mixed to the first's speakers, as FFmpeg's command line does."""
    from vidrestore.cli import main

    src = tmp_path / "capture.ts"
    with av.open(str(src), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("ac3", rate=48000, layout="stereo")
        surround = av.CodecContext.create("ac3", "w")
        surround.sample_rate, surround.layout, surround.format, surround.time_base = 48000, "5.1", "fltp", Fraction(1, 48000)
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        tone = (0.3 * np.sin(np.arange(96000) * 2 * np.pi * 440 / 48000)).astype(np.float32)
        for start in range(0, 96000, 1536):
            layout = "stereo" if start < 48000 else "5.1"
            part = av.AudioFrame.from_ndarray(np.tile(tone[start:start + 1536], (len(av.AudioLayout(layout).channels), 1)),
                                              format="fltp", layout=layout)
            part.sample_rate, part.pts, part.time_base = 48000, start, Fraction(1, 48000)
            for packet in (sound.encode(part) if layout == "stereo" else surround.encode(part)):
                packet.stream, packet.time_base = sound, Fraction(1, 48000)
                out.mux(packet)
    with av.open(str(src)) as c:
        assert {f.layout.nb_channels for f in c.decode(audio=0)} == {2, 6}
    out = tmp_path / "out.webm"
    assert main([str(src), str(out), "--model", "none", "--audio-codec", "auto", "--quiet"]) == 0
    with av.open(str(out)) as c:
        left = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    assert len(left) / 48000 == pytest.approx(2.0, abs=0.05)
    assert left[12000:36000].std() > 0.1 and left[60000:84000].std() > 0.1  # the tone before the change and after it


def _lpcm_clip(path: Path, bits: int) -> Path:
    """A second of faceless video and stereo noise as a disc stores it: DVD's 16-bit PCM in a .vob
    (with MPEG-2 video), or Blu-ray's 24-bit PCM in an .m2ts (with H.264)."""
    dvd = bits == 16
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg2video" if dvd else "libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("pcm_dvd" if dvd else "pcm_bluray", rate=48000)
        sound.layout, sound.format = "stereo", "s16" if dvd else "s32"
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 9, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        noise = np.random.default_rng(bits).integers(-30000, 30000, (1, 2 * 48000))
        samples = noise.astype(np.int16) if dvd else noise.astype(np.int32) * 256 * 251  # 24 bits, in the top of 32
        part = av.AudioFrame.from_ndarray(samples, format=sound.format.name, layout="stereo")
        part.sample_rate, part.pts = 48000, 0
        out.mux(sound.encode(part) + sound.encode(None))
    return path


def _sound_samples(path: Path) -> tuple[str, np.ndarray]:
    with av.open(str(path)) as c:
        return c.streams.audio[0].codec_context.name, np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


@pytest.mark.parametrize("bits, output, encoder", [(16, ".mkv", "flac"), (16, ".avi", "pcm_s16le"), (24, ".mkv", "flac"),
                                                   (24, ".mov", "pcm_s24le"), (24, ".mxf", "pcm_s24le")])
def test_auto_re_encodes_lossless_sound_without_loss(tmp_path, bits, output, encoder):
    """--audio-codec auto gave a disc's PCM, which Matroska and the rest cannot hold, the
    container's own lossy encoder (AC-3 for .mkv, AAC for .mov). It now writes lossless sound as
    FLAC where the container holds it and it keeps every bit, else as PCM (first, in AVI, where
    FLAC is FFmpeg's own mapping): every sample as the input decodes it, 24-bit ones too."""
    src, out = _lpcm_clip(tmp_path / ("in.vob" if bits == 16 else "in.m2ts"), bits), tmp_path / f"out{output}"
    assert remux(src, src, out, sound=sound_encoder(out, "auto")) == []
    assert carried_notes(src, out, "auto") == [(f"re-encoded with {encoder}, as {output} files cannot hold them: "
                                                f"audio stream 1 ({'pcm_dvd' if bits == 16 else 'pcm_bluray'})")]
    (_, heard), (kind, kept) = _sound_samples(src), _sound_samples(out)
    # what one holds past the other is silence: the disc's PCM encoder pads its last packet, MXF
    # ends its sound with the video's last edit unit
    both = min(len(kept), len(heard))
    assert kind == encoder and np.array_equal(kept[:both], heard[:both]) and not kept[both:].any() and not heard[both:].any()


def test_lossy_sound_and_containers_that_hold_no_lossless_sound_keep_the_containers_own_encoder(tmp_path):
    """auto stays lossy where the sound is (AAC) or where the container takes nothing lossless (WebM)."""
    aac = make_clip(tmp_path / "aac.mkv", [i * 40 for i in range(25)], audio=True)
    assert carried_notes(aac, tmp_path / "o.webm", "auto") == ["re-encoded with libopus, as .webm files cannot hold them: audio stream 1 (aac)"]
    lpcm = _lpcm_clip(tmp_path / "in.m2ts", 24)
    assert carried_notes(lpcm, tmp_path / "o.webm", "auto") == [("re-encoded with libopus, as .webm files cannot hold them: "
                                                                 "audio stream 1 (pcm_bluray)")]


def test_flac_asked_for_goes_into_avi(tmp_path):
    """FLAC's encoder ends with a packet of its header's update alone, which AVI's muxer refused at
    the very end of a run: --audio-codec flac into .avi failed after all its work."""
    src, out = _lpcm_clip(tmp_path / "in.vob", 16), tmp_path / "out.avi"
    assert remux(src, src, out, sound=sound_encoder(out, "flac")) == []
    assert _sound_samples(out)[0] == "flac" and np.array_equal(_sound_samples(out)[1], _sound_samples(src)[1])


@pytest.mark.parametrize("codec, output", [("pcm_s16le", ".ts"), ("flac", ".m2ts")])
def test_sound_mpeg_ts_has_no_stream_type_for_is_refused_or_re_encoded(tmp_path, codec, output):
    """MPEG-TS took PCM and FLAC at its header and wrote them as data, which no player plays: the
    output had no sound, and the report did not say so. The trial now writes the stream's first
    packets and reads them back; AAC, which a small .m2ts shows only by its contents, still fits."""
    src, out = chirped_clip(tmp_path / "in.mkv", codec, frames=25), tmp_path / f"out{output}"
    with pytest.raises(OutputError, match=rf"\{output} files cannot hold audio stream 1 \({codec}\) of in\.mkv; write a \.mkv, "
                                          "give --audio-codec auto"):
        check_streams(src, out, drop=False)
    check_streams(src, out, drop=False, audio_codec="auto")
    assert remux(src, src, out, sound=sound_encoder(out, "auto")) == []
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        assert sum(f.samples for f in c.decode(audio=0)) / 48000 == pytest.approx(1.0, abs=0.05)
    check_streams(chirped_clip(tmp_path / "aac.mkv", "aac", frames=25), out, drop=False)


def test_subtitles_not_in_utf8_are_read_in_their_code_page_and_what_cannot_be_read_is_one_line(tmp_path):
    """FFmpeg refuses a cue that is not UTF-8; an SRT written in Windows-1252 is read in it, as
    players do. MP4's timed text must be UTF-8: a cue that is not stops the conversion with the
    cue's time and the way out, not a muxer's error."""
    latin = _cued_clip(tmp_path / "latin.mkv", "libx264", "subrip", [(0, "Caf\u00e9 cr\u00e8me".encode("cp1252"))])
    remux(latin, latin, tmp_path / "latin.mp4")
    assert _cues(tmp_path / "latin.mp4") == [(0, 300, "Caf\u00e9 cr\u00e8me")]
    broken = _cued_clip(tmp_path / "broken.mp4", "libx264", "mov_text", [(0, b"\x00\x05caf\xe9!")])
    with pytest.raises(OutputError, match=r"^cannot convert the cue of subtitle stream 1 at 0\.000 s to subrip \(.*\); "
                                          r"write a container that holds mov_text as it is$"):
        remux(broken, broken, tmp_path / "broken.mkv")


@pytest.mark.parametrize("output", [".ts", ".mpg"])
def test_text_subtitles_are_not_written_where_no_player_would_read_them(tmp_path, output):
    """The MPEG-TS and MPEG-PS muxers took SRT and wrote it as data (or as a DVD subtitle, which
    it is not): the output had no subtitles, and the report did not say so. No text format
    survives there, so the stream is refused before any work, or left out and named."""
    src = make_clip(tmp_path / "srt.mkv", [i * 40 for i in range(12)], subtitles=CUES)
    out = tmp_path / f"out{output}"
    with pytest.raises(OutputError, match=rf"\{output} files cannot hold subtitle stream 1 \(subrip\) of srt\.mkv;"):
        check_streams(src, out, drop=False)
    assert remux(src, src, out) == ["subtitle stream 1 (subrip)"]
    assert carried_notes(src, out, "") == []


def test_a_subtitle_is_converted_for_a_container_that_takes_the_restored_video_but_not_the_input_s(tmp_path):
    """QuickTime refuses VP9 when it writes its header, so the trial of a WebM's WebVTT in .mov
    (after a copy of that video) failed, and the subtitles were refused, though the video is
    restored into H.264 there."""
    vp9 = _cued_clip(tmp_path / "ass.mkv", "libvpx-vp9", "ass", [(0, b"0,0,Default,,0,0,0,,words")])
    webm = tmp_path / "in.webm"
    remux(vp9, vp9, webm)
    check_streams(webm, tmp_path / "out.mov", drop=False)
    assert carried_notes(webm, tmp_path / "out.mov", "") == ["converted to mov_text, as .mov files cannot hold them: subtitle stream 1 (webvtt)"]


def _segment(kind: int, payload: bytes, pts: int) -> bytes:
    """One PGS segment as a .sup file holds it: "PG", its times (90 kHz), its kind and size."""
    return b"PG" + struct.pack(">IIBH", pts, pts, kind, len(payload)) + payload


def _display_set(pts: int, number: int, box: tuple[int, int, int, int] | None) -> bytes:
    """A PGS display set at ``pts`` (90 kHz) that shows a white box (x, y, width, height), or
    clears the screen (None): its composition, window, palette, object and end segments."""
    x, y, w, h = box or (0, 0, 0, 0)
    shown = 1 if box else 0
    composition = struct.pack(">HHBHBBBB", 64, 48, 0x10, number, 0x80 * shown, 0, 0, shown) + struct.pack(">HBBHH", 0, 0, 0, x, y) * shown
    out = _segment(0x16, composition, pts) + _segment(0x17, bytes([shown]) + struct.pack(">BHHHH", 0, x, y, w, h) * shown, pts)
    if box:
        out += _segment(0x14, bytes([0, 0, 1, 235, 128, 128, 255]), pts)  # palette entry 1: white (Y, Cr, Cb, alpha)
        lines = bytes([0, 0x80 | w, 1, 0, 0]) * h  # each line a run of w pixels of colour 1, then its end
        out += _segment(0x15, struct.pack(">HBB", 0, 0, 0xC0) + (len(lines) + 4).to_bytes(3, "big") + struct.pack(">HH", w, h) + lines, pts)
    return out + _segment(0x80, b"", pts)


BOXES = [(0, (8, 30, 40, 8)), (500, None), (800, (4, 4, 20, 6)), (1200, None)]  # (ms, shown or cleared)


def _pgs_clip(folder: Path) -> Path:
    """A Blu-ray's subtitles in Matroska: PGS display sets that show and clear :data:`BOXES`
    (read from a .sup file FFmpeg demuxes; FFmpeg has no PGS encoder), beside 40 frames of H.264."""
    sup = folder / "boxes.sup"
    sup.write_bytes(b"".join(_display_set(ms * 90, n, box) for n, (ms, box) in enumerate(BOXES)))
    path = folder / "pgs.mkv"
    with av.open(str(sup)) as pgs, av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        subtitles = out.add_stream_from_template(pgs.streams.subtitles[0])
        subtitles.metadata["language"] = "fre"
        for packet in pgs.demux(pgs.streams.subtitles[0]):
            if packet.size:
                packet.stream = subtitles
                out.mux(packet)
        _mux_frames(out, video, 40)
    return path


def _pictures(path: Path) -> list[tuple[int, int | None, list[tuple[int, int, int, int]]]]:
    """The subtitle pictures of ``path``: (start ms, how long they are shown in ms where the cue
    says, else None, their boxes); a set that clears the screen has no box."""
    found = []
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        for packet in c.demux(stream):
            cue = stream.codec_context.decode2(packet) if packet.size else None
            if cue is not None:
                shown = None if cue.end_display_time == 0xFFFFFFFF else cue.end_display_time - cue.start_display_time
                found.append((round(packet.pts * packet.time_base * 1000), shown, [(r.x, r.y, r.width, r.height) for r in cue.rects]))
    return found


def test_blu_ray_subtitles_go_into_mp4_as_dvd_subtitles(tmp_path):
    """PGS into .mp4 was refused or left out: each picture is converted to a DVD subtitle at its
    place and size, shown from its display set until the next clears it (DVD's states its end),
    and the note says what it loses."""
    src, out = _pgs_clip(tmp_path), tmp_path / "out.mp4"
    assert _pictures(src) == [(0, None, [(8, 30, 40, 8)]), (500, None, []), (800, None, [(4, 4, 20, 6)]), (1200, None, [])]
    check_streams(src, out, drop=False)
    assert remux(src, src, out) == []
    assert carried_notes(src, out, "") == ["converted to dvdsub, as .mp4 files cannot hold them: subtitle stream 1 (hdmv_pgs_subtitle) in four colours"]
    with av.open(str(out)) as c:
        assert (c.streams.subtitles[0].codec_context.name, c.streams.subtitles[0].metadata["language"]) == ("dvdsub", "fre")
    # MPEG-PS took PGS and wrote its packets as a DVD subtitle's, which no player could show, and
    # packs DVD subtitles so that they read back empty; MPEG-TS (unlike a Blu-ray's M2TS) wrote
    # PGS as data: each refuses it
    for name in ("out.mpg", "out.ts"):
        with pytest.raises(OutputError, match=rf"\.{name[4:]} files cannot hold subtitle stream 1 \(hdmv_pgs_subtitle\) of pgs\.mkv"):
            check_streams(src, tmp_path / name, drop=False)
    check_streams(src, tmp_path / "out.m2ts", drop=False)
    tick = 1024 / 90  # the unit of a DVD subtitle's times, in ms
    assert _pictures(out) == [(0, pytest.approx(500, abs=tick), [(8, 30, 40, 8)]), (800, pytest.approx(400, abs=tick), [(4, 4, 20, 6)])]


def test_an_excerpt_keeps_the_subtitle_picture_shown_at_its_start(tmp_path):
    """A PGS picture shown since before the excerpt's start was left out (its display set lies
    before the cut, and states no duration): it is put at the start, until the set that clears
    it; converted, the picture still shown at the end ends there."""
    src = _pgs_clip(tmp_path)
    cut = Cut(Fraction(1, 5), Fraction(1))
    remux(src, src, tmp_path / "out.mkv", cut=cut)
    assert _pictures(tmp_path / "out.mkv") == [(0, None, [(8, 30, 40, 8)]), (300, None, []), (600, None, [(4, 4, 20, 6)])]
    remux(src, src, tmp_path / "out.mp4", cut=cut)
    tick = 1024 / 90  # the unit of a DVD subtitle's times, in ms
    assert _pictures(tmp_path / "out.mp4") == [(0, pytest.approx(300, abs=tick), [(8, 30, 40, 8)]), (600, pytest.approx(200, abs=tick), [(4, 4, 20, 6)])]


def _scc(pairs: list[tuple[int, int]]) -> str:
    """CEA-608 byte ``pairs`` as an SCC file writes them."""
    return " ".join(f"{a:02x}{b:02x}" for a, b in pairs)


def _caption_clip(folder: Path) -> Path:
    """A QuickTime clip of 3 s (75 frames) with a c608 track as an editor writes it (read from an
    SCC file, which FFmpeg demuxes; it has no CEA-608 encoder): "Hello there" popped on at
    0.165 s and replaced by "World" at 1.33 s, which is erased at 2.0 s, where a roll-up caption
    begins with "Rolling" and rolls "on" onto the next line at 2.33 s, and stays on the screen."""
    scc = folder / "captions.scc"
    roll_up = ERASE_SCREEN + [(0x94, 0x25)] * 2 + [(0x94, 0x70)] * 2 + caption_pairs("Rolling")  # of 2 rows, on row 15
    scc.write_text("\n\n".join(["Scenarist_SCC V1.0", "00:00:00:05\t" + _scc(pop_on("Hello there")),
                                "00:00:01:10\t" + _scc(pop_on("World")), "00:00:02:00\t" + _scc(roll_up),
                                "00:00:02:10\t" + _scc([(0x94, 0xAD)] * 2 + caption_pairs("on")),  # carriage return
                                "00:00:02:20\t" + _scc(PADDING * 2)]) + "\n")
    path = folder / "captions.mov"
    with av.open(str(scc)) as captions, av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        track = out.add_stream_from_template(captions.streams[0])
        for packet in captions.demux(captions.streams[0]):
            if packet.size:
                packet.stream = track
                out.mux(packet)
        _mux_frames(out, video, 75)
    return path


def _texts(path: Path) -> list[tuple[int, int, str]]:
    """The text cues of ``path``'s subtitle stream: (start ms, duration ms, words)."""
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        return [(round(p.pts * p.time_base * 1000), round(p.duration * p.time_base * 1000),
                 "".join(r.text if r.type == b"text" else r.dialogue.decode() for r in cue.rects))
                for p in c.demux(stream) if p.size and (cue := stream.codec_context.decode2(p)) is not None and len(cue.rects)]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_closed_captions_are_converted_to_text_from_when_each_came_on(tmp_path, suffix):
    """A c608 track of a QuickTime master into .mp4 or .mkv, which cannot hold it, was refused
    ("write a .mkv" into .mp4, though .mkv cannot hold it either): it becomes MP4's timed text
    or SRT, each caption from when it came on (not the packet that took it off) until it left,
    a roll-up caption line by line, and the last, never erased, until the video's end."""
    src, out = _caption_clip(tmp_path), tmp_path / f"out{suffix}"
    check_streams(src, out, drop=False)
    assert remux(src, src, out) == []
    encoder = "mov_text" if suffix == ".mp4" else "subrip"
    assert carried_notes(src, out, "") == [f"converted to {encoder}, as {suffix} files cannot hold them: subtitle stream 1 (eia_608)"]
    words = [(start, length, re.sub(r"<[^>]*>|\{[^}]*\}", "", text)) for start, length, text in _texts(out)]  # SRT's font, place
    assert words == [(165, 1165, "Hello there"), (1330, 670, "World"), (2000, 330, "Rolling"), (2330, 670, "Rolling\non")]


def test_closed_captions_stay_a_c608_track_in_quicktime(tmp_path):
    """.mov holds a c608 track as it is: it is copied packet for packet, not converted (its trial
    cue, which FFmpeg has no encoder to make, is an erase command)."""
    src, out = _caption_clip(tmp_path), tmp_path / "out.mov"
    check_streams(src, out, drop=False)
    assert remux(src, src, out) == [] and carried_notes(src, out, "") == []
    with av.open(str(src)) as before, av.open(str(out)) as after:
        assert after.streams.subtitles[0].codec_context.codec.canonical_name == "eia_608"
        assert [(p.pts, bytes(p)) for p in after.demux(subtitles=0) if p.size] == [(p.pts, bytes(p)) for p in before.demux(subtitles=0) if p.size]


def test_an_excerpt_shows_the_caption_on_the_screen_at_its_start(tmp_path):
    """Captions are drawn by commands that may all lie before an excerpt's start: from 2.4 s, the
    roll-up caption's first line came at 2.0 s (in a packet that ended at 2.33 s), and the
    excerpt shows both its lines from 0; from 0.5 s, "Hello there" shows until it is replaced."""
    src = _caption_clip(tmp_path)
    remux(src, src, tmp_path / "late.mp4", cut=Cut(Fraction(12, 5), Fraction(3)))
    assert _texts(tmp_path / "late.mp4") == [(0, 600, "Rolling\non")]
    remux(src, src, tmp_path / "early.mp4", cut=Cut(Fraction(1, 2), Fraction(5, 2)))
    assert _texts(tmp_path / "early.mp4") == [(0, 830, "Hello there"), (830, 670, "World"), (1500, 330, "Rolling"),
                                              (1830, 170, "Rolling\non")]


def test_an_excerpt_of_a_c608_track_in_quicktime_redraws_the_caption_on_the_screen_at_its_start(tmp_path):
    """Copied into an excerpt's .mov as it is, a c608 track was cut at its packets: a caption drawn
    before the start did not show until the next one came. It now begins with the fewest commands
    from before the start that draw what is on the screen there, replayed at 0 (a pop-on
    caption's whole packet; both packets of a roll-up caption's two lines); the packets within
    follow as they were, and the captions show as an excerpt converted to text shows them (but
    for the roll-up caption's first line, which the replay draws and rolls up at once: FFmpeg's
    decoder gives it as a caption of its own at 0, which MP4's timed text makes last no time)."""
    src = _caption_clip(tmp_path)
    with av.open(str(src)) as c:
        before = [(p.pts, bytes(p)) for p in c.demux(subtitles=0) if p.size]
    for (start, end), redraw, shown in [((Fraction(12, 5), Fraction(3)), before[2][1] + before[3][1], [(0, 600, "Rolling\non")]),
                                        ((Fraction(1, 2), Fraction(5, 2)), before[0][1],
                                         [(0, 830, "Hello there"), (830, 670, "World"), (1500, 330, "Rolling"), (1830, 170, "Rolling\non")])]:
        out = tmp_path / f"from{float(start)}.mov"
        assert remux(src, src, out, cut=Cut(start, end)) == []
        with av.open(str(out)) as c:
            packets = [(p.pts, bytes(p)) for p in c.demux(subtitles=0) if p.size]
        within = [(pts - round(start * 1000), data) for pts, data in before if start * 1000 <= pts < end * 1000]
        assert packets == [(0, redraw), *within]
        remux(out, out, tmp_path / "text.mp4", cut=Cut(Fraction(0), end - start))  # the video is not cut here
        assert [cue for cue in _texts(tmp_path / "text.mp4") if cue[1]] == shown


def test_a_roll_up_caption_lifted_a_pair_a_frame_is_redrawn_by_its_commands_alone():
    """Captions lifted from a broadcast's frames come a pair a frame, with padding between: a
    roll-up caption of three rows on the screen at an excerpt's start was drawn by some ninety
    packets since its roll-up command, all of which its redraw needs (the first attempt looked
    back 64 and redrew nothing). The redraw leaves out the padding, and draws what all of them
    drew: the last three of five lines."""
    from vidrestore.io.reencode import redrawn

    lines = ["The first of five lines, rolled", "off the top with the second by", "the fifth line, so three rows", "show at the start of the cut:", "these three"]
    pairs = ERASE_SCREEN + [(0x94, 0x26)] * 2 + [(0x94, 0x70)] * 2  # roll-up of 3 rows, on row 15
    for n, line in enumerate(lines):
        pairs += ([(0x94, 0xAD)] * 2 if n else []) + caption_pairs(line)  # a carriage return before each line but the first
    packets = []
    for pair in [*PADDING * 5, *pairs]:
        packets.append(av.Packet(bytes([0xFC, *pair, 0xFC, *PADDING[0]])))  # each frame's pair, and padding

    def screen(*chunks: bytes) -> str:
        decoder = av.CodecContext.create("eia_608", "r")
        for chunk in chunks:
            decoder.decode2(av.Packet(chunk))
        cue = decoder.decode2(av.Packet(bytes([0xFC, *ERASE_SCREEN[0]])))
        return re.sub(r"\{[^}]*\}", "", "".join(rect.ass.decode().split(",", 8)[-1] for rect in cue.rects))

    assert len(packets) > 80
    redraw = redrawn(packets)
    assert screen(*map(bytes, packets)) == screen(redraw) == "\\N".join(lines[2:])
    assert len(redraw) == 3 * (len(pairs) - 3)  # the pairs from the roll-up command's repeat on, without a frame's padding


def test_broadcast_subtitles_go_into_mp4_each_page_until_the_next_replaces_it(tmp_path):
    """DVB pages of a TV capture (.ts) into .mp4: each lasts until the next page replaces it, its
    own time-out or the video's end; the last, never cleared, made the subtitle track 30 s long
    beside 1.6 s of video."""
    from vidrestore.io.reencode import trial_cue

    src = tmp_path / "capture.ts"
    picture = trial_cue("dvd_subtitle")  # a DVD subtitle's picture, 20 by 6 pixels at (4, 4)
    picture.pts, picture.time_base = 0, Fraction(1, 1000)
    with av.open(str(src), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        pages = out.add_stream("dvbsub")
        for ms in (0, 800):
            page = pages.codec_context.encode_subtitle(av.CodecContext.create("dvdsub", "r").decode2(picture))
            page.stream, page.pts, page.dts, page.time_base = pages, ms * 90, ms * 90, Fraction(1, 90000)
            out.mux(page)
        _mux_frames(out, video, 40)
    shown = _pictures(src)
    assert [(start - shown[0][0], length) for start, length, _ in shown] == [(0, 30000), (800, 30000)]  # each page's time-out
    out = tmp_path / "out.mp4"
    assert carried_notes(src, out, "") == ["converted to dvdsub, as .mp4 files cannot hold them: subtitle stream 1 (dvb_subtitle) in four colours"]
    remux(src, src, out)
    tick = 1024 / 90
    assert [(start - shown[0][0], length, boxes) for start, length, boxes in _pictures(out)] == \
        [(0, pytest.approx(800, abs=tick), [(4, 4, 20, 6)]), (800, pytest.approx(800, abs=tick), [(4, 4, 20, 6)])]
    with av.open(str(out)) as c:
        assert c.streams.subtitles[0].duration * c.streams.subtitles[0].time_base <= Fraction(17, 10)


# A tone of its own on each channel, the low one on the LFE (which AC-3 filters below 120 Hz)
TONES = {"5.1(side)": [400, 600, 800, 60, 1000, 1200], "7.1": [400, 600, 800, 60, 1000, 1200, 1400, 1600]}


def _surround_clip(path: Path, codec: str, layout: str, video_for: str) -> Path:
    """25 frames of faceless video (VP9 for a .webm, H.264 for others) and a second of sound with a
    tone of its own on each channel."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libvpx-vp9" if video_for == ".webm" else "libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream(codec, rate=48000)
        sound.layout = layout
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 9, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        t = np.arange(48000) / 48000
        tones = np.stack([0.1 * np.sin(2 * np.pi * f * t) for f in TONES[layout]]).astype(np.float32)
        step = sound.codec_context.frame_size or 1024
        for start in range(0, 48000, step):  # interleaved: PyAV cannot make a planar frame of 8 channels
            part = av.AudioFrame.from_ndarray(np.ascontiguousarray(tones[:, start:start + step].T).reshape(1, -1), format="flt", layout=layout)
            part.sample_rate, part.pts = 48000, start
            out.mux(sound.encode(part))
        out.mux(sound.encode(None))
    return path


def _channel_tones(path: Path) -> tuple[str, int, list[int]]:
    """The layout of ``path``'s sound, its length in samples, and each channel's loudest tone (Hz)."""
    with av.open(str(path)) as c:
        layout = c.streams.audio[0].layout
        resampler = av.AudioResampler(format="flt", layout=layout, rate=48000)  # interleaved, as above
        frames = [f for frame in c.decode(audio=0) for f in resampler.resample(frame)]
        samples = np.concatenate([f.to_ndarray().reshape(-1, layout.nb_channels) for f in frames])
    spectrum = np.abs(np.fft.rfft(samples, axis=0))
    return layout.name, len(samples), [round(float(np.argmax(spectrum[:, k])) * 48000 / len(samples)) for k in range(layout.nb_channels)]


@pytest.mark.parametrize(("codec", "layout", "source", "output", "written"), [
    ("ac3", "5.1(side)", ".mkv", ".webm", ("opus", "5.1")),  # a DVD's 5.1: Opus takes it named 5.1; it was refused
    ("flac", "7.1", ".mkv", ".webm", ("opus", "7.1")),  # 7.1 crashed the check (PyAV cannot make planar 8-channel frames)
    ("flac", "7.1", ".mkv", ".mov", ("pcm_s16le", "7.1")),
])
def test_surround_sound_is_re_encoded_with_each_channel_in_its_place(tmp_path, codec, layout, source, output, written):
    src, out = _surround_clip(tmp_path / f"in{source}", codec, layout, output), tmp_path / f"out{output}"
    check_streams(src, out, drop=False, audio_codec="auto")
    assert remux(src, src, out, sound="auto") == []
    with av.open(str(out)) as c:
        assert (c.streams.audio[0].codec_context.name, c.streams.audio[0].layout.name) == written
    _name, _, tones = _channel_tones(out)
    assert tones == pytest.approx(TONES[layout], abs=3)
    if written[1] != layout:
        assert carried_notes(src, out, "auto") == [(f"re-encoded with libopus, as {output} files cannot hold them: audio stream 1 ({codec}) "
                                                   f"as {written[1]}, the name libopus takes for its {layout} speakers")]


def test_an_excerpt_of_7_1_sound_re_encoded_is_cut_to_the_sample(tmp_path):
    """Sound cut at an excerpt's ends was read as planar frames, which PyAV gets wrong for 8
    channels: AAC 7.1 (decoded planar) into .webm failed after the work."""
    from vidrestore.cli import main

    src, out = _surround_clip(tmp_path / "in.mp4", "aac", "7.1", ".webm"), tmp_path / "out.webm"
    assert main([str(src), str(out), "--start", "0.2", "--end", "0.6", "--model", "none", "--detector", "dlib",
                 "--audio-codec", "auto", "--quiet"]) == 0
    name, length, tones = _channel_tones(out)
    assert (name, length) == ("7.1", round(0.4 * 48000))
    assert tones == pytest.approx(TONES["7.1"], abs=5)


@given(form=st.sampled_from(["s16", "fltp"]), pts=st.integers(-2000, 2000), start=st.integers(-3000, 3000),
       length=st.one_of(st.none(), st.integers(0, 3000)))
def test_decoded_sound_is_trimmed_to_the_sample(form, pts, start, length):
    """A frame of 1024 stereo samples at 8 kHz (packed or planar), ticks of 1/16000 s: what is
    kept is the samples from the start to before the end of the window, at their own times."""
    rate, tick, samples = 8000, Fraction(1, 16000), 1024
    values = np.arange(2 * samples, dtype=np.int16 if form == "s16" else np.float32)
    array = values[None, :] if form == "s16" else values.reshape(2, samples)
    frame = av.AudioFrame.from_ndarray(array, format=form, layout="stereo")
    frame.sample_rate, frame.time_base, frame.pts = rate, tick, pts * 2
    window = Cut(Fraction(start, rate), None if length is None else Fraction(start + length, rate))
    kept = trimmed(frame, window)
    wanted = [i for i in range(samples) if window.holds(Fraction(pts + i, rate))]
    if not wanted:
        assert kept is None
        return
    assert kept.samples == len(wanted) and kept.pts == (pts + wanted[0]) * 2 and kept.sample_rate == rate
    left = kept.to_ndarray()[0][::2] if form == "s16" else kept.to_ndarray()[0]
    assert list(left) == [values[2 * i] if form == "s16" else values[i] for i in wanted]
