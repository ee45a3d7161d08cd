"""Progress on stderr: rewritten in place on a terminal, a line of its own now and then in a log.

Under nohup, a scheduler or ``docker logs``, stderr is a file or a pipe, where a status rewritten
with carriage returns five times a second is one line that grows for the whole run (megabytes for
a film), and ``tail`` shows none of it until the work ends.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO

# seconds between the lines a log gets of a status that keeps changing
LOG_EVERY_S = 30.0


class StatusLine:
    def __init__(self) -> None:
        self.in_place = sys.stderr.isatty()
        self.logged: float | None = None  # when the log last got a line; None: not since the last end()
        self.open = False  # a line rewritten in place is not ended yet

    def show(self, text: str, now: float, settled: bool = False) -> None:
        """``text`` as the status at ``now`` (seconds of one clock); ``settled``: a status the log
        gets whenever it comes (a stage's end, a job's start)."""
        text = printable(text)
        if self.in_place:
            _write(f"\r{text}")
            self.open = True
        elif settled or self.logged is None or now - self.logged >= LOG_EVERY_S:
            _write(text.rstrip() + "\n")
            self.logged = now

    def end(self) -> None:
        """End the status (a stage is over): the next one starts a line of its own."""
        if self.open:
            _write("\n")
            self.open = False
        self.logged = None


_CONTROLS = {code: ascii(chr(code))[1:-1] for code in [*range(32), 127]}


def printable(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\n``): a file name holding a
    newline split an error or status line in two (a script reading the last line read half of it),
    and one holding an escape sequence coloured the terminal."""
    return text.translate(_CONTROLS)


def eta_text(seconds: float | None) -> str:
    """Time left as a reader takes it in: 42s, 12m05s, 3h25m ("?" where nothing tells; a film's
    ETA read 86400s)."""
    if seconds is None:
        return "?"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _write(text: str) -> None:
    """``text`` on stderr at once. A reader that has gone (``2>&1 | head``) mutes it for the rest
    of the run: the progress is not the work, which a broken pipe ended with a traceback."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except BrokenPipeError:
        muted(sys.stderr)


def muted(stream: TextIO) -> None:
    """Point ``stream``'s file at the null device, so that what it still holds, and what FFmpeg
    logs to it, goes nowhere instead of failing again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a stream with no file of its own (a test's)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
