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


def _face_on_ground(seed: int, at: tuple[int, int]) -> np.ndarray:
    """A 60 px textured face at ``at`` (x, y) on a still ground of other texture."""
    image = _texture(seed + 100, (240, 480))
    face = cv2.normalize(_texture(seed, (60, 60)), None, 0, 255, cv2.NORM_MINMAX)
    image[at[1]:at[1] + 60, at[0]:at[0] + 60] = face
    return image


@settings(max_examples=20, deadline=None)
@given(dx=st.integers(-84, 84), dy=st.integers(-30, 30), seed=st.integers(0, 50))
def test_a_face_moving_more_than_half_its_width_a_frame_is_followed(dx, dy, seed):
    """The flow's coarsest level shrinks a 60 px face to 8 px, under its window: a face moving
    more than about half its width a frame (a fast pan) was lost, its track cut into pieces too
    short to keep. Up to 1.4 times its width it is now found by its look and followed from there."""
    box = np.array([210.0, 90.0, 270.0, 150.0])
    [found] = face_motions(_face_on_ground(seed, (210, 90)), _face_on_ground(seed, (210 + dx, 90 + dy)), [box])
    assert found is not None
    assert np.abs(found[:, :2] - np.eye(2)).max() < 0.01 and np.abs(found[:, 2] - [dx, dy]).max() < 0.3


def test_a_face_gone_from_where_the_flow_looks_gives_no_motion_even_with_a_face_like_it_beside():
    """Another face near a face the flow lost correlates with it at up to 0.8 (CelebA faces in a
    grid): the track must not jump onto it."""
    box = np.array([210.0, 90.0, 270.0, 150.0])
    prev = _face_on_ground(7, (210, 90))
    assert face_motions(prev, _texture(107, (240, 480)), [box]) == [None]
    face = prev[90:150, 210:270].astype(np.float32)
    other = cv2.normalize(_texture(8, (60, 60)), None, 0, 255, cv2.NORM_MINMAX).astype(np.float32)
    alike = 0.8 * (face - face.mean()) + 0.6 * (other - other.mean()) + face.mean()  # correlates with it at about 0.8
    cur = _texture(107, (240, 480))
    cur[100:160, 290:350] = alike.clip(0, 255).astype(np.uint8)
    assert 0.75 < cv2.matchTemplate(cur, prev[99:141, 219:261], cv2.TM_CCOEFF_NORMED).max() < 0.85
    assert face_motions(prev, cur, [box]) == [None]


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
