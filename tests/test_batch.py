"""Batch jobs: inputs and manifests, resume and skip-on-hash, failure isolation, crash recovery,
segment split/join exactness, and a run on a local Ray instance."""

import argparse
import dataclasses
import fcntl
import itertools
import json
import re
import shutil
import signal
import sqlite3
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import ONE_TAKE, make_clip, read_pts, start_and_signal_when
from PIL import Image

from vidrestore.batch.items import ItemSpec, assign_outputs, expand_inputs, read_manifest
from vidrestore.batch.runner import BatchProgress, InProcessExecutor, run_batch
from vidrestore.batch.state import LOCK_NAME, STATE_NAME, JobState
from vidrestore.batch.worker import Item, RestoreWorker
from vidrestore.cli import add_restore_options, main, options_from_args
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.errors import OutputError, UsageError
from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.io import remux
from vidrestore.io.encoders import EncodeOptions
from vidrestore.io.sequence import is_sequence
from vidrestore.models import precision
from vidrestore.options import RestoreOptions
from vidrestore.pipeline import PipelineConfig, analyse, run
from vidrestore.pipeline.segments import plan_segments, segment_path
from vidrestore.restore import PassThroughRestorer, load_restorer
from vidrestore.resume import ledger_path

FAST = ["--detector", "dlib", "--detect-every", "3", "--x264-preset", "ultrafast", "--quiet"]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _rows(out: Path) -> dict[str, tuple]:
    with sqlite3.connect(out / STATE_NAME) as db:
        return {Path(r[0]).name: r[1:] for r in db.execute("SELECT output, status, attempts, finished_at FROM items")}


@pytest.fixture
def clips(sample_clip, tmp_path) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [folder / f"clip{i}.mp4" for i in range(3)]
    for p in paths:
        shutil.copy(sample_clip, p)
    return paths


def _run_in_process(items: list[Item], out: Path, overlap: bool) -> None:
    progress = BatchProgress(len(items), 0, quiet=True)
    with JobState(out) as state:
        for item in items:
            state.register(item.output, item.input, item.fingerprint, item.options.model)
        executor = InProcessExecutor("cpu", progress, overlap=overlap)
        try:
            run_batch(items, state, executor, 1, progress)
        finally:
            executor.close()
        assert [r.status for r in state.rows()] == ["done"] * len(items)


def test_the_next_item_is_analysed_while_one_is_restored_and_each_is_decoded_once(clips, tiny_model, tmp_path, monkeypatch):
    """The in-process batch analyses an item on a thread of its own while the calling thread
    restores the one before it, and the frames the analysis decoded are restored without decoding
    them again. The outputs equal those of a run that takes one item at a time and decodes in each
    pass, frame for frame (ffv1)."""
    from vidrestore.io.reader import VideoReader

    parser = argparse.ArgumentParser()
    add_restore_options(parser)
    options = options_from_args(parser.parse_args(["--model", str(tiny_model), "--detector", "dlib", "--detect-every", "3",
                                                   "--codec", "ffv1"]))
    events, decodes = [], []

    def logged(name: str):
        real = getattr(RestoreWorker, name)

        def step(self, plan, *rest):
            start = time.perf_counter()
            try:
                return real(self, plan, *rest)
            finally:
                item = plan if name == "analyse" else plan.item
                events.append((name, item.input.name, threading.current_thread().name, start, time.perf_counter()))
        return step

    for name in ("analyse", "restore_segment"):
        monkeypatch.setattr(RestoreWorker, name, logged(name))
    real_decode = VideoReader._decode
    monkeypatch.setattr(VideoReader, "_decode", lambda self: decodes.append(self.path.name) or real_decode(self))
    outputs = {}
    for overlap, mib in ((True, 256), (False, 0)):
        events.clear(), decodes.clear()
        run_options = dataclasses.replace(options, pipeline=dataclasses.replace(options.pipeline, decode_once_mib=mib))
        out = tmp_path / f"out-{overlap}"
        out.mkdir()
        _run_in_process([Item(c, out / f"{c.stem}.mkv", run_options, run_options.fingerprint_for(c)) for c in clips], out, overlap)
        outputs[overlap] = [_frames(out / f"{c.stem}.mkv") for c in clips]
        if overlap:
            threads = {kind: {thread for k, _, thread, _, _ in events if k == kind} for kind in ("analyse", "restore_segment")}
            assert threads == {"analyse": {"vidrestore-analyse_0"}, "restore_segment": {"MainThread"}}
            span = {(kind, name): (start, end) for kind, name, _, start, end in events}
            for before, after in itertools.pairwise(clips):
                assert span["analyse", after.name][0] < span["restore_segment", before.name][1]  # at once
            assert sorted(decodes) == sorted(c.name for c in clips)  # pass 1 alone decoded
        else:
            assert all(decodes.count(c.name) >= 2 for c in clips)
            order = [(kind, name) for kind, name, *_ in sorted(events, key=lambda e: e[3])]
            assert order == [(kind, c.name) for c in clips for kind in ("analyse", "restore_segment")]
    assert all(len(a) == 24 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
               for a, b in zip(outputs[True], outputs[False], strict=True))
    assert not np.array_equal(outputs[True][0][5], _frames(clips[0])[5])  # restored, not copied
    # by default only where the model runs on an accelerator (on the CPU it takes every core itself)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU, as far as the device check can tell
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert (InProcessExecutor("cpu").slots, InProcessExecutor("cuda").slots, InProcessExecutor("cpu", overlap=True).slots) == (1, 2, 2)


def test_ctrl_c_while_the_next_item_is_analysed_stops_both_and_leaves_every_item_pending(clips, tmp_path, monkeypatch):
    """Ctrl-C lands in the item being restored while the next one is analysed on its own thread:
    the analysis stops at its next checkpoint, the executor waits for it, and both items go back
    to pending with no file of theirs left."""
    from vidrestore.stopping import stops_cleanly_on_termination

    parser = argparse.ArgumentParser()
    add_restore_options(parser)
    options = options_from_args(parser.parse_args(["--model", "none", "--detector", "dlib", "--detect-every", "1"]))
    analysed, real_analyse = [], RestoreWorker.analyse

    def analyse(self, item, progress=None):
        try:
            plan = real_analyse(self, item, progress)
            analysed.append((item.input.name, "done"))
            return plan
        except KeyboardInterrupt:
            analysed.append((item.input.name, "stopped"))
            raise

    def interrupted(self, plan, index, progress=None):
        signal.raise_signal(signal.SIGINT)  # as Ctrl-C: the handler notes the stop and raises here

    monkeypatch.setattr(RestoreWorker, "analyse", analyse)
    monkeypatch.setattr(RestoreWorker, "restore_segment", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    items = [Item(c, out / c.name, options, options.fingerprint_for(c)) for c in clips]
    with stops_cleanly_on_termination(), pytest.raises(KeyboardInterrupt):
        _run_in_process(items, out, overlap=True)
    assert analysed == [(clips[0].name, "done"), (clips[1].name, "stopped")]
    assert [s for s, _, _ in _rows(out).values()] == ["pending"] * 3
    assert not [p.name for p in out.iterdir() if "clip" in p.name]


def test_split_and_join_equals_one_pass_frame_for_frame(three_shot_clip, tiny_model, tmp_path):
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    outputs = {}
    for segment_frames in (0, 16):
        cfg = PipelineConfig(batch_size=6, segment_frames=segment_frames, encode=EncodeOptions(codec="ffv1"))
        restorer = load_restorer(str(tiny_model), SamplerConfig(start_step=200, steps=2), torch.device("cpu"),
                                 torch.float32, None, 32)
        outputs[segment_frames] = run(three_shot_clip, tmp_path / f"out{segment_frames}.mkv", cfg, restorer,
                                      torch.device("cpu"), detector=det)
    analysis = analyse(three_shot_clip, PipelineConfig(), det)
    assert len(plan_segments(analysis, 16)) == 3
    assert outputs[16].frames_out == outputs[0].frames_out == 48
    one, split = tmp_path / "out0.mkv", tmp_path / "out16.mkv"
    assert read_pts(one) == read_pts(split)
    a, b = _frames(one), _frames(split)
    assert len(a) == len(b) == 48 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[8], _frames(three_shot_clip)[8])  # the faces were restored, not copied
    with av.open(str(split)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]  # audio remuxed once, after the join
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0.mkv", "out16.mkv"]  # no segment files left


@pytest.mark.parametrize("fields, clip, frames", [("keep_fields", "interlaced_clip", 24), ("double_rate", "interlaced_clip", 48),
                                                  ("decimate", "telecined_clip", 24), ("decimate+hybrid", "hybrid_clip", 68)])
def test_fields_split_inside_a_shot_and_joined_equal_one_pass(request, tiny_model, tmp_path, fields, clip, frames):
    """A segment that starts inside a shot is deinterlaced (or field-matched) from the frame before
    it and restored with the state carried in: the same frames, at the same times, as one pass,
    kept as fields, written a frame a field, or decimated to the film's own frames (with
    ``hybrid``, the video cycles whole)."""
    interlaced_clip = request.getfixturevalue(clip)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    outputs = {}
    for segment_frames in (0, 8):
        cfg = PipelineConfig(batch_size=4, segment_frames=segment_frames, encode=EncodeOptions(codec="ffv1"),
                             **dict.fromkeys(fields.split("+"), True))
        restorer = load_restorer(str(tiny_model), SamplerConfig(start_step=200, steps=2), torch.device("cpu"),
                                 torch.float32, None, 32)
        run(interlaced_clip, tmp_path / f"out{segment_frames}.mkv", cfg, restorer, torch.device("cpu"), detector=det)
        outputs[segment_frames] = _frames(tmp_path / f"out{segment_frames}.mkv")
    assert len(plan_segments(analyse(interlaced_clip, PipelineConfig(), det), 8, 4)) >= 3  # two or more start inside the shot
    assert len(outputs[0]) == frames
    assert all(np.array_equal(a, b) for a, b in zip(outputs[0], outputs[8], strict=True))
    assert read_pts(tmp_path / "out0.mkv") == read_pts(tmp_path / "out8.mkv")


def _first_times(path: Path) -> dict[str, Fraction]:
    """When each stream's first packet is presented, in seconds."""
    with av.open(str(path)) as c:
        return {s.type: s.start_time * s.time_base for s in c.streams}


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])
@pytest.mark.parametrize("segment_frames", [0, 16])
def test_x264_segments_join_with_every_timestamp_in_step_with_the_audio(three_shot_clip, tmp_path, suffix, segment_frames):
    """MPEG-TS stores no decode time before 0. Where the input starts sooner than the two frames
    x264 reorders, its muxer delayed a segment of video alone, and the audio, remuxed beside it
    afterwards, then played two frames early. The video must keep every timestamp (and where the
    container cannot, every stream moves together)."""
    clip = three_shot_clip
    if suffix == ".ts":  # video from 0 (no B-frames), moved 23 ms on with the AAC audio that starts before it
        images = _frames(three_shot_clip)
        first = make_clip(tmp_path / "in.mp4", read_pts(three_shot_clip), size=images[0].shape[:2], images=images,
                          audio=True, x264_params="bframes=0")
        clip = tmp_path / "in.ts"
        remux(first, first, clip)
    out = tmp_path / f"o{suffix}"
    assert main([str(clip), str(out), "--model", "none", "--segment-frames", str(segment_frames), *FAST,
                 "--x264-preset", "veryfast"]) == 0  # ultrafast makes no B-frames
    before, after = _first_times(clip), _first_times(out)
    assert after["video"] - after["audio"] == before["video"] - before["audio"]
    delay = round((after["video"] - before["video"]) * 90000) if suffix == ".ts" else 0
    assert read_pts(out) == [t + delay for t in read_pts(clip)]


def test_an_item_takes_the_analysis_an_earlier_run_kept_unless_told_to_analyse_again(clips, tmp_path):
    options = RestoreOptions(PipelineConfig(detector=DetectorConfig(backend="dlib")), SamplerConfig(), model="none")
    item = Item(clips[0], tmp_path / "out" / "clip0.mp4", options, options.fingerprint_for(clips[0]))
    (tmp_path / "out").mkdir()
    worker = RestoreWorker("cpu")
    first, again, fresh = (worker.analyse(dataclasses.replace(item, reanalyse=reanalyse)) for reanalyse in (False, False, True))
    assert not first.kept and not fresh.kept
    assert again.kept and again.kept[0].startswith("the input was not analysed again")
    assert [(t.start, t.end) for t in again.analysis.tracks] == [(t.start, t.end) for t in first.analysis.tracks]


def test_a_worker_keeps_a_restorer_for_each_way_of_restoring():
    """Items that differ in --restore-every must not share a restorer: the one made first would restore both."""
    from vidrestore.between import KeyframeRestorer

    worker = RestoreWorker("cpu")
    every_frame = RestoreOptions(PipelineConfig(), SamplerConfig(), model="none")
    one_in_two = dataclasses.replace(every_frame, restore_every=2)
    assert worker._restorer(every_frame) is worker._restorer(every_frame)
    assert not isinstance(worker._restorer(every_frame), KeyframeRestorer)
    assert isinstance(worker._restorer(one_in_two), KeyframeRestorer) and worker._restorer(one_in_two).every == 2


def test_plan_segments_cuts_only_at_shot_boundaries(three_shot_clip):
    analysis = analyse(three_shot_clip, PipelineConfig(), create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")))
    starts = {s.start for s in analysis.shots}
    for n in (0, 5, 16, 20, 30, 100):
        segs = plan_segments(analysis, n)
        assert segs[0].start == 0 and segs[-1].stop == analysis.frames
        assert all(a.stop == b.start for a, b in itertools.pairwise(segs))
        assert all(s.start in starts for s in segs)


def test_no_segment_starts_at_a_frame_that_shares_the_time_of_the_one_before():
    """Its writer could not write it after that one, and the join refused the segments as overlapping."""
    from vidrestore.pipeline.analysis import Analysis
    from vidrestore.shots import Shot

    pts = [50 * i for i in range(48)]
    assert [s.start for s in plan_segments(Analysis(48, [Shot(0, 48)], [], "", pts=pts), 8, 8)] == [0, 8, 16, 24, 32, 40]
    shared = [*pts[:16], pts[15], *pts[17:]]  # frame 16 at frame 15's time
    assert [s.start for s in plan_segments(Analysis(48, [Shot(0, 48)], [], "", pts=shared), 8, 8)] == [0, 8, 24, 32, 40]


def test_inputs_folders_globs_and_manifest(clips, tmp_path):
    out = tmp_path / "out"
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"input,output,seed,no_temporal\n{clips[0]},first.mp4,7,true\n{clips[1]},,,\n")
    specs = read_manifest(manifest)
    assert specs[0] == ItemSpec(clips[0], Path("first.mp4"), ("--seed", "7", "--no-temporal"))
    assert specs[1].flags == ()
    assert [s.input for s in expand_inputs([str(clips[0].parent)], out)] == clips
    assert [s.input for s in expand_inputs([str(clips[0].parent / "clip*.mp4"), str(clips[1])], out)] == clips
    with pytest.raises(UsageError, match="no file matches"):
        expand_inputs([str(tmp_path / "nothing*.mp4")], out)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(clips[0], other / "clip0.mp4")
    names = [o.name for _, o in assign_outputs([ItemSpec(clips[0]), ItemSpec(other / "clip0.mp4"), ItemSpec(clips[1])], out)]
    assert names[2] == "clip1.mp4" and names[0] != names[1] and all(n.startswith("clip0-") for n in names[:2])
    # a manifest's output that another input's is: both named (it was "two manifest entries write the same output file")
    with pytest.raises(UsageError, match=f"^{re.escape(f'{clips[1]} and {clips[0]} would both be written to {out}/clip1.mp4')}"):
        assign_outputs([ItemSpec(clips[1]), ItemSpec(clips[0], Path("clip1.mp4"))], out)


def test_a_folders_subfolders_are_mirrored_below_out_and_an_input_an_earlier_run_wrote_keeps_its_output(sample_clip, tmp_path, capsys):
    """An archive's 1970s/reel1.mp4 and 1980s/reel1.mp4 were written flat into --out, one renamed
    with 8 hex of its path (as were their --faces folders); a batch an earlier version wrote flat,
    or one given a subfolder first, goes on where it was: its finished items are not restored again."""
    archive, out = tmp_path / "archive", tmp_path / "out"
    for name in ("1970s/reel1.mp4", "1980s/reel1.mp4", "1980s/tv/news.mp4", "top.mp4"):
        (archive / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_clip, archive / name)
    mirrored = ["1970s/reel1.mp4", "1980s/reel1.mp4", "1980s/tv/news.mp4", "top.mp4"]
    for given in (str(archive), str(archive / "**" / "*.mp4")):
        pairs = assign_outputs(expand_inputs([given], out), out)
        assert [o.relative_to(out).as_posix() for _, o in pairs] == mirrored
    assert [o.relative_to(out).as_posix() for _, o in assign_outputs(expand_inputs([str(archive / "1980s")], out), out)] == \
        ["reel1.mp4", "tv/news.mp4"]
    # what earlier runs gave an input it keeps; an input whose place that output took is tagged
    specs = expand_inputs([str(archive)], out)
    pairs = assign_outputs(specs, out, {(archive / "1970s" / "reel1.mp4").resolve(): out / "top.mp4"})
    names = [o.relative_to(out).as_posix() for _, o in pairs]
    assert names[:3] == ["top.mp4", "1980s/reel1.mp4", "1980s/tv/news.mp4"] and names[3].startswith("top-")

    assert main(["batch", str(archive / "1980s"), "--out", str(out), "--model", "none", "--faces", str(tmp_path / "faces"), *FAST]) == 0
    flat = {p.relative_to(out).as_posix() for p in out.rglob("*.mp4")}
    assert flat == {"reel1.mp4", "tv/news.mp4"}
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    report = tmp_path / "r.json"
    capsys.readouterr()
    assert main(["batch", str(archive), "--out", str(out), "--model", "none", "--faces", str(tmp_path / "faces"),
                 *(a for a in FAST if a != "--quiet"), "--json", str(report)]) == 0
    table = [line.split()[-1] for line in capsys.readouterr().err.splitlines() if line.startswith(("done", "status"))]
    assert table == ["item", "1970s/reel1.mp4", "top.mp4", "reel1.mp4", "tv/news.mp4"]  # each told apart
    items = {Path(i["output"]).relative_to(out).as_posix(): i for i in json.loads(report.read_text())["items"]}
    assert {name for name, item in items.items() if item.get("skipped")} == {"reel1.mp4", "tv/news.mp4"}  # as they were
    assert set(items) == {p.relative_to(out).as_posix() for p in out.rglob("*.mp4")} == {*flat, "1970s/reel1.mp4", "top.mp4"}
    assert all(p.stat().st_mtime_ns == when for p, when in written.items())
    faces = {p.parent.relative_to(tmp_path / "faces").as_posix() for p in (tmp_path / "faces").rglob("*.jpg")}
    assert faces == set(items)


def test_previews_give_each_item_the_side_by_side_a_single_run_gives(clips, tmp_path, capsys):
    """A batch had no --preview: each item's side-by-side (input | restored) is written at its
    output's place below --previews, as a single run's --preview writes it; a clip with no face is
    its own preview; --previews naming --out (each preview would replace its output) is refused."""
    (clips[0].parent / "sub").mkdir()
    noface = make_clip(clips[0].parent / "sub" / "empty.mp4", [i * 40 for i in range(6)])
    single = tmp_path / "single.mp4"
    assert main([str(clips[0]), str(tmp_path / "o.mp4"), "--preview", str(single), "--model", "none", *FAST]) == 0
    out, previews = tmp_path / "out", tmp_path / "previews"
    assert main(["batch", str(clips[0].parent), "--out", str(out), "--previews", str(previews), "--model", "none", *FAST]) == 0
    assert sorted(p.relative_to(previews).as_posix() for p in previews.rglob("*")) == [
        "clip0.mp4", "clip1.mp4", "clip2.mp4", "sub", "sub/empty.mp4"]  # no part left
    assert all(np.array_equal(a, b) for a, b in zip(_frames(previews / "clip0.mp4"), _frames(single), strict=True))
    assert read_pts(previews / "clip0.mp4") == read_pts(single) and read_pts(previews / "sub" / "empty.mp4") == read_pts(noface)
    assert _frames(previews / "clip1.mp4")[0].shape[1] == 2 * _frames(out / "clip1.mp4")[0].shape[1]
    capsys.readouterr()
    assert main(["batch", str(clips[0]), "--out", str(out), "--previews", str(out), "--model", "none", *FAST]) == 2
    assert capsys.readouterr().err.strip() == (f"vidrestore: error: --previews {out} is --out: each item's preview would replace its "
                                               "output; give another folder")
    # into the inputs' folder, each preview would have replaced its input
    assert main(["batch", str(clips[1]), "--out", str(tmp_path / "o2"), "--previews", str(clips[1].parent), "--model", "none", *FAST]) == 2
    assert capsys.readouterr().err.strip() == (f"vidrestore: error: the preview of clip1.mp4 {clips[1]} names the input {clips[1]}; "
                                               "give it a name of its own")
    assert not (tmp_path / "o2").exists()


def test_a_manifest_column_that_is_no_option_stops_the_batch_before_any_item(clips, tmp_path, capsys):
    """A misspelt heading ("strenght") failed every item, one by one, as "unrecognized arguments"."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"input,Strenght,no_temporal\n{clips[0]},0.5,true\n{clips[1]},0.7,false\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--model", "none", *FAST]) == 2
    assert capsys.readouterr().err == f"vidrestore: error: manifest {manifest}: 'strenght' is no option of vidrestore (did you mean strength?)\n"
    assert not (tmp_path / "out").exists()
    manifest.write_text(f"input,Strength,no_temporal\n{clips[0]},0.5,true\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--model", "none", *FAST]) == 0


def test_a_folder_gives_its_pictures_one_by_one_its_sequences_whole_and_no_hidden_file(tmp_path):
    """A folder of scanned photos was "no input videos found"; macOS's ._clip.mov beside each file on
    a shared drive failed as an item (the batch with it); and --faces inside the folder searched
    gave the next run each face written as an input."""
    folder = tmp_path / "archive"
    names = ["clip.mov", "._clip.mov", "scan.jpg", "family.TIFF", "DSC_0001.jpg", "DSC_0002.jpg", "reel/r_0001.png",
             "reel/r_0002.png", "reel/poster.png", ".thumbs/scan.jpg", "notes.txt", "faces/clip.mov/people.jpg"]
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    found = [s.input.relative_to(folder).as_posix() for s in expand_inputs([str(folder)], tmp_path / "out", [folder / "faces"])]
    assert found == ["DSC_0001.jpg", "DSC_0002.jpg", "clip.mov", "family.TIFF", "reel/poster.png", "reel/r_%04d.png", "scan.jpg"]
    # a hidden folder given is searched
    assert [s.input for s in expand_inputs([str(folder / ".thumbs")], tmp_path / "out")] == [folder / ".thumbs" / "scan.jpg"]
    with pytest.raises(UsageError, match="no input videos or pictures found"):
        expand_inputs([str(folder / "faces")], tmp_path / "out", [folder / "faces" / "clip.mov"])


def test_a_folder_restored_into_itself_is_refused_and_a_subfolder_holds_outputs_not_inputs(clips, tmp_path, capsys):
    """--out the inputs' folder took every input for an earlier output: "no input videos found",
    with the batch's state file left among the user's videos; an input named in --out likewise."""
    folder = clips[0].parent
    for given in (folder, clips[1]):
        assert main(["batch", str(given), "--out", str(folder), "--model", "none", "--quiet"]) == UsageError.exit_code
        assert capsys.readouterr().err.strip() == (f"vidrestore: error: {clips[0] if given == folder else clips[1]} would be "
                                                   f"replaced by a restored video: --out {folder} holds the inputs; give another folder")
    assert sorted(folder.iterdir()) == clips
    inside = folder / "restored"
    (inside / "old").mkdir(parents=True)
    shutil.copy(clips[0], inside / "old" / "clip0.mp4")  # an earlier batch's output
    for given in (str(folder), str(folder / "**" / "*.mp4")):
        assert [s.input for s in expand_inputs([given], inside)] == clips
    assert [s.input for s in expand_inputs([str(folder)], tmp_path / "elsewhere")] == [*clips, inside / "old" / "clip0.mp4"]
    assert next(s.input for s in expand_inputs([str(inside / "old")], inside)) == inside / "old" / "clip0.mp4"  # its folder is the one given


@pytest.mark.parametrize(("name", "text"), [
    ("excel.csv", "\ufeffinput,output,seed\r\n{0},first.mp4,7\r\n{1},,\r\n"),  # Excel's "CSV UTF-8"
    ("europe.csv", "input;output;seed\n{0};first.mp4;7\n{1};;\n"),  # Excel where the decimal mark is a comma
    ("tabs.csv", "input\toutput\tseed\n{0}\tfirst.mp4\t7\n{1}\t\t\n"),
    ("titled.csv", "Input, Output, Seed\n{0}, first.mp4, 7\n{1},,\n"),  # headings as a person writes them
    ("excel.json", '\ufeff[{{"input": "{0}", "output": "first.mp4", "seed": 7}}, {{"input": "{1}"}}]'),
])
def test_a_manifest_saved_by_a_spreadsheet_is_read(clips, tmp_path, name, text):
    """Excel starts a UTF-8 CSV with a byte order mark, which hid the 'input' column ("entry 1: no
    'input'"), and separates fields with ';' in most of Europe, or tabs."""
    manifest = tmp_path / name
    manifest.write_text(text.format(*clips), encoding="utf-8")
    assert read_manifest(manifest) == [ItemSpec(clips[0], Path("first.mp4"), ("--seed", "7")), ItemSpec(clips[1])]
    manifest.write_text(text.lstrip("\ufeff").format("grand-mère.mp4", "b.mp4"), encoding="cp1252")  # Excel's plain "CSV"
    with pytest.raises(UsageError, match=r"it is not UTF-8 text \(in Excel, save it as \"CSV UTF-8\"\)$"):
        read_manifest(manifest)


def test_a_json_manifests_lists_repeat_an_option_or_are_one_value(clips, tmp_path):
    """A list in a JSON manifest gave its Python text as the value ("--strength ['0.7', 'p0=1']"),
    which failed the item. A repeatable option (one given several times on the command line) is
    given once a value; another option takes the list as one value joined by commas."""
    from vidrestore.batch.items import REPEATABLE
    from vidrestore.cli import add_restore_options

    parser = argparse.ArgumentParser()
    add_restore_options(parser)
    assert REPEATABLE == {a.option_strings[0] for a in parser._actions if isinstance(a, argparse._AppendAction)}
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"input": str(clips[0]), "strength": ["0.7", "p0=1"], "tracks": [0, 3]}]))
    (spec,) = read_manifest(manifest)
    assert spec.flags == ("--strength", "0.7", "--strength", "p0=1", "--tracks", "0,3")
    args = parser.parse_args(list(spec.flags))
    assert args.tracks == (0, 3) and len(args.strength) == 2


def test_skip_on_hash_and_redo_when_options_change(clips, tmp_path):
    out, report = tmp_path / "out", tmp_path / "r.json"
    args = ["batch", str(clips[0]), str(clips[1]), "--out", str(out), "--model", "none", "--json", str(report), *FAST]
    assert main(args) == 0
    first = _rows(out)
    assert all(status == "done" for status, _, _ in first.values())
    mtime = (out / "clip0.mp4").stat().st_mtime_ns
    assert main(args) == 0
    items = json.loads(report.read_text())["items"]
    assert all(i["skipped"] and i["status"] == "done" and i["frames"] == 24 for i in items)
    assert _rows(out) == first and (out / "clip0.mp4").stat().st_mtime_ns == mtime
    assert main([*args, "--crf", "30"]) == 0  # other options: other outputs, so the items run again
    assert all(r[2] > first[n][2] for n, r in _rows(out).items())


def test_each_items_faces_go_into_a_folder_named_as_its_output(clips, tmp_path):
    out, faces, report = tmp_path / "out", tmp_path / "faces", tmp_path / "r.json"
    assert main(["batch", str(clips[0]), str(clips[1]), "--out", str(out), "--model", "none", "--json", str(report),
                 "--faces", str(faces), *FAST]) == 0
    assert sorted(p.name for p in faces.iterdir()) == ["clip0.mp4", "clip1.mp4"]
    for name in ("clip0.mp4", "clip1.mp4"):
        assert (faces / name / "people.jpg").exists() and list((faces / name).glob("person*_track*.jpg"))
    # --faces naming a file failed each item, and each retry, where its faces were written
    assert main(["batch", str(clips[0]), "--out", str(tmp_path / "again"), "--model", "none", "--faces", str(report), *FAST]) == 4
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("option, code, says", [
    (["--config", "typo.yaml"], 6, "config file not found: typo.yaml"),
    (["--model", "typo.safetensors"], 5, "FLIPNET weights not found: typo.safetensors"),
    (["--detector", "retinaface", "--detector-weights", "typo.pth"], 5, "weights file not found: typo.pth"),
    (["--reference", "typo.jpg"], 2, "cannot read the reference photo typo.jpg"),
    (["--reference", "noise.png"], 2, "no face found in the reference photo noise.png"),
    (["--codec", "libx246"], 4, "encoder 'libx246' is not in this FFmpeg build"),
    (["--codec", "libx264", "--x264-preset", "fastest"], 2, "--x264-preset fastest: libx264 takes"),
    (["--grain", "2"], 2, "--grain: expected a value from 0 to 1, got 2.0"),
    (["--retries", "-1"], 2, "--retries must be 0 or more"),
    (["--workers", "4"], 2, "--workers 4 sets how many Ray workers restore at once: add --ray"),  # it was ignored
    (["--workers", "0", "--ray"], 2, "--workers 0: expected 1 or more"),
])
def test_an_option_every_item_would_fail_on_stops_the_batch_before_any(clips, tmp_path, capsys, monkeypatch, option, code, says):
    """Each item failed on it, its attempt counted: after two runs with the typo the batch gave up
    on every item. Now nothing runs, and no state is written."""
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)).save("noise.png")
    out = tmp_path / "out"
    assert main(["batch", str(clips[0]), str(clips[1]), "--out", str(out), *FAST, *option]) == code
    err = capsys.readouterr().err
    assert err.startswith(f"vidrestore: error: {says}") and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_bad_input_fails_alone_and_is_retried_up_to_the_limit(clips, tmp_path):
    bad = tmp_path / "in" / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    out, report = tmp_path / "out", tmp_path / "r.json"
    args = ["batch", str(clips[0]), str(bad), str(tmp_path / "missing.mp4"), "--out", str(out), "--model", "none",
            "--retries", "1", "--json", str(report), *FAST]
    assert main(args) == 1
    items = {Path(i["input"]).name: i for i in json.loads(report.read_text())["items"]}
    assert items["clip0.mp4"]["status"] == "done"
    assert items["broken.mp4"]["status"] == "failed" and items["broken.mp4"]["attempts"] == 2
    assert "not a media file" in items["broken.mp4"]["error"] and "\n" not in items["broken.mp4"]["error"]
    assert "input not found" in items["missing.mp4"]["error"]
    assert main(args) == 1  # the next run gives up on them without running them again
    again = {Path(i["input"]).name: i for i in json.loads(report.read_text())["items"]}
    assert again["broken.mp4"]["skipped"] and "gave up after 2 attempts" in again["broken.mp4"]["error"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["clip0.mp4", STATE_NAME]


def test_a_file_name_with_a_newline_keeps_each_line_of_the_progress_and_the_summary_whole(clips, tmp_path, capsys):
    """The progress ("cpu: bad", "z.mp4: analyse") and the summary table split at the newline in a
    file's name: its control characters are shown as escapes."""
    bad = tmp_path / "bad\nz.mp4"
    bad.write_bytes(b"not a video at all")
    assert main(["batch", str(clips[0]), str(bad), "--out", str(tmp_path / "out"), "--model", "none",
                 *(a for a in FAST if a != "--quiet")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("failed ") and line.split()[4] == "bad\\nz.mp4" for line in lines), lines
    assert not any(line.startswith("z.mp4") for line in lines), lines


def _one_item_done(out: Path) -> bool:
    try:
        return (out / STATE_NAME).exists() and any(s == "done" for s, _, _ in _rows(out).values())
    except sqlite3.OperationalError:
        return False  # the batch is still creating its state file


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_resume_after_the_batch_is_killed_or_stopped(clips, tmp_path, sig):
    """SIGKILL: nothing runs after it, the next run cleans up. SIGTERM (a scheduler; the CLI raises
    it as Ctrl-C is raised, so this is Ctrl-C's path too): the batch cleans up itself."""
    out = tmp_path / "out"
    # room for a slow kill: with 2 more, all 5 were once done before SIGTERM stopped the batch
    more = [shutil.copy(clips[0], clips[0].with_name(f"extra{i}.mp4")) for i in range(5)]
    inputs = [*clips, *map(Path, more)]
    cmd = [sys.executable, "-m", "vidrestore.cli", "batch", *map(str, inputs), "--out", str(out), "--model", "none", *FAST]
    proc = start_and_signal_when(cmd, lambda: _one_item_done(out), sig)
    stopped = _rows(out)
    done = {n for n, (s, _, _) in stopped.items() if s == "done"}
    assert done and len(done) < len(inputs)
    finals = {p.name for p in out.iterdir() if p.suffix == ".mp4" and not p.name.startswith(".")}
    assert finals == done  # a stopped run leaves no output under a final name that is not complete
    if sig != signal.SIGKILL:  # the batch cleaned up itself and left no item marked running
        assert proc.returncode == 128 + sig, proc.stderr.read().decode()[-2000:]
        assert not [p.name for p in out.iterdir() if ".part" in p.name]
        assert all(s in ("done", "pending") for s, _, _ in stopped.values()), stopped
    assert main(cmd[3:]) == 0  # the next run, in this process (one interpreter start less)
    after = _rows(out)
    assert all(s == "done" for s, _, _ in after.values())
    assert all(after[n] == stopped[n] for n in done)  # finished work was not redone
    assert not [p.name for p in out.iterdir() if ".part" in p.name]


def test_an_interrupted_item_resumes_at_its_first_unfinished_segment(three_shot_clip, tmp_path, monkeypatch, capsys):
    """A long item in segments, stopped in its second segment: the next run restores only the
    others, and the output equals an uninterrupted run's frame for frame. (A real SIGTERM takes the
    same path: see the test above.)"""
    folder, out, straight = tmp_path / "in", tmp_path / "out", tmp_path / "straight"
    folder.mkdir()
    clip = Path(shutil.copy(three_shot_clip, folder / "film.mp4"))
    options = ["--model", "none", "--segment-frames", "16", *FAST]
    restored = []
    original = RestoreWorker.restore_segment

    def counted(self, plan, index, progress=None):
        if stop_at == index:
            segment_path(plan.item.output, index).write_bytes(b"half a segment")
            raise KeyboardInterrupt
        restored.append(index)
        return original(self, plan, index, progress)

    monkeypatch.setattr(RestoreWorker, "restore_segment", counted)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    stop_at = 1
    assert main(["batch", str(clip), "--out", str(out), *options]) == 130
    ledger = json.loads(ledger_path(out / "film.mp4").read_text())
    assert sorted(ledger["segments"]) == [".film.seg0000.part.mp4"] and ledger["precision"] == "bf16"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".film")) == [".film.resume.json", ".film.seg0000.part.mp4"]
    assert _rows(out)["film.mp4"][:2] == ("pending", 0)

    stop_at, restored = None, []
    report = tmp_path / "r.json"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)  # continued on another kind of CPU: bf16 all the same
    assert main(["batch", str(clip), "--out", str(out), *options, "--json", str(report)]) == 0
    assert restored == [1, 2]
    notes = json.loads(report.read_text())["items"][0]["report"]["notes"]
    assert "1 of 3 segments were restored by an earlier run that did not finish, and reused (at bf16, which this run kept for the rest)" in notes
    assert any(note.startswith("the input was not analysed again") for note in notes)  # nor was pass 1 repeated
    assert json.loads(report.read_text())["items"][0]["report"]["encoder"].startswith("libx264, yuv420p, crf")
    assert main(["batch", str(clip), "--out", str(straight), *options]) == 0
    assert read_pts(out / "film.mp4") == read_pts(straight / "film.mp4") == read_pts(clip)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(out / "film.mp4"), _frames(straight / "film.mp4"), strict=True))
    assert not [p.name for p in out.iterdir() if ".part" in p.name]
    assert not ledger_path(out / "film.mp4").exists()  # forgotten once the item is done


def test_a_long_take_is_resumed_inside_its_shot_whatever_order_jobs_finish_in(sample_clip, one_take_whole, tiny_model,
                                                                               tmp_path, monkeypatch):
    """One shot of 24 frames in segments of 8 (windows of 4), on an executor that runs the newest
    job first, as parallel workers may finish: each segment still waits for the state of the
    tracks that the one before it hands on. Stopped in segment 1 and continued, the item comes out
    as the single-file command's run in one piece, frame for frame (ffv1)."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    shutil.copy(sample_clip, folder / "take.mp4")
    manifest = folder / "list.json"
    manifest.write_text(json.dumps([{"input": "take.mp4", "output": "take.mkv"}]))
    monkeypatch.setattr(InProcessExecutor, "submit", lambda self, job: self.queue.appendleft(job))
    restored, original = [], RestoreWorker.restore_segment

    def stopping(self, plan, index, progress=None):
        if stop_at == index:
            raise KeyboardInterrupt
        restored.append(index)
        return original(self, plan, index, progress)

    monkeypatch.setattr(RestoreWorker, "restore_segment", stopping)
    options = ["--model", str(tiny_model), *ONE_TAKE, "--segment-frames", "8"]
    stop_at = 1
    assert main(["batch", str(manifest), "--out", str(out), *options]) == 130
    assert restored == [0]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".take")) == [
        ".take.resume.json", ".take.seg0000.carry", ".take.seg0000.part.mkv"]
    stop_at, restored = None, []
    assert main(["batch", str(manifest), "--out", str(out), *options]) == 0
    assert restored == [1, 2]
    assert read_pts(out / "take.mkv") == read_pts(one_take_whole)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(out / "take.mkv"), _frames(one_take_whole), strict=True))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".take")]


def test_a_retry_after_a_full_disk_reuses_the_finished_segments(three_shot_clip, tmp_path, monkeypatch):
    """A write failure (a full disk) leaves the finished segments sound: the retry restores only the
    others. Another error would start the item over (see the single-file tests in test_resume)."""
    clip = Path(shutil.copy(three_shot_clip, tmp_path / "film.mp4"))
    out, report = tmp_path / "out", tmp_path / "r.json"
    restored = []
    original = RestoreWorker.restore_segment

    def failing_once(self, plan, index, progress=None):
        restored.append(index)
        if restored == [0, 1]:
            raise OutputError("cannot write .film.seg0001.part.mp4 (No space left on device)")
        return original(self, plan, index, progress)

    monkeypatch.setattr(RestoreWorker, "restore_segment", failing_once)
    assert main(["batch", str(clip), "--out", str(out), "--model", "none", "--segment-frames", "16", *FAST,
                 "--retries", "1", "--json", str(report), "--dtype", "fp32"]) == 0
    assert restored == [0, 1, 2, 1]  # segment 2, restored while the item was failing, was kept too
    item = json.loads(report.read_text())["items"][0]
    assert item["attempts"] == 2 and ("2 of 3 segments were restored by an earlier run that did not finish, and reused "
                                      "(at fp32, which this run kept for the rest)") in item["report"]["notes"]
    assert read_pts(out / "film.mp4") == read_pts(clip)


def test_a_preview_outlives_a_stop_in_the_join_and_a_segment_without_one_is_restored_again(clips, tmp_path, monkeypatch):
    """A batch stopped while joining an item's segment keeps the segment, with the side-by-side
    part written beside the preview (the join removed both, and the item started over); the run
    that continues joins them. A segment a run without --previews restored has no side-by-side, so
    a run with --previews restores it again (it had gone without a preview, and its report said so)."""
    from vidrestore.batch import worker

    join = worker.join_segments

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    previews, report = tmp_path / "previews", tmp_path / "r.json"
    for clip, given in ((clips[0], ["--previews", str(previews)]), (clips[1], [])):
        monkeypatch.setattr(worker, "join_segments", stopped)
        out = tmp_path / clip.stem
        assert main(["batch", str(clip), "--out", str(out), "--model", "none", *FAST, *given]) == 130
        assert {p.name for p in out.iterdir()} >= {f".{clip.stem}.seg0000.part.mp4", f".{clip.stem}.resume.json"}
        monkeypatch.setattr(worker, "join_segments", join)
        assert main(["batch", str(clip), "--out", str(out), "--model", "none", *FAST, "--previews", str(previews),
                     "--json", str(report)]) == 0
        (item,) = json.loads(report.read_text())["items"]
        reused = any("restored by an earlier run that did not finish, and reused" in n for n in item["report"]["notes"])
        assert reused == bool(given)
        assert len(_frames(previews / clip.name)) == len(_frames(clip)) and not list(previews.glob(".*"))
        assert sorted(p.name for p in out.iterdir()) == sorted([LOCK_NAME, STATE_NAME, clip.name])


def test_what_the_restorer_says_reaches_the_report_of_its_own_item(clips, tmp_path, monkeypatch):
    """The worker keeps its restorer from item to item: each item's report gets the notes of its own
    segments only (e.g. that passes were halved after running out of GPU memory)."""
    note = "out of memory on cpu at 16 faces per forward pass; continued at 8"

    def noting(self, pieces):
        self.notes.append(note)
        return [crops for crops, _ in pieces]

    monkeypatch.setattr(PassThroughRestorer, "restore_tracks", noting)
    report = tmp_path / "r.json"
    assert main(["batch", str(clips[0]), str(clips[1]), "--out", str(tmp_path / "out"), "--model", "none",
                 "--json", str(report), *FAST]) == 0
    counts = [item["report"]["notes"].count(note) for item in json.loads(report.read_text())["items"]]
    assert counts[0] == counts[1] > 0, counts


@pytest.mark.parametrize("flag, clip, note, order, frames", [("--keep-fields", "interlaced_clip", "pasted into the input's fields", "tt", 24),
                                                             ("--double-rate", "interlaced_clip", "a frame for each field", "progressive", 48),
                                                             ("--decimate", "telecined_clip", "decimated (--decimate)", "progressive", 24)])
def test_an_interlaced_item_says_what_became_of_its_fields(request, tmp_path, flag, clip, note, order, frames):
    from vidrestore.io import probe

    interlaced_clip = request.getfixturevalue(clip)

    out, report = tmp_path / "out", tmp_path / "r.json"
    assert main(["batch", str(interlaced_clip), "--out", str(out), "--model", "none", flag, "--qa", "--json", str(report),
                 *FAST]) == 0
    (item,) = json.loads(report.read_text())["items"]
    assert any(note in n for n in item["report"]["notes"])
    assert item["report"]["frames_out"] == frames and item["report"]["qa"][0]["frames_evaluated"] > 20
    assert probe(out / interlaced_clip.name).field_order == order


@pytest.mark.parametrize("step, writes", [("start", True), ("fail", False)])
def test_an_interrupt_between_state_writes_leaves_no_item_running(clips, tmp_path, monkeypatch, step, writes):
    """Ctrl-C landing just after an item is marked running, or just before its failure is
    recorded (windows too short for the signal test to hit reliably), leaves it pending."""
    original = getattr(JobState, step)

    def interrupt(self, *args):
        if writes:
            original(self, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(JobState, step, interrupt)
    inputs = [str(clips[0])] if step == "start" else [str(tmp_path / "missing.mp4")]
    out = tmp_path / "out"
    assert main(["batch", *inputs, "--out", str(out), "--model", "none", *FAST]) == 130
    assert [s for s, _, _ in _rows(out).values()] == ["pending"]


def test_a_second_batch_on_the_same_folder_is_refused(tmp_path):
    with JobState(tmp_path), pytest.raises(UsageError, match="another vidrestore batch"):
        JobState(tmp_path)


def test_ray_local_run_of_three_clips(three_shot_clip, tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'vidrestore[ray]'")
    folder, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    folder.mkdir()
    for i in range(3):
        shutil.copy(three_shot_clip, folder / f"c{i}.mp4")
    code = main(["batch", str(folder), "--out", str(out), "--model", "none", "--ray", "--workers", "2",
                 "--segment-frames", "16", "--json", str(report), *FAST])
    assert code == 0
    items = json.loads(report.read_text())["items"]
    assert len(items) == 3 and all(i["status"] == "done" and i["report"]["segments"] == 3 for i in items)
    for i in range(3):
        assert read_pts(out / f"c{i}.mp4") == read_pts(three_shot_clip)


def test_the_fingerprint_follows_the_reference_photo_content(tmp_path):
    from vidrestore.models.zoo import weights_digest
    from vidrestore.options import RestoreOptions
    from vidrestore.pipeline import PipelineConfig

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"first photo")
    options = RestoreOptions(PipelineConfig(track_references=((0, str(photo)),)), SamplerConfig(), model="none")
    before = options.fingerprint()
    photo.write_bytes(b"another photo")
    weights_digest.cache_clear()
    assert options.fingerprint() != before


def test_the_fingerprint_follows_what_decides_the_output_and_not_where_faces_are_shown(tmp_path):
    import dataclasses

    from vidrestore.diffusion.sampler import SamplerConfig
    from vidrestore.options import RestoreOptions

    options = RestoreOptions(PipelineConfig(), SamplerConfig(), model="none")
    shown = dataclasses.replace(options, pipeline=PipelineConfig(faces_dir=str(tmp_path / "faces")))
    chosen = dataclasses.replace(options, pipeline=PipelineConfig(only_people=(0,)))
    assert shown.fingerprint() == options.fingerprint() != chosen.fingerprint()


def test_qa_measures_each_item_once_it_is_written(clips, tiny_model, tmp_path, capsys):
    out, report = tmp_path / "out", tmp_path / "r.json"
    args = ["batch", str(clips[0]), "--out", str(out), "--model", str(tiny_model), "--preset", "fast", "--qa",
            "--json", str(report), "--detector", "dlib", "--x264-preset", "ultrafast",
            "--keep-coarse", "0"]  # the untrained network's faces whole: kept, the input's coarse picture keeps its identity
    assert main(args) == 0
    (item,) = json.loads(report.read_text())["items"]
    (row,) = item["report"]["qa"]
    assert row["frames_evaluated"] == item["report"]["tracks"][0]["frames"] and "qa" in item["report"]["timings_s"]
    drift = [n for n in item["report"]["notes"] if n.startswith(f"qa: track {row['id']} drifts")]
    assert drift, row  # an untrained network's faces are nobody's
    assert drift[0] in capsys.readouterr().err  # and the summary table lists it under the item


@pytest.mark.parametrize("total, shown, eta", [(0, "frames 6  ", "ETA      ?"), (24, "frames 6/24", "ETA ")])
def test_the_batch_line_shows_no_total_or_eta_it_cannot_know(capsys, total, shown, eta):
    """Inputs that state no frame count and have no duration gave "frames 6/0" and "ETA 0s"."""
    from vidrestore.batch.runner import BatchProgress

    progress = BatchProgress(items=1, frames=total, quiet=False)
    progress.frames_done = 6
    progress.render(force=True)
    line = capsys.readouterr().err
    assert shown in line and eta in line and "/0" not in line
    progress.done = 1  # finished: the count is the frames done, whatever the estimate said
    progress.render(force=True)
    assert "frames 6/6" in capsys.readouterr().err
    failed = BatchProgress(items=1, frames=total, quiet=False)  # failed at once: no frame, no rate
    failed.failed = 1
    failed.render(force=True)
    assert "frames 0/0" in capsys.readouterr().err


def test_a_folder_scan_takes_camera_streams_and_dv_tapes_and_leaves_other_files(tmp_path):
    folder = tmp_path / "tapes"
    (folder / "day2").mkdir(parents=True)
    for name in ("a.dv", "day2/cam.H264", "dvr.hevc", "b.m2ts", "notes.txt", "thumb.jpg"):
        (folder / name).write_bytes(b"x")
    found = [s.input.relative_to(folder).as_posix() for s in expand_inputs([str(folder)], tmp_path / "out")]
    assert found == ["a.dv", "b.m2ts", "day2/cam.H264", "dvr.hevc", "thumb.jpg"]  # a picture is an item too; notes.txt is not


def test_a_folder_scan_takes_each_reels_image_sequence_into_a_folder_of_its_own(tmp_path):
    scans = tmp_path / "scans"
    for reel, names in {"reel1": [f"r_{n:06d}.dpx" for n in range(86400, 86403)],
                        "reel2": [f"r_{n:06d}.dpx" for n in range(86400, 86402)] + ["r_0086403.dpx"],  # another spelling
                        "renders/cg": [f"shot{n}.png" for n in (8, 9, 10, 11)],
                        "renders/reel1": [f"r_{n:06d}.tif" for n in (1, 2)] + [f"r_{n:06d}.dpx" for n in (1, 2)],
                        "photos": ["DSC_0001.jpg", "DSC_0002.jpg", "poster.png", "cover7.tif"]}.items():
        (scans / reel).mkdir(parents=True)
        for name in names:
            (scans / reel / name).write_bytes(b"x")
    specs = expand_inputs([str(scans)], tmp_path / "out")
    # a camera's numbered photos and the pictures of no sequence are items of their own, as is a
    # picture FFmpeg does not read as one of the sequence beside it (another width of number)
    assert [s.input.relative_to(scans).as_posix() for s in specs] == [
        "photos/DSC_0001.jpg", "photos/DSC_0002.jpg", "photos/cover7.tif", "photos/poster.png",
        "reel1/r_%06d.dpx", "reel2/r_%06d.dpx", "reel2/r_0086403.dpx", "renders/cg/shot%d.png", "renders/reel1/r_%06d.dpx",
        "renders/reel1/r_%06d.tif"]
    specs = [s for s in specs if is_sequence(s.input)]
    outputs = [out.relative_to(tmp_path / "out").as_posix() for _, out in assign_outputs(specs, tmp_path / "out")]
    assert outputs == ["reel1/r_%06d.dpx", "reel2/r_%06d.dpx", "renders/cg/shot%d.png", "renders/reel1/r_%06d.dpx",
                       "renders/reel1/r_%06d.tif"]  # the folders they were found in, below --out
    # a reel given by its own name goes into a folder named as its folder is: beside a reel of that name found, both tagged
    given = ItemSpec(scans / "renders" / "reel1" / "r_%06d.dpx")
    outputs = [out.relative_to(tmp_path / "out").as_posix() for _, out in assign_outputs([specs[0], given], tmp_path / "out")]
    assert len({o.split("/")[0] for o in outputs}) == 2 and all(o.startswith("reel1-") and o.endswith("/r_%06d.dpx") for o in outputs)


def test_a_batch_restores_an_image_sequence_once(tmp_path):
    import cv2

    reel = tmp_path / "scans" / "reel1"
    reel.mkdir(parents=True)
    for n in range(100, 104):
        cv2.imwrite(str(reel / f"f_{n:04d}.png"), np.full((32, 48, 3), 10 * n % 256, np.uint8))
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "scans"), "--out", str(out), "--model", "none", "--quiet"]) == 0
    assert sorted(p.name for p in (out / "reel1").iterdir()) == [f"f_{n:04d}.png" for n in range(100, 104)]
    report = tmp_path / "r.json"
    assert main(["batch", str(tmp_path / "scans"), "--out", str(out), "--model", "none", "--quiet", "--json", str(report)]) == 0
    assert [item.get("skipped") for item in json.loads(report.read_text())["items"]] == [True]  # done: not restored again


class _StopsAfter:
    """A connection that runs ``statement`` and then is interrupted, as by a signal landing on the
    next bytecode; or, given a ``failure``, fails it with that instead of running it."""

    def __init__(self, db: sqlite3.Connection, statement: str, failure: sqlite3.Error | None = None):
        self.db, self.statement, self.failure = db, statement, failure

    def execute(self, sql: str, *args):
        if sql == self.statement and self.failure:
            self.statement = None
            raise self.failure
        cursor = self.db.execute(sql, *args)
        if sql == self.statement:
            self.statement = None
            raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str):
        return getattr(self.db, name)


@pytest.mark.parametrize("statement", ["BEGIN IMMEDIATE", "COMMIT"])
def test_a_stop_between_a_transactions_statements_leaves_none_open(tmp_path, statement):
    """A stop landing just after BEGIN left the transaction open, and the clean-up's own (the items
    back to pending) then failed with 'cannot start a transaction within a transaction'."""
    output = tmp_path / "o.mp4"
    with JobState(tmp_path) as state:
        state.register(output, tmp_path / "i.mp4", "f", "none")
        db, state.db = state.db, _StopsAfter(state.db, statement)
        with pytest.raises(KeyboardInterrupt):
            state.start(output)
        assert not db.in_transaction
        state.release(output)
        assert (state.get(output).status, state.get(output).attempts) == ("pending", 0)


def test_a_full_disk_under_the_batch_state_is_one_line(clips, tmp_path, monkeypatch, capsys):
    """SQLite's failures on a full disk went up as its OperationalError with a traceback, when the
    state was opened and when an item's end was recorded; each is one line (exit 4), and a write
    that failed leaves no transaction open."""
    output = tmp_path / "o.mp4"
    with JobState(tmp_path) as state:
        state.register(output, tmp_path / "i.mp4", "f", "none")
        db, state.db = state.db, _StopsAfter(state.db, "COMMIT", sqlite3.OperationalError("database or disk is full"))
        with pytest.raises(OutputError, match=r"^cannot keep the batch's state in .*vidrestore-batch.sqlite \(database or disk is full\)"):
            state.start(output)
        assert not db.in_transaction and state.get(output).status == "pending"

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite3, "connect", full)
    out = tmp_path / "out"
    assert main(["batch", str(clips[0]), "--out", str(out), "--model", "none", "--quiet"]) == 4
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"vidrestore: error: cannot keep the batch's state in {out / STATE_NAME} (disk I/O error)")
    with open(out / LOCK_NAME, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # given back
