import json

import numpy as np
import pytest
import torch
from conftest import make_clip
from PIL import Image, ImageFilter

from vidrestore.eval.metrics import flicker, identity_stability, landmark_distance, psnr, ssim, warping_error


def test_psnr_of_known_noise():
    a = torch.zeros(1, 3, 64, 64)
    b = a + 0.1  # MSE 0.01 -> 20 dB
    assert abs(float(psnr(a, b)[0]) - 20.0) < 1e-4


def test_ssim_of_identical_images_is_one():
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    assert float(ssim(x, torch.rand(2, 3, 32, 32)).mean()) < 0.5


def test_warping_error_is_zero_for_a_pure_translation_with_its_exact_flow():
    base = torch.rand(1, 3, 40, 60)
    frames = torch.cat([torch.roll(base, shifts=2 * i, dims=-1) for i in range(4)])
    flows = torch.zeros(4, 2, 40, 60)
    flows[:, 0] = -2.0  # frame i at p equals frame i-1 at p - 2
    valid = torch.ones(4, 1, 40, 60)
    valid[..., :4] = 0  # the wrapped-around columns
    assert warping_error(frames, flows, valid) < 1e-5
    assert warping_error(frames, torch.zeros_like(flows), valid) > 0.1
    inner = valid.clone()
    inner[..., :16] = 0  # the high-pass filter's blur reaches 6 px past the seam and the image border
    inner[..., -8:] = 0
    assert flicker(frames, flows, inner) < 1e-5


def _rescaled(source, path, size, crop=0):
    """``source``'s frames, ``crop`` px cut from the left, resized to ``size`` (w, h), losslessly."""
    import av
    import cv2

    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=inp.streams.video[0].average_rate)
        stream.width, stream.height, stream.pix_fmt = *size, "bgr0"
        for frame in inp.decode(video=0):
            image = cv2.resize(frame.to_ndarray(format="rgb24")[:, crop:], size, interpolation=cv2.INTER_CUBIC)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def test_eval_video_measures_a_restoration_scaled_up_by_another_tool_where_its_faces_are(sample_clip, tmp_path, capsys):
    """CodeFormer and GFPGAN write 2x videos by default: the input's landmarks cut the top left
    quarter of such a video, and its flicker and identity were measured there without a word. The
    landmarks are scaled onto it now; a picture of another shape is refused in one line."""
    import av

    from vidrestore.cli import main

    with av.open(str(sample_clip)) as c:
        width, height = c.streams.video[0].width, c.streams.video[0].height
    twice = _rescaled(sample_clip, tmp_path / "twice.mkv", (2 * width, 2 * height))
    report = tmp_path / "r.json"
    assert main(["eval", "video", str(sample_clip), str(twice), "--json", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert rep["restored_scale"] == [2.0, 2.0]
    (track,) = rep["tracks"]
    for metric in ("warping_error", "flicker"):  # the same face at twice the size: the same figures
        assert track["restored"][metric] == pytest.approx(track["input"][metric], rel=0.1), metric
    assert track["restored"]["identity_to_input"] > 0.98
    cropped = _rescaled(sample_clip, tmp_path / "cropped.mkv", (width - width // 4, height), crop=width // 4)
    capsys.readouterr()
    assert main(["eval", "video", str(sample_clip), str(cropped), "--json", str(report)]) == 3
    err = capsys.readouterr().err
    assert f"of another shape than {sample_clip}'s {width}x{height}" in err and len(err.splitlines()) == 1


def test_eval_video_refuses_figures_it_cannot_write_before_any_work(sample_clip, tmp_path, capsys, monkeypatch):
    """--figures naming a file failed with a traceback once every track had been measured."""
    from vidrestore.cli import main

    def measured(*args, **kwargs):
        raise AssertionError("measured before the figures' folder was made")

    monkeypatch.setattr("vidrestore.eval.report.analyse", measured)
    taken = tmp_path / "taken.txt"
    taken.write_text("a file")
    assert main(["eval", "video", str(sample_clip), str(sample_clip), "--figures", str(taken)]) == 4
    assert capsys.readouterr().err.strip() == f"vidrestore: error: --figures {taken}: that is a file; give a folder to write the figures into"
    assert main(["eval", "video", str(sample_clip), str(sample_clip), "--figures", str(taken / "figs")]) == 4
    assert capsys.readouterr().err.startswith(f"vidrestore: error: cannot make the --figures folder {taken / 'figs'} (")


def test_identity_stability():
    rng = np.random.default_rng(0)
    same = np.repeat(rng.normal(size=(1, 128)), 5, 0)
    assert abs(identity_stability(same) - 1.0) < 1e-6
    assert identity_stability(rng.normal(size=(5, 128))) < 0.6


def test_eval_video_report_schema_and_baseline(sample_clip, tmp_path):
    import json

    from vidrestore.cli import main

    report = tmp_path / "r.json"
    assert main(["eval", "video", str(sample_clip), str(sample_clip), "--figures", str(tmp_path / "s"), "--json", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert rep["schema"] == 5 and rep["kind"] == "video" and rep["restored_scale"] == [1.0, 1.0] and rep["lpips"].startswith("unavailable")
    (track,) = rep["tracks"]
    for side in ("input", "restored"):
        assert set(track[side]) == {"warping_error", "flicker", "identity_stability", "identity_to_input",
                                    "identity_to_input_min", "identity_to_input_min_frame"}
        series = track["per_frame"][side]
        assert len(series["warping_error"]) == len(series["flicker"]) == track["frames_evaluated"] - 1
        assert abs(np.mean(series["warping_error"]) - track[side]["warping_error"]) < 1e-6
    assert track["input"] == track["restored"] and abs(track["flicker_ratio"] - 1) < 1e-9  # same video: same numbers
    assert track["input"]["identity_stability"] > 0.9
    assert rep["niqe"]["input"] == rep["niqe"]["restored"] and len(rep["niqe"]["frames"]) == 5  # 24 frames, every 5th
    for png in ("track000.png", "track000_metrics.png", "niqe.png"):
        assert (tmp_path / "s" / png).stat().st_size > 1000


def test_eval_images_with_landmarks_and_niqe(tmp_path):
    from PIL import Image
    from skimage import data

    from vidrestore.eval.report import eval_images, eval_noref
    from vidrestore.faces.detect import DetectorConfig, create_detector

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    face = data.astronaut()[:256, 96:352]  # her face, 256 px
    Image.fromarray(face).save(tmp_path / "b" / "x.png")
    Image.fromarray(face).save(tmp_path / "a" / "x.png")
    Image.fromarray(np.asarray(Image.fromarray(face).filter(ImageFilter.GaussianBlur(3)))).save(tmp_path / "a" / "y.png")
    Image.fromarray(face).save(tmp_path / "b" / "y.png")
    Image.fromarray(face).resize((128, 128)).save(tmp_path / "a" / "small.png")
    Image.fromarray(face).save(tmp_path / "b" / "small.png")
    Image.fromarray(face).save(tmp_path / "a" / "alone.png")  # no reference: named, not left out without a word
    rep = eval_images(tmp_path / "a", tmp_path / "b", create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")))
    rows = {r["file"]: r for r in rep["per_image"]}
    assert rep["pairs"] == 3 and rep["unpaired"] == ["alone.png"]
    assert rows["small.png"]["resized_from"] == "128x128" and rows["x.png"]["resized_from"] is None
    assert rows["x.png"]["psnr"] > 90 and abs(rows["x.png"]["ssim"] - 1) < 1e-4
    assert rows["x.png"]["landmark_distance"] == 0.0 and 0 < rows["y.png"]["landmark_distance"] < 0.2
    assert rows["x.png"]["niqe"] == rows["x.png"]["niqe_reference"] < rows["y.png"]["niqe"]  # blur is less natural
    noref = eval_noref(tmp_path / "a", baseline=tmp_path / "b")
    assert noref["images"] == 4 and {r["file"]: r["niqe"] for r in noref["per_image"]}["y.png"] == rows["y.png"]["niqe"]
    # alone.png has no baseline: named, and left out of the mean set against the baseline's
    with_baseline = [r for r in noref["per_image"] if "niqe_baseline" in r]
    assert noref["unpaired"] == ["alone.png"] and len(with_baseline) == 3
    assert noref["mean"]["niqe_paired"] == pytest.approx(np.mean([r["niqe"] for r in with_baseline]))
    assert noref["mean"]["niqe_baseline"] == pytest.approx(np.mean([r["niqe_baseline"] for r in with_baseline]))


def test_eval_images_pairs_gfpgan_face_names_and_refuses_a_guess(tmp_path, capsys):
    """GFPGAN writes restored_faces/x_00.png for x.png (aligned input too): every face was unpaired,
    and a run on its results folder measured the 2x whole pictures instead. Now x_00 pairs with x,
    and two restored pictures of one reference, or two references of one name, are refused."""
    from PIL import Image
    from skimage import data

    from vidrestore.cli import main

    face = Image.fromarray(data.astronaut()[:256, 96:352])
    for name in ("gt/x.png", "gt/y.png", "gfpgan/restored_faces/x_00.png", "gfpgan/restored_faces/y_00.png",
                 "gfpgan/restored_imgs/x.png", "gfpgan/cmp/x_00.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        face.save(tmp_path / name)
    report = tmp_path / "r.json"
    assert main(["eval", "images", str(tmp_path / "gfpgan" / "restored_faces"), str(tmp_path / "gt"), "--detector", "dlib",
                 "--json", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert rep["pairs"] == 2 and rep["unpaired"] == [] and [r["file"] for r in rep["per_image"]] == ["x_00.png", "y_00.png"]
    assert rep["per_image"][0]["psnr"] > 90
    assert main(["eval", "images", str(tmp_path / "gfpgan"), str(tmp_path / "gt"), "--detector", "dlib"]) == 3
    err = capsys.readouterr().err
    assert "x_00.png and " in err and "would both be measured against" in err and len(err.splitlines()) == 1
    face.save(tmp_path / "gt" / "y.jpg")
    assert main(["eval", "images", str(tmp_path / "gfpgan" / "restored_faces"), str(tmp_path / "gt"), "--detector", "dlib"]) == 3
    assert "two references are named y: " in capsys.readouterr().err


def test_eval_json_dash_is_stdout_as_for_the_other_commands(tmp_path, capsys, monkeypatch):
    """``vidrestore eval ... --json -`` wrote a file named '-'."""
    from PIL import Image
    from skimage import data

    from vidrestore.cli import main

    (tmp_path / "a").mkdir()
    Image.fromarray(data.astronaut()[:256, 96:352]).save(tmp_path / "a" / "x.png")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "noref", str(tmp_path / "a"), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 1
    assert not (tmp_path / "-").exists()


def test_landmark_distance_is_normalised_by_the_eye_distance():
    ref = np.array([[0, 0], [10, 0], [5, 5], [2, 9], [8, 9]], float)
    assert landmark_distance(ref, ref) == 0
    assert abs(landmark_distance(ref + [3, 4], ref) - 0.5) < 1e-12  # every point 5 px off, eyes 10 px apart


def _moving_face_crops(n: int, size: int = 32) -> np.ndarray:
    """A textured blob drifting one pixel per frame, with a little noise: (n, S, S, 3) uint8."""
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[0:size, 0:size]
    frames = []
    for i in range(n):
        blob = np.exp(-((xs - 12 - i) ** 2 + (ys - 16) ** 2) / 40.0) * np.sin((xs - i) / 2.0)
        frames.append(np.clip(128 + 100 * blob[..., None] + rng.normal(0, 3, (size, size, 3)), 0, 255).astype(np.uint8))
    return np.stack(frames)


@pytest.mark.parametrize("chunk", [1, 2, 5, 7])
def test_track_meter_gives_the_same_numbers_whatever_the_chunk(chunk):
    from vidrestore.eval.tracks import TrackMeter
    from vidrestore.faces.identity import DlibIdentityEncoder

    inp = _moving_face_crops(12)
    out = np.clip(inp.astype(int) + np.random.default_rng(2).integers(-20, 20, inp.shape), 0, 255).astype(np.uint8)
    rows = []
    for size in (chunk, 100):
        meter = TrackMeter(4, 50, len(inp), identity_samples=5, sheet_samples=3, chunk=size)
        for a, b in zip(inp, out):
            meter.add(a, b)
        rows.append(meter.finish(DlibIdentityEncoder()))
    streamed, whole = rows
    for side in ("input", "restored"):
        assert len(streamed["per_frame"][side]["warping_error"]) == len(inp) - 1
        np.testing.assert_allclose(streamed["per_frame"][side]["warping_error"], whole["per_frame"][side]["warping_error"], rtol=1e-6)
        np.testing.assert_allclose(streamed["per_frame"][side]["flicker"], whole["per_frame"][side]["flicker"], rtol=1e-6)
    assert streamed["restored"]["flicker"] > streamed["input"]["flicker"]  # the noise added to the "restored" side flickers
    assert streamed["input"] == whole["input"] and streamed["restored"] == whole["restored"]
    assert streamed["restored"]["identity_to_input_min_frame"] in range(50, 62)
    assert streamed["per_frame"]["input"]["identity_frames"] == [50, 53, 56, 58, 61]
    assert meter.sheet()[0].shape == (3, 32, 32, 3)


def test_a_one_frame_track_has_no_temporal_figures_and_raises_no_alarm():
    """One frame has no step to warp: its warping error and flicker are null, not 0 (perfectly
    steady) and not NaN (not JSON), and the QA compares nothing."""
    import json

    from vidrestore import jsonio
    from vidrestore.eval.tracks import TrackMeter, qa_alarms
    from vidrestore.faces.identity import DlibIdentityEncoder

    (crop,) = _moving_face_crops(1)
    meter = TrackMeter(0, 0, 1)
    meter.add(crop, crop)
    row = {k: v for k, v in meter.finish(DlibIdentityEncoder()).items() if k != "per_frame"}
    assert row["restored"]["warping_error"] is None and row["restored"]["flicker"] is None and row["flicker_ratio"] is None
    assert row["restored"]["identity_to_input_min"] is not None  # one frame still has an identity
    assert qa_alarms([row]) == []
    assert json.loads(jsonio.dumps(row)) == row


def test_reports_are_strict_json():
    from vidrestore import jsonio

    text = jsonio.dumps({"a": [1.0, float("nan"), {"b": float("inf")}], "c": (2, -float("inf"))})
    assert "NaN" not in text and "Infinity" not in text
    assert jsonio.finite({"a": [1.0, float("nan"), {"b": float("inf")}], "c": (2, -float("inf"))}) == \
        {"a": [1.0, None, {"b": None}], "c": [2, None]}


def test_eval_refuses_what_it_cannot_measure_in_one_line(sample_clip, tmp_path, capsys):
    """A missing folder, a folder without pictures, restorations with no reference of their name,
    and a video that is no restoration of the input (another frame count) gave reports of 0
    pictures or figures of two unrelated videos; each is refused in one line."""
    from vidrestore.cli import main

    faces, empty = tmp_path / "faces", tmp_path / "empty"
    faces.mkdir()
    empty.mkdir()
    Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(faces / "a.png")
    short = make_clip(tmp_path / "short.mp4", [i * 40 for i in range(3)])
    for argv, said in [(["noref", str(tmp_path / "none")], f"not found: {tmp_path / 'none'}"),
                       (["noref", str(empty)], f"no pictures in {empty}"),
                       (["images", str(faces), str(empty)], f"no picture in {faces} has a reference of the same name"),
                       (["video", str(sample_clip), str(short), "--detector", "dlib"],
                        f"{short} has 3 frames where a restoration of {sample_clip} would have 24")]:
        assert main(["eval", *argv]) == 3
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("vidrestore: error: ") and said in line
