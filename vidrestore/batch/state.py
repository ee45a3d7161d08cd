"""The job state file: one SQLite row per item, written only by the batch driver.

Every change is one short transaction, so a kill at any moment leaves the file consistent: an item
is ``done`` only after its output was renamed into place, and an item found ``running`` by the next
run was interrupted and is run again. The finished segments of a long item (``--segment-frames``)
are recorded beside its output, as the single-file command records them (:mod:`vidrestore.resume`),
so the run after an interruption restores only the segments that were not finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from .. import jsonio
from ..errors import OutputError, UsageError
from ..io.sequence import shown

STATE_NAME = "vidrestore-batch.sqlite"
LOCK_NAME = ".vidrestore-batch.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    output TEXT PRIMARY KEY,
    input TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    model TEXT,
    status TEXT NOT NULL,            -- pending | running | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    frames INTEGER, faces INTEGER, tracks INTEGER,
    seconds REAL,
    started_at REAL, finished_at REAL,
    report TEXT
);
"""


@dataclass
class ItemRow:
    output: str
    input: str
    fingerprint: str
    model: str | None
    status: str
    attempts: int
    error: str | None
    frames: int | None
    faces: int | None
    tracks: int | None
    seconds: float | None
    started_at: float | None
    finished_at: float | None
    report: str | None


class JobState:
    """Open (or create) the state of the batch writing into ``out_dir``; holds its lock until closed."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / STATE_NAME
        try:
            self._lock = open(out_dir / LOCK_NAME, "w")  # noqa: SIM115 - held open for the life of the state
        except OSError as exc:
            raise OutputError(f"cannot write into the output folder {out_dir} ({exc.strerror})") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock.close()
            raise UsageError(f"another vidrestore batch is writing into {out_dir}") from exc
        except OSError:  # a file system that has no locks (some network mounts): the batch goes on unguarded
            pass
        try:
            with self._kept():
                self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
                self.db.executescript(_SCHEMA)
        except OutputError:
            self._lock.close()
            raise

    def close(self) -> None:
        self.db.close()
        with contextlib.suppress(OSError):  # see __init__: a file system without locks
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, output: Path) -> ItemRow | None:
        cur = self.db.execute("SELECT * FROM items WHERE output = ?", (_stored(output),))
        row = cur.fetchone()
        return _row(row) if row else None

    def rows(self) -> list[ItemRow]:
        return [_row(r) for r in self.db.execute("SELECT * FROM items ORDER BY rowid")]

    def register(self, output: Path, input: Path, fingerprint: str, model: str) -> ItemRow:
        """Make sure the item has a row; a changed fingerprint makes it a new item (pending, no attempts)."""
        row = self.get(output)
        if row is None or row.fingerprint != fingerprint or row.input != str(input):
            with self._transaction():
                self.db.execute("INSERT OR REPLACE INTO items (output, input, fingerprint, model, status, attempts) "
                                "VALUES (?, ?, ?, ?, 'pending', 0)", (_stored(output), _stored(input), fingerprint, model))
        return self.get(output)

    def start(self, output: Path) -> None:
        with self._transaction():
            self.db.execute("UPDATE items SET status='running', attempts=attempts+1, error=NULL, started_at=? "
                            "WHERE output=?", (time.time(), _stored(output)))

    def finish(self, output: Path, report: dict) -> None:
        with self._transaction():
            self.db.execute(
                "UPDATE items SET status='done', error=NULL, frames=?, faces=?, tracks=?, seconds=?, finished_at=?, "
                "report=? WHERE output=?",
                (report["frames_out"], report["faces"], len(report["tracks"]), report["seconds"], time.time(),
                 jsonio.dumps(report), _stored(output)))

    def fail(self, output: Path, error: str, seconds: float) -> None:
        """The item failed; its next attempt starts over."""
        with self._transaction():
            self.db.execute("UPDATE items SET status='failed', error=?, seconds=?, finished_at=? WHERE output=?",
                            (shown(error), seconds, time.time(), _stored(output)))

    def release(self, output: Path) -> None:
        """An interrupted item goes back to pending; its attempt is not counted against it."""
        with self._transaction():
            self.db.execute("UPDATE items SET status='pending', attempts=MAX(0, attempts-1) WHERE output=? AND status='running'",
                            (_stored(output),))

    @contextlib.contextmanager
    def _kept(self):
        """SQLite's failures (a full disk, a folder made read-only) as one line a user can act on:
        they went up as sqlite3's OperationalError with a traceback."""
        try:
            yield
        except sqlite3.Error as exc:
            raise OutputError(f"cannot keep the batch's state in {self.path} ({exc}); finished items are kept: "
                              "free some space there and run the same command again") from exc

    @contextlib.contextmanager
    def _transaction(self):
        # BEGIN and COMMIT inside the try: a stop signal lands between any two statements, and a
        # transaction it left open made the clean-up's own (items back to pending) fail
        with self._kept():
            try:
                self.db.execute("BEGIN IMMEDIATE")
                yield
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise


def recorded_outputs(out_dir: Path) -> dict[Path, Path]:
    """The output each input was given by the earlier runs of the batch writing into ``out_dir``, by
    the input's resolved path; none where there is no state, or none that can be read (opening it
    says why)."""
    path = out_dir / STATE_NAME
    if not path.is_file():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            rows = db.execute("SELECT input, output FROM items").fetchall()
    except sqlite3.Error:
        return {}
    return {Path(os.fsdecode(input)).resolve(): Path(os.fsdecode(output)) for input, output in rows}


def _stored(path: Path) -> str | bytes:
    """``path`` as the state keeps it: as text, or as its bytes where its name is not UTF-8 (Latin-1,
    from an old archive), which SQLite's text refused ("surrogates not allowed")."""
    text = str(path)
    try:
        text.encode()
    except UnicodeEncodeError:
        return os.fsencode(path)
    return text


def _row(values: tuple) -> ItemRow:
    output, input, *rest = values
    return ItemRow(os.fsdecode(output), os.fsdecode(input), *rest)
