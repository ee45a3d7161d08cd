"""Face detection backends behind one interface: boxes, scores and 5 landmarks per face.

* ``retinaface``: RetinaFace (facexlib checkpoints), batched, on the working device.
* ``dlib``: dlib's HOG (or CNN/MMOD) detector plus its 68-point shape predictor, from the models
  that the PyPI package ``face_recognition_models`` ships; works offline with no download.
``auto`` picks RetinaFace when its weights are found, else dlib.

A RetinaFace checkpoint whose own landmarks are poor (the zoo gives it a ``dlib_box``) has them
re-fitted by dlib's 68-point shape predictor inside its boxes: its boxes are good, and the
predictor takes about 3 ms a face on a 2-core VM (``refine_landmarks``).
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
from torch.fx.experimental.optimization import fuse

from ..errors import ModelError, UsageError
from ..models import zoo
from .retinaface import FACEXLIB_ANCHORS, MEAN_BGR, decode, load_retinaface, nms, prior_boxes
from .types import Detection


@dataclass(frozen=True)
class DetectorConfig:
    backend: str = "auto"  # auto | retinaface | dlib
    retinaface_model: str = "retinaface-mobilenet0.25"
    weights: str | None = None  # explicit RetinaFace checkpoint path
    dlib_model: str = "hog"  # hog | cnn
    max_side: int = 960  # frames are downscaled so their longer side is at most this, for speed
    min_score: float = 0.8  # RetinaFace probability; dlib's HOG margin is mapped through a sigmoid
    refine_landmarks: bool = True  # re-fit landmarks with dlib's predictor where the RetinaFace checkpoint's own are poor
    nms_iou: float = 0.4


class FaceDetector(Protocol):
    name: str
    input_side: int  # longest image side the detector works at: frames may be decoded at this size

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Faces in each RGB uint8 frame."""
        ...


def _scale_for(image: np.ndarray, max_side: int) -> float:
    return min(1.0, max_side / max(image.shape[:2]))


class RetinaFaceDetector:
    def __init__(self, weights: Path, entry: zoo.ZooEntry, config: DetectorConfig, device: torch.device):
        self.config = config
        self.device = device
        # Batch norms folded into the convolutions and a channels-last layout: the same detections
        # (outputs equal to 1e-4) from a CPU forward pass about twice as fast (oneDNN's depthwise kernels).
        self.model = fuse(load_retinaface(str(weights), device)).to(memory_format=torch.channels_last)
        params = entry.detector or {}
        self.anchors = tuple(tuple(a) for a in params.get("anchors", FACEXLIB_ANCHORS))
        self.input_long_side = int(params.get("input_long_side", 0))
        self.input_side = self.input_long_side or config.max_side
        dlib_box = params.get("dlib_box") if config.refine_landmarks else None
        self.refiner = DlibLandmarks(dlib_box) if dlib_box else None
        refined = ", landmarks by dlib's 68-point predictor" if self.refiner else ""
        self.name = f"retinaface ({entry.name}, {weights.name}{refined})"

    def _scale(self, image: np.ndarray) -> float:
        if self.input_long_side:
            return self.input_long_side / max(image.shape[:2])
        return _scale_for(image, self.config.max_side)

    def _run(self, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores, boxes (pixels) and landmarks (pixels) of every anchor for RGB uint8 images of one size."""
        h, w = batch.shape[1:3]
        x = torch.from_numpy(batch[..., ::-1].copy()).to(self.device).permute(0, 3, 1, 2).float()  # NHWC memory: channels-last
        x = x - torch.tensor(MEAN_BGR, device=self.device).view(1, 3, 1, 1)
        loc, conf, landm = self.model(x)
        boxes, points = decode(loc, landm, prior_boxes(h, w, self.device, self.anchors))
        size = torch.tensor([w, h], device=self.device, dtype=torch.float32)
        return conf[..., 1], boxes * size.repeat(2), points * size

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        if not images:
            return []
        scale = self._scale(images[0])
        h, w = (round(images[0].shape[0] * scale), round(images[0].shape[1] * scale))
        batch = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) if scale != 1 else im for im in images])
        scores, boxes, points = self._run(batch)
        results = []
        for b in range(len(images)):
            keep = scores[b] > self.config.min_score
            bx, sc, pt = boxes[b][keep], scores[b][keep], points[b][keep]
            kept = nms(bx, sc, self.config.nms_iou)
            faces = [(bx[i].cpu().numpy(), float(sc[i]), pt[i].cpu().numpy()) for i in kept]
            if self.refiner:
                faces = [(box, score, self.refiner(batch[b], box)) for box, score, _ in faces]
            results.append([Detection(box / scale, score, points / scale) for box, score, points in faces])
        return results


def five_points(shape: object) -> np.ndarray:
    """dlib's 68 landmarks reduced to the 5-point convention (eye centres, nose tip, mouth corners)."""
    pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])


class DlibLandmarks:
    """dlib's 68-point shape predictor run inside another detector's box. The predictor was trained
    on the boxes of dlib's HOG detector, so the box is first mapped to one: ``dlib_box`` = (dx, dy,
    sw, sh), the centre shift in box widths and the side ratios, measured for each checkpoint."""

    def __init__(self, dlib_box: list[float]):
        self._dlib = _dlib()
        self._predictor = shape_predictor("shape_predictor_68_face_landmarks.dat")
        self.dx, self.dy, self.sw, self.sh = map(float, dlib_box)

    def __call__(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Five landmarks (5, 2) of the face in ``box`` (x1, y1, x2, y2) of the RGB uint8 ``image``."""
        width, height = box[2:] - box[:2]
        cx, cy = (box[:2] + box[2:]) / 2 + np.array([self.dx, self.dy]) * width
        half_w, half_h = self.sw * width / 2, self.sh * height / 2
        rect = self._dlib.rectangle(round(cx - half_w), round(cy - half_h), round(cx + half_w), round(cy + half_h))
        return five_points(self._predictor(image, rect))


def face_recognition_models_dir() -> Path:
    # The package imports pkg_resources at import time; find its files without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ModelError("the dlib backend needs the PyPI package face_recognition_models (pip install face_recognition_models)")
    return Path(spec.origin).parent / "models"


def _dlib():
    try:
        import dlib
    except ImportError as exc:
        raise ModelError("the dlib backend needs dlib (pip install dlib-bin)") from exc
    return dlib


@functools.cache
def shape_predictor(file: str):
    """dlib's shape predictor ``file`` from face_recognition_models, read once per process: the
    68-point one takes about a second to read, which every detector, refiner and identity encoder
    built for a batch item, a QA pass or an in-process run would otherwise pay again. Predicting
    does not change it, so threads may share it."""
    return _dlib().shape_predictor(str(face_recognition_models_dir() / file))


@functools.cache
def _frontal_face_detector():
    """dlib's HOG detector, built once per process (half a second). It loads each image into its
    own scanner, which two threads must not share: calls go through :data:`_HOG_LOCK`."""
    return _dlib().get_frontal_face_detector()


_HOG_LOCK = threading.Lock()


class DlibDetector:
    def __init__(self, config: DetectorConfig):
        dlib = _dlib()
        models = face_recognition_models_dir()
        self.config = config
        if config.dlib_model == "cnn":
            self._cnn = dlib.cnn_face_detection_model_v1(str(models / "mmod_human_face_detector.dat"))
        else:
            self._hog = _frontal_face_detector()
        self._predictor = shape_predictor("shape_predictor_68_face_landmarks.dat")
        self._dlib = dlib
        self.input_side = config.max_side
        self.name = f"dlib ({config.dlib_model}, 68-point landmarks)"

    def _raw(self, image: np.ndarray) -> list[tuple[object, float]]:
        if self.config.dlib_model == "cnn":
            return [(d.rect, float(d.confidence)) for d in self._cnn(image, 0)]
        with _HOG_LOCK:
            rects, scores, _ = self._hog.run(image, 0, -0.5)
        return list(zip(rects, scores))

    def _detect_one(self, image: np.ndarray) -> list[Detection]:
        scale = _scale_for(image, self.config.max_side)
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        found = []
        for rect, margin in self._raw(np.ascontiguousarray(small)):
            score = 1.0 / (1.0 + np.exp(-4.0 * (margin + 0.25)))  # HOG margin -> (0, 1); 0 margin ~ 0.73
            if score < self.config.min_score * 0.85:
                continue
            five = five_points(self._predictor(small, rect))
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32)
            found.append(Detection(box / scale, float(score), five / scale))
        return found

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        return [self._detect_one(im) for im in images]


def create_detector(config: DetectorConfig, device: torch.device) -> FaceDetector:
    """Build the configured backend; ``auto`` prefers RetinaFace when its weights are available."""
    if config.backend not in ("auto", "retinaface", "dlib"):
        raise UsageError(f"unknown detector {config.backend!r}; choose auto, retinaface or dlib")
    if config.backend in ("auto", "retinaface"):
        weights = zoo.locate(config.retinaface_model, config.weights)
        if weights is not None:
            # A checkpoint known by its digest brings its own anchors; an unknown one is taken
            # to be the configured model.
            entry = zoo.identify(weights) or zoo.verify(config.retinaface_model, weights) and zoo.entry(config.retinaface_model)
            return RetinaFaceDetector(weights, entry, config, device)
        if config.backend == "retinaface":
            e = zoo.entry(config.retinaface_model)
            raise ModelError(f"RetinaFace weights not found: pass --detector-weights, set {e.env_var}, "
                             f"or run `vidrestore models pull {e.name}`")
    return DlibDetector(config)
