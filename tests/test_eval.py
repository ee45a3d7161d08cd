import numpy as np
import torch

from vidrestore.eval.metrics import flicker, identity_stability, psnr, ssim, warping_error


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


def test_identity_stability():
    rng = np.random.default_rng(0)
    same = np.repeat(rng.normal(size=(1, 128)), 5, 0)
    assert abs(identity_stability(same) - 1.0) < 1e-6
    assert identity_stability(rng.normal(size=(5, 128))) < 0.6


def test_eval_video_report_schema_and_baseline(sample_clip, tmp_path):
    import json

    from vidrestore.cli import main

    report = tmp_path / "r.json"
    assert main(["eval", "video", str(sample_clip), str(sample_clip), "--sheets", str(tmp_path / "s"), "--json", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert rep["schema"] == 1 and rep["kind"] == "video" and rep["lpips"].startswith("unavailable")
    (track,) = rep["tracks"]
    for side in ("input", "restored"):
        assert set(track[side]) == {"warping_error", "flicker", "identity_stability"}
    assert track["input"] == track["restored"] and abs(track["flicker_ratio"] - 1) < 1e-9  # same video: same numbers
    assert track["input"]["identity_stability"] > 0.9
    assert (tmp_path / "s" / "track000.png").is_file()


def test_eval_images(tmp_path):
    from PIL import Image

    from vidrestore.eval.report import eval_images

    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    img = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a" / "x.png")
    Image.fromarray(img).save(tmp_path / "b" / "x.png")
    rep = eval_images(tmp_path / "a", tmp_path / "b")
    assert rep["pairs"] == 1 and rep["mean"]["psnr"] > 90 and abs(rep["mean"]["ssim"] - 1) < 1e-4
