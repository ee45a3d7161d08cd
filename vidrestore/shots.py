"""Shot boundaries from colour histograms: cuts, camera flashes, dissolves and fades.

Each frame is reduced to a normalised HSV histogram; the distance between two frames is
``1 - correlation``.

* A *cut* is a distance between consecutive frames above both an absolute floor and the recent
  mean plus ``sigma`` standard deviations, so steady handheld motion (many moderate distances)
  does not trigger, while a hard cut (one isolated spike) does.
* A *flash* (a press photographer's, a lightning strike) is such a spike whose picture comes back
  within ``flash_frames``: it is no cut, so the faces' tracks go on through it.
* A *dissolve or fade* (to black and back, or from one shot into the next) changes the picture as
  much as a cut does, but over many small steps, each under the cut threshold. Frames are grouped
  into steady stretches (every frame within ``steady_distance`` of the stretch's first); a stretch
  of ``min_shot_frames`` or more is steady. Two steady stretches at least ``min_distance`` apart
  with 2 to ``max_transition_frames`` unsteady frames between them were joined by a
  transition: the shot boundary is put in its middle, and each shot records how many of its frames
  belong to it, so a face's restoration can fade with the picture (this is the "twin comparison"
  idea of Zhang et al., 1993, with steadiness in place of a second threshold).

Flashes and transitions are known only some frames after they start, so the detector answers for
each frame ``lookahead`` frames later: the caller holds that many frames back.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ShotConfig:
    min_distance: float = 0.2  # absolute floor on 1 - histogram correlation (real cuts measured at 0.34-0.40, motion < 0.01)
    sigma: float = 6.0  # adaptive part: mean + sigma * std of the recent window
    window: int = 24
    min_shot_frames: int = 6
    flash_frames: int = 3  # a jump whose picture comes back within this many frames is a flash, not a cut
    steady_distance: float = 0.05  # talking heads drift < 0.025 in 12 frames; a dissolve's steps add up to a cut's 0.3
    max_transition_frames: int = 48  # the longest dissolve or fade found (2 s at 24 fps)

    @property
    def lookahead(self) -> int:
        """Frames after a frame that settle whether it starts a shot: a flash's, and the middle of the
        longest transition to the end of the steady stretch after it."""
        return self.flash_frames + self.min_shot_frames + (self.max_transition_frames + 1) // 2


@dataclass(frozen=True)
class Shot:
    start: int  # first frame index
    end: int  # one past the last frame index
    fade_in: int = 0  # its first frames that belong to a dissolve or fade from the shot before (0: a cut)
    fade_out: int = 0  # its last frames that belong to a dissolve or fade into the shot after


def frame_histogram(image: np.ndarray) -> np.ndarray:
    """Normalised 16x8 hue-saturation plus 8-bin value histogram of an RGB frame, sampled on a grid
    about 96 pixels wide (a strided view: a histogram needs no filtered resize, which cost 4x more)."""
    step = max(1, round(image.shape[1] / 96))
    hsv = cv2.cvtColor(np.ascontiguousarray(image[::step, ::step]), cv2.COLOR_RGB2HSV)
    hs = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel()
    v = cv2.calcHist([hsv], [2], None, [8], [0, 256]).ravel()
    hist = np.concatenate([hs, v]).astype(np.float32)
    return hist / max(hist.sum(), 1.0)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - cv2.compareHist(a, b, cv2.HISTCMP_CORREL))


class ShotDetector:
    """Online shot detector. Feed frames in order to :meth:`update`, then call :meth:`finish`; each
    returns, for the frames it settles, whether each starts a new shot. ``cuts`` lists those frames,
    ``shots(n)`` the shots."""

    def __init__(self, config: ShotConfig = ShotConfig()):
        self.config = config
        self.cuts: list[int] = []
        self.transitions: dict[int, tuple[int, int]] = {}  # cut -> (first, end) frames of the dissolve or fade around it
        self.flashes: list[range] = []
        self._recent: deque[float] = deque(maxlen=config.window)
        self._unsettled: deque[tuple[int, np.ndarray]] = deque()  # the latest frames, not yet known to be cuts or not
        self._previous: np.ndarray | None = None  # the histogram of the last settled frame
        self._flash_until = -1  # frames up to this one belong to a flash
        self._last_cut = 0
        self._count = 0
        self._answered = 0
        self._stretch: tuple[int, np.ndarray] | None = None  # first frame and histogram of the current stretch
        self._steady: tuple[int, np.ndarray] | None = None  # end and last histogram of the latest steady stretch
        self._cut_since_steady: int | None = None  # a cut after that stretch (perhaps a fade's steepest step)

    def update(self, image: np.ndarray) -> list[bool]:
        """Add the next frame; returns whether each frame now settled starts a shot (oldest first)."""
        self._unsettled.append((self._count, frame_histogram(image)))
        self._count += 1
        if len(self._unsettled) > self.config.flash_frames:
            self._settle(*self._unsettled.popleft())
        return self._answer(self._count - self.config.lookahead)

    def finish(self) -> list[bool]:
        """After the last frame: the answers for the frames still held back."""
        while self._unsettled:
            self._settle(*self._unsettled.popleft())
        return self._answer(self._count)

    def shots(self, total_frames: int) -> list[Shot]:
        bounds = [0, *self.cuts, total_frames]
        fades = {cut: (cut - first, end - cut) for cut, (first, end) in self.transitions.items()}
        return [Shot(a, b, fades.get(a, (0, 0))[1], fades.get(b, (0, 0))[0]) for a, b in itertools.pairwise(bounds) if b > a]

    def unsteady(self) -> set[int]:
        """The frames of flashes, dissolves and fades: none shows a face as it is."""
        return {i for span in [*self.flashes, *(range(*t) for t in self.transitions.values())] for i in span}

    def _answer(self, until: int) -> list[bool]:
        cuts = set(self.cuts)
        answers = [i in cuts for i in range(self._answered, until)]
        self._answered = max(self._answered, until)
        return answers

    def _settle(self, index: int, hist: np.ndarray) -> None:
        previous, self._previous = self._previous, hist
        cut = previous is not None and index > self._flash_until and self._is_cut(index, previous, hist)
        if cut:
            self.cuts.append(index)
            self._last_cut = index
            self._recent.clear()
            if self._cut_since_steady is not None:
                self._steady = None  # no transition spans two cuts
            self._cut_since_steady = index
        self._follow_stretch(index, hist, cut)

    def _is_cut(self, index: int, previous: np.ndarray, hist: np.ndarray) -> bool:
        cfg = self.config
        d = histogram_distance(previous, hist)
        recent = np.asarray(self._recent) if self._recent else np.zeros(1)
        threshold = max(cfg.min_distance, recent.mean() + cfg.sigma * recent.std())
        if d <= threshold or index - self._last_cut < cfg.min_shot_frames:
            self._recent.append(d)
            return False
        back = next((k for k, (_, later) in enumerate(self._unsettled, 1)
                     if histogram_distance(previous, later) < min(threshold, d) / 2), None)
        if back is not None:  # the picture came back: a flash, whose jumps say nothing of the shot's motion
            self._flash_until = index + back
            self.flashes.append(range(index, index + back))
            return False
        return True

    def _follow_stretch(self, index: int, hist: np.ndarray, cut: bool) -> None:
        cfg = self.config
        if cut or self._stretch is None or histogram_distance(self._stretch[1], hist) > cfg.steady_distance:
            self._stretch = (index, hist)
        start, first = self._stretch
        length = index - start + 1
        if length == cfg.min_shot_frames and self._steady is not None:
            end, last = self._steady
            # two frames at least: an instant change is the cut threshold's to judge
            if 2 <= start - end <= cfg.max_transition_frames and histogram_distance(last, first) >= cfg.min_distance:
                self._add_transition(end, start)
        if length >= cfg.min_shot_frames:
            self._steady = (index + 1, hist)
            self._cut_since_steady = None

    def _add_transition(self, first: int, end: int) -> None:
        """A dissolve or fade over frames ``first`` to ``end`` (excluded). Its steepest step may
        have been taken for a cut already (a fade's): the boundary stays there, and the shots
        learn how long the transition is."""
        cut = self._cut_since_steady
        if cut is None:
            cut = (first + end) // 2  # not yet answered for: the lookahead covers the longest transition
            self.cuts.append(cut)
            self._last_cut = cut
            self._recent.clear()
        if first < cut:  # else the picture was steady up to the cut: a cut into a moving shot
            self.transitions[cut] = (first, end)
