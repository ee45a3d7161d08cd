"""Everything that decides what a restored video looks like, in one value.

The single-file command and every batch item build a ``RestoreOptions`` the same way; its
fingerprint (options, model file, detector file, version) tells a batch whether a finished
output is still valid, and a stopped run which of its finished segments the next run may reuse; the worker cache keeps one loaded restorer per distinct model setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__
from .between import KeyframeRestorer
from .diffusion.sampler import SamplerConfig
from .io.sequence import source_stamp
from .models.precision import network_dtype, precision_name
from .models.zoo import weights_digest
from .pipeline import PipelineConfig
from .restore import Restorer, load_restorer, stand_in_restorer
from .resume import SegmentLedger


@dataclass(frozen=True)
class RestoreOptions:
    pipeline: PipelineConfig
    sampler: SamplerConfig
    model: str = "flipnet-small"  # zoo name, .safetensors path, or "none"
    dtype: str = "auto"  # the networks' precision (models.precision.network_dtype)
    temporal: bool = True
    compile: str = ""  # torch.compile backend ("inductor"); empty: eager
    restore_every: int = 1  # the model on every Nth frame of a track, the frames between carried along flow (between.py)

    def fingerprint(self) -> str:
        """Hash of the options and of the files they name (weights, reference photos): equal
        fingerprints give equal outputs."""
        photos = self.pipeline.photos
        options = dataclasses.asdict(self)
        # where the faces are shown changes nothing in the output: adding --faces to a stopped
        # run's command must not throw its finished segments away
        del options["pipeline"]["faces_dir"]
        data = {"options": options, "model": weights_digest(self.model),
                "detector": weights_digest(self.pipeline.detector.weights or ""), "version": __version__,
                "references": {photo: weights_digest(photo) for photo in sorted(photos)}}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def fingerprint_for(self, source: Path, stamp: str | None = None) -> str:
        """The fingerprint of ``source`` restored with these options: a changed input file (its size
        or modification time; any picture of an image sequence) changes it too. ``stamp``: what
        tells the input's content instead (a video piped in, held in a new file each run)."""
        return f"{self.fingerprint()}:{stamp or source_stamp(source)}"


def pinned_precision(options: RestoreOptions, device: torch.device, ledger: SegmentLedger | None) -> RestoreOptions:
    """``options`` with ``--dtype auto`` resolved once for a whole output: to the precision its
    finished segments were restored at, if an earlier run left some, so that a run continued on
    another kind of machine (a CPU with or without bf16, a GPU) does not join bf16 and fp32
    segments; else to what auto means on ``device``. The fingerprint is the unresolved options'
    (an explicit ``--dtype`` is part of it already)."""
    if options.dtype != "auto":
        return options
    recorded = ledger.precision() if ledger is not None else None
    return dataclasses.replace(options, dtype=recorded or precision_name(network_dtype("auto", device)))


def build_restorer(options: RestoreOptions, device: torch.device, dry_run: bool = False) -> Restorer:
    """The restorer ``options`` ask for; for a ``dry_run``, which restores nothing, one that stands
    in for it (its name and crop size) without loading it."""
    from .faces.identity import DlibIdentityEncoder

    if dry_run:
        return stand_in_restorer(options.model, network_dtype(options.dtype, device), options.pipeline.face_size)
    encoder = DlibIdentityEncoder() if options.model != "none" else None
    restorer = load_restorer(options.model, options.sampler, device, network_dtype(options.dtype, device), encoder,
                             options.pipeline.face_size, options.compile)
    if hasattr(restorer, "temporal"):
        restorer.temporal = options.temporal
    return KeyframeRestorer(restorer, options.restore_every) if options.restore_every > 1 else restorer
