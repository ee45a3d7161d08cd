"""Face tracking within shots: Hungarian association, optical-flow following between detections,
gap filling, and RTS landmark smoothing.

Association cost between an open track and a detection is ``(1 - IoU) + w * d`` where ``d`` is the
mean landmark distance divided by the face size; pairs with IoU below the threshold and ``d`` above
0.5 are never matched. When the detector skips frames, each open track is followed from frame to
frame by optical flow (:mod:`.motion`); those estimates are matched against the next detections and
are measurements for the smoother, with their own noise: less than a detection's, since the flow
is steadier from frame to frame and each detection re-anchors it. A face first detected between
two detections' frames is followed back by the flow over the frames since the earlier one, so
that it is tracked from where it came in, not from where the detector first saw it. After a shot ends, each
track's landmarks are smoothed with a constant-velocity Kalman filter and a Rauch-Tung-Striebel
backward pass (Rauch et al., 1965); frames with neither are filled by the smoother's prediction,
so gaps interpolate smoothly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linear_sum_assignment

from .motion import face_motions, in_frame_pixels, move_detection
from .settings import TrackerConfig
from .types import Detection, Track

if TYPE_CHECKING:
    from .detect import FaceDetector


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


@dataclass
class _OpenTrack:
    track_id: int
    shot_index: int
    observations: dict[int, Detection] = field(default_factory=dict)
    followed: dict[int, Detection] = field(default_factory=dict)  # optical-flow estimates between detections

    @property
    def last_frame(self) -> int:
        """The last frame it was detected in."""
        return max(self.observations)

    @property
    def latest_frame(self) -> int:
        return max(self.last_frame, max(self.followed, default=-1))

    @property
    def latest(self) -> Detection:
        """Where it was last seen: detected, or followed since."""
        frame = self.latest_frame
        return self.observations.get(frame) or self.followed[frame]


def rts_smooth(obs: np.ndarray, observed: np.ndarray, q: float, r: float | np.ndarray) -> np.ndarray:
    """Constant-velocity Kalman filter + RTS smoother over time, per column.

    ``obs`` (T, N) holds measurements; rows where ``observed`` is False are predicted only. ``r``:
    the measurement variance, one for all rows or one per row. Returns smoothed positions (T, N).
    """
    T, N = obs.shape
    r = np.broadcast_to(np.asarray(r, float), (T,))
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    Q = q * np.array([[0.25, 0.5], [0.5, 1.0]])
    first = int(np.argmax(observed))
    x = np.zeros((T, N, 2))
    P = np.zeros((T, 2, 2))  # covariance is shared by all columns (same noise model)
    xp, Pp = np.zeros_like(x), np.zeros_like(P)
    state, cov = np.stack([obs[first], np.zeros(N)], -1), np.diag([r[first], 1.0])
    for t in range(T):
        if t > 0:
            state, cov = state @ F.T, F @ cov @ F.T + Q
        xp[t], Pp[t] = state, cov
        if observed[t]:
            gain = cov[:, 0] / (cov[0, 0] + r[t])
            state = state + (obs[t] - state[:, 0])[:, None] * gain[None, :]
            cov = cov - np.outer(gain, cov[0])
        x[t], P[t] = state, cov
    for t in range(T - 2, -1, -1):
        C = P[t] @ F.T @ np.linalg.inv(Pp[t + 1])
        x[t] = x[t] + (x[t + 1] - xp[t + 1]) @ C.T
        P[t] = P[t] + C @ (P[t + 1] - Pp[t + 1]) @ C.T
    return x[..., 0]


class FaceTracker:
    """Feed detections frame by frame with :meth:`update`; call :meth:`end_shot` at every cut and at
    the end. Finished tracks accumulate in :attr:`tracks`."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self.too_small = 0  # tracks left out for a median face smaller than min_face_size, for the report
        self._open: list[_OpenTrack] = []
        self._next_id = 0
        self._shot = 0
        self._frame: tuple[int, np.ndarray] | None = None  # the frame follow() saw last
        # the grey images follow() saw since the last detected frame of this shot, with their scale:
        # where a face first detected now is followed back to
        self._since_detection: dict[int, tuple[np.ndarray, tuple[float, float]]] = {}
        self._shot_seen: set[int] = set()  # the frames of this shot that follow() or update() saw
        self._shot_detected: set[int] = set()  # those that update() saw

    def follow(self, frame_index: int, grey: np.ndarray, scale: tuple[float, float]) -> None:
        """Carry each open track from the previous frame to this one with optical flow. ``grey``:
        the frame as a grey uint8 image downscaled by ``scale`` (sx, sy). Call it for every frame
        of a shot, in order, before :meth:`update` on the frames that were detected."""
        previous, self._frame = self._frame, (frame_index, grey)
        self._shot_seen.add(frame_index)
        self._since_detection[frame_index] = (grey, scale)
        if previous is None or previous[0] != frame_index - 1:
            return
        # A track the flow lost since its last detection waits for the next one.
        going = [t for t in self._open if t.latest_frame == frame_index - 1]
        s4 = np.tile(np.asarray(scale, np.float32), 2)
        for t, motion in zip(going, face_motions(previous[1], grey, [t.latest.box * s4 for t in going])):
            if motion is not None:
                t.followed[frame_index] = move_detection(t.latest, in_frame_pixels(motion, scale))

    def update(self, frame_index: int, detections: list[Detection]) -> None:
        cfg = self.config
        self._shot_seen.add(frame_index)
        self._shot_detected.add(frame_index)
        dets = [d for d in detections if d.score >= cfg.min_score]
        self._close_stale(frame_index)
        matched = self._associate(dets)
        for track_idx, det_idx in matched:
            self._open[track_idx].observations[frame_index] = dets[det_idx]
        taken = {d for _, d in matched}
        for i, det in enumerate(dets):
            if i not in taken:
                track = _OpenTrack(self._next_id, self._shot, {frame_index: det})
                track.followed = self._followed_back(frame_index, det)
                self._open.append(track)
                self._next_id += 1
        self._since_detection = {}

    def _followed_back(self, frame_index: int, detection: Detection) -> dict[int, Detection]:
        """Where the flow, run backwards from ``frame_index``, finds a newly detected face in the
        frames since the previous detection: the face came in somewhere among them, and with the
        detector on every k-th frame it is otherwise restored from up to k - 1 frames after that.
        Stops where the flow loses it (it was not there yet, or was hidden)."""
        followed: dict[int, Detection] = {}
        here = frame_index
        while here in self._since_detection and here - 1 in self._since_detection:
            (grey, scale), (before, _) = self._since_detection[here], self._since_detection[here - 1]
            motion = face_motions(grey, before, [detection.box * np.tile(np.asarray(scale, np.float32), 2)])[0]
            if motion is None:
                break
            here -= 1
            detection = followed[here] = move_detection(detection, in_frame_pixels(motion, scale))
        return followed

    def detected_at(self, frame_index: int) -> list[tuple[int, Detection]]:
        """(track id, detection) of each open track that :meth:`update` saw in ``frame_index``."""
        return [(t.track_id, t.observations[frame_index]) for t in self._open if frame_index in t.observations]

    def seen_at(self, frame_index: int) -> list[tuple[int, Detection]]:
        """(track id, where it is) of each open track that was detected in ``frame_index`` or that the
        flow followed into it."""
        return [(t.track_id, t.latest) for t in self._open if t.latest_frame == frame_index]

    @property
    def open_ids(self) -> set[int]:
        return {t.track_id for t in self._open}

    def _associate(self, dets: list[Detection]) -> list[tuple[int, int]]:
        if not dets or not self._open:
            return []
        cost, valid = self._costs([t.latest for t in self._open], dets)
        rows, cols = linear_sum_assignment(np.where(valid, cost, 1e6))
        return [(r, c) for r, c in zip(rows, cols) if valid[r, c]]

    def _costs(self, prev: list[Detection], dets: list[Detection]) -> tuple[np.ndarray, np.ndarray]:
        """The cost of matching each of ``prev`` (where tracks were) with each of ``dets``, and
        whether the pair may match at all (IoU above the threshold, or landmarks within half a face)."""
        if not prev or not dets:
            return np.zeros((len(prev), len(dets))), np.zeros((len(prev), len(dets)), bool)
        cfg = self.config
        iou = iou_matrix(np.stack([p.box for p in prev]), np.stack([d.box for d in dets]))
        sizes = np.array([max(p.size, 1.0) for p in prev])[:, None]
        lm = np.linalg.norm(np.stack([p.landmarks for p in prev])[:, None] - np.stack([d.landmarks for d in dets])[None], axis=-1)
        dist = lm.mean(-1) / sizes
        return (1 - iou) + cfg.landmark_weight * dist, ~((iou < cfg.iou_threshold) & (dist > 0.5))

    def _close_stale(self, frame_index: int) -> None:
        # at least from one detector run to the next: with fewer, a track found by every run was
        # closed at each (--detect-every 12 restored 19 of keep_real_1's 248 frames)
        patience = max(self.config.max_missed, self.config.detect_every)
        still = []
        for t in self._open:
            if frame_index - t.last_frame <= patience:
                still.append(t)
            else:
                self._finish_one(t, t.last_frame)  # not where the flow took it since: it may have left
        self._open = still

    def missed_at(self, frame_index: int) -> list[tuple[int, Detection]]:
        """(track id, where it was last seen, detected or followed) of each open track that
        :meth:`update` did not find in ``frame_index``: where to look for it again."""
        return [(t.track_id, t.latest) for t in self._open if frame_index not in t.observations]

    def found_again(self, frame_index: int, track_id: int, candidates: list[Detection]) -> Detection | None:
        """Take as track ``track_id``'s detection in ``frame_index`` the one of ``candidates`` (faces
        found looking again where :meth:`missed_at` said it was) that matches it as :meth:`update`
        matches, and that no other track was given there; returns it, or None."""
        track = next(t for t in self._open if t.track_id == track_id)
        taken = [t.observations[frame_index].box for t in self._open if frame_index in t.observations]
        free = [d for d in candidates if d.score >= self.config.min_score and
                not (taken and iou_matrix(d.box[None], np.stack(taken)).max() >= self.config.iou_threshold)]
        cost, valid = self._costs([track.latest], free)
        if not valid[0].any():
            return None
        best = free[int(np.argmin(np.where(valid[0], cost[0], np.inf)))]
        track.observations[frame_index] = best
        return best

    def end_shot(self) -> None:
        """Close every open track (a cut, or the end of the video); no track crosses a cut. A track
        followed by the flow past its last detection keeps those frames: no later detection could
        have seen it in them. In a shot shorter than ``min_track_frames`` (a still image, a clip of
        a few frames, a quick cut), a face found by every detection of the shot is no flash, and
        is kept: such faces were dropped, so a photo came out unrestored."""
        seen = self._shot_seen
        short = bool(seen) and max(seen) - min(seen) + 1 < self.config.min_track_frames
        for t in self._open:
            self._finish_one(t, t.latest_frame, whole_shot=short and self._shot_detected <= t.observations.keys())
        self._open = []
        self._shot += 1
        self._shot_seen, self._shot_detected, self._since_detection = set(), set(), {}

    def _finish_one(self, t: _OpenTrack, last: int, whole_shot: bool = False) -> None:
        if max(t.observations) - min(t.observations) + 1 < self.config.min_track_frames and not whole_shot:
            return  # a flash or a false positive
        track = build_track(t.track_id, t.shot_index, t.observations, self.config, t.followed, last)
        if track.median_face_px < self.config.min_face_size:
            self.too_small += 1
            return
        self.tracks.append(track)


def median_face_size(observations: dict[int, Detection]) -> float:
    return float(np.median([d.size for d in observations.values()]))


def build_track(track_id: int, shot_index: int, observations: dict[int, Detection], cfg: TrackerConfig,
                followed: dict[int, Detection] | None = None, last: int | None = None) -> Track:
    """Turn sparse observations into a dense, smoothed track from its first detection (or the first
    frame the flow followed it back to) to frame ``last`` (default its last detection).
    ``followed``: optical-flow estimates, for frames without a detection."""
    followed = followed or {}
    first = min(observations)
    while first - 1 in followed:  # followed back from its first detection
        first -= 1
    last = max(observations) if last is None else last
    frames = np.arange(first, last + 1)
    seen = {f: d for f, d in followed.items() if first <= f <= last} | observations
    observed = np.array([f in seen for f in frames])
    detected = np.array([f in observations for f in frames])
    lm = np.zeros((len(frames), 10))
    box = np.zeros((len(frames), 4))
    scores = np.zeros(len(frames))
    for f, d in seen.items():
        lm[f - first], box[f - first], scores[f - first] = d.landmarks.ravel(), d.box, d.score
    noise = np.where(detected, cfg.smooth_measure, cfg.follow_measure) ** 2
    scale = median_face_size(observations)
    smooth = rts_smooth(np.concatenate([lm, box], 1) / scale, observed, cfg.smooth_process, noise) * scale
    return Track(track_id, shot_index, frames, smooth[:, 10:], smooth[:, :10].reshape(-1, 5, 2), scores, detected)


CONFIRM_TRIES = 3  # a track's unsure detections given a second look before it is taken for no face


class Confirmations:
    """Which tracks are faces where the detector is unsure of some of its faces (dlib's HOG sees
    faces in badges and name tags): a track is one once one of its detections is sure, or the
    detector's second look finds a face at one of its first :data:`CONFIRM_TRIES` unsure ones. A
    second look costs (dlib's CNN: about 0.2 s), so a track is asked about, not each detection:
    a real face HOG is unsure of in every frame would have cost a second look every few frames."""

    def __init__(self, detector: FaceDetector):
        self.detector = detector
        self._sure: set[int] = set()
        self._tries: Counter[int] = Counter()

    def offer(self, image: np.ndarray, scale: tuple[float, float], detected: list[tuple[int, Detection]]) -> None:
        """A frame's detections (display pixels) by track; ``image``: the frame as the detector saw it, ``scale`` times the display's."""
        for track_id, detection in detected:
            if track_id in self._sure:
                continue
            if not self.detector.unsure_of(detection):
                self._sure.add(track_id)
            elif self._tries[track_id] < CONFIRM_TRIES:
                self._tries[track_id] += 1
                if self.detector.confirms(image, detection.box * np.tile(np.asarray(scale, np.float32), 2)):
                    self._sure.add(track_id)

    def is_face(self, track_id: int) -> bool:
        return track_id in self._sure or not self._tries[track_id]
