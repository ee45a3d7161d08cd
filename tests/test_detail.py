import itertools

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.faces.align import template
from vidrestore.faces.detail import (
    BLOCKY,
    DETAIL_EVERY,
    HEAVY_BLOCKS,
    MAX_MOVE,
    DetailMeter,
    block_cap,
    block_edges,
    detail_agreement,
)
from vidrestore.faces.types import Detection

FACE = 128


def _scene(seed: int = 0, side: int = 420) -> np.ndarray:
    """Luma with structure at every scale: coarse shading and fine texture (skin, hair)."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.uniform(60, 200, (12, 12)).astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    return coarse + cv2.GaussianBlur(rng.normal(0, 30, (side, side)).astype(np.float32), (0, 0), 0.7)


def _moved(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) px, exactly (a phase ramp: an interpolating warp would blur the
    texture that the measure looks at, as a face moving in front of a camera does not)."""
    fy, fx = np.fft.fftfreq(image.shape[0])[:, None], np.fft.fftfreq(image.shape[1])[None]
    return np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (fx * dx + fy * dy))).real.astype(np.float32)


def _landmarks(scale: float = 2.2, at: tuple[float, float] = (70.0, 60.0)) -> np.ndarray:
    """A face the crop shrinks ``scale`` times."""
    return (template(FACE) * scale + np.float32(at)).astype(np.float32)


def _noisy(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return image + np.random.default_rng(seed).normal(0, sigma, image.shape).astype(np.float32)


@settings(max_examples=10, deadline=None)
@given(dx=st.floats(-0.9 * MAX_MOVE, 0.9 * MAX_MOVE), dy=st.floats(-0.9 * MAX_MOVE, 0.9 * MAX_MOVE), seed=st.integers(0, 50))
def test_detail_that_moves_with_the_face_is_kept_whole_wherever_it_moves(dx, dy, seed):
    scene = _scene(seed)
    agreement = detail_agreement(scene, _moved(scene, dx, dy), _landmarks(), FACE)
    assert agreement is not None and agreement > 0.85
    # further, motion blur would change the detail: not measured
    assert detail_agreement(scene, _moved(scene, 1.5 * MAX_MOVE + abs(dx), dy), _landmarks(), FACE) is None


def test_fresh_noise_in_each_frame_lowers_the_share_as_it_grows():
    """The band's own texture has a deviation of about 8 levels; noise drawn anew in each frame
    is no detail of the face, and its share falls as the noise outgrows the texture."""
    scene = _scene(1)
    shares = [detail_agreement(_noisy(scene, sigma, 1), _noisy(_moved(scene, 0.6, -0.4), sigma, 2), _landmarks(), FACE)
              for sigma in (0.0, 8.0, 16.0, 32.0)]
    assert all(a > b + 0.05 for a, b in itertools.pairwise(shares)), shares
    assert shares[0] > 0.85 and shares[-1] < 0.2


def test_noise_that_is_the_same_in_both_frames_counts_as_detail():
    """What the measure cannot tell apart: a pattern fixed in place that the face does not move
    (here: noise drawn once, the face still) comes back alike and counts as detail."""
    fixed = _noisy(_scene(2), 40.0, 3)
    assert detail_agreement(fixed, fixed.copy(), _landmarks(), FACE) > 0.95


def test_a_face_about_the_crops_size_or_one_that_jumps_is_not_measured():
    scene = _scene(3)
    assert detail_agreement(scene, scene, _landmarks(scale=1.1, at=(150, 150)), FACE) is None  # nothing finer than the crop
    other = _scene(4)  # another picture altogether: no peak to register on
    assert detail_agreement(scene, other, _landmarks(), FACE) is None


def test_the_meter_pairs_each_measured_frame_with_the_next_within_a_shot():
    scene, meter = _scene(5), DetailMeter(FACE)
    face = Detection(np.float32([70, 60, 350, 340]), 1.0, _landmarks())
    assert [i for i in range(3 * DETAIL_EVERY) if meter.wants(i)] == [0, 1, DETAIL_EVERY, DETAIL_EVERY + 1, 2 * DETAIL_EVERY, 2 * DETAIL_EVERY + 1]
    clean = lambda: _moved(scene, 0.3, 0.2)
    meter.offer(0, scene, [(7, face)])
    meter.offer(1, clean(), [(7, face)])  # track 7: one clean pair
    meter.offer(DETAIL_EVERY, _noisy(scene, 40.0, 4), [(7, face), (9, face)])
    meter.offer(DETAIL_EVERY + 1, _noisy(clean(), 40.0, 5), [])  # where the flow lost them: still measured at the first's place
    meter.offer(2 * DETAIL_EVERY, scene, [(9, face)])
    meter.offer(2 * DETAIL_EVERY + 1, _scene(6), [(9, face)], cut=True)  # a cut: no pair
    assert 0.2 < meter.share([7]) < 0.85  # the median of a clean and a noisy pair
    assert 0.0 <= meter.share([9]) < 0.2  # its one pair: the noisy one
    assert meter.share([11]) is None  # never seen
    assert meter.share([9, 7, 11]) == meter.share([7, 9])  # one person's tracks together: all three pairs


def _jpeg(image: np.ndarray, quality: int, offset: int = 0) -> np.ndarray:
    """``image`` through JPEG, its 8-pixel blocks starting ``offset`` pixels in."""
    padded = np.pad(image, ((offset, 0), (offset, 0)), mode="edge").clip(0, 255).astype(np.uint8)
    _, data = cv2.imencode(".jpg", padded, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)[offset:, offset:].astype(np.float32)


def test_compression_blocks_show_as_steps_across_the_8_pixel_grid():
    scene = cv2.GaussianBlur(_scene(7), (0, 0), 1.5)
    box = np.float32([20, 30, 380, 400])
    clean = block_edges(scene, box)
    assert 0.8 < clean < 1.2
    assert block_edges(_jpeg(scene, 60), box) > BLOCKY and block_edges(_jpeg(scene, 30), box) > block_edges(_jpeg(scene, 60), box)
    assert block_edges(_jpeg(scene, 30, offset=4), box) < BLOCKY  # blocks off the frame's grid: not seen
    assert block_edges(scene, np.float32([0, 0, 20, 400])) is None  # too narrow to tell


def test_a_blocky_track_keeps_less_the_stronger_its_blocks_show():
    """A still face whose compression blocks come back alike in the next frame agrees almost
    wholly, but its share is kept to what its blocks allow: less for stronger blocks, and the
    configured share where they are as strong as in heavily compressed video."""
    scene = cv2.GaussianBlur(_scene(8), (0, 0), 1.0)
    face = Detection(np.float32([70, 60, 350, 340]), 1.0, _landmarks())
    shares = {}
    for quality in (95, 60, 30, 15):
        meter = DetailMeter(FACE, blocky_share=0.3)
        meter.offer(0, _jpeg(scene, quality), [(0, face)])
        meter.offer(1, _jpeg(scene, quality), [(0, face)])
        shares[quality] = meter.share([0])
    assert shares[95] > 0.95
    assert shares[95] > shares[60] + 0.1 > shares[30] + 0.2 > 0.3 + 0.2
    assert shares[15] == pytest.approx(0.3)


@given(a=st.floats(0.5, 4.0), b=st.floats(0.5, 4.0), share=st.floats(0.0, 1.0))
def test_the_block_cap_falls_steadily_from_all_to_the_configured_share(a, b, share):
    low, high = sorted((a, b))
    assert share - 1e-9 <= block_cap(high, share) <= block_cap(low, share) <= 1.0
    assert block_cap(high, share) >= block_cap(low, share) - (high - low) / (HEAVY_BLOCKS - BLOCKY)  # no cliff
    assert block_cap(min(low, BLOCKY), share) == 1.0 and block_cap(max(high, HEAVY_BLOCKS), share) == pytest.approx(share)


