import numpy as np
import pytest
import torch
from conftest import shared_file

from vidrestore.errors import ModelError
from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.faces.retinaface import RetinaFace, load_retinaface
from vidrestore.io import VideoReader


def _first_frame(path):
    with VideoReader(path) as r:
        return next(iter(r)).image


def test_dlib_finds_the_sample_face_with_sane_landmarks(sample_clip):
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    faces = det.detect([_first_frame(sample_clip)])[0]
    assert len(faces) == 1
    lm, box = faces[0].landmarks, faces[0].box
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # left/right convention
    assert lm[0, 1] < lm[2, 1] < lm[3, 1]  # eyes above nose above mouth
    assert (lm >= box[:2] - 5).all() and (lm <= box[2:] + 5).all()


def test_dlib_detectors_share_their_models_and_threads_may_use_them_at_once(sample_clip):
    from concurrent.futures import ThreadPoolExecutor

    from vidrestore.faces.identity import DlibIdentityEncoder

    first, second = (create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")) for _ in range(2))
    assert first._predictor is second._predictor and first._hog is second._hog  # read once per process
    frame = _first_frame(sample_clip)
    alone = first.detect([frame])[0]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda det: det.detect([frame])[0], [first, second] * 4))
    for found in together:
        assert len(found) == len(alone) == 1
        assert np.array_equal(found[0].box, alone[0].box) and np.array_equal(found[0].landmarks, alone[0].landmarks)
    assert DlibIdentityEncoder()._shape is DlibIdentityEncoder()._shape


def test_retinaface_on_shared_weights(shared_data):
    weights = shared_file(shared_data, "weights/retinaface_mobilenet0.25_Final.pth")
    det = create_detector(DetectorConfig(backend="retinaface", weights=str(weights)), torch.device("cpu"))
    assert "retinaface" in det.name
    frame = _first_frame(shared_file(shared_data, "videos/keep_real_1.mp4"))
    faces = det.detect([frame, frame])
    assert [len(f) for f in faces] == [1, 1]  # batched
    dlib_box = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")).detect([frame])[0][0].box
    centre = lambda b: (b[:2] + b[2:]) / 2
    assert np.linalg.norm(centre(faces[0][0].box) - centre(dlib_box)) < 40


def test_the_1mb_checkpoints_landmarks_are_refitted_by_dlibs_predictor(shared_data):
    """Its own landmarks are ~20 px off on this close-up; inside its boxes, dlib's predictor lands
    where dlib's own detector puts them."""
    weights = str(shared_file(shared_data, "weights/retinaface_mobilenet0.25_Final.pth"))
    with VideoReader(shared_file(shared_data, "videos/keep_real_1.mp4")) as r:
        frames = [f.image for f in r if f.index in (0, 100, 200)]
    dlib_faces = [f[0] for f in create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")).detect(frames)]
    off = {}
    for refine in (True, False):
        det = create_detector(DetectorConfig(backend="retinaface", weights=weights, refine_landmarks=refine), torch.device("cpu"))
        assert ("dlib's 68-point predictor" in det.name) == refine
        found = [f[0] for f in det.detect(frames)]
        off[refine] = max(np.linalg.norm(a.landmarks - b.landmarks, axis=1).mean() / b.size for a, b in zip(found, dlib_faces))
    assert off[True] < 0.04 < off[False]


def test_retinaface_resnet50_builds_and_loads_a_facexlib_style_checkpoint(tmp_path):
    model = RetinaFace("resnet50")
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # DataParallel-style prefix
    torch.save(state, tmp_path / "r50.pth")
    loaded = load_retinaface(str(tmp_path / "r50.pth"))
    assert hasattr(loaded.body, "layer4")
    loc, conf, landm = loaded(torch.zeros(1, 3, 64, 64))
    assert loc.shape[1] == conf.shape[1] == landm.shape[1]


def test_retinaface_backend_without_weights_says_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDRESTORE_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match="models pull"):
        create_detector(DetectorConfig(backend="retinaface"), torch.device("cpu"))


@pytest.mark.parametrize("height, width", [(320, 242), (97, 130), (8, 8)])
def test_anchor_grid_is_every_cell_of_every_level_in_the_heads_order(height, width):
    import math
    from itertools import product

    from vidrestore.faces.retinaface import FACEXLIB_ANCHORS, STEPS, prior_boxes

    expected = [((j + 0.5) * step / width, (i + 0.5) * step / height, s / width, s / height)
                for step, sizes in zip(STEPS, FACEXLIB_ANCHORS)
                for i, j in product(range(math.ceil(height / step)), range(math.ceil(width / step))) for s in sizes]
    got = prior_boxes(height, width, torch.device("cpu"))
    assert torch.allclose(got, torch.tensor(expected), atol=1e-7)
    assert prior_boxes(height, width, torch.device("cpu")) is got  # built once per frame size
