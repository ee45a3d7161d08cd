import math

import torch

from vidrestore.config import resolve_config
from vidrestore.degrade import DegradationConfig, degrade, degrade_clip, sample_clip_params, sample_params


def _cfg(name="archival"):
    return resolve_config(DegradationConfig, "degradations", name)


def test_degradations_are_reproducible_with_a_seed():
    x = torch.rand(4, 3, 64, 64)
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(5)
        outs.append(degrade(x, sample_params(_cfg(), 4, g), g))
    assert torch.equal(*outs)
    g = torch.Generator().manual_seed(6)
    assert not torch.equal(outs[0], degrade(x, sample_params(_cfg(), 4, g), g))


def test_parameters_stay_within_their_bounds():
    cfg = _cfg("default")
    p = sample_params(cfg, 2000, torch.Generator().manual_seed(0))
    assert cfg.blur_sigma[0] <= float(p.sigma_x.min()) and float(p.sigma_x.max()) <= cfg.blur_sigma[1]
    assert cfg.downscale[0] - 1e-6 <= float(p.scale.min()) and float(p.scale.max()) <= cfg.downscale[1] + 1e-6
    on = p.jpeg > 0
    assert cfg.jpeg_quality[0] <= float(p.jpeg[on].min()) and float(p.jpeg[on].max()) <= cfg.jpeg_quality[1]
    assert abs(float(on.float().mean()) - cfg.jpeg_prob) < 0.05
    out = degrade(torch.rand(8, 3, 32, 32), sample_params(cfg, 8, torch.Generator().manual_seed(1)), torch.Generator().manual_seed(1))
    assert out.min() >= 0 and out.max() <= 1


def test_clip_parameters_drift_smoothly():
    cfg = _cfg()
    frames = 200
    p = sample_clip_params(cfg, frames, torch.Generator().manual_seed(2))
    steps = (p.sigma_x[1:] - p.sigma_x[:-1]).abs()
    span = cfg.blur_sigma[1] - cfg.blur_sigma[0]
    assert float(steps.max()) < 4 * cfg.drift * span / math.sqrt(frames)  # no per-frame jumps
    assert float(p.sigma_x.min()) >= cfg.blur_sigma[0] and float(p.sigma_x.max()) <= cfg.blur_sigma[1]


def test_clip_degradation_with_codec_roundtrip():
    cfg = DegradationConfig(codec_prob=1.0)
    g = torch.Generator().manual_seed(3)
    clip = torch.rand(5, 3, 33, 47)
    out = degrade_clip(clip, sample_clip_params(cfg, 5, g), g, cfg)
    assert out.shape == clip.shape
