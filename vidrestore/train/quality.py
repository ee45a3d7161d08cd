"""Training FaceQualityNet: packed clean faces, degraded on the fly from untouched to archival,
each labelled with its own PSNR against the clean face (its colour fitted first)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import check_minimums, resolve_config
from ..degrade import DegradationConfig, degrade, sample_params
from ..errors import ConfigError
from ..models.face_quality import CEILING_DB, FLOOR_DB, FaceQualityConfig, FaceQualityNet, save_face_quality
from .data import PackedFaces

SHIFT_PX, ROTATION_DEG = 4.0, 10.0  # the largest move of the random similarity (training_pairs)
from .trainer import psnr, random_motion, warp


@dataclass(frozen=True)
class QualityTrainConfig:
    hq_pack: str = ""  # .npz written by `vidrestore train pack`; its last `val_count` faces are held out
    out: str = "runs/face-quality.safetensors"
    model: FaceQualityConfig = field(default_factory=FaceQualityConfig)
    # how each face of a batch is degraded: (degradation config, its share of the batch); the rest
    # of the batch (``clean_share``) is left untouched, so that a clean face is learnt as clean
    mix: list[tuple[str, float]] = field(default_factory=lambda: [("light", 0.4), ("default", 0.35), ("archival", 0.1)])
    steps: int = 1000
    batch_size: int = 48
    lr: float = 2e-3
    warmup_steps: int = 50
    val_count: int = 256
    validate_every: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        check_minimums(self, steps=1, batch_size=1, warmup_steps=0, val_count=1, validate_every=1)
        if not self.lr > 0:
            raise ConfigError(f"lr: expected more than 0, got {self.lr}")
        shares = [share for _, share in self.mix]
        if not all(0 <= share <= 1 for share in shares) or not sum(shares) <= 1:
            raise ConfigError(f"mix: expected shares from 0 to 1 that add up to 1 or less, got {shares}")


def degradation_mix(cfg: QualityTrainConfig) -> list[tuple[DegradationConfig, float]]:
    return [(resolve_config(DegradationConfig, "degradations", name), share) for name, share in cfg.mix]


def validation_faces(cfg: QualityTrainConfig, data: PackedFaces | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out faces (the pack's last ``val_count``) as :func:`training_pairs` makes them (seed 1234)."""
    data = data or PackedFaces(cfg.hq_pack)
    gen = torch.Generator().manual_seed(1234)
    hq, _ = data.batch(data.split(cfg.val_count)[1], gen, flip=False)
    return training_pairs(hq, degradation_mix(cfg), gen)


def training_pairs(hq: torch.Tensor, mix: list[tuple[DegradationConfig, float]], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(damaged, clean) faces: each of ``hq`` degraded by one of ``mix``'s configs, drawn by its
    share (the remaining share untouched) and quantised to 8 bits as decoded video is; then both
    moved by one small random similarity, as the pipeline's crops are resampled from frames that
    were damaged (their compression blocks off the crop's grid)."""
    shares = torch.tensor([0.0] + [share for _, share in mix]).cumsum(0)
    draws = torch.rand(len(hq), generator=gen)
    lq = hq.clone()
    for (cfg, _), low, high in zip(mix, shares[:-1], shares[1:]):
        chosen = ((draws >= low) & (draws < high)).nonzero()[:, 0]
        if len(chosen):
            lq[chosen] = degrade(hq[chosen], sample_params(cfg, len(chosen), gen), gen)
    lq = (lq.clamp(0, 1) * 255).round() / 255
    motion = random_motion(len(hq), hq.shape[-1], SHIFT_PX, ROTATION_DEG, gen)
    return warp(lq, motion, "reflection"), warp(hq, motion, "reflection")


def quality_target(lq: torch.Tensor, hq: torch.Tensor) -> torch.Tensor:
    """The PSNR of ``lq`` against ``hq`` once each of its channels is fitted to ``hq``'s by a gain
    and an offset: a fade or tint is not damage restoration can mend (the pipeline matches restored
    faces' colour to the input's), nor one a single picture shows."""
    x, y = lq.flatten(2), hq.flatten(2)
    dx, dy = x - x.mean(2, keepdim=True), y - y.mean(2, keepdim=True)
    gain = (dx * dy).sum(2, keepdim=True) / (dx * dx).sum(2, keepdim=True).clamp_min(1e-8)
    fitted = (y.mean(2, keepdim=True) + gain * dx).view_as(lq)
    return psnr(fitted, hq).clamp(FLOOR_DB, CEILING_DB)


def train_quality(cfg: QualityTrainConfig, on_log: Callable[[dict], None] = print, time_limit: float | None = None) -> dict[str, float]:
    """Train and save to ``cfg.out``; returns the last validation's mean absolute error (dB) overall
    and on the untouched faces. ``time_limit`` (s): stop early, saving what was learnt."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = PackedFaces(cfg.hq_pack)
    if len(data) <= cfg.val_count:  # it failed at the first batch with a traceback
        raise ConfigError(f"{cfg.hq_pack} holds {len(data)} faces, and val_count holds {cfg.val_count} out: none is left to "
                          "train on; pack more faces, or lower val_count")
    train_ids, _ = data.split(cfg.val_count)
    mix = degradation_mix(cfg)
    val_lq, val_hq = validation_faces(cfg, data)
    model = FaceQualityNet(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    scores: dict[str, float] = {}
    started, step = time.monotonic(), 0
    for step in range(1, cfg.steps + 1):
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        hq, _ = data.batch(train_ids[torch.randint(len(train_ids), (cfg.batch_size,), generator=gen)], gen)
        lq, hq = training_pairs(hq, mix, gen)
        loss = torch.nn.functional.smooth_l1_loss(model(lq), quality_target(lq, hq))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out_of_time = time_limit is not None and time.monotonic() - started > time_limit
        if step % cfg.validate_every == 0 or step == cfg.steps or out_of_time:
            scores = validate(model, val_lq, val_hq)
            on_log({"step": step, "loss": round(loss.item(), 4), **scores, "seconds": round(time.monotonic() - started, 1)})
        if out_of_time:
            break
    model.eval()
    save_face_quality(model, cfg.out, {"steps": str(step), "pack": Path(cfg.hq_pack).name,
                                       **{k: f"{v:.3f}" for k, v in scores.items()}})
    return scores


def validate(model: FaceQualityNet, lq: torch.Tensor, hq: torch.Tensor) -> dict[str, float]:
    """Mean absolute error (dB) on the held-out faces as degraded, and on them untouched."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        error = (model(lq) - quality_target(lq, hq)).abs().mean()
        clean_error = (model(hq) - CEILING_DB).abs().mean()
    model.train(was_training)
    return {"val_mae_db": float(error), "clean_mae_db": float(clean_error)}


def learning_rate(cfg: QualityTrainConfig, step: int) -> float:
    """Linear warm-up, then a cosine down to a twentieth by the last step."""
    warm = min(1.0, step / max(1, cfg.warmup_steps))
    return cfg.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / cfg.steps))))
