import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.shots import Shot, ShotConfig, ShotDetector


def _scene(rng, base, n, h=72, w=96):
    # Handheld-like motion: a scene of soft shapes (a picture has a layout, unlike white noise)
    # shifting a little each frame, with noise.
    shapes = cv2.GaussianBlur(rng.random((h + 20, w + 20, 3)).astype(np.float32), (0, 0), 8)
    shapes = (shapes - shapes.min()) / (shapes.max() - shapes.min())
    tex = (shapes * 120 - 60 + base).clip(0, 249).astype(np.uint8)
    return [np.roll(tex, (i % 3, i % 4), (0, 1))[:h, :w] + rng.integers(0, 6, (h, w, 3), dtype=np.uint8) for i in range(n)]


def _panorama(rng, base, width: int, h=72, turning: bool = False) -> np.ndarray:
    """A wide picture of soft shapes to pan over (``turning``: its colours go from ``base`` to
    ``base[::-1]`` across it)."""
    shapes = cv2.GaussianBlur(rng.random((h, width, 3)).astype(np.float32), (0, 0), 8)
    shapes = (shapes - shapes.min()) / (shapes.max() - shapes.min())
    ramp = np.linspace(0, 1, width)[None, :, None] if turning else np.zeros((1, 1, 1))
    return (shapes * 120 - 60 + (1 - ramp) * base + ramp * base[::-1]).clip(0, 249).astype(np.uint8)


def _pan(rng, panorama: np.ndarray, speeds: list[int], w=96) -> list[np.ndarray]:
    """Frames of a camera panning over ``panorama`` by ``speeds`` pixels a frame, with noise."""
    h = panorama.shape[0]
    return [panorama[:, x : x + w] + rng.integers(0, 6, (h, w, 3), dtype=np.uint8) for x in np.cumsum([0, *speeds])]


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (a * (1 - t) + b * t).round().astype(np.uint8)


def _detect(frames, config: ShotConfig | None = None) -> tuple[list[int], ShotDetector]:
    det = ShotDetector(config or ShotConfig())
    answers = [a for f in frames for a in det.update(f)] + det.finish()
    assert len(answers) == len(frames)
    return [i for i, cut in enumerate(answers) if cut], det


def test_synthetic_cut_is_found_once_and_motion_is_not_a_cut():
    rng = np.random.default_rng(1)
    frames = _scene(rng, np.array([150, 60, 40]), 30) + _scene(rng, np.array([30, 90, 170]), 30)
    cuts, det = _detect(frames)
    assert cuts == [30]
    assert det.shots(60) == [Shot(0, 30), Shot(30, 60)]


def test_answers_come_lookahead_frames_late_and_cover_every_frame():
    rng = np.random.default_rng(2)
    frames = _scene(rng, np.array([150, 60, 40]), 50) + _scene(rng, np.array([30, 90, 170]), 10)
    det = ShotDetector()
    late = det.config.lookahead
    answered = [len(det.update(f)) for f in frames]
    assert answered == [0] * late + [1] * (len(frames) - late)
    assert det.finish() == [i == 50 for i in range(len(frames) - late, len(frames))]


def test_a_camera_flash_is_not_a_cut_and_its_frames_are_unsteady():
    rng = np.random.default_rng(3)
    frames = _scene(rng, np.array([150, 60, 40]), 60)
    frames[20] = np.clip(frames[20].astype(int) + 150, 0, 255).astype(np.uint8)
    frames[40:42] = [np.full_like(frames[40], 250)] * 2  # a flash over two frames, burning out the picture
    cuts, det = _detect(frames)
    assert cuts == []
    assert det.unsteady() == {20, 40, 41}


def test_a_cut_back_to_a_scene_after_more_frames_than_a_flash_is_two_cuts():
    rng = np.random.default_rng(4)
    a, b = _scene(rng, np.array([150, 60, 40]), 40), _scene(rng, np.array([30, 90, 170]), 8)
    cuts, _ = _detect(a[:20] + b + a[20:])
    assert cuts == [20, 28]


@pytest.mark.parametrize("kind", ["dissolve", "fade through black"])
def test_a_gradual_transition_ends_a_shot_in_its_middle_and_both_shots_say_how_long_it_is(kind):
    rng = np.random.default_rng(5)
    a, b = _scene(rng, np.array([150, 60, 40]), 60), _scene(rng, np.array([30, 90, 170]), 60)
    n = 20 if kind == "dissolve" else 32  # a quicker fade has steps a cut's size near black
    if kind == "dissolve":
        between = [_mix(a[40 + i], b[i], (i + 1) / (n + 1)) for i in range(n)]
    else:
        black = np.zeros_like(a[0])
        between = [_mix(a[40 + i], black, (i + 1) / (n // 2)) for i in range(n // 2)] + \
                  [_mix(black, b[i], (i + 1) / (n // 2)) for i in range(n // 2)]
    frames = a[:40] + between + b[n:]
    cuts, det = _detect(frames)
    assert len(cuts) == 1 and 40 + n // 2 - 4 <= cuts[0] <= 40 + n // 2 + 4
    first, second = det.shots(len(frames))
    assert first.fade_out > 0 and second.fade_in > 0
    assert first.fade_out + second.fade_in <= n + 2
    assert det.unsteady() == set(range(cuts[0] - first.fade_out, cuts[0] + second.fade_in))


def test_a_fade_to_black_held_and_a_fade_in_are_two_boundaries_with_the_black_between():
    rng = np.random.default_rng(7)
    a, b = _scene(rng, np.array([150, 60, 40]), 60), _scene(rng, np.array([30, 90, 170]), 60)
    black = np.zeros_like(a[0])
    frames = a[:40] + [_mix(a[40 + i], black, (i + 1) / 16) for i in range(16)] + [black] * 20 + \
        [_mix(black, b[i], (i + 1) / 16) for i in range(16)] + b[16:]
    cuts, det = _detect(frames)
    assert len(cuts) == 2 and 40 <= cuts[0] < 56 and 76 <= cuts[1] < 92, cuts
    assert all(s.fade_in or s.fade_out for s in det.shots(len(frames)))


@pytest.mark.parametrize("gain", [0.4, 2.0])
def test_a_change_of_light_is_no_transition(gain):
    """A camera's exposure settling, a lamp switched on: the colours change as much as at a
    dissolve, but the picture keeps its layout."""
    rng = np.random.default_rng(8)
    frames = _scene(rng, np.array([100, 80, 60]), 80)
    light = np.concatenate([np.ones(30), np.linspace(1, gain, 16), np.full(34, gain)])
    lit = [np.clip(f * k, 0, 255).astype(np.uint8) for f, k in zip(frames, light)]
    assert _detect(lit)[0] == []


def test_a_cut_into_a_moving_shot_is_a_cut_with_no_fade():
    rng = np.random.default_rng(9)
    a, b = _scene(rng, np.array([150, 60, 40]), 40), _scene(rng, np.array([30, 90, 170]), 40)
    pan = [np.roll(f, 4 * min(i, 8), 1) for i, f in enumerate(b)]  # a whip pan settling after the cut
    cuts, det = _detect(a + pan)
    assert cuts == [40] and det.shots(80) == [Shot(0, 40), Shot(40, 80)]


@pytest.mark.parametrize("speed", [2, 4])
def test_a_dissolve_between_two_pans_is_found(speed):
    """A pan of 2-4% of the width a frame changes a 16x16 layout as much as a dissolve does, so
    neither shot looked steady; the camera's shift is now undone before frames are compared."""
    rng = np.random.default_rng(5)
    a = _pan(rng, _panorama(rng, np.array([150, 60, 40]), 400), [speed] * 59)
    b = _pan(rng, _panorama(rng, np.array([30, 90, 170]), 400), [speed] * 59)
    frames = a[:40] + [_mix(a[40 + i], b[i], (i + 1) / 21) for i in range(20)] + b[20:]
    cuts, det = _detect(frames)
    assert len(cuts) == 1 and 46 <= cuts[0] <= 54 and abs(det.transitions[cuts[0]][0] - 40) <= 4, det.transitions


def _zoom(rng, base, n: int, rate: float, h=72, w=96) -> list[np.ndarray]:
    """Frames of a camera zooming into (``rate`` > 1) or out of a picture by ``rate`` a frame, with noise."""
    picture = _panorama(rng, base, 400, h=300)
    frames = []
    for i in range(n):
        scale = w / (288 / rate**i)  # output pixels per picture pixel
        matrix = np.float32([[scale, 0, w / 2 - 200 * scale], [0, scale, h / 2 - 150 * scale]])
        frames.append(cv2.warpAffine(picture, matrix, (w, h), flags=cv2.INTER_AREA) + rng.integers(0, 6, (h, w, 3), dtype=np.uint8))
    return frames


@pytest.mark.parametrize("rate", [1.02, 1.05])
def test_a_dissolve_between_two_zooms_is_found(rate):
    """A zoom keeps a picture's coarse layout: a zoom in dissolving into a zoom out is one boundary."""
    rng = np.random.default_rng(5)
    a, b = _zoom(rng, np.array([150, 60, 40]), 60, rate), _zoom(rng, np.array([30, 90, 170]), 60, 1 / rate)
    frames = a[:40] + [_mix(a[40 + i], b[i], (i + 1) / 21) for i in range(20)] + b[20:]
    cuts, _ = _detect(frames)
    assert len(cuts) == 1 and 44 <= cuts[0] <= 56, cuts
    assert _detect(a)[0] == _detect(b)[0] == []


@pytest.mark.parametrize("slow, whip, frames", [(1, 8, 10), (2, 40, 30)])
def test_a_whip_pan_to_another_part_of_the_scene_is_no_transition(slow, whip, frames):
    """Steady pans on either side of a whip across a scene whose colours change along it: the
    whip's frames jump more than a quarter frame each, as a dissolve's never do."""
    rng = np.random.default_rng(1)
    frames = _pan(rng, _panorama(rng, np.array([150, 60, 40]), 2400, turning=True), [slow] * 40 + [whip] * frames + [slow] * 40)
    assert _detect(frames)[0] == []


def test_a_transition_longer_than_the_longest_allowed_is_no_cut():
    rng = np.random.default_rng(6)
    a, b = _scene(rng, np.array([150, 60, 40]), 30), _scene(rng, np.array([30, 90, 170]), 30)
    n = 40
    frames = a[:20] + [_mix(a[i % 30], b[i % 30], (i + 1) / (n + 1)) for i in range(n)] + b[:20]
    assert _detect(frames, ShotConfig(max_transition_frames=24))[0] == []
    assert len(_detect(frames, ShotConfig(max_transition_frames=48))[0]) == 1


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(8, 30), min_size=1, max_size=4), st.data())
def test_cuts_are_found_where_scenes_change_and_flashes_never_cut(lengths, data):
    rng = np.random.default_rng(sum(lengths))
    bases = [np.array(c) for c in ([150, 60, 40], [30, 90, 170], [60, 160, 60], [200, 190, 40])]
    frames, cuts = [], []
    for k, n in enumerate(lengths):
        cuts.append(len(frames))
        frames += _scene(rng, bases[k % len(bases)], n)
    flash = data.draw(st.sampled_from(range(len(frames) - 3)))  # in the last 3 frames, a flash is a cut for all we know
    if all(abs(flash - c) > 3 for c in cuts):  # a flash on a cut's frames would hide the cut
        frames[flash] = np.full_like(frames[flash], 255)
    assert _detect(frames)[0] == cuts[1:]


def test_no_cut_in_a_real_clip(shared_data):
    from conftest import shared_file

    from vidrestore.io import VideoReader

    with VideoReader(shared_file(shared_data, "videos/keep_real_1.mp4")) as r:
        assert _detect([f.image for f in r])[0] == []


def _real_frames(shared_data, name: str, count: int) -> list[np.ndarray]:
    from conftest import shared_file

    from vidrestore.io import VideoReader

    with VideoReader(shared_file(shared_data, f"videos/{name}")) as r:
        return [f.image[:360, :360] for f in r if f.index < count]


def test_a_change_of_light_on_a_real_clip_is_no_transition(shared_data):
    frames = _real_frames(shared_data, "keep_real_1.mp4", 120)
    light = np.concatenate([np.ones(50), np.linspace(1, 0.4, 16), np.full(54, 0.4)])
    assert _detect([np.clip(f * k, 0, 255).astype(np.uint8) for f, k in zip(frames, light)])[0] == []


def test_cut_between_two_real_clips(shared_data):
    frames = _real_frames(shared_data, "keep_real_1.mp4", 40) + _real_frames(shared_data, "keep_real_2.mp4", 40)
    assert _detect(frames)[0] == [40]


def test_dissolve_between_two_real_clips_is_one_cut_inside_it(shared_data):
    a, b = _real_frames(shared_data, "keep_real_1.mp4", 60), _real_frames(shared_data, "keep_real_2.mp4", 60)
    frames = a[:40] + [_mix(a[40 + i], b[i], (i + 1) / 17) for i in range(16)] + b[16:]
    cuts, _ = _detect(frames)
    assert len(cuts) == 1 and 40 <= cuts[0] < 56
