import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.faces.align import template
from vidrestore.faces.track import FaceTracker, TrackerConfig, rts_smooth
from vidrestore.faces.types import Detection


def _face(x, y, size=80.0, jitter=None):
    lm = template(512) / 512 * size * 1.6 + np.array([x, y]) - size * 0.3
    if jitter is not None:
        lm = lm + jitter
    return Detection(np.array([x, y, x + size, y + size], np.float32), 0.99, lm.astype(np.float32))


@settings(max_examples=25, deadline=None)
@given(n_faces=st.integers(1, 3), frames=st.integers(12, 40), speed=st.floats(0.0, 4.0),
       miss=st.integers(0, 3), seed=st.integers(0, 1000))
def test_moving_faces_keep_their_identity_through_misses(n_faces, frames, speed, miss, seed):
    rng = np.random.default_rng(seed)
    tracker = FaceTracker(TrackerConfig(min_track_frames=5))
    starts = [(50 + 200 * k, 100.0) for k in range(n_faces)]
    gap = set(range(5, 5 + miss))
    for f in range(frames):
        dets = [] if f in gap else [_face(x + speed * f, y + 0.5 * speed * f, jitter=rng.normal(0, 1.0, (5, 2))) for x, y in starts]
        tracker.update(f, dets)
    tracker.end_shot()
    assert len(tracker.tracks) == n_faces
    for t in tracker.tracks:
        assert t.start == 0 and t.end == frames  # gaps were filled
        assert (~t.detected).sum() == miss


def test_no_track_crosses_a_cut():
    tracker = FaceTracker(TrackerConfig(min_track_frames=3))
    for f in range(10):
        if f == 5:
            tracker.end_shot()
        tracker.update(f, [_face(100, 100)])
    tracker.end_shot()
    assert sorted((t.shot_index, t.start, t.end) for t in tracker.tracks) == [(0, 0, 5), (1, 5, 10)]


def test_short_and_tiny_tracks_are_dropped():
    tracker = FaceTracker(TrackerConfig(min_track_frames=5, min_face_size=40))
    for f in range(10):
        dets = [_face(300, 300, size=20)]  # too small
        if f < 3:
            dets.append(_face(50, 50))  # too short
        tracker.update(f, dets)
    tracker.end_shot()
    assert tracker.tracks == []
    assert tracker.too_small == 1  # counted for the report; a flash is not


@pytest.mark.parametrize("shot_frames", [1, 2, 4])
def test_a_face_found_through_a_shot_too_short_for_a_track_is_kept(shot_frames):
    """A still picture, a clip of a few frames or a quick cut cannot hold min_track_frames: a face
    every detection of such a shot found is no flash (it was dropped, and a photo came out as it went in).
    In the same shot, a face that only some of its detections found is still dropped."""
    tracker = FaceTracker(TrackerConfig(min_track_frames=5, detect_every=2))
    for f in range(shot_frames):
        if f % 2 == 0:
            tracker.update(f, [_face(100, 100)] + ([_face(400, 100)] if f == 2 else []))
    tracker.end_shot()
    for f in range(10, 30, 2):  # a longer shot after it, with a face in its first frames only: a flash, as ever
        tracker.update(f, [_face(100, 100)] if f < 13 else [])
    tracker.end_shot()
    assert [(t.start, t.end) for t in tracker.tracks] == [(0, 1 if shot_frames <= 2 else 3)]


def test_rts_smoother_reduces_jitter_and_fills_gaps():
    rng = np.random.default_rng(0)
    truth = np.linspace(0, 10, 60)[:, None]
    noisy = truth + rng.normal(0, 0.5, truth.shape)
    observed = np.ones(60, bool)
    observed[20:25] = False
    smooth = rts_smooth(noisy, observed, q=0.001, r=0.25)
    assert np.abs(smooth - truth).mean() < 0.5 * np.abs(noisy - truth).mean()
    assert np.abs(smooth[20:25] - truth[20:25]).max() < 0.6


def _textured_scene(x: float, y: float, patch: np.ndarray, size=(240, 320)) -> np.ndarray:
    """A grey frame with the textured ``patch`` (a face) at (x, y), sub-pixel, on a flat background."""
    import cv2
    m = np.float32([[1, 0, x], [0, 1, y]])
    frame = np.full(size, 128, np.uint8)
    warped = cv2.warpAffine(patch, m, size[::-1], flags=cv2.INTER_LINEAR, borderValue=0)
    inside = cv2.warpAffine(np.ones_like(patch), m, size[::-1], flags=cv2.INTER_NEAREST, borderValue=0) > 0
    frame[inside] = warped[inside]
    return frame


def _follow_run(follow: bool, path, frames: int, every: int, patch: np.ndarray, end_by_cut: bool = True):
    """Track a face moving along ``path`` (frame -> full-size x, y) with detections every ``every``
    frames; the grey images the flow sees are half size."""
    tracker = FaceTracker(TrackerConfig(detect_every=every, follow=follow, min_track_frames=3))
    for f in range(frames):
        x, y = path(f)
        if follow:
            tracker.follow(f, _textured_scene(x / 2, y / 2, patch), (0.5, 0.5))
        if f % every == 0:
            tracker.update(f, [_face(x, y, size=160.0)])
    if end_by_cut:
        tracker.end_shot()
    return tracker


def _patch(seed=3):
    import cv2
    noise = np.random.default_rng(seed).uniform(0, 255, (80, 80)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 1.5).clip(0, 255).astype(np.uint8)


@settings(max_examples=8, deadline=None)
@given(amplitude=st.floats(15, 35), period=st.floats(10, 16), seed=st.integers(0, 20))
def test_optical_flow_follows_a_face_between_detections_better_than_interpolation(amplitude, period, seed):
    patch = _patch(seed)
    path = lambda f: (100 + amplitude * np.sin(f / period * 2 * np.pi), 80 + 0.3 * f)
    truth = np.stack([_face(*path(f), size=160.0).landmarks for f in range(33)])
    errors = {}
    for follow in (True, False):
        tracks = _follow_run(follow, path, 33, 4, patch).tracks
        errors[follow] = max(np.abs(t.landmarks - truth[t.frames]).max() for t in tracks)
        assert len(tracks) == 1 or not follow
    assert errors[True] < 3.0  # pixels, full size
    assert errors[True] < errors[False] / 2


@settings(max_examples=8, deadline=None)
@given(enter=st.integers(1, 7), speed=st.floats(-3.0, 3.0), seed=st.integers(0, 20))
def test_a_face_that_comes_in_between_detections_is_tracked_from_where_it_came_in(enter, speed, seed):
    """Detections every 8 frames; a face comes in at frame ``enter`` and is first detected at 8.
    The flow follows it back to the frame it came in, on its path, and no further: before
    that, the scene is flat."""
    patch, every, frames = _patch(seed), 8, 20
    path = lambda f: (120 + speed * f, 90 - 0.5 * speed * f)
    tracker = FaceTracker(TrackerConfig(detect_every=every, min_track_frames=3))
    for f in range(frames):
        x, y = path(f)
        tracker.follow(f, _textured_scene(x / 2, y / 2, patch) if f >= enter else np.full((240, 320), 128, np.uint8), (0.5, 0.5))
        if f % every == 0:
            tracker.update(f, [_face(x, y, size=160.0)] if f >= enter else [])
    tracker.end_shot()
    (track,) = tracker.tracks
    assert (track.start, track.end) == (enter, frames)
    assert not track.detected[: every - enter].any() and track.detected[every - enter]
    truth = np.stack([_face(*path(f), size=160.0).landmarks for f in range(enter, every)])
    assert np.abs(track.landmarks[: every - enter] - truth).max() < 3.0  # pixels, full size


def test_a_face_coming_in_beside_a_tracked_one_leaves_that_track_as_it_was():
    """Following a newly detected face back leaves a face tracked since the shot began where it
    was (to RANSAC's draws, which the other face's flow shares: 0.01 px)."""
    patch_a, patch_b, every, frames, enter = _patch(1), _patch(2), 8, 20, 3
    path_a, path_b = (lambda f: (60 + 1.5 * f, 100.0)), (lambda f: (380 - 2.0 * f, 150.0))

    def run(with_b: bool):
        tracker = FaceTracker(TrackerConfig(detect_every=every, min_track_frames=3))
        for f in range(frames):
            scene = _textured_scene(path_a(f)[0] / 2, path_a(f)[1] / 2, patch_a)
            b_here = with_b and f >= enter
            if b_here:
                with_face_b = _textured_scene(path_b(f)[0] / 2, path_b(f)[1] / 2, patch_b)
                scene = np.where(with_face_b != 128, with_face_b, scene)
            tracker.follow(f, scene, (0.5, 0.5))
            if f % every == 0:
                tracker.update(f, [_face(*path_a(f), size=160.0)] + ([_face(*path_b(f), size=160.0)] if b_here else []))
        tracker.end_shot()
        return sorted(tracker.tracks, key=lambda t: t.start)

    alone, (a, b) = run(False), run(True)
    assert (a.start, a.end, b.start, b.end) == (0, frames, enter, frames)
    assert np.abs(a.landmarks - alone[0].landmarks).max() < 0.01


def test_a_track_followed_to_the_end_of_its_shot_covers_it():
    patch = _patch()
    path = lambda f: (100 + 2.0 * f, 80.0)
    followed = _follow_run(True, path, 15, 4, patch).tracks[0]
    assert (followed.start, followed.end) == (0, 15)  # detections at 0..12, the flow carries it to 14
    assert followed.detected.sum() == 4 and followed.scores[13:].tolist() == [0.0, 0.0]
    interpolated = _follow_run(False, path, 15, 4, patch).tracks[0]
    assert interpolated.end == 13


def test_a_track_that_stops_being_detected_ends_at_its_last_detection():
    patch = _patch()
    tracker = FaceTracker(TrackerConfig(detect_every=4, max_missed=6, min_track_frames=3))
    for f in range(24):
        tracker.follow(f, _textured_scene(50 + f, 40, patch), (0.5, 0.5))  # the flow keeps finding it...
        if f % 4 == 0:
            tracker.update(f, [_face(100 + 2 * f, 80, size=160.0)] if f <= 8 else [])  # ...the detector loses it after 8
    tracker.end_shot()
    [track] = tracker.tracks
    assert track.end == 9


def test_a_track_the_detector_missed_takes_the_face_found_looking_again_where_it_was():
    """update() misses two tracked faces; looking again finds each near where it was, and a third
    face near one of them: each track takes its own, none takes a face far from it or one that
    another track was given in that frame, and each stays one track through the frame."""
    tracker = FaceTracker(TrackerConfig(detect_every=4, min_track_frames=3))
    a, b, c = (100.0, 80.0), (400.0, 80.0), (250.0, 300.0)
    for f in (0, 4):
        tracker.update(f, [_face(*a), _face(*b), _face(*c)])
    tracker.update(8, [_face(c[0] + 2, c[1])])  # the detector misses a and b
    missed = dict(tracker.missed_at(8))
    assert sorted(missed) == [0, 1] and np.allclose(missed[0].box[:2], a)
    assert tracker.found_again(8, 1, [_face(a[0] + 3, a[1])]) is None  # a's face, far from b
    assert tracker.found_again(8, 0, [_face(c[0] + 2, c[1])]) is None  # c's, which c's track has
    assert tracker.found_again(8, 0, [_face(a[0] + 140, a[1]), _face(a[0] + 3, a[1] - 2)]).box[0] == a[0] + 3
    assert tracker.found_again(8, 1, [_face(b[0] - 1, b[1] + 1)]) is not None
    assert tracker.missed_at(8) == []
    for f in (12, 16):
        tracker.update(f, [_face(*a), _face(*b), _face(*c)])
    tracker.end_shot()
    assert sorted((t.start, t.end, int(t.detected.sum())) for t in tracker.tracks) == [(0, 17, 5)] * 3


@pytest.mark.parametrize("follow", [True, False])
@pytest.mark.parametrize("every", [12, 30])
def test_a_face_found_by_every_detector_run_is_one_track_however_far_apart_they_are(every, follow):
    """--detect-every 12 (above max_missed) closed every track at each detector run: of
    keep_real_1's 248 frames, only its last 19 were restored."""
    patch = _patch()
    path = lambda f: (100 + 0.5 * f, 80.0)
    tracker = FaceTracker(TrackerConfig(detect_every=every, follow=follow, min_track_frames=3))
    for f in range(3 * every + 1):
        if follow:
            tracker.follow(f, _textured_scene(path(f)[0] / 2, path(f)[1] / 2, patch), (0.5, 0.5))
        if f % every == 0:
            tracker.update(f, [_face(*path(f), size=160.0)])
    tracker.end_shot()
    assert [(t.start, t.end, int(t.detected.sum())) for t in tracker.tracks] == [(0, 3 * every + 1, 4)]


def test_where_each_open_track_is_seen_detected_or_followed():
    patch = _patch(4)
    path = lambda f: (100 + 2.0 * f, 80.0)
    tracker = FaceTracker(TrackerConfig(detect_every=4, min_track_frames=3))
    for f in range(7):
        tracker.follow(f, _textured_scene(path(f)[0] / 2, path(f)[1] / 2, patch), (0.5, 0.5))
        if f % 4 == 0:
            tracker.update(f, [_face(*path(f), size=160.0)])
        ((track_id, seen),) = tracker.seen_at(f)
        assert track_id == 0 and (seen.score > 0) == (f % 4 == 0)  # a detection, or where the flow took it
        assert np.abs(seen.landmarks - _face(*path(f), size=160.0).landmarks).max() < 3.0
        assert tracker.seen_at(f - 1) == []
    tracker.end_shot()
    assert tracker.seen_at(6) == []
