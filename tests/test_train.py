import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from vidrestore.train.data import pack_faces
from vidrestore.train.trainer import Trainer, load_train_config


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for i in range(12):
        xs = np.mgrid[0:40, 0:40][1]
        img = (127 + 100 * np.sin(xs / (3 + i % 4)) [..., None] * np.array([1, 0.6, 0.3]) + rng.normal(0, 5, (40, 40, 3)))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path_factory.mktemp("pack") / "faces.npz"
    stats = pack_faces([folder], out, 32, aligned=True, with_identity=False)
    assert (stats.seen, stats.packed, stats.unreadable) == (13, 12, 1)
    return out


def _trainer(pack, out_dir, **kw):
    cfg = dataclasses.replace(load_train_config("tiny"), hq_pack=str(pack), out_dir=str(out_dir), validate_every=1000,
                              checkpoint_every=1000, num_threads=2, **kw)
    return Trainer(cfg, torch.device("cpu"))


def test_twenty_steps_lower_the_loss_on_a_fixed_batch(pack, tmp_path):
    tr = _trainer(pack, tmp_path / "r", lr=2e-3)
    batch = tr.make_batch()
    before = float(tr.loss(batch))
    for _ in range(20):
        loss = tr.loss(batch)
        loss.backward()
        tr.opt.step()
        tr.opt.zero_grad()
    assert float(tr.loss(batch)) < 0.7 * before


def test_resume_reproduces_the_next_loss(pack, tmp_path):
    straight = _trainer(pack, tmp_path / "a")
    for _ in range(4):
        straight.train_step()
    expected = float(straight.loss(straight.make_batch()))

    first = _trainer(pack, tmp_path / "b")
    for _ in range(2):
        first.train_step()
    first.save_checkpoint()
    second = _trainer(pack, tmp_path / "b")
    assert second.resume() and second.step == 2
    for _ in range(2):
        second.train_step()
    assert float(second.loss(second.make_batch())) == pytest.approx(expected, rel=1e-5)


def test_export_writes_fp16_ema_weights_that_load(pack, tmp_path):
    from vidrestore.cli import main
    from vidrestore.models.flipnet import load_flipnet, read_metadata

    tr = _trainer(pack, tmp_path / "run")
    tr.train_step()
    tr.save_checkpoint()
    out = tmp_path / "shipped.safetensors"
    assert main(["train", "export", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert read_metadata(out)["step"] == "1"
    model = load_flipnet(out)
    for a, b in zip(model.parameters(), tr.ema.parameters()):
        assert torch.allclose(a, b, atol=1e-2, rtol=1e-2)
