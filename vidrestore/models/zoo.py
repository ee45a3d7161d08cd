"""Model zoo: where weights come from, and safe loading.

A model file is looked up, in order: an explicit path; the env var ``VIDRESTORE_WEIGHTS_<NAME>``;
the copy bundled in the package; the cache (``$VIDRESTORE_CACHE`` or ``$XDG_CACHE_HOME/vidrestore``);
for RetinaFace, facexlib's own weights folder. ``pull`` downloads into the cache and checks sha256.
Nothing is ever unpickled: safetensors, or ``torch.load(weights_only=True)`` for ``.pth`` files.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import pickle
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import yaml
from safetensors import safe_open

from ..config import CONFIG_DIR, from_dict
from ..errors import ConfigError, ModelError, OutputError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ZooEntry:
    name: str
    kind: str
    file: str
    licence: str
    supported: bool = True
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    bundled: str | None = None
    config: str | None = None
    note: str | None = None
    detector: dict | None = None  # RetinaFace only: anchor sizes per level, input long side (0: as decoded)

    @property
    def env_var(self) -> str:
        return "VIDRESTORE_WEIGHTS_" + self.name.upper().replace("-", "_").replace(".", "_")


def cache_dir() -> Path:
    """``$VIDRESTORE_CACHE``; else ``$XDG_CACHE_HOME/vidrestore`` where that is an absolute path (the
    XDG spec has a relative one ignored: the cache would follow the working folder); else
    ``~/.cache/vidrestore``."""
    if os.environ.get("VIDRESTORE_CACHE"):
        return Path(os.environ["VIDRESTORE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "vidrestore"
    try:
        return Path.home() / ".cache" / "vidrestore"
    except RuntimeError as exc:  # no HOME, and a user the system does not know (a container's)
        raise ConfigError("no home folder is known for vidrestore's cache (HOME is unset): set VIDRESTORE_CACHE to a folder") from exc


def entries() -> dict[str, ZooEntry]:
    return dict(_shipped_entries())


@lru_cache(maxsize=1)
def _shipped_entries() -> dict[str, ZooEntry]:
    # read once a process: it ships with the package, and a run looked models up a dozen times (5 ms a read)
    data = yaml.safe_load((CONFIG_DIR / "zoo.yaml").read_text())
    return {e["name"]: ZooEntry(**e) for e in data["entries"]}


def identify(path: str | Path) -> ZooEntry | None:
    """The zoo entry whose recorded sha256 matches the file at ``path``, if any."""
    digest = sha256_of(Path(path))
    return next((e for e in entries().values() if e.sha256 == digest), None)


def entry(name: str) -> ZooEntry:
    zoo = entries()
    if name not in zoo:
        raise ModelError(f"no model named {name!r} in the zoo; `vidrestore models list` shows {sorted(zoo)}")
    return zoo[name]


def _facexlib_weights_dir() -> Path | None:
    # Located without importing facexlib: importing it pulls in torchvision.
    spec = importlib.util.find_spec("facexlib")
    return Path(spec.origin).parent / "weights" if spec and spec.origin else None


def candidates(e: ZooEntry, explicit: str | Path | None = None) -> list[Path]:
    paths = [Path(p) for p in (explicit, os.environ.get(e.env_var)) if p]
    if e.bundled:
        paths.append(PACKAGE_DIR / e.bundled)
    paths.append(cache_dir() / e.file)
    if e.kind in ("detector", "parsing") and (fx := _facexlib_weights_dir()):
        paths.append(fx / e.file)
    return paths


def locate(name: str, explicit: str | Path | None = None) -> Path | None:
    """First existing file for zoo entry ``name``; an explicit path that does not exist is an error."""
    e = entry(name)
    if explicit is not None and not Path(explicit).is_file():
        raise ModelError(f"weights file is a folder: {explicit} (give the file in it)" if Path(explicit).is_dir()
                         else f"weights file not found: {explicit}")
    if (env := os.environ.get(e.env_var)) and not Path(env).is_file():
        raise ModelError(f"{e.env_var} points to a {'folder' if Path(env).is_dir() else 'missing file'}: {env}")
    return next((p for p in candidates(e, explicit) if p.is_file()), None)


def resolve_weights(name_or_path: str) -> Path:
    """A ``.safetensors`` path as given, or a zoo name's located and verified file."""
    path = Path(name_or_path)
    if path.suffix == ".safetensors":
        return path
    if path.is_file() or path.suffix in (".pth", ".pt", ".ckpt", ".bin"):  # it was looked up as a zoo name
        raise ModelError(f"{name_or_path} is not a .safetensors file: give a model of `vidrestore models list` or a "
                         ".safetensors checkpoint (`vidrestore train export` writes one)")
    found = locate(name_or_path)
    if found is None:
        raise ModelError(f"weights for {name_or_path} not found (looked in {', '.join(map(str, candidates(entry(name_or_path))))})")
    return verify(name_or_path, found)


def sha256_of(path: Path) -> str:
    """The sha256 of the file at ``path``, read once a process while it stays the same file of the
    same size and time (the command line verifies a model before torch loads, the run again as it
    loads it: a published checkpoint of 0.5 GB takes about a second)."""
    stat = path.stat()
    return _sha256(path.resolve(), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha256(path: Path, inode: int, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=32)
def weights_digest(name_or_path: str) -> str:
    """sha256 of a file (a path, or a zoo name's located weights); the name itself otherwise."""
    if not name_or_path or name_or_path == "none":
        return name_or_path
    path = Path(name_or_path)
    if not path.is_file():
        found = locate(name_or_path) if name_or_path in entries() else None
        if found is None:
            return name_or_path
        path = found
    return sha256_of(path)


def verify(name: str, path: Path | None = None) -> Path:
    """Check the file of ``name`` against its recorded sha256; returns its path."""
    e = entry(name)
    path = path or locate(name)
    if path is None:
        raise ModelError(f"{name}: no weights file found (looked in {', '.join(map(str, candidates(e)))})")
    if e.sha256:
        got = sha256_of(path)
        if got != e.sha256:
            raise ModelError(f"{name}: sha256 mismatch for {path} (expected {e.sha256[:12]}…, got {got[:12]}…); "
                             "the file is corrupt or a different version: delete it and pull again")
    return path


def pull(name: str, force: bool = False) -> Path:
    """Download ``name`` into the cache (atomically) and verify it; a model bundled in the package
    is verified where it is found (a setup script's pull of the default model failed, exit 5)."""
    e = entry(name)
    if not e.url and e.bundled:
        return verify(name)
    if not e.url:
        raise ModelError(f"{name} has no download URL: give its weights as a path")
    target = cache_dir() / e.file
    if target.is_file() and not force:
        return verify(name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(e.url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except OSError as exc:
            Path(tmp.name).unlink(missing_ok=True)
            raise ModelError(f"cannot download {name} from {e.url} ({exc}); download it by hand and set {e.env_var}") from exc
    try:
        verify(name, Path(tmp.name))
    except ModelError:
        Path(tmp.name).unlink(missing_ok=True)
        raise
    os.replace(tmp.name, target)
    return target


def save_weights(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> None:
    """Write ``state`` and ``metadata`` as one safetensors file at ``path``, whole, then named: a
    training run killed while it saved a checkpoint left a cut model.safetensors beside the last
    step's state, and could not resume."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from ..io.output import atomic_output

    with atomic_output(path) as temp:
        try:
            save_file(state, str(temp), metadata=metadata)
        except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
            raise OutputError(f"cannot write {path} ({getattr(exc, 'strerror', None) or exc})") from exc


def check_checkpoint(path: Path) -> None:
    """Refuse a file that is no PyTorch checkpoint (a zip archive, or a pickle of the format before
    it) by name: a video or text given as weights failed as "KeyError: '101'", "EOFError" or torch's
    advice to load it with weights_only=False."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise ModelError(f"{path} is empty: not a PyTorch checkpoint (a download that did not finish?)")
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise ModelError(f"{path} is not a PyTorch checkpoint (neither a zip archive nor a pickle); give the .pth "
                         "file of the model's weights")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load tensors from safetensors, or from a ``.pth`` with ``weights_only=True`` (no arbitrary pickles)."""
    import torch  # here, not with the module: finding and checking weights needs no torch (cli._check_before_loading)
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    if path.suffix != ".safetensors":
        check_checkpoint(path)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(f"{path} holds Python objects besides tensors (a whole model pickled?), which vidrestore does not "
                         "load: it runs no code from a file (torch.load with weights_only=True); save the model's "
                         "state_dict() instead") from exc
    except Exception as exc:  # safetensors and torch raise many types for a damaged file
        raise ModelError(f"cannot read weights {path}: {exc.__class__.__name__}: {' '.join(str(exc).split())[:120]}") from exc
    for key in ("params_ema", "state_dict", "params", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a state dict of tensors")
    return state


def file_info(path: str | Path) -> dict:
    """What a safetensors weights file says of itself (for `vidrestore models info FILE`): its
    size, sha256, parameter count and header, whose JSON config is given parsed; a ModelError
    where it is missing or not a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:  # the header alone: no tensor is read, and no torch imported
            meta = dict(f.metadata() or {})
            parameters = sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())  # noqa: SIM118 - safe_open is no mapping
    except Exception as exc:  # safetensors raises its own type, and others for a file cut short
        raise ModelError(f"{path} is not a safetensors file ({str(exc)[:120]})") from exc
    with contextlib.suppress(KeyError, ValueError):
        meta["config"] = json.loads(meta["config"])
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_of(path), "parameters": parameters, **meta}


def checkpoint_config(path: str | Path, cls: type[T], what: str, file_format: str | None = None) -> T:
    """The config a vidrestore safetensors file holds in its header (JSON under "config"), as
    ``cls``; a ModelError naming ``what`` (FLIPNET, face quality) where the file is missing, or is
    not such a checkpoint (another ``format`` than ``file_format``, when given)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} weights not found: {path}")
    refused = f"{path} is not a vidrestore {what} checkpoint"
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own type, and others for a file cut short
        raise ModelError(f"{refused}: not a safetensors file ({str(exc)[:120]})") from exc
    held = meta.get("format")
    if "config" not in meta or (file_format is not None and held != file_format):
        raise ModelError(f"{refused}: it holds {f'a {held} checkpoint' if held else 'no vidrestore config'}")
    try:
        return from_dict(cls, json.loads(meta["config"]))
    except (ValueError, ConfigError) as exc:  # a JSON error is a ValueError
        raise ModelError(f"{refused}: its config does not fit ({str(exc)[:200]})") from exc

