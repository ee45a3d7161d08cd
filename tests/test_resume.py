"""Resume: the ledger of finished segments, the clean-up of leftovers, and a single-file run that is
stopped (or killed) in its second segment and continued by the same command."""

import dataclasses
import io
import itertools
import json
import shutil
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import ONE_TAKE, read_pts
from hypothesis import given, settings
from hypothesis import strategies as st

import vidrestore.pipeline.driver as pipeline_run
from vidrestore.cli import main
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.errors import ModelError, OutputError
from vidrestore.models import precision
from vidrestore.options import RestoreOptions, pinned_precision
from vidrestore.pipeline import Analysis, PipelineConfig
from vidrestore.pipeline import segments as pipeline_segments
from vidrestore.resume import SegmentLedger, ledger_path, remove_leftovers

RESTORE_VIDEO = pipeline_run.restore_video
FAST = ["--detector", "dlib", "--detect-every", "3", "--x264-preset", "ultrafast", "--segment-frames", "16", "--quiet"]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_a_finished_segment_is_reused_only_while_intact_and_under_the_same_fingerprint(tmp_path):
    out, seg = tmp_path / "o.mp4", tmp_path / ".o.seg0000.part.mp4"
    seg.write_bytes(b"x" * 100)
    ledger = SegmentLedger(out, "fp1")
    assert ledger.finished() == {} and ledger.precision() is None  # no ledger yet
    ledger.record(seg, range(16), 16, "bf16")
    assert {p: (f.frames, f.written) for p, f in ledger.finished().items()} == {seg: (range(16), 16)}
    assert ledger.precision() == "bf16" and SegmentLedger(out, "fp2").precision() is None
    assert remove_leftovers(out, keep=ledger.finished()) == 0 and seg.exists()
    seg.write_bytes(b"x" * 99)  # cut short (or rewritten) since it was recorded
    assert ledger.finished() == {} and ledger.precision() is None  # nothing left to match
    seg.write_bytes(b"x" * 100)
    assert SegmentLedger(out, "fp2").finished() == {}  # other options, another model or a changed input
    assert remove_leftovers(out, keep=SegmentLedger(out, "fp2").finished()) == 1 and not seg.exists()
    ledger_path(out).write_text('{"fingerprint": "fp1", "segm')  # torn by hand: read as no ledger, not an error
    assert ledger.finished() == {}
    seg.write_bytes(b"x" * 100)
    carry = tmp_path / ".o.seg0000.carry"
    carry.write_bytes(b"c" * 10)
    ledger.record(seg, range(16), 16, "fp32", carry)
    assert ledger.files() == [seg, carry]
    assert remove_leftovers(out, keep=ledger.files()) == 0 and carry.exists()
    carry.write_bytes(b"c" * 9)  # the state it hands on changed: the segment is not vouched for either
    assert ledger.finished() == {} and ledger.files() == []
    side = tmp_path / "previews" / ".p.seg0000.part.mp4"  # a side-by-side part, beside a preview in another folder
    side.parent.mkdir()
    side.write_bytes(b"p" * 50)
    ledger.record(seg, range(16), 16, "fp32", preview=side)
    (done,) = ledger.finished().values()
    assert ledger.files() == [seg, side] and done.serves(range(16), side) and done.serves(range(16), None)
    assert not done.serves(range(16), tmp_path / "previews" / ".q.seg0000.part.mp4") and not done.serves(range(8), side)
    side.write_bytes(b"p" * 49)  # cut short: the segment still serves a run without a preview, not one with it
    (done,) = ledger.finished().values()
    assert done.preview is None and done.serves(range(16), None) and not done.serves(range(16), side)
    ledger.discard()  # a side-by-side part it recorded goes with it, changed or not
    assert not ledger_path(out).exists() and not side.exists()
    kept = tmp_path / "previews" / "p.mp4"  # a ledger edited to name a finished preview: never removed
    kept.write_bytes(b"p")
    ledger.record(seg, range(16), 16, "fp32", preview=kept)
    ledger.discard()
    assert kept.exists()
    assert not ledger_path(out).exists()


_NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-. ", min_size=1, max_size=12).filter(lambda s: s.strip(". ") == s)


@settings(max_examples=60, deadline=None)
@given(stem=_NAMES, other=_NAMES, index=st.integers(0, 9999))
def test_leftovers_are_only_those_of_their_own_output(tmp_path_factory, stem, other, index):
    """``clip.mp4`` and ``clip.v2.mp4`` in one folder: cleaning up after one never touches the other's files."""
    folder = tmp_path_factory.mktemp("out")
    mine, theirs = folder / f"{stem}.mp4", folder / f"{stem}.{other}.mp4"
    own = [folder / f".{stem}.seg{index:04d}.part.mp4", folder / f".{stem}.a1b2c3d4.part.mp4", folder / f".{stem}.resume.jsonx_y_z_12.tmp"]
    foreign = [folder / f".{stem}.{other}.seg{index:04d}.part.mp4", folder / f".{stem}.{other}.a1b2c3d4.part.mp4",
               ledger_path(mine), ledger_path(theirs), mine, theirs]
    for f in own + foreign:
        f.write_bytes(b"")
    assert remove_leftovers(mine) == len(own)
    assert all(f.exists() for f in foreign) and not any(f.exists() for f in own)


@pytest.fixture
def film(three_shot_clip, tmp_path) -> Path:
    return Path(shutil.copy(three_shot_clip, tmp_path / "film.mp4"))


def _stopping_in_segment(index: int, monkeypatch, stop: type[BaseException] | BaseException = KeyboardInterrupt) -> list[range]:
    """Make pass 2 half-write segment ``index`` and raise ``stop`` there (Ctrl-C by default);
    returns the segments that were restored."""
    restored: list[range] = []

    def restore(src, part, analysis, restorer, cfg, device, progress, preview, frames, *rest, **named):
        if len(restored) == index:
            part.write_bytes(b"half a segment")
            raise stop
        restored.append(frames)
        return RESTORE_VIDEO(src, part, analysis, restorer, cfg, device, progress, preview, frames, *rest, **named)

    monkeypatch.setattr(pipeline_run, "restore_video", restore)
    return restored


@pytest.mark.parametrize("bf16", [True, False])
def test_auto_precision_is_settled_once_for_an_output(tmp_path, monkeypatch, bf16):
    """``--dtype auto`` resolves on this machine, unless an earlier run's finished segments of the
    same output say what they were restored at; an explicit precision is the user's."""
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: bf16)
    here, elsewhere = ("bf16", "fp32") if bf16 else ("fp32", "bf16")
    options = RestoreOptions(PipelineConfig(), SamplerConfig())
    out, cpu = tmp_path / "o.mp4", torch.device("cpu")
    ledger = SegmentLedger(out, options.fingerprint())
    assert pinned_precision(options, cpu, None).dtype == pinned_precision(options, cpu, ledger).dtype == here
    seg = tmp_path / ".o.seg0000.part.mp4"
    seg.write_bytes(b"x")
    ledger.record(seg, range(16), 16, elsewhere)
    assert pinned_precision(options, cpu, ledger).dtype == elsewhere
    assert pinned_precision(dataclasses.replace(options, dtype="fp16"), cpu, ledger).dtype == "fp16"
    seg.unlink()
    assert pinned_precision(options, cpu, ledger).dtype == here


def test_a_stopped_run_is_continued_by_the_same_command_on_another_kind_of_cpu(film, tiny_model, tmp_path, monkeypatch, capsys):
    """Stopped on a CPU with bf16 and continued on one without: the continued run keeps bf16, and
    the output equals an uninterrupted run's on the first CPU frame for frame."""
    out, straight, report = tmp_path / "out.mp4", tmp_path / "straight.mp4", tmp_path / "r.json"
    options = ["--model", str(tiny_model), *FAST]
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    _stopping_in_segment(1, monkeypatch)
    assert main([str(film), str(out), *options]) == 130
    assert "vidrestore: interrupted; no partial output was left; 1 finished segment was kept beside the output: " \
           "the same command continues from it" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.resume.json", ".out.seg0000.part.mp4", "film.mp4"]

    for name in (".out.seg0001.part.mp4", ".out.a1b2c3d4.part.mp4"):  # what a kill in segment 1 would also leave
        (tmp_path / name).write_bytes(b"half a segment")

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    restored = _stopping_in_segment(99, monkeypatch)
    assert main([str(film), str(out), *options, "--json", str(report)]) == 0
    assert restored == [range(16, 32), range(32, 48)]  # the finished segment was not restored again
    written = json.loads(report.read_text())
    assert "1 of 3 segments were restored by an earlier run that did not finish, and reused (at bf16, which this run kept " \
           "for the rest)" in written["notes"] and written["restorer"].endswith(", bf16)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4", "out.mp4", "r.json"]  # ledger and segments gone

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert main([str(film), str(straight), *options]) == 0
    assert read_pts(out) == read_pts(straight) == read_pts(film)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(out), _frames(straight), strict=True))
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]


def test_a_stopped_run_of_a_video_piped_in_is_continued_when_the_same_bytes_are_piped_again(film, tmp_path, monkeypatch, capsys):
    """The copy held of a piped video is a new file each run: its content, not its size and time,
    tells the run to continue (:mod:`vidrestore.io.piped`)."""
    out, straight = tmp_path / "out.mp4", tmp_path / "straight.mp4"
    options = ["--model", "none", *FAST]

    def pipe(data: bytes) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    pipe(film.read_bytes())
    _stopping_in_segment(2, monkeypatch)
    assert main(["-", str(out), *options]) == 130
    assert "2 finished segments were kept" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.resume.json", ".out.seg0000.part.mp4", ".out.seg0001.part.mp4",
                                                           "film.mp4"]  # what was piped in is not kept
    pipe(film.read_bytes())
    restored = _stopping_in_segment(99, monkeypatch)
    assert main(["-", str(out), *options]) == 0
    assert restored == [range(32, 48)]
    assert main([str(film), str(straight), *options]) == 0
    assert all(np.array_equal(a, b) for a, b in zip(_frames(out), _frames(straight), strict=True))

    _stopping_in_segment(2, monkeypatch)
    pipe(film.read_bytes())
    assert main(["-", str(out), *options, "--overwrite"]) == 130
    pipe(film.read_bytes()[:-1])  # other bytes: their analysis might differ, so the run starts over
    restored = _stopping_in_segment(99, monkeypatch)
    assert main(["-", str(out), *options, "--overwrite"]) == 0
    assert len(restored) == 3


def test_a_stopped_run_into_an_image_sequence_is_continued_too(film, tmp_path, monkeypatch, capsys):
    """The segments of a sequence are hidden QuickTime files, its staging a hidden folder; neither
    holds a '%' in its name, and both are kept or cleared as a video's are."""
    (tmp_path / "out").mkdir()
    (tmp_path / "straight").mkdir()
    out, straight = tmp_path / "out" / "f_%04d.png", tmp_path / "straight" / "f_%04d.png"
    options = ["--model", "none", *FAST, "--drop-streams"]
    _stopping_in_segment(2, monkeypatch)
    assert main([str(film), str(out), *options]) == 130
    assert sorted(p.name for p in out.parent.iterdir()) == [".f_04d.resume.json", ".f_04d.seg0000.part.png.mov",
                                                           ".f_04d.seg0001.part.png.mov"]
    restored = _stopping_in_segment(99, monkeypatch)
    assert main([str(film), str(out), *options]) == 0
    assert restored == [range(32, 48)]
    assert main([str(film), str(straight), *options]) == 0
    pictures = sorted(out.parent.iterdir())
    assert [p.name for p in pictures] == [f"f_{n:04d}.png" for n in range(1, 49)]
    assert [p.read_bytes() for p in pictures] == [p.read_bytes() for p in sorted(straight.parent.iterdir())]


def test_other_options_or_an_error_start_the_video_over_but_a_full_disk_does_not(film, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.mp4"
    options = ["--model", "none", *FAST]
    _stopping_in_segment(2, monkeypatch)
    assert main([str(film), str(out), *options]) == 130
    assert "2 finished segments were kept" in capsys.readouterr().err

    restored = _stopping_in_segment(99, monkeypatch)  # another quality: nothing of the stopped run applies
    assert main([str(film), str(out), *options, "--crf", "30", "--json", "-"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert len(restored) == 3 and "the segments an earlier run left were not reused: they were made from another " \
                                  "input, with other options or another model, or have changed since" in notes and not any("did not finish" in n for n in notes)

    out.unlink()
    _stopping_in_segment(1, monkeypatch, OutputError("cannot write out.mp4 (No space left on device)"))
    assert main([str(film), str(out), *options]) == OutputError.exit_code
    assert capsys.readouterr().err.strip() == ("vidrestore: error: cannot write out.mp4 (No space left on device); "
                                               "1 finished segment was kept beside the output: the same command continues from it")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.resume.json", ".out.seg0000.part.mp4", "film.mp4"]

    _stopping_in_segment(0, monkeypatch, ModelError("the model failed"))  # segment 1, the first this run restores
    assert main([str(film), str(out), *options]) == ModelError.exit_code
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]  # any other error keeps nothing for a next run


def test_progress_counts_only_the_frames_this_run_restores():
    """Rate and ETA of a continued run are its own: the reused segments are left out of both counts."""
    calls = []
    progress = pipeline_segments.without_segments(lambda *a: calls.append(a), [range(16, 32), range(48, 64)])  # segments 2 and 4 of 4
    for done in (8, 16, 40, 48):
        progress("restore", done, 64, 1)
    assert calls == [("restore", 8, 32, 1), ("restore", 16, 32, 1), ("restore", 24, 32, 1), ("restore", 32, 32, 1)]


@settings(max_examples=60, deadline=None)
@given(shot_lengths=st.lists(st.integers(1, 60), min_size=1, max_size=6), segment_frames=st.integers(0, 50),
       window=st.sampled_from([0, 4, 16]))
def test_segments_split_long_shots_only_where_a_window_starts(shot_lengths, segment_frames, window):
    from vidrestore.shots import Shot

    bounds = np.cumsum([0, *shot_lengths])
    shots = [Shot(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    analysis = Analysis(int(bounds[-1]), shots, [], "test")
    segments = pipeline_segments.plan_segments(analysis, segment_frames, window)
    assert segments[0].start == 0 and segments[-1].stop == analysis.frames
    assert all(a.stop == b.start for a, b in itertools.pairwise(segments))
    for seg in segments[1:]:
        shot = next(s for s in shots if s.start <= seg.start < s.end)
        assert seg.start == shot.start or (window and (seg.start - shot.start) % window == 0)
    assert all(len(s) >= segment_frames for s in segments[:-1])
    if segment_frames and len(segments) > 1:
        assert len(segments[-1]) >= segment_frames // 2
    if window == 0:
        assert pipeline_segments.plan_segments(analysis, segment_frames) == segments


def test_track_state_goes_through_a_file_unchanged(tiny_model, tmp_path):
    """With --restore-every, the last keyframe's crop and change too."""
    import torch

    from vidrestore.between import KeyframeRestorer
    from vidrestore.diffusion.sampler import SamplerConfig
    from vidrestore.restore import TrackContext, load_contexts, load_restorer, save_contexts

    restorer = KeyframeRestorer(load_restorer(str(tiny_model), SamplerConfig(start_step=200, steps=2), torch.device("cpu"),
                                              torch.float32, None, 32), 2)
    crops = torch.rand(3, 3, restorer.face_size, restorer.face_size, generator=torch.Generator().manual_seed(0))
    going = restorer.start_track(7, crops)
    restorer.restore(crops, going)  # now it carries x0, a last crop and a keyframe
    contexts = {7: going, 9: TrackContext(9)}  # and one with nothing in it (the pass-through's)
    save_contexts(contexts, tmp_path / "state.carry")
    back = load_contexts(tmp_path / "state.carry", torch.device("cpu"))
    assert set(back) == {7, 9} and back[9].identity is None and back[9].state is None and back[9].last_crop is None
    assert back[9].keyframe is None
    a, b = going, back[7]
    assert np.array_equal(a.last_crop, b.last_crop) and (a.identity is None) == (b.identity is None)
    pairs = [(a.state.noise.start, b.state.noise.start), *zip(a.state.noise.steps, b.state.noise.steps, strict=True),
             *zip(a.state.previous_x0, b.state.previous_x0, strict=True), (a.keyframe.crop, b.keyframe.crop),
             (a.keyframe.change, b.keyframe.change)]
    assert a.state.previous_x0 and all(torch.equal(x, y) for x, y in pairs)
    more = torch.rand(4, 3, restorer.face_size, restorer.face_size, generator=torch.Generator().manual_seed(1))
    assert torch.equal(restorer.restore(more, a), restorer.restore(more, b))  # they go on the same way, between keyframes too
    b.keyframe = None
    assert not torch.equal(restorer.restore(more, a), restorer.restore(more, b))  # which the keyframe changes


@pytest.fixture
def one_take(sample_clip, tmp_path) -> Path:
    return Path(shutil.copy(sample_clip, tmp_path / "take.mp4"))


def test_a_stopped_run_continues_inside_a_shot_as_if_never_stopped(one_take, one_take_whole, tiny_model, tmp_path, monkeypatch):
    """One shot of 24 frames in segments of 8 (windows of 4): the face's track crosses both
    boundaries. A run stopped in segment 1 and continued gives, losslessly coded, exactly the
    frames of a run in one piece; without the carried state it would not."""
    options = ["--model", str(tiny_model), *ONE_TAKE, "--segment-frames", "8"]
    out = tmp_path / "out.mkv"
    _stopping_in_segment(1, monkeypatch)
    assert main([str(one_take), str(out), *options]) == 130
    assert {p.name for p in tmp_path.iterdir()} >= {".out.seg0000.part.mkv", ".out.seg0000.carry", ".out.resume.json"}
    restored = _stopping_in_segment(99, monkeypatch)
    assert main([str(one_take), str(out), *options]) == 0
    assert restored == [range(8, 16), range(16, 24)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv", "take.mp4"]
    assert read_pts(out) == read_pts(one_take_whole)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(out), _frames(one_take_whole), strict=True))

    monkeypatch.setattr(pipeline_segments, "load_contexts", lambda path, device: {})  # the state lost on the way
    _stopping_in_segment(1, monkeypatch)
    lost = tmp_path / "lost.mkv"
    assert main([str(one_take), str(lost), *options]) == 130
    _stopping_in_segment(99, monkeypatch)
    assert main([str(one_take), str(lost), *options]) == 0
    assert not all(np.array_equal(a, b) for a, b in zip(_frames(lost), _frames(one_take_whole), strict=True))


def test_a_run_that_ends_without_an_output_says_why_in_its_report(film, tmp_path, monkeypatch, capsys):
    """With --json, a run that failed or was stopped wrote no report at all: a scheduler reading
    reports learned nothing of why there was no output. The report names the input and output,
    the status, the line printed on stderr and the exit code."""
    from vidrestore.stopping import Stopped

    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    _stopping_in_segment(1, monkeypatch, Stopped(15))
    assert main([str(film), str(out), "--json", str(report), "--model", "none", *FAST]) == 143
    printed = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(report.read_text()) == {
        "input": str(film), "output": str(out), "status": "stopped", "exit_code": 143,
        "error": "stopped by SIGTERM; no partial output was left; 1 finished segment was kept beside the output: "
                 "the same command continues from it"}
    assert printed == f"vidrestore: {json.loads(report.read_text())['error']}"
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0junk" * 100)
    assert main([str(junk), str(out), "--json", str(report), "--model", "none"]) == 3
    assert json.loads(report.read_text()) == {
        "input": str(junk), "output": str(out), "status": "failed", "exit_code": 3,
        "error": f"not a media file FFmpeg can read: {junk} (Invalid data found when processing input)"}


def test_a_preview_outlives_a_stop_in_the_join_and_a_segment_without_one_is_restored_again(film, tmp_path, monkeypatch, capsys):
    """--preview restores the video as one segment, and its side-by-side part is kept with it: a
    run stopped while joining them is continued without restoring again (it failed: the part had
    been removed, and the kept segment with it). A segment restored without --preview has no
    side-by-side to join, so a run with --preview restores it again."""
    options, whole = ["--model", "none", *FAST, "--segment-frames", "64"], tmp_path / "whole.mp4"  # one segment either way
    assert main([str(film), str(tmp_path / "o.mp4"), *options, "--preview", str(whole)]) == 0
    join = pipeline_run.join_segments

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    for first, restored_again in ((["--preview", str(tmp_path / "p.mp4")], []), ([], [range(48)])):
        monkeypatch.setattr(pipeline_run, "join_segments", stopped)
        out, preview = tmp_path / "out.mp4", tmp_path / "p.mp4"
        assert main([str(film), str(out), *options, *first]) == 130
        assert "1 finished segment was kept beside the output" in capsys.readouterr().err
        monkeypatch.setattr(pipeline_run, "join_segments", join)
        restored = _stopping_in_segment(99, monkeypatch)
        assert main([str(film), str(out), *options, "--preview", str(preview)]) == 0
        assert restored == restored_again
        assert all(np.array_equal(a, b) for a, b in zip(_frames(preview), _frames(whole), strict=True))
        assert read_pts(preview) == read_pts(whole)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4", "o.mp4", "out.mp4", "p.mp4", "whole.mp4"]
        out.unlink()
        preview.unlink()
    # continued without --preview, or with another: the side-by-side part left beside p.mp4 goes too
    for again in ([], ["--preview", str(tmp_path / "q.mp4")]):
        monkeypatch.setattr(pipeline_run, "join_segments", stopped)
        assert main([str(film), str(out), *options, "--preview", str(preview)]) == 130
        assert ".p.seg0000.part.mp4" in {p.name for p in tmp_path.iterdir()}
        monkeypatch.setattr(pipeline_run, "join_segments", join)
        assert main([str(film), str(out), *options, *again]) == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["film.mp4", "o.mp4", "out.mp4", "whole.mp4", *(["q.mp4"] if again else [])])
        out.unlink()
        (tmp_path / "q.mp4").unlink(missing_ok=True)


def test_a_stopped_and_continued_run_writes_the_bytes_of_a_run_in_one_piece(film, tmp_path, monkeypatch):
    """x264 gave the same frames other bits from run to run (its AVX-512 code, at the default
    preset), so a continued run's file differed from one written in one piece, and from the same
    command run again (on this machine in 2 of 3 tries)."""
    options = ["--model", "none", *FAST, "--strength", "1", "--x264-preset", "medium"]  # ultrafast runs none of that code
    whole, out = tmp_path / "whole.mp4", tmp_path / "out.mp4"
    assert main([str(film), str(whole), *options]) == 0
    _stopping_in_segment(2, monkeypatch)
    assert main([str(film), str(out), *options]) == 130
    _stopping_in_segment(99, monkeypatch)
    assert main([str(film), str(out), *options]) == 0
    assert out.read_bytes() == whole.read_bytes()
