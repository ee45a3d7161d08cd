"""The pulldown cadence of telecined film: which field-matched frames repeat a film frame, and
the film's own timing once they are left out (``--decimate``).

3:2 pulldown spreads 4 film frames over 5 video frames. Field matching (FFmpeg's fieldmatch)
puts every film frame back together, so one frame in each 5 shows the film frame before it
again. As FFmpeg's decimate filter does, each cycle of 5 frames (counted from the first frame of
the video) drops the one that changed least from the frame before it, and the 4 left are timed
evenly over the cycle's time: 24000/1001 fps from 30000/1001, with every cycle starting when
it did in the input, so sound stays in step. A last, shorter cycle keeps all its frames and times.

A hybrid transfer mixes film with stretches shot on video at the video rate (titles, effects),
whose every frame is a moment of its own. With ``--hybrid``, much like FFmpeg's decimate in its
mixed mode, a cycle in which no frame repeats the one before it keeps all 5 frames at their own
times, and the output's frame rate varies.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import av
import cv2
import numpy as np

CYCLE = 5  # video frames per cycle of 3:2 pulldown, one of them a repeat
FILM_RATE = Fraction(CYCLE - 1, CYCLE)  # the film's frame rate, as a share of the video's
TICKS = CYCLE - 1  # film frames are timed in ticks this many times finer than the video's, so each is a whole number
THUMBNAIL = (64, 48)  # width, height of the grey pictures frames are compared at
# A cycle repeats a frame when its least change is too small to see (STILL: mean grey levels of
# 255 on the thumbnails), or under DISTINCT times the median change of its other frames at the
# same place as in a neighbouring cycle (video_cycles). bench/hybrid.py, on the two KEEP clips as
# 80 frames of film then 100 of video, through x264: at CRF 18 and 23 every film cycle was found,
# and 75 of 80 video cycles; the video frames lost changed by 0.42 levels at most, less than the
# repeats did (up to 0.54). By the ratio alone, 65 of 80, and the frames lost changed up to 1.76.
STILL = 0.5
DISTINCT = 0.5


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small grey float picture of an RGB frame, to measure how much a frame changed."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, THUMBNAIL, interpolation=cv2.INTER_AREA).astype(np.float32)


def change(previous: np.ndarray | None, current: np.ndarray) -> float:
    """Mean absolute difference of two :func:`thumbnail` pictures (inf for the first frame)."""
    return float("inf") if previous is None else float(np.abs(current - previous).mean())


def repeated_frames(changes: Sequence[float], cycle: int = CYCLE) -> frozenset[int]:
    """The frame of each full cycle that changed least from the one before it (``changes[i]``:
    frame i against frame i - 1)."""
    full = len(changes) // cycle * cycle
    return frozenset(start + int(np.argmin(changes[start : start + cycle])) for start in range(0, full, cycle))


def video_cycles(changes: Sequence[float], cycle: int = CYCLE) -> frozenset[int]:
    """The first frames of the full cycles in which no frame repeats the one before it: video shot
    at the video rate, in a hybrid transfer. A cycle repeats a frame when its least change is too
    small to see (:data:`STILL`), or stands out (under :data:`DISTINCT` times the median of its
    others) at the same place in the cycle as in the cycle before or after it: pulldown repeats
    a frame at a steady place, while the frame of video that happens to change least falls anywhere."""
    starts = range(0, len(changes) // cycle * cycle, cycle)
    still, standing_out = set(), {}  # cycle start -> where in it its least change stands out
    for start in starts:
        part = list(changes[start : start + cycle])
        place = int(np.argmin(part))
        least, usual = part.pop(place), float(np.median(part))
        if least <= STILL:
            still.add(start)
        if usual > STILL and least < DISTINCT * usual:  # in a still cycle, the least change falls anywhere
            standing_out[start] = place
    steady = {start for start, place in standing_out.items()
              if place in (standing_out.get(start - cycle), standing_out.get(start + cycle))}
    return frozenset(starts) - still - steady


def longest_run(starts: frozenset[int], cycle: int = CYCLE) -> tuple[int, int]:
    """The longest run of consecutive cycles among those starting at ``starts``: (how many, its
    first frame); (0, 0) for none."""
    best, first = (0, 0), None
    for start in sorted(starts):
        first = first if first is not None and start - cycle in starts else start
        best = max(best, ((start - first) // cycle + 1, first), key=lambda run: run[0])
    return best


def in_film_cycles(repeats: frozenset[int], video: frozenset[int], cycle: int = CYCLE) -> frozenset[int]:
    """The ``repeats`` that lie outside the ``video`` cycles (:func:`video_cycles`)."""
    return frozenset(i for i in repeats if i - i % cycle not in video)


def frame_step(pts: Sequence[int | None]) -> int | None:
    """The ticks from each frame to the next, where every frame is that far from the one before it
    (within a tick of rounding); None otherwise. A container's average rate is no guide: an .mp4's
    counts the last frame's duration and the audio's, and read 29.77 fps for 29.97 fps film."""
    if len(pts) < 2 or any(p is None for p in pts):
        return None
    steps = np.diff(np.asarray(pts, dtype=np.int64))
    step = int(np.median(steps))
    return step if step > 0 and bool(np.all(np.abs(steps - step) <= 1)) else None


def film_timing(pts: Sequence[int], repeats: frozenset[int], frame_ticks: int, cycle: int = CYCLE) -> list[int | None]:
    """Each frame's presentation time in ticks ``cycle - 1`` times finer than the input's once
    ``repeats`` are left out (None for those): the ``cycle - 1`` frames a full cycle keeps are
    ``cycle / (cycle - 1)`` frames apart from the cycle's first time. Frames of a cycle without a
    repeat keep their times."""
    kept = cycle - 1
    timing: list[int | None] = []
    for start in range(0, len(pts), cycle):
        frames = range(start, min(start + cycle, len(pts)))
        if not any(i in repeats for i in frames):
            timing += [kept * pts[i] for i in frames]
            continue
        order = iter(range(kept))
        timing += [None if i in repeats else kept * pts[start] + next(order) * cycle * frame_ticks for i in frames]
    return timing


def pulled_down(film: Sequence[np.ndarray], top_first: bool = True) -> list[np.ndarray]:
    """24 fps ``film`` (RGB uint8) in 3:2 pulldown by FFmpeg's telecine filter: 5 frames for every
    4, two of each 5 woven from two film frames. What decimation undoes, made for the tests and
    bench/hybrid.py."""
    h, w = film[0].shape[:2]
    graph = av.filter.Graph()
    source = graph.add("buffer", f"video_size={w}x{h}:pix_fmt=rgb24:time_base=1/24:frame_rate=24:pixel_aspect=1/1")
    telecine = graph.add("telecine", f"first_field={'top' if top_first else 'bottom'}:pattern=23")
    sink = graph.add("buffersink")
    source.link_to(telecine)
    telecine.link_to(sink)
    graph.configure()
    woven = []
    for i, image in enumerate([*film, None]):
        frame = None if image is None else av.VideoFrame.from_ndarray(image, format="rgb24")
        if frame is not None:
            frame.pts, frame.time_base = i, Fraction(1, 24)
        graph.vpush(frame)
        while True:
            try:
                woven.append(graph.vpull().to_ndarray(format="rgb24"))
            except (av.error.BlockingIOError, av.error.EOFError):
                break
    return woven
