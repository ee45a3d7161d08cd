import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.faces.motion import face_motions, in_frame_pixels, move_detection
from vidrestore.faces.types import Detection


def _texture(seed: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """Blurred noise: corners everywhere, as on skin, hair and eyes at video resolution."""
    noise = np.random.default_rng(seed).uniform(0, 255, size).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0).clip(0, 255).astype(np.uint8)


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float], centre: tuple[float, float]) -> np.ndarray:
    m = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    m[:, 2] += shift
    return m


BOX = np.array([100.0, 60.0, 220.0, 180.0])


@settings(max_examples=20, deadline=None)
@given(angle=st.floats(-6, 6), scale=st.floats(0.94, 1.06), dx=st.floats(-8, 8), dy=st.floats(-8, 8), seed=st.integers(0, 50))
def test_the_motion_of_a_textured_face_is_recovered(angle, scale, dx, dy, seed):
    prev = _texture(seed)
    truth = _similarity(angle, scale, (dx, dy), (160.0, 120.0))
    cur = cv2.warpAffine(prev, truth, prev.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    [found] = face_motions(prev, cur, [BOX])
    assert found is not None
    corners = np.array([[100.0, 60.0], [220.0, 60.0], [100.0, 180.0], [220.0, 180.0]])
    moved = lambda m: corners @ m[:, :2].T + m[:, 2]
    assert np.abs(moved(found) - moved(truth)).max() < 0.35  # pixels, at the box's corners


def test_nothing_to_follow_gives_no_motion():
    flat = np.full((240, 320), 128, np.uint8)
    assert face_motions(flat, flat, [BOX]) == [None]  # no corners
    assert face_motions(_texture(1), _texture(2), [BOX]) == [None]  # unrelated images: no corner flows back home
    assert face_motions(_texture(1), _texture(1), [np.array([330.0, 250.0, 380.0, 300.0])]) == [None]  # box off the image
    assert face_motions(flat, flat, []) == []


def test_faces_measured_together_move_each_their_own_way():
    """One pair of flow calls for all faces: each face's corners must still give its own motion."""
    left, right = _texture(4), _texture(5)
    prev = np.concatenate([left, right], 1)  # 240 x 640
    moves = [_similarity(3, 1.02, (4, -2), (160.0, 120.0)), _similarity(-2, 0.98, (-5, 3), (480.0, 120.0))]
    cur = np.where(np.arange(640)[None, :] < 320,
                   cv2.warpAffine(prev, moves[0], (640, 240), borderMode=cv2.BORDER_REFLECT),
                   cv2.warpAffine(prev, moves[1], (640, 240), borderMode=cv2.BORDER_REFLECT))
    boxes = [np.array([100.0, 60.0, 220.0, 180.0]), np.array([420.0, 60.0, 540.0, 180.0]), np.zeros(4)]
    found = face_motions(prev, cur, boxes)
    assert found[2] is None  # an empty box among them
    for m, truth, box in zip(found[:2], moves, boxes):
        corners = np.array([box[:2], box[2:]])
        assert np.abs((corners @ m[:, :2].T + m[:, 2]) - (corners @ truth[:, :2].T + truth[:, 2])).max() < 0.35


@settings(max_examples=30, deadline=None)
@given(angle=st.floats(-30, 30), scale=st.floats(0.5, 2.0), dx=st.floats(-20, 20), dy=st.floats(-20, 20),
       sx=st.floats(0.2, 1.0), sy=st.floats(0.2, 1.0))
def test_a_motion_measured_downscaled_maps_full_size_points_the_same_way(angle, scale, dx, dy, sx, sy):
    small = _similarity(angle, scale, (dx, dy), (50.0, 40.0))
    full = in_frame_pixels(small, (sx, sy))
    points = np.random.default_rng(0).uniform(0, 500, (6, 2))
    via_small = ((points * [sx, sy]) @ small[:, :2].T + small[:, 2]) / [sx, sy]
    np.testing.assert_allclose(points @ full[:, :2].T + full[:, 2], via_small, atol=1e-6)


def test_a_moved_detection_keeps_its_shape_and_is_not_a_detection():
    det = Detection(np.array([10, 20, 50, 80], np.float32), 0.9,
                    np.array([[20, 40], [40, 40], [30, 55], [22, 68], [38, 68]], np.float32))
    m = _similarity(90, 2.0, (5, -3), (0.0, 0.0))
    moved = move_detection(det, m)
    np.testing.assert_allclose(moved.landmarks, det.landmarks @ m[:, :2].T + m[:, 2], atol=1e-4)
    centre = (det.box[:2] + det.box[2:]) / 2 @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose((moved.box[:2] + moved.box[2:]) / 2, centre, atol=1e-4)
    np.testing.assert_allclose(moved.box[2:] - moved.box[:2], (det.box[2:] - det.box[:2]) * 2, atol=1e-4)
    assert moved.score == 0.0
