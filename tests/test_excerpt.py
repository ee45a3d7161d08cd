"""--start/--end: an excerpt of a video restored alone, its frames, sound, subtitles, chapters and
timecode cut at the same times, and the output starting at 0."""

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import SOUND_RATE, chirp, chirped_clip, dressed_clip, make_clip, read_pts, timecoded_clip
from hypothesis import given
from hypothesis import strategies as st

from vidrestore.cli import main
from vidrestore.errors import ConfigError
from vidrestore.io.excerpt import Cut, Excerpt, clock, parse_time
from vidrestore.io.reader import DecodedFrames, VideoReader
from vidrestore.io.remux import _chapters_within
from vidrestore.io.timecode import timecode_after
from vidrestore.pipeline import PipelineConfig


def _run(*args) -> int:
    return main([str(a) for a in args])


def _frames(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(float(f.pts * f.time_base), f.to_ndarray(format="yuv420p")) for f in c.decode(video=0)]


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90.5", Fraction(181, 2)), ("1:30", 90), ("01:02:03.250", 3723.25),
                                           ("0:00.040", Fraction(1, 25))])
def test_times_are_read_as_seconds_or_a_clocks_time(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "x", "-1", "1:75", "1:60:00", "1:2:3:4", "1,5"])
def test_what_is_no_time_is_refused(text):
    with pytest.raises(ValueError):
        parse_time(text)


@given(st.integers(0, 100 * 3600 * 1000 - 1))
def test_a_time_shown_as_a_clock_reads_back_as_the_same_time(millis):
    assert parse_time(clock(Fraction(millis, 1000))) == Fraction(millis, 1000)


def test_an_excerpt_must_end_after_it_starts():
    with pytest.raises(ConfigError, match="end after it starts"):
        PipelineConfig(start="5", end="4")
    with pytest.raises(ConfigError, match="start: expected a time"):
        PipelineConfig(start="soon")
    assert PipelineConfig(end="2").excerpt == Excerpt(Fraction(0), Fraction(2))
    assert PipelineConfig().excerpt is None


@pytest.mark.parametrize("keyint", [12, 250])
def test_an_excerpt_or_a_segment_of_an_mpeg_ts_keeps_its_first_frames(tmp_path, keyint):
    """MPEG-TS has no index of keyframes: FFmpeg's seek landed on the frame before the start, the
    decoder dropped frames up to the next keyframe, and an excerpt from 0.5 s lost its first 11
    frames of 47 (all of them with one keyframe: "no frame from 0:00.500"), a segment from
    frame 30 its first 6. The reader seeks further back until it lands before them."""
    clip = make_clip(tmp_path / "capture.ts", [i * 40 for i in range(60)], x264_params=f"keyint={keyint}:min-keyint={keyint}:scenecut=0")
    with VideoReader(clip) as reader:
        whole = [f.pts for f in reader]
    start = whole[0] + 45000  # 0.5 s in MPEG-TS's 90 kHz
    with VideoReader(clip, excerpt=Excerpt(Fraction(1, 2), None)) as reader:
        assert [f.pts for f in reader] == [pts for pts in whole if pts >= start]
    with VideoReader(clip, start=30, start_pts=whole[30]) as reader:
        assert [(f.index, f.pts) for f in reader] == list(enumerate(whole))[30:]


def test_a_reader_yields_the_frames_shown_within_the_excerpt_counted_from_its_first(tmp_path):
    """Variable frame rate, a keyframe only every 12 frames (the reader seeks to the one before the
    start and drops what comes before it), and the stream starting at 0.3 s."""
    pts = [300 + t for t in np.cumsum([0, 40, 40, 80, 40, 120, 40, 40, 40, 33, 47, 40] * 3).tolist()]
    clip = make_clip(tmp_path / "vfr.mkv", pts, x264_params="keyint=12:min-keyint=12")
    excerpt = Excerpt(Fraction("0.5"), Fraction("1.2"))
    wanted = [p for p in pts if 500 <= p - 300 < 1200]
    kept = DecodedFrames(1 << 30)
    with VideoReader(clip, excerpt=excerpt, keep=kept) as reader:
        frames = list(reader)
    assert [f.pts for f in frames] == wanted and [f.index for f in frames] == list(range(len(wanted)))
    assert kept.complete and len(kept.frames) == len(wanted)  # pass 2 reuses them
    with VideoReader(clip, excerpt=excerpt, start=3, stop=6, start_pts=wanted[3]) as reader:  # a segment of it
        assert [(f.index, f.pts) for f in reader] == [(i, wanted[i]) for i in range(3, 6)]
    with VideoReader(clip, excerpt=excerpt, reuse=kept, start=2) as reader:
        assert [f.pts for f in reader] == wanted[2:]


def test_the_timecode_of_an_excerpt_counts_from_its_first_frame():
    assert timecode_after("01:00:00:00", 48, Fraction(24)) == "01:00:02:00"
    assert timecode_after("00:00:59;29", 1, Fraction(30000, 1001)) == "00:01:00;02"  # drop-frame skips ;00 and ;01
    assert timecode_after("00:09:59;29", 1, Fraction(30000, 1001)) == "00:10:00;00"  # but not each tenth minute
    assert timecode_after("00:00:00;00", 17982, Fraction(30000, 1001)) == "00:10:00;00"
    assert timecode_after("not a timecode", 5, Fraction(25)) == "not a timecode"


def test_chapters_are_cut_to_the_excerpt():
    base = Fraction(1, 1000)
    chapters = [{"id": 1, "start": 0, "end": 200, "time_base": base, "metadata": {"title": "Intro"}},
                {"id": 2, "start": 200, "end": 900, "time_base": base, "metadata": {"title": "Main"}},
                {"id": 3, "start": 900, "end": 1500, "time_base": base, "metadata": {"title": "End"}}]
    kept = _chapters_within(chapters, Cut(Fraction(1, 4), Fraction(1)))
    assert [(c["metadata"]["title"], c["start"], c["end"]) for c in kept] == [("Main", 0, 650), ("End", 650, 750)]


@pytest.fixture(scope="module")
def dressed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dressed")
    pts = [i * 40 for i in range(50)]
    source = make_clip(folder / "av.mkv", pts, audio=True, subtitles=[(0, "one"), (300, "two"), (900, "three"), (1500, "four")])
    return dressed_clip(folder / "dressed.mkv", source)


def test_an_excerpt_keeps_its_frames_sound_subtitles_and_chapters_cut_at_its_times(dressed, tmp_path):
    """Nothing to restore in it: its frames are encoded unchanged (a copy could start only at a
    keyframe), losslessly here, so they are the input's own, from 0."""
    out, report = tmp_path / "cut.mkv", tmp_path / "r.json"
    assert _run(dressed, out, "--model", "none", "--detector", "dlib", "--start", "0.2", "--end", "1.0", "--codec", "ffv1",
                "--json", report, "--quiet") == 0
    before, after = _frames(dressed), _frames(out)
    wanted = [image for t, image in before if 0.2 <= t < 1.0]
    assert len(after) == len(wanted) == 20
    assert all(np.array_equal(a, b) for (_, a), b in zip(after, wanted))
    assert [t for t, _ in after] == pytest.approx([i * 0.04 for i in range(20)])
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio", "subtitle", "attachment"]
        assert [(ch["metadata"]["title"], float(ch["start"] * ch["time_base"]), float(ch["end"] * ch["time_base"]))
                for ch in c.chapters()] == [("Main", 0.0, pytest.approx(0.28))]
        sound = [p for p in c.demux(c.streams.audio[0]) if p.size]
        c.seek(0)
        subtitles = [(float(p.pts * p.time_base), float(p.duration * p.time_base), bytes(p).decode())
                     for p in c.demux(c.streams.subtitles[0]) if p.size]
    times = [float(p.pts * p.time_base) for p in sound]
    assert 0 <= times[0] < 0.03 and times[-1] < 0.8  # cut at its packets (23 ms of AAC each)
    assert sum(float(p.duration * p.time_base) for p in sound) == pytest.approx(0.8, abs=0.03)
    # "one" was on screen since 0 (for 0.5 s): its last 0.3 s are kept; "three" is cut at the end; "four" is past it
    assert subtitles == [(0.0, pytest.approx(0.3), "one"), (pytest.approx(0.1), pytest.approx(0.5), "two"),
                         (pytest.approx(0.7), pytest.approx(0.1), "three")]
    written = json.loads(report.read_text())
    assert written["excerpt"] == {"start_s": 0.2, "end_s": 1.0, "first_frame_s": 0.2} and written["frames_in"] == 20
    notes = written["notes"]
    assert any("excerpt from 0:00.200 to 0:01.000: 20 frames, the first shown at 0:00.200" in n for n in notes)
    assert any("the excerpt was encoded unchanged" in n for n in notes)


def test_an_excerpt_restored_in_segments_is_the_excerpt_restored_whole(sample_clip, tmp_path):
    """Segments seek inside the excerpt (pass 1's frames not kept): the same frames are restored,
    from the same track, as in one segment with pass 1's frames reused. The side-by-side preview
    starts at 0 too (it kept the input's times, and began 0.25 s into its file), with the
    excerpt's sound, to the sample as the output's (it had none)."""
    common = ["--model", "none", "--detector", "dlib", "--start", "0.25", "--end", "0.9", "--codec", "ffv1", "--quiet",
              "--batch-size", "4"]
    config = tmp_path / "twice.yaml"
    config.write_text((Path(__file__).parents[1] / "configs" / "pipeline.yaml").read_text().replace("decode_once_mib: 256", "decode_once_mib: 0"))
    assert "decode_once_mib: 0" in config.read_text()
    assert _run(sample_clip, tmp_path / "whole.mkv", *common, "--segment-frames", "0", "--preview", tmp_path / "side.mp4") == 0
    assert _run(sample_clip, tmp_path / "parts.mkv", *common, "--segment-frames", "4", "--config", config) == 0
    whole, parts = _frames(tmp_path / "whole.mkv"), _frames(tmp_path / "parts.mkv")
    side = [t for t, _ in _frames(tmp_path / "side.mp4")]
    assert side == pytest.approx([t for t, _ in whole], abs=1e-3) and side[0] == 0  # .mkv times are in ms
    (first, heard), (_, cut) = _sound(tmp_path / "side.mp4"), _sound(sample_clip)
    assert first == 0 and np.abs(heard[:4096] - cut[round(0.25 * 48000):][:4096]).max() < 0.002
    assert len(whole) == len(parts) == round(0.65 * 24) and all(np.array_equal(a, b) for (_, a), (_, b) in zip(whole, parts))
    source = [image for t, image in _frames(sample_clip) if 0.25 <= t < 0.9]
    assert any(not np.array_equal(a, b) for (_, a), b in zip(whole, source))  # its face was pasted back


def test_a_preview_that_cannot_take_the_inputs_streams_is_written_alone(sample_clip, tmp_path, monkeypatch):
    """A failure to write the input's streams into the preview (here, made to happen) costs the
    preview its sound, not the restored output, which was joined first."""
    from vidrestore.errors import OutputError
    from vidrestore.pipeline import segments

    joined = segments.remux

    def failing(video, other, output, *rest, **named):
        if "side" in Path(output).name and Path(other) == sample_clip:
            raise OutputError("FFmpeg's mp4 muxer could not write side.mp4 (made to fail)")
        return joined(video, other, output, *rest, **named)

    monkeypatch.setattr(segments, "remux", failing)
    out, side, report = tmp_path / "out.mp4", tmp_path / "side.mp4", tmp_path / "r.json"
    assert _run(sample_clip, out, "--model", "none", "--start", "0.25", "--preview", side, "--json", report, "--quiet") == 0
    assert [s.type for s in av.open(str(out)).streams] == ["video", "audio"]
    assert [s.type for s in av.open(str(side)).streams] == ["video"] and _frames(side)[0][0] == 0
    assert json.loads(report.read_text())["notes"][-1] == ("the preview was written without the input's sound and subtitles: "
                                                          "FFmpeg's mp4 muxer could not write side.mp4 (made to fail)")


def test_a_telecined_excerpt_starts_at_0_in_an_mp4(telecined_clip, tmp_path):
    """The MP4 muxer of a segment states its late start in milliseconds (0.4004 s as 0.4 s):
    moving the video back by the excerpt's own start put its first frame at -1001 ticks, which
    the player never showed."""
    out = tmp_path / "film.mp4"
    assert _run(telecined_clip, out, "--model", "none", "--detector", "dlib", "--start", "0.4", "--end", "1.2", "--quiet") == 0
    with av.open(str(telecined_clip)) as c:
        base = c.streams.video[0].time_base
    wanted = [p for p in read_pts(telecined_clip) if 0.4 <= p * base < 1.2]
    assert read_pts(out) == [p - wanted[0] for p in wanted]


def test_the_timecode_of_an_excerpt_is_its_first_frames(tmp_path):
    clip = timecoded_clip(tmp_path / "tc.mov", "01:00:00:00", frames=12)
    out = tmp_path / "cut.mov"
    assert _run(clip, out, "--model", "none", "--detector", "dlib", "--start", "0.2", "--quiet") == 0
    with av.open(str(out)) as c:
        assert {k.lower(): v for k, v in c.streams.video[0].metadata.items()}["timecode"] == "01:00:00:05"
    assert len(read_pts(out)) == 7


def test_an_excerpt_of_one_frame_can_be_a_picture(sample_clip, tmp_path):
    out = tmp_path / "still.png"
    assert _run(sample_clip, out, "--model", "none", "--detector", "dlib", "--start", "0.5", "--end", "0.54", "--drop-streams", "--quiet") == 0
    with av.open(str(out)) as c:
        assert len(list(c.decode(video=0))) == 1


def _one_line_error(capsys, code, expected_code, fragment):
    err = capsys.readouterr().err.strip()
    assert code == expected_code
    assert len(err.splitlines()) == 1 and fragment in err, err


def test_an_excerpt_that_cannot_be_cut_is_refused_before_any_work(sample_clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    _one_line_error(capsys, _run(sample_clip, out, "--model", "none", "--start", "5"), 2,
                    "--start 0:05.000 is past the end of sample.mp4, which lasts 0:01.000")
    _one_line_error(capsys, _run(sample_clip, out, "--model", "none", "--start", "0.5", "--end", "0.2"), 6,
                    "start and end (--start, --end): an excerpt must end after it starts (0:00.500 to 0:00.200)")
    _one_line_error(capsys, _run(sample_clip, out, "--model", "none", "--end", "half"), 2, "--end: expected a time")
    picture = tmp_path / "p.png"
    with av.open(str(sample_clip)) as c:
        av.VideoFrame.to_image(next(c.decode(video=0))).save(picture)
    _one_line_error(capsys, _run(picture, tmp_path / "q.png", "--model", "none", "--start", "0"), 2,
                    "--start and --end cut a video or an image sequence; p.png is one picture")
    _one_line_error(capsys, _run(sample_clip, tmp_path / "q.png", "--model", "none", "--start", "0.5", "--drop-streams"), 4,
                    ".png files hold one picture, and its excerpt of sample.mp4 has about 12 frames")
    assert not out.exists() and not (tmp_path / "q.png").exists()


def test_an_excerpt_of_a_sequence_keeps_its_pictures_numbers(tmp_path, capsys):
    """A sequence's pictures are its frames at 25 a second (FFmpeg's, with no rate stated): the
    excerpt from 0.4 s holds pictures 110 on, which a sequence made from it keeps the numbers of
    (they were refused: "copy them into a folder of their own"), and a video starts at 0."""
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    for number in range(100, 140):
        image = np.full((48, 64, 3), number % 256, np.uint8)
        image[:, : number % 64] = 200
        Image.fromarray(image).save(folder / f"f_{number:06d}.png")
    made = tmp_path / "out"
    made.mkdir()
    assert _run(folder / "f_%06d.png", made / "o_%06d.png", "--model", "none", "--detector", "dlib", "--start", "0.4",
                "--end", "0.8", "--json", tmp_path / "r.json", "--quiet") == 0
    assert sorted(p.name for p in made.iterdir()) == [f"o_{n:06d}.png" for n in range(110, 120)]
    assert all(np.array_equal(np.asarray(Image.open(made / f"o_{n:06d}.png")), np.asarray(Image.open(folder / f"f_{n:06d}.png")))
               for n in range(110, 120))
    assert json.loads((tmp_path / "r.json").read_text())["notes"][0] == \
        "excerpt from 0:00.400 to 0:00.800: 10 pictures, from f_000110.png, the first shown at 0:00.400 in the input; its pictures keep their numbers"
    assert _run(folder / "f_%06d.png", tmp_path / "v.mp4", "--model", "none", "--detector", "dlib", "--start", "0.4", "--quiet") == 0
    assert [t for t, _ in _frames(tmp_path / "v.mp4")] == pytest.approx([i * 0.04 for i in range(30)])
    _one_line_error(capsys, _run(folder / "f_%06d.png", tmp_path / "w.mp4", "--model", "none", "--start", "2"), 2,
                    "--start 0:02.000 is past the end of f_%06d.png, which lasts 0:01.600")
    # --frame-rate says when each picture is shown, so the same times name other pictures (it was
    # refused: "an image sequence stores no timing"); without --start or --end it still is
    at_50 = tmp_path / "at50"
    at_50.mkdir()
    assert _run(folder / "f_%06d.png", at_50 / "o_%06d.png", "--model", "none", "--detector", "dlib", "--start", "0.4",
                "--end", "0.8", "--frame-rate", "50", "--quiet") == 0
    assert sorted(p.name for p in at_50.iterdir()) == [f"o_{n:06d}.png" for n in range(120, 140)]
    _one_line_error(capsys, _run(folder / "f_%06d.png", at_50 / "p_%06d.png", "--model", "none", "--frame-rate", "50"), 2,
                    "--frame-rate times a video made from pictures, or the --start and --end of an excerpt of them; "
                    "an image sequence stores no timing")


def test_an_excerpt_of_a_scan_is_cut_at_its_own_rate_and_timecode(tmp_path):
    """A 24 fps DPX scan (its headers say so) from 01:00:00:00: the excerpt 01:00:00:05 to
    01:00:00:10 is pictures 86405 to 86409 (read at FFmpeg's 25 a second, 5/24 s fell on picture
    86406), their headers' timecodes kept, and in a .mov five frames at 24 fps from 01:00:00:05."""
    import struct

    from conftest import dpx_scan

    scan = dpx_scan(tmp_path / "scan" / "f_%06d.dpx", [np.full((32, 48, 3), i * 9, np.uint8) for i in range(20)], 86400, 24,
                    "01:00:00:00")
    restored = tmp_path / "out" / "o_%06d.dpx"
    restored.parent.mkdir()
    times = ("--start", "01:00:00:05", "--end", "01:00:00:10")
    assert _run(scan, restored, "--model", "none", "--detector", "dlib", *times, "--quiet") == 0
    pictures = sorted(restored.parent.iterdir())
    assert [p.name for p in pictures] == [f"o_{n:06d}.dpx" for n in range(86405, 86410)]
    codes = [struct.unpack(("<" if d[:4] == b"XPDS" else ">") + "I", d[1920:1924])[0] for d in (p.read_bytes() for p in pictures)]
    assert codes == [0x01000005 + n for n in range(5)]  # BCD
    assert _run(scan, tmp_path / "cut.mov", "--model", "none", "--detector", "dlib", *times, "--quiet") == 0
    with av.open(str(tmp_path / "cut.mov")) as c:
        assert c.streams.video[0].metadata["timecode"] == "01:00:00:05"
    assert [t for t, _ in _frames(tmp_path / "cut.mov")] == pytest.approx([n / 24 for n in range(5)], abs=1e-3)


def test_a_stopped_excerpt_resumes_only_with_the_same_times():
    """Finished segments are reused by a run with the same fingerprint: another excerpt's frames
    must not be."""
    from vidrestore.diffusion.sampler import SamplerConfig
    from vidrestore.options import RestoreOptions

    prints = {RestoreOptions(PipelineConfig(start=start, end=end), SamplerConfig(), "none").fingerprint()
              for start, end in [("", ""), ("1", ""), ("2", ""), ("1", "5")]}
    assert len(prints) == 4


def test_a_batch_cuts_each_video_to_the_excerpt(dressed, sample_clip, tmp_path):
    """The batch joins its segments by the same function as a single run: each output is the
    excerpt, its sound cut to it, from 0."""
    out = tmp_path / "out"
    assert main(["batch", str(dressed), str(sample_clip), "--out", str(out), "--model", "none", "--detector", "dlib",
                 "--start", "0.5", "--end", "0.75", "--quiet"]) == 0
    for name, frames in [("dressed.mkv", 6), ("sample.mp4", 6)]:  # frames from 0.52 s at 25 fps, from 0.5 s at 24 fps
        with av.open(str(out / name)) as c:
            sound = [float(p.pts * p.time_base) for p in c.demux(c.streams.audio[0]) if p.size]
            # an .mp4's starts with the two packets before the start, which its edit list skips
            assert (-0.05 < sound[0] < -0.02 if name.endswith(".mp4") else 0 <= sound[0] < 0.03) and sound[-1] < 0.25
        assert len(read_pts(out / name)) == frames and read_pts(out / name)[0] == 0


def _sound(path: Path) -> tuple[float, np.ndarray]:
    """When the decoded sound of ``path`` starts, in seconds, and its samples as floats."""
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
    samples = np.concatenate([f.to_ndarray()[0] for f in frames]).astype(np.float64)
    return float(frames[0].pts * frames[0].time_base), samples / 32768 if frames[0].format.name.startswith("s16") else samples


@pytest.mark.parametrize("codec, source, output, options", [
    ("aac", ".mp4", ".mp4", ()), ("libmp3lame", ".mp4", ".mov", ()), ("ac3", ".mp4", ".mp4", ()),
    ("pcm_s16le", ".mov", ".mkv", ()), ("pcm_s24le", ".mov", ".avi", ()), ("libopus", ".mp4", ".mp4", ()),
    ("aac", ".mp4", ".webm", ("--audio-codec", "auto"))])
def test_an_excerpts_sound_starts_at_its_first_frame_to_the_sample_as_the_input_sounds_there(tmp_path, codec, source, output, options):
    """MP4 and QuickTime take the packet that holds the start and those its decoder needs before
    it, and an edit list that skips to the start and ends at the end; PCM is split between samples
    in any container, and re-encoded sound is trimmed once decoded, both to the sample at both
    ends. Cut at its packets, the sound began up to a packet late, and its first packet, decoded
    without the one before, was noise (up to 0.5 off here); its last packet ran past the video (by
    16 ms for AAC, 10 for AC-3 and 13 for Opus here)."""
    clip = chirped_clip(tmp_path / f"in{source}", codec)
    out = tmp_path / f"out{output}"
    report = tmp_path / "r.json"
    assert _run(clip, out, "--model", "none", "--detector", "dlib", "--start", "0.52", "--end", "1.2", *options, "--json", report,
                "--quiet") == 0
    assert not any("cut at its packets" in note for note in json.loads(report.read_text())["notes"])
    _, heard = _sound(clip)
    first, kept = _sound(out)
    assert first == 0
    start = round(0.52 * SOUND_RATE)
    # a copy is the input's sound to the bit, but for Opus, whose decoder converges over its
    # pre-roll; re-encoding as Opus loses some (a packet late, the chirp differs by 0.5)
    exact = codec != "libopus" and not options
    assert np.abs(kept[:4096] - heard[start:start + 4096]).max() < (0.002 if exact else 0.06)
    if options or codec.startswith("pcm"):  # and ends at the end
        assert len(kept) == round(0.68 * SOUND_RATE)
    else:  # where the edit list ends: FFmpeg decodes the last packet whole, a player stops there
        with av.open(str(out)) as c:
            assert float(c.streams.audio[0].duration * c.streams.audio[0].time_base) == pytest.approx(0.68, abs=1e-3)


@pytest.mark.parametrize("codec, samples, within", [("aac", 1024, "22 ms"), ("ac3", 1536, "a packet")])
def test_an_excerpts_sound_in_matroska_starts_at_its_first_packet_after_the_start_and_ends_at_the_end(tmp_path, codec, samples, within):
    """Matroska has no edit list to skip the part of a packet before the start; the report says so.
    Its blocks' DiscardPadding ends the sound at the end of the excerpt, to the sample: the last
    packet ran 16 ms (AAC) or 11 ms (AC-3) past the video."""
    clip = chirped_clip(tmp_path / "in.mp4", codec)
    out, report = tmp_path / "out.mkv", tmp_path / "r.json"
    assert _run(clip, out, "--model", "none", "--detector", "dlib", "--start", "0.52", "--end", "1.2", "--json", report,
                "--quiet") == 0
    assert json.loads(report.read_text())["notes"][-1] == ("the excerpt's sound is cut at its packets, as .mkv files cannot say "
                                                          f"where in one to start (.mp4 and .mov can): audio stream 1 ({codec}), "
                                                          f"within {within} of the first frame")
    first, kept = _sound(out)
    _, heard = _sound(clip)
    with av.open(str(clip)) as c:  # the first packet that starts within
        packet = min(p.pts * p.time_base for p in c.demux(c.streams.audio[0]) if p.size and p.pts * p.time_base >= Fraction(52, 100))
    assert first == pytest.approx(float(packet) - 0.52, abs=1e-3)  # Matroska counts milliseconds
    at = round(packet * SOUND_RATE)  # its first samples, decoded without the packet before, differ
    assert np.abs(kept[samples:4096] - heard[at + samples:at + 4096]).max() < 0.002
    assert first + len(kept) / SOUND_RATE == pytest.approx(0.68, abs=1e-3)


def _lossless_clip(path: Path, codec: str, bits: int, frames: int = 40) -> Path:
    """``frames`` of faceless 25 fps video and a stereo chirp as ``codec`` (a lossless one) of
    ``bits`` (16 or 24) a sample, handed to its encoder 4096 samples (85 ms) at a time."""
    width = "s16" if bits == 16 else "s32"
    formats = [f.name for f in av.Codec(codec, "w").audio_formats]
    form = width if width in formats else f"{width}p"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream(codec, rate=SOUND_RATE)
        sound.layout, sound.format = "stereo", form
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        signal = chirp(frames / 25)
        # 24 bits ride in the top of 32-bit samples, as FFmpeg's decoders give them
        ints = (signal * (2 ** 15 - 1)).astype(np.int16) if bits == 16 else (signal * (2 ** 23 - 1)).astype(np.int32) * 256
        for start in range(0, len(ints), 4096):
            piece = ints[start:start + 4096]
            both = np.stack([piece, piece]) if form.endswith("p") else np.repeat(piece, 2)[None]
            part = av.AudioFrame.from_ndarray(both, format=form, layout="stereo")
            part.sample_rate, part.pts = SOUND_RATE, start
            out.mux(sound.encode(part))
        out.mux(sound.encode(None))
    return path


def _samples(path: Path) -> tuple[float, str, np.ndarray]:
    """When the decoded sound of ``path`` starts, its sample format, and its samples (N, channels)."""
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
        channels = c.streams.audio[0].codec_context.layout.nb_channels
    return (float(frames[0].pts * frames[0].time_base), frames[0].format.name,
            np.concatenate([f.to_ndarray().T if f.format.is_planar else f.to_ndarray().reshape(-1, channels) for f in frames]))


@pytest.mark.parametrize(("codec", "bits", "into"), [("flac", 16, "flac"), ("flac", 24, "flac"), ("alac", 16, "alac"),
                                                   ("alac", 24, "alac"), ("wavpack", 24, "wavpack"), ("tta", 24, "flac")])
def test_an_excerpts_lossless_sound_in_matroska_is_cut_to_the_sample_and_keeps_every_bit(tmp_path, codec, bits, into):
    """FLAC, the lossless sound archives keep in Matroska, was cut at its packets, which hold 85 ms
    (ALAC's 4096 samples too): the excerpt's sound began up to that late. It is re-encoded without
    loss from the packet that holds the start, in its own codec (TTA as FLAC: FFmpeg read an
    excerpt's TTA in .mkv back with a wrong length, and it did not decode), so the excerpt holds
    the input's samples from its first frame to its end, bit for bit, 24-bit ones too (FFmpeg's
    FLAC encoder, given no sample format, took 16 bits)."""
    clip = _lossless_clip(tmp_path / "in.mkv", codec, bits)
    out, report = tmp_path / "out.mkv", tmp_path / "r.json"
    assert _run(clip, out, "--model", "none", "--detector", "dlib", "--start", "0.52", "--end", "1.2", "--json", report,
                "--quiet") == 0
    assert json.loads(report.read_text())["notes"][-1] == (f"re-encoded without loss with {into}, so that the excerpt's sound is cut "
                                                          "to the sample, as .mkv files cannot say where in a packet to start: "
                                                          f"audio stream 1 ({codec})")
    _, form, heard = _samples(clip)
    first, kept_form, kept = _samples(out)
    assert first == 0 and kept_form == form
    assert np.array_equal(kept, heard[round(0.52 * SOUND_RATE):round(1.2 * SOUND_RATE)])
    with av.open(str(out)) as written:
        assert written.streams.audio[0].codec_context.name == into


def test_flac_bits_are_read_from_its_setup_with_or_without_the_flac_marker():
    from vidrestore.io.reencode import _flac_bits

    def streaminfo(bits: int) -> bytes:  # 4096-sample blocks, 48 kHz, stereo, no length
        packed = (48000 << 44) | (1 << 41) | ((bits - 1) << 36)
        return (4096).to_bytes(2, "big") * 2 + bytes(6) + packed.to_bytes(8, "big") + bytes(16)

    for bits in (8, 16, 24, 32):
        assert _flac_bits(streaminfo(bits)) == bits
        assert _flac_bits(b"fLaC" + b"\x80\x00\x00\x22" + streaminfo(bits)) == bits


def test_alac_bits_are_read_from_its_setup_with_or_without_the_atoms_header():
    """ALAC decodes 24-bit and 32-bit sound alike to 32-bit samples, and FFmpeg's encoder writes
    those as 24 bits: a recut of 32-bit ALAC would lose its lowest 8, so its setup is read."""
    from vidrestore.io.reencode import _alac_bits

    def config(bits: int) -> bytes:  # ALACSpecificConfig: frame length, version, bit depth, tuning, channels...
        return (4096).to_bytes(4, "big") + bytes([0, bits, 40, 10, 14, 2]) + bytes(12)

    for bits in (16, 20, 24, 32):
        assert _alac_bits(config(bits)) == bits
        assert _alac_bits((36).to_bytes(4, "big") + b"alac" + bytes(4) + config(bits)) == bits


def test_sound_is_re_encoded_for_a_container_that_cannot_hold_it_whether_the_video_is_copied_or_restored(sample_clip, tmp_path):
    """--audio-codec auto: a faceless VP9 video copied into .webm with its FLAC re-encoded as Opus,
    and a restored excerpt's AAC re-encoded as Opus, cut to the excerpt first."""
    from conftest import vp9_flac_clip

    copied, report = tmp_path / "copied.webm", tmp_path / "r.json"
    assert _run(vp9_flac_clip(tmp_path / "in.mkv"), copied, "--model", "none", "--detector", "dlib", "--audio-codec", "auto",
                "--json", report, "--quiet") == 0
    notes = json.loads(report.read_text())["notes"]
    assert notes[-2:] == ["no face found: the video was copied without re-encoding",
                          "re-encoded with libopus, as .webm files cannot hold them: audio stream 1 (flac)"]
    restored = tmp_path / "restored.webm"
    assert _run(sample_clip, restored, "--model", "none", "--detector", "dlib", "--start", "0.25", "--end", "0.75",
                "--audio-codec", "auto", "--quiet") == 0
    for path, seconds in [(copied, 1.0), (restored, 0.5)]:
        with av.open(str(path)) as c:
            assert [(s.type, s.codec_context.name) for s in c.streams][1] == ("audio", "opus")
            samples = sum(f.samples for f in c.decode(audio=0))
        assert samples / 48000 == pytest.approx(seconds, abs=0.03)


def test_eval_video_measures_an_excerpt_against_the_same_stretch_of_its_input(sample_clip, tmp_path):
    """The excerpt holds the input's own frames (nothing restored, encoded losslessly), so with the
    same --start/--end every measure of input and excerpt agrees. Without them, the excerpt was
    measured against the input's first frames, half a second apart, and gave numbers all the same;
    it is refused, naming the frame counts and the options."""
    cut, report = tmp_path / "cut.mkv", tmp_path / "e.json"
    times = ["--start", "0.5", "--end", "1.5"]  # to the end of this 1 s clip
    assert _run(sample_clip, cut, "--model", "none", "--detector", "dlib", *times, "--strength", "0", "--codec", "ffv1", "--quiet") == 0
    for given_times in (times, ["--start", "00:00:00:12"]):  # 12 frames at 24 fps: 0.5 s
        assert _run("eval", "video", sample_clip, cut, "--detector", "dlib", *given_times, "--json", report) == 0
        (track,) = json.loads(report.read_text())["tracks"]
        assert track["input"] == track["restored"]
        assert track["frames_evaluated"] == 12  # the excerpt's (the clip is 1 s at 24 fps)
    assert _run("eval", "video", sample_clip, cut, "--detector", "dlib", "--json", report) == 3


def test_a_real_clips_excerpt_is_restored_with_its_identity_from_the_excerpts_own_frames(shared_data, tiny_model, tmp_path):
    """Through FLIPNET (a tiny one), with RetinaFace: the track spans the excerpt, its identity
    frames lie in it (test_anchor checks that their crops are cut from its frames), and the output
    is the excerpt's frames, restored, from 0."""
    from conftest import shared_file

    clip = shared_file(shared_data, "videos/keep_real_1.mp4")
    weights = shared_file(shared_data, "weights/retinaface_mobilenet0.25_Final.pth")
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    assert _run(clip, out, "--model", tiny_model, "--detector-weights", weights, "--strength", "1", "--start", "4", "--end", "6.5",
                "--json", report, "--quiet", "--x264-preset", "ultrafast") == 0
    written = json.loads(report.read_text())
    (track,) = [t for t in written["tracks"] if t["selected"]]
    assert (written["frames_in"], track["start"], track["frames"]) == (50, 0, 50)  # 20 fps
    assert all(0 <= i < 50 for i in track["identity_frames"])
    assert read_pts(out) == [i * 512 for i in range(50)]  # the input's 1/10240 time base, from 0
    before = [image for t, image in _frames(clip) if 4 <= t < 6.5]
    after = [image for _, image in _frames(out)]
    assert np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(before, after)]) < 3  # the same frames


def test_a_timecode_is_counted_from_the_first_frames_at_the_videos_rate():
    from vidrestore.io.timecode import is_timecode, seconds_after

    assert is_timecode("01:00:10:12") and is_timecode("00:01:00;02") and not is_timecode("1:00:10") and not is_timecode("90")
    assert seconds_after("01:00:02:12", "01:00:00:00", Fraction(25)) == Fraction(62, 25)
    assert seconds_after("00:01:00;02", "00:00:00;00", Fraction(30000, 1001)) == Fraction(1800 * 1001, 30000)  # ;00 and ;01 skipped
    with pytest.raises(ValueError, match="before the first frame, at timecode 01:00:00:00"):
        seconds_after("00:59:59:24", "01:00:00:00", Fraction(25))
    with pytest.raises(ValueError, match="frame 25 does not exist at 25 fps"):
        seconds_after("01:00:00:25", "01:00:00:00", Fraction(25))


def test_an_excerpt_given_in_timecode_starts_at_that_frame(sample_clip, tmp_path, capsys):
    """An editor's source timecodes: counted from the timecode a QuickTime clip states for its
    first frame, or from 00:00:00:00 where a clip states none; in a single run and in a batch."""
    clip = timecoded_clip(tmp_path / "tc.mov", "01:00:00:00", frames=12)  # 25 fps
    out, report = tmp_path / "cut.mov", tmp_path / "r.json"
    assert _run(clip, out, "--model", "none", "--detector", "dlib", "--start", "01:00:00:02", "--end", "01:00:00:07",
                "--json", report, "--quiet") == 0
    assert json.loads(report.read_text())["excerpt"] == {"start_s": 0.08, "end_s": 0.28, "first_frame_s": 0.08}
    with av.open(str(out)) as c:
        assert {k.lower(): v for k, v in c.streams.video[0].metadata.items()}["timecode"] == "01:00:00:02"
    assert len(read_pts(out)) == 5
    assert _run(sample_clip, tmp_path / "s.mp4", "--model", "none", "--detector", "dlib", "--start", "00:00:00:12",
                "--json", report, "--quiet") == 0  # no timecode stated: from 00:00:00:00, at 24 fps
    assert json.loads(report.read_text())["excerpt"]["first_frame_s"] == 0.5
    assert main(["batch", str(clip), "--out", str(tmp_path / "b"), "--model", "none", "--detector", "dlib",
                 "--start", "01:00:00:05", "--quiet"]) == 0
    assert len(read_pts(tmp_path / "b" / "tc.mov")) == 7
    _one_line_error(capsys, _run(clip, tmp_path / "x.mov", "--model", "none", "--start", "00:59:59:00"), 2,
                    "--start 00:59:59:00: before the first frame, at timecode 01:00:00:00 in tc.mov")
