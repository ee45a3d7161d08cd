import numpy as np
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


def test_rts_smoother_reduces_jitter_and_fills_gaps():
    rng = np.random.default_rng(0)
    truth = np.linspace(0, 10, 60)[:, None]
    noisy = truth + rng.normal(0, 0.5, truth.shape)
    observed = np.ones(60, bool)
    observed[20:25] = False
    smooth = rts_smooth(noisy, observed, q=0.001, r=0.25)
    assert np.abs(smooth - truth).mean() < 0.5 * np.abs(noisy - truth).mean()
    assert np.abs(smooth[20:25] - truth[20:25]).max() < 0.6
