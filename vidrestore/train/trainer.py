"""Joint two-mode FLIPNET training with EMA, mixed precision, accumulation, exact resume and DDP.

Each batch mixes both modes per sample (``degradation_fraction`` of them in degradation mode):
restoration samples denoise the HQ face conditioned on its synthetic LQ version; degradation
samples denoise the LQ face conditioned on the HQ one. Mixing inside a batch gives both modes a
gradient at every step, which keeps the shared weights from oscillating between them (see
docs/flipnet.md). The network predicts x0; the loss is the MSE on x0 (the x0-parameterised
diffusion loss), the same quantity FLIPNET adds as its image loss. With
``learned_degradation_fraction`` > 0, some restoration samples take their LQ face from the network's
own degradation mode (the paper's loop between the two modes); with ``real_lq_fraction`` > 0,
degradation samples learn from real LQ faces, conditioned on their restoration. Every ``validate_every`` steps a
contact sheet of validation faces is written to ``out_dir/val/``.

Temporal fine-tuning (``temporal_fraction`` > 0): some restoration samples get a next frame, their HQ
face moved by a small random similarity transform (the motion left between consecutive aligned
crops of a track) and degraded with the same parameters but fresh noise, as consecutive frames of
a clip are. Both frames share the diffusion noise and timestep, as the temporal sampler's frames do,
and a warping-consistency loss pulls the predicted x0 of the next frame towards the first frame's
prediction moved by the known motion (exact flow, so no flow estimator's errors are learnt).

Multi-GPU: launch with ``torchrun --nproc_per_node N -m vidrestore.cli train ...``; torch DDP
takes over (each rank draws its own batches from a rank-offset generator).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import kornia
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..config import check_choice, check_minimums, check_shares, resolve_config
from ..degrade import DegradationConfig, DegradationParams, degrade, sample_params
from ..diffusion.sampler import SamplerConfig, TemporalState, TrackNoise, TrackSpan, make_scheduler, sample
from ..errors import ConfigError, OutputError
from ..models.flipnet import DEGRADE, RESTORE, Flipnet, load_config, load_flipnet, save_flipnet
from ..models.precision import DTYPES, autocast, network_dtype
from .data import PackedFaces


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tiny"
    hq_pack: str = ""  # .npz written by `vidrestore train pack`; its last `val_count` faces are held out
    extra_packs: list[str] = field(default_factory=list)  # more packs, trained on (placed before hq_pack)
    degradation: str = "default"
    out_dir: str = "runs/tiny"
    # Fine-tuning: a zoo name or .safetensors file that model and EMA start from when ``out_dir``
    # has no checkpoint yet (the optimizer and step start afresh; later runs resume as usual).
    init_weights: str = ""
    steps: int = 20
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_steps: int = 100
    # After warm-up the rate is constant until ``decay_from_step`` (0: never), then follows a
    # half cosine down to ``lr * decay_to`` over ``decay_steps`` and stays there. It is a function
    # of the step alone, so a run resumed with a decay added to its config picks it up.
    decay_from_step: int = 0
    decay_steps: int = 1000
    decay_to: float = 0.05
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    max_timestep: int = 400  # the presets start sampling at N <= 400, so later steps are never used
    degradation_fraction: float = 0.25
    # The paper's loop between the modes: from this step on, this share of the restoration samples
    # get their LQ face from the EMA model's degradation mode instead of the synthetic chain.
    learned_degradation_fraction: float = 0.0
    learned_degradation_from_step: int = 0
    degradation_sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(start_step=300, steps=4))
    # Real LQ faces (a pack with no HQ) teach the degradation mode real degradations: this share of
    # the degradation samples takes a real LQ face as its target, conditioned on the EMA network's
    # restoration of that face (a pseudo-HQ), since no true pair exists.
    real_lq_pack: str = ""
    real_lq_fraction: float = 0.0
    identity_dropout: float = 0.15
    # Temporal fine-tuning: this share of the restoration samples gets a moved next frame, and the
    # warping-consistency loss between their predicted x0 is added with this weight.
    temporal_fraction: float = 0.0
    temporal_weight: float = 1.0
    temporal_shift_px: float = 2.0  # largest translation between the two frames, in crop pixels
    temporal_rotation_deg: float = 2.0
    mixed_precision: str = "auto"  # auto | no | bf16 | fp16 (training_precision)
    checkpoint_every: int = 500
    validate_every: int = 500
    log_every: int = 50
    val_count: int = 64
    seed: int = 0
    num_threads: int = 0  # CPU threads; 0 = torch default
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(start_step=200, steps=4))

    def __post_init__(self) -> None:
        # checked as the config is read: "log_every: 0" failed at the first step with a
        # ZeroDivisionError, "lr: -1" in torch's optimizer, "ema_decay: 2" diverged without a word
        check_minimums(self, steps=1, batch_size=1, grad_accum=1, warmup_steps=0, decay_from_step=0, decay_steps=1,
                       weight_decay=0, max_timestep=1, learned_degradation_from_step=0, temporal_weight=0,
                       temporal_shift_px=0, temporal_rotation_deg=0, checkpoint_every=1, validate_every=1, log_every=1,
                       val_count=0, num_threads=0)
        if not self.lr > 0:
            raise ConfigError(f"lr: expected more than 0, got {self.lr}")
        check_shares(self, "decay_to", "ema_decay", "degradation_fraction", "learned_degradation_fraction", "real_lq_fraction",
                     "identity_dropout", "temporal_fraction")
        check_choice("mixed_precision", self.mixed_precision, ("auto", "no", *DTYPES))


def load_train_config(name_or_path: str | Path) -> TrainConfig:
    return resolve_config(TrainConfig, "train", name_or_path)


def _rank() -> tuple[int, int]:
    """This process's rank and the number of processes, as a launcher (torchrun) sets them in WORLD_SIZE."""
    world = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    if not world.isdigit():
        raise ConfigError(f"WORLD_SIZE={world!r} is no number of processes: unset it, or start the run with torchrun")
    if int(world) > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """The learning rate at ``step`` as a fraction of ``cfg.lr``: linear warm-up, constant, cosine decay."""
    factor = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.decay_from_step and step > cfg.decay_from_step:
        progress = min(1.0, (step - cfg.decay_from_step) / max(1, cfg.decay_steps))
        factor *= cfg.decay_to + (1 - cfg.decay_to) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def training_precision(name: str, device: torch.device) -> torch.dtype:
    """What the network's forward pass runs in for ``mixed_precision`` ``name`` on ``device``: "no"
    fp32, "bf16" and "fp16" as named, "auto" what ``--dtype auto`` picks there
    (:func:`~vidrestore.models.precision.network_dtype`): bf16 on CUDA and on a CPU that multiplies
    in it, where a step of ``--config small`` took 2.64 s against 4.34 in fp32 (an AMD EPYC with
    AVX-512 BF16; 1.45-1.50 against 2.47-2.61 with AMX) with the same loss to four decimals after 30 steps."""
    if name == "no":
        return torch.float32
    return network_dtype(name, device)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in [0, 1]."""
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1 / mse)


class Trainer:
    def __init__(self, cfg: TrainConfig, device: torch.device):
        for pack in [cfg.hq_pack, *cfg.extra_packs]:
            if not pack or not Path(pack).is_file():
                raise ConfigError(f"training data not found: {pack!r}; run `vidrestore train pack` first")
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.cfg = cfg
        self.rank, self.world = _rank()
        self.device = device
        self.precision = training_precision(cfg.mixed_precision, device)
        self.model_cfg = load_config(cfg.model)
        self.degradation = resolve_config(DegradationConfig, "degradations", cfg.degradation)
        self.data = PackedFaces([*cfg.extra_packs, cfg.hq_pack])
        self.real_lq = PackedFaces(cfg.real_lq_pack) if cfg.real_lq_pack else None
        if cfg.real_lq_fraction > 0 and self.real_lq is None:
            raise ConfigError("real_lq_fraction > 0 needs real_lq_pack (`vidrestore train pack` of a folder of real LQ faces)")
        self.train_idx, self.val_idx = self.data.split(min(cfg.val_count, len(self.data) // 5))
        torch.manual_seed(cfg.seed)
        self.model = Flipnet(self.model_cfg).to(device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(cfg, s))
        self.gen = torch.Generator().manual_seed(cfg.seed * 9973 + self.rank)
        self.step = 0
        self.ddp = (torch.nn.parallel.DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
                    if self.world > 1 else self.model)
        scheduler = make_scheduler(SamplerConfig(), self.model_cfg.num_train_timesteps, self.model_cfg.beta_start,
                                   self.model_cfg.beta_end, self.model_cfg.prediction_type)
        self.alphas_cumprod = scheduler.alphas_cumprod.to(device)
        self.out = Path(cfg.out_dir)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # it was a traceback
            raise OutputError(f"cannot make the run's folder {self.out} (out_dir; {exc.strerror or exc})") from exc
        self.scaler = torch.amp.GradScaler(enabled=self.precision == torch.float16 and device.type == "cuda")

    # --- one step -----------------------------------------------------------------------
    def make_batch(self) -> dict[str, torch.Tensor]:
        """One batch, built on the training device: the degradations run there too, so a GPU does not
        wait on the host's cores. Random numbers come from the CPU generator that checkpoints save."""
        cfg, g, dev = self.cfg, self.gen, self.device
        idx = self.train_idx[torch.randint(0, len(self.train_idx), (cfg.batch_size,), generator=g)]
        hq, identity = (x.to(dev) for x in self.data.batch(idx, g))
        params = sample_params(self.degradation, len(hq), g)
        lq = degrade(hq, params, g)
        mode = (torch.rand(len(hq), generator=g) < cfg.degradation_fraction).long()
        learned = (torch.rand(len(hq), generator=g) < cfg.learned_degradation_fraction) & (mode == RESTORE)
        learned &= self.step >= cfg.learned_degradation_from_step
        if learned.any():
            on = learned.to(dev)
            lq[on] = self.degrade_with_model(hq[on], int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        real = (torch.rand(len(hq), generator=g) < cfg.real_lq_fraction) & (mode == DEGRADE)
        if real.any():
            pick = torch.randint(0, len(self.real_lq), (int(real.sum()),), generator=g)
            real_lq, real_identity = self.real_lq.batch(pick, g)
            on = real.to(dev)
            lq[on], identity[on] = real_lq.to(dev), real_identity.to(dev)
            hq[on] = self.pseudo_hq(lq[on], identity[on], int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        keep_id = (torch.rand(len(hq), generator=g) >= cfg.identity_dropout).float()[:, None]
        t = torch.randint(0, cfg.max_timestep, (len(hq),), generator=g)
        noise = torch.randn(hq.shape, generator=g)
        batch = {"hq": hq, "lq": lq, "identity": identity * keep_id.to(dev), "mode": mode.to(dev), "t": t.to(dev),
                 "noise": noise.to(dev)}
        moved = (torch.rand(len(hq), generator=g) < cfg.temporal_fraction) & (mode == RESTORE) & ~learned  # synthetic pairs only
        first = torch.nonzero(moved)[:, 0]
        return self.add_next_frames(batch, first, params) if len(first) else batch

    def add_next_frames(self, batch: dict[str, torch.Tensor], first: torch.Tensor, params: DegradationParams) -> dict[str, torch.Tensor]:
        """Append a moved, freshly degraded next frame for each sample in ``first``; ``pairs`` (P, 2)
        indexes (first, next) and ``motion`` (P, 2, 3) maps first-frame pixels to next-frame ones."""
        g, cfg, dev = self.gen, self.cfg, self.device
        motion = random_motion(len(first), batch["hq"].shape[-1], cfg.temporal_shift_px, cfg.temporal_rotation_deg, g).to(dev)
        picked = first.to(dev)
        hq_next = warp(batch["hq"][picked], motion, "reflection").clamp(0, 1)
        extra = {"hq": hq_next, "lq": degrade(hq_next, params.index(first), g)}
        for key in ("identity", "mode", "t", "noise"):
            extra[key] = batch[key][picked]
        out = {k: torch.cat([batch[k], extra[k]]) for k in batch}
        out["pairs"] = torch.stack([first, len(batch["hq"]) + torch.arange(len(first))], 1).to(dev)
        out["motion"] = motion
        return out

    @torch.no_grad()
    def pseudo_hq(self, lq: torch.Tensor, identity: torch.Tensor, seed: int) -> torch.Tensor:
        """The EMA network's restoration of real LQ faces: the condition of their degradation samples."""
        sampler = dataclasses.replace(self.cfg.sampler, seed=seed)
        return restore_batch(self.ema, lq.to(self.device), identity.to(self.device), sampler)

    @torch.no_grad()
    def degrade_with_model(self, hq: torch.Tensor, seed: int) -> torch.Tensor:
        """Realistic LQ versions of ``hq`` from the EMA network in degradation mode."""
        sampler = dataclasses.replace(self.cfg.degradation_sampler, seed=seed)
        return sample_faces(self.ema, hq.to(self.device), None, sampler, DEGRADE)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        b = {k: v.to(self.device) for k, v in batch.items()}
        hq, lq = b["hq"] * 2 - 1, b["lq"] * 2 - 1
        degr = (b["mode"] == DEGRADE)[:, None, None, None]
        target = torch.where(degr, lq, hq)
        cond = torch.where(degr, hq, lq)
        ab = self.alphas_cumprod[b["t"]][:, None, None, None]
        x_t = ab.sqrt() * target + (1 - ab).sqrt() * b["noise"]
        with autocast(self.device, self.precision):
            pred = self.ddp(x_t, b["t"], cond, b["identity"], b["mode"]).float()
        loss = F.mse_loss(pred, target)
        if "pairs" in b:
            loss = loss + self.cfg.temporal_weight * warping_error(pred[b["pairs"][:, 0]], pred[b["pairs"][:, 1]], b["motion"])
        return loss

    def train_step(self) -> float:
        total = 0.0
        for _ in range(self.cfg.grad_accum):
            loss = self.loss(self.make_batch()) / self.cfg.grad_accum
            self.scaler.scale(loss).backward()
            total += float(loss.detach())
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        self.sched.step()
        self._update_ema()
        self.step += 1
        return total

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.model.parameters()):
            e.lerp_(p.detach(), 1 - d)

    # --- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Rank 0 writes the weights, optimizer and schedule; every rank writes its own RNG states,
        so a resumed multi-GPU run draws the batches an uninterrupted one would."""
        path = self.out / "checkpoint"
        path.mkdir(exist_ok=True)
        rng = {"data": self.gen.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":  # torch.poisson on CUDA draws from the device's generator
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        _atomic_save(rng, path / f"rng{self.rank}.pt")
        if self.rank == 0:
            save_flipnet(self.model, path / "model.safetensors")
            save_flipnet(self.ema, path / "ema.safetensors", metadata={"step": str(self.step)})
            _atomic_save({"step": self.step, "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                          "scaler": self.scaler.state_dict()}, path / "state.pt")
        if self.world > 1:
            dist.barrier()
        return path

    def resume(self) -> bool:
        """Restore model, EMA, optimizer, LR schedule, data RNG and step from ``out_dir``; False if none."""
        from ..models.zoo import load_state_dict

        path = self.out / "checkpoint"
        if not (path / "state.pt").is_file():
            if self.cfg.init_weights:
                self.start_from(self.cfg.init_weights)
            return False
        self.model.load_state_dict(load_state_dict(path / "model.safetensors"))
        self.ema.load_state_dict(load_state_dict(path / "ema.safetensors"))
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        rng = torch.load(path / f"rng{self.rank}.pt", map_location="cpu", weights_only=True)
        self.gen.set_state(rng["data"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.step = int(state["step"])
        return True

    def start_from(self, name_or_path: str) -> None:
        """Model and EMA weights from a released model, which must have this run's architecture."""
        from ..models.zoo import resolve_weights

        released = load_flipnet(resolve_weights(name_or_path))
        if released.config != self.model_cfg:
            raise ConfigError(f"init_weights {name_or_path} is a {released.config.name!r} model; this run trains {self.model_cfg.name!r}")
        state = {k: v.float() for k, v in released.state_dict().items()}
        self.model.load_state_dict(state)
        self.ema.load_state_dict(state)

    # --- validation -----------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR of LQ and of restored val faces (fixed degradations, seed 1234), EMA weights; nothing
        where no face is held out (``val_count: 0``, or a pack of under 5 faces: it failed at the end
        of the run with a traceback)."""
        if not len(self.val_idx):
            return {}
        g = torch.Generator().manual_seed(1234)
        hq, identity = self.data.batch(self.val_idx, g, flip=False)
        lq = degrade(hq, sample_params(self.degradation, len(hq), g), g)
        restored = restore_batch(self.ema, lq.to(self.device), identity.to(self.device), self.cfg.sampler).cpu()
        shown = slice(0, min(8, len(hq)))
        learned_lq = self.degrade_with_model(hq[shown], 1234).cpu()
        if self.rank == 0:
            save_sheet(self.out / "val" / f"step{self.step:07d}.png", [hq[shown], lq[shown], restored[shown], learned_lq])
        return {"val_psnr_lq": float(psnr(lq, hq).mean()), "val_psnr_restored": float(psnr(restored, hq).mean())}

    # --- loop -------------------------------------------------------------------------------
    def _out_of_time(self, started: float, time_limit: float | None) -> bool:
        """Whether the time is up; under DDP the ranks agree (any rank's yes), so they stop at the same step."""
        if time_limit is None:
            return False
        over = time.monotonic() - started >= time_limit
        if self.world > 1:
            flag = torch.tensor([float(over)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            over = bool(flag)
        return over

    def run(self, on_log=None, time_limit: float | None = None) -> list[dict[str, float]]:
        """Train up to ``cfg.steps``. With ``time_limit`` (seconds), stop at the first step boundary
        past it, logged, validated and checkpointed as a finished run is, so a later run resumes there
        (a time-boxed job on a shared cluster or a lent GPU)."""
        cfg = self.cfg
        self.resume()
        log_path = self.out / "log.csv"
        rows = []
        started = t0 = time.monotonic()
        losses = []
        while self.step < cfg.steps:
            losses.append(self.train_step())
            last = self.step == cfg.steps or self._out_of_time(started, time_limit)
            row = None
            if self.step % cfg.log_every == 0 or last:
                row = {"step": self.step, "loss": float(np.mean(losses)), "lr": self.sched.get_last_lr()[0],
                       "sec_per_step": (time.monotonic() - t0) / len(losses)}
                t0, losses = time.monotonic(), []
            if self.step % cfg.validate_every == 0 or last:
                row = {**(row or {"step": self.step}), **self.validate()}
            if row is not None and self.rank == 0:
                rows.append(row)
                _append_csv(log_path, row)
                if on_log:
                    on_log(row)
            if self.step % cfg.checkpoint_every == 0 or last:
                self.save_checkpoint()
            if last:
                break
        if self.world > 1:
            dist.destroy_process_group()
        return rows


def warp(images: torch.Tensor, motion: torch.Tensor, padding: str) -> torch.Tensor:
    """Differentiable affine warp of (B, C, S, S) images by (B, 2, 3) pixel matrices (first -> next frame)."""
    size = images.shape[-2:]
    return kornia.geometry.transform.warp_affine(images, motion, dsize=size, mode="bilinear", padding_mode=padding,
                                                 align_corners=False)


def random_motion(n: int, size: int, shift_px: float, rotation_deg: float, gen: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) small similarity transforms about the crop centre: rotation, 2% scale, shift."""
    angle = (torch.rand(n, generator=gen) * 2 - 1) * np.deg2rad(rotation_deg)
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * 0.02
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * shift_px
    cos, sin = scale * angle.cos(), scale * angle.sin()
    lin = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    centre = torch.full((n, 2, 1), size / 2)
    return torch.cat([lin, centre - lin @ centre + shift[..., None]], 2)


def warping_error(first: torch.Tensor, following: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between ``following`` and ``first`` moved by ``motion``, over the
    pixels that the motion brings inside the crop."""
    inside = warp(torch.ones_like(first[:, :1]), motion, "zeros") > 0.999
    diff = (warp(first, motion, "zeros") - following).pow(2) * inside
    return diff.sum() / (inside.sum() * first.shape[1]).clamp_min(1)


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_sheet(path: Path, rows: list[torch.Tensor]) -> None:
    """A PNG with one row of faces per tensor (B, 3, S, S) in [0, 1]. Validation sheets show the HQ
    faces, their synthetic LQ, the restoration of that LQ, and the network's own degradation."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    grid = torch.cat([torch.cat(list(r.clamp(0, 1)), 2) for r in rows], 1)
    Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)


def _append_csv(path: Path, row: dict[str, float]) -> None:
    keys = ["step", "loss", "lr", "sec_per_step", "val_psnr_lq", "val_psnr_restored"]
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in keys})


@torch.no_grad()
def sample_faces(model: Flipnet, source: torch.Tensor, identity: torch.Tensor | None, cfg: SamplerConfig,
                 mode: int = RESTORE) -> torch.Tensor:
    """Run FLIPNET on independent faces (B, 3, S, S) in [0, 1] (no temporal coupling); returns [0, 1].

    ``mode`` RESTORE turns LQ faces into HQ ones; DEGRADE turns HQ faces into realistic LQ ones.
    Either way the source is both the condition and the DifFace start estimate.
    """
    mc = model.config
    scheduler = make_scheduler(cfg, mc.num_train_timesteps, mc.beta_start, mc.beta_end, mc.prediction_type)
    state = TemporalState(TrackNoise.draw(cfg.seed, 0, tuple(source.shape[1:]), cfg.steps, source.device))
    cond = source * 2 - 1

    def denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x, t, cond, identity, mode, cfg.boosthub_scale)

    return (sample(denoiser, scheduler, cfg, cond, [TrackSpan(state, len(cond))]) + 1) / 2


def restore_batch(model: Flipnet, lq: torch.Tensor, identity: torch.Tensor | None, cfg: SamplerConfig) -> torch.Tensor:
    return sample_faces(model, lq, identity, cfg, RESTORE)
