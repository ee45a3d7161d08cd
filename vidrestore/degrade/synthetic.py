"""Batched, seeded synthetic degradations (torch + kornia), for CPU and CUDA alike.

The classic blind-face-restoration chain (Wang et al., GFPGAN 2021; Real-ESRGAN 2021): blur
(isotropic, anisotropic or motion), downscale by 1-16x and back, Gaussian and Poisson noise, JPEG;
noise and JPEG may also come before the enlargement, as on a face compressed while small.
Archival video adds: film grain, colour fading and tint, scratches and dust, interlace combing,
and (clips only) lossy H.264 through PyAV. For clips every parameter drifts smoothly over time
instead of jumping per frame. All randomness comes from one ``torch.Generator``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, fields

import kornia
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DegradationConfig:
    """Ranges ``[low, high]`` are sampled uniformly (log-uniform for ``downscale``); ``*_prob`` gate a step."""

    blur_sigma: tuple[float, float] = (0.2, 4.0)
    anisotropic_prob: float = 0.3
    motion_prob: float = 0.1
    motion_length: tuple[float, float] = (3.0, 11.0)
    downscale: tuple[float, float] = (1.0, 8.0)
    noise_sigma: tuple[float, float] = (0.0, 12.0)  # in 0-255 units
    poisson_prob: float = 0.3
    poisson_peak: tuple[float, float] = (20.0, 255.0)
    jpeg_prob: float = 0.8
    jpeg_quality: tuple[float, float] = (30.0, 95.0)
    grain_prob: float = 0.2
    grain_strength: tuple[float, float] = (0.01, 0.05)
    fade_prob: float = 0.2
    fade_strength: tuple[float, float] = (0.05, 0.35)
    tint_strength: float = 0.08
    scratch_prob: float = 0.1
    interlace_prob: float = 0.05
    interlace_shift: tuple[float, float] = (1.0, 4.0)
    codec_prob: float = 0.0  # clips only
    codec_crf: tuple[float, float] = (30.0, 45.0)
    # noise and JPEG at the downscaled size, before enlarging back: a face that was small when it
    # was compressed (in a compressed frame, or a small photo), whose blocks the crop enlarges
    small_codec_prob: float = 0.0
    drift: float = 0.15  # clips: std of the per-frame parameter walk, as a fraction of each range


@dataclass
class DegradationParams:
    """One value per image (tensors of shape (B,)); clips hold one row per frame."""

    sigma_x: torch.Tensor
    sigma_y: torch.Tensor
    theta: torch.Tensor
    motion: torch.Tensor  # motion-blur length; 0 = none
    motion_angle: torch.Tensor
    scale: torch.Tensor
    noise: torch.Tensor
    poisson_peak: torch.Tensor  # 0 = none
    jpeg: torch.Tensor  # 0 = none
    grain: torch.Tensor
    fade: torch.Tensor
    tint: torch.Tensor  # (B, 3)
    scratches: torch.Tensor  # count
    interlace: torch.Tensor  # horizontal field shift in px; 0 = none
    small_codec: torch.Tensor  # 1 = noise and JPEG at the downscaled size

    def __len__(self) -> int:
        return len(self.scale)

    def index(self, i: int | slice | torch.Tensor) -> DegradationParams:
        sel = slice(i, i + 1) if isinstance(i, int) else i
        return DegradationParams(**{f.name: getattr(self, f.name)[sel] for f in fields(self)})


def _u(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _gate(gen: torch.Generator, n: int, p: float) -> torch.Tensor:
    return (torch.rand(n, generator=gen) < p).float()


def sample_params(cfg: DegradationConfig, n: int, gen: torch.Generator) -> DegradationParams:
    """Independent parameters for ``n`` images."""
    sigma = _u(gen, n, *cfg.blur_sigma)
    aniso = _gate(gen, n, cfg.anisotropic_prob)
    lo, hi = math.log(cfg.downscale[0]), math.log(cfg.downscale[1])
    return DegradationParams(
        sigma_x=sigma,
        sigma_y=sigma * (1 - aniso) + aniso * _u(gen, n, *cfg.blur_sigma),
        theta=_u(gen, n, 0, math.pi),
        motion=_gate(gen, n, cfg.motion_prob) * _u(gen, n, *cfg.motion_length),
        motion_angle=_u(gen, n, 0, 180),
        scale=torch.exp(_u(gen, n, lo, hi)),
        noise=_u(gen, n, *cfg.noise_sigma),
        poisson_peak=_gate(gen, n, cfg.poisson_prob) * _u(gen, n, *cfg.poisson_peak),
        jpeg=_gate(gen, n, cfg.jpeg_prob) * _u(gen, n, *cfg.jpeg_quality),
        grain=_gate(gen, n, cfg.grain_prob) * _u(gen, n, *cfg.grain_strength),
        fade=_gate(gen, n, cfg.fade_prob) * _u(gen, n, *cfg.fade_strength),
        tint=(torch.rand(n, 3, generator=gen) * 2 - 1) * cfg.tint_strength * _gate(gen, n, cfg.fade_prob)[:, None],
        scratches=_gate(gen, n, cfg.scratch_prob) * torch.randint(1, 4, (n,), generator=gen).float(),
        interlace=_gate(gen, n, cfg.interlace_prob) * _u(gen, n, *cfg.interlace_shift),
        # drawn only when possible, so that configs without it keep their random streams
        small_codec=_gate(gen, n, cfg.small_codec_prob) if cfg.small_codec_prob > 0 else torch.zeros(n),
    )


# Bounds that drifting parameters are kept inside (gated ones drift only while switched on).
def _bounds(cfg: DegradationConfig) -> dict[str, tuple[float, float]]:
    return {"sigma_x": cfg.blur_sigma, "sigma_y": cfg.blur_sigma, "theta": (0.0, math.pi), "scale": cfg.downscale,
            "noise": cfg.noise_sigma, "jpeg": cfg.jpeg_quality, "grain": cfg.grain_strength, "fade": cfg.fade_strength,
            "poisson_peak": cfg.poisson_peak, "motion": cfg.motion_length, "interlace": cfg.interlace_shift}


def sample_clip_params(cfg: DegradationConfig, frames: int, gen: torch.Generator) -> DegradationParams:
    """Parameters for one clip: drawn once, then drifting as a smoothed random walk within bounds."""
    start = sample_params(cfg, 1, gen)
    rows = {}
    for f in fields(DegradationParams):
        base = getattr(start, f.name).expand(frames, *getattr(start, f.name).shape[1:]).clone()
        if f.name in _bounds(cfg) and frames > 1:
            lo, hi = _bounds(cfg)[f.name]
            steps = torch.randn(frames, generator=gen) * cfg.drift * (hi - lo) / math.sqrt(frames)
            walk = torch.cumsum(steps, 0)
            on = base != 0 if f.name in ("poisson_peak", "jpeg", "grain", "fade", "motion", "interlace") else torch.ones_like(base, dtype=torch.bool)
            base = torch.where(on, (base + walk).clamp(lo, hi), base)
        rows[f.name] = base
    return DegradationParams(**rows)


def _blur_kernels(p: DegradationParams, size: int = 21) -> torch.Tensor:
    half = size // 2
    ys, xs = torch.meshgrid(torch.arange(-half, half + 1.0), torch.arange(-half, half + 1.0), indexing="ij")
    c, s = torch.cos(p.theta)[:, None, None], torch.sin(p.theta)[:, None, None]
    u, v = c * xs + s * ys, -s * xs + c * ys
    k = torch.exp(-0.5 * ((u / p.sigma_x[:, None, None]) ** 2 + (v / p.sigma_y[:, None, None]) ** 2))
    return k / k.sum((1, 2), keepdim=True)


def _jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    on = quality > 0
    if not on.any():
        return x
    h, w = x.shape[-2:]
    ph, pw = (-h) % 16, (-w) % 16  # kornia's codec works on 16x16 macroblocks
    padded = F.pad(x[on], (0, pw, 0, ph), mode="replicate")
    out = x.clone()
    out[on] = kornia.enhance.jpeg_codec_differentiable(padded, quality[on].to(x))[..., :h, :w]
    return out


def _scratches(x: torch.Tensor, counts: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    out = x.clone()
    for i in range(b):
        for _ in range(int(counts[i])):
            col = int(torch.randint(0, w, (1,), generator=gen))
            top = int(torch.randint(0, h // 2, (1,), generator=gen))
            length = int(torch.randint(h // 4, h, (1,), generator=gen))
            value = float(torch.rand(1, generator=gen) > 0.5)
            out[i, :, top:top + length, col] = 0.6 * out[i, :, top:top + length, col] + 0.4 * value
        dust = torch.rand(h, w, generator=gen) < 0.0015 * float(counts[i])
        out[i][:, dust] = float(torch.rand(1, generator=gen) > 0.5)
    return out


def _noise_and_jpeg(x: torch.Tensor, p: DegradationParams, gen: torch.Generator) -> torch.Tensor:
    dev = x.device
    x = x + torch.randn(x.shape, generator=gen).to(dev) * (p.noise.to(dev) / 255.0)[:, None, None, None]
    pois = p.poisson_peak > 0
    if pois.any():
        peak = p.poisson_peak[pois].to(dev)[:, None, None, None]
        x[pois] = torch.poisson(x[pois].clamp(0, 1) * peak, generator=gen if dev.type == "cpu" else None) / peak
    return _jpeg(x.clamp(0, 1), p.jpeg.to(dev))


def degrade(hq: torch.Tensor, p: DegradationParams, gen: torch.Generator) -> torch.Tensor:
    """Degrade a batch ``hq`` (B, 3, H, W) in [0, 1] with per-image parameters ``p``; returns LQ of the same size."""
    b, _, h, w = hq.shape
    dev = hq.device
    x = kornia.filters.filter2d(hq, _blur_kernels(p).to(dev), border_type="reflect")
    moving = p.motion > 0
    if moving.any():
        ks = int(p.motion.max().ceil()) | 1
        angles = p.motion_angle[moving]
        kern = kornia.filters.get_motion_kernel2d(ks, angles, torch.zeros_like(angles)).to(dev)
        x[moving] = kornia.filters.filter2d(x[moving], kern, border_type="reflect")
    early = p.small_codec > 0
    small = [F.interpolate(x[i:i + 1], size=(max(4, round(h / float(p.scale[i]))), max(4, round(w / float(p.scale[i])))), mode="area")
             for i in range(b)]
    small = [_noise_and_jpeg(s, p.index(i), gen) if early[i] else s for i, s in enumerate(small)]
    x = torch.cat([F.interpolate(s, size=(h, w), mode="bicubic", align_corners=False) for s in small])
    x[early] = x[early].clamp(0, 1)
    if not early.all():
        x[~early] = _noise_and_jpeg(x[~early], p.index(~early), gen)
    grain = kornia.filters.gaussian_blur2d(torch.randn(b, 1, h, w, generator=gen).to(dev), (5, 5), (0.8, 0.8))
    x = x + grain * p.grain.to(dev)[:, None, None, None] * (0.5 + x.mean(1, keepdim=True))
    gray = x.mean(1, keepdim=True)
    fade = p.fade.to(dev)[:, None, None, None]
    x = (x * (1 - fade) + fade * (0.6 * gray + 0.25)) * (1 + p.tint.to(dev)[:, :, None, None])
    if (p.scratches > 0).any():
        x = _scratches(x, p.scratches, gen)
    shift = p.interlace.round().long()
    if (shift > 0).any():
        for i in torch.nonzero(shift).ravel().tolist():
            x[i, :, 1::2] = torch.roll(x[i, :, 1::2], shifts=int(shift[i]), dims=-1)
    return x.clamp(0, 1)


def compress_clip(frames: torch.Tensor, crf: float) -> torch.Tensor:
    """Round-trip a clip (T, 3, H, W) in [0, 1] through H.264 at ``crf`` with PyAV, in memory."""
    import av  # here, not at the top: a training machine needs PyAV only to compress clips

    from ..io.encoders import REPRODUCIBLE_X264

    h, w = frames.shape[-2:]
    arr = (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    pad_h, pad_w = h % 2, w % 2
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w + pad_w, h + pad_h, "yuv420p"
        s.options = {"crf": str(int(crf)), "preset": "veryfast", **REPRODUCIBLE_X264}
        for a in arr:
            a = np.pad(a, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            out.mux(s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")))
        out.mux(s.encode(None))
    buf.seek(0)
    with av.open(buf, "r") as inp:
        dec = [f.to_ndarray(format="rgb24")[:h, :w] for f in inp.decode(video=0)]
    return torch.from_numpy(np.stack(dec)).permute(0, 3, 1, 2).float().div(255).to(frames.device)


def degrade_clip(hq: torch.Tensor, p: DegradationParams, gen: torch.Generator, cfg: DegradationConfig) -> torch.Tensor:
    """Degrade a clip (T, 3, H, W) with per-frame (drifting) parameters, then optionally through H.264."""
    lq = degrade(hq, p, gen)
    if float(torch.rand(1, generator=gen)) < cfg.codec_prob:
        lq = compress_clip(lq, float(_u(gen, 1, *cfg.codec_crf)))
    return lq
