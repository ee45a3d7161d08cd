"""Face parsing for paste masks: facexlib's ParseNet layout loads; masks follow the labels."""

import dataclasses
import json
import time

import numpy as np
import pytest
import torch

from vidrestore.errors import ModelError, UsageError
from vidrestore.faces.align import align_faces, template
from vidrestore.faces.parsing import (
    FACE_CLASSES,
    ParseNet,
    ParseNetConfig,
    ParsingMasker,
    config_from_state,
    load_parsenet,
    sparse_masks,
)
from vidrestore.faces.paste import paste_faces

TINY = ParseNetConfig(size=64, min_feat_size=16, base_ch=8, res_depth=2, ch_range=(8, 16))


def _checkpoint(tmp_path, favour: int | None = None, cfg: ParseNetConfig = TINY):
    """A ParseNet saved as facexlib saves it (a plain state dict in a .pth); ``favour``: a class
    whose logit bias dominates, so the parsing is known."""
    torch.manual_seed(0)
    net = ParseNet(cfg)
    if favour is not None:
        with torch.no_grad():
            net.out_mask_conv.conv2d.weight.zero_()
            net.out_mask_conv.conv2d.bias.fill_(-10).index_fill_(0, torch.tensor([favour]), 10)
    path = tmp_path / "parsing_parsenet.pth"
    torch.save(net.state_dict(), path)
    return net, path



def test_the_weights_a_mask_asks_for_are_found_or_refused_before_anything_loads(tmp_path, monkeypatch):
    """What the paste mask draws with, decided from the options alone (the command line asks before
    torch loads): ParseNet's weights for parsing, or auto with weights found; the ellipse otherwise."""
    from vidrestore.faces.weights import PARSENET, parsing_weights
    from vidrestore.models import zoo

    monkeypatch.setenv("VIDRESTORE_CACHE", str(tmp_path / "cache"))  # nothing cached, nor named by the env var
    monkeypatch.delenv(zoo.entry(PARSENET).env_var, raising=False)
    monkeypatch.setattr(zoo, "_facexlib_weights_dir", lambda: None)
    _, weights = _checkpoint(tmp_path)
    gone = tmp_path / "gone.pth"
    assert parsing_weights("auto", "", aligned=False) is None  # none found: the ellipse
    assert parsing_weights("auto", str(weights), aligned=False) == weights
    assert parsing_weights("parsing", str(weights), aligned=False) == weights
    assert parsing_weights("ellipse", str(gone), aligned=False) is None  # not asked for, not looked for
    assert parsing_weights("parsing", str(weights), aligned=True) is None  # aligned crops are pasted whole
    with pytest.raises(ModelError, match="--mask parsing needs ParseNet weights"):
        parsing_weights("parsing", "", aligned=False)
    with pytest.raises(ModelError, match=f"weights file not found: {gone}"):
        parsing_weights("auto", str(gone), aligned=False)
    with pytest.raises(UsageError, match="unknown mask 'oval'"):
        parsing_weights("oval", "", aligned=False)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / zoo.entry(PARSENET).file).write_bytes(weights.read_bytes())
    assert parsing_weights("auto", "", aligned=False) == tmp_path / "cache" / zoo.entry(PARSENET).file

def test_the_default_network_has_facexlib_parsenet_key_layout():
    keys = set(ParseNet().state_dict())
    for key in ("encoder.0.conv2d.weight", "encoder.0.conv2d.bias", "encoder.1.shortcut_func.conv2d.weight",
                "encoder.1.conv1.conv2d.weight", "encoder.1.conv1.norm.norm.running_var", "encoder.4.conv2.norm.norm.weight",
                "body.9.conv2.norm.norm.num_batches_tracked", "decoder.3.shortcut_func.conv2d.bias",
                "out_img_conv.conv2d.weight", "out_mask_conv.conv2d.bias"):
        assert key in keys
    assert "encoder.1.conv1.conv2d.bias" not in keys  # convs followed by batch norm have no bias
    assert "body.0.shortcut_func.conv2d.weight" not in keys  # same-shape blocks add their input as is
    assert ParseNet().state_dict()["out_mask_conv.conv2d.weight"].shape == (19, 64, 3, 3)
    inferred = ParseNet(config_from_state(ParseNet().state_dict())).state_dict()  # the shape is read off the weights
    assert {k: v.shape for k, v in inferred.items()} == {k: v.shape for k, v in ParseNet().state_dict().items()}


def test_a_saved_checkpoint_loads_and_gives_the_same_parsing(tmp_path):
    net, path = _checkpoint(tmp_path)
    loaded = load_parsenet(path, torch.device("cpu"))
    assert dataclasses.replace(loaded.config, size=64, min_feat_size=16) == TINY  # parsed at 512 px, like facexlib
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    net.eval()
    assert torch.equal(loaded(x), net(x))


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.0.conv2d.weight": torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(ModelError, match="ParseNet"):
        load_parsenet(path, torch.device("cpu"))


@pytest.mark.parametrize("favour, covered", [(1, True), (17, False)])  # skin is pasted; hair never is
def test_masks_follow_the_parsing(tmp_path, favour, covered):
    _, path = _checkpoint(tmp_path, favour)
    masker = ParsingMasker(load_parsenet(path, torch.device("cpu")))
    masks = masker(torch.rand(3, 3, 128, 128))
    assert masks.shape == (3, 1, 128, 128) and masks.min() >= 0 and masks.max() <= 1
    assert float(masks[..., :2, :].max()) < 0.05  # kept off the crop border
    assert (float(masks[..., 64, 64].min()) > 0.99) == covered
    frame = torch.randint(0, 256, (3, 120, 160), dtype=torch.uint8)
    lm = torch.from_numpy(template(64) + np.array([40, 20], np.float32))[None]
    crops, m = align_faces(frame, lm, 128)
    pasted, _ = paste_faces(frame, torch.zeros_like(crops), m, masks=masks[:1])
    assert torch.equal(pasted, frame) != covered
    assert 1 in FACE_CLASSES and 17 not in FACE_CLASSES


def test_the_pipeline_uses_parsing_masks_when_asked(sample_clip, tmp_path):
    from vidrestore.cli import main

    _, path = _checkpoint(tmp_path, favour=1)
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    assert main([str(sample_clip), str(out), "--model", "none", "--detector", "dlib", "--mask", "parsing",
                 "--parsing-weights", str(path), "--quiet", "--json", str(report), "--x264-preset", "ultrafast",
                 "--dtype", "bf16"]) == 0
    assert json.loads(report.read_text())["mask"] == "parsing (ParseNet, bf16)"  # at the restorer's precision
    assert main([str(sample_clip), str(tmp_path / "e.mp4"), "--model", "none", "--detector", "dlib", "--mask", "parsing",
                 "--parsing-weights", str(tmp_path / "missing.pth"), "--quiet"]) == 5
    assert not (tmp_path / "e.mp4").exists()


def test_a_bf16_masker_parses_in_bf16_and_masks_as_fp32_does(tmp_path):
    _, path = _checkpoint(tmp_path)
    crops = torch.rand(4, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    seen, masks = {}, {}
    for dtype in (torch.float32, torch.bfloat16):
        net = load_parsenet(path, torch.device("cpu"))
        net.out_mask_conv.register_forward_hook(lambda module, args, out, dtype=dtype: seen.update({dtype: out.dtype}))
        masker = ParsingMasker(net, dtype)
        masks[dtype] = masker(crops)
        assert masker.name == {torch.float32: "parsing (ParseNet)", torch.bfloat16: "parsing (ParseNet, bf16)"}[dtype]
    assert seen == {torch.float32: torch.float32, torch.bfloat16: torch.bfloat16}
    assert masks[torch.bfloat16].dtype == torch.float32
    assert float((masks[torch.bfloat16] - masks[torch.float32]).abs().mean()) < 0.02


def test_sparse_masks_parse_the_keys_alone_and_draw_the_rest_between(tmp_path):
    """Parsing some crops of a track stands for the rest: the keys' masks are their own parsing,
    each crop between two keys gets their masks mixed by its distance to each, and the network
    sees only the keys; with every crop a key the masks are the parsing of each."""
    _, path = _checkpoint(tmp_path)  # random weights: each crop parses differently
    masker = ParsingMasker(load_parsenet(path, torch.device("cpu")))
    crops = torch.rand(9, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    seen = []
    forward = masker.net.forward
    masker.net.forward = lambda x: seen.append(len(x)) or forward(x)
    masks = sparse_masks(masker, crops, [0, 4, 8])
    assert sum(seen) == 3  # in chunks of 2 on the CPU
    own = masker(crops)
    for key in (0, 4, 8):
        assert torch.allclose(masks[key], own[key], atol=1e-6)
    assert torch.allclose(masks[1], 0.75 * own[0] + 0.25 * own[4], atol=1e-6)
    assert torch.allclose(masks[6], 0.5 * own[4] + 0.5 * own[8], atol=1e-6)
    assert not torch.allclose(masks[6], own[6], atol=1e-3)  # drawn, not parsed
    assert torch.allclose(sparse_masks(masker, crops, list(range(9))), own, atol=1e-6)


def test_parse_keys_are_every_nth_frame_of_the_track_and_the_window_ends():
    from vidrestore.faces.types import Track
    from vidrestore.pipeline.restoring import parse_keys

    track = Track(track_id=0, shot_index=0, frames=np.arange(10, 50), boxes=np.zeros((40, 4), np.float32),
                  landmarks=np.zeros((40, 5, 2), np.float32), scores=np.ones(40, np.float32))
    moments = [(i, 0) for i in range(12, 28)]
    assert parse_keys(track, moments, 4) == [0, 2, 6, 10, 14, 15]
    assert parse_keys(track, moments, 1) == list(range(16))
    fields = [(i, m) for i in range(12, 16) for m in (0, 1)]  # a frame's earlier moment, then its later one
    assert parse_keys(track, fields, 2) == [0, 4, 7]


def test_parse_every_reaches_the_report_and_below_1_is_a_usage_error(sample_clip, tmp_path, capsys):
    from vidrestore.cli import main

    _, path = _checkpoint(tmp_path, favour=1)
    report = tmp_path / "r.json"
    assert main([str(sample_clip), str(tmp_path / "o.mp4"), "--model", "none", "--detector", "dlib", "--mask", "parsing",
                 "--parsing-weights", str(path), "--parse-every", "4", "--quiet", "--json", str(report), "--x264-preset", "ultrafast"]) == 0
    assert json.loads(report.read_text())["mask"].endswith("once every 4 frames of a track, drawn between")
    capsys.readouterr()
    assert main([str(sample_clip), str(tmp_path / "e.mp4"), "--model", "none", "--parse-every", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--parse-every: expected 1 or more, got 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "e.mp4").exists()


def test_the_report_advises_fewer_parses_where_parsing_took_most_of_the_restore(tmp_path):
    from vidrestore.pipeline.report import parsing_note

    _, path = _checkpoint(tmp_path)
    masker = ParsingMasker(load_parsenet(path, torch.device("cpu")))
    masker(torch.rand(2, 3, 128, 128))
    assert masker.seconds > 0  # what the note is given
    note = parsing_note(30.0, 40.0, 1)
    assert len(note) == 1 and "face parsing took 30 s of the 40 s of restoring (75%)" in note[0] and "--parse-every 4" in note[0]
    assert parsing_note(10.0, 40.0, 1) == []  # a quarter of the time
    assert parsing_note(30.0, 40.0, 4) == []  # parsed sparsely already


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_parsing_that_takes_most_of_the_restore_is_advised_against_in_a_run_and_a_batch_item(sample_clip, tmp_path, monkeypatch, batch):
    """Parsing slowed to 0.1 s a pass (the pass-through restorer takes next to nothing): the
    report says parsing took most of the restoring and names --parse-every. A batch item's report
    said nothing of it: its segments are restored apart from where its report is made."""
    from vidrestore.cli import main

    forward = ParseNet.forward

    def slow(self, x):
        time.sleep(0.1)
        return forward(self, x)

    monkeypatch.setattr(ParseNet, "forward", slow)
    _, path = _checkpoint(tmp_path)
    report = tmp_path / "r.json"
    out = ["batch", str(sample_clip), "--out", str(tmp_path / "batch")] if batch else [str(sample_clip), str(tmp_path / "o.mp4")]
    assert main([*out, "--model", "none", "--detector", "dlib", "--mask", "parsing", "--parsing-weights", str(path), "--quiet",
                 "--json", str(report), "--x264-preset", "ultrafast"]) == 0
    written = json.loads(report.read_text())
    notes = written["items"][0]["report"]["notes"] if batch else written["notes"]
    (note,) = [n for n in notes if n.startswith("face parsing took")]
    assert "--parse-every 4 parses every 4th frame" in note
