import dataclasses
import inspect
import json
import os
import re
import shutil
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_clip

from vidrestore.cli import main
from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.faces.track import TrackerConfig
from vidrestore.faces.types import Track
from vidrestore.io import VideoReader
from vidrestore.io.excerpt import Excerpt
from vidrestore.io.linear import Light
from vidrestore.io.reader import FieldFilter
from vidrestore.pipeline import PipelineConfig, analysis, timing
from vidrestore.pipeline.analysis import Analysis
from vidrestore.pipeline.analysis_store import (
    NOT_IN_KEY,
    PASS_TWO_ONLY,
    AnalysisStore,
    Extras,
    Kept,
    analysed,
    analysis_key,
    analysis_notes,
    decoded,
    encoded,
)
from vidrestore.shots import Shot, ShotConfig

EVERY = Extras(portraits=True, strength=True, detail=0.25)


def every_field_set() -> Analysis:
    """An analysis with no field at its default, each of a kind the store must write and read back."""
    track = Track(3, 1, np.arange(5, 9), np.float32(np.arange(16).reshape(4, 4)), np.float32(np.arange(40).reshape(4, 5, 2)) / 7,
                  np.float64([0.9, 0, 0, 0.8]), np.array([True, False, False, True]), np.array([True, True, False, True]),
                  person=2, monochrome=True, detail=0.31, quality=27.5)
    bare = Track(4, 0, np.arange(0, 2), np.zeros((2, 4), np.float32), np.zeros((2, 5, 2), np.float32), np.ones(2))
    return Analysis(
        frames=12, shots=[Shot(0, 5, 0, 2), Shot(5, 12, 2, 0, monochrome=True)], tracks=[track, bare], detector="dlib (hog)",
        corrupt_packets=2, pts=[0, None, 1001, 2002], deinterlace=FieldFilter("bff", match=True), fields="declared bff",
        references={3: np.full((4, 4, 3), 7, np.uint8)}, too_small=1, resized=3, damaged_s=[1.5, 2.25],
        smallest_findable=21.5, detect_side=640, frame_side=1920, faces={3: b"\xff\xd8jpeg\x00bytes"},
        repeats=frozenset({4, 9}), video_cycles=frozenset({10}), film_pts=[0, None, 4004], light=Light.PQ, judged_at=128,
        excerpt=Excerpt(Fraction(1, 3), Fraction(11, 2), Fraction(1, 25)), boxed=4, not_faces=2)


def same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_an_analysis_is_read_back_as_it_was_written():
    original = every_field_set()
    default = Analysis(0, [], [], "")
    unset = [f.name for f in dataclasses.fields(Analysis) if same(getattr(original, f.name), getattr(default, f.name))]
    assert not unset, f"every_field_set leaves {unset} at its default: set it, so that the store is tested on it"
    arrays: dict[str, np.ndarray] = {}
    data = json.loads(json.dumps(encoded(original, arrays)))  # as the file's metadata holds it
    back = decoded(data, Analysis, arrays)
    assert same(back, original)
    back.tracks[0].boxes[0, 0] = -1  # pass 2 may change what it reads: its own copy
    assert original.tracks[0].boxes[0, 0] == 0


def test_the_key_follows_the_libraries_that_read_the_video(tmp_path, monkeypatch):
    """Another FFmpeg may decode a damaged file to other frames, at other times."""
    from vidrestore.pipeline import analysis_store

    clip = make_clip(tmp_path / "a.mp4", [0, 40, 80])
    key = analysis_key(clip, PipelineConfig())
    monkeypatch.setitem(analysis_store.LIBRARIES, "ffmpeg", "another build")
    assert analysis_key(clip, PipelineConfig()) != key


def test_the_key_follows_vidrestores_code_whatever_its_version_says(tmp_path, monkeypatch):
    """A checkout updated between two runs keeps its version number; its tracker may have changed."""
    from vidrestore.pipeline import analysis_store

    clip = make_clip(tmp_path / "a.mp4", [0, 40, 80])
    package = tmp_path / "vidrestore"
    (package / "faces").mkdir(parents=True)
    (package / "faces" / "track.py").write_text("MAX_GAP = 4\n")
    monkeypatch.setattr(analysis_store, "PACKAGE", package)
    try:
        analysis_store.code_digest.cache_clear()
        key = analysis_key(clip, PipelineConfig())
        (package / "faces" / "track.py").write_text("MAX_GAP = 5\n")
        analysis_store.code_digest.cache_clear()
        assert analysis_key(clip, PipelineConfig()) != key
    finally:
        analysis_store.code_digest.cache_clear()


def test_what_changes_the_analysis_changes_its_key_and_nothing_else_does(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", [0, 40, 80])
    key = analysis_key(clip, PipelineConfig())
    photo = str(tmp_path / "photo.jpg")
    pass_two = {"batch_size": 4, "colour_match": False, "keep_coarse": 2.0, "fade_frames": 0, "segment_frames": 10,
                "decode_once_mib": 0, "glue_threads": 1, "glue_device": "model", "drop_streams": True, "audio_codec": "aac",
                "mask": "ellipse", "parsing_weights": "p.pth", "parse_every": 3, "keep_fields": True, "double_rate": True,
                "decimate": True, "only_tracks": (1,), "only_people": (0,), "strength": 0.5, "track_strength": ((1, 0.2),),
                "person_strength": ((0, 0.3),), "grain": 0.4, "profile_fade": (), "encode": dataclasses.replace(PipelineConfig().encode, crf=12),
                "reference": photo, "track_references": ((1, photo),), "person_references": ((0, photo),), "faces_dir": "faces",
                "measure_strength": False, "measure_detail": False, "keep_detail": 0.5}
    assert pass_two.keys() == PASS_TWO_ONLY | NOT_IN_KEY
    for name, value in pass_two.items():
        assert analysis_key(clip, PipelineConfig(**{name: value})) == key, name
    pass_one = {"face_size": 256, "deinterlace": "off",
                "hybrid": True, "aligned": True, "light": "linear", "start": "0.04", "shots": ShotConfig(sigma=3.0),
                "tracker": TrackerConfig(detect_every=2), "detector": DetectorConfig(backend="dlib", min_score=0.5)}
    assert pass_one.keys() | pass_two.keys() | {"frame_rate", "end", "people"} == {f.name for f in dataclasses.fields(PipelineConfig)}
    for name, value in pass_one.items():
        needs = {"decimate": True} if name == "hybrid" else {}  # a pass 2 option, left out of the key
        assert analysis_key(clip, PipelineConfig(**{name: value}, **needs)) != key, name
    weights = [tmp_path / "one.pth", tmp_path / "another.pth"]
    for i, path in enumerate(weights):
        path.write_bytes(bytes([i]) * 100)
    by_weights = {analysis_key(clip, PipelineConfig(detector=DetectorConfig(backend="retinaface", weights=str(w)))) for w in weights}
    assert len(by_weights) == 2 and key not in by_weights  # RetinaFace's weights by their content
    copy = shutil.copy2(clip, tmp_path / "b.mp4")  # another file, even of the same bytes and time
    assert analysis_key(Path(copy), PipelineConfig()) != key
    data = bytearray(clip.read_bytes())
    data[-1] ^= 1
    stat = clip.stat()
    clip.write_bytes(bytes(data))  # rewritten in place at the same size and time
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert analysis_key(clip, PipelineConfig()) != key


def test_pass_one_reads_no_option_left_out_of_the_key():
    """The options left out of the key must be ones pass 1 never reads; read, a run changing them
    would take an analysis made for others."""
    read = set()
    for function in (analysis.analyse, analysis.reference_crops, analysis.references_of, timing.choose_deinterlace,
                     timing.excerpt_of, timing.played_at, PipelineConfig.light_of, PipelineConfig.reference_of):
        source = inspect.getsource(function)
        read |= set(re.findall(r"\bcfg\.(\w+)", source)) | set(re.findall(r"\bself\.(\w+)", source))
    assert read, "the functions' sources name what they read as cfg.X or self.X"
    assert not read & PASS_TWO_ONLY, sorted(read & PASS_TWO_ONLY)


def dry_run_then_run(clip: Path, out: Path, tmp_path: Path, *extra: str) -> tuple[dict, dict]:
    """Reports of a dry run, then of a run with ``extra`` options, both through the command line."""
    assert main([str(clip), "--dry-run", "--json", str(tmp_path / "dry.json"), "--quiet"]) == 0
    assert main([str(clip), str(out), "--model", "none", "--codec", "ffv1", "--json", str(tmp_path / "run.json"), "--quiet", *extra]) == 0
    return (json.loads((tmp_path / "dry.json").read_text()), json.loads((tmp_path / "run.json").read_text()))


def frames_of(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [f.image for f in reader]


def test_a_run_after_a_dry_run_takes_its_analysis_and_restores_as_if_it_had_analysed(sample_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDRESTORE_CACHE", str(tmp_path / "cache"))
    clip = Path(shutil.copy(sample_clip, tmp_path / "clip.mp4"))
    dry, run = dry_run_then_run(clip, tmp_path / "kept.mkv", tmp_path, "--strength", "1", "--crf", "20")
    assert any("this analysis is kept" in note for note in dry["notes"])
    assert any("not analysed again" in note for note in run["notes"])
    found = lambda report: [{k: t[k] for k in ("id", "person", "start", "end", "detected_frames", "median_face_px")} for t in report["tracks"]]
    assert found(run) == found(dry) and run["shots"] == dry["shots"] and dry["tracks"]
    assert dry["tracks"][0]["quality_db"] is not None and run["tracks"][0]["quality_db"] is None  # --strength 1 measures none
    assert main([str(clip), str(tmp_path / "fresh.mkv"), "--model", "none", "--codec", "ffv1", "--quiet", "--strength", "1",
                 "--reanalyse", "--json", str(tmp_path / "fresh.json")]) == 0
    fresh = json.loads((tmp_path / "fresh.json").read_text())
    assert not any("not analysed again" in note for note in fresh["notes"])
    kept, again = frames_of(tmp_path / "kept.mkv"), frames_of(tmp_path / "fresh.mkv")
    assert len(kept) == len(again) == 24
    assert all(np.array_equal(a, b) for a, b in zip(kept, again))
    assert not np.array_equal(kept[5], frames_of(clip)[5])  # the faces were restored (pasted), not the input copied


def test_an_analysis_serves_runs_that_want_no_more_than_it_measured_and_not_a_changed_input(sample_clip, tmp_path):
    store = AnalysisStore(tmp_path / "store")
    clip = Path(shutil.copy(sample_clip, tmp_path / "clip.mp4"))
    detector = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    first, kept = analysed(clip, PipelineConfig(), lambda: detector, store=store)
    assert kept is Kept.STORED and not first.faces and first.tracks[0].quality is not None and first.judged_at

    def unloaded():
        raise AssertionError("the detector was loaded for an analysis that was taken")

    assert analysed(clip, PipelineConfig(), unloaded, store=store)[1] is Kept.TAKEN
    with_faces, kept = analysed(clip, PipelineConfig(faces_dir=str(tmp_path / "faces")), lambda: detector, store=store)
    assert kept is Kept.STORED and with_faces.faces  # the kept one has no portraits
    plain, kept = analysed(clip, PipelineConfig(), lambda: detector, store=store)
    assert kept is Kept.TAKEN and not plain.faces  # one with portraits serves a run without, which sees none
    assert [t.quality for t in plain.tracks] == [t.quality for t in first.tracks]
    fixed, kept = analysed(clip, PipelineConfig(strength=1.0, measure_strength=False, keep_detail=0.5, measure_detail=False),
                           lambda: detector, store=store)
    assert kept is Kept.TAKEN  # --strength 1 --keep-detail 0.5 after a dry run that measured both
    assert all(t.quality is None and t.detail is None for t in fixed.tracks) and not fixed.judged_at
    assert [(t.start, t.end) for t in fixed.tracks] == [(t.start, t.end) for t in first.tracks]
    _, kept = analysed(clip, PipelineConfig(keep_detail=0.5), lambda: detector, store=store)
    assert kept is Kept.STORED  # detail measured with another share: measured again
    with VideoReader(clip) as reader:
        images = [f.image[:, ::-1].copy() for f in reader]
    make_clip(clip, [i * 40 for i in range(len(images))], size=images[0].shape[:2], images=images)  # replaced: mirrored
    mirrored, kept = analysed(clip, PipelineConfig(), lambda: detector, store=store)
    assert kept is Kept.STORED
    width = images[0].shape[1]
    assert np.allclose(mirrored.tracks[0].boxes[0, [2, 0]], width - first.tracks[0].boxes[0, [0, 2]], atol=12)


def test_reference_photos_are_cropped_for_the_run_that_takes_an_analysis(sample_clip, tmp_path):
    store = AnalysisStore(tmp_path / "store")
    detector = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    plain, _ = analysed(sample_clip, PipelineConfig(), lambda: detector, store=store)
    with VideoReader(sample_clip) as reader:
        face = next(iter(reader)).image
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(face).save(photo)
    cfg = PipelineConfig(reference=str(photo))
    taken, kept = analysed(sample_clip, cfg, lambda: detector, store=store)
    fresh = analysis.analyse(sample_clip, cfg, detector)
    assert kept is Kept.TAKEN and not plain.references
    assert taken.references.keys() == fresh.references.keys() == {t.track_id for t in fresh.tracks}
    assert all(np.array_equal(taken.references[i], fresh.references[i]) for i in fresh.references)
    bad = tmp_path / "not-a-photo.png"
    bad.write_text("text")
    with pytest.raises(Exception, match="cannot read the reference photo"):
        analysed(sample_clip, PipelineConfig(reference=str(bad)), lambda: detector, store=store)


def test_a_damaged_or_unwritable_store_costs_a_pass_never_the_run(sample_clip, tmp_path):
    detector = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    store = AnalysisStore(tmp_path / "store")
    _, kept = analysed(sample_clip, PipelineConfig(), lambda: detector, store=store)
    (written,) = store.folder.glob("*.safetensors")
    whole = written.read_bytes()
    for damaged in (whole[:100],  # cut short, as by a crash of the disk
                    (1 << 62).to_bytes(8, "little") + whole[8:],  # a header's length past any file's
                    whole.replace(b'"portraits\\": false', b'"portraits\\": [1,2]')):  # a field of another type
        written.write_bytes(damaged)
        again, kept = analysed(sample_clip, PipelineConfig(), lambda: detector, store=store)
        assert kept is Kept.STORED and again.tracks  # analysed again and kept anew
    _, kept = analysed(sample_clip, PipelineConfig(), lambda: detector, store=store)
    assert kept is Kept.TAKEN
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    analysis_, kept = analysed(sample_clip, PipelineConfig(), lambda: detector, store=AnalysisStore(blocked / "analyses"))
    assert kept is Kept.UNWRITABLE and analysis_.tracks
    # each run analysed the video again, and no report said why
    (note,) = analysis_notes(kept, dry_run=True)
    assert note.startswith("this analysis could not be kept: the cache folder") and "VIDRESTORE_CACHE" in note
    _, kept = analysed(sample_clip, PipelineConfig(), lambda: detector, store=AnalysisStore(store.folder, read=False))
    assert kept is Kept.STORED  # --reanalyse: analysed, and kept for the next run


def test_the_least_recently_used_analyses_go_past_the_cap(tmp_path):
    small = every_field_set()
    probe = AnalysisStore(tmp_path / "probe")
    assert probe.save("x", small, EVERY, Path("clip.mp4"))
    size = probe.path_of("x").stat().st_size
    store = AnalysisStore(tmp_path / "store", cap_bytes=2 * size + size // 2)  # room for two
    for second, key in enumerate("ab", start=1):
        assert store.save(key, small, EVERY, Path("clip.mp4"))
        os.utime(store.path_of(key), ns=(second * 10**9, second * 10**9))
    assert store.load("a", EVERY) is not None  # used: now the most recent
    assert store.save("c", small, EVERY, Path("clip.mp4"))
    assert sorted(p.stem for p in store.folder.glob("*.safetensors")) == ["a", "c"]
    killed, writing = store.folder / ".d.k2x9.part", store.folder / ".e.q8w1.part"  # a save killed an hour ago, one going on
    killed.write_bytes(b"half"), writing.write_bytes(b"half")
    os.utime(killed, (time.time() - 3700, time.time() - 3700))
    assert store.save("f", small, EVERY, Path("clip.mp4"))
    assert sorted(p.name for p in store.folder.iterdir()) == [".e.q8w1.part", "c.safetensors", "f.safetensors"]


def test_the_analyses_kept_are_listed_with_their_inputs_and_cleared(sample_clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIDRESTORE_CACHE", str(tmp_path / "cache"))
    clip = Path(shutil.copy(sample_clip, tmp_path / "clip.mp4"))
    assert main([str(clip), "--dry-run", "--quiet", "--json", str(tmp_path / "r.json")]) == 0
    tracks = len(json.loads((tmp_path / "r.json").read_text())["tracks"])
    capsys.readouterr()
    assert main(["analyses"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith(f"{clip.resolve()}  24 frames, {tracks} face track{'s' if tracks != 1 else ''}  ")
    assert listed[1].startswith(f"1 analysis, 0.0 MB, in {tmp_path / 'cache' / 'analyses'} ")
    assert main(["analyses", "clear"]) == 0
    assert capsys.readouterr().out.startswith(f"removed 1 file (0.0 MB) from {tmp_path / 'cache' / 'analyses'}")
    assert main(["analyses", "list"]) == 0
    assert capsys.readouterr().out.startswith("0 analyses, 0.0 MB")
