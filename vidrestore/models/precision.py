"""The precision the networks run at: fp32, or autocast at bf16 or fp16.

One choice (``--dtype``) for the networks that cost the time on a device: FLIPNET and the face
parser. Normalisations and softmax stay in fp32 under autocast; the sampler's arithmetic too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UsageError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """The device ``--device`` names (auto: cuda where there is one, else cpu); a UsageError for one
    that cannot run vidrestore here: another type than cpu and cuda, or a GPU the machine lacks."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch's list of every device type it knows of
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: vidrestore runs on cpu or cuda (cuda:N for one GPU of several), or auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA device is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {name} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def network_dtype(name: str, device: torch.device) -> torch.dtype:
    """What the networks' convolutions and matrix products run in for ``--dtype name`` on
    ``device``. "auto": bf16 on CUDA, and on CPUs that multiply in bf16 (:func:`cpu_has_bf16`),
    where flipnet-small ran 2.3 times as fast as in fp32 with AMX tiles (an Intel Xeon) and 1.4-1.5
    times with AVX-512's bf16 dot products alone (an AMD EPYC; docs/benchmarks.md); fp32 on other
    CPUs, whose bf16 is emulated, and on other devices."""
    if name != "auto":
        return DTYPES[name]
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()):
        return torch.bfloat16
    return torch.float32


# torch's checks of the CPU's bf16 arithmetic: AMX tiles (Intel since Sapphire Rapids), and AVX-512's
# bf16 dot products (Intel since Cooper Lake, AMD since Zen 4), which oneDNN's convolutions use too
_BF16_CHECKS = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies in bf16 (:data:`_BF16_CHECKS`). The checks are private to torch:
    a torch without them runs fp32."""
    return any(bool(check()) for name in _BF16_CHECKS if (check := getattr(torch.cpu, name, None)) is not None)


def cpu_has_fp16() -> bool:
    """Whether this CPU multiplies in fp16: AMX's fp16 tiles (torch's check), or AVX-512's fp16
    arithmetic as Linux lists it. True where neither can be told (no /proc/cpuinfo: an Apple CPU)."""
    check = getattr(torch.cpu, "_is_amx_fp16_supported", None)
    if check is not None and check():
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return True
    return "avx512_fp16" in flags.split()


def emulated_precision_note(dtype: torch.dtype, device: torch.device) -> list[str]:
    """The report's note where the networks run on a CPU at a precision it only emulates: fp16
    without fp16 arithmetic (:func:`cpu_has_fp16`; flipnet-small restored 0.46 face-frames/s in
    fp16 against 3.92 in bf16 and 2.88 in fp32 on an AMD EPYC with AVX-512 BF16, 2 cores:
    docs/benchmarks.md), or bf16 without bf16 arithmetic (:func:`cpu_has_bf16`; a run continued on
    such a CPU keeps the bf16 of its first machine)."""
    if device.type != "cpu" or dtype == torch.float32 or (cpu_has_fp16() if dtype == torch.float16 else cpu_has_bf16()):
        return []
    name, auto = precision_name(dtype), precision_name(network_dtype("auto", device))
    return [(f"the networks ran at {name}, which this CPU has no arithmetic for and emulates, several times slower "
             f"(fp16 on a CPU with bf16 alone: 8.5 times slower than bf16); --dtype auto runs {auto} here")]


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
