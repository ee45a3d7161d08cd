"""A video piped into vidrestore (``ffmpeg -i tape.dv -f matroska - | vidrestore - out.mkv``), or
through a named pipe (a FIFO, or a shell's ``vidrestore <(ffmpeg -i tape.dv -f matroska -) out.mkv``).

Both passes read the video (pass 1 to find the faces, pass 2 to restore them), and a pipe can be
read once, so what comes in is held in a hidden folder beside the output while the run lasts, and
removed after it, whatever happens. Its SHA-256 is taken as it comes in: the same bytes piped again
tell a stopped run to continue from its finished segments, as a file's size and time do.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError, OutputError
from .sequence import hidden_folder

PIPED = "-"  # the input's name for standard input, as most tools take it
PIPED_NAME = "stdin"  # the held copy's name, which messages about the input show
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Spool:
    path: Path  # the copy of what was piped in, to read as the input
    digest: str  # SHA-256 of its bytes


def is_piped(source: str | Path) -> bool:
    """Whether ``source`` names standard input ("-") or a pipe (a FIFO: a shell's process
    substitution, /dev/fd/63, was refused as "not a file")."""
    if str(source) == PIPED:
        return True
    try:
        return stat.S_ISFIFO(os.stat(source).st_mode)
    except (OSError, ValueError):
        return False


def pipe_name(source: str | Path) -> str:
    """How messages name the pipe ``source``."""
    return "'-' (standard input)" if str(source) == PIPED else f"the pipe {source}"


def spool_folder(output: Path | None) -> Path:
    return hidden_folder(output, "stdin")


@contextlib.contextmanager
def spooled(stream: BinaryIO | None, output: Path | None, progress: Callable[[int], None] | None = None,
            name: str = pipe_name(PIPED)) -> Iterator[Spool]:
    """Hold all of ``stream`` (None: standard input is closed), the input ``name`` names, in
    :func:`spool_folder` of ``output`` for one run, telling ``progress`` the MiB read so far;
    removed afterwards whatever happens."""
    if stream is None or stream.isatty():
        raise InputError(f"the input is {name}, but {'it is closed' if stream is None else 'nothing is piped in'}: "
                         "pipe a video in (ffmpeg -i in.avi -f matroska - | vidrestore - out.mkv) or name a file")
    folder = spool_folder(output)
    shutil.rmtree(folder, ignore_errors=True)  # a killed run's
    try:
        folder.mkdir()
    except OSError as exc:
        raise _cannot_hold(folder, exc, 0) from exc
    try:
        yield _held(stream, folder / PIPED_NAME, progress, name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _held(stream: BinaryIO, path: Path, progress: Callable[[int], None] | None, name: str) -> Spool:
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "wb") as held:  # its closing writes too: a full disk may show only there
            for chunk in _chunks(stream):
                held.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(size >> 20)
    except OSError as exc:
        raise _cannot_hold(path.parent, exc, size) from exc
    if not size:
        raise InputError(f"the input is {name}, but nothing came through it")
    return Spool(path, digest.hexdigest())


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    read = 0
    while True:
        try:
            chunk = stream.read(_CHUNK)
        except OSError as exc:
            raise InputError(f"cannot read the video piped in, after {read >> 20} MiB ({exc.strerror or exc})") from exc
        if not chunk:
            return
        read += len(chunk)
        yield chunk


def _cannot_hold(folder: Path, exc: OSError, size: int) -> OutputError:
    return OutputError(f"cannot hold the video piped in beside the output, in {folder.parent} ({exc.strerror or exc}"
                       f"{f', after {size >> 20} MiB' if size else ''}): both passes read it, so it is kept there while "
                       "vidrestore runs; make room there, or write the video to a file and give that")
