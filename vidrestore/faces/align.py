"""Alignment of faces to the canonical crop: a similarity transform onto the FFHQ 5-point template.

The template is the one the face-restoration field uses at 512 px (eyes, nose tip, mouth corners),
scaled to the model's face size. Transforms are small numpy matrices, estimated in closed form
(Umeyama, 1991) for a whole batch at once; crops are warped with OpenCV on the CPU and with kornia
on an accelerator.
"""

from __future__ import annotations

import math

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


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    ``src`` (B, N, 2), ``dst`` (N, 2) or (B, N, 2); returns (B, 2, 3) float64. In 2D the least-squares
    rotation and scale (Umeyama's, reflections excluded) have a closed form: with points as complex
    numbers, ``a = sum(conj(s) d) / sum(|s|^2)`` over centred points, so no SVD is needed.
    """
    src = np.asarray(src, np.float64)
    dst = np.broadcast_to(np.asarray(dst, np.float64), src.shape)
    mu_s, mu_d = src.mean(1, keepdims=True), dst.mean(1, keepdims=True)
    (sx, sy), (dx, dy) = np.moveaxis(src - mu_s, -1, 0), np.moveaxis(dst - mu_d, -1, 0)
    norm = np.maximum((sx * sx + sy * sy).sum(1), 1e-12)
    a, b = (sx * dx + sy * dy).sum(1) / norm, (sx * dy - sy * dx).sum(1) / norm
    lin = np.stack([np.stack([a, -b], 1), np.stack([b, a], 1)], 1)
    trans = mu_d[:, 0, :, None] - lin @ mu_s[:, 0, :, None]
    return np.concatenate([lin, trans], 2)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of (B, 2, 3) affine matrices."""
    lin_inv = np.linalg.inv(m[:, :, :2])
    return np.concatenate([lin_inv, -lin_inv @ m[:, :, 2:]], 2)


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (B, N, 2) points through (B, 2, 3) matrices."""
    return points @ m[:, :, :2].transpose(0, 2, 1) + m[:, None, :, 2]


# Integer frames: uint8, or uint16 for sources deeper than 8 bits (10/12-bit masters).
PEAK = {torch.uint8: 255, torch.uint16: 65535}


def to_unit_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 or uint16 to float in [0, 1]; float images pass through."""
    return image.float() / PEAK[image.dtype] if image.dtype in PEAK else image


def source_region(matrices: np.ndarray, corners: np.ndarray, height: int, width: int, margin: int = 2) -> tuple[int, int, int, int]:
    """Frame box ``(x0, y0, x1, y1)`` holding the crop-space ``corners`` (N, 2) of every face mapped
    back into the frame through the inverse of the frame-to-crop ``matrices``, plus ``margin``."""
    pts = apply_affine(invert_affine(matrices), np.broadcast_to(corners, (len(matrices), *corners.shape))).reshape(-1, 2)
    x0 = int(max(0, float(pts[:, 0].min()) - margin))
    y0 = int(max(0, float(pts[:, 1].min()) - margin))
    x1 = int(min(width, float(pts[:, 0].max()) + margin + 1))
    y1 = int(min(height, float(pts[:, 1].max()) + margin + 1))
    return x0, y0, max(x1, x0), max(y1, y0)


def shift_affine(m: np.ndarray, x0: float, y0: float) -> np.ndarray:
    """Frame-to-crop matrices made to take coordinates of the frame region starting at (x0, y0)."""
    return np.concatenate([m[:, :, :2], m[:, :, :2] @ np.array([[x0], [y0]]) + m[:, :, 2:]], 2)


_CV2_BORDERS = {"reflection": cv2.BORDER_REFLECT, "zeros": cv2.BORDER_CONSTANT, "border": cv2.BORDER_REPLICATE}


MIN_SHRINK_BLUR = 0.3  # px: shrinking by less than 1.6 times is warped as it is


def shrinks_by(matrix: np.ndarray) -> float:
    """How many times a warp by the source-to-target ``matrix`` (2, 3) shrinks: source pixels a
    target pixel spans, across (under 1 where it enlarges; 0 for a degenerate matrix)."""
    scale = math.sqrt(abs(float(np.linalg.det(matrix[:, :2]))))
    return 1 / scale if scale > 0 else 0.0


def shrink_blur(matrix: np.ndarray) -> float:
    """The Gaussian (px of the source) a warp by the source-to-target ``matrix`` (2, 3) looks at the
    source through: one that shrinks by f (:func:`shrinks_by`) samples it f px apart, and detail
    finer than that would alias (jagged edges, and texture that crawls from frame to frame as a
    face moves), so it is blurred by (f - 1) / 2 first, as scikit-image's resize does; 0 where f
    is under 1.6."""
    sigma = (shrinks_by(matrix) - 1) / 2
    return sigma if sigma >= MIN_SHRINK_BLUR else 0.0


def warp_affine(images: torch.Tensor, matrices: np.ndarray, size: tuple[int, int], padding: str) -> torch.Tensor:
    """Warp (B, C, H, W) images (uint8/uint16, or float in [0, 1]) by (B, 2, 3) source-to-target matrices
    into float (B, C, size) images; bilinear, pixel centres at half-integers, ``padding`` 'zeros',
    'border' (the edge repeated) or
    'reflection'; a warp that shrinks sees its image blurred first (:func:`shrink_blur`). Batched
    kornia on accelerators; OpenCV on the CPU, where it is several times faster than grid sampling
    and reads integer frames without converting them first."""
    if images.device.type != "cpu":
        m = torch.as_tensor(matrices, dtype=torch.float32).to(images.device)
        images = to_unit_float(images)
        sigmas = [shrink_blur(matrix) for matrix in matrices]
        if any(sigmas):
            images = torch.stack([blurred(image, sigma) for image, sigma in zip(images, sigmas)])
        return kornia.geometry.transform.warp_affine(images, m, dsize=size, mode="bilinear",
                                                      padding_mode=padding, align_corners=False)
    return torch.stack([to_unit_float(torch.from_numpy(warp_image(image.permute(1, 2, 0).numpy(), m, size, padding)).permute(2, 0, 1))
                        for image, m in zip(images, matrices)])


def blurred(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``image`` (C, H, W), float, through a Gaussian of ``sigma`` px (none for 0), the edge
    reflected; OpenCV on the CPU (a third of kornia's time for a 128 px crop), kornia elsewhere."""
    if not sigma:
        return image
    taps = 2 * math.ceil(3 * sigma) + 1
    if image.device.type == "cpu" and image.dtype == torch.float32:
        planes = cv2.GaussianBlur(image.permute(1, 2, 0).contiguous().numpy(), (taps, taps), sigma, borderType=cv2.BORDER_REFLECT_101)
        return torch.from_numpy(planes.reshape(*image.shape[1:], -1)).permute(2, 0, 1)
    return kornia.filters.gaussian_blur2d(image[None], (taps, taps), (sigma, sigma), border_type="reflect")[0]


def warp_image(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], padding: str) -> np.ndarray:
    """OpenCV warp of one (H, W) or (H, W, C) image into (size..., C). A three-channel uint8 image
    warped to a larger size (a crop pasted back) is warped as four channels: OpenCV's vectorised
    path for those is twice as fast (0.42 against 0.83 ms for a 300 px face) and the colour
    channels come out identical; the extra conversion costs more than it saves when shrinking."""
    if image.ndim == 3 and (image.strides[2] != image.itemsize or image.strides[1] != image.shape[2] * image.itemsize):
        image = np.ascontiguousarray(image)  # OpenCV takes row-strided views, not channel-strided ones
    sigma = shrink_blur(matrix)
    if sigma:
        taps = 2 * math.ceil(3 * sigma) + 1  # as blurred's, on accelerators
        image = cv2.GaussianBlur(image, (taps, taps), sigma, borderType=cv2.BORDER_REFLECT_101)
    padded = image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and size[0] * size[1] >= image.shape[0] * image.shape[1]
    source = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA) if padded else image
    warped = cv2.warpAffine(source, matrix, (size[1], size[0]), flags=cv2.INTER_LINEAR,
                            borderMode=_CV2_BORDERS[padding], borderValue=0)
    if padded:
        return cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB)
    return warped[..., None] if warped.ndim == 2 and image.ndim == 3 else warped


def face_matrices(landmarks: np.ndarray, face_size: int, pixel_aspect: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Frame-to-crop matrices (N, 2, 3) for faces with 5 ``landmarks`` (N, 5, 2) each: the
    similarity to the template in square pixels, after stretching the frame by ``pixel_aspect``
    (see :attr:`~vidrestore.io.probe.VideoInfo.pixel_aspect`), so that an anamorphic frame's faces
    come out of proportion neither in the crop nor in the paste (which inverts the same matrix)."""
    stretch = np.asarray(pixel_aspect, np.float64)
    m = estimate_similarity(np.asarray(landmarks, np.float64) * stretch, template(face_size))
    m[:, :, :2] *= stretch  # (similarity) @ diag(stretch)
    return m


def sampled_region(matrices: np.ndarray, face_size: int, height: int, width: int) -> tuple[int, int, int, int]:
    """The box of a (height, width) frame that :func:`crop_faces` samples for the crops of the
    frame-to-crop ``matrices`` (K, 2, 3): the crop squares mapped back, with the reach of the
    warp and of the blur that comes before a shrinking one. A face's paste lies inside it."""
    corners = np.array([[0.0, 0.0], [face_size, 0.0], [0.0, face_size], [face_size, face_size]])
    reach = max(math.ceil(3 * shrink_blur(m)) for m in matrices) if len(matrices) else 0  # the blur sees frame pixels
    return source_region(matrices, corners, height, width, margin=2 + reach)


def crop_faces(frame: torch.Tensor, matrices: np.ndarray, face_size: int) -> torch.Tensor:
    """Warp the faces of one frame to canonical crops through their frame-to-crop ``matrices`` (K, 2, 3).

    ``frame`` (3, H, W), uint8/uint16 or float in [0, 1]. Returns float crops (K, 3, S, S). Only
    the frame region the crops come from is sampled. Faces near the border are completed by
    reflection so the model never sees a black band.
    """
    _, height, width = frame.shape
    x0, y0, x1, y1 = sampled_region(matrices, face_size, height, width)
    if x1 - x0 < 2 or y1 - y0 < 2:
        x0, y0, x1, y1 = 0, 0, width, height  # the faces lie outside the frame: reflect the whole of it
    roi = frame[:, y0:y1, x0:x1].unsqueeze(0).expand(len(matrices), -1, -1, -1)
    return warp_affine(roi, shift_affine(matrices, x0, y0), (face_size, face_size), "reflection")


def align_faces(frame: torch.Tensor, landmarks: np.ndarray | torch.Tensor, face_size: int,
                pixel_aspect: tuple[float, float] = (1.0, 1.0)) -> tuple[torch.Tensor, np.ndarray]:
    """Warp every face of one frame, given its 5 ``landmarks`` (K, 5, 2) in frame pixels, to the
    canonical crop. Returns float crops (K, 3, S, S) and the frame-to-crop matrices (K, 2, 3)."""
    m = face_matrices(np.asarray(landmarks), face_size, pixel_aspect)
    return crop_faces(frame, m, face_size), m
