"""How far a face is turned away from the camera, from its 5 landmarks, and the paste weight that
follows from it.

A restorer trained on frontal, template-aligned faces has nothing to stand on when a head turns to
profile: the similarity transform cannot bring a profile onto the frontal template, and the
restored crop comes out as a frontal face painted over a side view. Peers paste it anyway. Here the
paste fades back to the original frame as the head turns, the same way it fades at track ends.
"""

from __future__ import annotations

import numpy as np


def turn_ratio(landmarks: np.ndarray) -> np.ndarray:
    """|horizontal offset of the nose tip from the eyes' midpoint| over half the eye distance.

    ``landmarks`` (..., 5, 2) in the detectors' order (eyes, nose, mouth corners); returns (...).
    Measured along the eye axis, so it ignores roll, scale and position, and nodding barely moves
    it. On a head whose nose tip stands about half the eye distance in front of the eyes (a
    typical adult), the ratio is close to tan(yaw): about 0.6 at 30 degrees, 1.0 at 45, 1.7 at 60."""
    eyes = landmarks[..., 1, :] - landmarks[..., 0, :]
    half = np.linalg.norm(eyes, axis=-1) / 2
    axis = eyes / np.maximum(2 * half, 1e-6)[..., None]
    nose = landmarks[..., 2, :] - (landmarks[..., 0, :] + landmarks[..., 1, :]) / 2
    # a profile's eye distance shrinks towards 0, where the ratio must keep growing, not explode
    return np.abs((nose * axis).sum(-1)) / np.maximum(half, 1e-6)


def frontal_weight(landmarks: np.ndarray, fade: tuple[float, ...]) -> np.ndarray:
    """Paste weight per face (...): 1 up to ``fade[0]`` of :func:`turn_ratio`, falling linearly
    to 0 at ``fade[1]``; all 1 when ``fade`` is empty (fading off)."""
    ratio = turn_ratio(landmarks)
    if not fade:
        return np.ones_like(ratio)
    full, zero = fade
    return np.clip((zero - ratio) / (zero - full), 0.0, 1.0)


def portrait_score(sizes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """How well each face (...) shows who it is: its box side ``sizes``, weighed down as the head
    turns, to nothing from a turn ratio of 1 (about 45 degrees)."""
    return sizes * np.clip(1 - turn_ratio(landmarks), 0, 1)
