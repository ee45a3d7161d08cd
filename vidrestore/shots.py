"""Shot boundaries from colour histograms: cuts, camera flashes, dissolves and fades.

Each frame is reduced to a normalised HSV histogram; the distance between two frames is
``1 - correlation``.

* A *cut* is a distance between consecutive frames above both an absolute floor and the recent
  mean plus ``sigma`` standard deviations, so steady handheld motion (many moderate distances)
  does not trigger, while a hard cut (one isolated spike) does.
* A *flash* (a press photographer's, a lightning strike) is such a spike whose picture comes back
  within ``flash_frames``: it is no cut, so the faces' tracks go on through it. Nor is a spike
  before or after which the picture changes as much within those frames: near black, a fade's
  steps are a cut's size.
* A *dissolve or fade* (to black and back, or from one shot into the next) changes the picture as
  much as a cut does, but over many small steps, each under the cut threshold, and the picture
  after it is laid out otherwise (a camera's exposure or a lamp changes the colours alone).
  Frames are grouped into steady stretches (every frame within ``steady_distance`` of the
  stretch's first, and its picture, once the camera's shift between them is undone, correlating
  ``steady_layout`` or more with that frame's: a dissolve's colours settle long before its layout
  does, and a pan's frames are one picture moved); a stretch of ``min_shot_frames`` or more is
  steady. Two steady stretches at least ``min_distance`` apart, whose grey layouts correlate less
  than ``same_layout``, with 2 to ``max_transition_frames`` unsteady frames between them, each
  matching the one before it (moved) at least ``step_layout`` (a whip pan's frames jump), were
  joined by a transition: the shot boundary is put in its middle, and each shot records how many of its frames belong to it, so
  a face's restoration can fade with the picture (this is the "twin comparison" idea of Zhang et
  al., 1993, with steadiness in place of a second threshold).

Flashes and transitions are known only some frames after they start, so the detector answers for
each frame ``lookahead`` frames later: the caller holds that many frames back.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from .config import check_minimums


@dataclass(frozen=True)
class ShotConfig:
    min_distance: float = 0.2  # absolute floor on 1 - histogram correlation (real cuts measured at 0.34-0.40, motion < 0.01)
    sigma: float = 6.0  # adaptive part: mean + sigma * std of the recent window
    window: int = 24
    min_shot_frames: int = 6
    flash_frames: int = 3  # a jump whose picture comes back within this many frames is a flash, not a cut
    steady_distance: float = 0.05  # talking heads drift < 0.025 in 12 frames; a dissolve's steps add up to a cut's 0.3
    steady_layout: float = 0.8  # ...and their pictures (shots.same_picture) over 6 frames: > 0.95 on keep_real_1, 0.63 at worst on the quicker keep_real_2
    max_transition_frames: int = 48  # the longest dissolve or fade found (2 s at 24 fps)
    same_layout: float = 0.5  # frames whose grey layouts correlate more are one picture in another light (shots.same_layout)
    # each frame of a dissolve or fade matches the one before it (moved with the camera) at least
    # this well; a whip pan from one part of a scene to another jumps more than a quarter frame a frame
    step_layout: float = 0.5

    def __post_init__(self) -> None:
        check_minimums(self, min_distance=0, sigma=0, window=1, min_shot_frames=1, flash_frames=0, steady_distance=0,
                       max_transition_frames=0)

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
    monochrome: bool = False  # black-and-white or toned (faces.tone): its restored faces keep its tone


@dataclass(frozen=True)
class Look:
    """What the detector keeps of a frame: its colour histogram, its layout (a 16x16 grey
    thumbnail, zero mean and unit norm, so brightness and contrast do not change it; zero for a
    flat frame), and a finer grey thumbnail (:data:`MOTION_SIZE`, zero mean) to follow the camera by."""

    hist: np.ndarray
    layout: np.ndarray
    motion: np.ndarray


MOTION_SIZE = (64, 48)  # width, height: fine enough to follow a pan (same_layout_moved)


def frame_look(image: np.ndarray) -> Look:
    """The normalised 16x8 hue-saturation plus 8-bin value histogram of an RGB frame, and its
    layout, from a grid about 96 pixels wide (a strided view: a histogram needs no filtered
    resize, which cost 4x more)."""
    step = max(1, round(image.shape[1] / 96))
    sample = np.ascontiguousarray(image[::step, ::step])
    hsv = cv2.cvtColor(sample, cv2.COLOR_RGB2HSV)
    hs = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel()
    v = cv2.calcHist([hsv], [2], None, [8], [0, 256]).ravel()
    hist = np.concatenate([hs, v]).astype(np.float32)
    layout = cv2.resize(hsv[..., 2], (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    layout -= layout.mean()
    norm = float(np.linalg.norm(layout))
    flat = norm < 2 * np.sqrt(layout.size)  # under 2 levels RMS: black, or one colour
    motion = cv2.resize(hsv[..., 2], MOTION_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    return Look(hist / max(hist.sum(), 1.0), np.zeros_like(layout) if flat else layout / norm,
                np.zeros_like(motion) if flat else motion - motion.mean())


def histogram_distance(a: Look, b: Look) -> float:
    return float(1.0 - cv2.compareHist(a.hist, b.hist, cv2.HISTCMP_CORREL))


def same_layout(a: Look, b: Look) -> float:
    """Correlation of two frames' layouts: about 1 for the same picture in another light, 0.56 or
    more for a talking head 16 frames on, 0 or less between two talking heads of the test clips;
    1 between two flat frames (a hold on black), 0 between a flat frame and a picture."""
    if not a.layout.any() and not b.layout.any():
        return 1.0
    return float(a.layout @ b.layout)


def same_layout_moved(a: Look, b: Look) -> float:
    """Correlation of two frames' pictures once the camera's shift between them is undone: the
    best match of ``b``'s middle (half its width and height) anywhere in ``a``, so up to a quarter
    of the frame's shift. About 1 for a pan's frames 6 frames apart, low between unrelated
    pictures, and falling as a dissolve brings in another picture. Neither frame may be flat."""
    width, height = MOTION_SIZE
    middle = b.motion[height // 4 : height - height // 4, width // 4 : width - width // 4]
    return float(cv2.matchTemplate(a.motion, middle, cv2.TM_CCOEFF_NORMED).max())


def same_picture(a: Look, b: Look, threshold: float) -> bool:
    """Whether two frames show one picture: their layouts correlate ``threshold`` or more (a face's
    or a body's own motion keeps them so at 16x16), or, for a camera that moved, so do the
    pictures with its shift undone (:func:`same_layout_moved`, only then worked out)."""
    return same_layout(a, b) >= threshold or (a.layout.any() and b.layout.any() and same_layout_moved(a, b) >= threshold)


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
        self._unsettled: deque[tuple[int, Look]] = deque()  # the latest frames, not yet known to be cuts or not
        self._settled: deque[tuple[int, Look]] = deque(maxlen=config.flash_frames + 1)  # the latest settled frames
        self._flash_until = -1  # frames up to this one belong to a flash
        self._last_cut = 0
        self._count = 0
        self._answered = 0
        self._stretch: tuple[int, Look] | None = None  # the first frame of the current stretch
        self._steady: tuple[int, Look] | None = None  # the end and the last frame of this shot's latest steady stretch
        self._previous: Look | None = None  # the frame before this one
        self._jumps: deque[int] = deque(maxlen=config.max_transition_frames + config.min_shot_frames)  # frames unlike the one before

    def update(self, image: np.ndarray) -> list[bool]:
        """Add the next frame; returns whether each frame now settled starts a shot (oldest first)."""
        self._unsettled.append((self._count, frame_look(image)))
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
        due = set(self.cuts[bisect.bisect_left(self.cuts, self._answered):])  # cuts come in order: a film has thousands
        answers = [i in due for i in range(self._answered, until)]
        self._answered = max(self._answered, until)
        return answers

    def _settle(self, index: int, look: Look) -> None:
        cut = bool(self._settled) and index > self._flash_until and self._is_cut(index, look)
        self._settled.append((index, look))
        if cut:
            self.cuts.append(index)
            self._last_cut = index
            self._recent.clear()
            self._steady = None  # no transition spans a cut
        self._follow_stretch(index, look, cut)

    def _is_cut(self, index: int, look: Look) -> bool:
        cfg = self.config
        *earlier, (_, previous) = self._settled
        flash = self.flashes[-1] if self.flashes else range(0)
        earlier = [frame for i, frame in earlier if i not in flash]
        d = histogram_distance(previous, look)
        recent = np.asarray(self._recent) if self._recent else np.zeros(1)
        threshold = max(cfg.min_distance, recent.mean() + cfg.sigma * recent.std())
        if d <= threshold:
            self._recent.append(d)
            return False
        # a jump is no motion: it stays out of the recent distances, or a flash would raise the
        # threshold over the next cut
        later = [frame for _, frame in self._unsettled]
        back = next((k for k, frame in enumerate(later, 1) if histogram_distance(previous, frame) < min(threshold, d) / 2), None)
        if back is not None:  # the picture came back: a flash
            self._flash_until = index + back
            self.flashes.append(range(index, index + back))
            return False
        if any(histogram_distance(look, frame) >= d / 2 for frame in later) or \
                any(histogram_distance(frame, previous) >= d / 2 for frame in earlier):
            return False  # the picture was or goes on changing: a step of a fade or dissolve, which is found whole
        if index - self._last_cut < cfg.min_shot_frames:
            self._recent.append(d)  # too soon after a cut to be one: counted as the shot's motion
            return False
        return True

    def _follow_stretch(self, index: int, look: Look, cut: bool) -> None:
        cfg = self.config
        if self._previous is not None and self._previous.layout.any() and look.layout.any() \
                and not same_picture(self._previous, look, cfg.step_layout):
            self._jumps.append(index)  # (a frame next to a flat one, into or out of black, is no jump)
        self._previous = look
        if cut or self._stretch is None or histogram_distance(self._stretch[1], look) > cfg.steady_distance \
                or not same_picture(self._stretch[1], look, cfg.steady_layout):
            self._stretch = (index, look)
        start, first = self._stretch
        length = index - start + 1
        if length == cfg.min_shot_frames and self._steady is not None:
            end, last = self._steady
            # two frames at least: an instant change is the cut threshold's to judge; a picture
            # that changed colour but kept its layout was lit anew (a camera's exposure, a lamp);
            # a picture reached by jumps was panned to, not dissolved into
            if 2 <= start - end <= cfg.max_transition_frames and histogram_distance(last, first) >= cfg.min_distance \
                    and same_layout(last, first) < cfg.same_layout and not any(end <= j <= start for j in self._jumps):
                self._add_transition(end, start)
        if length >= cfg.min_shot_frames:
            self._steady = (index + 1, look)

    def _add_transition(self, first: int, end: int) -> None:
        """A dissolve or fade over frames ``first`` to ``end`` (excluded)."""
        cut = (first + end) // 2  # not yet answered for: the lookahead covers the longest transition
        self.cuts.append(cut)
        self.transitions[cut] = (first, end)
        self._last_cut = cut
        self._recent.clear()
