"""Stop signals: SIGTERM and SIGHUP (a scheduler or ``docker stop`` ending the job, a closed
terminal) raised in the main thread as Ctrl-C is, so that the same clean-up runs, and every stop
signal remembered, so that work notices it again at its next checkpoint.

Raising from a signal handler is not enough on its own: Python runs the handler at the next
bytecode of the main thread, which may be inside a callback from C (PyAV's FFmpeg log callback) or a
finaliser. An exception raised there is printed and dropped, and the work went on with the signal
spent; a batch then marked the item it was on as failed and ran the rest. :func:`raise_if_stopped`
at the loops' checkpoints raises the stop again.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_requested: int | None = None  # the stop signal received while the command runs


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP; a ``KeyboardInterrupt`` so that every clean-up written for Ctrl-C runs:
    temp outputs removed, batch items put back to pending."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _interruption(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


def _on_stop_signal(signum: int, _frame: object) -> None:
    global _requested
    _requested = signum
    if signum != signal.SIGINT:  # a second SIGTERM while cleaning up ends the process at once
        signal.signal(signum, signal.SIG_DFL)
    raise _interruption(signum)


def raise_if_stopped() -> None:
    """Raise the interruption again if a stop signal came: its first exception may have been lost."""
    if _requested is not None:
        raise _interruption(_requested)


@contextlib.contextmanager
def stops_cleanly_on_termination() -> Iterator[None]:
    """Take SIGINT, SIGTERM and SIGHUP while the command runs. A signal the caller ignores
    (``nohup``) stays ignored; handlers are restored afterwards (the CLI also runs in-process)."""
    global _requested
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                             (signal.SIGHUP, signal.SIG_DFL)):
            if signal.getsignal(sig) == default:
                previous[sig] = signal.signal(sig, _on_stop_signal)
    _requested = None
    try:
        yield
    finally:
        _requested = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)
