"""RetinaFace (Deng et al., CVPR 2020) in plain torch, loading facexlib / Pytorch_Retinaface checkpoints.

facexlib itself imports torchvision, which has no CPU build matching the pinned torch; this module
rebuilds the same network (MobileNet-0.25 or ResNet-50 body, FPN, SSH context modules, three heads)
with the checkpoint's parameter names, so the published weights load with ``strict=True``.
"""

from __future__ import annotations

import functools
import math
import typing

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN_BGR = (104.0, 117.0, 123.0)
FACEXLIB_ANCHORS = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCE = (0.1, 0.2)


def _conv_bn(inp: int, out: int, stride: int = 1, leaky: float = 0.0, kernel: int = 3, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(inp, out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(out)]
    if relu:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


def _conv_dw(inp: int, out: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp), nn.LeakyReLU(leaky, inplace=True),
        nn.Conv2d(inp, out, 1, 1, 0, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(leaky, inplace=True),
    )


class MobileNetV1(nn.Module):
    """Width-0.25 MobileNet body; returns the stride-8/16/32 feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(_conv_bn(3, 8, 2, leaky=0.1), _conv_dw(8, 16, 1), _conv_dw(16, 32, 2),
                                    _conv_dw(32, 32, 1), _conv_dw(32, 64, 2), _conv_dw(64, 64, 1))
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class _Bottleneck(nn.Module):
    def __init__(self, inp: int, width: int, stride: int, downsample: bool):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inp, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, width * 4, 1, bias=False), nn.BatchNorm2d(width * 4)
        self.downsample = (nn.Sequential(nn.Conv2d(inp, width * 4, 1, stride, bias=False), nn.BatchNorm2d(width * 4))
                           if downsample else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet50(nn.Module):
    """torchvision-named ResNet-50 body; returns layer2/3/4 features (strides 8/16/32)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        inp, layers = 64, []
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layers.append(nn.Sequential(*[_Bottleneck(inp if i == 0 else width * 4, width, stride if i == 0 else 1, i == 0)
                                          for i in range(blocks)]))
            inp = width * 4
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], out: int):
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.output1, self.output2, self.output3 = (_conv_bn(c, out, leaky=leaky, kernel=1) for c in in_channels)
        self.merge1 = _conv_bn(out, out, leaky=leaky)
        self.merge2 = _conv_bn(out, out, leaky=leaky)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Single-stage headless context module: parallel 3x3, 5x5 and 7x7 receptive fields."""

    def __init__(self, inp: int, out: int):
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.conv3X3 = _conv_bn(inp, out // 2, relu=False)
        self.conv5X5_1 = _conv_bn(inp, out // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn(out // 4, out // 4, relu=False)
        self.conv7X7_2 = _conv_bn(out // 4, out // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn(out // 4, out // 4, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5_1 = self.conv5X5_1(x)
        c7 = self.conv7x7_3(self.conv7X7_2(c5_1))
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(c5_1), c7], dim=1))


class _Head(nn.Module):
    def __init__(self, inp: int, outputs_per_anchor: int, anchors: int = 2):
        super().__init__()
        self.conv1x1 = nn.Conv2d(inp, anchors * outputs_per_anchor, 1)
        self.k = outputs_per_anchor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.k)


class RetinaFace(nn.Module):
    """``forward`` takes BGR-mean-subtracted images (B, 3, H, W); returns (loc, conf, landmarks)."""

    BODIES: typing.ClassVar[dict] = {"mobilenet0.25": (MobileNetV1, (64, 128, 256), 64), "resnet50": (ResNet50, (512, 1024, 2048), 256)}

    def __init__(self, backbone: str = "mobilenet0.25"):
        super().__init__()
        body, in_channels, out = self.BODIES[backbone]
        self.backbone = backbone
        self.body = body()
        self.fpn = FPN(in_channels, out)
        self.ssh1, self.ssh2, self.ssh3 = SSH(out, out), SSH(out, out), SSH(out, out)
        self.ClassHead = nn.ModuleList(_Head(out, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(out, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(out, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.fpn(self.body(x))
        feats = [self.ssh1(feats[0]), self.ssh2(feats[1]), self.ssh3(feats[2])]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
        conf = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1)
        landm = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        return loc, conf.softmax(dim=-1), landm


def prior_boxes(height: int, width: int, device: torch.device,
                anchor_sizes: tuple[tuple[int, ...], ...] = FACEXLIB_ANCHORS) -> torch.Tensor:
    """Anchor centres and sizes (cx, cy, w, h), normalised to the image, in the heads' output order.

    The anchor sizes are not stored in checkpoints: they must match the ones used in training.
    Every frame of a video has the same size, so the grid is built once per size and device.
    """
    return _prior_boxes(height, width, str(device), anchor_sizes)


@functools.lru_cache(maxsize=8)
def _prior_boxes(height: int, width: int, device: str, anchor_sizes: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    levels = []
    for step, sizes in zip(STEPS, anchor_sizes):
        ys, xs = np.meshgrid(np.arange(math.ceil(height / step)), np.arange(math.ceil(width / step)), indexing="ij")
        centres = np.stack([(xs + 0.5) * step / width, (ys + 0.5) * step / height], -1).reshape(-1, 1, 2)
        extents = np.array([[s / width, s / height] for s in sizes])[None]
        levels.append(np.concatenate(np.broadcast_arrays(centres, extents), -1).reshape(-1, 4))
    return torch.tensor(np.concatenate(levels), dtype=torch.float32, device=device)


def decode(loc: torch.Tensor, landm: torch.Tensor, priors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SSD-style box and landmark decoding with variances (0.1, 0.2); outputs are normalised x1y1x2y2 and 5x2."""
    centre = priors[:, :2] + loc[..., :2] * VARIANCE[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[..., 2:] * VARIANCE[1])
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=-1)
    pts = landm.reshape(*landm.shape[:-1], 5, 2)
    points = priors[:, None, :2] + pts * VARIANCE[0] * priors[:, None, 2:]
    return boxes, points


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, cover_threshold: float = 1.0) -> torch.Tensor:
    """Greedy non-maximum suppression; indices of kept boxes, best first. A box goes when its IoU
    with a better one is above ``iou_threshold``, or when their intersection covers more than
    ``cover_threshold`` of the smaller of the two (a second, shifted box of one small face)."""
    order = scores.argsort(descending=True)
    keep = []
    while order.numel():
        i = order[0]
        keep.append(i)
        if order.numel() == 1:
            break
        rest = boxes[order[1:]]
        lt = torch.maximum(boxes[i, :2], rest[:, :2])
        rb = torch.minimum(boxes[i, 2:], rest[:, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=1)
        area = lambda b: (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
        iou = inter / (area(boxes[i]) + area(rest) - inter + 1e-9)
        cover = inter / (torch.minimum(area(boxes[i]), area(rest)) + 1e-9)
        order = order[1:][(iou <= iou_threshold) & (cover <= cover_threshold)]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long, device=boxes.device)


class PlanFreeConv2d(nn.Conv2d):
    """A convolution that does not use cuDNN, for a small network on a thread of its own.

    PyTorch keeps cuDNN's execution plans in a thread-local cache, and pass 1 detects on a worker
    thread started for each video: on an H200 the MobileNet RetinaFace took 56-98 ms a frame over
    a clip's first pass on a new thread, while the plans of all its convolutions were built, and
    3.4 ms on the same thread afterwards; without cuDNN it took 3.6-4.5 ms from the first frame
    (``bench/detector_threads.py``). ``torch.backends.cudnn.flags`` would switch cuDNN off for
    every thread of the process; this does so for these layers alone."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return torch._convolution(x, weight, bias, self.stride, self.padding, self.dilation, False, [0, 0], self.groups,
                                  False, False, False, torch.backends.cudnn.allow_tf32)


def without_cudnn(model: nn.Module) -> nn.Module:
    """``model`` with each of its zero-padded 2-D convolutions made a :class:`PlanFreeConv2d` (in place)."""
    for layer in model.modules():
        if type(layer) is nn.Conv2d and layer.padding_mode == "zeros" and not isinstance(layer.padding, str):
            layer.__class__ = PlanFreeConv2d
    return model


def load_retinaface(path: str, device: torch.device | str = "cpu") -> RetinaFace:
    """Build RetinaFace for the checkpoint at ``path`` (backbone inferred from its keys) and load it."""
    from ..models.zoo import load_state_dict

    state = {k.removeprefix("module."): v for k, v in load_state_dict(path).items()}
    backbone = "resnet50" if any(k.startswith("body.layer1") for k in state) else "mobilenet0.25"
    model = RetinaFace(backbone)
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)
