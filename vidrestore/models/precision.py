"""The precision the networks run at: fp32, or autocast at bf16 or fp16.

One choice (``--dtype``) for the networks that cost the time on a device: FLIPNET and the face
parser. Normalisations and softmax stay in fp32 under autocast; the sampler's arithmetic too.
"""

from __future__ import annotations

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def network_dtype(name: str, device: torch.device) -> torch.dtype:
    """What the networks' convolutions and matrix products run in for ``--dtype name`` on
    ``device``. "auto": bf16 on CUDA, and on CPUs with AMX tiles (bf16 matrix units), where
    flipnet-small ran 2.3 times and ParseNet 1.8 times as fast as in fp32 (docs/benchmarks.md);
    fp32 on other CPUs, whose bf16 is emulated, and on other devices."""
    if name != "auto":
        return DTYPES[name]
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16_tiles()):
        return torch.bfloat16
    return torch.float32


def cpu_has_bf16_tiles() -> bool:
    # torch's CPU capability checks are private: a torch without this one runs fp32
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check is not None and check())


def precision_suffix(dtype: torch.dtype) -> str:
    """", bf16" or ", fp16" for a model's name in the report; nothing for fp32."""
    return "" if dtype == torch.float32 else f", {precision_name(dtype)}"


def precision_name(dtype: torch.dtype) -> str:
    """"fp32", "bf16" or "fp16", as ``--dtype`` names it."""
    return next(name for name, known in DTYPES.items() if known == dtype)


def autocast(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    """Mixed precision at ``dtype`` on ``device`` (off for fp32): the ops autocast lists run in it,
    normalisations and softmax stay in fp32."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
