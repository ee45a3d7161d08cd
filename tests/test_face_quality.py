import dataclasses
import json
import re

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from vidrestore.errors import ConfigError, ModelError
from vidrestore.faces.align import align_faces
from vidrestore.faces.quality import QUALITY_MODEL, QualityMeter, damage_db
from vidrestore.faces.settings import DAMAGED_DB, UNDAMAGED_DB, strength_for
from vidrestore.faces.types import Detection
from vidrestore.models import zoo
from vidrestore.models.face_quality import (
    CEILING_DB,
    FLOOR_DB,
    FaceQualityConfig,
    FaceQualityNet,
    load_face_quality,
    save_face_quality,
)
from vidrestore.train.data import pack_faces
from vidrestore.train.quality import QualityTrainConfig, train_quality, validate, validation_faces

# scikit-image's astronaut (the bundled sample's face): its five landmarks, found once by dlib's detector
ASTRONAUT = np.array([[203.2, 101.5], [246.8, 104.0], [225.0, 127.0], [201.0, 140.0], [245.0, 141.0]], np.float32)
TINY = FaceQualityConfig(image_size=32, widths=(4, 8))


def astronaut_crop(size: int = 128) -> np.ndarray:
    import skimage.data

    crops, _ = align_faces(torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1), ASTRONAUT[None], size)
    return (crops[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def damaged(face: np.ndarray, blur: float, noise: float, quality: int) -> np.ndarray:
    x = cv2.GaussianBlur(face.astype(np.float32), (0, 0), blur) if blur else face.astype(np.float32)
    x = np.clip(x + np.random.default_rng(0).normal(0, noise, x.shape), 0, 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)


def as_batch(*faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float() / 255


def test_a_saved_estimator_loads_with_its_config_and_estimates_the_same(tmp_path):
    torch.manual_seed(0)
    net = FaceQualityNet(TINY)
    torch.nn.init.normal_(net.head.weight, std=2.0)  # an untrained head answers 30 dB for everything
    faces = torch.rand(3, 3, 48, 48)  # another size than the net's: resized first
    path = tmp_path / "q.safetensors"
    save_face_quality(net, path, {"steps": "7"})
    loaded = load_face_quality(path)
    assert loaded.config == TINY
    with torch.inference_mode():
        estimates = loaded(faces)
        assert torch.equal(estimates, net.eval()(faces))
    assert estimates.shape == (3,) and ((estimates >= FLOOR_DB) & (estimates <= CEILING_DB)).all()
    assert len(set(estimates.tolist())) == 3


def test_a_file_that_is_not_an_estimator_is_refused_naming_it(tmp_path, tiny_model):
    with pytest.raises(ModelError, match="tiny.safetensors is not a vidrestore face quality checkpoint"):
        load_face_quality(tiny_model)
    with pytest.raises(ModelError, match="face quality weights not found: .*missing.safetensors"):
        load_face_quality(tmp_path / "missing.safetensors")


@given(st.floats(0.0, 60.0), st.floats(0.0, 60.0))
def test_strength_is_full_for_damaged_faces_none_for_clean_ones_and_falls_between(a, b):
    low, high = sorted((a, b))
    assert strength_for(low) >= strength_for(high)
    assert 0.0 <= strength_for(low) <= 1.0
    assert strength_for(min(low, DAMAGED_DB)) == 1.0 and strength_for(max(high, UNDAMAGED_DB)) == 0.0
    if DAMAGED_DB < low < high < UNDAMAGED_DB:
        assert strength_for(low) > strength_for(high)


def test_the_shipped_estimator_rates_a_face_lower_the_more_it_is_damaged():
    net = load_face_quality(zoo.verify(QUALITY_MODEL))
    face = astronaut_crop()
    levels = [face, damaged(face, 0.0, 0.0, 90), damaged(face, 1.0, 3.0, 60), damaged(face, 2.0, 6.0, 40), damaged(face, 3.5, 10.0, 25)]
    with torch.inference_mode():
        estimates = net(as_batch(*levels)).tolist()
    assert estimates == sorted(estimates, reverse=True), estimates
    assert strength_for(estimates[0]) < 0.5 and strength_for(estimates[-1]) == 1.0, estimates


def test_the_meter_crops_each_face_as_pass_2_will_and_gives_a_persons_median():
    net = load_face_quality(zoo.verify(QUALITY_MODEL))
    face = astronaut_crop()
    blurred = cv2.GaussianBlur(face, (0, 0), 2.0)
    # each crop drawn into a frame twice its size, so the meter's crop of it is the crop again
    to_frame = np.float32([[2, 0, 40], [0, 2, 30]])
    landmarks = align_faces(torch.zeros(3, 8, 8), ASTRONAUT[None], 128)[1][0]
    where = np.c_[ASTRONAUT, np.ones(5)] @ landmarks.T @ to_frame[:, :2].T + to_frame[:, 2]
    meter = QualityMeter(net)
    assert meter.wants(0) and not meter.wants(1)
    detection = Detection(np.array([40, 30, 296, 286], np.float32), 1.0, where.astype(np.float32))
    estimates = []
    for image in (face, blurred, blurred):
        frame = cv2.warpAffine(image, to_frame, (340, 320), flags=cv2.INTER_CUBIC)
        meter.offer(frame, [(4, detection)])
        with torch.inference_mode():
            estimates.append(float(net(as_batch(image))[0]))
    meter.offer(np.zeros((320, 340, 3), np.uint8), [])  # a frame without faces: nothing to estimate
    assert meter.quality([4]) == pytest.approx(float(np.median(estimates)), abs=1.0)
    assert meter.quality([4, 5]) == meter.quality([4]) and meter.quality([5]) is None


def test_a_crop_another_aligner_padded_is_judged_by_its_face():
    """An aligned clip's crops may hold the aligner's flat padding (black, grey) where the picture
    ended, with a straight, sharp edge: the net read a blurred face so padded as clean (KEEP's
    synthetic clip 2: 40 dB, left alone). Crops cut elsewhere (--aligned) count the face's own
    estimate where it is lower; clean faces stay clean, and pass 1's own crops are judged whole."""
    net = load_face_quality(zoo.verify(QUALITY_MODEL))
    face = astronaut_crop()
    turned = cv2.getRotationMatrix2D((64, 64), 6, 0.85)  # the picture turned and shrunk inside the crop
    inside = cv2.warpAffine(np.ones((128, 128), np.uint8), turned, (128, 128), flags=cv2.INTER_NEAREST)[..., None] > 0
    blurred = damaged(face, 2.0, 2.0, 70)
    padded = [np.where(inside, cv2.warpAffine(image, turned, (128, 128)), grey).astype(np.uint8)
              for image in (blurred, face) for grey in (0, 128)]
    crops = as_batch(blurred, face, *padded)
    with torch.inference_mode():
        whole = net(crops)
    judged = damage_db(net, crops, cut_elsewhere=True)
    assert torch.equal(damage_db(net, crops), whole) and (judged <= whole).all()
    assert (whole[2:4] > UNDAMAGED_DB - 1).all(), whole  # the padding's edge passes for a sharp face
    assert [strength_for(float(v)) for v in judged[[0, 2, 3]]] == [1.0] * 3, judged  # restored in full, as unpadded
    assert all(strength_for(float(v)) == 0.0 for v in judged[[1, 4, 5]]), judged  # the clean face, padded or not, left alone


def test_an_aligned_clip_padded_by_its_aligner_is_restored_in_full(shared_data, tmp_path):
    from conftest import shared_file

    from vidrestore.cli import main

    clip = shared_file(shared_data, "videos/keep_synthetic_2.mp4")
    report = tmp_path / "r.json"
    assert main([str(clip), "--aligned", "--dry-run", "--json", str(report), "--quiet"]) == 0
    track = json.loads(report.read_text())["tracks"][0]
    assert track["quality_db"] < DAMAGED_DB and track["strength"] == 1.0, track


def test_training_lowers_the_estimators_error_and_saves_a_file_that_loads(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    face = astronaut_crop(64)
    for i in range(10):  # the face, moved about and recoloured
        shifted = np.roll(face, (i - 5, 2 * i - 9), (0, 1)) * np.array([1.0, 0.9 + i / 50, 1.1 - i / 50])
        Image.fromarray(shifted.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    pack = tmp_path / "faces.npz"
    pack_faces([folder], pack, 32, aligned=True, with_identity=False)
    cfg = QualityTrainConfig(hq_pack=str(pack), out=str(tmp_path / "q.safetensors"), model=TINY, steps=40, batch_size=8,
                             lr=0.01, warmup_steps=2, val_count=3, validate_every=40)
    torch.manual_seed(0)
    untrained = validate(FaceQualityNet(TINY), *validation_faces(cfg))
    logged = []
    scores = train_quality(cfg, on_log=logged.append)
    assert [row["step"] for row in logged] == [40]
    assert scores["val_mae_db"] < 0.8 * untrained["val_mae_db"]
    loaded = load_face_quality(cfg.out)
    assert validate(loaded, *validation_faces(cfg)) == pytest.approx(scores)
    # a pack that val_count holds out whole, and settings that cannot work, are named before any step
    with pytest.raises(ConfigError, match=f"{pack} holds 10 faces, and val_count holds 10 out: none is left to train on"):
        train_quality(dataclasses.replace(cfg, val_count=10))
    for setting, message in [({"lr": 0.0}, "lr: expected more than 0, got 0.0"), ({"val_count": 0}, "val_count: expected 1 or more"),
                             ({"mix": [("light", 0.8), ("default", 0.5)]}, "mix: expected shares from 0 to 1 that add up to 1 or less")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            dataclasses.replace(cfg, **setting)



@pytest.mark.parametrize("scale, told", [(1.0, False), (3.0, True)])
def test_a_face_left_alone_says_how_much_larger_than_the_crop_it_is_where_it_is(scale, told):
    """A visibly blurred face three times the crop can look clean at the crop's size: the note
    left for it says so, and says nothing of the kind for a face the crop's own size."""
    from vidrestore.faces.align import template
    from vidrestore.faces.types import Track
    from vidrestore.pipeline import PipelineConfig
    from vidrestore.pipeline.analysis import Analysis
    from vidrestore.pipeline.report import strength_note

    landmarks = np.repeat((template(128) * scale + 50)[None], 4, 0)
    track = Track(0, 0, np.arange(4), np.tile([0.0, 0, 128 * scale, 128 * scale], (4, 1)), landmarks, np.ones(4), person=0, quality=40.0)
    (note,) = strength_note(Analysis(4, [], [track], "", judged_at=128), PipelineConfig(face_size=64))
    assert "person 0: 40.0 dB from clean, strength 0.00" in note and "--strength 1" in note
    assert ("faces 3.0 times the crop" in note and "judged at a 128 px crop" in note) == told
    assert ("times the crop" in note or "px crop" in note) == told
