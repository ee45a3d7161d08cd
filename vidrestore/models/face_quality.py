"""FaceQualityNet: how far an aligned face crop is from a clean picture of the same face.

A small convolutional regressor. Given an aligned crop, it estimates the PSNR (dB) the crop has
against the clean face it was made from, as the training degradations (``vidrestore.degrade``)
make faces worse, from untouched down to archival damage; a face at :data:`CEILING_DB` or closer
to clean counts as clean. The pipeline turns the estimate into each person's restoration strength
(``vidrestore.faces.quality``): a face that is already clean gains nothing from being redrawn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import to_dict
from ..errors import ModelError
from .zoo import checkpoint_config, load_state_dict, save_weights

# estimates are clamped to [FLOOR_DB, CEILING_DB]; a face this close to clean or closer is taught
# as CEILING_DB (an untouched one's PSNR is infinite)
CEILING_DB, FLOOR_DB = 40.0, 10.0
MIDDLE_DB, DB_SCALE = 30.0, 10.0  # the head answers in tens of dB about the middle
FORMAT = "vidrestore-face-quality-1"


@dataclass(frozen=True)
class FaceQualityConfig:
    image_size: int = 128  # crops of another size are resized to this before the first layer
    # channels of each layer: the first at full resolution (fine detail, noise and JPEG show
    # there), each later one halving it
    widths: tuple[int, ...] = (24, 32, 48, 64, 64)


class FaceQualityNet(nn.Module):
    def __init__(self, config: FaceQualityConfig = FaceQualityConfig()):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = 3
        for i, width in enumerate(config.widths):
            # batch norm keeps each face's own signal strength (what noise and blur change) across the batch
            layers += [nn.Conv2d(channels, width, 3, stride=1 if i == 0 else 2, padding=1, bias=False), nn.BatchNorm2d(width), nn.GELU()]
            channels = width
        self.features = nn.Sequential(*layers)
        # mean and spread of the last features over the face: damage can be local (a scratch, blocks)
        self.head = nn.Linear(2 * channels, 1)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) RGB in [0, 1] -> (B,) predicted PSNR in dB, in [FLOOR_DB, CEILING_DB]."""
        size = self.config.image_size
        if faces.shape[-2:] != (size, size):
            faces = nn.functional.interpolate(faces, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        h = self.features(faces * 2 - 1)
        pooled = torch.cat([h.mean((2, 3)), h.std((2, 3))], 1)
        return (MIDDLE_DB + DB_SCALE * self.head(pooled)[:, 0]).clamp(FLOOR_DB, CEILING_DB)


def save_face_quality(model: FaceQualityNet, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Weights and config in one safetensors file (config as JSON in the header)."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_weights(state, path, {"config": json.dumps(to_dict(model.config)), "format": FORMAT, **(metadata or {})})


def load_face_quality(path: str | Path, device: torch.device | str = "cpu") -> FaceQualityNet:
    """Rebuild a FaceQualityNet from a file written by :func:`save_face_quality`."""
    model = FaceQualityNet(checkpoint_config(path, FaceQualityConfig, "face quality", FORMAT))
    try:
        model.load_state_dict(load_state_dict(path), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not match its own config: {str(exc).splitlines()[0]}") from exc
    return model.to(device).eval()
