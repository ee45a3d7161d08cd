"""Finished segments of an output, recorded beside it, so that a stopped run can be continued.

A video restored in segments (``segment_frames``) encodes each segment into its own hidden file
beside the output. A segment that ends inside a shot also leaves the state its tracks carry into
the next one (``.<stem>.segNNNN.carry``). Once a segment's files are closed, the ledger
``.<stem>.resume.json`` records its frames, their sizes and the fingerprint of everything that
decides the output (the input file, the options, the model), and the precision the networks ran
at, which ``--dtype auto`` resolves per machine: a run continued on another kind of machine keeps
it (:func:`~vidrestore.options.pinned_precision`). A run that is stopped, killed or short of disk space leaves both
behind (:func:`keeps_segments`); the next run
with the same fingerprint restores only the segments the ledger does not vouch for. The ledger is
replaced whole through a temp file and a rename, so a kill at any moment leaves the old or the new
one, never half of one. The single-file command and the batch driver share it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError
from .io.sequence import SEGMENT_SUFFIX, hidden_stem
from .models.precision import DTYPES


@dataclass(frozen=True)
class FinishedSegment:
    frames: range  # the video's frames it holds
    written: int  # frames its file holds
    carry: Path | None = None  # the state its tracks hand on to the next segment, if any
    preview: Path | None = None  # the side-by-side (input | restored) written with it, if any

    def serves(self, frames: range, preview: Path | None) -> bool:
        """Whether this segment stands for ``frames`` of a run that writes its side-by-side into
        ``preview`` (None: no side-by-side), so that the run need not restore them again."""
        return self.frames == frames and (preview is None or self.preview == preview.absolute())


def ledger_path(output: Path) -> Path:
    return output.with_name(f".{hidden_stem(output)}.resume.json")


class SegmentLedger:
    """The finished segments of ``output`` under ``fingerprint``."""

    def __init__(self, output: Path, fingerprint: str):
        self.output = output
        self.fingerprint = fingerprint
        self.path = ledger_path(output)

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("fingerprint") != self.fingerprint:
            return {}  # written for another input, option or model: nothing in it applies
        return data

    def _entries(self) -> dict[str, dict]:
        return self._read().get("segments", {})

    def precision(self) -> str | None:
        """The precision ("fp32", "bf16", "fp16") the finished segments were restored at; None when
        none is finished."""
        recorded = self._read().get("precision")
        return recorded if recorded in DTYPES and self.finished() else None

    def finished(self) -> dict[Path, FinishedSegment]:
        """Segment files written under this fingerprint whose size (and that of their carried
        state) has not changed since; a side-by-side written with one counts while its size has
        not changed either."""
        found = {}
        for name, entry in self._entries().items():
            path = self.output.with_name(name)
            with contextlib.suppress(OSError, KeyError, TypeError):
                carry = entry.get("carry")
                carried = self.output.with_name(carry["name"]) if carry is not None else None
                if path.stat().st_size == entry["size"] and (carried is None or carried.stat().st_size == carry["size"]):
                    found[path] = FinishedSegment(range(entry["start"], entry["stop"]), entry["written"], carried,
                                                  _intact_preview(entry.get("preview")))
        return found

    def files(self) -> list[Path]:
        """The files of the finished segments, of the state they carry and of the side-by-side
        written with them: what a cleanup keeps."""
        return [f for path, done in self.finished().items() for f in (path, done.carry, done.preview) if f is not None]

    def record(self, path: Path, frames: range, written: int, precision: str, carry: Path | None = None,
               preview: Path | None = None) -> None:
        """The segment file ``path`` (beside the output) is closed and holds ``frames``, restored at
        ``precision`` (as ``--dtype`` names it); ``carry``: the file of the track state it hands on
        to the next segment, if any; ``preview``: the side-by-side part written with it, if any
        (beside the preview, which may be in another folder)."""
        entries = self._entries()
        entries[path.name] = {"start": frames.start, "stop": frames.stop, "written": written, "size": path.stat().st_size,
                              "carry": {"name": carry.name, "size": carry.stat().st_size} if carry else None,
                              "preview": {"path": str(preview.absolute()), "size": preview.stat().st_size} if preview else None}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"fingerprint": self.fingerprint, "output": self.output.name, "precision": precision,
                           "segments": entries}, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def discard(self) -> None:
        """Forget the finished segments, and remove the side-by-side parts recorded with them
        whatever the fingerprint: they lie beside a preview, where no cleanup of the output's
        folder looks, and a run with another --preview, or none, would leave them there."""
        for part in self._recorded_previews():
            part.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)

    def _recorded_previews(self) -> list[Path]:
        try:
            entries = json.loads(self.path.read_text())["segments"].values()
            recorded = [Path(entry["preview"]["path"]) for entry in entries if entry.get("preview")]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return []
        return [path for path in recorded if _PART_NAME.fullmatch(path.name)]  # never a file the ledger did not write


_PART_NAME = re.compile(r"\..+\.seg\d{4}\.part\..+")  # pipeline.segments.segment_path's names


def _intact_preview(recorded: object) -> Path | None:
    """The side-by-side part a ledger entry names, while it still has the size it was closed at."""
    with contextlib.suppress(OSError, KeyError, TypeError):
        path = Path(recorded["path"])
        if path.stat().st_size == recorded["size"]:
            return path
    return None


def keeps_segments(exc: BaseException) -> bool:
    """Whether a run that ended with ``exc`` keeps its finished segments for the next one: when it
    was stopped (Ctrl-C, SIGTERM) or could not write (a full disk, a lost mount), the segments are
    sound and the same command continues from them. Any other error starts the video over."""
    return isinstance(exc, (KeyboardInterrupt, OutputError))


def reused_note(reused: int, segments: int, precision: str) -> list[str]:
    """The report's word on segments taken from an earlier run (none: nothing to say), and on the
    precision they were restored at, which the rest were restored at too."""
    if not reused:
        return []
    note = f"{reused} of {segments} segments were restored by an earlier run that did not finish, and reused"
    return [f"{note} (at {precision}, which this run kept for the rest)"]


def remove_leftovers(output: Path, keep: Collection[Path] = ()) -> int:
    """Delete the temp and segment files an interrupted run left beside ``output`` (the names that
    :func:`~vidrestore.io.output.atomic_output`, :func:`~vidrestore.pipeline.segments.segment_path`,
    :func:`~vidrestore.pipeline.segments.carry_path`, :func:`~vidrestore.io.restarts.timed_on_folder`,
    :func:`~vidrestore.io.piped.spool_folder` and
    the ledger's own rewrite give),
    except the finished segments in ``keep``; returns how many. Outputs whose names start alike
    (``clip.mp4``, ``clip.v2.mp4``) keep their own files."""
    stem, suffix = re.escape(hidden_stem(output)), re.escape(output.suffix)
    pattern = re.compile(rf"\.{stem}\.(seg\d{{4}}|[a-z0-9_]{{8}})\.part{suffix}({re.escape(SEGMENT_SUFFIX)})?|\.{stem}\.seg\d{{4}}\.carry"
                         rf"|\.{stem}\.resume\.json[a-z0-9_]{{8}}\.tmp|\.{stem}\.(timed-on|stdin){suffix}")
    removed = 0
    if output.parent.is_dir():
        for f in output.parent.iterdir():
            if pattern.fullmatch(f.name) and f not in keep:
                if f.is_dir():  # the staging folder of an image sequence (see atomic_output), or of a copy timed on
                    shutil.rmtree(f, ignore_errors=True)
                else:
                    f.unlink(missing_ok=True)
                removed += 1
    return removed
