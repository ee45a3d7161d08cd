"""Alignment of faces to the canonical crop: a similarity transform onto the FFHQ 5-point template.

The template is the one the face-restoration field uses at 512 px (eyes, nose tip, mouth corners),
scaled to the model's face size. Transforms are estimated in closed form (Umeyama, 1991) for a whole
batch at once, and crops are warped with kornia on the working device.
"""

from __future__ import annotations

import cv2
import kornia
import numpy as np
import torch

FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043], [313.08905, 371.15118]],
    dtype=np.float32,
)


def template(face_size: int) -> np.ndarray:
    """The 5-point template (5, 2) for a square crop of ``face_size`` pixels."""
    return FFHQ_TEMPLATE_512 * (face_size / 512.0)


def estimate_similarity(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity transforms (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    ``src`` (B, N, 2), ``dst`` (N, 2) or (B, N, 2); returns (B, 2, 3). Reflections are excluded.
    """
    src = src.double()
    dst = dst.double().expand_as(src)
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.transpose(1, 2) @ s0 / src.shape[1]
    u, sig, vt = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(u @ vt))
    fix = torch.ones_like(sig)
    fix[:, -1] = sign
    rot = u @ torch.diag_embed(fix) @ vt
    var = s0.pow(2).sum((1, 2)) / src.shape[1]
    scale = (sig * fix).sum(1) / var.clamp_min(1e-12)
    lin = scale[:, None, None] * rot
    trans = mu_d.transpose(1, 2) - lin @ mu_s.transpose(1, 2)
    return torch.cat([lin, trans], 2).float()


def invert_affine(m: torch.Tensor) -> torch.Tensor:
    """Inverse of (B, 2, 3) affine matrices."""
    lin_inv = torch.linalg.inv(m[:, :, :2])
    return torch.cat([lin_inv, -lin_inv @ m[:, :, 2:]], 2)


def apply_affine(m: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Map (B, N, 2) points through (B, 2, 3) matrices."""
    return points @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]


# Integer frames: uint8, or uint16 for sources deeper than 8 bits (10/12-bit masters).
PEAK = {torch.uint8: 255, torch.uint16: 65535}


def to_unit_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 or uint16 to float in [0, 1]; float images pass through."""
    return image.float() / PEAK[image.dtype] if image.dtype in PEAK else image


def source_region(matrices: torch.Tensor, corners: torch.Tensor, height: int, width: int, margin: int = 2) -> tuple[int, int, int, int]:
    """Frame box ``(x0, y0, x1, y1)`` holding the crop-space ``corners`` (N, 2) of every face mapped
    back into the frame through the inverse of the frame-to-crop ``matrices``, plus ``margin``."""
    pts = apply_affine(invert_affine(matrices), corners[None].expand(len(matrices), -1, -1)).reshape(-1, 2)
    x0 = int(max(0, float(pts[:, 0].min()) - margin))
    y0 = int(max(0, float(pts[:, 1].min()) - margin))
    x1 = int(min(width, float(pts[:, 0].max()) + margin + 1))
    y1 = int(min(height, float(pts[:, 1].max()) + margin + 1))
    return x0, y0, max(x1, x0), max(y1, y0)


def shift_affine(m: torch.Tensor, x0: float, y0: float) -> torch.Tensor:
    """Frame-to-crop matrices made to take coordinates of the frame region starting at (x0, y0)."""
    offset = torch.tensor([[x0], [y0]], dtype=m.dtype, device=m.device)
    return torch.cat([m[:, :, :2], m[:, :, :2] @ offset + m[:, :, 2:]], 2)


_CV2_BORDERS = {"reflection": cv2.BORDER_REFLECT, "zeros": cv2.BORDER_CONSTANT}


def warp_affine(images: torch.Tensor, matrices: torch.Tensor, size: tuple[int, int], padding: str) -> torch.Tensor:
    """Warp (B, C, H, W) images (uint8/uint16, or float in [0, 1]) by (B, 2, 3) source-to-target matrices
    into float (B, C, size) images; bilinear, pixel centres at half-integers, ``padding`` 'zeros' or
    'reflection'. Batched kornia on accelerators; OpenCV on the CPU, where it is several times
    faster than grid sampling and reads integer frames without converting them first."""
    if images.device.type != "cpu":
        return kornia.geometry.transform.warp_affine(to_unit_float(images), matrices, dsize=size, mode="bilinear",
                                                      padding_mode=padding, align_corners=False)
    out = []
    for image, m in zip(images, matrices):
        hwc = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        warped = cv2.warpAffine(hwc, m.double().numpy(), (size[1], size[0]), flags=cv2.INTER_LINEAR,
                                borderMode=_CV2_BORDERS[padding], borderValue=0)
        warped = warped[..., None] if warped.ndim == 2 else warped
        out.append(to_unit_float(torch.from_numpy(warped).permute(2, 0, 1)))
    return torch.stack(out)


def align_faces(frame: torch.Tensor, landmarks: torch.Tensor, face_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp every face of one frame to the canonical crop.

    ``frame`` (3, H, W), uint8/uint16 or float in [0, 1]; ``landmarks`` (K, 5, 2) in frame pixels.
    Returns float crops (K, 3, S, S) and the frame-to-crop matrices (K, 2, 3). Only the frame region
    the crops come from is converted and sampled. Faces near the border are completed by reflection
    so the model never sees a black band.
    """
    dst = torch.from_numpy(template(face_size)).to(frame.device)
    m = estimate_similarity(landmarks.to(frame.device), dst)
    _, height, width = frame.shape
    corners = torch.tensor([[0.0, 0.0], [face_size, 0.0], [0.0, face_size], [face_size, face_size]], device=frame.device)
    x0, y0, x1, y1 = source_region(m, corners, height, width)
    if x1 - x0 < 2 or y1 - y0 < 2:
        x0, y0, x1, y1 = 0, 0, width, height  # the faces lie outside the frame: reflect the whole of it
    roi = frame[:, y0:y1, x0:x1].unsqueeze(0).expand(len(m), -1, -1, -1)
    return warp_affine(roi, shift_affine(m, x0, y0), (face_size, face_size), "reflection"), m
