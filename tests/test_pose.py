"""Head-turn ratio from 5 landmarks, and the paste weight that fades profiles out."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidrestore.faces.align import FFHQ_TEMPLATE_512
from vidrestore.faces.pose import frontal_weight, turn_ratio

# A head in centimetres (x right, y down, z towards the camera), origin between the eyes: eye
# centres 6.4 apart, the nose tip 3 in front of them, mouth corners 1.5 in front.
HEAD = np.array([[-3.2, 0, 0], [3.2, 0, 0], [0, 4.0, 3.0], [-2.4, 7.0, 1.5], [2.4, 7.0, 1.5]])


def project(yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """Orthographic view of ``HEAD`` turned by ``yaw`` and nodded by ``pitch``, as (5, 2) pixels."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    turn = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    nod = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return (HEAD @ (nod @ turn).T)[:, :2] * 10 + 200


def test_the_template_is_frontal_and_the_ratio_grows_with_yaw():
    assert turn_ratio(FFHQ_TEMPLATE_512) < 0.02
    ratios = [float(turn_ratio(project(a))) for a in range(0, 80, 5)]
    assert ratios[0] == pytest.approx(0, abs=1e-9) and np.all(np.diff(ratios) > 0)
    assert ratios[6] == pytest.approx(np.tan(np.radians(30)) * 3 / 3.2, rel=1e-6)  # tan(yaw) x nose depth / half eye distance
    assert float(turn_ratio(project(-40))) == pytest.approx(float(turn_ratio(project(40))))


def test_frontal_faces_keep_full_strength_and_profiles_fade_to_none():
    fade = (0.7, 1.4)
    weights = {a: float(frontal_weight(project(a, pitch_deg=15), fade)) for a in (0, 20, 30, 45, 55, 70, 85)}
    assert weights[0] == weights[20] == weights[30] == 1.0
    assert 0 < weights[45] < 1 and weights[55] < weights[45]
    assert weights[70] == weights[85] == 0.0
    assert np.all(frontal_weight(np.stack([project(a) for a in (0, 60, 89)]), ()) == 1.0)  # fading off


@given(st.floats(-60, 60), st.floats(-np.pi, np.pi), st.floats(0.1, 20), st.floats(-500, 500), st.floats(-500, 500))
def test_the_ratio_ignores_roll_scale_and_position(yaw, roll, scale, dx, dy):
    points = project(yaw)
    rot = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    moved = points @ rot.T * scale + [dx, dy]
    assert float(turn_ratio(moved)) == pytest.approx(float(turn_ratio(points)), rel=1e-6, abs=1e-9)
