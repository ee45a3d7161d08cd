import dataclasses
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


def _block_edge_strength(x: torch.Tensor, period: int, offset: int) -> float:
    """Mean jump between neighbouring columns ``c - 1`` and ``c`` over the columns ``c`` with ``c % period == offset``."""
    jumps = (x[..., 1:] - x[..., :-1]).abs().mean((0, 1, 2))  # jumps[c - 1]: between columns c - 1 and c
    cols = torch.arange(1, x.shape[-1])
    return float(jumps[(cols % period) == offset].mean())


def test_small_codec_puts_the_compression_blocks_at_the_downscaled_size():
    # a smooth picture, halved, compressed hard: its 8 px blocks become 16 px ones when enlarged
    smooth = torch.nn.functional.interpolate(torch.rand(8, 3, 3, 3, generator=torch.Generator().manual_seed(0)), size=(64, 64),
                                             mode="bilinear", align_corners=True)
    base = DegradationConfig(blur_sigma=(0.2, 0.2), anisotropic_prob=0.0, motion_prob=0.0, downscale=(2.0, 2.0), noise_sigma=(0.0, 0.0),
                             poisson_prob=0.0, jpeg_prob=1.0, jpeg_quality=(10.0, 10.0), grain_prob=0.0, fade_prob=0.0,
                             scratch_prob=0.0, interlace_prob=0.0)
    blocks = {}
    for early in (0.0, 1.0):
        cfg = dataclasses.replace(base, small_codec_prob=early)
        g = torch.Generator().manual_seed(1)
        out = degrade(smooth, sample_params(cfg, 8, g), g)
        blocks[early] = (_block_edge_strength(out, 16, 0), _block_edge_strength(out, 16, 8))
    at_16, at_8 = blocks[1.0]
    assert at_16 > 2 * at_8  # only every 16th column edge is a block's
    late_16, late_8 = blocks[0.0]
    assert late_8 > 0.5 * late_16  # compressed at full size: edges every 8 columns


def test_configs_without_small_codec_draw_as_before_it_existed():
    # the shipped recipes' random streams (and so their training data) stay as they were
    cfg = _cfg("default")
    g = torch.Generator().manual_seed(4)
    p = sample_params(cfg, 16, g)
    assert float(p.small_codec.abs().sum()) == 0
    after = torch.rand(3, generator=g)
    # what the generator gave next before small_codec existed (the module at commit a27bee3)
    assert torch.allclose(after, torch.tensor([0.07096141576766968, 0.24416208267211914, 0.42332905530929565]))
    g2 = torch.Generator().manual_seed(4)
    sample_params(dataclasses.replace(cfg, small_codec_prob=0.5), 16, g2)
    assert not torch.equal(after, torch.rand(3, generator=g2))  # a config that uses it draws one more gate
    enlarged = sample_params(_cfg("enlarged"), 64, torch.Generator().manual_seed(0))
    assert float(enlarged.small_codec.min()) == 1.0
