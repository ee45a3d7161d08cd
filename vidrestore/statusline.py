"""Progress on stderr: rewritten in place on a terminal, a line of its own now and then in a log.

Under nohup, a scheduler or ``docker logs``, stderr is a file or a pipe, where a status rewritten
with carriage returns five times a second is one line that grows for the whole run (megabytes for
a film), and ``tail`` shows none of it until the work ends.
"""

from __future__ import annotations

import sys

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
        if self.in_place:
            sys.stderr.write(f"\r{text}")
            self.open = True
        elif settled or self.logged is None or now - self.logged >= LOG_EVERY_S:
            sys.stderr.write(text.rstrip() + "\n")
            self.logged = now
        else:
            return
        sys.stderr.flush()

    def end(self) -> None:
        """End the status (a stage is over): the next one starts a line of its own."""
        if self.open:
            sys.stderr.write("\n")
            self.open = False
        self.logged = None
