"""Stop signals: raised as Ctrl-C is, remembered when their exception is lost, and the CLI's exit
code and clean-up when that happens in the middle of a run or a batch."""

import os
import signal
import sqlite3
from pathlib import Path

import pytest

from vidrestore.batch.state import STATE_NAME
from vidrestore.batch.worker import RestoreWorker
from vidrestore.cli import main
from vidrestore.io import VideoWriter
from vidrestore.stopping import Stopped, raise_if_stopped, stops_cleanly_on_termination

FAST = ["--detector", "dlib", "--detect-every", "3", "--x264-preset", "ultrafast", "--quiet"]


def _lose_a_stop_signal(sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to this process where its exception is dropped, as Python drops one raised in a
    callback from C (PyAV's FFmpeg log callback) or in a finaliser."""
    try:
        os.kill(os.getpid(), sig)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a call into C, after which the handler has run
    except KeyboardInterrupt:
        pass


def test_an_ignored_stop_signal_stays_ignored_and_handlers_are_restored():
    """``nohup`` ignores SIGHUP so that a job outlives its terminal: the CLI must not undo that."""
    before = {sig: signal.signal(sig, disposition) for sig, disposition in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGHUP, signal.SIG_IGN))}
    try:
        with stops_cleanly_on_termination():
            assert callable(signal.getsignal(signal.SIGTERM)) and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_whose_exception_was_lost_is_raised_again_until_the_command_ends(sig):
    with stops_cleanly_on_termination():
        raise_if_stopped()  # nothing came yet
        _lose_a_stop_signal(sig)
        for _ in range(2):
            with pytest.raises(KeyboardInterrupt) as stop:
                raise_if_stopped()
        assert isinstance(stop.value, Stopped) == (sig != signal.SIGINT)
    raise_if_stopped()  # the next command starts afresh (the CLI also runs in-process)


def _rows(out: Path) -> dict[str, tuple]:
    with sqlite3.connect(out / STATE_NAME) as db:
        return {Path(r[0]).name: r[1:] for r in db.execute("SELECT output, status, attempts FROM items")}


def test_a_batch_whose_stop_was_lost_in_a_job_stops_and_leaves_the_item_pending(sample_clip, tmp_path, monkeypatch, capsys):
    """What a CI run once showed: SIGTERM came while an item was starting, its exception was lost,
    the item failed (the stop had broken it) and the batch ran on, to exit 1 with the item failed."""
    analyse, signalled = RestoreWorker.analyse, []

    def stopped_and_broken(self, item):
        if item.input.name == "b.mp4" and not signalled:  # once: a second SIGTERM would end pytest
            signalled.append(_lose_a_stop_signal())
            raise RuntimeError("what the lost stop broke")
        return analyse(self, item)

    monkeypatch.setattr(RestoreWorker, "analyse", stopped_and_broken)
    inputs = []
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        inputs.append(tmp_path / name)
        inputs[-1].write_bytes(sample_clip.read_bytes())
    out = tmp_path / "out"
    assert main(["batch", *map(str, inputs), "--out", str(out), "--model", "none", *FAST]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip().splitlines()[-1] == "vidrestore: stopped by SIGTERM; no partial output was left"
    assert _rows(out) == {"a.mp4": ("done", 1), "b.mp4": ("pending", 0), "c.mp4": ("pending", 0)}
    assert [p.name for p in out.iterdir() if not p.name.startswith((STATE_NAME, "."))] == ["a.mp4"]


def test_a_run_whose_stop_was_lost_stops_at_the_next_window_and_leaves_no_output(sample_clip, tiny_model, tmp_path, monkeypatch):
    write = VideoWriter.write

    def stopped_once(self, *args, **kwargs):
        if self.frames_written == 1 and not self.path.name.startswith("trial"):
            _lose_a_stop_signal()
        return write(self, *args, **kwargs)

    monkeypatch.setattr(VideoWriter, "write", stopped_once)
    out = tmp_path / "out"
    out.mkdir()
    code = main([str(sample_clip), str(out / "o.mp4"), "--model", str(tiny_model), "--batch-size", "4", *FAST])
    assert code == 128 + signal.SIGTERM
    assert list(out.iterdir()) == []
