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
