"""Where an output goes while it is written: a temporary file (or folder of pictures) beside the
target, renamed over it only when complete, so that nothing half-written is ever left under its name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError
from .sequence import hidden_stem, is_sequence, numbered, numbers_in, remove_others


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(target: str | Path, number_offset: int = 0) -> Iterator[Path]:
    """Yield a temp path beside ``target``; rename it onto ``target`` only if the block succeeds.

    Any exception, KeyboardInterrupt included, removes the temp file, so no partial output remains.
    An image sequence (``f_%06d.png``) is written into a hidden folder instead, and its pictures are
    renamed into place with ``number_offset`` added to their numbers (:func:`_placed_sequence`).
    """
    target = Path(target) if is_sequence(target) else linked_file(target)
    if not target.parent.is_dir():
        raise OutputError(f"output folder does not exist: {target.parent}")
    stem = hidden_stem(target)
    try:
        if is_sequence(target):
            tmp = tempfile.mkdtemp(dir=target.parent, prefix=f".{stem}.", suffix=f".part{target.suffix}")
        else:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{stem}.", suffix=f".part{target.suffix}")
            os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {target.parent} ({exc.strerror})") from exc
    tmp_path = Path(tmp)
    written = tmp_path / target.name if tmp_path.is_dir() else tmp_path
    try:
        try:
            yield written
        except OutputError as exc:
            named = _named_as(exc, written, target)
            if named is exc:
                raise
            raise named from exc
        if tmp_path.is_dir():
            _placed_sequence(written, target, number_offset)
        else:
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get a normal file's mode
            os.replace(tmp_path, target)
    finally:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        else:
            tmp_path.unlink(missing_ok=True)


def check_folder(folder: Path, option: str, what: str) -> None:
    """Refuse, before any work, a folder option (``option``, for ``what``) that names a file: the
    run failed where it first wrote there (a traceback once all was measured, each batch item failed)."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {folder}: that is a file; give a folder to write {what} into")


def linked_file(target: str | Path) -> Path:
    """The file that writing ``target`` replaces: the one a symbolic link names, followed to the end.
    Renamed onto the link, an output replaced the link with a file of its own and left the file it
    named (on another disk, say) as it was; a dangling link is written through, as cp does."""
    target = Path(target)
    return Path(os.path.realpath(target)) if target.is_symlink() else target


_holds = threading.local()  # the outputs this thread holds (see writing)


@contextlib.contextmanager
def writing(target: str | Path) -> Iterator[None]:
    """Hold ``target`` for this run, against another run writing it at the same time: the two
    wrote their segments under the same names beside it, and one joined the other's (a video of
    one input's frames at the other's size, and a traceback for the second). A hidden lock file
    beside it lives as long as the hold. A thread already holding it holds it again (the command
    holds the output while a video is piped in, before the run itself takes it)."""
    target = linked_file(target)
    lock = target.with_name(f".{hidden_stem(target)}.lock")
    held_here = vars(_holds).setdefault("locks", set())
    key = os.path.realpath(lock)
    if key in held_here:
        yield
        return
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as exc:
            raise OutputError(f"cannot write to output folder {target.parent} ({exc.strerror})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise OutputError(f"another vidrestore run is writing {target}; wait for it to end, or name another output") from exc
        except OSError:  # a file system that has no locks (some network mounts): the run goes on unguarded
            break
        try:
            held = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            held = False
        if held:
            break
        os.close(fd)  # the run before removed the file after this one opened it: lock the new one
    held_here.add(key)
    try:
        yield
    finally:
        held_here.discard(key)
        lock.unlink(missing_ok=True)  # while held, so that no run locks a file no longer named
        os.close(fd)


def _named_as(exc: OutputError, written: Path, target: Path) -> OutputError:
    """``exc`` naming ``target`` where it names the temporary file written for it (a full disk
    failed the join of an output's segments as "cannot write /out/.film.k2x9q.part.mkv", a file
    that is removed)."""
    message = str(exc).replace(str(written), str(target)).replace(written.name, target.name)
    return exc if message == str(exc) else OutputError(message)


def _placed_sequence(staged: Path, target: Path, offset: int) -> None:
    """Rename the pictures of the finished sequence ``staged`` into place as ``target``'s, each with
    ``offset`` added to its number; then remove ``target``'s other pictures, which an earlier run
    left (the caller refused an existing output unless told to overwrite it), so that the sequence
    on disk is this run's alone."""
    mode = 0o666 & ~_umask()
    placed = []
    for number in numbers_in(staged):
        picture = numbered(staged, number)
        os.chmod(picture, mode)
        os.replace(picture, numbered(target, number + offset))
        placed.append(number + offset)
    remove_others(target, set(placed))
