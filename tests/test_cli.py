"""End-to-end: the CLI on real clips, checked with PyAV; and every bad input as a one-line error."""

import io
import itertools
import json
import re
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import (
    GPMF_KEY,
    KLV_KEY,
    REPO,
    aligned_clip,
    audio_only,
    combing,
    covered_clip,
    data_clip,
    dressed_clip,
    make_clip,
    read_pts,
    resized_clip,
    shared_file,
    start_and_signal_when,
    stream_copied,
    weave_clip,
)
from PIL import Image

from vidrestore.cli import main
from vidrestore.models.precision import network_dtype, precision_suffix


def _run(*args) -> int:
    return main([str(a) for a in args])


def _flat_clip(path: Path, encoder: str, frames: int, pix_fmt: str = "yuv420p", step: int = 40) -> Path:
    """``frames`` flat grey 64x48 frames at 25 fps, each ``step`` levels brighter, encoded with ``encoder``."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(encoder, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), step * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _streams(path):
    with av.open(str(path)) as c:
        return [s.type for s in c.streams]


@pytest.mark.parametrize("detector", ["dlib", "retinaface"])
def test_end_to_end_on_a_real_clip(shared_data, tiny_model, tmp_path, detector):
    clip = shared_file(shared_data, "videos/keep_real_1.mp4")
    extra = []
    if detector == "retinaface":
        extra = ["--detector-weights", shared_file(shared_data, "weights/retinaface_mobilenet0.25_Final.pth")]
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    # --strength 1: the clip's clean face would otherwise be left as it is, and the video copied (--strength auto)
    code = _run(clip, out, "--model", tiny_model, "--detector", detector, *extra, "--preset", "fast", "--strength", "1",
                "--json", report, "--quiet", "--x264-preset", "ultrafast")
    assert code == 0
    rep = json.loads(report.read_text())
    assert rep["detector"].startswith(detector)
    longest = max(t["frames"] for t in rep["tracks"])
    assert longest >= 0.95 * rep["frames_in"]
    assert not any(s["monochrome"] for s in rep["shots"]) and not any(t["monochrome"] for t in rep["tracks"])
    assert read_pts(out) == read_pts(clip) and rep["encoder"]  # restored and encoded, every timestamp kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "r.json"]  # no temp files left


def test_a_sparse_detection_schedule_keeps_the_real_clip_one_track(shared_data, tmp_path):
    """--detect-every 12, above the frames a track waited for a detection: each track was closed
    before the next detection, and of keep_real_1's 248 frames only the last 19 were restored."""
    clip = shared_file(shared_data, "videos/keep_real_1.mp4")
    report = tmp_path / "r.json"
    assert _run(clip, "--dry-run", "--detector", "dlib", "--detect-every", "12", "--json", report, "--quiet", "--reanalyse") == 0
    tracks = json.loads(report.read_text())["tracks"]
    assert [(t["start"], t["end"]) for t in tracks] == [(0, 248)]


def test_a_clean_real_clip_keeps_its_faces_as_they_are_by_default_and_says_why(shared_data, tiny_model, tmp_path):
    """keep_real_1's face is sharp and close to three times the crop: FaceQualityNet finds it
    close to clean (about 38 dB), so restoring would only redraw it (--strength auto)."""
    clip = shared_file(shared_data, "videos/keep_real_1.mp4")
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    assert _run(clip, out, "--model", tiny_model, "--detector", "dlib", "--json", report, "--quiet") == 0
    rep = json.loads(report.read_text())
    assert rep["measure_strength"] and rep["tracks"][0]["quality_db"] > 36 and rep["tracks"][0]["strength"] < 0.25
    assert any("look little damaged" in n and "--strength 1" in n for n in rep["notes"])
    # and why a face this large can look clean: it is judged at the crop, three times smaller
    assert any(re.search(r"faces (2\.[5-9]|3\.[0-5]) times the crop\); damage is judged at a 128 px crop", n) for n in rep["notes"])
    assert read_pts(out) == read_pts(clip)


def _dvd_vob(path: Path, images: list[np.ndarray]) -> Path:
    """MPEG-2 video and AC-3 sound in a VOB, with the navigation packets FFmpeg's DVD muxer writes
    (and reads back as a data stream, as from a DVD's own VOB files)."""
    with av.open(str(path), "w", format="dvd") as out:
        video = out.add_stream("mpeg2video", rate=25)
        video.height, video.width = images[0].shape[:2]
        video.pix_fmt = "yuv420p"
        sound = out.add_stream("ac3", rate=48000)
        sound.layout = "stereo"
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for start in range(0, len(images) * 1920, 1536):
            silence = av.AudioFrame.from_ndarray(np.zeros((2, 1536), np.float32), format="fltp", layout="stereo")
            silence.sample_rate, silence.pts = 48000, start
            out.mux(sound.encode(silence))
        out.mux(sound.encode(None))
    return path


def test_a_dvds_navigation_packets_are_left_out_and_named(sample_clip, tmp_path):
    """FFmpeg reads a VOB's navigation packets (PCI, DSI) as a data stream that no muxer takes: every
    DVD was refused unless --drop-streams left them out. They address the disc's sectors, which no
    output keeps; they are left out, and the note says so, also from VOBs joined end to end, whose
    copy timed on failed to take them."""
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        images = [f.image for f in r][:8]
    vob = _dvd_vob(tmp_path / "VTS_01_1.VOB", images)
    with av.open(str(vob)) as c:
        assert (c.streams[0].type, c.streams[0].name) == ("data", "dvd_nav_packet")
    joined = tmp_path / "joined.vob"
    joined.write_bytes(2 * vob.read_bytes())
    for src, name, frames in [(vob, "restored.mkv", 8), (vob, "restored.vob", 8), (joined, "joined.mkv", 16)]:
        report = tmp_path / f"{name}.json"
        assert _run(src, tmp_path / name, "--model", "none", "--quiet", "--strength", "1", "--json", report) == 0
        assert "left out, as they address the sectors of a DVD, which the output is not: data stream 0 (dvd_nav_packet)" in \
            json.loads(report.read_text())["notes"]
        with av.open(str(tmp_path / name)) as c:
            assert [s.type for s in c.streams] == ["video", "audio"] and sum(1 for _ in c.decode(video=0)) == frames


def _subtitle_cues(path):
    with av.open(str(path)) as c:
        return [(bytes(p), p.pts) for p in c.demux(c.streams.subtitles[0]) if p.size and bytes(p).strip(b"\x00")]


def test_a_declared_sound_stream_that_holds_nothing_is_left_out_and_named(sample_clip, tmp_path):
    """A broadcast capture's audio PID that is declared but never filled has no sample rate, and
    no muxer takes it: every output was refused as unable to hold it ("write a .mkv", into a .mkv)."""
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        images = [f.image for f in r][:8]
    capture = tmp_path / "capture.ts"
    with av.open(str(capture), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.height, video.width = images[0].shape[:2]
        video.pix_fmt = "yuv420p"
        out.add_stream("mp2", rate=48000)  # declared, never given a frame
        for image in [*images, None]:
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24") if image is not None else None))
    with av.open(str(capture)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"] and not c.streams.audio[0].codec_context.sample_rate
    for name, options in [("restored.mkv", ["--strength", "1"]), ("copied.mp4", ["--strength", "0"])]:
        report = tmp_path / f"{name}.json"
        assert _run(capture, tmp_path / name, "--model", "none", "--quiet", "--json", report, *options) == 0
        assert "left out, as they hold no sound: audio stream 1 (mp3)" in json.loads(report.read_text())["notes"]
        with av.open(str(tmp_path / name)) as c:
            assert [s.type for s in c.streams] == ["video"] and sum(1 for _ in c.decode(video=0)) == 8


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_subtitles_and_audio_survive_a_restoration(sample_clip, tmp_path, suffix):
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        images = [f.image for f in r]
    h, w = images[0].shape[:2]
    cues = [(0, "first line"), (400, "second line"), (800, "third line")]
    clip = make_clip(tmp_path / f"subs{suffix}", [i * 40 for i in range(len(images))], size=(h, w), images=images,
                     audio=True, subtitles=cues)
    out, report = tmp_path / f"out{suffix}", tmp_path / "r.json"
    assert _run(clip, out, "--model", "none", "--detector", "dlib", "--quiet", "--x264-preset", "ultrafast", "--json", report) == 0
    assert json.loads(report.read_text())["tracks"]  # a face was found, so the video was re-encoded, not copied
    assert _streams(out) == _streams(clip) == ["video", "audio", "subtitle"]
    assert _subtitle_cues(out) == _subtitle_cues(clip) and len(_subtitle_cues(clip)) == 3
    assert read_pts(out) == read_pts(clip)


def test_sample_clip_keeps_audio_and_restores_faces(sample_clip, tiny_model, tmp_path):
    out, preview = tmp_path / "o.mp4", tmp_path / "side.mp4"
    assert _run(sample_clip, out, "--model", tiny_model, "--preset", "fast", "--quiet", "--preview", preview) == 0
    assert _streams(out) == _streams(sample_clip) == ["video", "audio"]
    assert read_pts(out) == read_pts(sample_clip) == read_pts(preview)
    with av.open(str(sample_clip)) as a, av.open(str(preview)) as b:
        assert b.streams.video[0].width == 2 * a.streams.video[0].width
    with av.open(str(out)) as c:  # provenance: archives can tell restored faces from original ones
        assert c.metadata["comment"].startswith("faces restored by vidrestore") and "tiny" in c.metadata["comment"]


def test_a_restored_avi_keeps_every_frame_on_its_time_and_all_its_sound(sample_clip, tmp_path):
    """Given the input's tick, FFmpeg wrote AVI as a 600 fps stream of mostly empty frames; and AAC's
    priming packet (-21 ms) moved every stream later, which put the second picture a frame late
    and added a frame. AVI is written at the frame rate now where the video keeps one, and only
    the sound is moved to start at 0."""
    out = tmp_path / "o.avi"
    assert _run(sample_clip, out, "--model", "none", "--quiet") == 0
    with av.open(str(sample_clip)) as a, av.open(str(out)) as b:
        assert b.streams.video[0].average_rate == a.streams.video[0].average_rate
        assert [round(f.time, 3) for f in a.decode(video=0)] == [round(f.time, 3) for f in b.decode(video=0)]
    with av.open(str(sample_clip)) as a, av.open(str(out)) as b:
        assert sum(p.size for p in a.demux(a.streams.audio[0])) == sum(p.size for p in b.demux(b.streams.audio[0]))
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:  # a varying rate keeps its times (on the grid, the encoder refused them)
        faces = [f.image for f in r][:8]
    varying = make_clip(tmp_path / "vfr.mp4", [0, 40, 80, 150, 190, 300, 340, 400], size=faces[0].shape[:2], images=faces, audio=True)
    assert _run(varying, tmp_path / "vfr.avi", "--model", "none", "--quiet") == 0
    with av.open(str(varying)) as a, av.open(str(tmp_path / "vfr.avi")) as b:
        assert [round(f.time, 3) for f in a.decode(video=0)] == [round(f.time, 3) for f in b.decode(video=0)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_run_stopped_by_a_signal_leaves_nothing_behind(sample_clip, tiny_model, tmp_path, sig):
    """A scheduler's SIGTERM (``docker stop``, SLURM; SIGHUP takes the same path) and Ctrl-C each end
    the run with one line and 128 + the signal's number, and the half-written temp file is removed."""
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "vidrestore.cli", str(sample_clip), str(out / "o.mp4"), "--model", str(tiny_model), "--quiet"]
    # a file beside the output's lock (held from before the model loads): pass 2 has begun
    proc = start_and_signal_when(cmd, lambda: any(p.suffix != ".lock" for p in out.iterdir()), sig)
    lines = proc.stderr.read().decode().strip().splitlines()
    assert proc.returncode == 128 + sig
    assert lines[-1] == (f"vidrestore: stopped by {sig.name}; no partial output was left" if sig != signal.SIGINT
                         else "vidrestore: interrupted; no partial output was left")
    assert list(out.iterdir()) == []


def test_aligned_face_crops_are_restored_whole(sample_clip, tiny_model, tmp_path):
    """--aligned: the whole frame is the face, so every pixel is restored, the corners too (the
    feathered mask of a detected face leaves them as they were)."""
    clip = aligned_clip(sample_clip, tmp_path / "aligned.mp4", 128)
    out, report = tmp_path / "out.mkv", tmp_path / "r.json"
    assert _run(clip, out, "--aligned", "--model", tiny_model, "--preset", "fast", "--codec", "ffv1", "--quiet", "--json", report) == 0
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        pairs = [(x.to_ndarray(format="rgb24").astype(int), y.to_ndarray(format="rgb24").astype(int))
                 for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True)]
    corners = (slice(None, 8), slice(None, 8))
    assert min(np.abs(x - y)[corners].mean() for x, y in pairs) > 5
    tracks = json.loads(report.read_text())["tracks"]
    assert [(t["start"], t["end"], t["detected_frames"]) for t in tracks] == [(0, len(pairs), len(pairs))]


def test_black_and_white_footage_comes_out_black_and_white(sample_clip, tiny_model, tmp_path):
    import numpy as np

    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        grey = [np.repeat(f.image.mean(2, keepdims=True).round().astype(np.uint8), 3, 2) for f in r][:12]
    h, w = grey[0].shape[:2]
    clip = make_clip(tmp_path / "bw.mp4", [i * 40 for i in range(12)], size=(h, w), images=grey)
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    assert _run(clip, out, "--model", tiny_model, "--preset", "fast", "--quiet", "--json", report) == 0
    assert json.loads(report.read_text())["tracks"]
    with av.open(str(out)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int)
    assert np.abs(frames - np.stack(grey)).mean() > 1  # the face was restored
    spread = int((frames.max(3) - frames.min(3)).max())
    assert spread <= 4, f"channels differ by up to {spread} levels"  # no colour crept in


@pytest.mark.parametrize("kind", ["declared", "undeclared", "telecined"])
def test_interlaced_footage_is_deinterlaced_unless_asked_not_to(interlaced_clip, telecined_clip, sample_clip, tmp_path, kind):
    """Declared top-field-first fields, bottom-field-first ones flagged progressive (found by idet),
    and telecined film (found by field matching, and field-matched rather than deinterlaced)."""
    import numpy as np

    from vidrestore.io import VideoReader, probe

    clip = {"declared": interlaced_clip, "telecined": telecined_clip}.get(kind) or \
        weave_clip(tmp_path / "bff.mp4", sample_clip, top_first=False, declare=False)
    comb, frames = {}, {}
    for mode in ("auto", "off"):
        out, report = tmp_path / f"{mode}.mp4", tmp_path / f"{mode}.json"
        assert _run(clip, out, "--model", "none", "--deinterlace", mode, "--quiet", "--json", report) == 0
        notes = json.loads(report.read_text())["notes"]
        said = "inverse telecine" if kind == "telecined" else "deinterlaced with bwdif"
        assert json.loads(report.read_text())["tracks"] and any(said in n for n in notes) == (mode == "auto"), notes
        assert read_pts(out) == read_pts(clip) and _streams(out) == ["video", "audio"]
        with av.open(str(out)) as c:
            frames[mode] = [f.to_ndarray(format="rgb24").astype(float) for f in c.decode(video=0)]
        comb[mode] = np.mean([combing(f) for f in frames[mode]])
    assert probe(tmp_path / "auto.mp4").field_order == "progressive"
    if kind == "telecined":  # three frames in five were whole film frames already: the worst frame tells
        worst = {mode: max(combing(f) for f in frames[mode]) for mode in frames}
        assert worst["auto"] < 0.4 * worst["off"], worst
        return
    assert comb["auto"] < 0.4 * comb["off"], comb
    # the right field order keeps the earlier field (frame i); the wrong one the later (frame i+1, moved)
    with VideoReader(sample_clip) as r:
        sources = [f.image.astype(float) for f in r]
    to_earlier = np.mean([np.abs(o - s).mean() for o, s in zip(frames["auto"], sources[:-1])])
    to_later = np.mean([np.abs(o - np.roll(s, 4, axis=1)).mean() for o, s in zip(frames["auto"], sources[1:])])
    assert to_earlier < 0.7 * to_later, (to_earlier, to_later)


def test_ten_bit_footage_keeps_its_depth_around_the_faces(sample_clip, tmp_path):
    """A 10-bit source whose frames hold a ramp finer than one 8-bit level: the restored ffv1
    master is 10-bit and keeps that ramp, instead of a frame flattened to 8 bits."""
    import numpy as np

    from vidrestore.io import VideoReader, probe

    with VideoReader(sample_clip) as r:
        faces = [f.image for f in r][:8]
    h, w = faces[0].shape[:2]
    ramp = np.linspace(0, 250, w)[None, :, None]  # under one 8-bit level (257) across the frame
    deep = [(f.astype(np.float64) * 257 * 0.9 + ramp).round().astype(np.uint16) for f in faces]
    clip = make_clip(tmp_path / "deep.mkv", [i * 40 for i in range(8)], size=(h, w), images=deep,
                     pix_fmt="yuv444p10le", x264_params="qp=0")
    out, report = tmp_path / "o.mkv", tmp_path / "r.json"
    assert _run(clip, out, "--model", "none", "--codec", "ffv1", "--quiet", "--json", report) == 0
    assert json.loads(report.read_text())["tracks"]  # faces were pasted into these frames
    assert probe(out).pix_fmt == "yuv444p10le"
    with VideoReader(clip, keep_depth=True) as a, VideoReader(out, keep_depth=True) as b:
        pairs = [(x.image.astype(int), y.image.astype(int)) for x, y in zip(a, b)]
    background = np.s_[:, : w // 8]  # a strip the faces do not reach
    error = np.mean([np.abs(x[background] - y[background]).mean() for x, y in pairs])
    assert error < 20, f"mean error {error:.1f}"  # 16-bit units: one 8-bit level is 257, one 10-bit level 64


@pytest.mark.parametrize("source, rate, output, options", [
    (".mp4", Fraction(25), ".mp4", ()),
    (".ts", Fraction(30000, 1001), ".ts", ()),  # Annex B in and out; the output counts time in other ticks
    (".mkv", Fraction(25), ".mov", ("--segment-frames", "5")),
    (".mp4", Fraction(25), ".mkv", ("--codec", "libsvtav1")),  # into AV1's metadata OBUs
    (".av1.mkv", Fraction(25), ".mp4", ()),  # from them
])
def test_hdr10_plus_video_keeps_each_frames_dynamic_metadata(sample_clip, tmp_path, source, rate, output, options):
    """A Samsung phone's HDR10+ video came back as plain HDR10: x265 (and SVT-AV1) here write no ST
    2094-40 metadata, so each frame's own tone-mapping metadata was lost without a word."""
    from conftest import graded_clip, hdr10_plus_clip, hdr10_plus_metadata

    from vidrestore.io.linear import Light

    encoder = "libsvtav1" if source.startswith(".av1") else "libx265"
    src = hdr10_plus_clip(tmp_path / f"phone{source}", graded_clip(tmp_path / "pq.mkv", sample_clip, Light.PQ), rate, encoder)
    before = hdr10_plus_metadata(src)
    assert len(before) == 8 and len(set(before)) == 8 and all(before)
    out, report = tmp_path / f"out{output}", tmp_path / "r.json"
    assert _run(src, out, "--model", "none", "--quiet", "--json", report, *options) == 0
    written = "libsvtav1" if "libsvtav1" in options else "libx265"
    assert json.loads(report.read_text())["encoder"].startswith(written) and json.loads(report.read_text())["tracks"]
    assert hdr10_plus_metadata(out) == before
    assert not [n for n in json.loads(report.read_text())["notes"] if "HDR10+" in n]


@pytest.mark.parametrize("raw, codec, why", [
    (False, "libx264", "libx264 does not write it; --codec libx265 or libsvtav1 keeps it"),
    (True, "auto", "a raw stream has no timestamps to match its frames by; remux it into an .mp4 or .mkv first"),
])
def test_hdr10_plus_metadata_that_cannot_be_carried_is_named_in_the_report(sample_clip, tmp_path, raw, codec, why):
    from conftest import graded_clip, hdr10_plus_clip, hdr10_plus_metadata

    from vidrestore.io.linear import Light

    src = hdr10_plus_clip(tmp_path / "phone.ts", graded_clip(tmp_path / "pq.mkv", sample_clip, Light.PQ))
    src = stream_copied(tmp_path / "phone.hevc", src) if raw else src
    out, report = tmp_path / "out.mkv", tmp_path / "r.json"
    assert _run(src, out, "--model", "none", "--quiet", "--json", report, "--codec", codec) == 0
    assert json.loads(report.read_text())["encoder"].startswith("libx26") and hdr10_plus_metadata(out) == [b""] * 8
    assert (f"the input is HDR10+: its dynamic metadata (SMPTE ST 2094-40) is not carried into the re-encoded video ({why}), "
            "which players tone-map by its HDR10 static metadata alone") in json.loads(report.read_text())["notes"]


def _master_of(sample_clip: Path, path: Path, codec: str, pix_fmt: str, options: dict[str, str] | None = None) -> Path:
    """The sample clip's first 6 frames in an editor's master codec; with alpha, half-transparent
    stripes through the faces."""
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        faces = [f.image for f in r][:6]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.height, stream.width = faces[0].shape[:2]
        stream.pix_fmt, stream.options = pix_fmt, options or {}
        for i, image in enumerate(faces):
            alpha = np.full(image.shape[:2] + (1,), 255, np.uint8)
            alpha[:, ::2] = 128
            frame = av.VideoFrame.from_ndarray(np.concatenate([image, alpha], 2), format="rgba").reformat(format=pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_a_prores_master_comes_back_as_prores_and_the_report_says_how_the_video_was_encoded(sample_clip, tmp_path):
    """Without --codec, an editor's ProRes LT reel came back as H.264: a master is now written in its
    own codec and profile. Into an .mp4 (delivery) it is 4:2:0 HEVC (x265, as for any 10-bit source; 4:2:2
    HEVC plays almost nowhere), and a note says so."""
    from vidrestore.io import probe

    reel = _master_of(sample_clip, tmp_path / "reel.mov", "prores_ks", "yuv422p10le", {"profile": "1"})
    for name, encoder in [("o.mov", "prores_ks, yuv422p10le, profile LT"), ("o.mp4", "libx265, yuv420p10le, crf 18, preset medium")]:
        report = tmp_path / f"{name}.json"
        assert _run(reel, tmp_path / name, "--model", "none", "--quiet", "--json", report) == 0
        written = json.loads(report.read_text())
        assert written["tracks"] and written["encoder"] == encoder
        assert any("write a .mkv, .mov or .mxf to keep a master" in n for n in written["notes"]) == (name == "o.mp4")
    assert (probe(tmp_path / "o.mov").codec, probe(tmp_path / "o.mov").profile) == ("prores", "LT")
    assert (probe(tmp_path / "o.mp4").codec, probe(tmp_path / "o.mp4").pix_fmt) == ("hevc", "yuv420p10le")


def test_a_png_render_with_alpha_keeps_it_in_a_mov_and_the_report_says_where_it_is_left_out(sample_clip, tmp_path):
    """A PNG QuickTime render (an editor's lossless export, with alpha) came back as H.264 without
    its alpha and without a word. Into a .mov it stays PNG, its alpha unchanged where faces were
    restored; into an .mp4 the alpha is left out and the report says so."""
    render = _master_of(sample_clip, tmp_path / "render.mov", "png", "rgba")
    for name in ("o.mov", "o.mp4"):
        report = tmp_path / f"{name}.json"
        assert _run(render, tmp_path / name, "--model", "none", "--strength", "1", "--quiet", "--json", report) == 0
        written = json.loads(report.read_text())
        assert written["tracks"] and written["encoder"].startswith("png, rgba" if name == "o.mov" else "libx264, yuv420p")
        assert any("alpha channel (transparency) was left out" in n for n in written["notes"]) == (name == "o.mp4")
    with av.open(str(render)) as a, av.open(str(tmp_path / "o.mov")) as b:
        pairs = list(zip(a.decode(video=0), b.decode(video=0), strict=True))
    assert all(np.array_equal(x.to_ndarray(format="rgba")[..., 3], y.to_ndarray(format="rgba")[..., 3]) for x, y in pairs)


def test_a_cmyk_jpeg_is_read_in_its_colours_and_no_transparency_is_said_to_be_lost(sample_clip, tmp_path):
    """FFmpeg decodes a CMYK JPEG (a print shop's scan) as RGB with an opaque alpha plane, and the
    report said its transparency was left out; JPEG stores none."""
    with av.open(str(sample_clip)) as c:
        picture = next(c.decode(video=0)).to_image()
    photo = tmp_path / "scan.jpg"
    picture.convert("CMYK").save(photo, quality=95)
    seen = np.asarray(Image.open(photo).convert("RGB"), dtype=float)
    for name in ("o.jpg", "o.mp4"):
        report = tmp_path / f"{name}.json"
        assert _run(photo, tmp_path / name, "--model", "none", "--quiet", "--json", report) == 0
        assert not any("alpha" in note for note in json.loads(report.read_text())["notes"])
    restored = np.asarray(Image.open(tmp_path / "o.jpg").convert("RGB"), dtype=float)
    assert np.abs(restored - seen).mean() < 3  # 1.7 levels: the colours are the scan's, through one more JPEG


def test_a_dvds_program_stream_is_restored_into_one_with_its_sound_and_timing(sample_clip, tmp_path, capsys):
    """Codec auto wrote H.264 into a program stream, which DVD players do not decode, and whose
    segments came back with unstamped frames: their join failed after the whole restoration, and
    FFmpeg could not find the video of the file when it was written. MPEG-2 is written now, and
    H.264 is refused before any work."""
    import numpy as np

    from vidrestore.io import VideoReader, probe

    with VideoReader(sample_clip) as r:
        faces = [f.image for f in r][:8]
    vob = tmp_path / "title.vob"
    with av.open(str(vob), "w", format="vob") as out:
        video = out.add_stream("mpeg2video", rate=25)
        video.height, video.width = faces[0].shape[:2]
        sound = out.add_stream("mp2", rate=48000)
        sound.layout = "stereo"
        for i, image in enumerate(faces):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 1920), np.int16), format="s16", layout="stereo")
            samples.sample_rate, samples.pts = 48000, i * 1920
            out.mux(sound.encode(samples))
        out.mux(video.encode())
        out.mux(sound.encode())
    out_path, report = tmp_path / "restored.mpg", tmp_path / "r.json"
    assert _run(vob, out_path, "--model", "none", "--codec", "libx264", "--quiet") != 0
    assert "not read back by FFmpeg" in capsys.readouterr().err and not out_path.exists()
    assert _run(vob, out_path, "--model", "none", "--quiet", "--json", report) == 0
    assert json.loads(report.read_text())["tracks"]
    assert probe(out_path).codec == "mpeg2video"
    assert _streams(out_path) == ["video", "audio"]
    with av.open(str(vob)) as a, av.open(str(out_path)) as b:
        assert [f.time for f in a.decode(video=0)] == [f.time for f in b.decode(video=0)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_only_the_chosen_track_is_restored(two_face_clip, tiny_model, tmp_path):
    import numpy as np

    dry = tmp_path / "dry.json"
    assert _run(two_face_clip, "--dry-run", "--quiet", "--json", dry) == 0
    tracks = json.loads(dry.read_text())["tracks"]
    assert len(tracks) == 2 and all(t["selected"] for t in tracks)
    right = max(tracks, key=lambda t: t["start"])["id"]  # the face on the right enters at frame 3

    out, report = tmp_path / "o.mkv", tmp_path / "r.json"
    assert _run(two_face_clip, out, "--model", tiny_model, "--preset", "fast", "--codec", "ffv1", "--tracks", str(right),
                "--keep-coarse", "0", "--quiet", "--json", report) == 0  # the untrained network's faces whole
    assert [t["selected"] for t in json.loads(report.read_text())["tracks"]] == [t["id"] == right for t in tracks]

    def frames(path):
        with av.open(str(path)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int)

    copied = tmp_path / "copied.mkv"  # the same frames through the same RGB round trip, nothing restored
    assert _run(two_face_clip, copied, "--model", "none", "--codec", "ffv1", "--tracks", str(right), "--quiet") == 0
    reference, restored = frames(copied), frames(out)
    left = reference.shape[2] // 2 - 8  # chroma resampling reaches a few pixels across the middle
    assert np.array_equal(restored[:, :, :left], reference[:, :, :left])  # the other face is left alone
    assert np.abs(restored[:, :, left:] - reference[:, :, left:]).mean() > 0.5

    missing = tmp_path / "m.mp4"
    assert _run(two_face_clip, missing, "--model", "none", "--tracks", "7", "--quiet") == 2
    assert not missing.exists()


def test_a_persons_tracks_are_chosen_together_in_every_shot(three_shot_clip, tmp_path, capsys):
    dry, chosen, both = tmp_path / "dry.json", tmp_path / "chosen.json", tmp_path / "both.json"
    assert _run(three_shot_clip, "--dry-run", "--json", dry) == 0
    tracks = json.loads(dry.read_text())["tracks"]
    first, middle, last = tracks
    assert last["person"] == first["id"] != last["id"]  # the same face after a cut back: one person
    people = len({t["person"] for t in tracks})
    assert f"3 face tracks of {people} {'person' if people == 1 else 'people'};" in capsys.readouterr().err
    listed = json.loads(dry.read_text())["people"]
    assert [p["id"] for p in listed] == sorted({t["person"] for t in tracks}) and listed[0]["tracks"][-1] == last["id"]
    assert sum(p["frames"] for p in listed) == sum(t["frames"] for t in tracks)

    assert _run(three_shot_clip, "--dry-run", "--quiet", "--json", chosen, "--people", str(first["id"])) == 0
    selected = [t["selected"] for t in json.loads(chosen.read_text())["tracks"]]
    assert selected[0] and selected[2] and selected == [t["person"] == first["id"] for t in tracks]
    assert _run(three_shot_clip, "--dry-run", "--quiet", "--json", both, "--people", str(first["id"]),
                "--tracks", str(middle["id"])) == 0
    assert all(t["selected"] for t in json.loads(both.read_text())["tracks"])
    assert _run(three_shot_clip, "--dry-run", "--quiet", "--people", "99") == 2
    assert "no person 99 in this video" in capsys.readouterr().err

    # strength and reference for a person: every track of theirs, unless a track has its own
    from vidrestore.io import VideoReader

    with VideoReader(three_shot_clip) as r:
        photo = _photo(next(iter(r)).image, tmp_path / "photo.jpg")
    person, tuned = first["id"], tmp_path / "tuned.json"
    assert _run(three_shot_clip, "--dry-run", "--quiet", "--json", tuned, "--strength", f"p{person}=0.3",
                "--strength", f"{last['id']}=0.8", "--reference", f"p{person}={photo}") == 0
    rows = json.loads(tuned.read_text())["tracks"]
    assert [r["strength"] for r in rows] == [0.8 if t is last else 0.3 if t["person"] == person else 1.0 for t in tracks]
    assert [r["reference"] for r in rows] == [str(photo) if t["person"] == person else None for t in tracks]
    assert _run(three_shot_clip, "--dry-run", "--quiet", "--strength", "p99=0.5") == 2
    assert "no person 99 in this video" in capsys.readouterr().err


def test_each_tracks_best_face_is_written_to_tell_who_is_who(three_shot_clip, tmp_path, capsys):
    import cv2

    folder, report = tmp_path / "faces", tmp_path / "r.json"
    assert _run(three_shot_clip, "--dry-run", "--quiet", "--json", report, "--faces", folder) == 0
    tracks = json.loads(report.read_text())["tracks"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(f"person{t['person']:04d}_track{t['id']:04d}.jpg" for t in tracks),
                                                                "people.jpg"])
    people = len({t["person"] for t in tracks})
    assert cv2.imread(str(folder / "people.jpg")).shape == (128 * people, 9 * 128, 3)  # a row per person
    faces = [cv2.imread(t["face"]).astype(int) for t in tracks]
    assert all(face.shape == (128, 128, 3) for face in faces)
    first, middle, last = faces
    assert abs(first.mean() - last.mean()) < 3 and middle.mean() < first.mean() / 2  # one face; then a take at a third of its light
    (tmp_path / "file").write_text("")
    assert _run(three_shot_clip, "--dry-run", "--quiet", "--faces", tmp_path / "file") == 4
    assert "that is a file" in capsys.readouterr().err
    # an earlier run's faces this run does not write were left among its own, taken for its tracks
    written = sorted(p.name for p in folder.iterdir())
    assert _run(three_shot_clip, "--dry-run", "--quiet", "--faces", folder) == 0  # the same faces again
    (folder / "person0009_track0042.jpg").write_bytes(b"another video's face")
    (folder / "notes.txt").write_text("the user's")
    assert _run(three_shot_clip, "--dry-run", "--quiet", "--faces", folder) == 4
    assert (f"--faces {folder} holds faces this run does not write (person0009_track0042.jpg), of an earlier run"
            in capsys.readouterr().err)
    assert _run(three_shot_clip, "--dry-run", "--quiet", "--faces", folder, "--overwrite") == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted([*written, "notes.txt"])


def test_faces_on_a_disk_that_fills_up_leave_no_half_written_face(three_shot_clip, tmp_path, capsys, monkeypatch):
    """The second face's JPEG meets a full disk half-way: the run fails naming why, and no half
    JPEG is left under a face's name (a later --tracks pick, or a viewer, took it for the face)."""
    import errno
    from pathlib import Path

    written = []
    write_bytes = Path.write_bytes

    def filling_up(path, data):
        if written:
            write_bytes(path, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", filling_up)
    folder = tmp_path / "faces"
    assert _run(three_shot_clip, "--dry-run", "--quiet", "--faces", folder) == 4
    assert f"cannot write the faces into {folder}: No space left on device" in capsys.readouterr().err
    (whole,) = [p for p in folder.iterdir()]  # the first face, written whole; no temp file left either
    assert whole.name.startswith("person") and whole.read_bytes().endswith(b"\xff\xd9")


def test_strength_blends_restored_faces_with_the_originals_per_track(two_face_clip, tiny_model, tmp_path, capsys):
    import numpy as np

    def frames(path):
        with av.open(str(path)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(float)

    def restore(name, *options):
        out, report = tmp_path / f"{name}.mkv", tmp_path / f"{name}.json"
        code = _run(two_face_clip, out, "--model", tiny_model, "--preset", "fast", "--codec", "ffv1", "--keep-coarse", "0", "--quiet",
                    "--json", report, *options)  # the untrained network's faces whole, which differ plainly
        return code, out, (json.loads(report.read_text()) if report.exists() else None)

    _, full, report = restore("full")
    _, half, _ = restore("half", "--strength", "0.5")
    original = frames(two_face_clip)
    changed = np.abs(frames(full) - original) > 12  # the pasted faces (outside them: a level or two of RGB round trip)
    ratio = np.abs(frames(half) - original)[changed].mean() / np.abs(frames(full) - original)[changed].mean()
    assert changed.mean() > 0.01 and 0.4 < ratio < 0.6, ratio

    right = max(report["tracks"], key=lambda t: t["start"])["id"]
    left = min(report["tracks"], key=lambda t: t["start"])["id"]
    _, mixed, mixed_report = restore("mixed", "--strength", f"{left}=0")
    _, only_right, _ = restore("right", "--tracks", str(right))
    assert [t["selected"] for t in mixed_report["tracks"]] == [t["id"] == right for t in report["tracks"]]
    assert np.array_equal(frames(mixed), frames(only_right))  # strength 0: the track is not even restored

    _, _none, none_report = restore("none", "--strength", "0")
    assert "strength above 0" in none_report["notes"][0]
    capsys.readouterr()
    assert restore("bad", "--strength", "1.5")[0] == 2  # the flag's misuse, not a broken config file
    assert "--strength: expected a value from 0 to 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        restore("bad", "--strength", "left=1")


def _photo(frame, path, exif_rotated: bool = False):
    """Save an RGB frame as a JPEG; ``exif_rotated``: stored sideways with an EXIF orientation tag
    that turns it upright, as phone cameras do."""
    image = Image.fromarray(np.rot90(frame) if exif_rotated else frame)
    exif = Image.Exif()
    if exif_rotated:
        exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image.save(path, exif=exif)
    return path


def test_a_reference_photo_gives_the_track_its_identity(sample_clip, tmp_path, capsys):
    import numpy as np
    import torch

    from vidrestore.io import VideoReader
    from vidrestore.models.flipnet import Flipnet, load_config, save_flipnet

    torch.manual_seed(0)
    model = Flipnet(load_config("tiny"))
    for layer in (model.conv_out, model.identity_proj[-1]):  # zero-initialised: identity would change nothing
        torch.nn.init.normal_(layer.weight, std=0.2)
    weights = tmp_path / "ident.safetensors"
    save_flipnet(model, weights)
    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r]
    # another face for the reference: the sample's, mirrored and warmer
    other = np.ascontiguousarray(frames[5][:, ::-1]) // 2 + np.array([100, 60, 40], np.uint8)
    photo = _photo(np.repeat(np.repeat(other, 2, 0), 2, 1), tmp_path / "photo.jpg", exif_rotated=True)

    def restore(name, *options):
        out, report = tmp_path / f"{name}.mkv", tmp_path / f"{name}.json"
        code = _run(sample_clip, out, "--model", weights, "--preset", "fast", "--codec", "ffv1", "--quiet", "--json", report, *options)
        if code:
            return code, None, None
        with av.open(str(out)) as c:
            return code, np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int), json.loads(report.read_text())

    _, own, _ = restore("own")
    _, anchored, report = restore("anchored", "--reference", photo)
    assert [t["reference"] for t in report["tracks"]] == [str(photo)]
    assert np.abs(anchored - own).mean() > 0.05  # deterministic runs: any difference is the identity taken from the photo

    capsys.readouterr()
    grey = _photo(np.full((200, 200, 3), 128, np.uint8), tmp_path / "grey.jpg")
    assert restore("grey", "--reference", grey)[0] == 2 and "no face found in the reference photo" in capsys.readouterr().err
    assert restore("missing", "--reference", tmp_path / "none.jpg")[0] == 2 and "cannot read" in capsys.readouterr().err
    assert restore("unknown", "--reference", f"9={photo}")[0] == 2 and "no track 9" in capsys.readouterr().err


def test_a_reference_photo_that_cannot_serve_is_refused_before_the_video_is_read(sample_clip, tmp_path, capsys, monkeypatch):
    """A missing reference photo, or one without a face, was named only after pass 1 had read the
    whole video: minutes, or an hour, of a film on a CPU."""
    from vidrestore.pipeline import analysis

    def no_reading(*args, **kwargs):
        raise AssertionError("the video was read before the reference photo was checked")

    monkeypatch.setattr(analysis, "VideoReader", no_reading)
    grey = _photo(np.full((200, 200, 3), 128, np.uint8), tmp_path / "grey.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    for photo, said in [(grey, "no face found in the reference photo"),  # the reasons were exception names
                        (tmp_path / "none.jpg", f"cannot read the reference photo {tmp_path / 'none.jpg'}: No such file or directory"),
                        (text, f"cannot read the reference photo {text}: not a picture Pillow reads (JPEG, PNG, TIFF, WebP...)")]:
        _one_line_error(capsys, _run(sample_clip, tmp_path / "out.mp4", "--model", "none", "--reference", photo), 2, said)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.jpg", "notes.jpg"]


@pytest.mark.parametrize(("options", "said"), [
    (["--json", "{input}"], "--json {input} names the input"),
    (["--json", "{output}"], "--json {output} names the output"),
    (["--preview", "{output}"], "--preview {output} names the output"),
    (["--faces", "{output}"], "--faces {output} names the output"),
    (["--faces", "{input}"], "--faces {input} names the input"),
    (["--preview", "{folder}/side.mp4", "--json", "{folder}/side.mp4"], "--json {folder}/side.mp4 names the --preview file"),
])
def test_a_file_the_run_writes_under_the_name_of_another_is_refused(tmp_path, capsys, options, said):
    """--json naming the input replaced the video with the report; --preview naming the output kept
    one of the two, and --faces naming it failed with a traceback after the work. Each is refused
    before any work, in one line, the input untouched and nothing written."""
    src = make_clip(tmp_path / "in.mp4", [i * 40 for i in range(6)], audio=True)
    original = src.read_bytes()
    names = {"input": src, "output": tmp_path / "out.mp4", "folder": tmp_path}
    code = _run(src, tmp_path / "out.mp4", "--model", "none", "--detector", "dlib", "--quiet", *(o.format(**names) for o in options))
    _one_line_error(capsys, code, 2, said.format(**names) + "; give it a name of its own")
    assert src.read_bytes() == original and sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.mp4").write_bytes(original)
    code = _run("batch", clips, "--out", tmp_path / "out", "--model", "none", "--detector", "dlib", "--quiet", "--json", clips / "a.mp4")
    _one_line_error(capsys, code, 2, f"--json {clips / 'a.mp4'} names the input {clips / 'a.mp4'}")
    assert (clips / "a.mp4").read_bytes() == original


def test_zero_faces_copies_the_video_untouched(tmp_path):
    src = make_clip(tmp_path / "noface.mp4", list(range(0, 400, 40)), audio=True)
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    assert _run(src, out, "--model", "none", "--quiet", "--json", report) == 0
    with av.open(str(src)) as a, av.open(str(out)) as b:
        pa = [bytes(p) for p in a.demux(a.streams.video[0]) if p.size]
        pb = [bytes(p) for p in b.demux(b.streams.video[0]) if p.size]
    assert pa == pb  # remuxed, not re-encoded
    assert any("no face" in n for n in json.loads(report.read_text())["notes"]) and json.loads(report.read_text())["encoder"] is None
    # a codec asked for by name is the output's all the same: a ProRes master asked for came back as the input's H.264
    master, report = tmp_path / "master.mkv", tmp_path / "m.json"
    assert _run(src, master, "--model", "none", "--quiet", "--json", report, "--codec", "ffv1") == 0
    with av.open(str(src)) as a, av.open(str(master)) as b:
        assert b.streams.video[0].codec_context.name == "ffv1"
        shown = [[f.time for f in c.decode(video=0)] for c in (a, b)]
        assert np.allclose(np.subtract(shown[1], shown[1][0]), np.subtract(shown[0], shown[0][0]), atol=1e-3)  # Matroska's ms
        assert len([p for p in b.demux(b.streams.audio[0]) if p.size]) == len([p for p in a.demux(a.streams.audio[0]) if p.size])
    written = json.loads(report.read_text())
    assert "no face found: the video was encoded unchanged with ffv1, as --codec asked (a copy would keep its h264)" in written["notes"]
    assert written["encoder"].startswith("ffv1")


def test_a_turned_phone_video_is_written_upright_where_the_container_stores_no_rotation(sample_clip, tmp_path):
    """AVI and MPEG-TS store no rotation: a phone's portrait video came out of them sideways, faces
    restored or not (a face-less one was copied)."""
    from vidrestore.io import VideoReader, probe

    with VideoReader(sample_clip) as r:
        upright = [f.image for f in r][:6]
    coded = [np.ascontiguousarray(np.rot90(image, -1)) for image in upright]
    phone = make_clip(tmp_path / "phone.mp4", [i * 40 for i in range(6)], size=coded[0].shape[:2], images=coded, rotation=90)
    blank = make_clip(tmp_path / "blank.mp4", [i * 40 for i in range(10)], size=(64, 48), rotation=90)  # FFmpeg reads no TS of 3 tiny frames
    for src, name in [(phone, "o.avi"), (blank, "o.ts"), (phone, "o.mkv")]:
        report = tmp_path / f"{name}.json"
        assert _run(src, tmp_path / name, "--model", "none", "--quiet", "--json", report) == 0
        written = probe(tmp_path / name)
        assert written.display_size == probe(src).display_size
        assert written.rotation == (90 if name == "o.mkv" else 0)
        with VideoReader(src) as a, VideoReader(tmp_path / name) as b:
            assert all(np.abs(x.image.astype(int) - y.image).mean() < 6 for x, y in zip(a, b, strict=True))
    assert any("encoded upright, since .ts files store no rotation" in n for n in json.loads((tmp_path / "o.ts.json").read_text())["notes"])


def test_a_faceless_h264_video_is_encoded_into_a_program_stream_not_copied(tmp_path):
    """FFmpeg could not find the H.264 it copied into an .mpg: the file held sound alone."""
    from vidrestore.io import probe

    src = make_clip(tmp_path / "in.mp4", [0, 40, 80])
    report = tmp_path / "r.json"
    assert _run(src, tmp_path / "o.mpg", "--model", "none", "--quiet", "--json", report) == 0
    assert probe(tmp_path / "o.mpg").codec == "mpeg2video" and len(read_pts(tmp_path / "o.mpg")) == 3
    assert "cannot read h264 back from a program stream" in json.loads(report.read_text())["notes"][0]


@pytest.mark.parametrize("detector", ["dlib", "retinaface"])
def test_a_frame_of_any_shape_is_read(tmp_path, detector):
    """A strip 4096 px wide and 16 high, or 8000 by 2, is read at 320 x 1 for the detector: the
    tone check's blocks, taller than that, and RetinaFace's resize to no rows failed with a
    traceback. (RetinaFace here is randomly initialised: what it finds does not matter.)"""
    import torch

    from vidrestore.faces.retinaface import RetinaFace

    weights = []
    if detector == "retinaface":
        torch.manual_seed(0)
        torch.save(RetinaFace().state_dict(), tmp_path / "mobilenet.pth")
        weights = ["--detector-weights", tmp_path / "mobilenet.pth"]
    for width, height in [(4096, 16), (8000, 2), (2, 2000)]:
        src = make_clip(tmp_path / f"strip_{width}x{height}.mkv", [0, 40, 80], size=(height, width))
        out = tmp_path / f"out_{width}x{height}.mkv"
        assert _run(src, out, "--model", "none", "--quiet", "--strength", "1", "--detector", detector, *weights) == 0
        with av.open(str(out)) as c:
            assert [(f.width, f.height) for f in c.decode(video=0)] == [(width, height)] * 3


def test_video_of_varying_rate_is_written_in_mpeg_2(tmp_path):
    """MPEG-2 codes a frame rate, and frames were moved onto the grid of the video's average rate:
    two frames of a phone's video (varying rate) fell on one tick there, and the encoder failed,
    with a traceback, after the work. They go onto a grid of 1/60 s, each after the last and
    within a tick of its time; in a program stream, which states the time of a packet's first
    frame only, the frames are all written. (Face-less, this clip was copied into the .mkv as
    H.264 until --codec was honoured for such video.)"""
    times = [0, 40, 80, 200, 240, 400, 440, 480, 520, 700]
    src = make_clip(tmp_path / "phone.mp4", times)
    assert _run(src, tmp_path / "o.mkv", "--model", "none", "--quiet", "--strength", "1", "--codec", "mpeg2video") == 0
    with av.open(str(tmp_path / "o.mkv")) as c:
        assert c.streams.video[0].codec_context.name == "mpeg2video"
        shown = [f.time * 1000 for f in c.decode(video=0)]
    assert len(shown) == len(times) and all(b > a for a, b in itertools.pairwise(shown))
    assert all(abs(s - t) <= 1000 / 60 + 1 for s, t in zip(shown, times, strict=True)), shown
    assert _run(src, tmp_path / "o.mpg", "--model", "none", "--quiet", "--strength", "1") == 0
    assert len(read_pts(tmp_path / "o.mpg")) == len(times)


def test_a_y4m_holds_raw_video_at_its_rate_and_refuses_a_varying_one(tmp_path, capsys):
    """.y4m (raw frames for another encoder) took x264 until its header refused it, then a 10-bit
    4:2:2 master ("unofficial" to its muxer), and stated MPEG-TS's 90000 fps; video whose rate
    varies is refused after pass 1, since a .y4m (like a raw .h264) states no frame's time."""
    master = _flat_clip(tmp_path / "master.mov", "prores_ks", 6, "yuv422p10le", step=30)
    ts = make_clip(tmp_path / "capture.ts", [i * 40 for i in range(6)])
    for src, pix_fmt in [(master, "yuv422p10le"), (ts, "yuv420p")]:
        out, report = tmp_path / f"{src.stem}.y4m", tmp_path / f"{src.stem}.json"
        assert _run(src, out, "--model", "none", "--quiet", "--strength", "1", "--json", report) == 0
        with av.open(str(out)) as c:
            video = c.streams.video[0]
            assert (video.codec_context.name, video.codec_context.pix_fmt, video.average_rate) == ("rawvideo", pix_fmt, 25)
            assert len(list(c.decode(video=0))) == 6
        assert not [n for n in json.loads(report.read_text())["notes"] if "lossy" in n]
    phone = make_clip(tmp_path / "phone.mp4", [0, 40, 80, 200, 240, 400])
    assert _run(phone, tmp_path / "phone.y4m", "--model", "none", "--quiet") == 4
    assert ".y4m files state a frame rate and no frame's time, and this video's frames come at varying times" in capsys.readouterr().err
    assert not list(tmp_path.glob("*phone*.y4m"))


def test_a_gif_is_written_with_a_palette_of_each_frames_own(sample_clip, tmp_path, capsys):
    """GIF output was refused (codec auto chose H.264). Each frame now gets 256 colours of its own;
    GIF counts time in hundredths of a second, and holds no sound."""
    from vidrestore.io import VideoReader

    out = tmp_path / "o.gif"
    assert _run(sample_clip, out, "--model", "none", "--quiet") == 4 and "--drop-streams" in capsys.readouterr().err
    report = tmp_path / "r.json"
    assert _run(sample_clip, out, "--model", "none", "--quiet", "--drop-streams", "--json", report) == 0
    assert json.loads(report.read_text())["encoder"].startswith("gif, pal8")
    with av.open(str(sample_clip)) as a, av.open(str(out)) as b:
        assert [f.time for f in b.decode(video=0)] == pytest.approx([f.time for f in a.decode(video=0)], abs=0.0051)  # to the nearest 1/100 s
    with VideoReader(sample_clip) as a, VideoReader(out) as b:
        assert all(np.abs(x.image.astype(int) - y.image).mean() < 4 for x, y in zip(a, b, strict=True))


def _animation(path: Path, source: Path, options: dict[str, str]) -> Path:
    """The first 8 frames of ``source`` as an animation (GIF or APNG, by ``path``'s name) written
    with the muxer's ``options`` (its plays)."""
    codec, pix_fmt = ("gif", "rgb8") if path.suffix == ".gif" else ("apng", "rgb24")
    with av.open(str(source)) as src, av.open(str(path), "w", options=options) as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = src.streams.video[0].width, src.streams.video[0].height, pix_fmt
        for n, frame in enumerate(itertools.islice(src.decode(video=0), 8)):
            picture = frame.reformat(format="rgb24").reformat(format=pix_fmt)
            picture.pts, picture.time_base = n, Fraction(1, 10)
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    return path


def test_an_animation_is_played_as_many_times_as_its_source(sample_clip, tmp_path):
    """FFmpeg's muxers loop a GIF for ever and play an APNG once, whatever the input said: a sticker
    that looped came back still after one play, and a GIF that played once came back looping.
    An APNG was also refused (H.264 chosen for it); it is written as APNG."""
    from vidrestore.io.containers import times_played

    sources = {"forever.apng": _animation(tmp_path / "forever.apng", sample_clip, {"plays": "0"}),
               "once.gif": _animation(tmp_path / "once.gif", sample_clip, {"loop": "-1"}),
               "thrice.gif": _animation(tmp_path / "thrice.gif", sample_clip, {"loop": "2"})}
    assert [times_played(p) for p in sources.values()] == [0, 1, 3]
    assert times_played(sample_clip) is None
    for name, plays in [("forever.apng", 0), ("once.gif", 1), ("thrice.gif", 3)]:
        for suffix in (".gif", ".apng"):
            out = tmp_path / f"out-{name}{suffix}"
            assert _run(sources[name], out, "--model", "none", "--strength", "1", "--quiet") == 0
            assert times_played(out) == plays, out.name
    with av.open(str(tmp_path / "out-forever.apng.apng")) as out:
        assert out.streams.video[0].codec_context.name == "apng"


def test_a_transparent_gif_keeps_its_transparent_colour(sample_clip, tmp_path):
    """A sticker GIF with a face came back with none of its clear pixels clear: each frame's
    palette had no transparent colour. Now one is, for the pixels that were clear, in FFmpeg's
    reading of the output and in Pillow's."""
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        images = [f.image for f in r][:8]
    pictures = []
    for image in images:
        picture = Image.fromarray(image).resize((320, 240), Image.Resampling.BOX).convert("RGBA")
        picture.paste((0, 0, 0, 0), (256, 0, 320, 240))  # the right fifth: clear
        pictures.append(picture)
    src, out, report = tmp_path / "sticker.gif", tmp_path / "o.gif", tmp_path / "r.json"
    pictures[0].save(src, save_all=True, append_images=pictures[1:], duration=100, disposal=2, loop=0)
    assert _run(src, out, "--model", "none", "--strength", "1", "--detector", "dlib", "--quiet", "--json", report) == 0
    data = json.loads(report.read_text())
    assert data["tracks"] and not [n for n in data["notes"] if "alpha" in n]  # a face restored: encoded, not copied
    with av.open(str(out)) as c:
        read = [f.to_ndarray(format="rgba") for f in c.decode(video=0)]
    with Image.open(out) as gif:
        shown = []
        for n in range(gif.n_frames):
            gif.seek(n)
            shown.append(np.asarray(gif.convert("RGBA")))
    for frames in (read, shown):
        assert len(frames) == 8
        assert all((f[:, 256:, 3] == 0).all() and (f[:, :254, 3] == 255).all() for f in frames)
    assert np.abs(read[4][:, :254, :3].astype(int) - np.asarray(pictures[4])[:, :254, :3]).mean() < 6


def _turned_transparent(sample_clip, src):
    """A turned PNG-in-MOV render of ``sample_clip``'s first 6 frames (360x480 stored, shown
    480x360) whose right sixth, as shown, is clear and black."""
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        images = [f.image for f in r][:6]
    with av.open(str(src), "w") as c:
        stream = c.add_stream("png", rate=24)
        stream.width, stream.height, stream.pix_fmt = 360, 480, "rgba"
        stream.set_display_rotation(90)
        for i, image in enumerate(images):
            shown = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
            shown[:, 400:] = 0
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(shown, -1)), format="rgba")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    return src


def test_a_turned_transparent_video_keeps_its_clear_pixels_in_an_upright_gif(sample_clip, tmp_path):
    """A phone's or an editor's turned video with alpha, written upright into a GIF (which stores no
    turn): the alpha is turned with the picture (it failed with a traceback after the work)."""
    src, out = _turned_transparent(sample_clip, tmp_path / "turned.mov"), tmp_path / "o.gif"
    assert _run(src, out, "--model", "none", "--strength", "1", "--detector", "dlib", "--quiet") == 0
    with av.open(str(out)) as c:
        alphas = [f.to_ndarray(format="rgba")[..., 3] for f in c.decode(video=0)]
    assert len(alphas) == 6 and all(a.shape == (360, 480) and (a[:, 402:] == 0).all() and (a[:, :398] == 255).all() for a in alphas)


def test_a_transparent_videos_preview_shows_its_clear_pixels_on_checks(sample_clip, tmp_path):
    """The side-by-side preview is RGB: a render's clear pixels showed as the colour they hold
    (black here), as if opaque. Both sides now show them over a checkerboard of two greys, as
    editors show transparency, turned with the picture."""
    src, preview = _turned_transparent(sample_clip, tmp_path / "turned.mov"), tmp_path / "side.mp4"
    assert _run(src, tmp_path / "o.mov", "--model", "none", "--strength", "1", "--detector", "dlib", "--quiet",
                "--preview", str(preview)) == 0
    with av.open(str(preview)) as c:
        pictures = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(pictures) == 6 and all(p.shape == (360, 960) for p in pictures)
    for picture in pictures:
        for side in (picture[:, :480], picture[:, 480:]):
            checks, shown = side[8:-8, 408:472].astype(float), side[:, :392].astype(float)
            assert 110 < checks.mean() < 145 and checks.std() > 15  # greys of 102 and 153 in 16 px squares
            assert shown.mean() > 60


def test_a_faceless_video_the_output_cannot_hold_is_encoded_not_refused(tmp_path):
    """A GIF with no face into an .mp4 (or a .mkv: Matroska holds no GIF either), and H.264 into a
    .webm, were refused ("write a .mkv"); they are encoded, with every frame at its time. So is
    VP9 into a .mov, which QuickTime's muxer refuses only as it writes its header: that failed
    after the work."""
    from vidrestore.io import probe

    gif = tmp_path / "in.gif"
    with av.open(str(gif), "w") as c:
        stream = c.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb8"
        for i in range(12):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, 5 * i : 5 * i + 8] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="rgb8")
            frame.pts, frame.time_base = 10 * i, Fraction(1, 100)
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    h264 = make_clip(tmp_path / "in.mp4", [i * 40 for i in range(6)])
    vp9 = _flat_clip(tmp_path / "in.webm", "libvpx-vp9", 6)
    for src, name, codec in [(gif, "o.mp4", "h264"), (gif, "o.mkv", "h264"), (h264, "o.webm", "vp9"), (vp9, "o.mov", "h264")]:
        report = tmp_path / f"{name}.json"
        assert _run(src, tmp_path / name, "--model", "none", "--quiet", "--json", report) == 0
        with av.open(str(src)) as a, av.open(str(tmp_path / name)) as b:
            assert [f.time for f in b.decode(video=0)] == pytest.approx([f.time for f in a.decode(video=0)], abs=0.001)
        note = json.loads(report.read_text())["notes"][0]
        assert probe(tmp_path / name).codec == codec
        assert f"encoded unchanged, since {name[1:]} files cannot hold its {probe(src).codec} video" in note


@pytest.mark.skipif("libsvtav1" not in av.codecs_available, reason="this FFmpeg build has no AV1 encoder (libsvtav1)")
def test_av1_is_copied_where_no_face_is_found_and_written_at_the_crf_asked_for(sample_clip, tmp_path):
    """FFmpeg decodes AV1 with libdav1d, which encodes nothing, and PyAV set a copied video stream up
    around an encoder of that name: a face-less AV1 video (as YouTube serves) could not be copied,
    nor could --codec libsvtav1 join its own segments. libsvtav1 also ignored --crf (it wrote its 35)."""
    from vidrestore.io import probe

    src = _flat_clip(tmp_path / "av1.mkv", "libsvtav1", 5)
    assert probe(src).codec == "av1"  # the codec, not the decoder: tables are keyed by codecs
    for name in ("o.mp4", "o.mkv"):
        assert _run(src, tmp_path / name, "--model", "none", "--quiet") == 0
        assert probe(tmp_path / name).codec == "av1" and len(read_pts(tmp_path / name)) == 5
    sizes = {}
    for crf in (20, 50):
        out, report = tmp_path / f"crf{crf}.mkv", tmp_path / f"crf{crf}.json"
        assert _run(sample_clip, out, "--model", "none", "--codec", "libsvtav1", "--crf", crf, "--quiet", "--json", report) == 0
        assert probe(out).codec == "av1" and len(read_pts(out)) == len(read_pts(sample_clip))
        assert json.loads(report.read_text())["encoder"] == f"libsvtav1, yuv420p, crf {crf}"
        sizes[crf] = out.stat().st_size
    assert sizes[20] > 1.3 * sizes[50]


def test_a_second_video_stream_is_copied_and_the_report_says_its_faces_are_not_restored(tmp_path):
    """A second camera angle was copied without a word: its faces looked restored to whoever ran it."""
    src = tmp_path / "angles.mkv"
    with av.open(str(src), "w") as out:
        first, second = (out.add_stream("libx264", rate=25) for _ in range(2))
        second.metadata["title"] = "angle 2"
        for stream in (first, second):
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            for stream in (first, second):
                frame = av.VideoFrame(64, 48, "yuv420p")
                frame.pts = i
                out.mux(stream.encode(frame))
        for stream in (first, second):
            out.mux(stream.encode())
    out_path, report = tmp_path / "o.mkv", tmp_path / "r.json"
    assert _run(src, out_path, "--model", "none", "--quiet", "--json", report) == 0
    assert _streams(out_path) == ["video", "video"]
    assert ('faces are restored in the first video stream only; the others are copied as they are: video stream 1 (h264) "angle 2"'
            in json.loads(report.read_text())["notes"])


@pytest.mark.parametrize(("second", "note"), [
    (None, "12 frames came in another size or pixel format than the stream's first; they were scaled to 480x360 yuv420p"),
    ((360, 360), ("12 frames of another shape than the stream's first (by their size and the pixel aspect their headers state) "
                 "were placed on black bars, their shape kept")),
])
def test_a_video_that_changes_size_midway_is_restored_at_its_first_size(sample_clip, tmp_path, second, note):
    src = resized_clip(tmp_path / "spliced.ts", sample_clip, second=second)
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    assert _run(src, out, "--model", "none", "--detector", "dlib", "--quiet", "--json", report) == 0
    assert read_pts(out) == read_pts(src)
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert {f.shape for f in frames} == {(360, 480)}
    bars = max(int(f[:, :56].max()) for f in frames[12:]), max(int(f[:, 424:].max()) for f in frames[12:])
    assert (max(bars) < 25) == (second is not None)  # a square part keeps its shape, pillarboxed
    data = json.loads(report.read_text())
    assert sum(t["frames"] for t in data["tracks"]) >= 22  # the face is followed through the change
    assert any(note in n for n in data["notes"])


def test_a_video_longer_than_a_segment_is_joined_into_matroska(sample_clip, tmp_path):
    """Matroska stores no decode times, and the muxer's guess for a later segment's first ones
    went back in time: every video longer than a segment (2000 frames) failed into .mkv after the
    work ("Invalid argument"). The joined output's frames are where one segment's are."""
    whole, split = tmp_path / "whole.mkv", tmp_path / "split.mkv"
    common = ["--model", "none", "--strength", "1", "--detector", "dlib", "--quiet"]
    assert _run(sample_clip, whole, *common, "--segment-frames", "0") == 0
    assert _run(sample_clip, split, *common, "--segment-frames", "8", "--batch-size", "8") == 0  # three segments
    assert read_pts(split) == read_pts(whole) and len(read_pts(split)) == len(read_pts(sample_clip))
    assert _streams(split) == _streams(whole) == ["video", "audio"]


def test_a_raw_camera_stream_is_restored_with_timestamps_and_continued_by_segments(sample_clip, tmp_path):
    """A raw .h264 dump (a DVR's, a camera's) stamps no frame: the output gets them at the rate
    the stream declares, a segmented run reads its segments without seeking, and a face-less
    raw stream is encoded rather than copied into a container that needs timestamps."""
    with av.open(str(sample_clip)) as c:
        images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    src = make_clip(tmp_path / "cam.h264", list(range(24)), size=images[0].shape[:2], images=images,
                    time_base=Fraction(1, 20), rate=20)
    whole, split = tmp_path / "whole.mkv", tmp_path / "split.mkv"
    common = ["--model", "none", "--detector", "dlib", "--quiet", "--codec", "ffv1"]
    assert _run(src, whole, *common, "--segment-frames", "0") == 0
    assert _run(src, split, *common, "--segment-frames", "8") == 0
    assert read_pts(whole) == [i * 50 for i in range(24)]  # ms: 20 fps
    with av.open(str(whole)) as a, av.open(str(split)) as b:
        assert all(np.array_equal(x.to_ndarray(), y.to_ndarray()) for x, y in zip(a.decode(video=0), b.decode(video=0)))
    blank = make_clip(tmp_path / "blank.h264", list(range(10)), time_base=Fraction(1, 20), rate=20)
    out, report = tmp_path / "blank.mp4", tmp_path / "r.json"
    assert _run(blank, out, "--model", "none", "--quiet", "--json", report) == 0
    assert read_pts(out) == [i * read_pts(out)[1] for i in range(10)] and read_pts(out)[1] > 0
    assert any("raw stream" in note for note in json.loads(report.read_text())["notes"])


def _sharing_a_time(src: Path, path: Path, shared: int) -> Path:
    """``src``'s frames in a Matroska file whose frame ``shared`` comes at the time of the one
    before it, as a faulty muxer writes them (MPEG-4 Part 2: no frame reordered)."""
    with av.open(str(src)) as c, av.open(str(path), "w") as out:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        stream = out.add_stream("mpeg4", rate=20)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"qscale": "2"}

        def mux(packets):
            for packet in packets:
                if packet.pts >= shared * 50:
                    packet.pts, packet.dts = packet.pts - 50, packet.dts - 50
                out.mux(packet)

        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i * 50, Fraction(1, 1000)
            mux(stream.encode(frame))
        mux(stream.encode())
    return path


@pytest.mark.parametrize("strength, output", [("1", "out.mp4"), ("1", "out.mkv"), ("0", "copied.mp4")])
def test_frames_that_share_a_time_are_each_written_just_after_the_one_before(sample_clip, tmp_path, strength, output):
    """A file whose muxer gave two frames one time: the output's muxer refused the restored video
    after the work ("write a .mkv or .mov", which refused it too), and its copy ("its timestamps
    overlap"). Every frame is kept, the later of the two a millisecond on."""
    src = _sharing_a_time(sample_clip, tmp_path / "shared.mkv", shared=6)
    stated = read_pts(src)
    assert stated[5] == stated[6] == 250 and len(stated) == len(read_pts(sample_clip))
    out, report = tmp_path / output, tmp_path / "r.json"
    assert _run(src, out, "--model", "none", "--strength", strength, "--detector", "dlib", "--quiet", "--json", report) == 0
    with av.open(str(out)) as c:  # in ms
        assert [f.pts * f.time_base * 1000 for f in c.decode(video=0)] == [*stated[:6], 251, *stated[7:]]
    notes = json.loads(report.read_text())["notes"]
    assert any(n.startswith("1 frame of the input came at the time of the frame before") for n in notes)
    assert strength == "1" or any("a copy would keep frames at one time" in n for n in notes)


@pytest.mark.parametrize("strength", ["1", "0"])
def test_sound_packets_that_share_a_time_are_each_moved_a_tick_on(sample_clip, tmp_path, strength):
    """A Matroska file whose muxer gave two AAC packets one time: into .mp4 it was refused before
    any work, as though MP4 could not hold AAC ("write a .mkv, give --audio-codec auto..."), and
    its remux would have failed after the work."""
    src = tmp_path / "shared.mkv"
    with av.open(str(sample_clip)) as c, av.open(str(src), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in c.streams if s.type in ("video", "audio")}
        sound = 0
        for packet in c.demux():
            if packet.dts is None or packet.stream.index not in copies:
                continue
            if packet.stream.type == "audio":
                sound += 1
                if sound == 10:  # at the time of the ninth
                    packet.pts, packet.dts = packet.pts - packet.duration, packet.dts - packet.duration
            packet.stream = copies[packet.stream.index]
            out.mux(packet)
    with av.open(str(src)) as c:
        stated = [p.pts for p in c.demux(audio=0) if p.size]
    assert stated[8] == stated[9]
    out = tmp_path / "out.mp4"
    assert _run(src, out, "--model", "none", "--strength", strength, "--detector", "dlib", "--quiet") == 0
    with av.open(str(out)) as c:
        written = [p.pts * p.time_base for p in c.demux(audio=0) if p.size]
    assert len(written) == len(stated) and all(b > a for a, b in itertools.pairwise(written))
    assert written[9] - written[8] < Fraction(1, 500)  # a tick of the input's (1 ms) on, not a packet's length


def test_dry_run_reports_tracks_without_writing(sample_clip, tmp_path, capsys):
    assert _run(sample_clip, "--dry-run", "--model", "none", "--quiet", "--json", "-") == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["output"] is None and len(rep["tracks"]) == 1
    assert not [n for n in rep["notes"] if "--min-face" in n]
    size = rep["tracks"][0]["median_face_px"]
    assert _run(sample_clip, "--dry-run", "--model", "none", "--quiet", "--json", "-", "--min-face", size + 5) == 0
    rep = json.loads(capsys.readouterr().out)  # the face is left alone for its size, and the report says so
    assert rep["tracks"] == []
    assert f"1 face track smaller than {size + 5:g} px (median box side) left as they are; --min-face lowers the limit" in rep["notes"]
    out = tmp_path / "o.mp4"
    assert _run(sample_clip, out, "--model", "none", "--quiet", "--json", "-", "--min-face", size + 5) == 0
    assert "no face large enough to restore: the video was copied without re-encoding" in json.loads(capsys.readouterr().out)["notes"]
    assert read_pts(out) == read_pts(sample_clip)


@pytest.mark.parametrize("text", ["-3", "big", "nan"])
def test_a_bad_min_face_is_a_usage_error(sample_clip, capsys, text):
    with pytest.raises(SystemExit) as stop:
        _run(sample_clip, "--dry-run", "--min-face", text)
    assert stop.value.code == 2 and "expected a size in pixels" in capsys.readouterr().err


def _one_line_error(capsys, code, expected_code, fragment):
    err = capsys.readouterr().err.strip()
    assert code == expected_code
    assert len(err.splitlines()) == 1 and fragment in err, err


def test_a_pixel_format_the_encoder_does_not_take_fails_before_any_work(sample_clip, tmp_path, capsys, monkeypatch):
    """Into a picture sequence, whose trial encode is skipped, a --pix-fmt the encoder refuses
    failed only when pass 2 opened it, after pass 1 had read the whole video."""
    from vidrestore.pipeline import driver

    def no_analysis(*args, **kwargs):
        raise AssertionError("pass 1 ran before the pixel format was checked")

    monkeypatch.setattr(driver, "analysed", no_analysis)
    (tmp_path / "out").mkdir()
    _one_line_error(capsys, _run(sample_clip, tmp_path / "out" / "f_%03d.jpg", "--model", "none", "--drop-streams",
                                 "--pix-fmt", "rgb48le"), 4, "encoder mjpeg does not take pixel format rgb48le; it takes yuvj420p")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_report_that_cannot_be_written_is_one_line(tmp_path):
    from vidrestore.cli import write_report
    from vidrestore.errors import OutputError

    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=r"cannot write the report .*file/r\.json \(Not a directory\)"):
        write_report(tmp_path / "file" / "r.json", "{}")


RESTORING = ["--model", "none", "--detector", "dlib", "--quiet"]


@pytest.mark.parametrize("command", [["{clip}", "{out}.mkv", *RESTORING], ["batch", "{clip}", "--out", "{out}", *RESTORING],
                                     ["eval", "noref", "{folder}"]])
def test_a_report_named_over_a_file_that_is_no_report_is_refused(tmp_path, capsys, command):
    """``--json take2.mp4`` (a slip of the shell's completion) replaced a video with the report. A
    file holding a report (or nothing) is replaced as before."""
    clip = make_clip(tmp_path / "clip.mp4", [i * 40 for i in range(3)])
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(np.zeros((120, 120, 3), np.uint8)).save(folder / "a.png")
    video = make_clip(tmp_path / "take2.mp4", [0, 40])
    kept = video.read_bytes()
    argv = [a.format(clip=clip, out=tmp_path / "out", folder=folder) for a in command]
    _one_line_error(capsys, main([*argv, "--json", str(video)]), 4,
                    f"--json {video} is a file that holds no JSON report, which the report would replace; name another file")
    assert video.read_bytes() == kept
    earlier = tmp_path / "r.json"
    earlier.write_text('  {"an earlier": "report"}')
    assert main([*argv, "--json", str(earlier)]) in (0, 1) and "an earlier" not in earlier.read_text()


def test_a_report_is_written_whole_then_named(tmp_path, monkeypatch):
    """A scheduler reading a report as its run was killed found half of it."""
    from pathlib import Path as PathType

    from vidrestore.cli import write_report

    report = tmp_path / "r.json"
    write_report(report, '{"status": "done"}')
    real_write = PathType.write_text

    def killed(self, text, *args, **kwargs):
        real_write(self, text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(PathType, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        write_report(report, '{"status": "a longer report, cut"}')
    monkeypatch.undo()
    assert report.read_text() == '{"status": "done"}\n' and list(tmp_path.iterdir()) == [report]


@pytest.mark.parametrize(("device", "said"), [
    ("tpu", "--device tpu: vidrestore runs on cpu or cuda (cuda:N for one GPU of several), or auto"),
    ("mps", "--device mps: vidrestore runs on cpu or cuda"),  # torch's error from deep in the model's loading
    ("cuda:x", "--device cuda:x: vidrestore runs on cpu or cuda"),
    ("cuda:3", "--device cuda:3 asked for, but this machine has 1 CUDA device(s), cuda:0 to cuda:0"),
])
def test_a_device_that_cannot_run_it_is_refused_in_one_line(tmp_path, capsys, monkeypatch, device, said):
    """Another device type than cpu and cuda, or a GPU the machine lacks, failed with torch's
    traceback (at once, or as the model was moved there)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # one GPU, as far as the check can tell
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    src = make_clip(tmp_path / "in.mp4", [i * 40 for i in range(4)])
    _one_line_error(capsys, _run(src, tmp_path / "out.mp4", "--device", device), 2, said)
    _one_line_error(capsys, _run("batch", src, "--out", tmp_path / "out", "--device", device), 2, said)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # refused before the batch's folder was made


@pytest.mark.parametrize("argv, said", [
    (["in.mp4", ""], "argument 2 is empty"),  # was "output is the input file (in.mp4)": "" is the folder "."
    (["", "out.mp4"], "argument 1 is empty"),  # was "input is a folder: ."
    (["in.mp4", "out.mp4", "--config", ""], "the argument after --config is empty"),  # the defaults, without a word
    (["in.mp4", "out.mp4", "--reference="], "--reference is given an empty value"),
    (["degrade", "", "--out", "d"], "argument 2 is empty"),
])
def test_an_empty_argument_is_named_as_one(tmp_path, capsys, monkeypatch, argv, said):
    """An unset variable in a batch script (``vidrestore "$IN" "$OUT"``) is named as such."""
    monkeypatch.chdir(tmp_path)
    make_clip(tmp_path / "in.mp4", [i * 40 for i in range(3)])
    _one_line_error(capsys, main(argv), 2, f"{said} (an unset shell variable?); give it a value, or leave it out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_corrupt_packets_mid_stream_are_counted_and_the_frames_that_decode_restored_or_copied(sample_clip, tmp_path, capsys):
    """Three packets in the middle of the sample clip made garbage: the frames that decode are
    restored at their own times and the report counts the rest; with nothing to restore the video
    is copied packet for packet (the report had said the frames that decoded were restored)."""
    with av.open(str(sample_clip)) as c:
        packets = [(p.pos, p.size, p.pts) for p in c.demux(video=0) if p.size]
    data = bytearray(sample_clip.read_bytes())
    for pos, size, _ in packets[8:11]:
        data[pos + 4:pos + size] = b"\xff" * (size - 4)  # the NAL unit's length kept, its contents garbage
    src, out = tmp_path / "damaged.mp4", tmp_path / "out.mp4"
    src.write_bytes(bytes(data))
    decoded = sorted({pts for _, _, pts in packets} - {pts for _, _, pts in packets[8:11]})
    for options, done in ((["--strength", "1"], "; the frames that decoded were restored"), (["--strength", "0"], ""),
                          (["--dry-run"], "; the frames that decoded were analysed")):
        assert main([str(src), *([] if "--dry-run" in options else [str(out), "--overwrite"]), "--model", "none", "--quiet",
                     "--json", "-", *options]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["frames_in"], report["corrupt_packets"]) == (21, 3)
        assert [n for n in report["notes"] if "corrupt" in n] == [f"3 corrupt packets could not be decoded{done}"]
        if options == ["--strength", "1"]:
            assert report["frames_out"] == 21 and read_pts(out) == decoded
        elif options == ["--strength", "0"]:
            with av.open(str(src)) as a, av.open(str(out)) as b:
                assert [bytes(p) for p in a.demux(video=0)] == [bytes(p) for p in b.demux(video=0)]


def test_the_same_command_writes_the_same_matroska_file(sample_clip, tmp_path):
    """FFmpeg's Matroska muxer drew random segment and track IDs for each file: two runs of one
    command wrote files that differed in their headers alone."""
    written = []
    for name in ("a.mkv", "b.mkv"):
        assert main([str(sample_clip), str(tmp_path / name), "--model", "none", "--strength", "1", "--quiet"]) == 0
        written.append((tmp_path / name).read_bytes())
    assert written[0] == written[1]


def test_bad_inputs_fail_with_one_line(tmp_path, capsys):
    out = tmp_path / "o.mp4"
    _one_line_error(capsys, _run(tmp_path / "missing.mp4", out, "--model", "none"), 3, "input not found")
    # a newline in a file name split the line; an escape sequence in one coloured the terminal
    _one_line_error(capsys, _run(tmp_path / "tape\n2\x1b[31m.mp4", out, "--model", "none"), 3, "tape\\n2\\x1b[31m.mp4")
    _one_line_error(capsys, _run("https://example.com/a.mp4", out, "--model", "none"), 3, "the input is a URL: vidrestore reads local files")
    # a dry run probed first, and said "input not found: https:/example.com/a.mp4"
    _one_line_error(capsys, _run("https://example.com/a.mp4", "--dry-run", "--model", "none"), 3, "the input is a URL")
    # a folder of videos is a batch's input: the command that restores them is named
    _one_line_error(capsys, _run(tmp_path, "--dry-run", "--model", "none"), 3,
                    f"input is a folder: {tmp_path}; `vidrestore batch {tmp_path} --out FOLDER` restores every video and picture in it")
    _one_line_error(capsys, _run("file://nas/films/a.mp4", out, "--model", "none"), 3, "is a file on another machine (nas)")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 500)
    _one_line_error(capsys, _run(junk, out, "--model", "none"), 3, "not a media file")
    # a camera's recording cut off before it wrote its index (at the end, in every camera's MP4 and MOV)
    whole = make_clip(tmp_path / "whole.mov", [i * 40 for i in range(10)], audio=True).read_bytes()
    assert whole.index(b"moov") > whole.index(b"mdat")
    (tmp_path / "cut.mov").write_bytes(whole[: len(whole) * 2 // 3])
    _one_line_error(capsys, _run(tmp_path / "cut.mov", out, "--model", "none"), 3,
                    "cut.mov is an MP4 or QuickTime file without its index (its moov box), as a recording cut off")
    song = covered_clip(tmp_path / "song.mp4", audio_only(tmp_path / "tone.m4a"))
    _one_line_error(capsys, _run(song, out, "--model", "none"), 3, "its one picture is cover art")
    moving = tmp_path / "moving.webp"  # was called truncated or corrupt
    Image.new("RGB", (16, 16), "red").save(moving, save_all=True, append_images=[Image.new("RGB", (16, 16), "blue")], duration=40)
    _one_line_error(capsys, _run(moving, out, "--model", "none"), 3,
                    "cannot read moving.webp: it is an animated WebP, whose frames the FFmpeg in PyAV does not decode")
    still = tmp_path / "still.webp"
    Image.new("RGB", (16, 16), "red").save(still)
    assert _run(still, tmp_path / "still.png", "--model", "none", "--quiet") == 0
    src = make_clip(tmp_path / "in.mp4", [0, 40, 80])
    _one_line_error(capsys, _run(src, src, "--model", "none", "--overwrite"), 4, "never overwrites its input")
    out.write_bytes(b"keep me")
    _one_line_error(capsys, _run(src, out, "--model", "none"), 4, "output exists")
    assert out.read_bytes() == b"keep me"
    _one_line_error(capsys, _run(src, tmp_path / "no" / "dir.mp4", "--model", "none"), 4, "does not exist")
    # a report that cannot be written was a traceback after the whole run, the video written and the report lost
    _one_line_error(capsys, _run(src, tmp_path / "r.mp4", "--model", "none", "--json", tmp_path / "no" / "r.json"), 4,
                    f"--json {tmp_path / 'no' / 'r.json'}: its folder does not exist")
    _one_line_error(capsys, _run(src, tmp_path / "r.mp4", "--model", "none", "--json", tmp_path), 4, "is a folder; give a file name")
    assert not (tmp_path / "r.mp4").exists()
    _one_line_error(capsys, _run(src, tmp_path / "x.mp4", "--model", tmp_path / "absent.safetensors"), 5, "not found")
    _one_line_error(capsys, _run(src, tmp_path / "y.mp4", "--model", "none", "--codec", "nosuchcodec"), 4, "encoder")
    for name in ("restored", "restored.xyz"):
        _one_line_error(capsys, _run(src, tmp_path / name, "--model", "none"), 4, f"no container is known by the name '{name}'")
    _one_line_error(capsys, _run(src, tmp_path, "--model", "none"), 4,  # the folder it is in
                    f"never overwrites its input: name another file, such as {tmp_path / 'in_restored.mp4'}")
    # MXF takes broadcast's frame rates alone: it failed when the restored video was written, with a traceback;
    # FFmpeg's advice to set its -strict option, which vidrestore does not have, is left out
    odd_rate = make_clip(tmp_path / "odd.mp4", [0, 50, 100], rate=20, time_base=Fraction(1, 1000))
    _one_line_error(capsys, _run(src, tmp_path / "o.ogv", "--model", "none"), 4, "vidrestore does not write Ogg video")
    _one_line_error(capsys, _run(odd_rate, tmp_path / "o.mxf", "--model", "none"), 4,
                    "o.mxf cannot be written: FFmpeg's mxf muxer refused the mpeg2video video (Unsupported frame rate 20/1); "
                    "write a .mkv or .mov")
    # a .mov output is not told to write a .mov
    assert _run(src, tmp_path / "o.mov", "--model", "none", "--codec", "libvpx-vp9") == 4
    assert capsys.readouterr().err.strip().endswith("refused the libvpx-vp9 video (vp9 only supported in MP4); write a .mkv")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.parametrize("option, code, message", [
    # a flag's value the config refuses is the flag's usage error, named as typed (it was "batch_size: ...", exit 6)
    (["--batch-size", "-3"], 2, "--batch-size: expected 0 or more, got -3"),  # 0 chooses by device
    (["--detect-every", "0"], 2, "--detect-every: expected 1 or more, got 0"),  # taken silently for the default 4
    (["--segment-frames", "-1"], 2, "--segment-frames: expected 0 or more, got -1"),
    (["--light", "sepia"], 2, "--light: expected one of auto, display, linear"),
    (["--parse-every", "0"], 2, "--parse-every: expected 1 or more, got 0"),
    (["--strength", "p0=3"], 2, "--strength of person 0: expected a value from 0 to 1, got 3.0"),
    (["--crf", "60"], 2, "--crf 60 is outside what libx264 takes, 0 to 51"),  # x264 took it for 51 without a word
    (["--crf", "64", "--codec", "libvpx-vp9"], 2, "--crf 64 is outside what libvpx-vp9 takes, 0 to 63"),
    (["--crf", "-4", "--codec", "ffv1"], 2, "--crf -4: expected 0 or more"),
    # refused at the first frame, with "try another --codec"
    (["--x264-preset", "fastest"], 2, "--x264-preset fastest: libx264 takes ultrafast, superfast, veryfast, faster, fast, medium"),
    (["--audio-codec", "nope"], 2, "--audio-codec nope: not a sound encoder this FFmpeg has"),  # a traceback
])
def test_settings_out_of_range_fail_with_one_line_before_any_work(sample_clip, tmp_path, capsys, option, code, message):
    out = tmp_path / "o.mkv"
    _one_line_error(capsys, _run(sample_clip, out, "--model", "none", *option), code, message)
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_gets_the_restored_video_under_the_inputs_name(tmp_path):
    src = make_clip(tmp_path / "in.mp4", [0, 40, 80])
    folder = tmp_path / "restored"
    folder.mkdir()
    assert _run(src, folder, "--model", "none", "--quiet") == 0
    assert read_pts(folder / "in.mp4") == read_pts(src)


def test_an_output_named_near_the_longest_a_name_may_be_is_written(tmp_path):
    """Its temp file's name was too long: "cannot write to output folder" (File name too long)."""
    src = make_clip(tmp_path / "in.mp4", [0, 40, 80])
    out = tmp_path / f"{'é' * 120}{'a' * 10}.mp4"  # 254 bytes
    assert _run(src, out, "--model", "none", "--quiet") == 0
    assert read_pts(out) == read_pts(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.mp4", out.name])  # no hidden file left


def test_an_output_folder_that_does_not_exist_is_named_as_a_folder(tmp_path, capsys):
    """`vidrestore in.mp4 new/` said "no container is known by the name 'new'": the slash was lost."""
    src = make_clip(tmp_path / "in.mp4", [0, 40, 80])
    _one_line_error(capsys, _run(src, f"{tmp_path / 'new'}/", "--model", "none"), 4,
                    f"output folder does not exist: {tmp_path / 'new'}/ (create it, or name the output file)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_an_output_url_is_named_as_one_and_a_file_url_names_its_path(tmp_path, capsys, monkeypatch):
    """`vidrestore in.mp4 https://host/o.mp4` said "output folder does not exist: https:/host": a
    URL is refused as one, and a file:// URL (copied from a file manager) is written where it names."""
    monkeypatch.chdir(tmp_path)
    src = make_clip(tmp_path / "in.mp4", [0, 40, 80])
    _one_line_error(capsys, _run(src, "https://example.com/o.mp4", "--model", "none"), 4,
                    "the output https://example.com/o.mp4 is a URL: vidrestore writes local files")
    _one_line_error(capsys, _run(src, "file://nas/films/o.mp4", "--model", "none"), 4,
                    "the output file://nas/films/o.mp4 is a file on another machine (nas); vidrestore writes local files")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    out = tmp_path / "ré stored.mp4"
    assert _run(src, out.as_uri(), "--model", "none", "--quiet") == 0
    assert read_pts(out) == read_pts(src)
    (tmp_path / "new").mkdir()
    assert _run(src, (tmp_path / "new").as_uri() + "/", "--model", "none", "--quiet") == 0
    assert read_pts(tmp_path / "new" / "in.mp4") == read_pts(src)
    # a batch's or degrade's --out was made as a local folder named "https:"
    for command in (["batch", str(src)], ["degrade", str(src)]):
        _one_line_error(capsys, main([*command, "--out", "https://example.com/restored", "--quiet"]), 4, "is a URL")
    assert not Path("https:").exists() and main(["batch", str(src), "--out", (tmp_path / "b").as_uri(), "--model", "none", "--quiet"]) == 0
    assert read_pts(tmp_path / "b" / "in.mp4") == read_pts(src)


def test_help_and_console_script_entry():
    proc = subprocess.run([sys.executable, str(REPO / "cli.py"), "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "Restore the faces" in proc.stdout
    # python -m vidrestore, where pip put the script off the PATH ("is a package and cannot be directly executed")
    proc = subprocess.run([sys.executable, "-m", "vidrestore", "--version"], capture_output=True, text=True, timeout=120,
                          check=False, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.startswith("vidrestore ")



_IMPORTED_AFTER = """
import runpy, sys
sys.argv = sys.argv[1:]
code = 0
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as done:
    code = done.code
print(" ".join(sorted({m for m in sys.modules if m in ("diffusers", "scipy.stats", "torch", "vidrestore.models.flipnet")})))
sys.exit(code)
"""


def test_a_dry_run_names_the_model_and_tracks_at_its_crop_size_without_loading_it(sample_clip, tiny_model, tmp_path):
    """A dry run loaded FLIPNET to name it in the report and to learn its crop size (2.4 s of the
    sample's 6.2); it reads both from the checkpoint's header now, and reports what a run that
    restores does."""
    dry, full = tmp_path / "dry.json", tmp_path / "full.json"
    assert _run(sample_clip, "--dry-run", "--model", tiny_model, "--detector", "dlib", "--quiet", "--json", dry) == 0
    assert _run(sample_clip, tmp_path / "out.mp4", "--model", tiny_model, "--detector", "dlib", "--quiet", "--json", full) == 0
    planned, done = json.loads(dry.read_text()), json.loads(full.read_text())
    precision = precision_suffix(network_dtype("auto", torch.device("cpu")))  # ", bf16" on a CPU that multiplies in it
    assert planned["restorer"] == done["restorer"] == f"flipnet ({Path(tiny_model).name}, tiny{precision})"
    assert planned["tracks"] == done["tracks"] and planned["shots"] == done["shots"]


def _imported_by_a_run(*args, code: int = 0) -> tuple[list[str], str]:
    """The heavy modules a CLI run, in a fresh interpreter, had imported by its end (it ended
    with exit status ``code``), and what it wrote to standard error."""
    proc = subprocess.run([sys.executable, "-c", _IMPORTED_AFTER, str(REPO / "cli.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == code, proc.stderr[-2000:]
    return proc.stdout.split(), proc.stderr


def test_runs_that_sample_nothing_start_without_diffusers_and_ddim_without_scipy_stats(sample_clip, tiny_model, tmp_path):
    """Every run imported diffusers (1.5 s, for torch._dynamo) and its DPM-Solver (another 0.7 s,
    for scipy.stats) before reading its input: a photo with --model none took 6.1 s, now 3.7; a
    dry run loaded the model too. A run that restores with the default DDIM sampler still needs
    diffusers, but not DPM-Solver."""
    assert _imported_by_a_run(sample_clip, tmp_path / "none.mp4", "--model", "none", "--quiet")[0] == ["torch"]
    assert _imported_by_a_run(sample_clip, "--dry-run", "--model", tiny_model, "--detector", "dlib", "--quiet")[0] == ["torch"]
    assert _imported_by_a_run(sample_clip, tmp_path / "ddim.mp4", "--model", tiny_model, "--quiet")[0] == \
        ["diffusers", "torch", "vidrestore.models.flipnet"]
    assert "scipy.stats" in _imported_by_a_run(sample_clip, tmp_path / "dpm.mp4", "--model", tiny_model, "--preset", "quality", "--quiet")[0]


def test_a_wrong_name_is_told_before_torch_is_imported_and_a_wrong_input_before_the_model_loads(sample_clip, tiny_model, tmp_path):
    """Every error of a run's paths came after torch's imports and the model's load: a missing
    input, an output that exists or a file that is no video took 5 s to be told. They are told
    before torch is imported now, and so is what the options tell against the input and the output
    (a codec FFmpeg lacks, a --crf out of its range, sound the container cannot hold, a --start past
    the end, a preview that is no video, a preset, a model or weights not found, a reference photo
    that cannot be read), which took 2 to 5 s; a batch's encoder, preset, model, weights and
    reference photo too, which took 2.5 s (its parsing weights were each item's failure)."""
    existing, text = tmp_path / "exists.mp4", tmp_path / "notes.mp4"
    existing.write_bytes(b"an earlier output")
    text.write_text("not a video")
    sound = stream_copied(tmp_path / "sound.m4a", sample_clip, "audio")
    model = ["--model", tiny_model]
    out = tmp_path / "out.mp4"
    for args, code, message, imported in (([tmp_path / "missing.mp4", out], 3, "input not found", []),
                                          ([text, out], 3, "not a media file", []),
                                          ([sound, out], 3, "no video stream", []),
                                          ([sample_clip, existing], 4, "output exists", []),
                                          ([sample_clip, out, "--preview", existing], 4, "output exists", []),
                                          ([sample_clip, tmp_path / "no" / "out.mp4"], 4, "output folder does not exist", []),
                                          ([sample_clip, out, "--codec", "nosuch"], 4, "not in this FFmpeg build", []),
                                          ([sample_clip, out, "--crf", "99"], 2, "outside what libx264 takes", []),
                                          ([sample_clip, out, "--pix-fmt", "rgb24"], 4, "does not take pixel format rgb24", []),
                                          ([sample_clip, tmp_path / "out.webm"], 4, "cannot hold audio stream 1 (aac)", []),
                                          ([sample_clip, out, "--start", "9"], 2, "is past the end of", []),
                                          ([sample_clip, out, "--preview", tmp_path / "side_%04d.png"], 2, "--preview writes a video", []),
                                          ([sample_clip, out, "--preset", "nosuch"], 6, "no presets config named 'nosuch'", []),
                                          (["batch", sample_clip, "--out", tmp_path / "batch", "--codec", "nosuch"], 4,
                                           "not in this FFmpeg build", []),
                                          (["batch", sample_clip, "--out", tmp_path / "batch", "--preset", "nosuch"], 6,
                                           "no presets config named 'nosuch'", []),
                                          ([sample_clip, out, "--model", "flipnet-smal"], 5, "no model named 'flipnet-smal'", []),
                                          ([sample_clip, out, "--model", text], 5, "is not a .safetensors file", []),
                                          ([sample_clip, out, "--model", tmp_path / "gone.safetensors"], 5, "FLIPNET weights not found", []),
                                          (["batch", sample_clip, "--out", tmp_path / "batch", "--model", "flipnet-smal"], 5,
                                           "no model named 'flipnet-smal'", []),
                                          ([sample_clip, out, "--detector-weights", tmp_path / "gone.pth"], 5,
                                           f"weights file not found: {tmp_path / 'gone.pth'}", []),
                                          ([sample_clip, out, "--parsing-weights", tmp_path / "gone.pth"], 5,
                                           f"weights file not found: {tmp_path / 'gone.pth'}", []),
                                          (["batch", sample_clip, "--out", tmp_path / "batch", "--parsing-weights", tmp_path / "gone.pth"], 5,
                                           f"weights file not found: {tmp_path / 'gone.pth'}", []),
                                          ([sample_clip, out, "--reference", text], 2, f"cannot read the reference photo {text}", []),
                                          (["batch", sample_clip, "--out", tmp_path / "batch", "--reference", tmp_path / "gone.jpg"], 2,
                                           f"cannot read the reference photo {tmp_path / 'gone.jpg'}: No such file", [])):
        modules, err = _imported_by_a_run(*args, *([] if "--model" in args else model), code=code)
        assert (modules, message in err, err.count("\n")) == (imported, True, 1), (args, err)
    assert not out.exists() and not (tmp_path / "batch").exists() and existing.read_bytes() == b"an earlier output"


def test_degrade_command_synthetic_and_with_the_degradation_mode(tmp_path, tiny_model, capsys):
    img, broken = tmp_path / "face.png", tmp_path / "broken.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(img)
    broken.write_bytes(b"not a png")
    assert _run("degrade", img, broken, "--out", tmp_path / "syn", "--synthetic", "archival") == 0
    out = capsys.readouterr()
    assert "wrote 1 degraded picture to" in out.out and "skipped unreadable" in out.err
    assert _run("degrade", img, "--out", tmp_path / "learned", "--model", tiny_model, "--preset", "fast") == 0
    syn = np.asarray(Image.open(tmp_path / "syn" / "face.png"))
    learned = np.asarray(Image.open(tmp_path / "learned" / "face.png"))
    assert syn.shape == (40, 40, 3) and learned.shape == (32, 32, 3)
    assert not np.array_equal(syn, np.asarray(Image.open(img)))
    # a folder's hidden files (macOS's ._face.png of a shared drive) were "skipped unreadable" pictures
    folder = tmp_path / "shared"
    (folder / ".thumbs").mkdir(parents=True)
    for picture in (folder / "face.png", folder / ".thumbs" / "face.png"):
        picture.write_bytes(img.read_bytes())
    (folder / "._face.png").write_bytes(b"\x00\x05\x16\x07 Mac OS X metadata")
    assert _run("degrade", folder, "--out", tmp_path / "from_folder", "--synthetic", "archival") == 0
    out = capsys.readouterr()
    assert "wrote 1 degraded picture to" in out.out and out.err == ""
    # TIFF scans and AVIF photos in a folder were passed over
    Image.open(img).save(folder / "scan.tif")
    Image.open(img).save(folder / "phone.avif")
    assert _run("degrade", folder, "--out", tmp_path / "scans", "--synthetic", "archival") == 0
    assert "wrote 3 degraded pictures to" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "scans").iterdir()) == ["face.png", "phone.png", "scan.png"]


def test_degrade_never_replaces_a_picture_given_nor_one_degraded_picture_with_another(tmp_path, capsys):
    """--out the input folder degraded the user's pictures in place; a.png in two folders, or a.png
    and a.jpg, were written into one out/a.png, the last one kept; an earlier run's pictures were
    replaced without a word, and an --out inside the folder given was degraded again on a rerun."""
    faces = tmp_path / "faces"
    pictures = {}
    for n, name in enumerate(["a/0.png", "b/0.png", "1.jpg"]):
        (faces / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 24, 3), 60 + 40 * n, np.uint8)).save(faces / name)
        pictures[name] = (faces / name).read_bytes()
    _one_line_error(capsys, _run("degrade", faces, "--out", faces), 4,
                    f"--out {faces} holds the pictures given: {faces / 'a/0.png'} would be replaced by a degraded picture; give another folder")
    _one_line_error(capsys, _run("degrade", faces / "a/0.png", faces / "b/0.png", "--out", tmp_path / "o"), 2,
                    f"{faces / 'a/0.png'} and {faces / 'b/0.png'} would both be degraded into {tmp_path / 'o/0.png'}; "
                    "degrade them in separate runs, or rename one")
    assert _run("degrade", faces, "--out", faces / "lq") == 0
    assert capsys.readouterr().out == f"wrote 3 degraded pictures to {faces / 'lq'}\n"
    assert sorted(str(p.relative_to(faces / "lq")) for p in (faces / "lq").rglob("*.png")) == ["1.png", "a/0.png", "b/0.png"]
    first = (faces / "lq/a/0.png").read_bytes()
    _one_line_error(capsys, _run("degrade", faces, "--out", faces / "lq", "--seed", "1"), 4,
                    f"output exists: {faces / 'lq/1.png'} and 2 more (use --overwrite to replace them)")
    assert (faces / "lq/a/0.png").read_bytes() == first
    assert _run("degrade", faces, "--out", faces / "lq", "--seed", "1", "--overwrite") == 0
    assert "wrote 3 degraded pictures" in capsys.readouterr().out  # its own pictures are not taken for inputs
    assert (faces / "lq/a/0.png").read_bytes() != first
    assert all((faces / name).read_bytes() == data for name, data in pictures.items())
    assert not list(faces.rglob(".*"))  # each written whole, then named


def test_degrade_and_sample_refuse_what_they_cannot_do_in_one_line(tmp_path, capsys):
    """degrade wrote "0 degraded images" for a missing input, an empty folder or unreadable files,
    and failed with a traceback for an --out that is a file; sample replaced any file under its
    name (a video of the user's) and failed with tracebacks for 0 frames or an unknown type."""
    img, text, empty = tmp_path / "face.png", tmp_path / "notes.png", tmp_path / "empty"
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(img)
    text.write_text("not a picture")
    empty.mkdir()
    for args, code, said in [((tmp_path / "none.png",), 3, f"input not found: {tmp_path / 'none.png'}"),
                             ((empty,), 3, f"no pictures in {empty}"),
                             ((img, "--out", img), 4, f"--out {img} is a file; give a folder for the degraded pictures")]:
        full = args if "--out" in args else (*args, "--out", tmp_path / "lq")
        _one_line_error(capsys, _run("degrade", *full), code, said)
    assert _run("degrade", text, "--out", tmp_path / "lq") == 3
    assert capsys.readouterr().err.splitlines() == [f"skipped unreadable {text}",
                                                    "vidrestore: error: no file given could be read as a picture (1 tried)"]
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"a video of the user's")
    for args, code, said in [((mine,), 4, f"output exists: {mine} (use --overwrite to replace it)"),
                             ((tmp_path / "s.mp4", "--frames", "0"), 2, "--frames 0: the clip needs 1 frame or more"),
                             ((tmp_path / "s.txt",), 2, "the sample clip is H.264 video with AAC sound: name it .mp4, .mkv or .mov, not s.txt"),
                             # it named --codec, which sample does not take
                             ((tmp_path / "s.webm",), 2, "the sample clip is H.264 video with AAC sound: name it .mp4, .mkv or .mov, not s.webm")]:
        _one_line_error(capsys, _run("sample", *args), code, said)
    assert mine.read_bytes() == b"a video of the user's"
    assert _run("sample", mine, "--frames", "3", "--overwrite") == 0
    with av.open(str(mine)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "face.png", "mine.mp4", "notes.png"]  # no empty --out made


@pytest.mark.parametrize("text, expected", [("0", (None, "0")), ("3=0.4", (("track", 3), "0.4")), ("a=b.jpg", (None, "a=b.jpg")),
                                            (" 2 =x.png", (("track", 2), "x.png")), ("p0=0.5", (("person", 0), "0.5")),
                                            ("p=1.jpg", (None, "p=1.jpg")), ("pics=1.jpg", (None, "pics=1.jpg"))])
def test_per_track_values_split_only_at_a_track_or_person_id(text, expected):
    from vidrestore.cli import _per_track

    assert _per_track(str, "X")(text) == expected


def test_qa_measures_each_restored_track_and_warns_when_identity_drifts(sample_clip, tiny_model, tmp_path, capsys):
    def restore(name, model, *extra):
        report = tmp_path / f"{name}.json"
        assert _run(sample_clip, tmp_path / f"{name}.mp4", "--model", model, "--preset", "fast", "--qa", "--json", report, *extra) == 0
        return json.loads(report.read_text()), capsys.readouterr().err

    kept, kept_err = restore("kept", "none")  # faces pasted back unchanged: the output measures like the input
    (row,) = kept["qa"]
    assert row["id"] == kept["tracks"][0]["id"] and row["frames_evaluated"] == kept["tracks"][0]["frames"]
    assert abs(row["restored"]["warping_error"] - row["input"]["warping_error"]) < 0.2 * row["input"]["warping_error"]
    assert row["restored"]["identity_to_input_min"] > 0.95 and "qa" in kept["timings_s"]
    assert not [n for n in kept["notes"] if n.startswith("qa:")] and "qa " in kept_err  # its progress line
    assert f"qa: track {row['id']} ({row['frames_evaluated']} frames): warping error" in kept_err

    garbled, err = restore("garbled", tiny_model, "--keep-coarse", "0")  # an untrained network's faces whole: nothing like the person
    assert any(n.startswith(f"qa: track {row['id']} drifts") for n in garbled["notes"]), garbled["qa"]
    assert "note: qa: track" in err


@pytest.mark.parametrize("text, expected", [("off", ()), ("0.5,1.2", (0.5, 1.2)), ("0.7, 1.4", (0.7, 1.4))])
def test_profile_fade_option(text, expected):
    from vidrestore.cli import build_restore_parser, options_from_args

    args = build_restore_parser().parse_args(["in.mp4", "out.mp4", "--profile-fade", text])
    assert options_from_args(args).pipeline.profile_fade == expected


def test_hybrid_goes_with_decimate(sample_clip, tmp_path, capsys):
    from vidrestore.cli import build_restore_parser, options_from_args

    args = build_restore_parser().parse_args(["in.mp4", "out.mp4", "--decimate", "--hybrid"])
    assert (options_from_args(args).pipeline.decimate, options_from_args(args).pipeline.hybrid) == (True, True)
    assert _run(sample_clip, tmp_path / "out.mp4", "--model", "none", "--quiet", "--hybrid") == 6
    err = capsys.readouterr().err
    assert "it needs decimate" in err and len(err.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


@pytest.mark.parametrize("text, code", [("0.7", 2), ("steep", 2), ("1.4,0.7", 2)])
def test_a_bad_profile_fade_is_a_usage_or_config_error(sample_clip, tmp_path, capsys, text, code):
    try:
        result = _run(sample_clip, tmp_path / "out.mp4", "--model", "none", "--profile-fade", text, "--quiet")
    except SystemExit as exc:  # argparse's own usage error
        result = exc.code
    assert result == code and "profile" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_keep_coarse_from_the_command_line_reaches_the_run_and_a_negative_size_is_a_usage_error(sample_clip, tmp_path, capsys):
    assert _run(sample_clip, tmp_path / "out.mp4", "--model", "none", "--keep-coarse", "2.5", "--quiet", "--json", tmp_path / "r.json") == 0
    assert json.loads((tmp_path / "r.json").read_text())["keep_coarse"] == 2.5
    assert _run(sample_clip, tmp_path / "plain.mp4", "--model", "none", "--quiet", "--json", tmp_path / "p.json") == 0
    assert json.loads((tmp_path / "p.json").read_text())["keep_coarse"] == 4.0  # configs/pipeline.yaml
    capsys.readouterr()
    with pytest.raises(SystemExit):
        _run(sample_clip, tmp_path / "bad.mp4", "--model", "none", "--keep-coarse", "-1", "--quiet")
    assert "expected a size in pixels, 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "bad.mp4").exists()


def test_strength_is_estimated_by_default_a_number_turns_that_off_and_auto_for_one_track_is_a_usage_error(sample_clip, tmp_path, capsys):
    from vidrestore.faces.settings import strength_for

    assert _run(sample_clip, "--dry-run", "--quiet", "--json", tmp_path / "auto.json") == 0
    report = json.loads((tmp_path / "auto.json").read_text())
    track = report["tracks"][0]
    assert report["measure_strength"] and track["quality_db"] is not None  # the sample's archival damage: restored in full
    assert track["strength"] == pytest.approx(strength_for(track["quality_db"]), abs=0.01) and track["strength"] > 0.9
    assert _run(sample_clip, "--dry-run", "--quiet", "--json", tmp_path / "set.json", "--strength", "0.6") == 0
    report = json.loads((tmp_path / "set.json").read_text())
    assert not report["measure_strength"] and report["tracks"][0]["strength"] == 0.6 and report["tracks"][0]["quality_db"] is None
    assert _run(sample_clip, "--dry-run", "--quiet", "--json", tmp_path / "capped.json", "--strength", "0.6", "--strength", "auto") == 0
    report = json.loads((tmp_path / "capped.json").read_text())  # estimated, and no more than the strength given
    assert report["measure_strength"] and report["tracks"][0]["strength"] == 0.6
    capsys.readouterr()
    assert _run(sample_clip, "--dry-run", "--quiet", "--strength", "0=auto") == 2
    assert "--strength auto is for every track at once" in capsys.readouterr().err


def test_keep_detail_from_the_command_line_reaches_the_run_and_out_of_0_to_1_is_a_one_line_usage_error(sample_clip, tmp_path, capsys):
    assert _run(sample_clip, tmp_path / "out.mp4", "--model", "none", "--keep-detail", "--quiet", "--json", tmp_path / "r.json") == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["keep_detail"] == 1.0 and not report["measure_detail"]  # all of it when no share is given, not measured
    assert _run(sample_clip, tmp_path / "half.mp4", "--model", "none", "--keep-detail", "0.5", "--quiet", "--json", tmp_path / "h.json") == 0
    report = json.loads((tmp_path / "h.json").read_text())
    assert report["keep_detail"] == 0.5 and not report["measure_detail"] and report["tracks"][0]["keep_detail"] == 0.5
    assert _run(sample_clip, tmp_path / "plain.mp4", "--model", "none", "--quiet", "--json", tmp_path / "p.json") == 0
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["keep_detail"] == 0.25 and report["measure_detail"]  # measured, 0.25 where it cannot be
    assert report["tracks"][0]["keep_detail"] == report["tracks"][0]["measured_detail"] is not None
    assert _run(sample_clip, tmp_path / "auto.mp4", "--model", "none", "--keep-detail", "auto", "--quiet", "--json", tmp_path / "a.json") == 0
    assert json.loads((tmp_path / "a.json").read_text())["tracks"] == report["tracks"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        _run(sample_clip, tmp_path / "word.mp4", "--model", "none", "--keep-detail", "most", "--quiet")
    assert "expected a share from 0 to 1 or auto, got 'most'" in capsys.readouterr().err
    assert _run(sample_clip, tmp_path / "bad.mp4", "--model", "none", "--keep-detail", "2", "--quiet") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--keep-detail: expected a value from 0 to 1" in err
    assert not (tmp_path / "bad.mp4").exists()


def test_grain_from_the_command_line_reaches_the_run_and_out_of_0_to_1_is_a_one_line_usage_error(sample_clip, tmp_path, capsys):
    assert _run(sample_clip, tmp_path / "out.mp4", "--model", "none", "--grain", "0.5", "--quiet", "--json", tmp_path / "r.json") == 0
    assert json.loads((tmp_path / "r.json").read_text())["grain"] == 0.5
    assert _run(sample_clip, tmp_path / "bad.mp4", "--model", "none", "--grain", "1.5", "--quiet") == 2
    err = capsys.readouterr().err
    assert "--grain: expected a value from 0 to 1, got 1.5" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.mp4").exists()


def test_progress_rate_counts_only_work_timed_since_the_stage_first_reported():
    """The first report of a stage comes after its first window (16 frames in ~5 s here), whose
    start the bar never saw: counting those frames would double the rate and halve the ETA."""
    from vidrestore.cli import ProgressBar

    bar = ProgressBar(quiet=False)
    bar.stage, bar.t0, bar.done0 = "restore", 100.0, 16
    first = bar.line("restore", 16, 48, 16, now=100.0)
    assert "--/s" in first and first.endswith("ETA      ?")
    assert bar.line("restore", 32, 48, 32, now=105.0).endswith("3.2/s  ETA     5s")
    assert bar.line("restore", 48, 48, 48, now=110.0).endswith("3.2/s  ETA     0s")


@pytest.mark.parametrize("seconds, shown", [(None, "?"), (-3, "0s"), (5, "5s"), (59.6, "1m00s"), (725, "12m05s"),
                                             (12300, "3h25m"), (86400, "24h00m")])
def test_the_time_left_reads_in_hours_and_minutes(seconds, shown):
    """A film's restoration on a CPU showed "ETA 86400s"."""
    from vidrestore.statusline import eta_text

    assert eta_text(seconds) == shown


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_in_a_log_is_a_line_now_and_then_and_on_a_terminal_one_line_rewritten(capsys, monkeypatch, terminal):
    """Under nohup or a scheduler, stderr is a file: the bar rewrote one line with carriage returns
    five times a second for the whole run (megabytes for a film, and nothing for `tail` until the
    end). There it writes a line as each stage starts, every 30 s, and as it ends."""
    import sys
    import time

    from vidrestore.cli import ProgressBar
    from vidrestore.statusline import LOG_EVERY_S

    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    bar = ProgressBar(quiet=False)
    for t, stage, done in [(1, "analyse", 8), *((1 + k, "analyse", 8 + k) for k in range(1, int(LOG_EVERY_S))),
                           (2 + LOG_EVERY_S, "analyse", 50), (3 + LOG_EVERY_S, "analyse", 100), (4 + LOG_EVERY_S, "restore", 16)]:
        clock[0] = float(t)
        bar(stage, done, 100, 0)
    bar.close()
    err = capsys.readouterr().err
    if terminal:  # each stage on one line, rewritten
        assert err.count("\n") == 2 and err.count("\r") == int(LOG_EVERY_S) + 3
    else:
        lines = err.splitlines()
        assert "\r" not in err and err.endswith("\n")
        assert [line.split()[:3] for line in lines] == [["analyse", "frames", "8/100"], ["analyse", "frames", "50/100"],
                                                        ["analyse", "frames", "100/100"], ["restore", "frames", "16/100"]]


def test_an_output_container_that_cannot_hold_every_stream_stops_the_run_unless_told(sample_clip, tmp_path, capsys):
    """A font cannot go into .mp4: the run stops before any work with one line that names it and
    the way out; with --drop-streams it is left out, and the SRT subtitles, which .mp4 cannot hold
    either, are converted to its timed text; the report says both."""
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        images = [f.image for f in r][:12]
    h, w = images[0].shape[:2]
    plain = make_clip(tmp_path / "plain.mkv", [i * 40 for i in range(12)], size=(h, w), images=images, audio=True,
                      subtitles=[(0, "hello")])
    src = dressed_clip(tmp_path / "programme.mkv", plain)
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    assert _run(src, out, "--model", "none", "--detector", "dlib", "--quiet") == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot hold attachment stream 3 (font.ttf) of" in err and "--drop-streams" in err
    assert not out.exists()
    assert _run(src, out, "--model", "none", "--detector", "dlib", "--quiet", "--x264-preset", "ultrafast",
                "--drop-streams", "--json", report) == 0
    rep = json.loads(report.read_text())
    assert rep["tracks"] and {"left out, as .mp4 files cannot hold them: attachment stream 3 (font.ttf)",
                              "converted to mov_text, as .mp4 files cannot hold them: subtitle stream 2 (subrip)"} <= set(rep["notes"])
    assert _streams(out)[:3] == ["video", "audio", "subtitle"]
    with av.open(str(out)) as c:
        assert [bytes(p)[2:] for p in c.demux(subtitles=0) if p.size > 2] == [b"hello"]  # MP4 states its length first
    assert not [note for note in rep["notes"] if "flags" in note]  # .mp4 keeps commentary and forced
    mov = tmp_path / "out.mov"
    assert _run(src, mov, "--model", "none", "--detector", "dlib", "--quiet", "--x264-preset", "ultrafast",
                "--drop-streams", "--json", report) == 0
    assert (".mov files do not keep these flags of the input's tracks, which are lost: audio stream 1 (aac): commentary; "
            "subtitle stream 2 (subrip): forced") in json.loads(report.read_text())["notes"]


def _data_packets(path: Path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as c:
        return [(round(float(p.pts * p.time_base - c.streams.video[0].start_time * c.streams.video[0].time_base), 3), bytes(p))
                for p in c.demux(c.streams.data[0]) if p.size]


def test_a_drones_klv_telemetry_is_copied_with_its_times_or_refused_in_one_line(sample_clip, tmp_path, capsys):
    """A data stream FFmpeg has no decoder for (KLV in MPEG-TS, as drones write it; SCTE-35,
    GoPro's telemetry) has no codec context in PyAV: every output crashed with a traceback. It is
    copied where the container holds it (.ts, .mov), packet for packet at its times; where not, one
    line names it and a container that does (not .mkv, which does not hold it either)."""
    src = data_clip(tmp_path / "drone.ts", sample_clip, "klv", KLV_KEY)
    for name in ("out.ts", "out.mov"):
        out = tmp_path / name
        assert _run(src, out, "--model", "none", "--detector", "dlib", "--quiet", "--x264-preset", "ultrafast") == 0
        assert read_pts(out) == read_pts(src) if name == "out.ts" else len(read_pts(out)) == len(read_pts(src))
        assert _data_packets(out) == _data_packets(src) and len(_data_packets(src)) >= 5
    for name in ("out.mp4", "out.mkv"):
        assert _run(src, tmp_path / name, "--model", "none", "--detector", "dlib", "--quiet") == 4
        assert capsys.readouterr().err.strip() == (f"vidrestore: error: .{name[4:]} files cannot hold data stream 2 (klv) of drone.ts; "
                                                   "write a .mov, or give --drop-streams to leave them out")
        assert not (tmp_path / name).exists()
    report = tmp_path / "r.json"
    assert _run(src, tmp_path / "out.mp4", "--model", "none", "--detector", "dlib", "--quiet", "--drop-streams", "--json", report) == 0
    assert "left out, as .mp4 files cannot hold them: data stream 2 (klv)" in json.loads(report.read_text())["notes"]


def test_a_gopros_telemetry_track_stays_in_its_mp4(sample_clip, tmp_path):
    """GoPro's MP4s carry their telemetry (GPMF: GPS, gyro) in a data track FFmpeg has no decoder
    for: restoring one crashed before any work. The restored .mp4 keeps it, packet for packet, with
    its name."""
    src = data_clip(tmp_path / "GX010001.MP4", sample_clip, "bin_data", GPMF_KEY, handler="GoPro MET")
    out = tmp_path / "out.mp4"
    assert _run(src, out, "--model", "none", "--detector", "dlib", "--quiet", "--strength", "1", "--x264-preset", "ultrafast") == 0
    assert _streams(out) == ["video", "audio", "data"] and len(read_pts(out)) == len(read_pts(src))
    assert _data_packets(out) == _data_packets(src) and len(_data_packets(src)) >= 5
    with av.open(str(out)) as c:
        assert c.streams.data[0].metadata["handler_name"] == "GoPro MET"


def test_an_encoder_that_refuses_the_video_is_a_one_line_output_error(sample_clip, tmp_path, capsys):
    """DV takes only the PAL and NTSC frame sizes: the encoder fails to open on the first frame,
    which used to end in a traceback."""
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        images = [f.image for f in r][:8]  # a face, so the video is encoded, not copied
    h, w = images[0].shape[:2]
    clip = make_clip(tmp_path / "ms.mp4", [i * 40 for i in range(8)], size=(h, w), images=images)
    out = tmp_path / "out.avi"
    assert _run(clip, out, "--model", "none", "--detector", "dlib", "--codec", "dvvideo", "--quiet") == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dvvideo encoder refused" in err and "try another --codec" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ms.mp4"]


def test_a_still_picture_is_restored_into_a_picture(sample_clip, tmp_path, capsys):
    """A photo is a shot of one frame: its face was dropped as too short-lived a track, and the
    picture could only be written by naming its encoder."""
    import cv2

    with av.open(str(sample_clip)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), frame[..., ::-1])
    out, report = tmp_path / "restored.png", tmp_path / "r.json"
    assert _run(photo, out, "--model", "none", "--detector", "dlib", "--quiet", "--json", report) == 0
    assert len(json.loads(report.read_text())["tracks"]) == 1
    with av.open(str(out)) as c:
        pictures = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert c.streams.video[0].codec_context.name == "png" and c.streams.video[0].format.name == "rgb24"
    assert len(pictures) == 1 and pictures[0].shape == frame.shape
    # its summary in a photo's words: it was "1 frame, 1 shot, 1 face track ... video png, rgb24"
    capsys.readouterr()
    assert _run(photo, out, "--model", "none", "--detector", "dlib", "--overwrite") == 0
    (summary,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("wrote")]
    assert summary.startswith(f"wrote {out}: 1 face; detector dlib") and "; picture png, rgb24" in summary and "1 frame" not in summary
    assert _run(sample_clip, tmp_path / "video.png", "--model", "none", "--quiet") == 4  # a video into one picture
    # said first, and not hidden by the JPEG encoder's refusal of limited-range 4:4:4 video
    capsys.readouterr()
    _one_line_error(capsys, _run(sample_clip, tmp_path / "video.jpg", "--model", "none", "--pix-fmt", "yuv444p"), 4,
                    "error: .jpg files hold one picture, and sample.mp4 has about 24 frames")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "r.json", "restored.png"]


# Runs the CLI once for each of its arguments (an argument list as JSON) in one process: the
# process's start-up is paid once, and a crash still fails only the test that started it.
_EACH_RUN = "import json, sys; from vidrestore.cli import main; sys.exit(max(main(json.loads(a)) for a in sys.argv[1:]))"


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_photos_icc_profile_is_kept_in_a_picture_and_named_where_it_cannot_be(sample_clip, tmp_path, suffix):
    """A PNG photo with an ICC profile crashed the process (a segmentation fault: PyAV freed the
    profile's name twice), and a TIFF or WebP output lost the profile without a word (FFmpeg's
    encoders of both write none). Run in a process of its own, so that a crash fails this test alone."""
    from PIL import Image, ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with av.open(str(sample_clip)) as c:
        Image.fromarray(next(c.decode(video=0)).to_ndarray(format="rgb24")).save(tmp_path / f"photo{suffix}", icc_profile=profile)
    outputs = ("restored.png", "restored.jpg", "restored.tif", "restored.webp")
    runs = [[str(tmp_path / f"photo{suffix}"), str(tmp_path / output), "--model", "none", "--detector", "dlib", "--strength", "1",
             "--quiet", "--json", str(tmp_path / f"{output}.json")] for output in outputs]
    proc = subprocess.run([sys.executable, "-c", _EACH_RUN, *map(json.dumps, runs)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for output in outputs:
        report = tmp_path / f"{output}.json"
        notes = [n for n in json.loads(report.read_text())["notes"] if "ICC" in n]
        assert len(json.loads(report.read_text())["tracks"]) == 1
        with Image.open(tmp_path / output) as restored:
            kept = restored.info.get("icc_profile")
        assert kept == profile and notes == []


def test_webp_pictures_are_read_and_written_and_lossless_at_crf_0(sample_clip, tmp_path, capsys):
    """A WebP photo (as the web serves them) could be read but not written back: .webp output said
    that libx264 video does not fit in it. A numbered WebP sequence was not taken for one."""
    from PIL import Image

    with av.open(str(sample_clip)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(6), c.decode(video=0))]
    Image.fromarray(frames[0]).save(tmp_path / "photo.webp", quality=80)
    out, report = tmp_path / "restored.webp", tmp_path / "r.json"
    assert _run(tmp_path / "photo.webp", out, "--model", "none", "--detector", "dlib", "--strength", "1", "--quiet", "--json", report) == 0
    assert json.loads(report.read_text())["encoder"] == "libwebp, yuv420p, quality 90" and json.loads(report.read_text())["tracks"]
    with Image.open(out) as restored:
        assert restored.format == "WEBP" and restored.size == (frames[0].shape[1], frames[0].shape[0])
    Image.fromarray(frames[0]).save(tmp_path / "photo.png")
    lossless = tmp_path / "lossless.webp"
    assert _run(tmp_path / "photo.png", lossless, "--model", "none", "--strength", "0", "--crf", "0", "--quiet", "--json", report) == 0
    assert json.loads(report.read_text())["encoder"] == "libwebp, bgra, lossless 1"
    with Image.open(lossless) as written:
        assert np.array_equal(np.asarray(written.convert("RGB")), frames[0])
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(tmp_path / "flat.webp", quality=80)  # no face: copied
    assert _run(tmp_path / "flat.webp", tmp_path / "flat_out.webp", "--model", "none", "--quiet", "--json", report) == 0
    assert (tmp_path / "flat_out.webp").read_bytes() == (tmp_path / "flat.webp").read_bytes()
    (tmp_path / "scan").mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "scan" / f"r_{i + 7:03d}.webp", quality=90)
    assert _run(tmp_path / "scan" / "r_%03d.webp", tmp_path / "scan.mp4", "--model", "none", "--quiet") == 0
    with av.open(str(tmp_path / "scan.mp4")) as c:
        assert len(list(c.decode(video=0))) == 6
    capsys.readouterr()
    _one_line_error(capsys, _run(tmp_path / "scan.mp4", tmp_path / "scan" / "o_%03d.webp", "--model", "none"), 4,
                    "vidrestore cannot write .webp sequences; write a .png (lossless) or .jpg sequence")


def test_a_phone_photo_turned_by_its_exif_tag_comes_out_upright(sample_clip, tmp_path):
    """FFmpeg turns a JPEG's EXIF orientation into a rotation, and attaches the EXIF block as side
    data of a kind PyAV 18 cannot name, which crashed the writer. A re-encoded picture carries no
    orientation, so it is written upright."""
    from PIL import Image

    with av.open(str(sample_clip)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: stored turned the other way
    photo = tmp_path / "phone.jpg"
    Image.fromarray(frame).transpose(Image.Transpose.ROTATE_90).save(photo, exif=exif.tobytes(), quality=95)
    out, report = tmp_path / "restored.jpg", tmp_path / "r.json"
    assert _run(photo, out, "--model", "none", "--detector", "dlib", "--quiet", "--json", report) == 0
    assert len(json.loads(report.read_text())["tracks"]) == 1
    restored = np.asarray(Image.open(out))
    assert restored.shape == frame.shape and np.abs(restored.astype(float) - frame).mean() < 6


def test_a_photos_exif_block_is_kept_in_a_jpeg_or_png_and_says_upright(sample_clip, tmp_path):
    """FFmpeg's JPEG encoder writes no EXIF: a restored family photo lost its camera and the date
    photo libraries sort it by. The block is copied, its orientation set to upright (the picture is
    written as it is shown); TIFF and WebP outputs, which do not get it, are named in the report.
    A restored picture says so in its comment, as a restored video does (it carried nothing)."""
    from PIL import Image, ImageOps

    from vidrestore import __version__

    with av.open(str(sample_clip)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x0132] = 6, "Kodak", "1962:07:04 12:00:00"  # shown turned 90 degrees clockwise
    photo = tmp_path / "scan.jpg"
    Image.fromarray(frame).transpose(Image.Transpose.ROTATE_90).save(photo, exif=exif.tobytes(), quality=95)
    for output in ("restored.jpg", "restored.png", "restored.tif", "restored.webp"):
        report = tmp_path / f"{output}.json"
        assert _run(photo, tmp_path / output, "--model", "none", "--detector", "dlib", "--quiet", "--json", report) == 0
        notes = [n for n in json.loads(report.read_text())["notes"] if "EXIF" in n]
        with av.open(str(tmp_path / output)) as c:  # FFmpeg still reads it
            assert next(c.decode(video=0)).to_ndarray(format="rgb24").shape == frame.shape
        with Image.open(tmp_path / output) as restored:
            kept = {k: v for k, v in restored.getexif().items() if k in (0x0112, 0x010F, 0x0132)}
            comment = restored.info.get("comment", restored.info.get("Comment", ""))
            restored_tags = dict(getattr(restored, "tag_v2", {}))  # a TIFF's, its ImageDescription among them
            shown = ImageOps.exif_transpose(restored)
            assert np.abs(np.asarray(shown.convert("RGB"), float) - frame).mean() < 6  # upright, as the photo is shown
        if output.endswith(".tif"):
            assert notes == [("the photo's EXIF block (camera, date taken, exposure) is not written into the .tif output; "
                             "write a .jpg, .png or .webp to keep it")]
            assert comment == "" and restored_tags[270] == f"faces restored by vidrestore {__version__} with none (pass-through)"
        else:
            assert kept == {0x0112: 1, 0x010F: "Kodak", 0x0132: "1962:07:04 12:00:00"} and notes == []
        if output.endswith((".jpg", ".png")):  # WebP has no comment chunk
            assert (comment.decode() if isinstance(comment, bytes) else comment) == f"faces restored by vidrestore {__version__} with none (pass-through)"
    # a batch's photos lost both (its items are joined by another path)
    assert main(["batch", str(photo), "--out", str(tmp_path / "batch"), "--model", "none", "--detector", "dlib", "--quiet"]) == 0
    with Image.open(tmp_path / "batch" / "scan.jpg") as restored:
        assert {k: v for k, v in restored.getexif().items() if k in (0x0112, 0x010F, 0x0132)} == \
            {0x0112: 1, 0x010F: "Kodak", 0x0132: "1962:07:04 12:00:00"}
        assert restored.info["comment"].decode() == f"faces restored by vidrestore {__version__} with none (pass-through)"


def test_a_picture_without_a_face_is_converted_to_the_type_asked_for(tmp_path):
    import cv2

    photo = tmp_path / "noface.jpg"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    out, report = tmp_path / "out.png", tmp_path / "r.json"
    assert _run(photo, out, "--model", "none", "--detector", "dlib", "--quiet", "--json", report) == 0
    assert json.loads(report.read_text())["notes"] == ["no face found: the picture was converted to .png unchanged"]
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "png"
        converted = next(c.decode(video=0)).to_ndarray(format="rgb24")
    with av.open(str(photo)) as c:
        assert np.abs(converted.astype(float) - next(c.decode(video=0)).to_ndarray(format="rgb24")).max() <= 2
    # into its own type it is copied as it is; the note said "the video was copied without re-encoding"
    assert _run(photo, tmp_path / "same.jpg", "--model", "none", "--detector", "dlib", "--quiet", "--json", report, "--overwrite") == 0
    assert json.loads(report.read_text())["notes"][0] == "no face found: the picture was copied as it is"
    assert (tmp_path / "same.jpg").read_bytes() == photo.read_bytes()


@pytest.mark.parametrize("mode, written", [("LA", "png, rgba"), ("I;16", "png, gray16be"), ("RGBA", "png, rgba"),
                                           ("RGB", "png, rgb24"), ("LA", "libwebp, bgra, quality 90")])
def test_a_grey_or_transparent_photo_keeps_its_format_in_a_png(sample_clip, tmp_path, mode, written):
    """A grey PNG with transparency came back as RGB without it, and the report said that PNG
    stores no alpha; a 16-bit grey scan came back as 16-bit RGB; a transparent one written as WebP
    lost its alpha, which WebP holds."""
    from PIL import Image

    with av.open(str(sample_clip)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    image = Image.fromarray(frame)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
        image.putalpha(Image.fromarray(np.linspace(40, 255, frame.shape[1]).astype(np.uint8)[None].repeat(frame.shape[0], 0)))
    image.save(tmp_path / "photo.png")
    out, report = tmp_path / ("out.webp" if "webp" in written else "out.png"), tmp_path / "r.json"
    assert _run(tmp_path / "photo.png", out, "--model", "none", "--strength", "1", "--quiet", "--json", report) == 0
    assert json.loads(report.read_text())["encoder"] == written and json.loads(report.read_text())["tracks"]
    assert not [n for n in json.loads(report.read_text())["notes"] if "alpha" in n]
    with av.open(str(tmp_path / "photo.png")) as a, av.open(str(out)) as b:
        before, after = (next(c.decode(video=0)).to_ndarray(format="rgba").astype(float) for c in (a, b))
    assert np.abs(before[..., 3] - after[..., 3]).max() == 0  # the transparency, sample for sample
    assert np.abs(before - after).mean() < (2 if "webp" in written else 1)  # the pass-through's resampling; WebP's loss


@pytest.mark.parametrize("given", ["grey.jpg", "grey.png", "colour.jpg"])
def test_a_grey_photo_written_as_a_jpeg_is_grey_with_its_tags(sample_clip, tmp_path, given):
    """A grey scan came back from .jpg to .jpg in colour (three components of neutral chroma):
    FFmpeg's JPEG encoder takes no grey format. It is coded again from its luma, within 2 levels of
    FFmpeg's, and keeps its EXIF block and the provenance comment; a colour photo stays in colour."""
    from PIL import Image

    with av.open(str(sample_clip)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    image = Image.fromarray(frame) if given.startswith("colour") else Image.fromarray(frame).convert("L")
    exif = Image.Exif()
    exif[0x0132] = "1971:05:02 10:00:00"  # DateTime
    image.save(tmp_path / given, exif=exif.tobytes(), **({"quality": 95} if given.endswith(".jpg") else {}))
    out, report = tmp_path / "out.jpg", tmp_path / "r.json"
    assert _run(tmp_path / given, out, "--model", "none", "--strength", "1", "--quiet", "--json", report) == 0
    written = json.loads(report.read_text())
    grey = not given.startswith("colour")
    assert written["tracks"] and written["encoder"] == ("mjpeg, gray, quantiser 3" if grey else "mjpeg, yuvj420p, quantiser 3")
    with Image.open(out) as restored:
        assert restored.mode == ("L" if grey else "RGB") and restored.getexif()[0x0132] == "1971:05:02 10:00:00"
        assert restored.info["comment"].startswith(b"faces restored by vidrestore")
        levels = np.asarray(restored.convert("L"), float)
    assert np.abs(levels - np.asarray(image.convert("L"), float)).mean() < 1.5  # the pass-through's resampling and JPEG's loss
    if grey:  # FFmpeg's picture, coded again: the levels of its luma, within 2
        from vidrestore.io.photo import _grey_jpeg

        with av.open(str(out)) as c:
            colour = next(c.decode(video=0))
        with av.open(str(tmp_path / "ffmpeg.jpg"), "w") as c:
            stream = c.add_stream("mjpeg", rate=1)
            stream.width, stream.height, stream.pix_fmt = colour.width, colour.height, "yuvj444p"
            c.mux(stream.encode(colour.reformat(format="yuvj444p")) + stream.encode(None))
        coloured = (tmp_path / "ffmpeg.jpg").read_bytes()
        with Image.open(tmp_path / "ffmpeg.jpg") as ffmpeg:
            luma = np.asarray(ffmpeg.convert("YCbCr"), float)[..., 0]
        regraded = np.asarray(Image.open(io.BytesIO(_grey_jpeg(coloured))), float)
        assert Image.open(io.BytesIO(_grey_jpeg(coloured))).mode == "L" and np.abs(regraded - luma).max() <= 2


def test_an_avif_photo_is_restored_and_a_heif_made_of_tiles_is_refused_alone_and_in_a_batch(sample_clip, tmp_path, capsys):
    """AVIF (and HEIC) photos were not found by a batch's folder search, and a run called one a
    video. A HEIF picture made of tiles (a phone's HEIC) is read by PyAV as one stream a tile:
    refused with its cure before any work (here a tiled one is made by naming the primary item of
    an AVIF a grid)."""
    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this FFmpeg has no AV1 encoder to make an AVIF with")
    from vidrestore.io.photo import heif_primary_type

    with av.open(str(sample_clip)) as c:
        frame = next(c.decode(video=0)).reformat(format="yuv420p")
    photos = tmp_path / "photos"
    photos.mkdir()
    with av.open(str(photos / "photo.avif"), "w", format="avif") as o:
        stream = o.add_stream("libsvtav1", rate=1)
        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "yuv420p"
        o.mux(stream.encode(frame) + stream.encode(None))
    data = (photos / "photo.avif").read_bytes()
    (photos / "IMG_0001.heic").write_bytes(data.replace(b"av01Color", b"gridColor", 1))
    assert heif_primary_type(photos / "photo.avif") == b"av01" and heif_primary_type(photos / "IMG_0001.heic") == b"grid"
    assert heif_primary_type(sample_clip) is None  # an MP4 is no HEIF picture
    capsys.readouterr()
    for out in (tmp_path / "restored.jpg", tmp_path / "restored.avif"):
        assert _run(photos / "photo.avif", out, "--model", "none", "--detector", "dlib", "--strength", "1") == 0
        (summary,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("wrote")]
        assert summary.startswith(f"wrote {out}: 1 face; ") and "; picture " in summary
        with av.open(str(out)) as c:
            assert len([f for f in c.decode(video=0)]) == 1
    # a photo's output of no known type is told a picture's types (it was told .mp4, .mkv, .mov or .webm)
    _one_line_error(capsys, _run(photos / "photo.avif", tmp_path / "out.heic", "--model", "none"), 4,
                    "no container is known by the name 'out.heic': end it in a picture type such as .jpg, .png, .tif, .webp or "
                    ".avif (FFmpeg writes no HEIC; .avif is HEIF's AV1 kind)")
    _one_line_error(capsys, _run(photos / "IMG_0001.heic", tmp_path / "tiles.jpg", "--model", "none"), 3,
                    "IMG_0001.heic is a HEIF picture made of tiles (as a phone's HEIC is), which is read here tile by tile: "
                    "convert it to JPEG or PNG first")
    assert not (tmp_path / "tiles.jpg").exists()
    report = tmp_path / "b.json"
    assert main(["batch", str(photos), "--out", str(tmp_path / "b"), "--model", "none", "--detector", "dlib", "--quiet",
                 "--retries", "0", "--json", str(report)]) == 1
    items = {Path(i["input"]).name: i for i in json.loads(report.read_text())["items"]}
    assert items["photo.avif"]["status"] == "done" and "made of tiles" in items["IMG_0001.heic"]["error"]


def _png_sequence(pattern, images, first: int):
    import cv2

    pattern.parent.mkdir(exist_ok=True)
    for n, image in enumerate(images, start=first):
        cv2.imwrite(str(pattern.parent / (pattern.name % n)), image[..., ::-1])
    return pattern


def _decoded(path):
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


def test_an_image_sequence_is_restored_into_one_that_keeps_its_frame_numbers(sample_clip, tmp_path, capsys):
    """A film scan numbered from a timecode (86400: one hour at 24 fps), one picture damaged: each
    restored picture keeps its number, the damaged one is named and left out (its number too, so
    nothing after it shifts), and away from the face every pixel is the scan's."""
    with av.open(str(sample_clip)) as c:
        images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    src = _png_sequence(tmp_path / "scan" / "r_%06d.png", images, 86400)
    (src.parent / "r_086410.png").write_bytes(b"not a picture")
    (tmp_path / "out").mkdir()
    out, report = tmp_path / "out" / "r_%06d.png", tmp_path / "r.json"
    common = ["--model", "none", "--detector", "dlib", "--quiet"]
    assert _run(src, out, *common, "--json", report) == 0
    numbers = [n for n in range(86400, 86424) if n != 86410]
    assert sorted(p.name for p in out.parent.iterdir()) == [f"r_{n:06d}.png" for n in numbers]  # nothing hidden left
    data = json.loads(report.read_text())
    assert data["frames_in"] == data["frames_out"] == 23 and data["tracks"]
    assert any("r_086410.png" in note for note in data["notes"])
    for n in (86405, 86418):  # inside the track, past its fade-in
        same = _decoded(out.parent / f"r_{n:06d}.png") == images[n - 86400]
        assert 0.75 < same.all(axis=2).mean() < 1  # the face was pasted back; the rest is the scan's own pixels
    assert _run(src, out, *common) == 4
    assert "output exists: 23 pictures" in capsys.readouterr().err
    split = tmp_path / "split" / "r_%06d.png"
    split.parent.mkdir()
    assert _run(src, split, *common, "--segment-frames", "8") == 0  # segments joined into pictures
    assert [p.read_bytes() for p in sorted(split.parent.iterdir())] == [p.read_bytes() for p in sorted(out.parent.iterdir())]


def test_a_dpx_scan_is_played_at_the_rate_its_headers_state_and_keeps_its_timecode(sample_clip, tmp_path):
    """A scan at 24 fps came out at FFmpeg's 25 unless told, and its timecode was lost: now the
    headers' rate times the video (``--frame-rate`` still wins) and the first picture's timecode
    becomes the video's, a timecode track in .mov (it was counted from FFmpeg's 25 to the scan's
    24 a second, so 01:00:00:05 became 01:00:00:04, a frame off for a conform)."""
    from conftest import dpx_scan

    from vidrestore.io import probe

    with av.open(str(sample_clip)) as c:
        images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    src = dpx_scan(tmp_path / "scan" / "s_%07d.dpx", images, 86400, 24, "01:00:00:05")
    info = probe(src)
    assert (info.stated_rate, info.timecode, info.frames) == (24, "01:00:00:05", 24)
    for rate, name in [(None, "film.mov"), ("25", "fast.mov")]:
        assert _run(src, tmp_path / name, "--model", "none", "--quiet", *(["--frame-rate", rate] if rate else [])) == 0
        with av.open(str(tmp_path / name)) as c:
            stream = c.streams.video[0]
            assert stream.average_rate == Fraction(rate or 24)
            assert {k.lower(): v for k, v in stream.metadata.items()}["timecode"] == "01:00:00:05"
            assert [s.type for s in c.streams] == ["video", "data"]  # QuickTime's timecode track
            seconds = [float(f.pts * f.time_base) for f in c.decode(stream)]
        assert seconds == pytest.approx([i / float(rate or 24) for i in range(24)], abs=1e-3)
    restored = tmp_path / "restored" / "s_%07d.dpx"  # DPX into DPX: FFmpeg's encoder writes no time, so it is carried
    restored.parent.mkdir()
    assert _run(src, restored, "--model", "none", "--quiet") == 0
    with av.open(str(restored), options={"start_number": "86400"}) as c:
        codes = [dict(f.metadata).get("timecode") for f in c.decode(video=0)]
    assert codes == [f"01:00:{n // 24:02d}:{n % 24:02d}" for n in range(5, 29)]
    assert probe(restored).stated_rate == 24
    png = _png_sequence(tmp_path / "png" / "p_%03d.png", images[:2], 1)
    assert (probe(png).stated_rate, probe(png).timecode) == (None, "")


def test_a_sequence_becomes_a_video_at_the_rate_asked_and_a_video_becomes_a_sequence(sample_clip, tmp_path, capsys):
    with av.open(str(sample_clip)) as c:
        images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    src = _png_sequence(tmp_path / "frames" / "f_%04d.png", images, 1)
    film = tmp_path / "film.mkv"
    assert _run(src, film, "--model", "none", "--quiet", "--frame-rate", "24000/1001") == 0
    with av.open(str(film)) as c:
        stream = c.streams.video[0]
        assert stream.average_rate == Fraction(24000, 1001)
        seconds = [float(f.pts * f.time_base) for f in c.decode(stream)]
    assert len(seconds) == 24 and seconds == pytest.approx([i * 1001 / 24000 for i in range(24)], abs=1e-3)
    assert _run(sample_clip, tmp_path / "a.mkv", "--model", "none", "--quiet", "--frame-rate", "24") == 2
    assert "a video keeps its own timing" in capsys.readouterr().err

    tiffs = tmp_path / "tiffs" / "t_%03d.tif"
    tiffs.parent.mkdir()
    assert _run(sample_clip, tiffs, "--model", "none", "--quiet") == 4  # the clip's audio has nowhere to go
    assert capsys.readouterr().err.strip() == ("vidrestore: error: .tif pictures cannot hold audio stream 1 (aac) of sample.mp4; give "
                                               "--drop-streams to write the pictures without them, or write a video file (.mkv) to keep them")
    assert _run(sample_clip, tiffs, "--model", "none", "--quiet", "--drop-streams") == 0
    assert sorted(p.name for p in tiffs.parent.iterdir()) == [f"t_{n:03d}.tif" for n in range(1, 25)]
    with av.open(str(tiffs.parent / "t_001.tif")) as c:
        assert c.streams.video[0].codec_context.name == "tiff"


def test_a_grey_sequence_written_as_jpegs_is_grey_picture_for_picture(tmp_path):
    """Each JPEG of a grey scan's sequence came out in colour (three components of neutral chroma)."""
    import cv2

    rng = np.random.default_rng(2)
    src = tmp_path / "in" / "g_%02d.png"
    src.parent.mkdir()
    for n in range(1, 4):
        cv2.imwrite(str(src.parent / (src.name % n)), rng.integers(0, 256, (40, 56), dtype=np.uint8))
    out, report = tmp_path / "out" / "g_%02d.jpg", tmp_path / "r.json"
    out.parent.mkdir()
    assert _run(src, out, "--model", "none", "--detector", "dlib", "--quiet", "--json", report) == 0
    assert json.loads(report.read_text())["encoder"].startswith("mjpeg, gray,")
    assert sorted(p.name for p in out.parent.iterdir()) == ["g_01.jpg", "g_02.jpg", "g_03.jpg"]
    for n in range(1, 4):
        with Image.open(out.parent / (out.name % n)) as picture:
            written = np.asarray(picture, float)
            assert picture.mode == "L" and np.abs(written - cv2.imread(str(src.parent / (src.name % n)), 0)).mean() < 12


def test_a_sequence_without_faces_is_copied_picture_for_picture(tmp_path, capsys):
    rng = np.random.default_rng(1)
    src = _png_sequence(tmp_path / "in" / "p_%02d.png", [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(6)], 5)
    out, report = tmp_path / "out" / "p_%02d.png", tmp_path / "r.json"
    out.parent.mkdir()
    assert _run(src, out, "--model", "none", "--detector", "dlib", "--quiet", "--json", report) == 0
    assert [p.read_bytes() for p in sorted(out.parent.iterdir())] == [p.read_bytes() for p in sorted(src.parent.iterdir())]
    assert sorted(p.name for p in out.parent.iterdir()) == [f"p_{n:02d}.png" for n in range(5, 11)]
    assert json.loads(report.read_text())["notes"] == ["no face found: the video was copied without re-encoding"]
    assert _run(src.parent, tmp_path / "x.mp4", "--model", "none", "--quiet") == 3  # a folder names the sequence it holds
    assert f"input is a folder: {src.parent}; it holds the image sequence {src} (give that, quoted)" in capsys.readouterr().err


def test_pictures_of_a_type_it_does_not_take_are_named_as_such(sample_clip, tmp_path, capsys):
    """A .tga output (or an .exr one, before OpenEXR was taken) was written by whatever encoder came
    first and crashed the writer with a traceback; a sequence of them as input was "not found"."""
    for output in ("plate_%04d.tga", "frame.tga"):
        assert _run(sample_clip, tmp_path / output, "--model", "none", "--quiet") == 4
        assert f"cannot write {output}: vidrestore does not take {output[-4:]} pictures" in capsys.readouterr().err
    (tmp_path / "plate_0001.tga").write_bytes(b"x")
    assert _run(tmp_path / "plate_%04d.tga", tmp_path / "o.mp4", "--model", "none", "--quiet") == 3
    assert "vidrestore does not take .tga pictures" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate_0001.tga"]


def test_a_render_with_alpha_keeps_its_alpha_where_faces_are_restored(sample_clip, tmp_path):
    """RGBA pictures were written from RGB images: every picture of the sequence came out opaque."""
    import cv2

    with av.open(str(sample_clip)) as c:
        images = [f.to_ndarray(format="rgb24") for _, f in zip(range(12), c.decode(video=0))]
    alpha = np.full(images[0].shape[:2], 255, np.uint8)
    alpha[:, :120], alpha[:, 120:240] = 0, 128
    (tmp_path / "render").mkdir()
    for n, image in enumerate(images):
        cv2.imwrite(str(tmp_path / "render" / f"a_{n:03d}.png"), np.dstack([image[..., ::-1], alpha]))
    (tmp_path / "out").mkdir()
    out, report = tmp_path / "out" / "a_%03d.png", tmp_path / "r.json"
    assert _run(tmp_path / "render" / "a_%03d.png", out, "--model", "none", "--detector", "dlib", "--quiet", "--json", report) == 0
    assert json.loads(report.read_text())["tracks"]
    for n in (0, 6):
        with av.open(str(tmp_path / "out" / f"a_{n:03d}.png")) as c:
            rgba = next(c.decode(video=0)).to_ndarray(format="rgba")
        assert np.array_equal(rgba[..., 3], alpha)
    assert (rgba[..., :3] != images[6]).any(axis=2).mean() > 0.01  # past the fade-in, the face was pasted back
    # for the web: VP9 with its alpha, and the AlphaMode flag browsers need to show it (the copy lost it)
    web = tmp_path / "render.webm"
    assert _run(tmp_path / "render" / "a_%03d.png", web, "--model", "none", "--detector", "dlib", "--quiet") == 0
    assert b"\x53\xc0\x81\x01" in web.read_bytes()  # Matroska's AlphaMode element, set to 1
    with av.open(str(web)) as c:
        decoder = av.CodecContext.create("libvpx-vp9", "r")  # FFmpeg's own VP9 decoder leaves alpha out
        frames = [f for p in c.demux(c.streams.video[0]) for f in decoder.decode(p)]
    assert abs(int(np.median(frames[0].to_ndarray(format="rgba")[..., 3][:, 130:230])) - 128) <= 3


def test_a_run_with_its_standard_streams_closed_or_unwritable_writes_its_output(sample_clip, tmp_path):
    """Started with standard input and output closed (``<&- >&-``), and standard error open for
    reading only (as a launcher's script left it): progress failed on it ("Bad file descriptor"),
    exit 1, no output and no word why; closed, its number went to the first file opened, where
    FFmpeg's logs went."""
    import os

    script = tmp_path / "launcher.sh"
    script.write_bytes(b"#!/bin/sh\n")

    def standard_streams_as_left() -> None:
        os.close(0)
        os.close(1)
        os.dup2(os.open(script, os.O_RDONLY), 2)

    out = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, str(REPO / "cli.py"), str(sample_clip), str(out), "--model", "none"],
                          preexec_fn=standard_streams_as_left, timeout=300, check=False)
    assert proc.returncode == 0
    assert script.read_bytes() == b"#!/bin/sh\n"
    assert read_pts(out) == read_pts(sample_clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["launcher.sh", "out.mp4"]


def test_files_whose_names_are_not_utf8_are_restored_listed_and_batched(sample_clip, tmp_path, capsys):
    """An old archive's Latin-1 names (b"caf\\xe9"): the hidden files' names failed to encode, then the
    analysis kept and the batch's state ("surrogates not allowed"), and --faces crashed the process
    (OpenCV's imwrite)."""
    import os
    import shutil

    name = os.fsdecode(b"caf\xe9")
    try:
        src = Path(shutil.copy(sample_clip, tmp_path / f"{name}.mp4"))
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes only UTF-8 names")
    out, faces, report = tmp_path / f"out_{name}.mp4", tmp_path / f"faces_{name}", tmp_path / f"{name}.json"
    assert _run(src, out, "--model", "none", "--detector", "dlib", "--quiet", "--faces", faces, "--json", report) == 0
    assert read_pts(out) == read_pts(src) and (faces / "people.jpg").exists()
    assert json.loads(report.read_text())["input"] == str(src)
    assert _run("analyses") == 0
    assert "caf\\xe9.mp4" in capsys.readouterr().out
    for _ in range(2):  # the second finds it done in the batch's state
        assert _run("batch", src, "--out", tmp_path / f"batch_{name}", "--model", "none", "--detector", "dlib") == 0
    assert "1 done (1 skipped as already done or given up)" in capsys.readouterr().err
    assert read_pts(tmp_path / f"batch_{name}" / f"{name}.mp4") == read_pts(src)


def test_a_reader_that_goes_away_mutes_the_progress_and_ends_a_listing_quietly(sample_clip, tmp_path):
    """``vidrestore in out 2>&1 | head -1`` ended the run at its next progress line with a
    BrokenPipeError traceback, and ``vidrestore models list | head -1`` printed one: a run goes on
    muted, a listing ends as a tool ended by SIGPIPE does (141), without a word."""
    out, err = tmp_path / "out.mp4", tmp_path / "err.txt"
    run = subprocess.Popen([sys.executable, str(REPO / "cli.py"), str(sample_clip), str(out), "--model", "none"],
                           stderr=subprocess.PIPE)
    run.stderr.close()  # before its first line
    assert run.wait(timeout=300) == 0
    assert read_pts(out) == read_pts(sample_clip)
    with open(err, "wb") as log:
        listing = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "models", "list"], stdout=subprocess.PIPE, stderr=log)
        listing.stdout.close()
        assert listing.wait(timeout=120) == 141
    assert err.read_bytes() == b""


def test_a_file_url_is_read_as_the_local_file_it_names(sample_clip, tmp_path, capsys):
    """A path copied from a browser or a file manager (file:///films/my%20clip.mp4) was refused as
    a URL to download."""
    import shutil

    src = Path(shutil.copy(sample_clip, tmp_path / "my clip.mp4"))
    url = "file://" + str(src).replace(" ", "%20")
    assert _run(url, tmp_path / "out.mp4", "--model", "none", "--quiet", "--json", "-") == 0
    assert json.loads(capsys.readouterr().out)["input"] == str(src)
    assert read_pts(tmp_path / "out.mp4") == read_pts(src)
