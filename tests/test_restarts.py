"""Recordings whose timestamps start over (MPEG-TS/PS joined end to end) are read timed on."""

import itertools
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import make_clip

from vidrestore.cli import main
from vidrestore.io import probe
from vidrestore.io.restarts import played_in_order, restarts_in, timed_on, timed_on_folder
from vidrestore.resume import remove_leftovers

FAST = ["--model", "none", "--detector", "dlib", "--detect-every", "3", "--x264-preset", "ultrafast", "--quiet"]


def _rising(times: list[Fraction]) -> bool:
    return all(b > a for a, b in itertools.pairwise(times))


def _times(path: Path, kind: str) -> list[Fraction]:
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(**{kind: 0})]


@pytest.fixture(scope="module")
def sample_frames(sample_clip) -> list[np.ndarray]:
    with av.open(str(sample_clip)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _joined(folder: Path, parts: int, frames: list[np.ndarray] | None = None, size: tuple[int, int] = (48, 64)) -> tuple[Path, list[Path]]:
    """MPEG-TS recordings with sound, each timed from its own start, put end to end as ``cat`` joins them."""
    count = len(frames) if frames is not None else 10
    pieces = [make_clip(folder / f"part{i}.ts", [k * 40 for k in range(count)], size=frames[0].shape[:2] if frames else size,
                        audio=True, images=frames) for i in range(parts)]
    joined = folder / "joined.ts"
    joined.write_bytes(b"".join(p.read_bytes() for p in pieces))
    return joined, pieces


def test_a_join_is_found_and_its_later_parts_are_timed_on_with_their_sound(tmp_path):
    joined, pieces = _joined(tmp_path, parts=3)
    restarts = restarts_in(joined)
    assert len(restarts) == 2
    folder = tmp_path / "copy"
    copy, note = timed_on(joined, folder)
    assert copy == folder / "joined.ts" and "start over 2 times" in note[0]
    video, sound = _times(copy, "video"), _times(copy, "audio")
    parts_video = [_times(p, "video") for p in pieces]
    assert len(video) == sum(len(v) for v in parts_video) == len(_times(joined, "video"))
    assert len(sound) == sum(len(_times(p, "audio")) for p in pieces)
    assert _rising(video) and _rising(sound)
    step = Fraction(1, 25)
    for k, part in enumerate(parts_video[1:], start=1):
        first = sum(len(v) for v in parts_video[:k])
        # each part starts where the one before it ended: its sound, which runs 0.1 s past its last frame
        assert step < video[first] - video[first - 1] < Fraction(1, 4)
        assert abs(float(restarts[k - 1].at_s) - float(video[first])) < 0.1
        # and its frames keep their spacing, and their place against its sound
        assert [t - video[first] for t in video[first:first + len(part)]] == [t - part[0] for t in part]
    shift = video[len(parts_video[0])] - parts_video[1][0]
    part_sound = _times(pieces[1], "audio")
    assert part_sound[0] + shift in sound


def test_a_join_that_steps_back_under_a_tenth_of_a_second_is_timed_on_too(tmp_path):
    """The later capture began a frame before the earlier one ended: FFmpeg's command line takes
    so small a step back for jitter (it drops the frames), and so did vidrestore, whose muxer then
    refused the output after the work ("write a .mkv or .mov", which refused it too)."""
    pieces = [make_clip(tmp_path / "part0.ts", [k * 40 for k in range(10)]),
              make_clip(tmp_path / "part1.ts", [360 + k * 40 for k in range(10)])]
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(p.read_bytes() for p in pieces))
    with av.open(str(joined)) as c:
        decode_times = [p.dts * p.time_base for p in c.demux(video=0) if p.dts is not None]
    steps_back = [a - b for a, b in itertools.pairwise(decode_times) if b < a]
    assert len(steps_back) == 1 and steps_back[0] < Fraction(1, 10)
    assert len(restarts_in(joined)) == 1
    out = tmp_path / "out.mp4"
    assert main([str(joined), str(out), "--strength", "1", *FAST]) == 0
    video = _times(out, "video")
    assert len(video) == 20 and _rising(video)
    assert [t - video[10] for t in video[10:]] == [k * Fraction(1, 25) for k in range(10)]  # the later part keeps its spacing
    copied = tmp_path / "copied.mp4"  # nothing to restore: its packets copied, which the muxer refused too
    assert main([str(joined), str(copied), "--strength", "0", *FAST]) == 0
    assert _times(copied, "video") == video


def test_a_recording_begun_just_before_the_mpeg_clock_wraps_keeps_every_frame(sample_frames, tmp_path):
    """FFmpeg reads its first second's times as before 0 (the 33-bit clock unwrapped), and an .mp4
    output's edit list hid those frames: 25 of 48 decoded, the report saying 48 were written."""
    wrap, frames = 1 << 33, (sample_frames * 2)[:48]
    src = make_clip(tmp_path / "wrap.ts", [wrap - 90000 + k * 3600 for k in range(len(frames))], time_base=Fraction(1, 90000),
                    size=frames[0].shape[:2], images=frames)
    stated = _times(src, "video")
    assert stated[0] < 0 < stated[-1] and len(stated) == 48
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    assert main([str(src), str(out), "--json", str(report), "--strength", "1", *FAST]) == 0
    written = _times(out, "video")
    assert len(written) == 48 and [t - written[0] for t in written] == [t - stated[0] for t in stated]
    assert any(n.startswith("the timestamps of wrap.ts begin 1.") and "s before 0, as FFmpeg reads a recording begun just before the MPEG clock wraps" in n
               for n in json.loads(report.read_text())["notes"])
    copied = tmp_path / "copied.mp4"  # nothing restored: its packets copied
    assert main([str(src), str(copied), "--strength", "0", *FAST]) == 0
    assert len(_times(copied, "video")) == 48


def test_an_unjoined_recording_is_read_as_it_is(tmp_path):
    """Nor is a picture lost for 12 s while the sound goes on a restart: its gap is kept."""
    single = make_clip(tmp_path / "one.ts", [k * 40 for k in range(10)], audio=True)
    gap = make_clip(tmp_path / "gap.ts", [k * 40 for k in range(10)] + [12000 + k * 40 for k in range(10)], audio=True)
    mp4 = make_clip(tmp_path / "one.mp4", [k * 40 for k in range(10)], audio=True)
    folder = tmp_path / "copy"
    for source in (single, gap, mp4):
        assert restarts_in(source) == []
        assert timed_on(source, folder) == (source, [])
    assert not folder.exists()


def test_the_copy_is_removed_whatever_happens_and_with_an_interrupted_runs_leftovers(tmp_path):
    joined, _ = _joined(tmp_path, parts=2)
    output = tmp_path / "out.mkv"
    with pytest.raises(KeyboardInterrupt), played_in_order(joined, output) as (copy, _):
        assert copy.exists() and copy.parent == timed_on_folder(output)
        raise KeyboardInterrupt
    assert not timed_on_folder(output).exists()
    timed_on(joined, timed_on_folder(output))  # as a killed run leaves it
    assert remove_leftovers(output) == 1 and not timed_on_folder(output).exists()


def test_a_recording_joined_from_two_is_restored_whole_with_its_sound_in_step(sample_frames, tmp_path):
    """Two captures put end to end: the muxer refused the output's timestamps, which went back at the
    join, after all the work was done."""
    joined, _ = _joined(tmp_path, parts=2, frames=sample_frames[:12])
    out, report = tmp_path / "out.mkv", tmp_path / "r.json"
    assert main([str(joined), str(out), "--json", str(report), "--strength", "1", *FAST]) == 0
    video, sound = _times(out, "video"), _times(out, "audio")
    assert len(video) == len(_times(joined, "video")) == 24
    assert _rising(video) and _rising(sound)
    assert video[12] - video[11] < Fraction(1, 4)
    data = json.loads(report.read_text())
    assert data["input"] == str(joined) and data["frames_out"] == 24 and data["tracks"]
    assert "start over 1 time" in data["notes"][0]
    assert not [p for p in tmp_path.iterdir() if "timed-on" in p.name]
    # the copy read is made anew by each run: its analysis is kept under the input's name
    assert main([str(joined), str(out), "--json", str(report), "--strength", "1", "--overwrite", *FAST]) == 0
    again = json.loads(report.read_text())
    assert any(note.startswith("the input was not analysed again") for note in again["notes"])
    assert again["tracks"] == data["tracks"] and _times(out, "video") == video


def test_an_excerpt_past_where_the_first_part_ends_is_cut_from_the_whole_recording(tmp_path, capsys):
    """A recording joined from three states the length of its first part (0.4 s): the checks made
    before torch loads leave an excerpt's end to the run, which judges it on the copy timed on."""
    joined, _ = _joined(tmp_path, parts=3)
    assert probe(joined).duration_s < 0.5
    out, report = tmp_path / "out.mkv", tmp_path / "r.json"
    assert main([str(joined), str(out), "--start", "1", "--json", str(report), *FAST]) == 0
    assert json.loads(report.read_text())["frames_out"] == len(_times(out, "video")) == 10
    assert main([str(joined), str(tmp_path / "late.mkv"), "--start", "2", *FAST]) == 2
    assert "--start 0:02.000 is past the end of joined.ts, which lasts 0:01.4" in capsys.readouterr().err


def test_a_batch_item_joined_from_two_is_timed_on_too(tmp_path):
    joined, _ = _joined(tmp_path, parts=2)
    out, report = tmp_path / "out", tmp_path / "r.json"
    assert main(["batch", str(joined), "--out", str(out), "--json", str(report), *FAST]) == 0
    item = json.loads(report.read_text())["items"][0]
    assert item["status"] == "done" and item["frames"] == 20
    assert _rising(_times(out / "joined.ts", "video"))
    assert not [p for p in out.iterdir() if "timed-on" in p.name]
