"""Face parsing for paste-back masks: a ParseNet that loads facexlib's ``parsing_parsenet.pth``.

ParseNet (Chen et al., PSFR-GAN, CVPR 2021) is an encoder / residual body / decoder network that
labels every pixel of a 512 px aligned face with the 19 CelebAMask-HQ classes. This module is our
own implementation, laid out so that facexlib's checkpoint loads into it with strict key
matching: ``encoder``/``body``/``decoder`` of conv layers (reflection pad, conv, norm, activation)
and residual blocks with a conv shortcut where the shape changes, then ``out_img_conv`` and
``out_mask_conv``. Weights are read with ``torch.load(weights_only=True)``.

The paste mask keeps the face's own classes (skin, brows, eyes, glasses, ears, nose, mouth,
lips) and drops hair, hat, neck, clothes and background, so the restored crop never replaces
hair or background with its own. The hard mask is feathered and kept off the crop's border.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..models import zoo
from ..models.precision import autocast, precision_suffix

FACE_CLASSES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)  # CelebAMask-HQ: skin ... lower lip


@dataclass(frozen=True)
class ParseNetConfig:
    size: int = 512  # input and output resolution
    min_feat_size: int = 32
    base_ch: int = 64
    classes: int = 19
    res_depth: int = 10
    ch_range: tuple[int, int] = (32, 256)


class _Norm(nn.Module):
    def __init__(self, channels: int, batch_norm: bool):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class _Act(nn.Module):
    def __init__(self, leaky: bool):
        super().__init__()
        self.func = nn.LeakyReLU(0.2) if leaky else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.func(x)


class _Conv(nn.Module):
    """Reflection-padded 3x3 conv; ``scale`` 'down' strides by 2, 'up' upsamples (nearest) first."""

    def __init__(self, c_in: int, c_out: int, scale: str = "none", batch_norm: bool = False, leaky: bool = False):
        super().__init__()
        self.up = scale == "up"
        self.reflection_pad = nn.ReflectionPad2d(1)
        self.conv2d = nn.Conv2d(c_in, c_out, 3, 2 if scale == "down" else 1, bias=not batch_norm)
        self.norm = _Norm(c_out, batch_norm)
        self.relu = _Act(leaky)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.relu(self.norm(self.conv2d(self.reflection_pad(x))))


class _Residual(nn.Module):
    def __init__(self, c_in: int, c_out: int, scale: str = "none"):
        super().__init__()
        self.shortcut_func = nn.Identity() if scale == "none" and c_in == c_out else _Conv(c_in, c_out, scale)
        first, second = {"down": ("none", "down"), "up": ("up", "none"), "none": ("none", "none")}[scale]
        self.conv1 = _Conv(c_in, c_out, first, batch_norm=True, leaky=True)
        self.conv2 = _Conv(c_out, c_out, second, batch_norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut_func(x) + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    def __init__(self, cfg: ParseNetConfig = ParseNetConfig()):
        super().__init__()
        self.config = cfg
        lo, hi = cfg.ch_range

        def clip(c: int) -> int:
            return max(lo, min(c, hi))

        steps = int(math.log2(cfg.size // min(cfg.size, cfg.min_feat_size)))
        encoder: list[nn.Module] = [_Conv(3, cfg.base_ch)]
        ch = cfg.base_ch
        for _ in range(steps):
            encoder.append(_Residual(clip(ch), clip(ch * 2), "down"))
            ch *= 2
        self.encoder = nn.Sequential(*encoder)
        self.body = nn.Sequential(*[_Residual(clip(ch), clip(ch)) for _ in range(cfg.res_depth)])
        decoder = []
        for _ in range(steps):
            decoder.append(_Residual(clip(ch), clip(ch // 2), "up"))
            ch //= 2
        self.decoder = nn.Sequential(*decoder)
        self.out_img_conv = _Conv(clip(ch), 3)
        self.out_mask_conv = _Conv(clip(ch), cfg.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, classes, S, S) of faces ``x`` (B, 3, S, S) in [-1, 1]."""
        feat = self.encoder(x)
        return self.out_mask_conv(self.decoder(feat + self.body(feat)))


def config_from_state(state: dict[str, torch.Tensor], size: int = 512) -> ParseNetConfig:
    """The shape of a ParseNet checkpoint, read off its weights (facexlib's is the default config)."""
    try:
        steps = len({k.split(".")[1] for k in state if k.startswith("encoder.")}) - 1
        widths = [w.shape[0] for k, w in state.items() if k.endswith("conv2d.weight") and not k.startswith("out_")]
        base = state["encoder.0.conv2d.weight"].shape[0]
        return ParseNetConfig(size=size, min_feat_size=size >> steps, base_ch=base,
                              classes=state["out_mask_conv.conv2d.weight"].shape[0],
                              res_depth=len({k.split(".")[1] for k in state if k.startswith("body.")}),
                              ch_range=(min(base, state["out_mask_conv.conv2d.weight"].shape[1]), max(widths)))
    except (KeyError, IndexError) as exc:
        raise ModelError(f"not a ParseNet checkpoint (no {exc})") from exc


def load_parsenet(path: str | Path, device: torch.device) -> ParseNet:
    """A ParseNet with the weights of ``path`` (facexlib's ``parsing_parsenet.pth`` layout)."""
    state = zoo.load_state_dict(path)
    net = ParseNet(config_from_state(state))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{path} is not a ParseNet checkpoint of this shape ({str(exc).splitlines()[0]})") from exc
    # channels-last: oneDNN's convolutions ran it about 18% faster on 2 cores (3.2 against 3.9 s a 512 px face)
    return net.to(device).eval().to(memory_format=torch.channels_last)


class ParsingMasker:
    """Paste masks (K, 1, S, S) from the parsing of restored crops (K, 3, S, S) in [0, 1]."""

    def __init__(self, net: ParseNet, dtype: torch.dtype = torch.float32):
        self.net = net
        self.device = next(net.parameters()).device
        self.dtype = dtype
        self.name = f"parsing (ParseNet{precision_suffix(dtype)})"
        # On the CPU a face takes the same time in any batch (3.1-3.2 s at 512 px, 2 cores), but
        # memory grows with it: 1.3 GB of the process's peak at 2 faces, 3.8 GB at 8.
        self.chunk = 2 if self.device.type == "cpu" else 0
        self.seconds = 0.0  # spent parsing, for the report's advice

    @torch.no_grad()
    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        started = time.perf_counter()
        size, side = crops.shape[-1], self.net.config.size
        x = F.interpolate(crops.to(self.device), size=(side, side), mode="bilinear", align_corners=False) * 2 - 1
        with autocast(self.device, self.dtype):
            labels = torch.cat([self.net(part).argmax(1, keepdim=True) for part in x.split(self.chunk or max(1, len(x)))])
        self.seconds += time.perf_counter() - started  # the argmax waits for an accelerator's pass
        face = torch.isin(labels, torch.tensor(FACE_CLASSES, device=labels.device)).float()
        face = F.interpolate(face, size=(size, size), mode="area")
        return feather(face).to(crops.device)


def sparse_masks(masker: ParsingMasker, crops: torch.Tensor, keys: list[int]) -> torch.Tensor:
    """Paste masks (K, 1, S, S) for ``crops`` (K, 3, S, S, one track's, in order) from the parsing of
    those at ``keys`` (increasing indices, the first and the last among them), drawn linearly
    between them: a mask in the aligned crop moves only as the face's own shape does, so a few
    parses stand for the frames between, at a fraction of the cost, and steadier."""
    parsed = masker(crops[keys])
    if len(keys) == len(crops):
        return parsed
    at = torch.arange(len(crops), device=parsed.device, dtype=torch.float32)
    known = torch.tensor(keys, device=parsed.device, dtype=torch.float32)
    after = torch.searchsorted(known, at, right=False).clamp(1, len(keys) - 1)
    before = after - 1
    share = ((at - known[before]) / (known[after] - known[before])).view(-1, 1, 1, 1)
    return parsed[before] * (1 - share) + parsed[after] * share


def feather(mask: torch.Tensor) -> torch.Tensor:
    """Soften a hard mask (B, 1, S, S) and keep it off a band along the crop border."""
    size = mask.shape[-1]
    sigma = size / 48
    reach = math.ceil(3 * sigma)
    band = reach + 1  # wider than the blur reaches, so the mask is zero at the crop's edge
    mask = mask.clone()
    mask[..., :band, :] = mask[..., -band:, :] = 0
    mask[..., :, :band] = mask[..., :, -band:] = 0
    k = 2 * reach + 1
    return kornia.filters.gaussian_blur2d(mask, (k, k), (sigma, sigma), border_type="constant").clamp(0, 1)
