"""FLIPNET: one diffusion denoiser that restores (LQ -> HQ) or degrades (HQ -> LQ) faces.

After Miao et al., "FLIPNET" (ICCV 2025, arXiv 2508.08556), rebuilt from its description in pixel
space and trained by this project (no published weights exist). Pieces, each from diffusers:

* a U-Net of ``ResnetBlock2D`` / ``Downsample2D`` / ``Upsample2D`` whose time embedding also
  carries a learned **mode embedding** (0 restoration, 1 degradation) and the **identity
  embedding** (a 128-d face descriptor, FiLM through the ResNet blocks' scale-shift norm);
* a **condition encoder** that turns the condition image (the LQ face in restoration mode, the HQ
  face in degradation mode) into features at every U-Net scale;
* a **BoostHub** beside every self-attention layer: cross-attention with queries from the target
  stream and keys/values from the condition features at that scale, added as
  ``F = F + SA(F) + phi * W_o softmax(Q_x K_y^T / sqrt(d)) V_y`` with ``W_o`` initialised to zero,
  so an untrained hub (or ``phi = 0``) leaves the prior exactly as it is;
* **condition skips** (our addition): zero-initialised 1x1 convs adding the condition features at
  every level, gated by the same ``phi``.

The mode switch flips roles: the caller passes the noisy HQ face and the LQ condition for
restoration, the noisy LQ face and the HQ condition for degradation. See docs/flipnet.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from torch import nn

from ..config import resolve_config, to_dict
from ..errors import ModelError
from .flipnet_config import FLIPNET_FORMAT, FlipnetConfig
from .zoo import checkpoint_config, load_state_dict, save_weights

RESTORE, DEGRADE = 0, 1


def load_config(name_or_path: str | Path) -> FlipnetConfig:
    return resolve_config(FlipnetConfig, "models", name_or_path)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class BoostHubAttention(nn.Module):
    """Self-attention with a BoostHub cross-attention branch in parallel (zero-initialised output)."""

    def __init__(self, channels: int, cond_channels: int, head_dim: int, groups: int):
        super().__init__()
        heads = max(1, channels // head_dim)
        self.norm = nn.GroupNorm(groups, channels)
        self.self_attn = Attention(channels, heads=heads, dim_head=head_dim, bias=True)
        self.cond_norm = nn.GroupNorm(min(groups, cond_channels), cond_channels)
        self.hub = Attention(channels, cross_attention_dim=cond_channels, heads=heads, dim_head=head_dim, bias=True)
        _zero(self.hub.to_out[0])

    def forward(self, x: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        out = self.self_attn(tokens)
        if phi != 0.0:
            cond_tokens = self.cond_norm(cond).flatten(2).transpose(1, 2)
            out = out + phi * self.hub(tokens, encoder_hidden_states=cond_tokens)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class ConditionEncoder(nn.Module):
    """Features of the condition image at every U-Net scale (mode-aware through ``emb``)."""

    def __init__(self, cfg: FlipnetConfig, temb_dim: int):
        super().__init__()
        ch = cfg.cond_channels
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.blocks = nn.ModuleList(
            ResnetBlock2D(in_channels=ch[max(0, i - 1)], out_channels=c, temb_channels=temb_dim, groups=min(cfg.norm_groups, ch[max(0, i - 1)]),
                          groups_out=min(cfg.norm_groups, c))
            for i, c in enumerate(ch))
        self.downs = nn.ModuleList(Downsample2D(c, use_conv=True, out_channels=c, name="op") for c in ch[:-1])

    def forward(self, cond: torch.Tensor, emb: torch.Tensor) -> list[torch.Tensor]:
        h = self.conv_in(cond)
        feats = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                h = self.downs[i - 1](h)
            h = block(h, emb)
            feats.append(h)
        return feats


class Flipnet(nn.Module):
    """``forward(x_t, t, cond, identity, mode, phi)`` predicts x0 of the target stream."""

    def __init__(self, cfg: FlipnetConfig):
        super().__init__()
        if not (len(cfg.block_channels) == len(cfg.attention_levels) == len(cfg.cond_channels)):
            raise ModelError(f"model config {cfg.name}: block_channels, attention_levels and cond_channels must have equal lengths")
        self.config = cfg
        ch, g = cfg.block_channels, cfg.norm_groups
        temb = 4 * ch[0]
        self.time_proj = Timesteps(ch[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.mode_embedding = nn.Embedding(2, temb)
        self.identity_proj = nn.Sequential(nn.Linear(cfg.id_dim, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.cond_encoder = ConditionEncoder(cfg, temb)
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)

        def resnet(cin: int, cout: int) -> ResnetBlock2D:
            return ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=temb, groups=g,
                                 time_embedding_norm="scale_shift")

        def attn(level: int) -> nn.Module | None:
            return BoostHubAttention(ch[level], cfg.cond_channels[level], cfg.head_dim, g) if cfg.attention_levels[level] else None

        # Condition skips: zero-initialised 1x1 convs adding the condition features at the entry of every
        # level, gated by phi like the hubs. In pixel space the hubs sit only at the coarse levels, and
        # these carry the LQ face's fine structure (see docs/flipnet.md).
        self.cond_skips = nn.ModuleList(_zero(nn.Conv2d(cfg.cond_channels[level], ch[max(level - 1, 0)], 1))
                                        for level in range(len(ch)))
        self.down_resnets, self.down_attns, self.downsamplers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        skips, cin = [ch[0]], ch[0]
        for level, cout in enumerate(ch):
            for _ in range(cfg.layers_per_block):
                self.down_resnets.append(resnet(cin, cout))
                self.down_attns.append(attn(level) or nn.Identity())
                cin = cout
                skips.append(cin)
            if level < len(ch) - 1:
                self.downsamplers.append(Downsample2D(cin, use_conv=True, out_channels=cin, name="op"))
                skips.append(cin)
        self.mid_resnet1, self.mid_attn, self.mid_resnet2 = resnet(cin, cin), attn(len(ch) - 1) or nn.Identity(), resnet(cin, cin)
        self.up_resnets, self.up_attns, self.upsamplers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(ch))):
            for _ in range(cfg.layers_per_block + 1):
                self.up_resnets.append(resnet(cin + skips.pop(), ch[level]))
                self.up_attns.append(attn(level) or nn.Identity())
                cin = ch[level]
            if level > 0:
                self.upsamplers.append(Upsample2D(cin, use_conv=True, out_channels=cin))
        self.norm_out = nn.GroupNorm(g, cin)
        self.conv_out = _zero(nn.Conv2d(cin, 3, 3, padding=1))

    @staticmethod
    def _attend(block: nn.Module, h: torch.Tensor, feats: torch.Tensor, phi: float) -> torch.Tensor:
        return block(h, feats, phi) if isinstance(block, BoostHubAttention) else h

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, identity: torch.Tensor | None,
                mode: torch.Tensor | int = RESTORE, phi: float = 1.0) -> torch.Tensor:
        cfg = self.config
        b = x_t.shape[0]
        t = t.reshape(-1).expand(b) if t.numel() == 1 else t
        mode = torch.as_tensor(mode, device=x_t.device).reshape(-1).expand(b)
        emb = self.time_embedding(self.time_proj(t).to(x_t.dtype))
        mode_emb = self.mode_embedding(mode)
        emb = emb + mode_emb
        if identity is not None:
            emb = emb + self.identity_proj(identity.to(x_t.dtype).reshape(-1, cfg.id_dim).expand(b, -1))
        cond_feats = self.cond_encoder(cond, mode_emb)

        h = self.conv_in(x_t)
        skips, r = [h], 0
        for level in range(len(cfg.block_channels)):
            if phi != 0.0:
                h = h + phi * self.cond_skips[level](cond_feats[level])
                if level == 0:
                    skips[0] = h
            for _ in range(cfg.layers_per_block):
                h = self._attend(self.down_attns[r], self.down_resnets[r](h, emb), cond_feats[level], phi)
                skips.append(h)
                r += 1
            if level < len(cfg.block_channels) - 1:
                h = self.downsamplers[level](h)
                skips.append(h)
        h = self.mid_resnet1(h, emb)
        h = self._attend(self.mid_attn, h, cond_feats[-1], phi)
        h = self.mid_resnet2(h, emb)
        r = 0
        for i, level in enumerate(reversed(range(len(cfg.block_channels)))):
            for _ in range(cfg.layers_per_block + 1):
                h = self.up_resnets[r](torch.cat([h, skips.pop()], 1), emb)
                h = self._attend(self.up_attns[r], h, cond_feats[level], phi)
                r += 1
            if level > 0:
                h = self.upsamplers[i](h)
        return self.conv_out(torch.nn.functional.silu(self.norm_out(h)))


def save_flipnet(model: Flipnet, path: str | Path, dtype: torch.dtype = torch.float32, metadata: dict[str, str] | None = None) -> None:
    """Save weights and config in one safetensors file (config as JSON in the header)."""
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(to_dict(model.config)), "format": FLIPNET_FORMAT, **(metadata or {})}
    save_weights(state, path, meta)


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_flipnet(path: str | Path, device: torch.device | str = "cpu") -> Flipnet:
    """Rebuild a FLIPNET from a file written by :func:`save_flipnet`."""
    cfg = checkpoint_config(path, FlipnetConfig, "FLIPNET", FLIPNET_FORMAT)
    model = Flipnet(cfg)
    state = {k: v.float() for k, v in load_state_dict(path).items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not match config {cfg.name}: {str(exc).splitlines()[0]}") from exc
    return model.eval().to(device)
