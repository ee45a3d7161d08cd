"""The ``Restorer`` interface the pipeline calls, and its FLIPNET implementation.

A restorer receives, for one face track, consecutive batches of aligned crops in time order and
returns restored crops of the same shape. It keeps per-track state (shared noise, carried x0) in a
``TrackContext`` that the pipeline creates with :meth:`Restorer.start_track`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from .diffusion.flow import flows_to_previous
from .diffusion.sampler import SamplerConfig, TemporalInputs, TemporalState, TrackNoise, make_scheduler, sample
from .errors import ModelError
from .faces.identity import IdentityEncoder
from .models import zoo
from .models.flipnet import RESTORE, Flipnet, load_flipnet


@dataclass
class TrackContext:
    track_id: int
    identity: torch.Tensor | None = None
    state: TemporalState | None = None
    last_crop: np.ndarray | None = None  # previous batch's last LQ crop, for the first flow of the next batch
    extra: dict = field(default_factory=dict)


class Restorer(Protocol):
    name: str
    face_size: int

    def start_track(self, track_id: int, first_crops: torch.Tensor) -> TrackContext: ...

    def restore(self, crops: torch.Tensor, context: TrackContext) -> torch.Tensor:
        """(T, 3, S, S) in [0, 1] -> restored (T, 3, S, S) in [0, 1]."""
        ...


class PassThroughRestorer:
    """Returns the crops unchanged: for debugging the pipeline around the model (``--restorer none``)."""

    name = "none (pass-through)"

    def __init__(self, face_size: int):
        self.face_size = face_size

    def start_track(self, track_id: int, first_crops: torch.Tensor) -> TrackContext:
        return TrackContext(track_id)

    def restore(self, crops: torch.Tensor, context: TrackContext) -> torch.Tensor:
        return crops


def _to_uint8(crops: torch.Tensor) -> np.ndarray:
    return (crops.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class FlipnetRestorer:
    """FLIPNET restoration of a track, batched over its frames, with temporal coupling."""

    def __init__(self, model: Flipnet, sampler: SamplerConfig, device: torch.device,
                 identity_encoder: IdentityEncoder | None, name: str, dtype: torch.dtype = torch.float32,
                 temporal: bool = True, compile_backend: str = ""):
        self.model = model.to(device).eval()
        self.sampler = sampler
        self.device = device
        self.dtype = dtype
        self.identity_encoder = identity_encoder
        self.temporal = temporal
        self.face_size = model.config.image_size
        self.name = name
        mc = model.config
        self._scheduler_args = (mc.num_train_timesteps, mc.beta_start, mc.beta_end, mc.prediction_type)
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        # On CPU a batch's activations outgrow the caches: 16 crops at once cost 137 ms/crop against
        # 90-96 ms in chunks of 1-4 (flipnet-small, 2 cores). Chunks leave the result unchanged:
        # every sample is computed on its own. GPUs take the whole batch.
        self.micro_batch = 4 if device.type == "cpu" else 0
        if compile_backend:
            # The last window of a track is shorter: dynamic shapes avoid one recompile per length.
            self.model = torch.compile(self.model, backend=compile_backend, dynamic=True)

    def start_track(self, track_id: int, first_crops: torch.Tensor) -> TrackContext:
        identity = None
        if self.identity_encoder is not None and len(first_crops):
            # One identity per track: the mean descriptor over up to 8 frames spread over the first batch.
            pick = np.linspace(0, len(first_crops) - 1, min(8, len(first_crops))).round().astype(int)
            emb = self.identity_encoder.embed(_to_uint8(first_crops[pick]))
            identity = torch.from_numpy(emb.mean(0)).to(self.device)
        shape = (3, self.face_size, self.face_size)
        noise = TrackNoise.draw(self.sampler.seed, track_id, shape, self.sampler.steps, self.device)
        return TrackContext(track_id, identity, TemporalState(noise))

    def _temporal_inputs(self, crops: torch.Tensor, context: TrackContext) -> TemporalInputs | None:
        if not self.temporal:
            return None
        frames = _to_uint8(crops)
        has_prev = context.last_crop is not None
        seq = np.concatenate([context.last_crop[None], frames]) if has_prev else frames
        flows, valid = flows_to_previous(seq)
        if has_prev:
            flows, valid = flows[1:], valid[1:]
        context.last_crop = frames[-1]
        return TemporalInputs(flows.to(self.device), valid.to(self.device))

    @torch.no_grad()
    def restore(self, crops: torch.Tensor, context: TrackContext) -> torch.Tensor:
        size = self.face_size
        lq = crops if crops.shape[-1] == size else F.interpolate(crops, size=(size, size), mode="area")
        temporal = self._temporal_inputs(lq, context)
        cond = (lq.to(self.device) * 2 - 1)
        scheduler = make_scheduler(self.sampler, *self._scheduler_args)
        autocast = self.device.type == "cuda" and self.dtype != torch.float32

        def denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            step = self.micro_batch or len(x)
            outs = []
            for i in range(0, len(x), step):
                with torch.autocast(self.device.type, dtype=self.dtype, enabled=autocast):
                    outs.append(self.model(x[i:i + step], t[i:i + step] if t.ndim else t, cond[i:i + step], context.identity,
                                           RESTORE, self.sampler.boosthub_scale).float())
            return torch.cat(outs)

        out = (sample(denoiser, scheduler, self.sampler, cond, context.state, temporal) + 1) / 2
        return out if out.shape[-1] == crops.shape[-1] else F.interpolate(out, size=crops.shape[-2:], mode="bicubic").clamp(0, 1)


def load_restorer(name_or_path: str, sampler: SamplerConfig, device: torch.device, dtype: torch.dtype,
                  identity_encoder: IdentityEncoder | None, face_size: int, compile_backend: str = "") -> Restorer:
    """``none`` (pass-through), a zoo name (e.g. ``flipnet-small``), or a path to a FLIPNET safetensors file."""
    if name_or_path == "none":
        return PassThroughRestorer(face_size)
    path = Path(name_or_path)
    if path.suffix != ".safetensors":
        found = zoo.locate(name_or_path)
        if found is None:
            e = zoo.entry(name_or_path)
            raise ModelError(f"weights for {name_or_path} not found (looked in {', '.join(map(str, zoo.candidates(e)))})")
        path = zoo.verify(name_or_path, found)
    model = load_flipnet(path, device)
    return FlipnetRestorer(model, sampler, device, identity_encoder, name=f"flipnet ({path.name}, {model.config.name})", dtype=dtype,
                           compile_backend=compile_backend)
