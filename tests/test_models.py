import hashlib
import json

import pytest
import torch
from safetensors.torch import save_file

from vidrestore.errors import ModelError, OutputError
from vidrestore.models import zoo
from vidrestore.models.flipnet import DEGRADE, RESTORE, Flipnet, load_config, load_flipnet, save_flipnet


def _tiny(seed=0):
    torch.manual_seed(seed)
    return Flipnet(load_config("tiny")).eval()


def _inputs(b=2, s=32):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 3, s, s, generator=g), torch.tensor([300]), torch.randn(b, 3, s, s, generator=g), torch.randn(128, generator=g)


def _open_hub(model):
    for name, p in model.named_parameters():
        if ".hub.to_out" in name or name.startswith("cond_skips"):
            torch.nn.init.normal_(p, std=0.05)


def test_tiny_forward_backward_and_size():
    m = _tiny()
    assert sum(p.numel() for p in m.parameters()) < 2_000_000
    torch.nn.init.normal_(m.conv_out.weight, std=0.01)
    x, t, c, ident = _inputs()
    y = m(x, t, c, ident, RESTORE)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert all(p.grad is not None for p in m.conv_in.parameters())


def test_closed_boosthub_gives_exactly_the_base_denoiser():
    m = _tiny()
    torch.nn.init.normal_(m.conv_out.weight, std=0.01)
    x, t, c, ident = _inputs()
    with torch.no_grad():
        base = m(x, t, c, ident, RESTORE, phi=0.0)
        untrained_hub = m(x, t, c, ident, RESTORE, phi=1.0)  # zero-initialised output projection
        assert torch.equal(base, untrained_hub)
        _open_hub(m)
        assert torch.equal(base, m(x, t, c, ident, RESTORE, phi=0.0))
        assert not torch.allclose(base, m(x, t, c, ident, RESTORE, phi=1.0))


def test_mode_switch_changes_the_output():
    m = _tiny()
    torch.nn.init.normal_(m.conv_out.weight, std=0.01)
    x, t, c, ident = _inputs()
    with torch.no_grad():
        assert not torch.allclose(m(x, t, c, ident, RESTORE), m(x, t, c, ident, DEGRADE))


def test_safetensors_roundtrip(tmp_path):
    m = _tiny()
    _open_hub(m)
    torch.nn.init.normal_(m.conv_out.weight, std=0.01)
    path = tmp_path / "m.safetensors"
    save_flipnet(m, path)
    back = load_flipnet(path)
    x, t, c, ident = _inputs()
    with torch.no_grad():
        assert torch.equal(m(x, t, c, ident, RESTORE), back(x, t, c, ident, RESTORE))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError):
        load_flipnet(path)


def test_zoo_verify_detects_a_corrupted_file(tmp_path, monkeypatch):
    good = tmp_path / "w.pth"
    torch.save({"a": torch.ones(3)}, good)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    entry = zoo.ZooEntry(name="test-model", kind="detector", file="w.pth", licence="MIT", sha256=digest)
    monkeypatch.setattr(zoo, "entries", lambda: {"test-model": entry})
    assert zoo.verify("test-model", good) == good
    bad = tmp_path / "bad.pth"
    bad.write_bytes(good.read_bytes()[:-3] + b"xyz")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        zoo.verify("test-model", bad)
    monkeypatch.setenv(entry.env_var, str(tmp_path / "missing.pth"))
    with pytest.raises(ModelError, match="missing file"):
        zoo.locate("test-model")
    monkeypatch.setenv(entry.env_var, str(tmp_path))  # was "points to a missing file"
    with pytest.raises(ModelError, match=f"points to a folder: {tmp_path}$"):
        zoo.locate("test-model")


def test_pickles_are_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(ModelError, match="holds Python objects besides tensors .* save the model's state_dict"):
        zoo.load_state_dict(path)


@pytest.mark.parametrize("content, says", [
    (b"", "is empty: not a PyTorch checkpoint"),  # was "EOFError: "
    (b"hello world", "is not a PyTorch checkpoint"),  # was "KeyError: '101'"
    (b"\x00\x00\x00\x20ftypisom" + bytes(64), "is not a PyTorch checkpoint"),  # a video given as weights
])
def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path, content, says):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=f"^{path} {says}"):
        zoo.load_state_dict(path)


def test_unsupported_zoo_entries_say_why():
    e = zoo.entry("difface-prior-512")
    assert not e.supported and "converter" in e.note


def test_shipped_default_model_verifies_and_loads():
    path = zoo.verify("flipnet-small")
    model = load_flipnet(path)
    assert model.config.name == "small" and model.config.image_size == 128


def test_pulling_a_bundled_model_checks_the_packages_copy_and_downloads_nothing(capsys, monkeypatch):
    """`vidrestore models pull flipnet-small` in a setup script failed, exit 5: "has no download URL"."""
    from vidrestore.cli import main

    monkeypatch.setattr(zoo.urllib.request, "urlopen", lambda *a, **k: pytest.fail("nothing is downloaded"))
    assert main(["models", "pull", "flipnet-small"]) == 0
    path = zoo.verify("flipnet-small")
    assert capsys.readouterr().out.strip() == f"flipnet-small: {path} (sha256 {zoo.entry('flipnet-small').sha256})"


def test_a_model_file_that_is_not_safetensors_is_named_not_looked_up_in_the_zoo(tmp_path):
    """`--model faces.npz` or `--model old.pth` said "no model named ... in the zoo"."""
    given = tmp_path / "faces.npz"
    given.write_bytes(b"a pack")
    for path in (given, tmp_path / "old.pth"):
        with pytest.raises(ModelError, match=f"^{path} is not a .safetensors file: give a model of `vidrestore models list`"):
            zoo.resolve_weights(str(path))


def test_a_file_that_is_not_a_flipnet_checkpoint_says_what_it_holds(tmp_path):
    """Each refusal named only an exception type ("(SafetensorError)", "(ConfigError)"); it says
    what the file holds: not safetensors, none of vidrestore's config, another model's, or a config
    that does not fit (the face quality estimator given to --model)."""
    garbage, plain, other, unfit = (tmp_path / f"{n}.safetensors" for n in ("garbage", "plain", "other", "unfit"))
    garbage.write_bytes(b"junk")
    save_file({"w": torch.zeros(2)}, str(plain))
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "vidrestore-face-quality-1", "config": "{}"})
    save_file({"w": torch.zeros(2)}, str(unfit), metadata={"format": "vidrestore-flipnet-1", "config": json.dumps({"image_size": "x"})})
    for path, held in [(garbage, r"not a safetensors file \(.+\)"), (plain, "it holds no vidrestore config"),
                       (other, "it holds a vidrestore-face-quality-1 checkpoint"),
                       (unfit, r"its config does not fit \(FlipnetConfig.image_size: expected int, got 'x'\)")]:
        with pytest.raises(ModelError, match=f"^{path} is not a vidrestore FLIPNET checkpoint: {held}$"):
            load_flipnet(path)


def test_verify_without_a_name_checks_every_model_found(tmp_path, monkeypatch, capsys):
    """`vidrestore models verify` wanted a name; without one it checks every model found here and
    fails naming the ones whose file does not match its recorded sha256."""
    from vidrestore.cli import main

    assert main(["models", "verify"]) == 0
    found = capsys.readouterr().out.splitlines()
    assert {line.split(":")[0] for line in found} >= {"flipnet-small", "face-quality"}
    assert all(": OK (" in line for line in found)
    damaged = tmp_path / "face-quality.safetensors"
    damaged.write_bytes(b"not the estimator")
    monkeypatch.setenv(zoo.entry("face-quality").env_var, str(damaged))
    assert main(["models", "verify"]) == 5
    printed = capsys.readouterr()
    assert f"face-quality: FAILED (face-quality: sha256 mismatch for {damaged}" in printed.out
    assert printed.err.strip() == "vidrestore: error: face-quality did not match its recorded sha256"


def test_weights_are_written_whole_then_named(tmp_path, monkeypatch):
    """A training run killed while it saved a checkpoint left a cut model.safetensors beside the
    last step's state, and could not resume: the file there stays the last whole one."""
    import safetensors.torch

    torch.manual_seed(0)
    path = tmp_path / "model.safetensors"
    save_flipnet(Flipnet(load_config("tiny")), path)
    whole = path.read_bytes()

    def killed(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        save_flipnet(Flipnet(load_config("tiny")), path)
    assert path.read_bytes() == whole and sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    monkeypatch.undo()
    with pytest.raises(OutputError, match="output folder does not exist"):
        save_flipnet(Flipnet(load_config("tiny")), tmp_path / "missing" / "model.safetensors")


def test_the_cache_folder_takes_an_absolute_xdg_cache_home_and_names_a_missing_home(tmp_path, monkeypatch):
    """A relative XDG_CACHE_HOME put the cache (analyses, downloaded weights) below whichever folder
    a run started in; the XDG spec has it ignored."""
    monkeypatch.delenv("VIDRESTORE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zoo.cache_dir() == tmp_path / "xdg" / "vidrestore"
    monkeypatch.setenv("XDG_CACHE_HOME", "cache")
    assert zoo.cache_dir() == tmp_path / "home" / ".cache" / "vidrestore"
    monkeypatch.setenv("VIDRESTORE_CACHE", str(tmp_path / "mine"))
    assert zoo.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("VIDRESTORE_CACHE")
    monkeypatch.delenv("HOME")
    monkeypatch.setattr("pwd.getpwuid", lambda uid: (_ for _ in ()).throw(KeyError(uid)))  # a container's unknown user
    from vidrestore.errors import ConfigError

    with pytest.raises(ConfigError, match="set VIDRESTORE_CACHE to a folder"):
        zoo.cache_dir()


def test_models_info_tells_what_a_weights_file_holds(tmp_path, capsys):
    """`vidrestore models info` took zoo names only ("no model named 'mine.safetensors' in the
    zoo"): a model a user trained and exported could not be looked into. A file gets its size,
    sha256, parameter count and header, the config parsed."""
    from vidrestore.cli import main

    model = Flipnet(load_config("tiny"))
    path = tmp_path / "mine.safetensors"
    save_flipnet(model, path, metadata={"step": "6", "source": "EMA"})
    assert main(["models", "info", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert (info["sha256"], info["bytes"], info["step"], info["config"]["name"]) == (zoo.sha256_of(path), path.stat().st_size, "6", "tiny")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    assert main(["models", "info", str(junk)]) == 5
    assert capsys.readouterr().err.startswith(f"vidrestore: error: {junk} is not a safetensors file (")
    assert main(["models", "info", "flipnet-small"]) == 0 and json.loads(capsys.readouterr().out)["name"] == "flipnet-small"
