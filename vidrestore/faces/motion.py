"""Following a face between two detections with sparse optical flow.

When the detector runs on every k-th frame only, the frames between would otherwise get landmarks
interpolated by the smoother, and the crop of a head that turns or speeds up between two
detections lags behind it (bench/keyframes.py measures how steady the crops stay). Here the
face's motion from one frame to the next is measured instead: corners inside the face box are
followed with pyramidal Lucas-Kanade flow (Bouguet's implementation in OpenCV), kept only when
flowing back lands where they started, and fitted to a similarity transform with RANSAC. A
similarity, not per-landmark flow, because the crop the restorer gets is itself a similarity of
the frame, and a blink or a speaking mouth must not drag the eyes or the mouth corners along.
"""

from __future__ import annotations

import cv2
import numpy as np

from .types import Detection

_LK = {"winSize": (15, 15), "maxLevel": 3, "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
MIN_POINTS = 8  # fewer consistent corners than this: the motion is not trusted (blur, occlusion, exit)


def face_motions(prev: np.ndarray, cur: np.ndarray, boxes: list[np.ndarray], max_corners: int = 48,
                 round_trip_px: float = 0.5) -> list[np.ndarray | None]:
    """For each of ``boxes`` (x1, y1, x2, y2), the similarity (2, 3) that moves what is inside it in
    ``prev`` to where it is in ``cur`` (grey uint8 images); None where too few corners follow it
    consistently. The corners of every box go through one pair of flow calls, so the image
    pyramids are built once per frame however many faces there are.

    Each box is shrunk by 15% a side first, so background at its edges, which moves differently,
    is left out. ``round_trip_px``: a corner is kept only if flowing it back lands this close to
    where it started."""
    corners = [_corners(prev, box, max_corners) for box in boxes]
    counts = [len(c) for c in corners]
    if sum(counts) == 0:
        return [None] * len(boxes)
    start = np.concatenate(corners)
    moved, found, _ = cv2.calcOpticalFlowPyrLK(prev, cur, start, None, **_LK)
    back, found_back, _ = cv2.calcOpticalFlowPyrLK(cur, prev, moved, None, **_LK)
    good = (found[:, 0] == 1) & (found_back[:, 0] == 1) & (np.linalg.norm(back - start, axis=1) < round_trip_px)
    ends = np.cumsum(counts)
    return [_similarity(start[a:b][good[a:b]], moved[a:b][good[a:b]]) for a, b in zip(ends - counts, ends)]


def _corners(image: np.ndarray, box: np.ndarray, max_corners: int) -> np.ndarray:
    """Corners (N, 2) float32 inside ``box`` shrunk by 15% a side; none if it is too small or flat."""
    height, width = image.shape
    (x1, y1, x2, y2), inset = box, 0.15 * (box[2:] - box[:2])
    x1, y1 = max(0, int(x1 + inset[0])), max(0, int(y1 + inset[1]))
    x2, y2 = min(width, int(x2 - inset[0])), min(height, int(y2 - inset[1]))
    if x2 - x1 < 8 or y2 - y1 < 8:
        return np.zeros((0, 2), np.float32)
    spacing = max(2.0, min(x2 - x1, y2 - y1) / 12)
    found = cv2.goodFeaturesToTrack(image[y1:y2, x1:x2], max_corners, 0.01, spacing)
    if found is None or len(found) < MIN_POINTS:
        return np.zeros((0, 2), np.float32)
    return (found.reshape(-1, 2) + np.float32([x1, y1])).astype(np.float32)


def _similarity(start: np.ndarray, moved: np.ndarray) -> np.ndarray | None:
    if len(start) < MIN_POINTS:
        return None
    matrix, inliers = cv2.estimateAffinePartial2D(start, moved, method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if matrix is None or int(inliers.sum()) < MIN_POINTS:
        return None
    return matrix


def move_detection(detection: Detection, matrix: np.ndarray) -> Detection:
    """``detection`` carried by the similarity ``matrix``: landmarks mapped, the box's centre mapped
    and its sides scaled. Its score is 0: nothing detected it there."""
    lin, shift = matrix[:, :2], matrix[:, 2]
    landmarks = detection.landmarks @ lin.T + shift
    centre = (detection.box[:2] + detection.box[2:]) / 2 @ lin.T + shift
    half = (detection.box[2:] - detection.box[:2]) / 2 * np.sqrt(abs(np.linalg.det(lin)))
    return Detection(np.concatenate([centre - half, centre + half]).astype(np.float32), 0.0, landmarks.astype(np.float32))


def in_frame_pixels(matrix: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """A transform measured in an image downscaled by ``scale`` (sx, sy), as one on the full frame."""
    s = np.array([scale[0], scale[1]])
    return np.concatenate([matrix[:, :2] * s[None, :] / s[:, None], (matrix[:, 2] / s)[:, None]], 1)
