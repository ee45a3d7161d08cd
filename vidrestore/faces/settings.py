"""What the face stages are asked to do, apart from the code that does it: the detector's, the
tracker's and the people linker's settings (configs/pipeline.yaml's ``detector``, ``tracker`` and
``people``), and the strength a face's estimated damage asks for (``--strength auto``).

Nothing here imports torch or scipy, so the command line reads a run's options and checks its
output against them at once: a mistyped ``--codec`` or a ``--crf`` out of range waited some 3 s
for torch, kornia and scipy to load before it was told.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check_choice, check_minimums, check_shares

DETECTOR_BACKENDS = ("auto", "retinaface", "dlib")
DLIB_MODELS = ("hog", "cnn")
MIN_DETECTOR_SIDE = 64  # a working size under which no face a detector finds is worth restoring

DAMAGED_DB = 33.0  # a face estimated this far from clean, or further, is restored in full
UNDAMAGED_DB = 37.0  # and one this close, or closer, is left as it is


@dataclass(frozen=True)
class DetectorConfig:
    backend: str = "auto"  # auto | retinaface | dlib
    retinaface_model: str = "retinaface-mobilenet0.25"
    weights: str | None = None  # explicit RetinaFace checkpoint path
    dlib_model: str = "hog"  # hog | cnn
    max_side: int = 1920  # the longest side a detector works at; dlib goes up to it (enlarging a frame up to 3 times) for faces as small as --min-face
    min_score: float = 0.8  # RetinaFace probability; dlib's HOG margin is mapped through a sigmoid
    refine_landmarks: bool = True  # re-fit landmarks with dlib's predictor where the RetinaFace checkpoint's own are poor
    nms_iou: float = 0.4
    nms_cover: float = 0.5  # also drop a box whose overlap covers more than this of the smaller box: two boxes of one face

    def __post_init__(self) -> None:
        # checked as the config is read: "max_side: 0" failed in OpenCV's resize with a traceback,
        # "min_score: 2" or "dlib_model: cnnn" found no face or ran HOG without a word
        check_choice("backend", self.backend, DETECTOR_BACKENDS)
        check_choice("dlib_model", self.dlib_model, DLIB_MODELS)
        check_minimums(self, max_side=MIN_DETECTOR_SIDE)
        check_shares(self, "min_score", "nms_iou", "nms_cover")


@dataclass(frozen=True)
class TrackerConfig:
    detect_every: int = 4  # run the detector on every k-th frame; optical flow follows faces in between
    iou_threshold: float = 0.3
    landmark_weight: float = 0.5
    max_missed: int = 10  # frames a track survives without a detection (at least detect_every: one detector run to the next)
    min_track_frames: int = 5  # shorter tracks are dropped (flashes, false positives)
    min_face_size: float = 32.0  # tracks whose median face size (px) is smaller are left as they are (--min-face)
    min_score: float = 0.0  # detections below this are ignored
    smooth_process: float = 0.05  # Kalman process noise, in face-size units per frame^2
    smooth_measure: float = 0.02  # landmark measurement noise, in face-size units
    follow: bool = True  # between detections (detect_every > 1), follow faces with optical flow instead of interpolating
    follow_measure: float = 0.005  # noise of a followed position, in face-size units

    def __post_init__(self) -> None:
        check_minimums(self, detect_every=1, max_missed=0, min_track_frames=1, min_face_size=0, landmark_weight=0,
                       smooth_process=0, smooth_measure=0, follow_measure=0)
        check_shares(self, "iou_threshold", "min_score")


@dataclass(frozen=True)
class PeopleConfig:
    link: bool = True  # false: every track is a person of its own, with its own noise
    # Between two tracks' mean dlib descriptors, for one person. On 200 CelebA people (tracks of 3
    # photos), 0.4 links 97.6% of one person's pairs and 0.02% of two people's; 0.5 links 99.6%
    # and 1.0% (degraded photos; bench/people.py, docs/benchmarks.md).
    max_distance: float = 0.4
    portraits: int = 3  # a track's best detections whose descriptors stand for it
    portrait_size: int = 128  # px of the aligned crops those are taken from

    def __post_init__(self) -> None:
        check_minimums(self, max_distance=0, portraits=1, portrait_size=32)


def strength_for(quality_db: float) -> float:
    """The restoration strength (0-1) for a face estimated ``quality_db`` from its clean picture."""
    return min(1.0, max(0.0, (UNDAMAGED_DB - quality_db) / (UNDAMAGED_DB - DAMAGED_DB)))
