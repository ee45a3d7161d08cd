
import dataclasses
import io
import itertools
import json
import re
import struct
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import (
    ERASE_SCREEN,
    aspect_switching_clip,
    audio_only,
    captioned_clip,
    captions,
    combing,
    cover_picture,
    covered_clip,
    dressed_clip,
    film_frames,
    hdr10_clip,
    hdr10_metadata,
    held_by_another_run,
    make_clip,
    pop_on,
    read_pts,
    resized_clip,
    stream_copied,
    telecine_clip,
    timecoded_clip,
    weave_clip,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vidrestore.cli import main
from vidrestore.errors import InputError, OutputError
from vidrestore.io import EncodeOptions, VideoReader, VideoWriter, probe, remux
from vidrestore.io.encoders import MPEG_RATES, mpeg_rate
from vidrestore.io.output import atomic_output
from vidrestore.io.reader import DecodedFrames, FieldFilter, InTimeOrder, bit_depth, fields_have_own_moments, scan_fields
from vidrestore.io.remux import check_output


def _roundtrip(src, dst, modify=True):
    info = probe(src)
    tmp = dst.with_suffix(".video.mp4")
    with VideoReader(src) as r, VideoWriter(tmp, info, EncodeOptions(preset="ultrafast")) as w:
        for f in r:
            w.write(f.source, f.pts, f.image if modify else None)
    remux(tmp, src, dst)
    return info, probe(dst)


def test_roundtrip_keeps_vfr_timestamps_audio_rotation_odd_size(tmp_path):
    pts = [0, 40, 80, 150, 190, 300, 340, 400]
    src = make_clip(tmp_path / "in.mp4", pts, size=(49, 65), rotation=90, audio=True, pix_fmt="yuv444p")
    a, b = _roundtrip(src, tmp_path / "out.mp4")
    assert read_pts(tmp_path / "out.mp4") == read_pts(src)
    assert (b.width, b.height, b.rotation) == (65, 49, 90)
    assert b.display_size == (49, 65)
    assert b.other_streams == a.other_streams == ("audio:aac",)
    with VideoReader(src) as r:
        assert next(iter(r)).image.shape == (65, 49, 3)  # frames come in display orientation


def test_colour_metadata_is_carried(tmp_path):
    src = make_clip(tmp_path / "in.mp4", list(range(0, 200, 40)), color=True)
    a, b = _roundtrip(src, tmp_path / "out.mp4")
    assert a.color == b.color and a.color.matrix == 1


def test_untouched_frames_pass_through_the_encoder_close_to_the_input(tmp_path):
    src = make_clip(tmp_path / "in.mp4", list(range(0, 400, 40)))
    _roundtrip(src, tmp_path / "out.mp4", modify=False)
    with VideoReader(src) as r1, VideoReader(tmp_path / "out.mp4") as r2:
        for f1, f2 in zip(r1, r2):
            assert np.abs(f1.image.astype(int) - f2.image.astype(int)).mean() < 3


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gaps=st.lists(st.integers(1, 90), min_size=2, max_size=12))
def test_any_timestamp_sequence_survives(tmp_path, gaps):
    pts = list(np.cumsum([0, *gaps]))
    src = make_clip(tmp_path / "h_in.mp4", [int(p) for p in pts], size=(32, 32))
    _roundtrip(src, tmp_path / "h_out.mp4")
    assert read_pts(tmp_path / "h_out.mp4") == read_pts(src)


def test_missing_and_non_media_inputs_give_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        probe(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(InputError, match="not a media file"):
        probe(junk)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = audio_only(tmp_path / "a.m4a")
    with pytest.raises(InputError, match="no video stream"):
        probe(path)
    for suffix in (".mp4", ".mkv"):  # an album cover: restored as a one-frame video, its mux failed after the work
        with pytest.raises(InputError, match="no video stream in .*: its one picture is cover art .streams: audio."):
            probe(covered_clip(tmp_path / f"song{suffix}", path))


def test_a_raw_stream_is_numbered_at_the_rate_its_encoder_wrote_and_read_from_anywhere(tmp_path):
    src = make_clip(tmp_path / "cam.h264", list(range(20)), time_base=Fraction(1, 20), rate=20)
    info = probe(src)
    assert not info.timestamps and info.average_rate == 20  # the raw demuxer alone would say 25
    with VideoReader(src) as r:
        whole = list(r)
    step = round(1 / (20 * info.time_base))
    assert [f.pts for f in whole] == [i * step for i in range(20)]
    # a segment cannot seek by timestamps the file does not hold: it reads on from the start
    with VideoReader(src, start=7, stop=12, start_pts=whole[7].pts) as r:
        part = list(r)
    assert [f.pts for f in part] == [f.pts for f in whole[7:12]]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(part, whole[7:12]))


def test_a_stream_that_states_no_length_gets_an_expected_length_from_how_far_it_is_read(tmp_path):
    """A raw stream states neither frame count nor duration: pass 1's progress had no total and no ETA."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(60)]
    src = make_clip(tmp_path / "cam.h264", list(range(60)), time_base=Fraction(1, 20), rate=20, images=images)
    assert probe(src).estimated_frames == 0
    with VideoReader(src) as r:
        assert r.expected_frames() == 0  # nothing read yet
        halfway = [r.expected_frames() for f in r if f.index == 30]
        at_end = r.expected_frames()
    assert 40 <= halfway[0] <= 90 and abs(at_end - 60) <= 2
    stated = make_clip(tmp_path / "clip.mp4", list(range(0, 2400, 40)))
    with VideoReader(stated) as r:
        assert {r.expected_frames() for _ in r} == {60}


def test_a_recording_cut_where_there_was_no_keyframe_says_where_its_picture_starts(tmp_path, capsys):
    """A TS clipped from a broadcast starts mid-GOP: no decoder can use its first packets, and the
    picture starts later than the stream (and its sound) without a word in the report."""
    rng = np.random.default_rng(0)
    images = [np.clip(rng.normal(128, 40, (48, 64, 3)), 0, 255).astype(np.uint8) for _ in range(90)]
    whole = make_clip(tmp_path / "whole.ts", list(range(0, 90 * 1800, 1800)), time_base=Fraction(1, 90000), images=images,
                      audio=True, x264_params="keyint=30:min-keyint=30:scenecut=0")
    data = whole.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[(len(data) // 2) // 188 * 188:])  # TS packets are 188 bytes
    assert main([str(cut), "--dry-run", "--quiet", "--json", "-"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    lead = [n for n in notes if n.startswith("the picture starts ")]
    assert len(lead) == 1 and 0.1 < float(lead[0].split()[3]) <= 1.25  # up to one GOP of 30 frames at 25 fps
    assert main([str(whole), "--dry-run", "--quiet", "--json", "-"]) == 0
    assert not any(n.startswith("the picture starts ") for n in json.loads(capsys.readouterr().out)["notes"])


def test_truncated_stream_restores_what_decodes(tmp_path):
    src = make_clip(tmp_path / "in.mkv", list(range(0, 2000, 40)), size=(64, 64))
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with VideoReader(cut) as r:
        frames = list(r)
    assert 0 < len(frames) < 50


def test_frames_of_another_size_mid_stream_come_at_the_streams_first_size(tmp_path, sample_clip):
    src = resized_clip(tmp_path / "spliced.ts", sample_clip)
    info = probe(src)
    with VideoReader(src) as r, VideoReader(sample_clip) as original:
        frames, before = list(r), [f.image for f in original]
        resized = r.stats.resized
    assert resized == 12
    assert {(f.source.width, f.source.height, f.source.format.name) for f in frames} == {(info.width, info.height, "yuv420p")}
    assert [f.pts for f in frames] == read_pts(src)
    # the second half is its own pictures scaled back up, not a stretched or shifted copy
    assert all(np.abs(f.image.astype(int) - b).mean() < 6 for f, b in zip(frames, before))
    assert not scan_fields(src).interlaced  # the scans read the same frames


@pytest.mark.parametrize(("second", "sar", "rows", "columns"), [
    ((270, 480), None, (44, 314), (0, 480)),  # a 16:9 recording spliced into a 4:3 one: letterboxed, from an even row
    ((360, 360), None, (0, 360), (60, 420)),  # a square one: pillarboxed
    ((360, 360), Fraction(4, 3), (0, 360), (0, 480)),  # square in size, 4:3 in shape by its pixels: filled
])
def test_frames_of_another_shape_mid_stream_keep_it_on_black_bars(tmp_path, sample_clip, second, sar, rows, columns):
    src = resized_clip(tmp_path / "spliced.ts", sample_clip, second=second, sar=sar)
    with VideoReader(src) as r, VideoReader(sample_clip) as original:
        frames, before = list(r), [f.image for f in original]
        stats = r.stats
    assert (stats.resized, stats.boxed) == (12, 0 if columns == (0, 480) and rows == (0, 360) else 12)
    (top, bottom), (left, right) = rows, columns
    for frame, image in zip(frames[12:], before[12:]):
        shown = frame.image.astype(int)
        outside = np.ones(shown.shape[:2], bool)
        outside[max(0, top - 2) : bottom + 2, max(0, left - 2) : right + 2] = False  # chroma, upsampled, bleeds a pixel or two
        assert not outside.any() or shown[outside].max() <= 3
        # the part showed the middle of the same scene: it is back in the middle
        y, x = (360 - (bottom - top)) // 2, (480 - (right - left)) // 2
        assert np.abs(shown[top:bottom, left:right] - image[y : y + bottom - top, x : x + right - left]).mean() < 6


@pytest.mark.parametrize(("codec", "container"), [("mpeg2video", ".ts"), ("libx264", ".ts"), ("libx264", ".mkv"), ("libx264", ".mp4")])
@pytest.mark.parametrize(("aspects", "lit"), [
    ([Fraction(16, 15), Fraction(64, 45), Fraction(16, 15)], ((72, 503), (0, 719))),  # a 16:9 advert in 4:3: letterboxed
    ([Fraction(64, 45), Fraction(16, 15), Fraction(64, 45)], ((0, 575), (90, 629))),  # a 4:3 one in 16:9: pillarboxed
])
def test_pictures_whose_stated_shape_changes_at_one_size_keep_it(tmp_path, aspects, lit, codec, container):
    """Each picture takes the shape its header (MPEG-2's sequence header, H.264's SPS) states, to
    the frame: FFmpeg's decoder states the latest packet's, which gave the last picture of a part
    the next part's shape. A DVB recording remuxed into Matroska or MP4 keeps its H.264 parameter
    sets in the packets, length-prefixed as those containers lay them out: they were not read, and
    every picture took the first part's shape."""
    src = aspect_switching_clip(tmp_path / "dvb.ts", aspects, codec=codec)
    if container != ".ts":
        src = stream_copied(tmp_path / f"dvb{container}", src)
        with av.open(str(src)) as c:
            assert c.streams.video[0].codec_context.extradata[0] == 1  # avcC: each NAL unit after its length
    with VideoReader(src) as r:
        frames = [f.image for f in r]
        stats = r.stats
    assert len(frames) == 18 and (stats.resized, stats.boxed) == (0, 6)
    for n, image in enumerate(frames):
        rows, columns = np.flatnonzero(image.max(axis=(1, 2)) > 40), np.flatnonzero(image.max(axis=(0, 2)) > 40)
        shown = (rows[0], rows[-1]), (columns[0], columns[-1])
        assert shown == (lit if 6 <= n < 12 else ((0, 575), (0, 719))), n


def test_damage_in_a_transport_stream_is_located(tmp_path):
    src = make_clip(tmp_path / "in.ts", [1000 + i * 40 for i in range(50)], size=(64, 64))
    data = bytearray(src.read_bytes())
    middle = len(data) // 2 // 188 * 188  # a TS packet boundary
    data[middle : middle + 188 * 4] = np.random.default_rng(1).integers(0, 256, 188 * 4, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.ts"
    damaged.write_bytes(bytes(data))
    with VideoReader(src) as r:
        assert len(list(r)) == 50 and r.stats.damaged_s == []
    with VideoReader(damaged) as r:
        frames = list(r)
    assert len(r.stats.damaged_s) >= 1 and all(0.4 < t < 1.6 for t in r.stats.damaged_s)  # the middle of a 2 s clip
    assert len(frames) >= 45
    report = tmp_path / "r.json"
    assert main([str(damaged), str(tmp_path / "out.mkv"), "--model", "none", "--quiet", "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["damaged_s"] == [round(t, 3) for t in r.stats.damaged_s]
    assert any(note.startswith("the file is damaged") for note in data["notes"])


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match="does not exist"), atomic_output(tmp_path / "missing" / "x.mp4"):
        pass


def test_a_second_run_writing_the_same_output_is_refused(tmp_path, capsys):
    """Two runs into one output wrote their segments under the same names beside it: the first
    joined the second's (keep_real_1's 248 frames at keep_real_2's width) and the second failed
    with a traceback. While one run writes it, another is refused in one line; the lock file is
    gone once the run ends."""
    from vidrestore.io.output import writing

    src = make_clip(tmp_path / "in.mp4", [i * 40 for i in range(6)])
    out = tmp_path / "out.mkv"
    with held_by_another_run(out):
        assert main([str(src), str(out), "--model", "none", "--detector", "dlib", "--quiet"]) == 4
        assert capsys.readouterr().err.strip() == (f"vidrestore: error: another vidrestore run is writing {out}; "
                                                   "wait for it to end, or name another output")
        with pytest.raises(OutputError, match="another vidrestore run"), writing(out):
            pass
    with writing(out), writing(out):  # a thread holding an output holds it again
        assert len(list(tmp_path.glob(".out.lock"))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert main([str(src), str(out), "--model", "none", "--detector", "dlib", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mkv"]


def test_an_output_named_by_a_symbolic_link_is_written_into_the_file_it_names(tmp_path, capsys):
    """The finished output was renamed onto the link: the link became a file of its own (on the
    link's disk) and the file it named kept the old video. The file named is replaced now, the link
    stays a link, a dangling link is written through (as cp does), and a link to the input is
    refused as the input. Two runs through two links to one file are held as one output."""
    from vidrestore.io.output import writing

    src = make_clip(tmp_path / "in.mkv", [i * 40 for i in range(6)])
    store = tmp_path / "store"
    store.mkdir()
    (store / "old.mkv").write_bytes(b"an earlier output")
    links = {name: tmp_path / name for name in ("old.mkv", "new.mkv", "self.mkv", "other.mkv")}
    links["old.mkv"].symlink_to(store / "old.mkv")
    links["new.mkv"].symlink_to(store / "new.mkv")
    links["self.mkv"].symlink_to(src)
    links["other.mkv"].symlink_to(store / "old.mkv")
    run = ["--model", "none", "--detector", "dlib", "--quiet", "--overwrite"]
    for name in ("old.mkv", "new.mkv"):
        assert main([str(src), str(links[name]), *run]) == 0
        assert links[name].is_symlink()
        assert read_pts(store / name) == [i * 40 for i in range(6)]
    assert main([str(src), str(links["self.mkv"]), *run]) == 4
    assert "output is the input file" in capsys.readouterr().err
    with held_by_another_run(links["old.mkv"]), pytest.raises(OutputError, match="another vidrestore run"), \
            writing(links["other.mkv"]):
        pass
    assert sorted(p.name for p in store.iterdir()) == ["new.mkv", "old.mkv"]


def test_an_output_on_a_file_system_without_locks_is_written_unguarded(tmp_path, monkeypatch):
    """Some network mounts have no locks (flock fails with ENOLCK): the run goes on, as before."""
    import errno
    import fcntl

    from vidrestore.batch.state import JobState
    from vidrestore.io.output import writing

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with writing(tmp_path / "out.mkv"):
        pass
    with JobState(tmp_path) as state:
        assert state.rows() == []


@pytest.mark.parametrize("pattern", ["out.mkv", "out_%04d.png"])
def test_an_output_that_cannot_be_written_is_named_not_its_temporary_file(tmp_path, pattern):
    """A full disk failed the join of a video's segments as "cannot write /out/.out.k2x9q.part.mkv",
    naming a temporary file that is removed; the error names the output."""
    target = tmp_path / pattern
    for named in (str, lambda p: p.name):
        with pytest.raises(OutputError) as caught, atomic_output(target) as tmp:
            raise OutputError(f"cannot write {named(tmp)} (No space left on device)")
        assert str(caught.value) == f"cannot write {named(target)} (No space left on device)"
    with pytest.raises(OutputError, match="^the muxer refused it$"), atomic_output(target):
        raise OutputError("the muxer refused it")
    assert list(tmp_path.iterdir()) == []


def test_a_trailer_that_cannot_be_written_is_an_output_error(tmp_path):
    """Matroska writes its cues as it closes: on a full disk that alone can fail, which went up as
    FFmpeg's OSError with a traceback instead of one line."""
    src = make_clip(tmp_path / "in.mp4", [i * 40 for i in range(4)])

    class FullDisk:
        def __init__(self, container):
            self.container = container

        def __getattr__(self, name):
            return getattr(self.container, name)

        def close(self):
            self.container.close()
            raise OSError(28, "No space left on device")

    writer = VideoWriter(tmp_path / "o.mkv", probe(src), EncodeOptions(preset="ultrafast"))
    writer.container = FullDisk(writer.container)
    with VideoReader(src) as r:
        for f in r:
            writer.write(f.source, f.pts, f.image)
    with pytest.raises(OutputError, match=r"^cannot write .*o\.mkv \(No space left on device\)$"):
        writer.close()


def test_unknown_encoder_is_an_output_error(tmp_path):
    src = make_clip(tmp_path / "in.mp4", [0, 40])
    with pytest.raises(OutputError, match="encoder"):
        VideoWriter(tmp_path / "o.mp4", probe(src), EncodeOptions(codec="no-such-codec"))


@pytest.mark.parametrize("codec,suffix", [("ffv1", ".mkv"), ("prores_ks", ".mov")])
def test_archival_codecs(tmp_path, codec, suffix):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this FFmpeg build")
    src = make_clip(tmp_path / "in.mp4", list(range(0, 200, 40)))
    info = probe(src)
    out = tmp_path / f"o{suffix}"
    with VideoReader(src) as r, VideoWriter(out, info, EncodeOptions(codec=codec)) as w:
        for f in r:
            w.write(f.source, f.pts, f.image)
    assert probe(out).codec.startswith(codec.split("_")[0]) and len(read_pts(out)) == 5


def _alpha_master(path, frames: int = 3):
    """A ProRes 4444 clip with alpha (decoded as 12-bit yuva444p12le): a 60% opaque band on the left."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("prores_ks", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuva444p10le"
        for i in range(frames):
            rgba = np.concatenate([rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), np.full((48, 64, 1), 255, np.uint8)], 2)
            rgba[:, :20, 3] = 153
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format="yuva444p10le")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_a_prores_4444_master_keeps_its_alpha_and_its_profile_where_faces_are_painted(tmp_path):
    """Painted regions were converted from RGB, which has no alpha: they came out opaque. ProRes took
    its first pixel format (4:2:2 without alpha) for the 12-bit 4444 source, and the copy into .mov
    was tagged HQ (apch) whatever it held."""
    if "prores_ks" not in av.codecs_available:
        pytest.skip("prores_ks not in this FFmpeg build")
    src = _alpha_master(tmp_path / "master.mov")
    info = probe(src)
    assert info.pix_fmt == "yuva444p12le"
    part, out = tmp_path / "part.mov", tmp_path / "out.mov"
    with VideoReader(src, keep_depth=True) as r, VideoWriter(part, info, EncodeOptions(codec="prores_ks")) as w:
        for f in r:
            painted = f.image.copy()
            painted[10:30, 10:40] = 30000  # a face pasted over the alpha band's edge
            w.write(f.source, f.pts, painted, [(10, 10, 40, 30)])
    remux(part, src, out)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert b.streams.video[0].codec_context.codec_tag == "ap4h"
        for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True):
            assert y.format.name.startswith("yuva444")  # ProRes 4444 decodes at 12 bits
            alpha_in, alpha_out = (f.to_ndarray(format="rgba64le")[..., 3] >> 6 for f in (x, y))
            assert np.abs(alpha_in.astype(int) - alpha_out).max() <= 1  # 12 to 10 bits


def test_a_copy_into_quicktime_or_mp4_keeps_the_tag_apple_players_need(tmp_path):
    """An iPhone's HEVC is tagged hvc1; copied, the muxer retagged it hev1, which QuickTime and iOS
    refuse. HEVC that vidrestore encodes into .mp4 is tagged hvc1 too."""
    src = make_clip(tmp_path / "in.mp4", list(range(0, 200, 40)))
    info = probe(src)
    encoded = tmp_path / "x265.mp4"
    with VideoReader(src) as r, VideoWriter(encoded, info, EncodeOptions(codec="libx265")) as w:
        for f in r:
            w.write(f.source, f.pts)
    for suffix in (".mp4", ".mov"):
        remux(encoded, encoded, tmp_path / f"copy{suffix}")
    for path in (encoded, tmp_path / "copy.mp4", tmp_path / "copy.mov"):
        with av.open(str(path)) as c:
            assert c.streams.video[0].codec_context.codec_tag == "hvc1", path.name


def _master(path: Path, codec: str, pix_fmt: str, options: dict[str, str], frames: int = 3) -> Path:
    """A clip of noise in an intra-frame master codec (256x144: DNxHR codes nothing smaller than 256x120)."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this FFmpeg build")
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.options = 256, 144, pix_fmt, options
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (144, 256, 3), dtype=np.uint8), format="rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.mark.parametrize("codec, pix_fmt, options, suffix, profile", [
    ("prores_ks", "yuv422p10le", {"profile": "1"}, ".mov", "LT"),
    ("prores_ks", "yuv444p10le", {"profile": "5"}, ".mkv", "XQ"),
    ("dnxhd", "yuv422p", {"profile": "dnxhr_sq"}, ".mov", "DNXHR SQ"),
    ("dnxhd", "yuv422p", {"profile": "dnxhr_lb"}, ".mxf", "DNXHR LB"),
    ("utvideo", "yuv422p", {}, ".avi", None),
    ("png", "rgba", {}, ".mov", None),
    ("cfhd", "gbrap12le", {}, ".avi", None),
    ("r210", "gbrp10le", {}, ".mov", None),
    ("jpeg2000", "yuv422p10le", {}, ".mxf", None),
], ids=["prores-lt", "prores-xq-mkv", "dnxhr-sq", "dnxhr-lb-mxf", "utvideo", "png-alpha", "cineform-alpha", "r210", "jpeg2000-mxf"])
def test_a_master_is_written_back_in_its_own_codec_and_profile(tmp_path, codec, pix_fmt, options, suffix, profile):
    """Without --codec, a ProRes LT reel came back as H.264 (and with --codec prores_ks as HQ), a
    DNxHR one as H.264 (DNxHD's encoder refused it without a profile), an Avid MXF as MPEG-2, and a
    PNG QuickTime render (or a CineForm one) as H.264 without its alpha."""
    src = _master(tmp_path / f"in{suffix}", codec, pix_fmt, options)
    info = probe(src)
    out = tmp_path / f"out{suffix}"
    with VideoReader(src, keep_depth=True) as r, VideoWriter(out, info, EncodeOptions()) as w:
        for f in r:
            painted = f.image.copy()
            painted[10:30, 10:40] //= 2
            w.write(f.source, f.pts, painted, [(10, 10, 40, 30)])
    written = probe(out)
    assert (written.codec, written.profile, written.pix_fmt) == (info.codec, profile, info.pix_fmt)
    assert len(read_pts(out)) == 3


def test_a_lossless_master_stays_lossless_where_its_container_can_and_is_named_where_not(tmp_path):
    """A HuffYUV capture into .mkv (which holds no HuffYUV) becomes FFV1; an FFV1 master into .mp4,
    a delivery format, becomes H.264, and the note says how to keep it lossless."""
    from vidrestore.io.encoders import check_encoder, master_note

    capture = probe(_master(tmp_path / "capture.avi", "huffyuv", "yuv422p", {}))
    assert check_encoder(EncodeOptions(), tmp_path / "o.mkv", capture).name == "ffv1"
    assert check_encoder(EncodeOptions(), tmp_path / "o.avi", capture).name == "huffyuv"
    assert check_encoder(EncodeOptions(), tmp_path / "o.mxf", capture).name == "ffv1"  # FFmpeg's MXF muxer fails on HuffYUV's header
    master = probe(_master(tmp_path / "master.mkv", "ffv1", "yuv420p", {}))
    assert check_encoder(EncodeOptions(), tmp_path / "o.mp4", master).name == "libx264"
    assert "--codec ffv1" in master_note(master, "libx264", tmp_path / "o.mp4")[0]
    assert master_note(master, "ffv1", tmp_path / "o.mkv") == [] == master_note(probe(make_clip(tmp_path / "h.mp4", [0, 40])),
                                                                                 "libx264", tmp_path / "o.mp4")


def test_a_jpeg2000_master_in_mxf_comes_back_as_lossless_jpeg2000(tmp_path, sample_clip):
    """Film archives keep JPEG 2000 in MXF. Restored into .mxf it came back as MPEG-2, MXF's house
    codec, without a word (and once it was written as JPEG 2000, MXF's muxer refused it: FFmpeg's
    MXF demuxer states no frame rate for it). It is now JPEG 2000 again, in its reversible (lossless)
    wavelet: every sample away from the face is the input's. Into .mp4, the note says how to keep it."""
    from vidrestore.cli import main

    src = tmp_path / "archive.mxf"
    with VideoReader(sample_clip) as r, av.open(str(src), "w") as out:
        stream = out.add_stream("jpeg2000", rate=25)
        stream.width, stream.height, stream.pix_fmt = r.info.width, r.info.height, "yuv422p"
        for f in itertools.islice(r, 4):
            frame = av.VideoFrame.from_ndarray(f.image, format="rgb24").reformat(format="yuv422p")
            frame.pts = f.index
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    options = ["--model", "none", "--detector", "dlib", "--strength", "1", "--quiet", "--json", str(tmp_path / "r.json")]
    assert main([str(src), str(tmp_path / "out.mxf"), *options]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["encoder"] == "jpeg2000, yuv422p"
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mxf")) as b:
        assert b.streams.video[0].codec_context.name == "jpeg2000"
        for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True):
            assert np.array_equal(x.to_ndarray()[:16, :16], y.to_ndarray()[:16, :16])  # a corner, away from the face
    assert main([str(src), str(tmp_path / "out.mp4"), *options]) == 0
    assert any("(a master)" in note and "--codec jpeg2000" in note for note in json.loads((tmp_path / "r.json").read_text())["notes"])


def test_pictures_in_a_master_codec_are_no_master_for_the_video_made_of_them(tmp_path):
    """A PNG QuickTime render is a master (lossless, alpha); PNG pictures, one or a sequence, are
    pictures, which a .mov of them gets as delivery video, not as PNG."""
    from vidrestore.io.encoders import check_encoder, master_note

    still = tmp_path / "face.png"
    cv2.imwrite(str(still), np.zeros((48, 64, 3), np.uint8))
    for source in (probe(still), dataclasses.replace(probe(still), path=tmp_path / "r_%04d.png")):
        assert source.codec == "png"
        assert check_encoder(EncodeOptions(), tmp_path / "o.mov", source).name == "libx264"
        assert master_note(source, "libx264", tmp_path / "o.mp4") == []
    render = probe(_master(tmp_path / "render.mov", "png", "rgb24", {}))
    assert check_encoder(EncodeOptions(), tmp_path / "o.mov", render).name == "png"
    assert check_encoder(EncodeOptions(), tmp_path / "o.mkv", render).name == "ffv1"  # Matroska holds no PNG
    assert "--codec ffv1" in master_note(render, "libx264", tmp_path / "o.mp4")[0]


def test_an_alpha_master_written_where_alpha_cannot_go_keeps_its_depth_and_the_report_says_so(tmp_path):
    """x265 lists yuva420p but one built without alpha layers refuses it: a ProRes 4444 master with
    alpha failed to write into an .mp4. Now it is written 10-bit without alpha where the encoder
    cannot open alpha, and a note says the alpha was left out and how to keep it."""
    if "prores_ks" not in av.codecs_available:
        pytest.skip("prores_ks not in this FFmpeg build")
    from vidrestore.io.encoders import alpha_note, check_encoder, has_alpha

    src = _alpha_master(tmp_path / "master.mov")
    info = probe(src)
    for name in ("o.mp4", "o.mkv", "o.webm"):
        out = tmp_path / name
        codec = check_encoder(EncodeOptions(), out, info)
        with VideoReader(src, keep_depth=True) as r, VideoWriter(out, info, EncodeOptions()) as w:
            for f in r:
                w.write(f.source, f.pts)
        written = probe(out)
        assert len(read_pts(out)) == 3
        with av.open(str(out)) as c:  # FFmpeg's own VP9 decoder leaves alpha out; Matroska's AlphaMode says it is there
            kept = has_alpha(written.pix_fmt) or c.streams.video[0].metadata.get("alpha_mode") == "1"
        assert bool(alpha_note(info, codec, EncodeOptions(), out)) != kept, name
        assert kept or (name == "o.mp4" and bit_depth(written.pix_fmt) == 10), (name, written.pix_fmt)


def test_a_gif_is_transparent_only_where_its_first_frame_is(tmp_path):
    """FFmpeg decodes every GIF with alpha (bgra): every GIF's output said its transparency was
    left out, though most have none (FFmpeg's own GIF encoder flags a transparent colour in every
    frame after the first, for the pixels that do not change)."""
    from PIL import Image

    from vidrestore.io.encoders import alpha_note, check_encoder

    frames = {}
    for name, alpha in (("opaque.gif", 255), ("sticker.gif", 0)):
        pictures = []
        for n in range(3):
            picture = Image.new("RGBA", (32, 24), (40 * n, 90, 200, 255))
            picture.paste((0, 0, 0, alpha), (0, 0, 16, 24))  # the left half: clear in the sticker
            pictures.append(picture)
        frames[name] = tmp_path / name
        pictures[0].save(frames[name], save_all=True, append_images=pictures[1:], duration=100, disposal=2, loop=0)
    for name, transparent in (("opaque.gif", False), ("sticker.gif", True)):
        info = probe(frames[name])
        assert info.pix_fmt == "bgra" and info.transparent is transparent, name
        out = tmp_path / f"out-{name}"
        note = alpha_note(info, check_encoder(EncodeOptions(), out, info), EncodeOptions(), out)
        assert note == [], name  # a GIF's transparent colour is GIF's
        render = dataclasses.replace(info, codec="png")  # levels of alpha, GIF's one transparent colour
        assert alpha_note(render, check_encoder(EncodeOptions(), out, render), EncodeOptions(), out) == ([] if not transparent else [
            ("the input's alpha channel (transparency) was kept as gif's transparent colour: pixels under half opaque are clear, "
            "the others opaque; write a .mov (--codec png) or a .mkv (--codec ffv1) to keep its levels")])
        mp4 = tmp_path / f"out-{name}.mp4"
        note = alpha_note(info, check_encoder(EncodeOptions(), mp4, info), EncodeOptions(), mp4)
        assert note == ([] if not transparent else
                        [("the input's alpha channel (transparency) was left out: libx264 in a .mp4 stores none; "
                         "write a .mov (--codec png) or a .mkv (--codec ffv1) to keep it")])
    made = make_clip(tmp_path / "clip.mp4", [0, 40, 80], size=(24, 32))
    with av.open(str(made)) as c, av.open(str(tmp_path / "ffmpeg.gif"), "w") as out:
        stream = out.add_stream("gif", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "rgb8"
        for frame in c.decode(video=0):
            out.mux(stream.encode(frame.reformat(format="rgb8")))
        out.mux(stream.encode(None))
    assert not probe(tmp_path / "ffmpeg.gif").transparent


def test_an_alpha_format_that_an_encoder_lists_but_does_not_open_is_refused_before_any_work(tmp_path):
    """FFmpeg's VP9 wrapper lists yuva444p and gbrap and refuses to open with them (alpha is 4:2:0
    there): --pix-fmt yuva444p failed once the first restored frame was encoded."""
    from vidrestore.io.encoders import output_pix_fmt

    if "libvpx-vp9" not in av.codecs_available:
        pytest.skip("libvpx-vp9 not in this FFmpeg build")
    info = probe(make_clip(tmp_path / "in.mp4", [0, 40]))
    vp9 = av.Codec("libvpx-vp9", "w")
    assert output_pix_fmt(vp9, EncodeOptions(pix_fmt="yuva420p"), info) == "yuva420p"
    with pytest.raises(OutputError, match="does not take pixel format yuva444p"):
        output_pix_fmt(vp9, EncodeOptions(pix_fmt="yuva444p"), info)


def test_a_copy_keeps_the_tag_that_says_how_its_pictures_are_coded(tmp_path):
    """UT Video names its pixel format in its tag: a faceless 4:2:2 AVI (ULY2) was copied as RGBA's
    ULRA, and no decoder could read the copy."""
    src = _master(tmp_path / "in.avi", "utvideo", "yuv422p", {})
    remux(src, src, tmp_path / "out.avi")
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.avi")) as b:
        assert b.streams.video[0].codec_context.codec_tag == "ULY2"
        for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True):
            assert np.array_equal(x.to_ndarray(format="rgb24"), y.to_ndarray(format="rgb24"))


def _mxf_tape(path, frames: int = 12, codec: str = "mpeg2video"):
    """An MXF file as broadcast archives hold them: MPEG-2 4:2:2 (or an Avid's DNxHR) with PCM sound."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=25)
        video.width, video.height, video.pix_fmt, video.bit_rate = 128, 96, "yuv422p", 10_000_000
        if codec == "dnxhd":
            video.width, video.height, video.options = 256, 144, {"profile": "dnxhr_sq"}
        sound = out.add_stream("pcm_s16le", rate=48000)
        sound.layout = "mono"
        for i in range(frames):
            picture = rng.integers(0, 256, (video.height, video.width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv422p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1920), np.int16), format="s16", layout="mono")
            samples.sample_rate, samples.pts = 48000, i * 1920
            out.mux(sound.encode(samples))
        out.mux(video.encode())
        out.mux(sound.encode())
    return path


@pytest.mark.parametrize("tape, codec, written", [("mpeg2video", "auto", "mpeg2video"), ("mpeg2video", "libx264", "h264"),
                                                  ("dnxhd", "auto", "dnxhd")])
def test_an_mxf_file_is_restored_into_mxf_with_its_sound_and_its_frame_order(tmp_path, tape, codec, written):
    """MXF refused its own PCM sound (tried alone, with no picture before it; an Avid's DNxHR was
    tried without its frame rate, which MXF refuses), x264's reordered frames came back out of order
    from MXF, and MXF's users expect MPEG-2 in it (or the DNxHR it held)."""
    src = _mxf_tape(tmp_path / "tape.mxf", codec=tape)
    out, part = tmp_path / "out.mxf", tmp_path / "part.mxf"
    options = EncodeOptions(codec=codec)
    check_output(src, out, options, drop=False)
    with VideoReader(src) as r, VideoWriter(part, probe(src), options) as w:
        for f in r:
            w.write(f.source, f.pts, f.image)
    remux(part, src, out)
    with av.open(str(out)) as c:
        assert [(s.type, s.codec_context.name) for s in c.streams] == [("video", written), ("audio", "pcm_s16le")]
    assert read_pts(out) == read_pts(src) == list(range(12))


@pytest.mark.parametrize("pix_fmt, codec", [("yuv420p10le", "hevc"), ("yuv420p", "h264")])
def test_a_ten_bit_source_is_written_as_hevc_which_players_can_play(tmp_path, pix_fmt, codec):
    """An iPhone's 10-bit HDR video came out as 10-bit H.264, which almost no phone, TV or browser
    decodes; codec auto now writes HEVC for sources deeper than 8 bits (tagged hvc1 for Apple's)."""
    src = make_clip(tmp_path / "in.mov", list(range(0, 200, 40)), pix_fmt=pix_fmt)
    out = tmp_path / "out.mov"
    with VideoReader(src, keep_depth=True) as r, VideoWriter(out, probe(src), EncodeOptions(preset="ultrafast")) as w:
        for f in r:
            w.write(f.source, f.pts, f.image)
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.name, cc.pix_fmt) == (codec, pix_fmt)
        assert cc.codec_tag == ("hvc1" if codec == "hevc" else "avc1")


def test_rgb_pictures_written_as_video_are_converted_and_tagged_as_bt709(tmp_path):
    """Untagged, FFmpeg converted RGB to YUV with BT.601, and players read untagged HD as BT.709:
    saturated red came back 19 levels off."""
    import cv2

    colours = [(230, 20, 20), (20, 200, 40), (30, 40, 220), (240, 200, 30), (200, 120, 160)]
    bars = np.concatenate([np.full((72, 32, 3), c, np.uint8) for c in colours], axis=1)
    picture = tmp_path / "bars.png"
    cv2.imwrite(str(picture), bars[..., ::-1])
    out = tmp_path / "bars.mp4"
    with VideoReader(picture) as r, VideoWriter(out, probe(picture), EncodeOptions()) as w:
        for f in r:
            w.write(f.source, f.pts)
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range) == (1, 1, 1, 1)
        shown = next(c.decode(video=0)).reformat(format="rgb24", src_colorspace=1, src_color_range=1).to_ndarray()
    assert np.abs(shown[36, 16::32].astype(int) - np.array(colours)).max() <= 3  # as a player shows it


@pytest.mark.parametrize("rotation", [0, 90])
def test_downscaled_decode_maps_back_to_display_pixels(tmp_path, rotation):
    h, w = 61, 97
    image = np.zeros((h, w, 3), np.uint8)
    image[10:30, 60:84] = 255  # a bright block away from the centre
    src = make_clip(tmp_path / "in.mp4", [0, 40], size=(h, w), rotation=rotation, images=[image, image],
                    pix_fmt="yuv444p")

    def centroid(f):
        ys, xs = np.nonzero(f.image[..., 0] > 128)
        return np.array([xs.mean() + 0.5, ys.mean() + 0.5]) / np.array(f.scale)

    with VideoReader(src) as full, VideoReader(src, max_side=40) as small:
        f, s = next(iter(full)), next(iter(small))
    assert max(s.image.shape[:2]) <= 40 and f.scale == (1.0, 1.0)
    assert s.image.shape[1] / f.image.shape[1] == pytest.approx(s.scale[0])
    assert s.image.shape[0] / f.image.shape[0] == pytest.approx(s.scale[1])
    assert np.abs(centroid(s) - centroid(f)).max() < 1.0


def test_generated_sample_is_the_same_clip_every_time(tmp_path):
    """x264's mb-tree made the second sample in a process differ from the first; tests that detect
    on the sample then disagreed between runs."""
    from vidrestore.sample import make_sample

    def decoded(path):
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24").tobytes() for f in c.decode(video=0)]

    first = decoded(make_sample(tmp_path / "a.mp4", frames=12))
    assert decoded(make_sample(tmp_path / "b.mp4", frames=12)) == first


def test_remux_appends_to_the_comment_tag_and_keeps_the_others(tmp_path):
    src = make_clip(tmp_path / "a.mp4", [0, 40, 80], audio=True)
    paths = [src, tmp_path / "1.mkv", tmp_path / "2.mp4", tmp_path / "3.mkv"]
    for n, (a, b) in enumerate(itertools.pairwise(paths), 1):
        remux(a, a, b, comment=f"pass {n}")
    with av.open(str(paths[-1])) as c:
        tags = {k.lower(): v for k, v in c.metadata.items()}
        assert tags["comment"] == "pass 1 | pass 2 | pass 3" and tags["major_brand"] == "isom"
        assert [s.type for s in c.streams] == ["video", "audio"]


TFF = FieldFilter("tff")


def test_interlaced_fields_are_declared_and_deinterlaced_with_the_same_timing(interlaced_clip, sample_clip):
    assert probe(interlaced_clip).field_order == "tt" and probe(interlaced_clip).interlaced
    assert not probe(sample_clip).interlaced
    with VideoReader(interlaced_clip) as r:
        raw = list(r)
    with VideoReader(interlaced_clip, deinterlace=TFF) as r:
        clean = list(r)
    assert [f.pts for f in clean] == [f.pts for f in raw] and len(raw) == 24
    assert not any(f.source.interlaced_frame for f in clean)
    before, after = np.mean([combing(f.image) for f in raw]), np.mean([combing(f.image) for f in clean])
    assert after < 0.4 * before, (before, after)


def _interlaced_reads(clip, **fields) -> tuple[list, list, list]:
    """``clip``'s frames as they are, deinterlaced, and read with ``fields`` (images of frames 3-8 only)."""
    reads = []
    for options in ({}, {"deinterlace": TFF}, {"deinterlace": TFF, "images_for": [range(3, 9)], **fields}):
        with VideoReader(clip, **options) as r:
            reads.append(list(r))
    return tuple(reads)


def test_a_keep_fields_reader_crops_from_the_deinterlaced_frame_and_hands_on_the_interlaced_one(interlaced_clip):
    raw, clean, both = _interlaced_reads(interlaced_clip, keep_fields=True)
    assert [f.pts for f in both] == [f.pts for f in raw]
    assert all(f.source.interlaced_frame for f in both)  # what the writer re-encodes: the input's own fields
    for f, woven, progressive in zip(both, raw, clean):
        if 3 <= f.index < 9:
            assert np.array_equal(f.image, progressive.image) and np.array_equal(f.fields, woven.image)
            # the later field's moment: its own rows are the input's (up to chroma), the earlier field's are not
            assert np.abs(f.second[1::2].astype(int) - woven.image[1::2]).mean() < 1
            assert np.abs(f.image[1::2].astype(int) - woven.image[1::2]).mean() > 5
        else:
            assert f.image is None and f.fields is None and f.second is None  # not asked for: none is converted
    with pytest.raises(ValueError, match="decodes its own"):
        VideoReader(interlaced_clip, deinterlace=TFF, keep_fields=True, keep=DecodedFrames(1 << 30))


def test_a_double_rate_reader_hands_on_each_later_field_as_a_frame_of_its_own(interlaced_clip):
    """Beside each deinterlaced frame, its later field's moment (bwdif's second frame for it), timed
    halfway to the next frame in half the stream's ticks; the last a frame's step after its own."""
    raw, clean, both = _interlaced_reads(interlaced_clip, double_rate=True)
    pts = [f.pts for f in clean]
    assert [f.pts for f in both] == pts and [f.source.pts for f in both] == pts
    assert [f.second_source.pts for f in both] == [2 * a + (b - a) for a, b in zip(pts, pts[1:] + [2 * pts[-1] - pts[-2]])]
    assert all(f.second_source.time_base == probe(interlaced_clip).time_base / 2 for f in both)
    assert not any(f.source.interlaced_frame or f.second_source.interlaced_frame for f in both)  # what the writer encodes
    for f, woven, progressive in zip(both, raw, clean):
        assert f.fields is None
        if 3 <= f.index < 9:
            assert np.array_equal(f.image, progressive.image)
            assert np.abs(f.second[1::2].astype(int) - woven.image[1::2]).mean() < 1  # the later field's own rows
        else:
            assert f.image is None and f.second is None
    with pytest.raises(ValueError, match="decodes its own"):
        VideoReader(interlaced_clip, deinterlace=TFF, double_rate=True, keep=DecodedFrames(1 << 30))


def test_field_matched_film_and_turned_video_keep_one_moment_a_frame(telecined_clip):
    """Field matching puts film frames back together: each is one moment, with no later field of
    its own. A turned video shows its fields as columns, which the paste does not split."""
    matched = FieldFilter("tff", match=True)
    with VideoReader(telecined_clip, deinterlace=matched, keep_fields=True) as r:
        frames = list(r)
    assert len(frames) == probe(telecined_clip).estimated_frames and all(f.second is None and f.fields is not None for f in frames)
    with VideoReader(telecined_clip, deinterlace=matched, double_rate=True) as r:
        assert all(f.second is None and f.second_source is None for f in r)  # no fields of its own to double
    assert [fields_have_own_moments(f, rotation) for f, rotation in ((TFF, 0), (TFF, 360), (TFF, 90), (TFF, 180), (matched, 0), (None, 0))] \
        == [True, True, False, False, False, False]


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _film_error(image: np.ndarray, film: list[np.ndarray]) -> float:
    """Mean absolute luma difference (levels) between ``image`` and the nearest of the ``film`` lumas."""
    luma = _luma(image)
    return min(float(np.abs(luma - f).mean()) for f in film)


@pytest.mark.parametrize("top_first", [True, False])
def test_telecined_film_is_found_and_field_matched_back_into_its_film_frames(sample_clip, tmp_path, top_first):
    """3:2 pulldown weaves two frames in five from two film frames. Field matching gives every
    frame back as a whole film frame and passes the other three untouched (same count and
    timestamps: one frame in five repeats the one before it); bwdif, what such footage got
    before, rebuilds half the rows of every frame."""
    clip = telecine_clip(tmp_path / "telecined.mp4", sample_clip, top_first)
    film = [_luma(f) for f in film_frames(sample_clip)]
    parity = "tff" if top_first else "bff"
    scan = scan_fields(clip)
    assert scan.telecined and scan.match_parity == parity, scan
    reads = {}
    for name, fields in [("raw", None), ("matched", FieldFilter(parity, match=True)), ("bwdif", FieldFilter(parity))]:
        with VideoReader(clip, deinterlace=fields) as r:
            reads[name] = list(r)
    raw, matched = reads["raw"], reads["matched"]
    assert len(raw) == 30 and [f.pts for f in matched] == [f.pts for f in raw] == [f.pts for f in reads["bwdif"]]
    errors = {name: [_film_error(f.image, film) for f in frames] for name, frames in reads.items()}
    floor = float(np.median(errors["raw"]))  # a whole film frame after the RGB -> YUV -> RGB round trip
    assert sum(e > 2 * floor for e in errors["raw"]) >= 10, errors["raw"]  # the woven frames
    # the first frames come before the matcher has seen a whole cycle
    assert max(errors["matched"][3:]) < 1.1 * floor, errors["matched"]
    assert sum(np.array_equal(a.image, b.image) for a, b in zip(raw, matched)) >= 16
    assert np.mean(errors["bwdif"]) > 1.15 * np.mean(errors["matched"]), (errors["bwdif"], errors["matched"])


def test_neither_woven_video_nor_progressive_video_is_taken_for_telecined_film(interlaced_clip, sample_clip):
    woven, progressive = scan_fields(interlaced_clip), scan_fields(sample_clip)
    assert woven.interlaced and not woven.telecined and woven.combed > 20, woven
    assert not progressive.interlaced and not progressive.telecined and progressive.matched == 0, progressive


def _rgb_copy(source: Path, path: Path) -> Path:
    """``source``'s frames in RGB, losslessly (FFV1 in BGR0), at its times."""
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        stream = src.streams.video[0]
        vs = out.add_stream("ffv1", rate=stream.average_rate)
        vs.width, vs.height, vs.pix_fmt = stream.width, stream.height, "bgr0"
        for frame in src.decode(stream):
            out.mux(vs.encode(frame.reformat(format="bgr0")))
        out.mux(vs.encode())
    return path


def test_fields_in_rgb_are_told_apart_as_in_yuv(telecined_clip, sample_clip, tmp_path):
    """Field matching is checked by comparing its frames' luma with the input's. An RGB input's was
    FFmpeg's grey (full range) and the matcher's YUV luma (limited range): every frame counted as
    rebuilt, so an RGB scan or capture that idet doubted was field-matched. An RGB copy of the
    telecined film is still found telecined; the RGB sample's frames are rebuilt by no matcher."""
    from vidrestore.io.reader import _match_scan

    film = scan_fields(_rgb_copy(telecined_clip, tmp_path / "film.mkv"))
    assert film.telecined and film.matched == scan_fields(telecined_clip).matched, film
    assert _match_scan(_rgb_copy(sample_clip, tmp_path / "sample.mkv"), 60, 1) == {"tff": (0, 0), "bff": (0, 0)}


def test_a_picture_of_doubled_rows_is_not_taken_for_interlaced(sample_clip, tmp_path):
    """A picture of half the height with each row doubled (a line doubler's, or a codec's 2x2
    blocks: Cinepak's) shows one moment in both fields, but idet reads such frames as interlaced:
    a 15 fps Cinepak clip was field-matched and went through YUV. Rows in pairs far more alike than
    between the pairs are now read as progressive; the same moving pictures woven from two moments
    are still interlaced."""
    with VideoReader(sample_clip) as r:
        frames = [np.ascontiguousarray(np.roll(f.image, 6 * f.index, axis=1)) for f in r]
    doubled = [np.repeat(f[::2], 2, axis=0) for f in frames]
    h, w = frames[0].shape[:2]
    scan = scan_fields(make_clip(tmp_path / "doubled.mp4", [i * 40 for i in range(len(doubled))], size=(h, w), images=doubled,
                                 x264_params="qp=0"))
    assert not scan.interlaced and scan.tff + scan.bff == 0, scan
    assert scan_fields(weave_clip(tmp_path / "woven.mp4", make_clip(tmp_path / "moving.mp4", [i * 40 for i in range(len(frames))],
                                                                     size=(h, w), images=frames))).interlaced


def _after_a_still_leader(path: Path, sample_clip: Path, leader: int, repeats: int) -> Path:
    """``leader`` frames of flat grey (a tape's black or slate), then the sample's frames ``repeats`` times."""
    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r] * repeats
    images = [np.full_like(frames[0], 16)] * leader + frames
    return make_clip(path, [i * 40 for i in range(len(images))], size=frames[0].shape[:2], images=images)


@pytest.mark.parametrize("leader, repeats", [(70, 1), (320, 4)])  # read on from the start; read at times spread over it
def test_fields_are_found_past_a_still_leader(sample_clip, tmp_path, leader, repeats):
    """A transfer flagged progressive that opens with still frames longer than one scan stretch
    (60 frames): idet judges none of them, so the scan reads on, or at later times, until it has
    seen enough moving frames. Until now such video was left combed, and film left undecimated."""
    source = _after_a_still_leader(tmp_path / "source.mp4", sample_clip, leader, repeats)
    woven = scan_fields(weave_clip(tmp_path / "woven.mp4", source, declare=False))
    assert woven.interlaced and woven.parity == "tff" and woven.stretches > 1, woven
    if repeats == 1:
        film = scan_fields(telecine_clip(tmp_path / "film.mp4", source))
        assert film.telecined and film.stretches > 1, film


@pytest.mark.parametrize("start, telecined", [(6, False), (9, False), (10, True), (13, True)])  # a keyframe, a frame between keyframes
def test_a_segment_deinterlaces_its_frames_as_a_whole_run_does(interlaced_clip, telecined_clip, start, telecined):
    clip, fields = (telecined_clip, FieldFilter("tff", match=True)) if telecined else (interlaced_clip, TFF)
    with VideoReader(clip, deinterlace=fields) as r:
        whole = list(r)
    with VideoReader(clip, start=start, stop=start + 5, start_pts=whole[start].pts, deinterlace=fields) as r:
        part = list(r)
    assert [f.index for f in part] == list(range(start, start + 5))
    for a, b in zip(part, whole[start:]):
        assert np.array_equal(a.image, b.image), a.index


@settings(max_examples=6, deadline=None)
@given(wanted=st.sets(st.integers(0, 23), max_size=6), start=st.integers(0, 12))
def test_a_reader_of_chosen_frames_gives_those_frames_as_a_full_read_does(interlaced_clip, wanted, start):
    with VideoReader(interlaced_clip, deinterlace=TFF) as r:
        whole = list(r)
    with VideoReader(interlaced_clip, deinterlace=TFF, only=wanted, start=start,
                     start_pts=whole[start].pts if start else None) as r:
        part = list(r)
    assert [f.index for f in part] == sorted(i for i in wanted if i >= start)
    for f in part:
        assert np.array_equal(f.image, whole[f.index].image), f.index


@settings(max_examples=6, deadline=None)
@given(wanted=st.one_of(st.none(), st.sets(st.integers(0, 23), max_size=6)), start=st.integers(0, 12),
       length=st.one_of(st.none(), st.integers(1, 12)))
def test_frames_kept_by_one_pass_are_the_frames_the_next_would_decode(interlaced_clip, wanted, start, length):
    kept = DecodedFrames(64 << 20)
    with VideoReader(interlaced_clip, deinterlace=TFF, max_side=32, keep=kept) as r:
        analysed = list(r)
    assert kept.complete and len(kept.frames) == len(analysed) == 24 and kept.bytes > 0
    stop = None if length is None else start + length
    assume(wanted is None or any(start <= i < (stop or 24) for i in wanted))  # a read of no frame is an error
    options = {"deinterlace": TFF, "keep_depth": True, "only": wanted, "start": start, "stop": stop}
    with VideoReader(interlaced_clip, start_pts=analysed[start].pts if start else None, **options) as r:
        decoded = list(r)
    with VideoReader(interlaced_clip, reuse=kept, **options) as r:
        reused = list(r)
    assert [f.index for f in reused] == [f.index for f in decoded] and decoded
    for a, b in zip(reused, decoded):
        assert a.pts == b.pts and np.array_equal(a.image, b.image), a.index
        assert a.source is kept.frames[a.index]  # taken, not decoded again


@settings(max_examples=15, deadline=None)
@given(spans=st.lists(st.tuples(st.integers(0, 26), st.integers(0, 8)).map(lambda t: range(t[0], t[0] + t[1])), max_size=4))
def test_a_reader_converts_the_frames_asked_for_and_passes_the_others_undecoded(sample_clip, spans):
    with VideoReader(sample_clip) as r:
        whole = list(r)
    with VideoReader(sample_clip, images_for=spans) as r:
        some = list(r)
    assert [(f.index, f.pts) for f in some] == [(f.index, f.pts) for f in whole]
    for a, b in zip(some, whole):
        if any(a.index in span for span in spans):
            assert np.array_equal(a.image, b.image)
        else:
            assert a.image is None and a.source is not None


def test_a_stream_that_outgrows_the_budget_is_not_kept_and_is_decoded_again(interlaced_clip):
    with VideoReader(interlaced_clip) as r:
        whole = list(r)
    frame_bytes = sum(p.buffer_size for p in whole[0].source.planes)
    kept = DecodedFrames(10 * frame_bytes)  # 10 of the 24 frames fit
    with VideoReader(interlaced_clip, keep=kept) as r:
        assert len(list(r)) == 24
    assert not kept.complete and kept.frames == [] and kept.bytes == 0
    with VideoReader(interlaced_clip, reuse=kept) as r:
        again = list(r)
    assert [f.pts for f in again] == [f.pts for f in whole]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(again, whole))
    with pytest.raises(ValueError, match="whole stream"):
        VideoReader(interlaced_clip, start=3, keep=DecodedFrames(1 << 20))


def test_kept_frames_sent_to_another_process_arrive_dropped_and_are_decoded_there(interlaced_clip):
    """A batch item's plan goes to a Ray worker pickled: the frames kept in this process's memory
    do not travel with it (AVFrames would not pickle), and the worker's pass decodes them."""
    import pickle

    kept = DecodedFrames(64 << 20)
    with VideoReader(interlaced_clip, keep=kept) as r:
        whole = list(r)
    assert kept.complete and len(kept.frames) == 24
    sent = pickle.loads(pickle.dumps(kept))
    assert (sent.frames, sent.complete, sent.dropped, sent.budget_bytes) == ([], False, True, kept.budget_bytes)
    assert len(kept.frames) == 24  # this process's copy keeps them
    with VideoReader(interlaced_clip, reuse=sent) as r:
        again = list(r)
    assert [f.pts for f in again] == [f.pts for f in whole]
    assert all(a.source is not b.source and np.array_equal(a.image, b.image) for a, b in zip(again, whole))


def test_probe_sees_a_file_that_was_replaced(tmp_path):
    path = tmp_path / "clip.mp4"
    make_clip(path, [0, 40, 80], size=(48, 64))
    assert (probe(path).width, probe(path).frames) == (64, 3)
    make_clip(tmp_path / "other.mp4", [0, 40, 80, 120], size=(32, 80)).replace(path)
    assert (probe(path).width, probe(path).frames) == (80, 4)


def test_the_encoder_chooses_its_frame_types_for_frames_passed_through(tmp_path):
    """Decoded frames carry their source's picture type (every frame I in an all-intra master);
    frames written untouched must not force the encoder into all keyframes."""
    src = tmp_path / "intra.mkv"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for i in range(24):
            image = np.full((48, 64, 3), 40, np.uint8)
            image[:, : 10 + 2 * i] = 200  # a bar that grows: every frame differs
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    dst = tmp_path / "out.mp4"
    with VideoReader(src) as r, VideoWriter(dst, probe(src), EncodeOptions(preset="ultrafast")) as w:
        for i, f in enumerate(r):
            assert f.source.pict_type == av.video.frame.PictureType.I
            w.write(f.source, f.pts, f.image if i % 2 else None)  # passed through, and converted from RGB
    with av.open(str(dst)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    assert len(packets) == 24 and sum(p.is_keyframe for p in packets) <= 2


def test_the_same_frames_are_coded_with_the_same_bits_every_time(tmp_path, sample_clip, monkeypatch):
    """With its AVX-512 code x264 coded the same frames with other bits from run to run, so the
    same command wrote another file each time. Written six times, 24 grainy PAL-sized frames give
    the same packets every time (on a CPU without AVX-512 they did before too); and x264 is told to
    keep to its AVX2 code exactly where the CPU has AVX-512."""
    import torch

    from vidrestore.io import encoders

    grain = np.random.default_rng(0).normal(0, 8, (576, 720, 3))
    with VideoReader(sample_clip) as r:
        frames = [(f.pts, np.clip(np.tile(f.image, (5, 5, 1))[:576, :720] + grain, 0, 255).astype(np.uint8)) for f in r]
    info = dataclasses.replace(probe(sample_clip), width=720, height=576)
    coded = set()
    for run in range(6):
        with VideoWriter(tmp_path / f"{run}.mp4", info, EncodeOptions()) as w:
            for pts, image in frames:
                w.write(None, pts, image)
        with av.open(str(tmp_path / f"{run}.mp4")) as c:
            coded.add(tuple(bytes(p) for p in c.demux(video=0)))
    assert len(coded) == 1
    avx2 = {"x264-params": "asm=AVX2"}
    # Linux's listing of the CPU's flags decides where there is one (x264 runs AVX-512 code only with
    # all five it needs); elsewhere, torch's CPU capability
    for flags, capability, told in ((encoders.X264_AVX512_FLAGS | {"avx2", "fma"}, "AVX2", avx2),
                                    (frozenset({"avx2", "avx512f", "avx512cd"}), "AVX512", {}),
                                    (frozenset({"avx2"}), "AVX512", {}),
                                    (None, "AVX512", avx2), (None, "AVX2", {}), (None, "DEFAULT", {})):
        encoders.x264_instruction_sets.cache_clear()
        monkeypatch.setattr(encoders, "cpu_flags", lambda flags=flags: flags)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda capability=capability: capability)
        assert encoders.codec_options("libx264", "yuv420p", info, EncodeOptions()) == {"crf": "18", "preset": "medium", **told,
                                                                                      "a53cc": "1"}
    encoders.x264_instruction_sets.cache_clear()


def test_the_cpus_flags_are_read_from_linuxs_listing_of_its_first_cpu(tmp_path):
    from vidrestore.io.encoders import cpu_flags

    listing = tmp_path / "cpuinfo"
    listing.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2\nbugs\t\t: spectre_v1\n")
    assert cpu_flags(listing) == {"fpu", "sse2", "avx2", "avx512f", "avx512bw"}
    listing.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # an Arm CPU's: no flags line
    assert cpu_flags(listing) is None
    assert cpu_flags(tmp_path / "missing") is None


@pytest.mark.parametrize("pix_fmt", ["auto", "yuv444p"])
def test_closed_captions_stay_with_their_frames_whatever_is_written_into_them(tmp_path, sample_clip, pix_fmt):
    """Broadcast H.264 carries CEA-608/708 captions in each frame's SEI. Frames passed through, frames
    with a face written into a box, and frames converted whole from RGB (in the source's format or
    another) must all keep theirs: a new frame built from the image dropped them, so the captions
    vanished whenever a face was on screen."""
    src = captioned_clip(tmp_path / "broadcast.ts", sample_clip)
    dst = tmp_path / "out.mp4"
    with VideoReader(src) as r, VideoWriter(dst, probe(src), EncodeOptions(preset="ultrafast", pix_fmt=pix_fmt)) as w:
        for f in r:
            image = f.image.copy()
            image[8:40, 16:48] = 255 - image[8:40, 16:48]
            changed = [(), (image, [(16, 8, 48, 40)]), (image,)][f.index % 3]  # untouched, a region, the whole frame
            w.write(f.source, f.pts, *changed)
    before = captions(src)
    assert len(before) == 24 and all(before)
    assert captions(dst) == before


# Broadcast captions in the frames: "Hello there" popped on at frame 2, "World" at 12, erased at 20.
SENT = {2: pop_on("Hello there"), 12: pop_on("World"), 20: ERASE_SCREEN}


def _caption_cues(path: Path) -> list[tuple[int, int, str]]:
    """The captions of ``path``'s subtitle stream: (start ms, duration ms, words), a c608 track's
    as its decoder gives them (from when each came on), a text track's as its packets say."""
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        caption = stream.codec_context.codec.canonical_name == "eia_608"
        found = []
        for p in c.demux(stream):
            cue = stream.codec_context.decode2(p) if p.size else None
            if cue is not None and len(cue.rects):
                text = re.sub(r"<[^>]*>|\{[^}]*\}", "", "".join(r.text if r.type == b"text" else r.dialogue.decode() for r in cue.rects))
                start = round(cue.pts / 1000) if caption else round(p.pts * p.time_base * 1000)
                found.append((start, cue.end_display_time if caption else round(p.duration * p.time_base * 1000), text))
        return found


@pytest.mark.parametrize("codec, suffix, track", [("libx265", ".mp4", None), ("mpeg2video", ".ts", None), ("ffv1", ".mkv", "subrip"),
                                                  ("prores_ks", ".mov", "eia_608"), ("ffv1", ".avi", "")])
def test_captions_in_the_frames_stay_in_them_or_are_put_beside_them(tmp_path, sample_clip, codec, suffix, track):
    """Broadcast captions travel in the frames. x265 has a switch for them that is off by default:
    its output (the default for deep video) lost them; every encoder that can write them now does.
    FFV1 and ProRes (archival masters) cannot: their captions were lost without a word, and are
    now read from the input's frames into a track of their own, a c608 track in .mov, text where
    only that fits, each caption from the frame it came on to the frame it left; AVI holds
    neither, and the report says they were left out."""
    src = captioned_clip(tmp_path / "broadcast.ts", sample_clip, SENT)
    assert probe(src).captions and not probe(sample_clip).captions
    out, report = tmp_path / f"out{suffix}", tmp_path / "r.json"
    assert main([str(src), str(out), "--model", "none", "--codec", codec, "--strength", "1", "--quiet", "--json", str(report)]) == 0
    written = json.loads(report.read_text())
    assert written["encoder"].startswith(codec)  # re-encoded, not copied
    lifted = [n for n in written["notes"] if "closed captions" in n]
    if track is None:
        assert captions(out) == captions(src) and not lifted
        return
    assert not any(captions(out))
    if not track:
        assert lifted == ["left out, as .avi files cannot hold them: the closed captions in the input's frames"]
        return
    with av.open(str(out)) as c:
        assert [s.codec_context.codec.canonical_name for s in c.streams.subtitles] == [track]
        times = [round(f.pts * f.time_base * 1000) for f in c.decode(video=0)]
    assert _caption_cues(out) == [(times[2], times[12] - times[2], "Hello there"), (times[12], times[20] - times[12], "World")]
    how = "as a c608 track" if track == "eia_608" else f"converted to {track}"
    assert lifted == [f"the closed captions in the input's frames, which its encoder does not write into the video, were put beside it, {how}"]


@pytest.mark.parametrize("codec, suffix", [("ffv1", ".mkv"), ("prores_ks", ".mov")])
def test_an_excerpt_of_captions_lifted_from_the_frames_shows_the_one_on_the_screen_at_its_start(tmp_path, sample_clip, codec, suffix):
    """From frame 6, "Hello there" (popped on at frame 2, before the cut) is on the screen: it is
    shown from 0 until "World" replaces it, as text (.mkv) or in a c608 track (.mov), which
    begins with the commands that drew it, replayed at 0."""
    src = captioned_clip(tmp_path / "broadcast.ts", sample_clip, SENT)
    out = tmp_path / f"out{suffix}"
    assert main([str(src), str(out), "--model", "none", "--codec", codec, "--strength", "1", "--quiet", "--start", "0.24"]) == 0
    with av.open(str(out)) as c:
        times = [round(f.pts * f.time_base * 1000) for f in c.decode(video=0)]
    assert len(times) == 18 and times[0] == 0
    assert _caption_cues(out) == [(0, times[6], "Hello there"), (times[6], times[14] - times[6], "World")]


def _reencoded(src, tmp_path):
    """``src``'s video encoded again, alone, as pass 2 writes it."""
    video = tmp_path / "video.mp4"
    with VideoReader(src) as r, VideoWriter(video, probe(src), EncodeOptions(preset="ultrafast")) as w:
        for f in r:
            w.write(f.source, f.pts, f.image)
    return video


def test_an_ntsc_dv_capture_is_read_at_its_frame_rate_and_goes_into_quicktime_with_its_timecode(tmp_path):
    """FFmpeg's DV demuxer times NTSC DV on a clock of 1/60000 s and states that tick rate, 60000,
    as the stream's average frame rate. Taken for the frame rate, it made QuickTime's muxer refuse
    the capture's timecode ("fps 60000 is too large"): DV into .mov, QuickTime's own home for it,
    failed. The rate is now the frames' own, 29.97; the DV is copied (no face to restore) with a
    timecode track, every frame at its time."""
    dv = tmp_path / "capture.dv"
    ramp = np.linspace(0, 255, 720, dtype=np.float32)[None, :, None].repeat(480, 0).repeat(3, 2)
    with av.open(str(dv), "w") as out:
        vs = out.add_stream("dvvideo", rate=Fraction(30000, 1001))
        vs.width, vs.height, vs.pix_fmt = 720, 480, "yuv411p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.roll(ramp, 40 * i, axis=1).astype(np.uint8), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
    with av.open(str(dv)) as c:
        assert c.streams.video[0].average_rate == 60000 and c.metadata["timecode"] == "00:00:00:00"  # FFmpeg's reading
    assert probe(dv).average_rate == Fraction(30000, 1001)
    out = tmp_path / "capture.mov"
    assert main([str(dv), str(out), "--model", "none", "--detector", "dlib", "--quiet"]) == 0
    with av.open(str(dv)) as a, av.open(str(out)) as b:
        assert b.streams.video[0].codec_context.name == "dvvideo" and b.streams.video[0].average_rate == Fraction(30000, 1001)
        assert [s.metadata.get("timecode") for s in b.streams if s.type == "data"] == ["00:00:00:00"]
        assert [f.time for f in b.decode(video=0)] == [f.time for f in a.decode(video=0)]


def test_a_timecode_counts_at_the_rate_of_video_made_at_the_field_rate(tmp_path):
    """A 25 fps master's timecode on 50p made from it (--double-rate) counts its frames in 50ths."""
    src = timecoded_clip(tmp_path / "master.mov", "10:00:00:12")
    doubled = make_clip(tmp_path / "video.mp4", [i * 20 for i in range(20)], rate=50)
    remux(doubled, src, tmp_path / "out.mov")
    with av.open(str(tmp_path / "out.mov")) as c:
        assert c.streams.video[0].metadata["timecode"] == "10:00:00:24"


def _dressing(path):
    with av.open(str(path)) as c:
        streams = [(s.type, {k.lower(): v for k, v in s.metadata.items() if k.lower() in ("title", "language", "filename", "mimetype")},
                    int(s.disposition), bytes(s.data) if s.type == "attachment" else b"") for s in c.streams]
        chapters = [(float(ch["start"] * ch["time_base"]), float(ch["end"] * ch["time_base"]), ch["metadata"].get("title"))
                    for ch in c.chapters()]
        return c.metadata.get("title"), chapters, streams


def test_remux_keeps_chapters_attachments_dispositions_and_the_video_streams_tags(tmp_path):
    """Chapters, a font attachment (which styled subtitles need), forced and commentary flags, and the
    video stream's title and language were all lost when the restored video was remuxed."""
    plain = make_clip(tmp_path / "plain.mkv", [i * 40 for i in range(12)], audio=True, subtitles=[(0, "hello"), (200, "bye")])
    src = dressed_clip(tmp_path / "dressed.mkv", plain)
    out = tmp_path / "out.mkv"
    assert remux(_reencoded(src, tmp_path), src, out, "restored") == []
    title, chapters, streams = _dressing(src)
    assert title == "Archive reel 7" and [c[2] for c in chapters] == ["Intro", "Main"]
    assert [s[0] for s in streams] == ["video", "audio", "subtitle", "attachment"]
    assert _dressing(out) == (title, chapters, streams)


@pytest.mark.parametrize("suffix, lost", [
    (".mkv", []), (".mp4", []),
    # FFmpeg's QuickTime muxer writes a track's "enabled" alone
    (".mov", ["audio stream 1 (aac): commentary", "subtitle stream 2 (subrip): forced"]),
    (".ts", ["audio stream 1 (aac): commentary"]),  # (the subtitles are left out: MPEG-TS holds no SRT)
])
def test_the_flags_a_container_does_not_keep_are_named(tmp_path, suffix, lost):
    """A commentary track or forced subtitles copied into .mov came out unflagged, and the report
    did not say so; each flag is now read back from the written file. ("default" is named only
    among several tracks of a kind.)"""
    plain = make_clip(tmp_path / "plain.mkv", [i * 40 for i in range(12)], audio=True, subtitles=[(0, "hello"), (200, "bye")])
    src = dressed_clip(tmp_path / "dressed.mkv", plain)
    unflagged: list[str] = []
    remux(_reencoded(src, tmp_path), src, tmp_path / f"out{suffix}", unflagged=unflagged)
    assert unflagged == lost


@pytest.mark.parametrize("suffix, lost", [(".mov", []), (".ts", ["audio stream 1 (aac): default"])])
def test_the_default_flag_is_named_where_it_chose_among_tracks(tmp_path, suffix, lost):
    plain = make_clip(tmp_path / "plain.mkv", [i * 40 for i in range(12)], audio=True)
    src = tmp_path / "two_sounds.mkv"
    with av.open(str(plain)) as c, av.open(str(src), "w") as out:
        video = out.add_stream_from_template(c.streams.video[0])
        sounds = [out.add_stream_from_template(c.streams.audio[0]) for _ in range(2)]
        sounds[0].disposition, sounds[1].disposition = av.stream.Disposition.default, av.stream.Disposition(0)
        for packet in c.demux():
            for copy in ([video] if packet.stream.type == "video" else sounds) if packet.size else []:
                packet.stream = copy
                out.mux(packet)
    unflagged: list[str] = []
    remux(_reencoded(src, tmp_path), src, tmp_path / f"out{suffix}", unflagged=unflagged)
    assert unflagged == lost


@pytest.mark.parametrize("suffix", [".mkv", ".mov"])
def test_the_names_of_an_mp4s_tracks_are_kept(tmp_path, suffix):
    """FFmpeg reads a QuickTime track's name as "name", and muxers write one from "title": an
    MP4's named tracks ("French", "Commentary") came out unnamed, and into Matroska as a tag
    that players do not show. The timed text, converted for Matroska, keeps its name too."""
    plain = make_clip(tmp_path / "plain.mp4", [i * 40 for i in range(12)], audio=True, subtitles=[(0, "hello")])
    src = tmp_path / "named.mp4"
    names = ["Camera A", "Commentary", "Signs"]
    with av.open(str(plain)) as c, av.open(str(src), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in c.streams}
        for copy, name in zip(copies.values(), names, strict=True):
            copy.metadata["title"] = name
        for packet in c.demux():
            if packet.size:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    with av.open(str(src)) as c:
        assert [s.metadata.get("name") for s in c.streams] == names  # as FFmpeg reads them
    out = tmp_path / f"out{suffix}"
    remux(_reencoded(src, tmp_path), src, out)
    with av.open(str(out)) as c:
        assert [s.metadata.get("name" if suffix == ".mov" else "title") for s in c.streams] == names
        assert c.streams.subtitles[0].codec_context.name == ("mov_text" if suffix == ".mov" else "srt")


def test_the_quicktime_languages_are_those_ffmpeg_has_macintosh_codes_for():
    """The table of codes :func:`language_in` gives the QuickTime muxer is FFmpeg's own: a .mov's
    media header given each Macintosh language code in turn is read back as one of them."""
    from vidrestore.io.languages import QUICKTIME_LANGUAGES

    scratch = io.BytesIO()
    with av.open(scratch, "w", format="mov") as out:
        sound = out.add_stream("pcm_s16le", rate=8000)
        sound.metadata["language"] = "eng"  # Macintosh code 0
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 256), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in sound.encode(frame):
            out.mux(packet)
    data = bytearray(scratch.getvalue())
    language = data.index(b"mdhd") + 24  # past version, flags, two times, time scale and duration
    assert data[language:language + 2] == b"\0\0"
    read = set()
    for code in range(0x400):  # above are ISO 639-2 codes packed in 15 bits
        data[language:language + 2] = code.to_bytes(2, "big")
        with av.open(io.BytesIO(bytes(data)), format="mov") as c:
            read.add(c.streams[0].metadata.get("language"))
    assert read - {None} == QUICKTIME_LANGUAGES


@pytest.mark.parametrize(("suffix", "stated"), [
    (".mov", ["ger", "fra", "ger", "sve", "ces", None]),
    (".mkv", ["ger", "fre", "deu", "swe", "cze", "fil"]),
    (".mp4", ["ger", "fre", "deu", "swe", "cze", "fil"]),
])
def test_track_languages_are_stated_as_the_output_can_state_them(tmp_path, suffix, stated):
    """FFmpeg's QuickTime muxer states a language by a Macintosh code, from a table that holds
    either ISO 639-2 code of a language named twice ("fra" but not "fre", "ger" but not "deu")
    and some of its own ("sve"): French and German tracks from a .mkv came out of a .mov with no
    language, and a .mov's Swedish went into a .mkv as "sve", which players do not know. A
    language QuickTime has no code for (Filipino) is named in the report."""
    from vidrestore.io.remux import carried_notes

    plain = make_clip(tmp_path / "plain.mkv", [i * 40 for i in range(12)], audio=True)
    src = tmp_path / "languages.mkv"
    languages = ["ger", "fre", "deu", "sve", "cze", "fil"]
    with av.open(str(plain)) as c, av.open(str(src), "w") as out:
        video = out.add_stream_from_template(c.streams.video[0])
        video.metadata["language"] = languages[0]
        sounds = [out.add_stream_from_template(c.streams.audio[0]) for _ in languages[1:]]
        for sound, language in zip(sounds, languages[1:], strict=True):
            sound.metadata["language"] = language
        for packet in c.demux():
            for copy in ([video] if packet.stream.type == "video" else sounds) if packet.size else []:
                twin = av.Packet(bytes(packet))  # the muxer takes the packet it is given
                twin.pts, twin.dts, twin.duration, twin.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
                twin.is_keyframe, twin.stream = packet.is_keyframe, copy
                out.mux(twin)
    out = tmp_path / f"out{suffix}"
    remux(_reencoded(src, tmp_path), src, out)
    with av.open(str(out)) as c:
        assert [s.metadata.get("language") for s in c.streams] == stated
    unstated = [f"{suffix} files have no code for the language of audio stream 5 (fil), which is left unstated (.mp4 and .mkv state any)"]
    assert carried_notes(src, out, "") == (unstated if suffix == ".mov" else [])


@pytest.mark.parametrize("suffix", [".ts", ".avi", ".flv"])
def test_chapters_a_container_drops_are_refused_or_left_out_by_name(tmp_path, suffix):
    """MPEG-TS, AVI and FLV write no chapters, and FFmpeg drops them without a word: the
    output lost its chapters and the report did not say so. They are now refused before any work
    like a stream the container cannot hold, or left out and named with --drop-streams."""
    from vidrestore.errors import OutputError
    from vidrestore.io.remux import check_streams

    plain = make_clip(tmp_path / "plain.mkv", [i * 40 for i in range(12)], audio=True, subtitles=[(0, "a")])
    src = dressed_clip(tmp_path / "dressed.mkv", plain)
    out = tmp_path / f"out{suffix}"
    with pytest.raises(OutputError, match=rf"\{suffix} files cannot hold .*2 chapters of dressed\.mkv; write a \.mkv"):
        check_streams(src, out, drop=False)
    check_streams(src, out, drop=True)
    assert remux(src, src, out)[-1] == "2 chapters"
    with av.open(str(out)) as c:
        assert c.chapters() == []
    report = tmp_path / "r.json"
    assert main([str(src), str(tmp_path / f"cli{suffix}"), "--model", "none", "--detector", "dlib", "--drop-streams", "--json",
                 str(report), "--quiet"]) == 0
    assert any(n.startswith(f"left out, as {suffix} files cannot hold them: ") and n.endswith(", 2 chapters")
               for n in json.loads(report.read_text())["notes"])


@pytest.mark.parametrize("suffix", [".mov", ".mp4", ".mkv"])
def test_a_timecode_track_survives_as_the_videos_timecode(tmp_path, suffix):
    """A .mov master's timecode track made remuxing into .mov fail when the file was closed; into
    .mkv the track was dropped. The timecode now rides on the video stream (QuickTime and MP4 write
    a timecode track from it again)."""
    src = timecoded_clip(tmp_path / "master.mov", "10:00:00:00")
    out = tmp_path / f"out{suffix}"
    assert remux(_reencoded(src, tmp_path), src, out) == []
    with av.open(str(out)) as c:
        tags = {k.lower(): v for k, v in c.streams.video[0].metadata.items()}
        assert tags["timecode"] == "10:00:00:00"
        assert [s.type for s in c.streams] == (["video", "data"] if suffix != ".mkv" else ["video"])
        assert sum(1 for f in c.decode(video=0)) == 10


@given(st.integers(0, 23), st.integers(0, 59), st.sampled_from([":", ";"]))
def test_a_timecode_counts_on_at_a_whole_multiple_of_its_rate(frame, second, separator):
    """50p made from 50i counts 50 frames a second: frame 12 at 25 fps is frame 24 there, at
    the same moment; the same rate, or an unknown one, leave the timecode as it is."""
    from vidrestore.io.remux import fits_rate, timecode_at

    code = f"10:00:{second:02d}{separator}{frame:02d}"
    doubled = timecode_at(code, Fraction(25), Fraction(50))
    assert doubled == f"10:00:{second:02d}{separator}{2 * frame:02d}" and fits_rate(doubled, Fraction(50))
    assert timecode_at(code, Fraction(25), Fraction(25)) == code
    assert timecode_at(code, None, Fraction(50)) == code and timecode_at("", Fraction(25), Fraction(50)) == ""


@given(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59), st.integers(0, 29))
def test_film_decimated_from_video_counts_its_frames_from_the_same_start(hours, minutes, seconds, frame):
    """23.976 fps film decimated from 29.97 fps video: frame n of the video is film frame 4n/5,
    in non-drop-frame timecode at 24 a second; a drop-frame timecode counts the frames it names."""
    from vidrestore.io.remux import fits_rate, timecode_at

    video, film = Fraction(30000, 1001), Fraction(24000, 1001)
    code = f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frame:02d}"
    n = ((hours * 60 + minutes) * 60 + seconds) * 30 + frame
    expected = n * 4 // 5
    assert timecode_at(code, video, film) == \
        f"{expected // 86400:02d}:{expected // 1440 % 60:02d}:{expected // 24 % 60:02d}:{expected % 24:02d}"
    assert fits_rate(timecode_at(code, video, film), film)
    assume(frame >= 2 or seconds or minutes % 10 == 0)  # drop-frame has no frames 0 and 1 at the start of most minutes
    total = hours * 60 + minutes
    dropped = n - 2 * (total - total // 10)  # the frames a drop-frame timecode names
    assert timecode_at(code[:-3] + ";" + code[-2:], video, film).endswith(f"{dropped * 4 // 5 % 24:02d}")


def test_streams_the_output_container_cannot_hold_are_named_before_any_work(tmp_path, monkeypatch):
    from vidrestore.errors import OutputError
    from vidrestore.io.remux import check_streams

    plain = make_clip(tmp_path / "plain.mkv", [i * 40 for i in range(12)], audio=True, subtitles=[(0, "hello")])
    src = dressed_clip(tmp_path / "dressed.mkv", plain)
    check_streams(src, tmp_path / "out.mkv", drop=False)
    with pytest.raises(OutputError, match=r"\.mp4 files cannot hold attachment stream 3 \(font\.ttf\) of dressed\.mkv; write a \.mkv"):
        check_streams(src, tmp_path / "out.mp4", drop=False)
    check_streams(src, tmp_path / "out.mp4", drop=True)
    # a .mkv output is not told to write a .mkv: what Matroska cannot hold, QuickTime may (MP4's
    # timed text, were it not converted)
    monkeypatch.setattr("vidrestore.io.reencode.TEXT_ENCODERS", ())
    timed_text = make_clip(tmp_path / "timed_text.mp4", [i * 40 for i in range(4)], subtitles=[(0, "hello")])
    with pytest.raises(OutputError, match=r"\.mkv files cannot hold subtitle stream 1 \(mov_text\) of timed_text\.mp4; "
                                          r"write a \.mov, or give --drop-streams"):
        check_streams(timed_text, tmp_path / "out.mkv", drop=False)
    out = tmp_path / "out.mp4"
    assert remux(_reencoded(src, tmp_path), src, out) == ["subtitle stream 2 (subrip)", "attachment stream 3 (font.ttf)"]
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams][:3] == ["video", "audio", "data"] and len(c.chapters()) == 2  # MP4 chapters: a text track


def _covers(path: Path) -> tuple[list[str], list[bytes]]:
    """The kinds of the streams of ``path`` (cover art as "cover"), and its cover pictures."""
    with av.open(str(path)) as c:
        covers = [s for s in c.streams if s.type == "video" and s.disposition & av.stream.Disposition.attached_pic]
        kinds = ["cover" if s in covers else s.type for s in c.streams]
        return kinds, [bytes(next(p for p in c.demux(s) if p.size)) for s in covers]


@pytest.mark.parametrize("source, output", [(".mp4", ".mp4"), (".mp4", ".mkv"), (".mkv", ".mkv"), (".mkv", ".mp4")])
def test_cover_art_stays_cover_art(tmp_path, source, output):
    """Into .mkv, cover art (an .mp4's picture, or a Matroska cover.jpg) came out as a second
    video track of one frame; it is written as Matroska's cover.jpg attachment."""
    plain = make_clip(tmp_path / f"plain{source}", [i * 40 for i in range(12)], audio=True)
    src = covered_clip(tmp_path / f"covered{source}", plain)
    assert _covers(src) == (["video", "audio", "cover"], [cover_picture()])
    out = tmp_path / f"out{output}"
    assert remux(_reencoded(src, tmp_path), src, out) == []
    assert _covers(out) == _covers(src)
    if output == ".mkv":
        with av.open(str(out)) as c:
            assert {k.lower(): v for k, v in c.streams[2].metadata.items()} == {"filename": "cover.jpg", "mimetype": "image/jpeg"}


def test_cover_art_a_container_would_drop_is_named_before_any_work(tmp_path):
    """The QuickTime muxer drops cover art without a word: it counts as a stream .mov cannot hold."""
    from vidrestore.errors import OutputError
    from vidrestore.io.remux import check_streams

    src = covered_clip(tmp_path / "covered.mp4", make_clip(tmp_path / "plain.mp4", [i * 40 for i in range(12)], audio=True))
    with pytest.raises(OutputError, match=r"\.mov files cannot hold cover art \(stream 2, mjpeg\) of covered\.mp4"):
        check_streams(src, tmp_path / "out.mov", drop=False)
    assert remux(_reencoded(src, tmp_path), src, tmp_path / "out.mov") == ["cover art (stream 2, mjpeg)"]


@pytest.mark.parametrize("codec, rotation", [("libx264", 0), ("libx265", 0), ("libx264", 90)])
def test_hdr10_mastering_display_and_light_levels_reach_the_encoded_stream(tmp_path, codec, rotation):
    """FFmpeg's x264 and x265 wrappers take HDR10 static metadata from the codec, not the frames,
    so a re-encoded HDR10 master came out without its mastering display and MaxCLL/MaxFALL; a
    turned one written upright, whose frames are new, too."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    src = hdr10_clip(tmp_path / "hdr10.mkv", rotation=rotation)
    before = hdr10_metadata(src)
    assert set(before) == {"MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL"}
    out = tmp_path / "out.mkv"
    info = probe(src)
    upright = dataclasses.replace(info, rotation=0, width=info.display_size[0], height=info.display_size[1])
    with VideoReader(src, keep_depth=True) as r, \
            VideoWriter(out, upright, EncodeOptions(codec=codec, preset="ultrafast"), upright_from=rotation) as w:
        for f in r:
            image = f.image.copy()
            image[8:24, 8:40] = 60000
            w.write(f.source, f.pts, image, [(8, 8, 40, 24)])
    assert hdr10_metadata(out) == before


_NAL_FRAMINGS = st.sampled_from([None, 4, 2])  # Annex B; hvcC lengths of 4 bytes (as every muxer writes) or 2


@given(body=st.binary(max_size=600), framing=_NAL_FRAMINGS,
       others=st.lists(st.tuples(st.integers(32, 40), st.binary(min_size=1, max_size=40)), max_size=4),
       slices=st.integers(1, 3))
def test_an_hdr10_plus_payload_survives_its_sei_unit_and_goes_before_the_first_slice(body, framing, others, slices):
    """Whatever the payload's bytes (zeros need emulation prevention; sizes past 255 take two bytes
    and more), the SEI unit reads back to it, holds nothing that looks like a start code, and is
    put into an access unit after its parameter sets and other SEI and before its first slice."""
    from vidrestore.io.hdr10plus import HDR10_PLUS_PREFIX, hdr10_plus_payloads_of, nal_units, sei_nal, with_sei

    payload = HDR10_PLUS_PREFIX + body
    nal = sei_nal(payload)
    assert hdr10_plus_payloads_of(nal) == [payload]
    assert not any(nal[i:i + 2] == b"\0\0" and nal[i + 2] <= 2 for i in range(len(nal) - 2))  # (00 00 03 escapes)
    units = [bytes([kind << 1, 1]) + rest.replace(b"\0", b"\1") for kind, rest in others]  # VPS, SPS, PPS, AUD, SEI
    units += [bytes([1 << 1, 1]) + bytes([0x80 + k]) * 9 for k in range(slices)]  # slices (TRAIL_R)
    frame = (lambda u: b"\0\0\0\1" + u) if framing is None else (lambda u: len(u).to_bytes(framing, "big") + u)
    access_unit = b"".join(frame(u) for u in units)
    found = [unit for _, unit in nal_units(with_sei(access_unit, nal, framing), framing)]
    assert found == units[: len(others)] + [nal] + units[len(others):]


@given(body=st.binary(max_size=300), before=st.lists(st.sampled_from([1, 2, 5]), max_size=3),
       frames=st.lists(st.sampled_from([3, 6]), min_size=1, max_size=3), sizes=st.integers(0, 200))
def test_an_hdr10_plus_payload_goes_into_an_av1_metadata_obu_before_the_first_frame(body, before, frames, sizes):
    """AV1 carries HDR10+ in a metadata OBU (ITU-T T.35) of the temporal unit, before its frames;
    sizes are LEB128 numbers, so payloads past 127 bytes take two."""
    from vidrestore.io.hdr10plus import HDR10_PLUS_PREFIX, _leb128, obus, payloads_in, with_payload

    def obu(kind, payload):
        return bytes([kind << 3 | 2]) + _leb128(len(payload)) + payload

    other_metadata = bytes([2]) + b"\x11" * 8 + b"\x80"  # metadata_type 2 (scalability): not HDR10+
    units = [obu(k, other_metadata if k == 5 else b"\x07" * (sizes % 50)) for k in before]
    units += [obu(k, b"\x09" * sizes) for k in frames]
    payload = HDR10_PLUS_PREFIX + body
    written = with_payload(b"".join(units), payload, "av1", None)
    assert payloads_in(written, "av1", None) == [payload]
    kinds = [kind for _, kind, _ in obus(written)]
    assert kinds == before + [5] + frames


def test_an_sei_unit_of_other_messages_yields_no_hdr10_plus_payload():
    from vidrestore.io.hdr10plus import hdr10_plus_payloads_of, sei_nal

    assert hdr10_plus_payloads_of(sei_nal(bytes([0xB5, 0x00, 0x31, 0x47, 0x41, 0x39, 0x34]))) == []  # A/53 captions
    assert hdr10_plus_payloads_of(bytes([1 << 1, 1, 0x80])) == []  # a slice


@pytest.mark.parametrize("suffix", [".mkv", ".ts", ".mp4"])
def test_progress_totals_are_estimated_where_the_container_states_no_frame_count(tmp_path, suffix):
    """Matroska and MPEG-TS state no frame count: the progress total and ETA of a run, or of a whole
    batch ("frames 12/0", "ETA 0s"), were missing or wrong for them."""
    clip = make_clip(tmp_path / f"clip{suffix}", [i * 40 for i in range(30)])
    info = probe(clip)
    assert info.frames == (30 if suffix == ".mp4" else 0)
    assert abs(info.estimated_frames - 30) <= 1


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_remux_keeps_the_declared_frame_rate(tmp_path, suffix):
    """A Matroska output declared the codec's tick rate (1000 fps for a millisecond time base) as its
    frame rate, whether the video was copied or re-encoded."""
    src = make_clip(tmp_path / "in.mkv", [i * 40 for i in range(12)], audio=True)
    assert probe(src).average_rate == 25
    for video in (src, _reencoded(src, tmp_path)):
        out = tmp_path / f"out{suffix}"
        remux(video, src, out)
        assert probe(out).average_rate == 25
        out.unlink()


def test_segments_are_joined_as_they_are_remuxed_and_overlapping_ones_refused(tmp_path):
    """The segments of one video go into the output in one copy, timestamps as encoded; a segment
    whose timestamps run back into the previous one's is refused, not written out of order."""
    first = make_clip(tmp_path / "a.mp4", [i * 40 for i in range(10)])
    second = make_clip(tmp_path / "b.mp4", [400 + i * 40 for i in range(10)])
    source = make_clip(tmp_path / "src.mp4", [i * 40 for i in range(20)], audio=True)
    out = tmp_path / "out.mp4"
    assert remux([first, second], source, out) == []
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        assert [round(f.time * 1000) for f in c.decode(video=0)] == [i * 40 for i in range(20)]
    with pytest.raises(OutputError, match="cannot join segment a.mp4: its timestamps overlap"):
        remux([first, second, first], source, tmp_path / "bad.mp4")


def test_h264_from_mp4_is_copied_into_avi_as_a_byte_stream(tmp_path):
    """MP4 stores H.264 as length-prefixed NAL units, which FFmpeg's AVI muxer refuses: a face-less
    .mp4 written to .avi (a plain copy) failed inside FFmpeg with a traceback."""
    src = make_clip(tmp_path / "in.mp4", [i * 40 for i in range(10)], audio=True)
    out = tmp_path / "out.avi"
    assert remux(src, src, out) == []
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert [s.type for s in b.streams] == ["video", "audio"]
        assert all(np.array_equal(x.to_ndarray(), y.to_ndarray()) for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True))


@given(times=st.lists(st.integers(0, 200), min_size=1, max_size=40), late=st.lists(st.integers(0, 6), max_size=40))
def test_frames_are_given_in_time_order_or_dropped(times, late):
    """Frames in order (some at one time), some moved later (as a damaged stream's decoder gives
    them): what comes out is in time order, and every frame comes out or is counted as dropped; a
    frame at most 4 places late is put back, and an undamaged stream comes out whole."""
    ordered = sorted(times)
    arrival = list(ordered)
    for index, shift in zip(range(len(arrival)), late, strict=False):
        frame = arrival.pop(index)
        arrival.insert(min(len(arrival), index + shift), frame)
    frames = [av.VideoFrame(2, 2, "yuv420p") for _ in arrival]
    for frame, pts in zip(frames, arrival, strict=True):
        frame.pts = pts
    in_order = InTimeOrder()
    out = [f.pts for frame in [*frames, None] for f in in_order(frame)]
    assert all(b >= a for a, b in itertools.pairwise(out))
    assert len(out) + in_order.dropped == len(times)
    if all(i - 4 <= ordered.index(pts) for i, pts in enumerate(arrival)):
        assert out == ordered


def test_a_frame_a_damaged_stream_gives_late_is_put_back_in_order(tmp_path):
    """A broadcast capture that lost a packet of MPEG-2: its decoder gave a B-frame two frames late,
    and the output's muxer refused the restored video after the work ("Invalid argument"). (The
    frames are encoded: a .webm cannot hold MPEG-2.)"""
    src = tmp_path / "capture.ts"
    with av.open(str(src), "w") as out:
        video = out.add_stream("mpeg2video", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"g": "12", "bf": "2"}
        packets = []
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * i, np.uint8), format="rgb24")
            frame.pts = i
            packets += video.encode(frame)
        packets += video.encode(None)
        for packet in packets[:7] + packets[8:]:  # the 8th lost
            out.mux(packet)
    with av.open(str(src)) as c:
        decoded = [f.pts for f in c.decode(video=0)]
    assert sorted(decoded) != decoded  # as the decoder gives them
    out = tmp_path / "out.webm"
    assert main([str(src), str(out), "--model", "none", "--quiet"]) == 0
    with av.open(str(src)) as a, av.open(str(out)) as b:
        shown = [round(f.time, 3) for f in b.decode(video=0)]
        assert shown == sorted(round(f.time, 3) for f in a.decode(video=0))


@pytest.mark.parametrize(("suffix", "layout", "stated"), [(".avi", "stereo", "2 channels"), (".mkv", "5.1", "6 channels")])
def test_the_pcm_sound_of_a_capture_that_states_a_channel_count_is_copied_into_mp4_and_mov(tmp_path, suffix, layout, stated):
    """AVI (a DV capture's) states two channels, not stereo, and Matroska's PCM six, not 5.1: the
    MP4 muxer failed on its last write, after the whole video was restored."""
    src = _pcm_capture(tmp_path / f"capture{suffix}", layout)
    with av.open(str(src)) as c:
        assert c.streams.audio[0].codec_context.layout.name == stated
        pcm = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], 1)
    for output in (".mp4", ".mov"):
        assert remux(src, src, tmp_path / f"out{output}") == []
        with av.open(str(tmp_path / f"out{output}")) as c:
            assert c.streams.audio[0].layout.name == layout
            assert np.array_equal(np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], 1), pcm)


def test_sound_the_mp4_muxer_refuses_at_its_last_write_is_refused_before_the_work(tmp_path):
    """Three channels of PCM, which Matroska states as a count alone (no order is usual for them):
    the trial write passed, since a failure to end sound was taken for MXF's, and the MP4 muxer
    failed at its last write, after the whole video was restored."""
    from vidrestore.errors import OutputError
    from vidrestore.io.remux import check_streams

    src = _pcm_capture(tmp_path / "capture.mkv", "3.0")
    with pytest.raises(OutputError, match=r"\.mp4 files cannot hold audio stream 1 \(pcm_s16le\) of capture\.mkv"):
        check_streams(src, tmp_path / "out.mp4", drop=False)


def _pcm_capture(src: Path, layout: str) -> Path:
    """Five frames of MPEG-4 video and 16-bit PCM sound of ``layout``, a tone on every channel."""
    channels = av.AudioLayout(layout).nb_channels
    with av.open(str(src), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("pcm_s16le", rate=48000)
        sound.layout = layout
        tone = (np.sin(np.arange(1920) / 10) * 8000).astype(np.int16)
        for i in range(5):
            frame = av.VideoFrame(64, 48, "yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
            samples = av.AudioFrame.from_ndarray(np.repeat(tone, channels)[None], format="s16", layout=layout)
            samples.sample_rate, samples.pts = 48000, i * 1920
            out.mux(sound.encode(samples))
        out.mux(video.encode())
        out.mux(sound.encode())
    return src


@pytest.mark.parametrize("source_codec, pix_fmt, encoder, written", [
    ("mjpeg", "yuvj422p", "libx264", "yuvj420p"),  # a camera's: 4:2:2 H.264 plays almost nowhere
    ("prores", "yuv422p10le", "libx265", "yuv420p10le"),
    ("dpx", "rgb48le", "libx265", "yuv420p10le"),  # a 10-bit scan came out as 8-bit HEVC
    ("png", "rgba", "libvpx-vp9", "yuva420p"),  # a render for the web keeps its alpha in VP9
    ("h264", "yuv422p", "libx264", "yuv422p"),  # delivery video stays as it was (broadcast's XAVC)
    ("prores", "yuv422p10le", "prores_ks", "yuv422p10le"),
])
def test_video_that_was_not_for_delivery_is_written_in_4_2_0_by_delivery_encoders(tmp_path, source_codec, pix_fmt, encoder, written):
    from vidrestore.io.encoders import output_pix_fmt

    source = dataclasses.replace(probe(make_clip(tmp_path / "in.mp4", [0, 40])), codec=source_codec, pix_fmt=pix_fmt)
    assert output_pix_fmt(av.Codec(encoder, "w"), EncodeOptions(), source) == written
    if encoder != "prores_ks":
        assert output_pix_fmt(av.Codec(encoder, "w"), EncodeOptions(pix_fmt="yuv444p"), source) == "yuv444p"  # --pix-fmt decides


@pytest.mark.parametrize("pix_fmt, encoder, written", [("uyvy422", "ffv1", "yuv422p"), ("yuyv422", "utvideo", "yuv422p"),
                                                       ("bgr24", "ffv1", "bgr0"), ("rgb24", "utvideo", "gbrp"), ("nv12", "dvvideo", "yuv420p"),
                                                       ("uyvy422", "dvvideo", "yuv422p"), ("gray", "mpeg4", "yuv420p")])
def test_an_encoder_that_does_not_take_a_captures_layout_gets_its_samples_in_its_own(tmp_path, pix_fmt, encoder, written):
    """Uncompressed captures come packed (UYVY 4:2:2 from capture cards, BGR): FFV1 and the other
    encoders that take no packed layout were given 4:2:0 instead, and RGB through YUV, so a
    lossless master of a 4:2:2 capture lost half its colour. The same samples are now written in
    the encoder's planar layout; only where it has none is anything lost (grey into MPEG-4)."""
    from vidrestore.io.encoders import output_pix_fmt

    source = dataclasses.replace(probe(make_clip(tmp_path / "in.mp4", [0, 40])), codec="rawvideo", pix_fmt=pix_fmt)
    assert output_pix_fmt(av.Codec(encoder, "w"), EncodeOptions(), source) == written


@pytest.mark.parametrize("pix_fmt, mov", [("uyvy422", True), ("yuv422p", False)])
def test_the_note_on_a_capture_written_lossy_names_a_mov_where_it_stays_uncompressed(tmp_path, pix_fmt, mov):
    """Raw UYVY into an .mp4 was told to write a .mkv, .mxf or .avi (FFV1), not the .mov that keeps it as it is."""
    from vidrestore.io.encoders import master_note

    source = dataclasses.replace(probe(make_clip(tmp_path / "in.mp4", [0, 40])), codec="rawvideo", pix_fmt=pix_fmt)
    (note,) = master_note(source, "libx264", tmp_path / "out.mp4")
    assert "write a .mkv, .mxf or .avi to keep a master (--codec ffv1)" in note
    assert note.endswith(" (or a .mov, which keeps it uncompressed)") == mov


@pytest.mark.parametrize("suffix, codec, pix_fmt", [(".avi", "ffv1", "yuv422p"), (".mov", "rawvideo", "uyvy422")])
def test_a_uyvy_capture_restored_into_a_master_keeps_every_sample_away_from_the_face(tmp_path, sample_clip, suffix, codec, pix_fmt):
    """Into a .mov, which holds no FFV1, Blackmagic's and AJA's uncompressed 8-bit captures ('2vuy')
    came back as H.264 4:2:0; they stay uncompressed, and are patched as planar 4:2:2 (written
    whole from RGB, every sample changed by a level or two)."""
    capture = tmp_path / f"capture{suffix}"
    with VideoReader(sample_clip) as r, av.open(str(capture), "w") as out:
        vs = out.add_stream("rawvideo", rate=25)
        vs.width, vs.height, vs.pix_fmt = r.info.width, r.info.height, "uyvy422"
        for f in itertools.islice(r, 6):
            frame = av.VideoFrame.from_ndarray(f.image, format="rgb24")
            frame.pts = f.index
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
    master = tmp_path / f"master{suffix}"
    assert main([str(capture), str(master), "--model", "none", "--detector", "dlib", "--strength", "1", "--quiet"]) == 0
    with av.open(str(capture)) as a, av.open(str(master)) as b:
        assert (b.streams.video[0].codec_context.name, b.streams.video[0].codec_context.pix_fmt) == (codec, pix_fmt)
        for before, after in zip(a.decode(video=0), b.decode(video=0), strict=True):
            planes, kept = before.reformat(format="yuv422p").to_ndarray(), after.reformat(format="yuv422p").to_ndarray()
            assert not np.array_equal(planes, kept)  # the face was painted
            height = before.height
            assert np.array_equal(planes[:16, :16], kept[:16, :16])  # luma of a corner
            assert np.array_equal(planes[height:height + 16, :8], kept[height:height + 16, :8])  # its chroma, at full height


def test_a_video_asked_for_as_4_4_4_jpeg_pictures_gets_them_full_range(sample_clip, tmp_path):
    """--pix-fmt yuv444p into JPEG pictures failed at the first frame (FFmpeg's MJPEG encoder
    refuses limited-range YUV, which H.264 video is): JPEG codes 4:4:4 full range, as yuvj444p."""
    from vidrestore.cli import main

    (tmp_path / "out").mkdir()
    assert main([str(sample_clip), str(tmp_path / "out" / "f_%03d.jpg"), "--model", "none", "--quiet", "--drop-streams",
                 "--strength", "1", "--pix-fmt", "yuv444p"]) == 0
    pictures = sorted((tmp_path / "out").iterdir())
    assert len(pictures) == 24
    with av.open(str(pictures[0])) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuvj444p"


@pytest.mark.parametrize("codec", ["mpeg4", "mpeg2video"])
def test_a_cameras_full_range_mjpeg_keeps_its_contrast_through_encoders_that_cannot_say_full_range(tmp_path, codec):
    """MJPEG is full range; MPEG-4 Part 2 and MPEG-2 cannot say so, and AVI has no colour tags: the
    samples were written full and read back as limited, stretched by 16% (29 dB from the camera's)."""
    ramp = np.broadcast_to(np.linspace(0, 255, 128)[None, :, None], (96, 128, 3)).astype(np.uint8)
    src = tmp_path / "camera.avi"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("mjpeg", rate=15)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuvj422p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(ramp), format="rgb24").reformat(format="yuvj422p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    out = tmp_path / f"out{'.avi' if codec == 'mpeg4' else '.mpg'}"
    with VideoReader(src) as r, VideoWriter(out, probe(src), EncodeOptions(codec=codec)) as w:
        for f in r:
            w.write(f.source, f.pts, f.image)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True):
            before, after = (f.to_ndarray(format="rgb24")[..., 1].astype(float) for f in (x, y))
            assert abs(np.polyfit(before.ravel(), after.ravel(), 1)[0] - 1) < 0.03


@pytest.mark.parametrize("suffix, codec", [(".avi", "libx264"), (".wmv", "auto")])
def test_frames_encoded_into_avi_or_asf_are_not_reordered(tmp_path, sample_clip, suffix, codec):
    """AVI stores frames in decode order with no presentation times (and FFmpeg reads H.264 from
    ASF as if it did), so frames x264 reorders (its B-frames) came back with scrambled timestamps;
    such outputs are encoded without them."""
    out = tmp_path / f"out{suffix}"
    with VideoReader(sample_clip) as r, VideoWriter(out, probe(sample_clip), EncodeOptions(codec=codec, preset="veryfast")) as w:
        for f in r:
            w.write(f.source, f.pts, f.image)
    pts = read_pts(out)
    assert len(pts) == len(read_pts(sample_clip)) and pts == sorted(set(pts))


def test_a_single_frame_is_written_by_x265_into_mp4_every_time(tmp_path):
    """x265 left the decode time of a one-frame stream unset now and then (7 of 40 encodes): the MP4
    muxer refused the file ("Not yet implemented"). 30 tries miss it with a chance of 0.3%."""
    src = make_clip(tmp_path / "in.mp4", [0], size=(48, 64))
    info = probe(src)
    for attempt in range(30):
        with VideoWriter(tmp_path / f"o{attempt}.mp4", info, EncodeOptions(codec="libx265", preset="ultrafast")) as w:
            w.write(None, 0, np.zeros((48, 64, 3), np.uint8))
        assert read_pts(tmp_path / f"o{attempt}.mp4") == [0]


def test_an_avi_is_written_with_mpeg4_whose_frames_come_back_when_they_were_shown(tmp_path, sample_clip):
    """Codec auto wrote H.264 into AVI, which FFmpeg reads back a frame late: every frame of a
    restored camera AVI came 1/15 s after its sound."""
    out = tmp_path / "out.avi"
    with VideoReader(sample_clip) as r, VideoWriter(out, probe(sample_clip), EncodeOptions()) as w:
        for f in r:
            w.write(f.source, f.pts, f.image)
    assert probe(out).codec == "mpeg4" and _times(out) == _times(sample_clip)


def test_an_encoder_the_container_cannot_hold_is_refused_before_any_work_naming_one_it_can(tmp_path):
    from vidrestore.io.encoders import check_encoder

    with pytest.raises(OutputError, match=r"libx264 video cannot be stored in \.webm files; give --codec libvpx-vp9"):
        check_encoder(EncodeOptions(codec="libx264"), tmp_path / "out.webm")
    with pytest.raises(OutputError, match=r"png video cannot be stored in \.jpg files; give --codec mjpeg"):
        check_encoder(EncodeOptions(codec="png"), tmp_path / "out.jpg")  # FFmpeg's image2 muxer would take it
    assert check_encoder(EncodeOptions(codec="libvpx-vp9"), tmp_path / "out.webm").name == "libvpx-vp9"


@pytest.mark.parametrize("name, codec", [("o.mp4", "libx264"), ("o.mkv", "libx264"), ("o.webm", "libvpx-vp9"), ("o.png", "png"),
                                         ("o.JPG", "mjpeg"), ("o.tif", "tiff"), ("o.m2v", "mpeg2video"),
                                         ("o.hevc", "libx265"), ("o.dv", "dvvideo"), ("o.vob", "mpeg2video"), ("o.mpg", "mpeg2video"), ("o.avi", "mpeg4")])
def test_the_automatic_encoder_is_one_the_container_holds(tmp_path, name, codec):
    from vidrestore.io.encoders import check_encoder

    assert check_encoder(EncodeOptions(), tmp_path / name).name == codec


@pytest.mark.parametrize("codec", ["libvpx-vp9", "libvpx"])
def test_vp9_and_vp8_into_webm_keep_every_timestamp_at_the_quality_asked_for(tmp_path, sample_clip, codec):
    """libvpx aims at 256 kbit/s unless told otherwise; --crf gives it constant quality as for x264."""
    sizes = {}
    for crf in (10, 40):
        out = tmp_path / f"out{crf}.webm"
        with VideoReader(sample_clip) as r, VideoWriter(out, probe(sample_clip), EncodeOptions(codec=codec, crf=crf)) as w:
            for f in r:
                w.write(f.source, f.pts, f.image)
        assert [round(t * 1000) for t in _times(out)] == [round(t * 1000) for t in _times(sample_clip)]
        sizes[crf] = out.stat().st_size
    assert sizes[10] > 2 * sizes[40]


@pytest.mark.parametrize("codec, suffix", [("mpeg4", ".avi"), ("mpeg2video", ".mkv")])
def test_quantiser_encoders_take_their_quality_from_crf(tmp_path, sample_clip, codec, suffix):
    """FFmpeg's MPEG-4 and MPEG-2 encoders aim at 200 kbit/s unless given a quantiser (32 dB on this
    clip); MPEG-2 also refused the clip's 1/12288 time base: it codes one of a few frame rates."""
    with VideoReader(sample_clip) as r:
        original = [f.image.astype(float) for f in r]
    sizes = {}
    for crf in (18, 40):
        out = tmp_path / f"out{crf}{suffix}"
        with VideoReader(sample_clip) as r, VideoWriter(out, probe(sample_clip), EncodeOptions(codec=codec, crf=crf)) as w:
            for f in r:
                w.write(f.source, f.pts, f.image)
        sizes[crf] = out.stat().st_size
        with VideoReader(out) as r:
            mse = np.mean([((f.image - o) ** 2).mean() for f, o in zip(r, original)])
        if crf == 18:
            assert 10 * np.log10(255**2 / mse) > 38
        assert [round(t, 3) for t in _times(out)] == [round(t, 3) for t in _times(sample_clip)]
    assert sizes[18] > 1.5 * sizes[40]


def _dv_tape(path: Path, sample_clip: Path, frames: int, sound: bool = False) -> Path:
    """The sample clip's first ``frames`` as a PAL DV tape's capture, with a 440 Hz tone in
    48 kHz stereo PCM where ``sound`` (DV's muxer writes it inside the pictures' frames)."""
    import cv2

    with VideoReader(sample_clip) as r:
        images = [cv2.resize(f.image, (720, 576)) for f in r][:frames]
    with av.open(str(path), "w") as out:
        video = out.add_stream("dvvideo", rate=25)
        video.width, video.height, video.pix_fmt = 720, 576, "yuv420p"
        tone = (8000 * np.sin(np.arange(48000) * 2 * np.pi * 440 / 48000)).astype(np.int16)
        stereo = out.add_stream("pcm_s16le", rate=48000, layout="stereo") if sound else None
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            if stereo is not None:
                part = av.AudioFrame.from_ndarray(np.repeat(tone[None, i * 1920:(i + 1) * 1920], 2, axis=0).T.reshape(1, -1).copy(),
                                                  format="s16", layout="stereo")
                part.sample_rate, part.pts = 48000, i * 1920
                out.mux(stereo.encode(part))
        out.mux(video.encode(None))
        if stereo is not None:
            out.mux(stereo.encode(None))
    return path


def test_a_dv_tape_is_written_back_as_dv(tmp_path, sample_clip):
    """MiniDV captures (.dv) hold DV video only: the automatic encoder is FFmpeg's DV encoder."""
    tape = _dv_tape(tmp_path / "tape.dv", sample_clip, 5)
    restored = tmp_path / "restored.dv"
    with VideoReader(tape) as r, VideoWriter(restored, probe(tape), EncodeOptions()) as w:
        for f in r:
            w.write(f.source, f.pts, f.image)
    assert probe(restored).codec == "dvvideo" and read_pts(restored) == read_pts(tape)


def test_a_dv_tapes_sound_is_written_back_into_dv(tmp_path, sample_clip):
    """DV's muxer writes sound inside its pictures' frames, and the trial of a sound stream had no
    picture: the sound of every DV capture was said not to fit in .dv. It is kept, sample for sample."""
    tape = _dv_tape(tmp_path / "tape.dv", sample_clip, 10, sound=True)
    restored = tmp_path / "restored.dv"
    assert main([str(tape), str(restored), "--model", "none", "--strength", "1", "--quiet"]) == 0
    with av.open(str(tape)) as a, av.open(str(restored)) as b:
        given, written = ([f.to_ndarray() for f in c.decode(audio=0)] for c in (a, b))
    assert probe(restored).codec == "dvvideo"
    assert np.array_equal(np.concatenate(given, axis=1), np.concatenate(written, axis=1))


def _times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


@pytest.mark.parametrize("suffix, says", [(".webm", "cannot hold the h264 video of in.mp4"), (".ogv", "FFmpeg's ogv muxer could not write")])
def test_a_copy_the_container_refuses_is_a_one_line_output_error(tmp_path, suffix, says):
    src = make_clip(tmp_path / "in.mp4", [i * 40 for i in range(6)])
    with pytest.raises(OutputError, match=says):
        remux(src, src, tmp_path / f"out{suffix}")


@given(st.sampled_from(MPEG_RATES), st.floats(-0.0004, 0.0004))
def test_mpeg_codes_a_rate_next_to_its_own_at_its_own(rate, off):
    """Off by less than half the 0.1% between 24000/1001 and 24 (or 30000/1001 and 30)."""
    assert mpeg_rate(rate * Fraction(1 + off)) == rate
    assert mpeg_rate(rate) == rate


def test_mpeg_keeps_a_rate_far_from_its_own():
    assert mpeg_rate(Fraction(15)) == 15 and mpeg_rate(Fraction(25, 2)) == Fraction(25, 2)  # MPEG-2 codes these as fractions of its own
    assert mpeg_rate(Fraction(2977, 100)) == Fraction(30000, 1001)  # 0.7% off: an .mp4 counting a long last frame
    assert mpeg_rate(Fraction(2960, 100)) == Fraction(2960, 100)  # 1.2% off


def test_side_data_reads_alike_from_pyav_18_and_pyav_19():
    """PyAV 19 iterates a frame's side data by kind, PyAV 18 by the side data itself: under PyAV 19
    every video failed to open (the probe asked a kind for its `.type`). A kind newer than PyAV
    reads as no side data."""
    from collections.abc import Mapping
    from types import SimpleNamespace

    from vidrestore.io.probe import side_data, side_data_kinds

    kind = av.sidedata.sidedata.Type
    items = [SimpleNamespace(type=kind.CONTENT_LIGHT_LEVEL), SimpleNamespace(type=kind.A53_CC)]

    class ByKind(Mapping):  # PyAV 19's container
        def __iter__(self):
            return (d.type for d in items)

        def __len__(self):
            return len(items)

        def __getitem__(self, key):
            return next(d for d in items if d.type == key)

    class Unknown:  # PyAV 18 meeting FFmpeg 8's EXIF kind
        def __iter__(self):
            raise ValueError("31 is not a valid Type")

    for container in (items, ByKind()):
        frame = SimpleNamespace(side_data=container)
        assert side_data(frame, "hevc") == items
        assert side_data_kinds(frame, "hevc") == ["CONTENT_LIGHT_LEVEL", "A53_CC"]
        assert side_data(frame, "png") == []  # PyAV would free a PNG's ICC profile name twice
    assert side_data(SimpleNamespace(side_data=Unknown()), "mjpeg") == []


def test_a_pictures_icc_profile_is_found_in_its_header(tmp_path):
    from PIL import Image, ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    picture = np.zeros((32, 48, 3), np.uint8)
    for suffix in (".png", ".jpg", ".tif"):
        Image.fromarray(picture).save(tmp_path / f"icc{suffix}", icc_profile=profile)
        Image.fromarray(picture).save(tmp_path / f"plain{suffix}")
        assert probe(tmp_path / f"icc{suffix}").icc_profile and not probe(tmp_path / f"plain{suffix}").icc_profile
    assert not probe(make_clip(tmp_path / "video.mp4", [0, 40])).icc_profile


@given(order=st.sampled_from(["<", ">"]), orientation=st.integers(1, 8), before=st.integers(0, 5), after=st.integers(0, 5))
def test_an_exif_block_is_turned_upright_wherever_its_orientation_entry_lies(order, orientation, before, after):
    """The orientation entry of IFD0 is set to 1 (stored as shown) in either byte order, and no other byte moves."""
    import struct

    from vidrestore.io.photo import upright

    def entry(tag, value):
        return struct.pack(order + "HHIH2x", tag, 3, 1, value)

    def block(value):
        entries = [entry(0x0100 + i, i) for i in range(before)] + [entry(0x0112, value)] + [entry(0x0200 + i, i) for i in range(after)]
        return (b"II" if order == "<" else b"MM") + struct.pack(order + "HIH", 42, 8, len(entries)) + b"".join(entries) + b"\0" * 4

    assert upright(block(orientation)) == block(1)
    without = block(orientation).replace(struct.pack(order + "H", 0x0112), struct.pack(order + "H", 0x0113))
    assert upright(without) == without


def test_an_exif_block_replaces_the_one_a_png_or_jpeg_had(tmp_path):
    from PIL import Image

    from vidrestore.io.photo import _into_jpeg, _into_png, photo_tags

    old, new = Image.Exif(), Image.Exif()
    old[0x010F], new[0x010F] = "old", "new"
    for suffix in (".png", ".jpg"):
        path = tmp_path / f"p{suffix}"
        Image.fromarray(np.full((16, 24, 3), 99, np.uint8)).save(path, exif=old.tobytes())
        into = _into_png if suffix == ".png" else _into_jpeg
        path.write_bytes(into(path.read_bytes(), new.tobytes().removeprefix(b"Exif\0\0")))
        with Image.open(path) as image:
            image.load()  # a PNG's chunk CRCs are checked as it is read
            assert dict(image.getexif()) == {0x010F: "new"}
        assert photo_tags(path) == (new.tobytes().removeprefix(b"Exif\0\0"), None)


def test_a_16_bit_grey_scan_or_a_float_picture_is_read_at_its_levels_and_a_phone_photo_upright(sample_clip, tmp_path):
    """Pillow's own conversion kept a 16-bit grey picture's codes above 255 white: a scan given as
    a reference photo showed no face, and one packed for training was a white square; a pack's
    phone photos were read sideways."""
    import torch
    from PIL import Image

    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.io.photo import displayed_rgb
    from vidrestore.pipeline.analysis import reference_crop
    from vidrestore.train.data import read_rgb

    with VideoReader(sample_clip) as r:
        grey = cv2.cvtColor(next(iter(r)).image, cv2.COLOR_RGB2GRAY)
    scan = tmp_path / "scan.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(scan)
    with Image.open(scan) as image:
        assert image.mode.startswith("I")
        assert np.array_equal(displayed_rgb(image), np.repeat(grey[..., None], 3, axis=2))
    assert np.array_equal(read_rgb(scan), np.repeat(grey[..., None], 3, axis=2))
    for values in (grey / 255.0, grey.astype(np.float64)):  # floats from 0 to 1, or levels as Pillow makes them
        assert np.array_equal(displayed_rgb(Image.fromarray(values.astype(np.float32)))[..., 0], grey)
    crop = reference_crop(str(scan), create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")), 128)
    assert crop.shape == (128, 128, 3) and crop.std() > 20
    turned = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown turned a quarter clockwise
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(turned, exif=exif)
    assert read_rgb(turned).shape == (30, 20, 3)


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw"])
def test_a_tiff_gets_an_icc_profile_and_a_description_in_place_of_its_own(tmp_path, compression):
    """FFmpeg's TIFF encoder writes no ICC profile: a scan's Adobe RGB profile was lost. The first
    IFD is written again at the end of the file, with the profile and the description."""
    from PIL import Image, ImageCms

    from vidrestore.io.photo import _into_tiff

    picture = np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "scan.tif"
    Image.fromarray(picture).save(path, compression=compression, description="old")
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for comment in ("restored by vidrestore", "abc"):  # the second replaces the first; 4 bytes fit in the entry itself
        path.write_bytes(_into_tiff(path.read_bytes(), profile, comment))
        with Image.open(path) as written:
            assert written.info["icc_profile"] == profile and written.tag_v2[270] == comment
            assert np.array_equal(np.asarray(written), picture)
    with av.open(str(path)) as c:
        assert np.array_equal(next(c.decode(video=0)).to_ndarray(format="rgb24"), picture)


def test_rates_from_pyav_become_fractions_and_zero_means_none():
    """PyAV 19's AVRational has no `%` (a timecode re-counted at a new rate raised TypeError) and
    says 0/1 for an unknown rate, where PyAV 18 said None."""
    from fractions import Fraction

    from vidrestore.io.probe import as_fraction

    class Rational:  # PyAV 19's AVRational, as far as rates go
        def __init__(self, num, den):
            self.numerator, self.denominator = num, den

        def __bool__(self):
            return self.numerator != 0

    assert as_fraction(Rational(30000, 1001)) == Fraction(30000, 1001)
    assert as_fraction(Rational(50, 1)) % as_fraction(Rational(25, 1)) == 0
    assert as_fraction(Rational(0, 1)) is None and as_fraction(None) is None
    assert as_fraction(Fraction(1, 25)) == Fraction(1, 25)


def test_a_stop_signal_inside_the_decode_threads_start_is_what_the_reader_raises(sample_clip, monkeypatch):
    """A Ctrl-C that lands while the decode thread is being started (before it has begun) must
    reach the CLI as the interruption: closing the reader joined the unstarted thread and raised
    a RuntimeError instead (exit 1, a traceback, seen under load)."""
    def interrupted_start(thread):
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt), VideoReader(sample_clip) as reader:
        next(iter(reader))


@settings(max_examples=200, deadline=None)
@given(prefetch=st.integers(1, 64), width=st.integers(2, 8192), height=st.integers(2, 8192), max_side=st.sampled_from([0, 320, 640]),
       deep=st.booleans())
def test_the_decode_queue_holds_its_frames_within_its_bytes_and_never_more_than_asked(prefetch, width, height, max_side, deep):
    """16 decoded 4K frames, each also as RGB, held 0.6 GB in the decode queue alone: the queue now
    holds what fits in PREFETCH_BYTES, at least 2 frames (decoding still runs ahead), at most ``prefetch``."""
    from vidrestore.io.reader import PREFETCH_BYTES, queued_frames

    held = queued_frames(prefetch, width, height, max_side, deep)
    assert 1 <= held <= prefetch and (held >= 2 or prefetch == 1)
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    frame_bytes = (width * height * 1.5 + width * height * scale * scale * 3) * (2 if deep else 1)
    assert held * frame_bytes <= PREFETCH_BYTES or held <= 2
    assert held == prefetch or (held + 1) * frame_bytes > PREFETCH_BYTES  # it takes all that fits


def test_a_4k_reader_queues_fewer_frames_than_a_small_ones_and_reads_them_all(tmp_path):
    from vidrestore.io.reader import queued_frames

    assert queued_frames(16, 3840, 2160) < 16 == queued_frames(16, 1920, 1080) == queued_frames(16, 3840, 2160, max_side=320)
    clip = make_clip(tmp_path / "uhd.mp4", [0, 40, 80, 120], size=(2160, 3840))
    with VideoReader(clip) as reader:
        assert reader._queue.maxsize == queued_frames(16, 3840, 2160)
        assert [f.image.shape for f in reader] == [(2160, 3840, 3)] * 4


def _heif_header(item_type: bytes, primary: int = 1) -> bytes:
    """A HEIF file's header as FFmpeg's AVIF muxer writes one (ftyp, then meta with pitm and an
    iinf of one infe of version 2), its primary item of ``item_type``."""

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    infe = box(b"infe", bytes([2, 0, 0, 0]) + struct.pack(">HH", 1, 0) + item_type + b"Color\0")
    meta = box(b"meta", bytes(4) + box(b"pitm", bytes(4) + struct.pack(">H", primary)) + box(b"iinf", bytes(4) + struct.pack(">H", 1) + infe))
    return box(b"ftyp", b"avif" + bytes(4) + b"avifmif1miaf") + meta + box(b"mdat", b"\0" * 16)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 200), flips=st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=4))
def test_a_heif_header_tells_its_primary_item_and_a_damaged_one_never_raises(tmp_path, cut, flips):
    """The header check every input passes through raised IndexError on a header cut short."""
    from vidrestore.io.photo import heif_primary_type

    path = tmp_path / "p.heic"
    for kind in (b"grid", b"av01"):
        path.write_bytes(_heif_header(kind))
        assert heif_primary_type(path) == kind
    path.write_bytes(_heif_header(b"grid", primary=2))  # the primary item not among those listed
    assert heif_primary_type(path) is None
    damaged = bytearray(_heif_header(b"grid")[:cut])
    for at, value in flips:
        if at < len(damaged):
            damaged[at] = value
    path.write_bytes(bytes(damaged))
    told = heif_primary_type(path)  # it raised on a header cut short
    assert told is None or (isinstance(told, bytes) and len(told) <= 4)
