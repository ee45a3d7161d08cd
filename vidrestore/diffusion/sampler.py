"""DifFace-style sampling for FLIPNET, with shared noise and latent-flow warping for video.

DifFace (Yue & Loy, TPAMI 2024, arXiv 2212.06512): instead of starting from pure noise, diffuse a
restoration estimate ``e`` to an intermediate step ``N``,
``x_N = sqrt(abar_N) e + sqrt(1 - abar_N) eps``, and run the reverse chain from there; the
estimate's error shrinks by ``sqrt(abar_N)``. Here ``e`` is the aligned LQ crop itself and the
reverse chain is FLIPNET conditioned on the LQ face through BoostHub and its identity embedding.

Temporal consistency (frames of a track in order; several tracks may share one batch):
* **shared noise**: one start noise field and one noise field per stochastic step, drawn once per
  track in canonical crop coordinates and used for every frame;
* **x0 warping**: at every step the predicted x0 of frame ``i`` is blended, inside the
  forward-backward-consistent region, with the fused x0 of frame ``i-1`` warped along the optical
  flow between their LQ crops, weighted by a schedule over the steps. The last frame's fused x0 at
  every step is carried to the next batch, so the recurrence does not restart at batch edges.
The warping is a hook on the denoiser's output, not a fork of the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .flow import sampling_grid, warp_by_grid
from .settings import SamplerConfig

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> predicted x0


def check_chain(cfg: SamplerConfig, num_train_timesteps: int) -> None:
    """Refuse a chain that starts past the model's training timesteps."""
    if cfg.start_step >= num_train_timesteps:
        raise ConfigError(f"start_step: expected less than the model's {num_train_timesteps} training timesteps, got {cfg.start_step}")


def make_scheduler(cfg: SamplerConfig, num_train_timesteps: int, beta_start: float, beta_end: float, prediction_type: str):
    # Each scheduler is imported where it is made, not with this module: diffusers takes 1.5 s to
    # import (torch._dynamo), which runs that never sample (--model none) would pay at start-up,
    # and its DPM-Solver another 0.7 s (scipy.stats), which DDIM runs would.
    check_chain(cfg, num_train_timesteps)
    common = {"num_train_timesteps": num_train_timesteps, "beta_start": beta_start, "beta_end": beta_end,
              "beta_schedule": "linear", "prediction_type": prediction_type}
    if cfg.scheduler == "ddim":
        from diffusers import DDIMScheduler

        return DDIMScheduler(clip_sample=True, set_alpha_to_one=True, **common)
    from diffusers import DPMSolverMultistepScheduler  # dpmsolver++, the only other (SamplerConfig checks)

    return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, thresholding=False, **common)


def warp_weight(schedule: list[list[float]], fraction: float) -> float:
    """Piecewise-linear blend weight lambda at ``fraction`` of the way through the steps."""
    xs, ys = zip(*schedule)
    return float(np.interp(fraction, xs, ys))


@dataclass
class TrackNoise:
    """Noise fields shared by every frame of one track, and by the tracks of one person (drawn
    once, in crop coordinates)."""

    start: torch.Tensor  # (1, C, S, S)
    steps: list[torch.Tensor]  # one (1, C, S, S) per denoising step

    @classmethod
    def draw(cls, seed: int, key: int, shape: tuple[int, ...], steps: int, device: torch.device) -> TrackNoise:
        """The fields for ``key`` (a track's id, or its person's) under ``seed``."""
        gen = torch.Generator().manual_seed(seed * 1_000_003 + key)
        start = torch.randn((1, *shape), generator=gen)
        return cls(start.to(device), [torch.randn((1, *shape), generator=gen).to(device) for _ in range(steps)])


@dataclass
class TemporalState:
    """What one track carries from one batch of frames to the next."""

    noise: TrackNoise
    previous_x0: list[torch.Tensor] | None = None  # fused x0 of the last frame, per step


@dataclass
class TrackSpan:
    """``frames`` consecutive frames of one track, stacked after the previous span in a batch."""

    state: TemporalState
    frames: int


@dataclass
class TemporalInputs:
    flows: torch.Tensor  # (T, 2, S, S): frame i -> frame i-1 (entry 0: to the previous batch's last frame)
    valid: torch.Tensor  # (T, 1, S, S) occlusion masks for those flows


def timesteps_from(scheduler, cfg: SamplerConfig, device: torch.device) -> torch.Tensor:
    """The last K timesteps at or below N, as diffusers img2img pipelines pick them."""
    total = scheduler.config.num_train_timesteps
    inference = max(cfg.steps, round(cfg.steps * total / max(cfg.start_step, 1)))
    scheduler.set_timesteps(inference, device=device)
    ts = scheduler.timesteps
    return ts[ts <= cfg.start_step][: cfg.steps]


def _fuse(x0: torch.Tensor, previous: list[torch.Tensor | None], spans: list[TrackSpan], temporal: TemporalInputs | None,
          grids: torch.Tensor | None, lam: float, linked: list[bool]) -> torch.Tensor:
    """Blend each frame's x0 with the warped fused x0 of the frame before it in its own track
    (sequential in time); ``previous[j]``: span j's carried x0 from its previous batch.

    ``linked[i]`` says whether frame i may take from frame i-1 and ``grids`` are the flows' sampling
    grids (both worked out once per batch: the step loop neither waits on the device nor rebuilds them)."""
    if temporal is None or lam <= 0:
        return x0
    fused = []
    first = 0
    for span, ref in zip(spans, previous):
        for i in range(first, first + span.frames):
            cur = x0[i : i + 1]
            if ref is not None and linked[i]:
                w = warp_by_grid(ref, grids[i : i + 1])
                m = temporal.valid[i : i + 1] * lam
                cur = m * w + (1 - m) * cur
            fused.append(cur)
            ref = cur
        first += span.frames
    return torch.cat(fused)


def _per_frame(spans: list[TrackSpan], pick: Callable[[TemporalState], torch.Tensor]) -> torch.Tensor:
    """A per-track (1, ...) tensor repeated over each span's frames, stacked in batch order."""
    return torch.cat([pick(s.state).expand(s.frames, *pick(s.state).shape[1:]) for s in spans])


@torch.no_grad()
def sample(denoiser: Denoiser, scheduler, cfg: SamplerConfig, estimate: torch.Tensor, spans: list[TrackSpan],
           temporal: TemporalInputs | None = None) -> torch.Tensor:
    """Restore a batch made of consecutive frames of one or more tracks, in one forward pass per step.

    ``estimate`` (T, C, S, S) in [-1, 1] is the start estimate (the LQ crops), the ``spans`` in
    order; each span's state holds its track's shared noise and the x0 carried from its previous
    batch (updated in place). A frame takes noise and warped x0 only from its own track.
    """
    if sum(s.frames for s in spans) != len(estimate) or any(s.frames < 1 for s in spans):
        raise ValueError(f"spans of {[s.frames for s in spans]} frames do not make up the batch of {len(estimate)}")
    device = estimate.device
    ts = timesteps_from(scheduler, cfg, device)
    t_count = len(estimate)
    x = scheduler.add_noise(estimate, _per_frame(spans, lambda st: st.noise.start), ts[:1].expand(t_count))
    ends = np.cumsum([s.frames for s in spans]) - 1
    carried: list[list[torch.Tensor]] = [[] for _ in spans]
    # Re-anchor: a frame whose flow fails the FB test over too much of the crop takes nothing from the
    # frame before it. One host sync here instead of one per frame and step.
    linked = (temporal.valid.flatten(1).mean(1) >= 1 - cfg.reanchor_invalid).tolist() if temporal is not None else []
    grids = sampling_grid(temporal.flows) if temporal is not None else None
    for k, t in enumerate(ts):
        x0 = denoiser(x, t)
        lam = warp_weight(cfg.warp_schedule, k / max(len(ts) - 1, 1))
        previous = [s.state.previous_x0[k] if s.state.previous_x0 is not None and k < len(s.state.previous_x0) else None
                    for s in spans]
        x0 = _fuse(x0, previous, spans, temporal, grids, lam, linked)
        for held, end in zip(carried, ends):
            held.append(x0[end : end + 1].clone())
        kwargs = {"eta": cfg.eta, "variance_noise": _per_frame(spans, lambda st, k=k: st.noise.steps[k])} \
            if cfg.scheduler == "ddim" else {}
        x = scheduler.step(x0, t, x, **kwargs).prev_sample
    for span, held in zip(spans, carried):
        span.state.previous_x0 = held
    return x.clamp(-1, 1)
