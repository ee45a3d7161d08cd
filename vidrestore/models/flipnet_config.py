"""FLIPNET's configuration, apart from the network, so that it can be read (from a checkpoint's
header or ``configs/models``) without importing diffusers, which takes 1.5 s: a dry run needs only
the model's crop size and name. Nor torch: the command line finds and checks the checkpoint
(:func:`flipnet_checkpoint`) before torch is imported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import zoo

# The "format" a FLIPNET checkpoint names in its header (every one written has named it).
FLIPNET_FORMAT = "vidrestore-flipnet-1"


@dataclass(frozen=True)
class FlipnetConfig:
    name: str = "tiny"
    image_size: int = 32
    block_channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    attention_levels: list[bool] = field(default_factory=lambda: [False, True, True])
    layers_per_block: int = 1
    cond_channels: list[int] = field(default_factory=lambda: [8, 16, 32])
    head_dim: int = 16
    norm_groups: int = 8
    id_dim: int = 128
    prediction_type: str = "sample"  # the network predicts x0; see docs/flipnet.md
    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02


def flipnet_checkpoint(name_or_path: str) -> tuple[Path, FlipnetConfig]:
    """The FLIPNET checkpoint of a zoo name (found, its sha256 verified) or a path, and the config
    its header holds; a ModelError where there is none, or the file is no FLIPNET checkpoint."""
    path = zoo.resolve_weights(name_or_path)
    return path, zoo.checkpoint_config(path, FlipnetConfig, "FLIPNET", FLIPNET_FORMAT)
