"""The ``Restorer`` interface the pipeline calls, and its FLIPNET implementation.

A restorer receives consecutive batches of aligned crops of face tracks, each track's in time order,
and returns restored crops of the same shape. Pieces of several tracks may come in one call and are
restored in one forward pass per step. It keeps per-track state (shared noise, carried x0) in a
``TrackContext`` that the pipeline creates with :meth:`Restorer.start_track`. A context can be
written to a file and read back (:func:`save_contexts`), so a video split inside a shot restores
its second part as if it had gone on from the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from .diffusion.flow import flows_to_previous
from .diffusion.sampler import (
    SamplerConfig,
    TemporalInputs,
    TemporalState,
    TrackNoise,
    TrackSpan,
    check_chain,
    make_scheduler,
    sample,
)
from .errors import ModelError, UsageError
from .faces.identity import IdentityEncoder
from .models.flipnet_config import FlipnetConfig, flipnet_checkpoint
from .models.precision import autocast, emulated_precision_note, precision_suffix

# FLIPNET's module imports diffusers (1.5 s): it is imported where a model is loaded, so that runs
# with no model (--model none) start without it.
if TYPE_CHECKING:
    from .models.flipnet import Flipnet


@dataclass
class Keyframe:
    """A track's last frame restored by the model under ``--restore-every``
    (:class:`~vidrestore.between.KeyframeRestorer`), for the frames after it in its next batch."""

    crop: torch.Tensor  # (3, S, S) its input crop in [0, 1]
    change: torch.Tensor  # (3, S, S) what restoration changed there: the restored crop less ``crop``


@dataclass
class TrackContext:
    track_id: int
    identity: torch.Tensor | None = None
    state: TemporalState | None = None
    last_crop: np.ndarray | None = None  # previous batch's last LQ crop, for the first flow of the next batch
    keyframe: Keyframe | None = None


def save_contexts(contexts: dict[int, TrackContext], path: Path) -> None:
    """Write what each track carries into the frames after a segment (identity, noise fields, the
    fused x0 of its last frame per step, its last LQ crop, its last keyframe) to ``path``, as safetensors."""
    tensors: dict[str, torch.Tensor] = {}
    for track_id, ctx in contexts.items():
        parts = {"identity": ctx.identity, "last_crop": None if ctx.last_crop is None else torch.from_numpy(ctx.last_crop)}
        if ctx.keyframe is not None:
            parts |= {"keyframe.crop": ctx.keyframe.crop, "keyframe.change": ctx.keyframe.change}
        if ctx.state is not None:
            parts["noise.start"] = ctx.state.noise.start
            parts |= {f"noise.{k}": n for k, n in enumerate(ctx.state.noise.steps)}
            parts |= {f"x0.{k}": x for k, x in enumerate(ctx.state.previous_x0 or [])}
        tensors |= {f"{track_id}.{name}": t.detach().cpu().contiguous().clone() for name, t in parts.items() if t is not None}
    save_file(tensors, str(path), metadata={"tracks": ",".join(map(str, contexts)),
                                            "stateful": ",".join(str(i) for i, c in contexts.items() if c.state is not None)})


def _numbered(tensors: dict[str, torch.Tensor], prefix: str) -> list[torch.Tensor]:
    """The tensors named ``prefix`` and a number, in the order of their numbers."""
    numbered = {int(k[len(prefix):]): t for k, t in tensors.items() if k.startswith(prefix) and k[len(prefix):].isdigit()}
    return [numbered[i] for i in sorted(numbered)]


def load_contexts(path: Path, device: torch.device) -> dict[int, TrackContext]:
    """The contexts :func:`save_contexts` wrote, on ``device``."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {key: f.get_tensor(key).to(device) for key in f.keys()}  # noqa: SIM118 (safe_open is no mapping)
    ids = lambda field: [int(i) for i in meta.get(field, "").split(",") if i]
    contexts = {}
    for track_id in ids("tracks"):
        mine = {key.split(".", 1)[1]: t for key, t in tensors.items() if key.split(".", 1)[0] == str(track_id)}
        state = None
        if track_id in ids("stateful"):
            state = TemporalState(TrackNoise(mine["noise.start"], _numbered(mine, "noise.")), _numbered(mine, "x0.") or None)
        crop = mine.get("last_crop")
        keyframe = Keyframe(mine["keyframe.crop"], mine["keyframe.change"]) if "keyframe.crop" in mine else None
        contexts[track_id] = TrackContext(track_id, mine.get("identity"), state, None if crop is None else crop.cpu().numpy(), keyframe)
    return contexts


TrackPiece = tuple[torch.Tensor, TrackContext]  # (T, 3, S, S) crops in [0, 1] of one track, and its context


class Restorer(Protocol):
    name: str
    face_size: int
    uses_identity: bool  # whether start_track's reference crops matter (the pipeline reads them only then)
    dtype: torch.dtype  # the precision its network runs at; the face parser runs at it too
    notes: list[str]  # what the report should say about how it ran (e.g. a smaller batch after running out of memory)

    def start_track(self, track_id: int, first_crops: torch.Tensor, reference: torch.Tensor | None = None,
                    person: int | None = None) -> TrackContext:
        """State for a new track from its first crops (T, 3, S, S); ``reference`` (K, 3, S', S'):
        aligned crops that show the person best (a photo, or the track's best frames), to take the
        track's identity from instead; ``person``: the id of the person it shows
        (:mod:`~vidrestore.faces.people`), whose tracks share their noise (default: its own)."""
        ...

    def restore_tracks(self, pieces: list[TrackPiece]) -> list[torch.Tensor]:
        """The next crops of several distinct tracks -> their restored crops, same shapes, same order."""
        ...

    def restore(self, crops: torch.Tensor, context: TrackContext) -> torch.Tensor:
        """(T, 3, S, S) in [0, 1] of one track -> restored (T, 3, S, S) in [0, 1]."""
        return self.restore_tracks([(crops, context)])[0]


class PassThroughRestorer(Restorer):
    """Returns the crops unchanged: for debugging the pipeline around the model (``--model none``),
    and in a dry run, which restores nothing, standing in for the model ``name`` at its crop size."""

    uses_identity = False

    def __init__(self, face_size: int, dtype: torch.dtype = torch.float32, name: str = "none (pass-through)"):
        self.face_size = face_size
        self.dtype = dtype
        self.name = name
        self.notes = []

    def start_track(self, track_id: int, first_crops: torch.Tensor, reference: torch.Tensor | None = None,
                    person: int | None = None) -> TrackContext:
        return TrackContext(track_id)

    def restore_tracks(self, pieces: list[TrackPiece]) -> list[torch.Tensor]:
        return [crops for crops, _ in pieces]


def _to_uint8(crops: torch.Tensor) -> np.ndarray:
    return (crops.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class FlipnetRestorer(Restorer):
    """FLIPNET restoration of face tracks, batched over frames and tracks, with temporal coupling."""

    def __init__(self, model: Flipnet, sampler: SamplerConfig, device: torch.device,
                 identity_encoder: IdentityEncoder | None, name: str, dtype: torch.dtype = torch.float32,
                 temporal: bool = True, compile_backend: str = ""):
        from .models.flipnet import RESTORE

        self.model, self.mode = model.to(device).eval(), RESTORE
        self.sampler = sampler
        self.device = device
        self.dtype = dtype
        self.identity_encoder = identity_encoder
        self.uses_identity = identity_encoder is not None
        self.temporal = temporal
        self.face_size = model.config.image_size
        self.name = name
        self.notes: list[str] = emulated_precision_note(dtype, device)
        mc = model.config
        self._scheduler_args = (mc.num_train_timesteps, mc.beta_start, mc.beta_end, mc.prediction_type)
        check_chain(sampler, mc.num_train_timesteps)  # before any work, not at the first window
        # channels-last on the CPU too: oneDNN's convolutions ran flipnet-small about 12% faster
        # (1.95-2.03 against 1.69-1.82 face-frames/s, fast preset, 2 cores: docs/benchmarks.md)
        self.model = self.model.to(memory_format=torch.channels_last)
        # On CPU a batch's activations outgrow the caches: 16 crops at once cost 137 ms/crop against
        # 90-96 ms in chunks of 1-4 (flipnet-small, 2 cores). Chunks leave the result unchanged:
        # every sample is computed on its own. GPUs take the whole batch. At 16 bits the same bytes
        # hold twice the crops: chunks of 8 ran bf16 12% faster than chunks of 4 (docs/benchmarks.md).
        self.micro_batch = 16 // dtype.itemsize if device.type == "cpu" else 0  # fp32: 4, bf16: 8
        if compile_backend:
            check_backend(compile_backend)
            # The last window of a track is shorter: dynamic shapes avoid one recompile per length.
            self.model = torch.compile(self.model, backend=compile_backend, dynamic=True)

    def start_track(self, track_id: int, first_crops: torch.Tensor, reference: torch.Tensor | None = None,
                    person: int | None = None) -> TrackContext:
        identity = None
        if self.identity_encoder is not None and reference is not None:
            identity = torch.from_numpy(self.identity_encoder.embed(_to_uint8(reference)).mean(0)).to(self.device)
        elif self.identity_encoder is not None and len(first_crops):
            # One identity per track: the mean descriptor over up to 8 frames spread over the first batch.
            pick = np.linspace(0, len(first_crops) - 1, min(8, len(first_crops))).round().astype(int)
            emb = self.identity_encoder.embed(_to_uint8(first_crops[pick]))
            identity = torch.from_numpy(emb.mean(0)).to(self.device)
        shape = (3, self.face_size, self.face_size)
        # a person's tracks share one noise field: the face keeps its look across cuts and occlusions
        noise = TrackNoise.draw(self.sampler.seed, track_id if person is None else person, shape, self.sampler.steps, self.device)
        return TrackContext(track_id, identity, TemporalState(noise))

    def _temporal_inputs(self, crops: torch.Tensor, context: TrackContext) -> TemporalInputs | None:
        if not self.temporal:
            return None
        frames = _to_uint8(crops)
        has_prev = context.last_crop is not None
        seq = np.concatenate([context.last_crop[None], frames]) if has_prev else frames
        flows, valid = flows_to_previous(seq, self.device)
        if has_prev:
            flows, valid = flows[1:], valid[1:]
        context.last_crop = frames[-1]
        return TemporalInputs(flows, valid)

    @torch.no_grad()
    def restore_tracks(self, pieces: list[TrackPiece]) -> list[torch.Tensor]:
        size = self.face_size
        lqs = [crops if crops.shape[-1] == size else F.interpolate(crops, size=(size, size), mode="area") for crops, _ in pieces]
        contexts = [context for _, context in pieces]
        temporal = [self._temporal_inputs(lq, context) for lq, context in zip(lqs, contexts)]
        cond = torch.cat(lqs).to(self.device) * 2 - 1
        identity = self._identity_per_frame(contexts, [len(lq) for lq in lqs])
        scheduler = make_scheduler(self.sampler, *self._scheduler_args)

        def forward(x: torch.Tensor, t: torch.Tensor, rows: slice) -> torch.Tensor:
            # The model's layout at every step: a step's x follows the layout of the model's output,
            # and a compiled model traced on the first step's NCHW x was traced again on the second.
            x = x[rows].contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.dtype):
                return self.model(x, t[rows] if t.ndim else t, cond[rows], identity[rows] if identity is not None else None,
                                  self.mode, self.sampler.boosthub_scale).float()

        def denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            outs: list[torch.Tensor] = []
            while (done := sum(len(o) for o in outs)) < len(x):
                step = self.micro_batch or len(x)
                try:
                    outs.append(forward(x, t, slice(done, done + step)))
                except torch.OutOfMemoryError as exc:
                    self._halve_chunks(min(step, len(x) - done), exc)
            return torch.cat(outs)

        spans = [TrackSpan(context.state, len(lq)) for lq, context in zip(lqs, contexts)]
        joined = TemporalInputs(torch.cat([t.flows for t in temporal]), torch.cat([t.valid for t in temporal])) \
            if self.temporal else None
        out = (sample(denoiser, scheduler, self.sampler, cond, spans, joined) + 1) / 2
        restored = out.split([len(lq) for lq in lqs])
        return [r if r.shape[-1] == crops.shape[-1] else F.interpolate(r, size=crops.shape[-2:], mode="bicubic").clamp(0, 1)
                for r, (crops, _) in zip(restored, pieces)]

    def _halve_chunks(self, step: int, exc: torch.OutOfMemoryError) -> None:
        """After running out of device memory at ``step`` crops per forward pass, use half as many
        for the rest of the run (the results do not change: every sample is computed on its own)."""
        if step <= 1:
            raise ModelError(f"out of memory on {self.device} restoring one {self.face_size} px face at a time; "
                             "free the device's memory or use --device cpu") from exc
        self.micro_batch = step // 2
        self.notes.append(f"out of memory on {self.device} at {step} faces per forward pass; continued at {self.micro_batch}")
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _identity_per_frame(self, contexts: list[TrackContext], lengths: list[int]) -> torch.Tensor | None:
        """Each track's identity embedding repeated over its frames: (T, D), or None without an encoder."""
        present = [c.identity is not None for c in contexts]
        if not any(present):
            return None
        if not all(present):
            raise ValueError("tracks with and without an identity embedding cannot share a batch")
        return torch.cat([c.identity.reshape(1, -1).expand(n, -1) for c, n in zip(contexts, lengths)])


def load_restorer(name_or_path: str, sampler: SamplerConfig, device: torch.device, dtype: torch.dtype,
                  identity_encoder: IdentityEncoder | None, face_size: int, compile_backend: str = "") -> Restorer:
    """``none`` (pass-through), a zoo name (e.g. ``flipnet-small``), or a path to a FLIPNET safetensors file."""
    if name_or_path == "none":
        return PassThroughRestorer(face_size, dtype)
    path, _ = flipnet_checkpoint(name_or_path)  # a wrong file is told before diffusers' imports (2.6 s)
    from .models.flipnet import load_flipnet

    model = load_flipnet(path, device)
    return FlipnetRestorer(model, sampler, device, identity_encoder, name=_flipnet_name(path, model.config, dtype),
                           dtype=dtype, compile_backend=compile_backend)


def stand_in_restorer(name_or_path: str, dtype: torch.dtype, face_size: int) -> Restorer:
    """For a dry run, which restores nothing: what :func:`load_restorer` names and the crop size it
    restores at, from the checkpoint's header, without loading the network (a dry run started
    2.4 s later for it)."""
    if name_or_path == "none":
        return PassThroughRestorer(face_size, dtype)
    path, config = flipnet_checkpoint(name_or_path)
    return PassThroughRestorer(config.image_size, dtype, name=_flipnet_name(path, config, dtype))


def _flipnet_name(path: Path, config: FlipnetConfig, dtype: torch.dtype) -> str:
    return f"flipnet ({path.name}, {config.name}{precision_suffix(dtype)})"


def check_backend(name: str) -> None:
    """Refuse a torch.compile backend torch does not have, before any work: it failed at the
    first window with torch's traceback."""
    import torch._dynamo

    if name not in torch._dynamo.list_backends(exclude_tags=()):  # the debugging ones (eager) count, unnamed
        raise UsageError(f"--compile {name}: torch.compile has no such backend; it has {', '.join(torch._dynamo.list_backends())}")
