"""A sampling profiler of every Python thread, for the benchmarks.

cProfile sees only the thread that starts it, and the pipeline's work is spread over several
(the decoder's prefetch, the detector, the encoder): this one looks at every thread's stack every
``interval`` seconds (``sys._current_frames``) and counts, per thread name, the functions on it
(inclusive: anywhere on the stack; self: at the top). Time spent in C code is charged to the
Python function that called it, which is what is wanted here (x264, swscale and torch kernels
show up as the PyAV or torch call that waits for them).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from types import FrameType
from typing import Self


def _where(frame: FrameType) -> str:
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"


class StackSampler:
    """``with StackSampler() as s: work()``, then ``print(s.report(20))``."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.samples: Counter[str] = Counter()
        self.inclusive: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.top: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="stack-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        names = {}
        while not self._stop.wait(self.interval):
            names.update((t.ident, t.name) for t in threading.enumerate())
            for ident, frame in sys._current_frames().items():
                name = names.get(ident, str(ident))
                if name == self._thread.name:
                    continue
                self.samples[name] += 1
                self.top[name][_where(frame)] += 1
                seen = set()
                while frame is not None:
                    seen.add(_where(frame))
                    frame = frame.f_back
                self.inclusive[name].update(seen)

    def report(self, most: int = 20) -> str:
        """Per thread: its sample count (seconds at ``interval``), then its ``most`` heaviest functions,
        inclusive and self, as shares of that thread's samples."""
        lines = []
        for name, n in self.samples.most_common():
            lines.append(f"thread {name}: {n} samples ({n * self.interval:.2f} s)")
            for title, counts in (("inclusive", self.inclusive[name]), ("self", self.top[name])):
                lines.append(f"  {title}:")
                lines += [f"    {100 * c / n:5.1f}%  {where}" for where, c in counts.most_common(most)]
        return "\n".join(lines)


def sampled(job: Callable[[], object], interval: float = 0.002) -> tuple[float, StackSampler]:
    """Run ``job()`` under a :class:`StackSampler`; its wall seconds and the sampler."""
    with StackSampler(interval) as sampler:
        start = time.perf_counter()
        job()
        return time.perf_counter() - start, sampler
