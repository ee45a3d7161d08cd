"""Typed records passed between the face stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detection:
    """One face in one frame, in frame pixel coordinates.

    ``landmarks`` is 5x2 in one convention for every backend: the eye on the image's left, the eye
    on the image's right, the nose tip, the mouth corner on the image's left, the one on its right.
    """

    box: np.ndarray  # (4,) x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # (5, 2)

    @property
    def size(self) -> float:
        return float(np.sqrt(max(0.0, (self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))))


@dataclass
class Track:
    """One face followed through one shot. Arrays are indexed by ``frames - frames[0]``."""

    track_id: int
    shot_index: int
    frames: np.ndarray  # (T,) consecutive frame indices
    boxes: np.ndarray  # (T, 4)
    landmarks: np.ndarray  # (T, 5, 2), smoothed
    scores: np.ndarray  # (T,), 0 where the frame was interpolated
    detected: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (T,) True where a detector saw it
    steady: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (T,) False in a flash, dissolve or fade
    person: int | None = None  # the id of the first track of the person it shows (faces.people); None: not linked
    monochrome: bool = False  # in a black-and-white or toned shot (faces.tone): restored faces keep its tone
    detail: float | None = None  # the share of the frame's detail finer than the crop measured for it (faces.detail); None: not measured
    quality: float | None = None  # how far its faces are from clean, estimated in dB of PSNR (faces.quality); None: not estimated

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def end(self) -> int:
        return int(self.frames[-1]) + 1

    def __len__(self) -> int:
        return len(self.frames)

    def covers(self, frame_index: int) -> bool:
        return self.start <= frame_index < self.end

    @property
    def median_face_px(self) -> float:
        """Median box side (square root of its area) over the track: what ``min_face_size`` and the
        report's ``median_face_px`` compare."""
        return float(np.median(np.sqrt(np.clip(self.boxes[:, 2] - self.boxes[:, 0], 0, None)
                                       * np.clip(self.boxes[:, 3] - self.boxes[:, 1], 0, None))))

    def landmarks_at(self, frame_index: int) -> np.ndarray:
        return self.landmarks[frame_index - self.start]
