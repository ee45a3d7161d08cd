import numpy as np

from vidrestore.shots import ShotConfig, ShotDetector


def _scene(rng, base, n, h=72, w=96):
    # Handheld-like motion: a textured scene shifting a little each frame, with noise.
    tex = (rng.random((h + 20, w + 20, 3)) * 60 + base).clip(0, 255).astype(np.uint8)
    return [np.roll(tex, (i % 5, i % 7), (0, 1))[:h, :w] + rng.integers(0, 6, (h, w, 3), dtype=np.uint8) for i in range(n)]


def test_synthetic_cut_is_found_once_and_motion_is_not_a_cut():
    rng = np.random.default_rng(1)
    frames = _scene(rng, np.array([150, 60, 40]), 30) + _scene(rng, np.array([30, 90, 170]), 30)
    det = ShotDetector(ShotConfig())
    cuts = [i for i, f in enumerate(frames) if det.update(f)]
    assert cuts == [30]
    assert [(s.start, s.end) for s in det.shots(60)] == [(0, 30), (30, 60)]


def test_no_cut_in_a_real_clip(shared_data):
    from conftest import shared_file

    from vidrestore.io import VideoReader

    det = ShotDetector()
    with VideoReader(shared_file(shared_data, "videos/keep_real_1.mp4")) as r:
        cuts = [f.index for f in r if det.update(f.image)]
    assert cuts == []


def test_cut_between_two_real_clips(shared_data):
    from conftest import shared_file

    from vidrestore.io import VideoReader

    det = ShotDetector()
    frames = []
    for name in ("keep_real_1.mp4", "keep_real_2.mp4"):
        with VideoReader(shared_file(shared_data, f"videos/{name}")) as r:
            frames += [f.image[:360, :360] for f in r if f.index < 40]
    cuts = [i for i, f in enumerate(frames) if det.update(f)]
    assert cuts == [40]
