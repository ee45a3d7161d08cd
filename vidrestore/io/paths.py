"""The input and output paths of a run, checked before any work: what a wrong name, an output
that exists or a folder that cannot be written is told by. Only PyAV and the standard library
are imported here (no torch), so that the command says so at once rather than after seconds
of imports and a model's load.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from ..errors import InputError, OutputError
from .output import linked_file
from .photo import heif_primary_type
from .piped import is_piped, pipe_name
from .sequence import files_of, find_sequence, has_number_field, is_sequence, sequences_in, unsupported_type


def check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    check_input(src)
    check_output_path(src, dst, overwrite)


def check_input(src: Path) -> None:
    """Refuse ``src`` before any work, naming what it is: missing, a URL, standard input (which
    only the command takes), a folder, an image sequence without its pictures."""
    if is_sequence(src):
        find_sequence(src)  # names the folder, the missing pictures or the empty match
    elif has_number_field(src) and not src.exists():
        raise InputError(f"cannot read the image sequence {src.name}: {unsupported_type(src)}")
    elif is_piped(src):
        raise InputError(f"{pipe_name(src)} is read by `vidrestore {src} OUTPUT` alone, which holds the video piped in beside "
                         "the output while it runs; a batch reads files: write it to a file first")
    elif not src.exists():
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", str(src)):  # Path() folds the "//" of a URL
            raise InputError("the input is a URL: vidrestore reads local files; download it first")
        raise InputError(f"input not found: {src}")
    elif src.is_dir():
        held = sequences_in(src)
        hint = (f"it holds the image sequence {held[0]} (give that, quoted)" if held
                else f"`vidrestore batch {shlex.quote(str(src))} --out FOLDER` restores every video and picture in it")
        raise InputError(f"input is a folder: {src}; {hint}")
    elif heif_primary_type(src) in (b"grid", b"iovl"):  # PyAV gives each tile as a stream of its own
        raise InputError(f"{src.name} is a HEIF picture made of tiles (as a phone's HEIC is), which is read here tile by tile: "
                         "convert it to JPEG or PNG first (heif-convert, or a photo app's export)")


def check_output_path(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse ``dst`` as the output of ``src`` before any work: the input itself, an output that
    exists (without ``overwrite``), a folder, a folder that does not exist or cannot be written."""
    if is_sequence(dst):
        _check_sequence_output(src, dst, overwrite)
    else:
        if dst.exists() and src.resolve() == dst.resolve():
            raise OutputError(f"output is the input file ({dst}); vidrestore never overwrites its input: "
                              f"name another file, such as {dst.with_name(f'{dst.stem}_restored{dst.suffix}')}")
        if dst.exists() and not overwrite:
            raise OutputError(f"output exists: {dst} (use --overwrite to replace it)")
        if dst.is_dir():
            raise OutputError(f"output is a folder: {dst}")
        dst = linked_file(dst)
    if not dst.parent.is_dir():
        raise OutputError(f"output folder does not exist: {dst.parent}")
    if not os.access(dst.parent, os.W_OK):
        raise OutputError(f"output folder is not writable: {dst.parent}")


def _check_sequence_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse an output sequence that has pictures already (unless ``overwrite``) or whose pictures
    would replace the input's."""
    existing = files_of(dst) if dst.parent.is_dir() else []
    inputs = {p.resolve() for p in (files_of(src) if is_sequence(src) else [src])}
    if any(p.resolve() in inputs for p in existing) or (is_sequence(src) and dst.parent.resolve() == src.parent.resolve()
                                                         and dst.name == src.name):
        raise OutputError(f"output sequence {dst} would replace pictures of the input; vidrestore never overwrites its input")
    if existing and not overwrite:
        raise OutputError(f"output exists: {len(existing)} pictures of {dst}, from {existing[0].name} "
                          "(use --overwrite to replace the sequence)")
