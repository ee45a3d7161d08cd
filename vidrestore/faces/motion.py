"""Following a face between two detections with sparse optical flow.

When the detector runs on every k-th frame only, the frames between would otherwise get landmarks
interpolated by the smoother, and the crop of a head that turns or speeds up between two
detections lags behind it (bench/keyframes.py measures how steady the crops stay). Here the
face's motion from one frame to the next is measured instead: corners inside the face box are
followed with pyramidal Lucas-Kanade flow (Bouguet's implementation in OpenCV), kept only when
flowing back lands where they started, and fitted to a similarity transform with RANSAC. A
similarity, not per-landmark flow, because the crop the restorer gets is itself a similarity of
the frame, and a blink or a speaking mouth must not drag the eyes or the mouth corners along.
A face that moved further than the flow reaches (about half its width a frame) is looked for by
its look nearby and followed from where it is found.
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
    moved, good = _flowed(prev, cur, start, np.zeros(2, np.float32), round_trip_px)
    ends = np.cumsum(counts)
    motions = [_similarity(start[a:b][good[a:b]], moved[a:b][good[a:b]]) for a, b in zip(ends - counts, ends)]
    return [_searched_motion(prev, cur, box, points, round_trip_px) if motion is None and len(points) else motion
            for motion, box, points in zip(motions, boxes, corners)]


def _flowed(prev: np.ndarray, cur: np.ndarray, start: np.ndarray, shift: np.ndarray,
            round_trip_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Where the corners ``start`` moved to in ``cur``, and which of them flowing back lands within
    ``round_trip_px`` of where they started; ``shift``: a first guess of their motion (x, y), where
    (0, 0) is the flow's own guess (the same results to the bit as giving none)."""
    moved, found, _ = cv2.calcOpticalFlowPyrLK(prev, cur, start, start + shift, flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **_LK)
    back, found_back, _ = cv2.calcOpticalFlowPyrLK(cur, prev, moved, moved - shift, flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **_LK)
    return moved, (found[:, 0] == 1) & (found_back[:, 0] == 1) & (np.linalg.norm(back - start, axis=1) < round_trip_px)


SEARCH_SIDES = 2.5  # how far a face the flow lost is looked for, in box sides each way
# The middle of a face's box a frame later correlates with itself at 0.98-0.99 (a synthetic pan),
# another face's at up to 0.80 (CelebA faces in a grid): a match must be this good, and this much
# better than anywhere else
MIN_MATCH = 0.85
MIN_LEAD = 0.1


def _searched_motion(prev: np.ndarray, cur: np.ndarray, box: np.ndarray, start: np.ndarray,
                     round_trip_px: float) -> np.ndarray | None:
    """The motion of a face the flow lost: its patch in ``prev`` looked for in ``cur`` up to
    :data:`SEARCH_SIDES` box sides away, and the corners flowed from there. The pyramid's coarsest
    level shrinks a face to a few pixels, under the flow's window, so a face moving more than about
    half its width a frame (a fast pan) was lost, its track cut into pieces too short to keep.
    The match must look like the face, and clearly more than anywhere else: the flow from another
    face beside it comes back to where it started all the same, and the track would jump onto it."""
    height, width = prev.shape
    inner = _inner(box, prev.shape)
    if inner is None:
        return None
    x1, y1, x2, y2 = inner
    side = float(max(box[2:] - box[:2]))
    reach = int(SEARCH_SIDES * side)
    sx1, sy1 = max(0, x1 - reach), max(0, y1 - reach)
    sx2, sy2 = min(width, x2 + reach), min(height, y2 + reach)
    if sx2 - sx1 <= x2 - x1 or sy2 - sy1 <= y2 - y1:
        return None
    scores = cv2.matchTemplate(cur[sy1:sy2, sx1:sx2], prev[y1:y2, x1:x2], cv2.TM_CCOEFF_NORMED)
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    half = int(side / 2)
    scores[max(0, by - half):by + half + 1, max(0, bx - half):bx + half + 1] = -1
    if best < MIN_MATCH or best - scores.max() < MIN_LEAD:  # not like the face, or as like another place
        return None
    moved, good = _flowed(prev, cur, start, np.float32([sx1 + bx - x1, sy1 + by - y1]), round_trip_px)
    return _similarity(start[good], moved[good])


def _inner(box: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """``box`` shrunk by 15% a side, so that background at its edges, which moves differently, is
    left out, and cut to an image of ``shape``: (x1, y1, x2, y2); None where under 8 px a side."""
    height, width = shape
    (x1, y1, x2, y2), inset = box, 0.15 * (box[2:] - box[:2])
    x1, y1 = max(0, int(x1 + inset[0])), max(0, int(y1 + inset[1]))
    x2, y2 = min(width, int(x2 - inset[0])), min(height, int(y2 - inset[1]))
    return (x1, y1, x2, y2) if x2 - x1 >= 8 and y2 - y1 >= 8 else None


def _corners(image: np.ndarray, box: np.ndarray, max_corners: int) -> np.ndarray:
    """Corners (N, 2) float32 inside ``box`` shrunk by 15% a side; none if it is too small or flat."""
    inner = _inner(box, image.shape)
    if inner is None:
        return np.zeros((0, 2), np.float32)
    x1, y1, x2, y2 = inner
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
