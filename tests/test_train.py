import dataclasses
import itertools
import re

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image

from vidrestore.errors import ConfigError
from vidrestore.models import precision
from vidrestore.train.data import PackedFaces, pack_faces, write_pack
from vidrestore.train.trainer import TrainConfig, Trainer, load_train_config, lr_factor, training_precision


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
    heard = []
    stats = pack_faces([folder], out, 32, aligned=True, with_identity=False, progress=lambda *a: heard.append(a))
    assert (stats.seen, stats.packed, stats.unreadable) == (13, 12, 1)
    assert heard[0] == ("pack", 0, 13, 0) and heard[-1] == ("pack", 13, 13, 12)
    return out


def _trainer(pack, out_dir, **kw):
    settings = {"validate_every": 1000, "checkpoint_every": 1000, "num_threads": 2, **kw}
    cfg = dataclasses.replace(load_train_config("tiny"), hq_pack=str(pack), out_dir=str(out_dir), **settings)
    return Trainer(cfg, torch.device("cpu"))


def test_twenty_steps_lower_the_loss_on_a_fixed_batch(pack, tmp_path):
    tr = _trainer(pack, tmp_path / "r", lr=2e-3)
    batch = tr.make_batch()
    before = float(tr.loss(batch).detach())
    for _ in range(20):
        loss = tr.loss(batch)
        loss.backward()
        tr.opt.step()
        tr.opt.zero_grad()
    assert float(tr.loss(batch).detach()) < 0.7 * before


@pytest.mark.parametrize("name, bf16_cpu, expected", [("auto", True, torch.bfloat16), ("auto", False, torch.float32),
                                                      ("no", True, torch.float32), ("bf16", False, torch.bfloat16),
                                                      ("fp16", True, torch.float16)])
def test_mixed_precision_auto_is_bf16_where_the_cpu_multiplies_in_it(monkeypatch, name, bf16_cpu, expected):
    """Training took bf16 only when asked; auto now follows --dtype auto (a step took 2.64 s
    against 4.34 in fp32 on a CPU with AVX-512 BF16, with the same loss after 30 steps)."""
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: bf16_cpu)
    assert training_precision(name, torch.device("cpu")) == expected
    assert training_precision(name, torch.device("cuda")) == (torch.float32 if name == "no" else torch.float16 if name == "fp16"
                                                              else torch.bfloat16)


@pytest.mark.parametrize("setting, message", [
    ({"mixed_precision": "bf61"}, "mixed_precision: expected one of auto, no, fp32, fp16, bf16, got 'bf61'"),  # fp32 without a word
    ({"log_every": 0}, "log_every: expected 1 or more, got 0"),  # a ZeroDivisionError at the first step
    ({"lr": -1.0}, "lr: expected more than 0, got -1.0"),  # torch's ValueError
    ({"ema_decay": 2.0}, "ema_decay: expected a value from 0 to 1, got 2.0"),  # the EMA diverged
    ({"batch_size": 0}, "batch_size: expected 1 or more, got 0"),
])
def test_a_training_setting_that_cannot_work_is_refused_as_the_config_is_made(pack, tmp_path, setting, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        _trainer(pack, tmp_path / "r", **setting)


@pytest.mark.parametrize("world", ["", "two", "-1"])
def test_a_world_size_that_is_no_number_is_named_and_an_empty_one_is_one_process(pack, tmp_path, monkeypatch, world):
    """A launcher's WORLD_SIZE that is no number was a ValueError traceback as the trainer started."""
    monkeypatch.setenv("WORLD_SIZE", world)
    if not world:
        assert _trainer(pack, tmp_path / "r").world == 1
        return
    with pytest.raises(ConfigError, match=f"^WORLD_SIZE='{world}' is no number of processes"):
        _trainer(pack, tmp_path / "r")


def test_a_pack_too_small_to_hold_faces_out_trains_without_validation_and_the_clis_limits_are_checked(pack, tmp_path, capsys):
    """A pack of 4 faces held none out and the run failed at its end with a traceback ("need at
    least one array to stack"); `--steps 0` was taken for the config's steps, `--time-limit -1`
    stopped after one step, and an out_dir that cannot be made was a traceback."""
    from vidrestore.cli import main

    small = tmp_path / "small.npz"
    data = PackedFaces(pack)
    write_pack(small, data.faces_at(torch.arange(4)).numpy(), data.identity[:4].numpy())
    tr = _trainer(small, tmp_path / "r", steps=2, validate_every=1)
    assert len(tr.val_idx) == 0 and tr.validate() == {}
    assert [row["step"] for row in tr.run()] == [1, 2]
    base = ["train", "run", "--config", "tiny", "--set", f"hq_pack={small}", "--set", f"out_dir={tmp_path / 'cli'}"]
    for argv, code, said in [(["--steps", "0"], 2, "error: --steps: expected 1 or more, got 0"),  # was "steps: ...", exit 6
                             (["--time-limit", "-1"], 2, "--time-limit -1.0: expected more than 0 minutes"),
                             (["--set", "lr=-1"], 6, "override: lr: expected more than 0"),
                             (["--set", "out_dir=/proc/vidrestore-run"], 4, "cannot make the run's folder /proc/vidrestore-run (out_dir; ")]:
        assert main([*base, *argv]) == code
        err = capsys.readouterr().err
        assert err.startswith("vidrestore: error: ") and said in err and err.count("\n") == 1, err


def test_resume_reproduces_the_next_loss(pack, tmp_path):
    straight = _trainer(pack, tmp_path / "a")
    for _ in range(4):
        straight.train_step()
    expected = float(straight.loss(straight.make_batch()).detach())

    first = _trainer(pack, tmp_path / "b")
    for _ in range(2):
        first.train_step()
    first.save_checkpoint()
    second = _trainer(pack, tmp_path / "b")
    assert second.resume() and second.step == 2
    for _ in range(2):
        second.train_step()
    assert float(second.loss(second.make_batch()).detach()) == pytest.approx(expected, rel=1e-5)


@given(warmup=st.integers(1, 50), start=st.integers(0, 300), length=st.integers(1, 300), floor=st.floats(0, 1))
def test_lr_warms_up_holds_then_decays_to_its_floor(warmup, start, length, floor):
    assume(start == 0 or start >= warmup)
    cfg = TrainConfig(warmup_steps=warmup, decay_from_step=start, decay_steps=length, decay_to=floor)
    factors = [lr_factor(cfg, s) for s in range(700)]
    assert factors[0] == pytest.approx(1 / warmup) and factors[warmup - 1] == 1.0
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(factors[:warmup]))
    after = factors[max(warmup - 1, start):]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(after))  # never rises again after warm-up
    assert all(floor - 1e-12 <= f <= 1 for f in after)
    if start:
        assert factors[start + length] == pytest.approx(floor) and factors[-1] == pytest.approx(floor)
    else:
        assert factors[-1] == 1.0


def test_a_decay_added_to_the_config_of_a_resumed_run_takes_effect(pack, tmp_path):
    first = _trainer(pack, tmp_path / "r", lr=1e-3, warmup_steps=1)
    for _ in range(2):
        first.train_step()
    first.save_checkpoint()
    decayed = _trainer(pack, tmp_path / "r", lr=1e-3, warmup_steps=1, decay_from_step=3, decay_steps=4, decay_to=0.1)
    assert decayed.resume()
    for _ in range(3):
        decayed.train_step()
    assert decayed.opt.param_groups[0]["lr"] == pytest.approx(1e-3 * lr_factor(decayed.cfg, 5)) == pytest.approx(1e-3 * 0.55)


def test_fine_tuning_starts_from_released_weights_then_resumes_from_its_own(pack, tmp_path):
    from vidrestore.errors import ConfigError
    from vidrestore.models.flipnet import Flipnet, load_config, save_flipnet

    released = tmp_path / "released.safetensors"
    source = _trainer(pack, tmp_path / "source")
    source.train_step()
    save_flipnet(source.ema, released, torch.float16)
    tuned = _trainer(pack, tmp_path / "tuned", init_weights=str(released))
    assert not tuned.resume() and tuned.step == 0
    for mine, theirs in zip([*tuned.model.parameters(), *tuned.ema.parameters()], [*source.ema.parameters()] * 2):
        assert torch.allclose(mine, theirs.half().float())
    tuned.train_step()
    tuned.save_checkpoint()
    again = _trainer(pack, tmp_path / "tuned", init_weights=str(released))
    assert again.resume() and again.step == 1  # its own checkpoint wins over the released weights
    assert torch.equal(next(again.model.parameters()), next(tuned.model.parameters()))

    other = tmp_path / "other.safetensors"
    save_flipnet(Flipnet(dataclasses.replace(load_config("tiny"), name="wider", block_channels=[16, 32, 32])), other)
    with pytest.raises(ConfigError, match="'wider' model; this run trains 'tiny'"):
        _trainer(pack, tmp_path / "wrong", init_weights=str(other)).resume()


def test_export_writes_fp16_ema_weights_that_load(pack, tmp_path, capsys):
    """It replaced any file under --out without a word, the run's own EMA weights too."""
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
    ema = tmp_path / "run" / "checkpoint" / "ema.safetensors"
    kept = ema.read_bytes()
    capsys.readouterr()
    for argv, said in [(["--out", str(out)], f"output exists: {out} (use --overwrite to replace it)"),
                       (["--out", str(ema), "--overwrite"], f"--out {ema} names the run's weights; give it a name of its own")]:
        assert main(["train", "export", str(tmp_path / "run"), *argv]) != 0
        assert capsys.readouterr().err.strip() == f"vidrestore: error: {said}"
    assert ema.read_bytes() == kept
    assert main(["train", "export", str(tmp_path / "run"), "--out", str(out), "--overwrite"]) == 0


def test_pack_never_replaces_a_pack_it_merges_nor_one_not_asked_to(pack, tmp_path, capsys):
    """Merging into one of the packs given replaced it; an earlier pack was replaced without a word,
    and a run that found no face removed the pack already under its --out."""
    from vidrestore.cli import main

    mine = tmp_path / "mine.npz"
    mine.write_bytes(pack.read_bytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, code, said in [([str(mine), "--out", str(mine), "--overwrite"], 2, f"--out {mine} names the pack {mine} given; give it a name of its own"),
                             ([str(pack), "--out", str(mine)], 4, f"output exists: {mine} (use --overwrite to replace it)"),
                             ([str(empty), "--out", str(mine), "--overwrite"], 3, f"no face to pack: found no pictures in {empty}")]:
        assert main(["train", "pack", *argv, "--face-size", str(PackedFaces(pack).size), "--quiet"]) == code
        assert capsys.readouterr().err.strip() == f"vidrestore: error: {said}"
    assert mine.read_bytes() == pack.read_bytes()
    size = str(PackedFaces(pack).size)
    assert main(["train", "pack", str(mine), str(pack), "--out", str(tmp_path / "both.npz"), "--face-size", size, "--quiet"]) == 0
    assert len(PackedFaces(tmp_path / "both.npz")) == 2 * len(PackedFaces(pack))


def test_learned_degradation_pairs_and_validation_sheets(pack, tmp_path):
    tr = _trainer(pack, tmp_path / "run", learned_degradation_fraction=1.0, degradation_fraction=0.0, steps=2,
                  validate_every=2, log_every=1)
    synthetic = _trainer(pack, tmp_path / "plain", degradation_fraction=0.0)
    batch, plain = tr.make_batch(), synthetic.make_batch()
    assert torch.equal(batch["hq"], plain["hq"])
    assert not torch.allclose(batch["lq"], plain["lq"])  # the LQ faces come from the degradation mode
    rows = tr.run()
    assert rows[-1]["step"] == 2 and "val_psnr_restored" in rows[-1]
    sheet = Image.open(tmp_path / "run" / "val" / "step0000002.png")
    assert sheet.size == (32 * 2, 32 * 4)  # 2 validation faces (a fifth of 12); HQ, LQ, restored, learned LQ


DDP_SCRIPT = """
import hashlib, sys, torch, dataclasses
from vidrestore.train.trainer import Trainer, load_train_config
cfg = dataclasses.replace(load_train_config("tiny"), hq_pack=sys.argv[1], out_dir=sys.argv[2], steps=4,
                          validate_every=1000, checkpoint_every=1000, log_every=1, num_threads=1)
tr = Trainer(cfg, torch.device("cpu"))
first = tr.make_batch()["hq"].sum().item()
tr.run(time_limit=0 if tr.rank == 0 else 3600)  # rank 0's time is up after its first step...
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in tr.model.parameters())).hexdigest()
open(f"{sys.argv[2]}/rank{tr.rank}.txt", "w").write(f"{digest} {tr.world} {first} {tr.step}")
"""


def test_ddp_with_torchrun_keeps_the_ranks_in_step(pack, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "ddp"
    out.mkdir()
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                          str(script), str(pack), str(out)], check=False, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
    assert res.returncode == 0, res.stderr[-2000:]  # the script in tmp_path imports the checkout's package, installed or not
    ranks = [(out / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert ranks[0][1] == ranks[1][1] == "2"
    assert ranks[0][2] != ranks[1][2]  # each rank trained on its own batches...
    assert ranks[0][0] == ranks[1][0]  # ...and DDP kept their weights identical
    assert ranks[0][3] == ranks[1][3] == "1"  # ...and rank 1 stopped with it
    assert (out / "checkpoint" / "rng1.pt").is_file() and (out / "checkpoint" / "state.pt").is_file()


def test_extra_packs_train_alongside_and_validation_stays_at_the_end(pack, tmp_path):
    from vidrestore.train.data import PackedFaces

    both = PackedFaces([pack, pack])
    one = PackedFaces(pack)
    assert len(both) == 2 * len(one)
    _, val = both.split(2)
    assert torch.equal(both.faces_at(val), one.faces_at(torch.arange(len(one)))[-2:])
    tr = _trainer(pack, tmp_path / "r", extra_packs=[str(pack)])
    assert len(tr.data) == 2 * len(one) and torch.equal(tr.data.faces_at(tr.val_idx), one.faces_at(tr.val_idx - len(one)))


def test_real_lq_faces_become_degradation_targets(pack, tmp_path):
    from vidrestore.train.data import PackedFaces

    tr = _trainer(pack, tmp_path / "r", real_lq_pack=str(pack), real_lq_fraction=1.0, degradation_fraction=1.0)
    batch = tr.make_batch()
    real = PackedFaces(pack).faces_at(torch.arange(12)).permute(0, 3, 1, 2).float() / 255
    for lq in batch["lq"]:  # each target is a real face (maybe mirrored), not a synthetic degradation
        assert any(torch.equal(lq, r) or torch.equal(lq, r.flip(-1)) for r in real)
    assert not any(torch.equal(h, lq) for h, lq in zip(batch["hq"], batch["lq"]))  # conditioned on a restoration
    assert float(tr.loss(batch).detach()) > 0
    with pytest.raises(Exception, match="real_lq_pack"):
        _trainer(pack, tmp_path / "s", real_lq_fraction=0.5)


def test_clip_frames_give_the_same_runs_with_decord_and_pyav(tmp_path):
    from conftest import make_clip

    from vidrestore.train.data import ClipFrames

    clip = make_clip(tmp_path / "c.mp4", [i * 40 for i in range(12)], size=(48, 64))
    clips = ClipFrames([clip])
    assert clips.backend == "decord"  # installed with vidrestore
    with_decord = clips.read(0, 3, 4)
    clips.backend = "pyav"
    with_pyav = clips.read(0, 3, 4)
    assert with_decord.shape == with_pyav.shape == (4, 48, 64, 3)
    assert np.abs(with_decord.astype(int) - with_pyav.astype(int)).mean() < 2  # two decoders, one clip
    assert np.abs(with_pyav[1].astype(int) - with_pyav[0].astype(int)).mean() > 10  # consecutive, distinct frames


def test_warping_error_is_zero_for_the_exact_motion_only():
    from vidrestore.train.trainer import random_motion, warp, warping_error

    gen = torch.Generator().manual_seed(0)
    first = torch.rand(4, 3, 32, 32, generator=gen)
    shift = torch.tensor([[1.0, 0, 3], [0, 1, -2]]).expand(4, 2, 3)  # whole-pixel translation
    moved = torch.roll(first, shifts=(-2, 3), dims=(2, 3))
    assert float(warping_error(first, moved, shift)) < 1e-10  # exact where the shift keeps pixels inside
    motion = random_motion(4, 32, 2.0, 2.0, gen)
    assert float(warping_error(first, warp(first, motion, "zeros"), motion)) < 1e-10
    assert float(warping_error(first, first, motion)) > 0.01  # unmoved content does not satisfy the motion


def test_temporal_pairs_share_noise_and_the_loss_term_makes_predictions_consistent(pack, tmp_path):
    from vidrestore.train.trainer import warp, warping_error

    def trained(weight):
        tr = _trainer(pack, tmp_path / f"t{weight}", lr=2e-3, batch_size=4, temporal_fraction=1.0,
                      degradation_fraction=0.0, temporal_weight=weight)
        batch = tr.make_batch()
        for _ in range(15):
            tr.loss(batch).backward()
            tr.opt.step()
            tr.opt.zero_grad()
        return tr, batch

    def temporal_term(tr, b):
        first, following = b["pairs"].T
        ab = tr.alphas_cumprod[b["t"]][:, None, None, None]
        with torch.no_grad():
            pred = tr.model(ab.sqrt() * (b["hq"] * 2 - 1) + (1 - ab).sqrt() * b["noise"], b["t"], b["lq"] * 2 - 1,
                            b["identity"], b["mode"])
        return float(warping_error(pred[first], pred[following], b["motion"]))

    tr, batch = trained(10.0)
    first, following = batch["pairs"].T
    assert len(batch["hq"]) == 8 and torch.equal(following, torch.arange(4, 8))
    assert torch.equal(batch["noise"][first], batch["noise"][following]) and torch.equal(batch["t"][first], batch["t"][following])
    assert torch.allclose(warp(batch["hq"][first], batch["motion"], "reflection").clamp(0, 1), batch["hq"][following])
    assert not torch.allclose(batch["lq"][following], warp(batch["lq"][first], batch["motion"], "reflection"), atol=0.02)
    plain, same_batch = trained(0.0)
    assert temporal_term(tr, batch) < 0.8 * temporal_term(plain, same_batch)


def test_a_webp_pack_is_small_keeps_faces_and_descriptors_and_trains(pack, tmp_path):
    from vidrestore.errors import ConfigError
    from vidrestore.train.data import PackedFaces, pack_faces

    raw = PackedFaces(pack)
    coded_path = tmp_path / "coded.npz"
    identity = np.random.default_rng(1).normal(0, 0.1, (len(raw), 128)).astype(np.float32)
    np.savez(tmp_path / "described.npz", faces=raw.faces_at(torch.arange(len(raw))).numpy(), identity=identity)
    stats = pack_faces([tmp_path / "described.npz"], coded_path, 32, quality=90)  # a pack re-encoded, not re-detected
    assert stats.packed == len(raw) and stats.seen == 0
    coded = PackedFaces(coded_path)
    assert len(coded) == len(raw) and coded.size == 32
    assert coded_path.stat().st_size < 0.5 * (tmp_path / "described.npz").stat().st_size
    everything = torch.arange(len(raw))
    error = (coded.faces_at(everything).float() - raw.faces_at(everything).float()).pow(2).mean()
    assert 10 * torch.log10(255**2 / error) > 30  # near-lossless at quality 90
    assert torch.allclose(coded.identity, torch.from_numpy(identity), atol=1e-3)

    mixed = PackedFaces([pack, coded_path])  # raw and coded packs read as one
    assert torch.equal(mixed.faces_at(torch.tensor([len(raw) + 3])), coded.faces_at(torch.tensor([3])))
    tr = _trainer(coded_path, tmp_path / "r")
    assert torch.isfinite(torch.tensor(tr.train_step()))

    write_other = tmp_path / "other.npz"
    np.savez(write_other, faces=np.zeros((2, 16, 16, 3), np.uint8), identity=np.zeros((2, 128), np.float32))
    with pytest.raises(ConfigError, match="16 px faces cannot join a 32 px pack"):
        pack_faces([write_other], tmp_path / "no.npz", 32)
    with pytest.raises(ConfigError, match="different face sizes"):
        PackedFaces([pack, write_other])


def test_a_time_limited_run_stops_validated_and_checkpointed_then_resumes(pack, tmp_path):
    tr = _trainer(pack, tmp_path / "r", steps=50, log_every=10)
    rows = tr.run(time_limit=0)
    assert tr.step == 1 and [r["step"] for r in rows] == [1] and "val_psnr_restored" in rows[0]
    again = _trainer(pack, tmp_path / "r", steps=3)
    again.run()
    assert again.step == 3
    assert (tmp_path / "r" / "log.csv").read_text().count("\n") == 3  # header, the stop, the end


def test_pack_and_export_refuse_what_they_cannot_do_in_one_line(tmp_path, capsys):
    """pack said "packed 0 faces from nothing" for a missing folder or one without pictures (and
    kept the empty pack), and wrote faces.mp4.npz for --out faces.mp4 while naming faces.mp4;
    export failed with a traceback for a folder that is no training run."""
    from vidrestore.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, code, said in [(["pack", str(tmp_path / "none"), "--out", str(tmp_path / "f.npz")], 3, f"not found: {tmp_path / 'none'}"),
                             (["pack", str(empty), "--out", str(tmp_path / "f.npz")], 3, f"no face to pack: found no pictures in {empty}"),
                             (["pack", str(empty), "--out", str(tmp_path / "f.mp4")], 2, "a pack is an .npz file; name it so"),
                             (["export", str(empty), "--out", str(tmp_path / "w.safetensors")], 3, f"{empty} holds no trained weights")]:
        assert main(["train", *argv, "--quiet"] if argv[0] == "pack" else ["train", *argv]) == code
        (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
        assert line.startswith("vidrestore: error: ") and said in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_a_pack_is_refused_before_any_work_where_it_cannot_be_written_and_written_whole(pack, tmp_path, capsys, monkeypatch):
    """Its folder missing failed with a traceback after every face was aligned; a full disk left half a pack."""
    from vidrestore.cli import main
    from vidrestore.errors import OutputError
    from vidrestore.train import data

    assert main(["train", "pack", str(pack), "--out", str(tmp_path / "missing" / "p.npz")]) == OutputError.exit_code
    assert capsys.readouterr().err.endswith("p.npz: its folder does not exist\n")

    def full_disk(file, **arrays):
        file.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.np, "savez", full_disk)
    with pytest.raises(OutputError, match=r"cannot write .*p.npz \(No space left on device\)"):
        write_pack(tmp_path / "p.npz", np.zeros((1, 32, 32, 3), np.uint8), np.zeros((1, 128), np.float32))
    assert list(tmp_path.iterdir()) == []
