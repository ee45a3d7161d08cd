"""Turn batch inputs (files, folders, globs, CSV/JSON manifests) into items with predictable outputs."""

from __future__ import annotations

import csv
import difflib
import glob
import hashlib
import io
import itertools
import json
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..io.photo import HEIF_SUFFIXES
from ..io.sequence import files_of, hidden_below, is_sequence, sequences_in, shown

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".mxf", ".wmv", ".flv",
                  ".3gp", ".vob", ".dv", ".h264", ".264", ".hevc", ".h265", ".m2v"}  # the last five: raw camera/DVR streams and DV tapes
MANIFEST_SUFFIXES = {".csv", ".json"}
# Image sequences a folder scan takes: scans, plates and renders. Numbered JPEGs are more often a camera's
# photos than frames of one shot; name such a sequence (DSC_%04d.jpg) to restore it as one.
SCANNED_SEQUENCE_SUFFIXES = {".dpx", ".exr", ".tif", ".tiff", ".png"}
# Pictures a folder scan takes one by one, those of no sequence: a folder of scanned photos is
# what a face restorer is most often given (it was "no input videos found").
PICTURE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".dpx", ".exr", *HEIF_SUFFIXES}


@dataclass(frozen=True)
class ItemSpec:
    """One input as the user listed it: where it is, where its output goes, its own option flags."""

    input: Path
    output: Path | None = None  # None: OUT/<its folder below the one searched>/<input name>
    flags: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("--preset", "quality")
    # its folder below the folder searched (or a glob's fixed part), mirrored below the output folder
    within: Path = Path()


# The restore options given more than once (one value each): a JSON manifest's list of them
# repeats the option; another option's list is one value, its items joined by commas ("tracks": [0, 3]).
REPEATABLE = frozenset({"--strength", "--reference"})


def _option_flags(row: dict[str, object]) -> tuple[str, ...]:
    flags: list[str] = []
    for key, value in row.items():
        if key in ("input", "output") or value is None or value == "":
            continue
        flag = "--" + str(key).strip().replace("_", "-")
        if isinstance(value, bool) or str(value).lower() in ("true", "false", "yes", "no"):
            if value is True or str(value).lower() in ("true", "yes"):
                flags.append(flag)
            continue
        if isinstance(value, list):
            flags += [f for v in value for f in (flag, str(v))] if flag in REPEATABLE else [flag, ",".join(map(str, value))]
            continue
        flags += [flag, str(value)]
    return tuple(flags)


def _dialect(text: str) -> type[csv.Dialect]:
    """The CSV dialect of ``text`` by its header: Excel writes ';' between fields where the decimal
    mark is a comma (most of Europe), and tabs for "Unicode text"."""
    try:
        return csv.Sniffer().sniff(text.partition("\n")[0], delimiters=",;\t")
    except csv.Error:  # a header of one field
        return csv.excel


def read_manifest(path: Path, options: Collection[str] | None = None) -> list[ItemSpec]:
    """CSV with a header, or a JSON list of objects: ``input`` (required), ``output`` (optional,
    relative to the output folder) and any restore option by its flag name (``preset``, ``seed``,
    ``crf``, ``detect_every``, ``no_temporal``...). Relative inputs are relative to the manifest.
    ``options``: the flags an entry may give (``--strength``...); a column that is none of them is
    refused (a misspelt heading failed every item, one by one)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel starts a UTF-8 file with a byte order mark
        rows = list(csv.DictReader(io.StringIO(text, newline=""), dialect=_dialect(text))) if path.suffix == ".csv" else json.loads(text)
    except UnicodeDecodeError as exc:  # Excel's plain "CSV" is in the Windows code page
        raise UsageError(f"cannot read manifest {path}: it is not UTF-8 text (in Excel, save it as \"CSV UTF-8\")") from exc
    except (OSError, json.JSONDecodeError, csv.Error) as exc:
        raise UsageError(f"cannot read manifest {path}: {exc}") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UsageError(f"manifest {path}: expected a list of objects with an 'input' key")
    specs = []
    for n, written in enumerate(rows, 1):
        row = {str(key).strip().lower(): value for key, value in written.items() if key is not None}  # a spreadsheet's "Input"
        if not row.get("input"):
            raise UsageError(f"manifest {path}, entry {n}: no 'input'")
        src = Path(str(row["input"]))
        src = src if src.is_absolute() else path.parent / src
        out = Path(str(row["output"])) if row.get("output") else None
        if options is not None:
            _check_columns(path, row, options)
        specs.append(ItemSpec(src, out, _option_flags(row)))
    return specs


def _check_columns(path: Path, row: dict[str, object], options: Collection[str]) -> None:
    for key in row:
        if key not in ("input", "output") and (flag := "--" + key.replace("_", "-")) not in options:
            close = difflib.get_close_matches(flag, options, n=1)
            hint = f" (did you mean {close[0][2:]}?)" if close else ""
            raise UsageError(f"manifest {path}: {key!r} is no option of vidrestore{hint}")


def expand_inputs(inputs: list[str], out_dir: Path, also_written: Collection[Path] = (),
                  options: Collection[str] | None = None) -> list[ItemSpec]:
    """Files (any name: a non-video fails as its own item), folders (their videos, pictures and
    image sequences, recursively), globs and manifests, in the order given, each input once. What
    a folder or a glob finds inside ``out_dir`` (or ``also_written``, where ``--faces`` and
    ``--previews`` write) is an earlier batch's output, not an input, where that folder lies inside
    the one searched (the glob's fixed part); ``out_dir`` the folder itself is refused by
    :func:`assign_outputs`. ``options``: the flags a manifest's entries may give (:func:`read_manifest`)."""
    written = [out_dir, *also_written]
    specs: list[ItemSpec] = []
    for text in inputs:
        p = Path(text)
        if p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file():
            specs += read_manifest(p, options)
        elif p.is_dir():
            specs += [_found(f, p) for f in _found_in(p) if not _earlier_output(f, p, written)]
        elif any(c in text for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
            if not matches:
                raise UsageError(f"no file matches {text}")
            specs += [_found(m, _fixed_part(text)) for m in matches if not _earlier_output(m, _fixed_part(text), written)]
        else:
            specs.append(ItemSpec(p))  # a missing file becomes a failed item, not a stopped batch
    seen, unique = set(), []
    for s in specs:
        key = s.input.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(s)
    if not unique:
        raise UsageError("no input videos or pictures found")
    return unique


def _found(path: Path, searched: Path) -> ItemSpec:
    """The item of ``path``, found by searching the folder ``searched``: its output goes into the
    same subfolder of the output folder (an archive's 1970s/reel1.mp4 and 1980s/reel1.mp4 were both
    written flat, one of them renamed)."""
    return ItemSpec(path, within=path.parent.relative_to(searched))


def _fixed_part(pattern: str) -> Path:
    """The folder a glob ``pattern`` searches: its path up to the first wildcard."""
    parts = Path(pattern).parts
    fixed = list(itertools.takewhile(lambda part: not any(c in part for c in "*?["), parts))
    return Path(*fixed) if fixed else Path(".")


def _earlier_output(found: Path, searched: Path, written: list[Path]) -> bool:
    """Whether ``found``, found by searching the folder ``searched``, lies in one of the folders a
    batch writes, ``written``, inside it (a batch run again into a subfolder of its inputs' folder)."""
    root = searched.resolve()
    return any(out_root != root and root in out_root.parents and out_root in found.resolve().parents
               for out_root in (folder.resolve() for folder in written))


def _found_in(folder: Path) -> list[Path]:
    """The videos and pictures under ``folder``, and its image sequences (:data:`SCANNED_SEQUENCE_SUFFIXES`)
    as patterns, their pictures not one by one, in path order. Hidden files and folders
    (:func:`~vidrestore.io.sequence.hidden_below`) are not inputs: macOS's ``._clip.mov`` failed as
    an item of its own, and the batch with it."""
    found = [p for p in folder.rglob("*") if not hidden_below(p, folder)]
    sequences = [s for d in (folder, *(p for p in found if p.is_dir())) for s in sequences_in(d, SCANNED_SEQUENCE_SUFFIXES)
                 if not hidden_below(s, folder)]
    in_sequences = {picture for s in sequences for picture in files_of(s)}
    files = [f for f in found if f.is_file() and f not in in_sequences]
    return sorted([f for f in files if f.suffix.lower() in VIDEO_SUFFIXES | PICTURE_SUFFIXES] + sequences)


def _output_name(spec: ItemSpec, tagged: bool) -> Path:
    """Where ``spec`` goes inside the output folder: below its folder's place (:attr:`ItemSpec.within`),
    its own name; an image sequence's pictures in a folder of their own, the one it was found in or
    one named as its folder is. ``tagged``: with 8 hex of its path, when another input has the same name."""
    tag = "-" + hashlib.sha256(str(spec.input.resolve()).encode()).hexdigest()[:8] if tagged else ""
    if is_sequence(spec.input):
        folder = spec.within if spec.within != Path() else Path(spec.input.parent.resolve().name)
        return folder.with_name(folder.name + tag) / spec.input.name
    return spec.within / (f"{spec.input.stem}{tag}{spec.input.suffix}" if tagged else spec.input.name)


def assign_outputs(specs: list[ItemSpec], out_dir: Path, kept: Mapping[Path, Path] | None = None) -> list[tuple[ItemSpec, Path]]:
    """``OUT/<its folder below the one searched>/<input name>`` (an image sequence:
    ``OUT/<the folder it was found in, or one named as its own>/<its name>``); inputs that would
    share an output get ``<stem>-<8 hex of their path>`` (a sequence: its folder's name does).
    ``kept``: the outputs earlier runs of this batch gave inputs (by resolved input,
    :func:`~vidrestore.batch.state.recorded_outputs`), taken again where the input names no
    output of its own: a batch an earlier version wrote flat goes on where it was."""
    kept = kept or {}
    taking = {i: kept[s.input.resolve()] for i, s in enumerate(specs) if s.output is None and s.input.resolve() in kept}
    names = Counter((out_dir / _output_name(s, False)).resolve() for i, s in enumerate(specs) if s.output is None and i not in taking)
    names.update(out.resolve() for out in taking.values())
    pairs = []
    for i, s in enumerate(specs):
        if s.output is not None:
            out = s.output if s.output.is_absolute() else out_dir / s.output
        else:
            out = taking.get(i) or out_dir / _output_name(s, names[(out_dir / _output_name(s, False)).resolve()] > 1)
        pairs.append((s, out))
    outputs = [o.resolve() for _, o in pairs]
    first: dict[Path, ItemSpec] = {}
    for (spec, out), resolved in zip(pairs, outputs):
        if (other := first.setdefault(resolved, spec)) is not spec:
            raise UsageError(f"{shown(other.input)} and {shown(spec.input)} would both be written to {shown(out)}: give each "
                             "its own output in the manifest")
    inputs = {s.input.resolve(): s.input for s in specs}
    replaced = next((inputs[o] for o in outputs if o in inputs), None)
    if replaced is not None:  # a folder restored into itself: every input was taken for an output and "no input videos found"
        raise UsageError(f"{replaced} would be replaced by a restored video: --out {out_dir} holds the inputs; give another folder")
    return pairs
