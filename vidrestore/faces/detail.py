"""How much of a face's detail finer than the model's crop is the face's, measured per track.

A face larger than the crop keeps a share of the frame's own finer detail (``keep_detail``,
:func:`~vidrestore.faces.paste.paste_faces`). In clean footage that band is skin, lashes and hair,
and all of it should stay; in noisy or compressed footage it is mostly noise and artefacts, and a
small share is better. Which it is shows over time: a face's detail is there again in the next
frame, moved with the face, while noise and film grain are drawn anew in every frame. So the band
of two consecutive frames is cut out at the first frame's face position, the second is registered
to the first (ECC, sub-pixel), and the correlation of the two bands is the share.
If the band is a steady signal s plus fresh noise n in each frame, that correlation is
|s|^2 / (|s|^2 + |n|^2), which is also the share that minimises the squared error of the kept
band (the Wiener gain). A face that changes between the frames (speech, a turn, motion blur)
lowers it, so the share errs towards less detail.

What stays alike from frame to frame is not all detail: a compressed picture's blocks and the
ringing about its edges follow from the picture, and come back in the next frame too (a copy of
keep_real_2 with JPEG at quality 60 agreed 0.76, the clip as it is 0.85). Those show
in the frame itself, as steps across the 8-pixel grid of block codecs (JPEG, MPEG) stronger than
those between its other pixels (:func:`block_edges`); the more they show, the less of the share
is kept (:func:`block_cap`), down to the configured one where they are as strong as in
heavily compressed video. Blocks of a picture enlarged after it was compressed are off that grid
and go unseen, but the enlargement smooths them too: on such copies of keep_real_1 and 2 (JPEG at
60, enlarged 1.5 to 2.25 times) the measured shares (0.50-0.52, 0.81-0.87) restored them closer to
the original than the configured 0.25 did (bench/detail.py, docs/benchmarks.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache

import cv2
import numpy as np
import scipy.fft

from .align import face_matrices, shrinks_by, source_region
from .types import Detection

DETAIL_EVERY = 12  # frames between two measured pairs (frames i, i + 1 with i a multiple of it)
MIN_SHRINK = 1.25  # a face the crop shrinks less than this has next to nothing finer than the crop to keep
# a face that moved further between the two frames is not measured: its detail changes with the
# motion blur (on keep_real_2 the clean face's agreement fell to 0.01-0.26 where it moved 2-5 px)
MAX_MOVE = 2.0
_ECC_STOP = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
MIN_REGISTERED = 0.9  # the two faces, registered, must correlate this well at the crop's scale, or the face changed (a turn, a hand)
MAX_SIDE = 512  # the measured face is cut out at most this large (a 4K close-up's band is measured in part)
# steps across the block grid this many times those elsewhere: compression blocks show (the faces
# of keep_real_1/2 measured 1.02 and 1.13, with JPEG at quality 60 1.72 and 1.61, at 30 2.45 and
# 2.25: bench/detail.py --measure-only); from HEAVY_BLOCKS on, they are as strong as at quality 30
BLOCKY = 1.25
HEAVY_BLOCKS = 2.25


# the part of the crop cut out (fractions of its side): the inner face's ellipse, with a margin
# that holds the face's outline, which registration needs (cut out to the ellipse, keep_real_1's
# clean share fell from 0.86 to 0.71; the whole crop took 40% more time for the same shares)
INNER = (0.1, 0.1, 0.9, 1.0)


@lru_cache(maxsize=8)
def _inner_face(side: int) -> np.ndarray:
    """The ellipse that holds the face without hair or background, in the :data:`INNER` part of a
    crop of ``side`` px (only that part is cut out)."""
    x0, y0, x1, y1 = INNER
    yy, xx = np.mgrid[: round(side * (y1 - y0)), : round(side * (x1 - x0))]
    xx, yy = x0 + (xx + 0.5) / side, y0 + (yy + 0.5) / side
    return ((xx - 0.5) / 0.3) ** 2 + ((yy - 0.55) / 0.35) ** 2 < 1


def _band(image: np.ndarray, scale: float) -> np.ndarray:
    """What ``image`` (part of a face cut out ``scale`` times as large as the crop) has finer than
    the crop's pixels."""
    height, width = image.shape
    small = (max(1, round(width / scale)), max(1, round(height / scale)))
    coarse = cv2.resize(cv2.resize(image, small, interpolation=cv2.INTER_AREA), (width, height), interpolation=cv2.INTER_LINEAR)
    return image - coarse


def _moved_back(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image`` moved by minus ``shift`` (x, y) px by a phase ramp: exact to a fraction of a pixel,
    where a second interpolation would soften the very detail that is measured. (What wraps
    around lies outside the inner face.)"""
    fy, fx = scipy.fft.fftfreq(image.shape[0])[:, None], scipy.fft.rfftfreq(image.shape[1])[None]
    ramp = np.exp(2j * np.pi * (fx * shift[0] + fy * shift[1])).astype(np.complex64)
    return scipy.fft.irfft2(scipy.fft.rfft2(image) * ramp, s=image.shape).astype(np.float32)


def block_edges(luma: np.ndarray, box: np.ndarray) -> float | None:
    """How much larger, inside ``box`` (x1, y1, x2, y2) of the luma (H, W), the steps between
    pixels are across the 8-pixel grid of block codecs than elsewhere (rows and columns alike):
    about 1 in clean frames. None where the box holds under 4 blocks a side."""
    x0, y0, x1, y1 = _block_region(box, *luma.shape)
    if x1 - x0 < 32 or y1 - y0 < 32:
        return None
    region = luma[y0:y1, x0:x1]
    ratios = []
    for steps in (np.abs(np.diff(region, axis=1)), np.abs(np.diff(region, axis=0)).T):
        across = steps[:, 7::8]  # between pixels 7 and 8 of each block
        within = np.delete(steps, np.s_[7::8], axis=1)
        ratios.append(float(across.mean() / max(float(within.mean()), 1e-6)))
    return float(np.mean(ratios))


def _block_region(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """The part of a (height, width) frame whose blocks :func:`block_edges` weighs for a face's
    ``box``: the box, starting on the 8-pixel grid."""
    x0, y0 = (max(0, int(v)) // 8 * 8 for v in box[:2])
    return x0, y0, min(width, int(box[2])), min(height, int(box[3]))


def block_cap(edges: float, blocky_share: float) -> float:
    """The most of its share a face keeps whose frames show compression blocks as strong as
    ``edges`` (:func:`block_edges`): all of it up to :data:`BLOCKY`, then less and less, down to
    ``blocky_share`` from :data:`HEAVY_BLOCKS` on. Graded, so that a face just over the line keeps
    about what one just under it does (a hard cap put copies through JPEG at quality 80 and 60,
    which shares of 0.5 to 1 restored better than 0.25, with those at 30, where 0.25 did best)."""
    heavy = float(np.clip((edges - BLOCKY) / (HEAVY_BLOCKS - BLOCKY), 0.0, 1.0))
    return 1.0 - heavy * (1.0 - blocky_share)


def _inner_cut(landmarks: np.ndarray, face_size: int, pixel_aspect: tuple[float, float]) -> tuple[np.ndarray, int] | None:
    """The frame-to-cut-out matrix (2, 3) of the inner face at ``landmarks`` (5, 2) and the side of
    the crop it is the :data:`INNER` part of; None where a ``face_size`` crop would not shrink the
    face by :data:`MIN_SHRINK`."""
    matrix = face_matrices(landmarks[None], face_size, pixel_aspect)[0]
    shrink = shrinks_by(matrix)
    if shrink < MIN_SHRINK:
        return None
    side = min(MAX_SIDE, 2 * round(face_size * shrink / 2))
    return (matrix * (side / face_size) - np.float32([[0, 0, INNER[0] * side], [0, 0, INNER[1] * side]])).astype(np.float32), side


def _inner_region(landmarks: np.ndarray, face_size: int, pixel_aspect: tuple[float, float], height: int,
                  width: int) -> tuple[int, int, int, int] | None:
    """The part of a (height, width) frame that :func:`detail_agreement` cuts the inner face at
    ``landmarks`` out of, with the reach of its bicubic warp; None where it cuts out nothing."""
    cut = _inner_cut(landmarks, face_size, pixel_aspect)
    if cut is None:
        return None
    to_inner, side = cut
    rows, cols = _inner_face(side).shape
    corners = np.array([[0.0, 0.0], [cols, 0.0], [0.0, rows], [cols, rows]])
    return source_region(to_inner[None].astype(np.float64), corners, height, width, margin=3)


def detail_agreement(first: np.ndarray, second: np.ndarray, landmarks: np.ndarray, face_size: int,
                     pixel_aspect: tuple[float, float] = (1.0, 1.0)) -> float | None:
    """The correlation, over the inner face, of the detail finer than a ``face_size`` crop in two
    consecutive frames' luma (``first``, ``second``: (H, W) float32, full size), the face cut out of
    both at ``landmarks`` (5, 2), its position in ``first``. None where the crop would not shrink
    the face by :data:`MIN_SHRINK` (no finer detail to share out) or the frames do not register
    (the face moved by more than :data:`MAX_MOVE` px, or registered it still differs:
    :data:`MIN_REGISTERED`)."""
    cut = _inner_cut(landmarks, face_size, pixel_aspect)
    if cut is None:
        return None
    to_inner, side = cut
    inner = _inner_face(side)
    # both cut out by one warp, so the interpolation filters both alike whatever the face's motion
    a, b = (cv2.warpAffine(image, to_inner, inner.shape[::-1], flags=cv2.INTER_CUBIC) for image in (first, second))
    inner_u8 = inner.astype(np.uint8)
    # sub-pixel: a move of half a pixel left unregistered loses half of detail a pixel or two across
    # (OpenCV's phaseCorrelate put one at 0.82 px; ECC, an iterative fit, at 0.50)
    try:
        _, fitted = cv2.findTransformECC(a, b, np.eye(2, 3, dtype=np.float32), cv2.MOTION_TRANSLATION, _ECC_STOP, inner_u8, 5)
    except cv2.error:  # it did not converge
        return None
    shift = fitted[:, 2]
    if np.abs(shift).max() > MAX_MOVE:
        return None
    b = _moved_back(b, shift)
    u, v = _band(a, side / face_size), _band(b, side / face_size)
    if np.corrcoef((a - u)[inner], (b - v)[inner])[0, 1] < MIN_REGISTERED:  # what the crop sees of each
        return None
    u, v = u[inner], v[inner]
    u, v = u - u.mean(), v - v.mean()
    spread = float(np.sqrt((u * u).sum() * (v * v).sum()))
    return float((u * v).sum() / spread) if spread > 0 else None


class DetailMeter:
    """Pass 1's measure of each track's share of detail: :meth:`wants` says which frames to give
    (full size, as luma) to :meth:`offer`; :meth:`share` gives tracks' share: the median of their
    pairs' agreements, in [0, 1], and no more than :func:`block_cap` of the median of their faces'
    :func:`block_edges` allows (``blocky_share`` where the blocks are strong)."""

    def __init__(self, face_size: int, pixel_aspect: tuple[float, float] = (1.0, 1.0), blocky_share: float = 0.25,
                 every: int = DETAIL_EVERY):
        self.face_size, self.pixel_aspect, self.blocky_share, self.every = face_size, pixel_aspect, blocky_share, every
        self._first: tuple[int, np.ndarray, list[tuple[int, Detection]]] | None = None  # a pair's first frame, its faces
        self._agreements: defaultdict[int, list[float]] = defaultdict(list)
        self._blocks: defaultdict[int, list[float]] = defaultdict(list)

    def wants(self, index: int) -> bool:
        return index % self.every in (0, 1)

    def offer(self, index: int, luma: np.ndarray, faces: list[tuple[int, Detection]], cut: bool = False) -> None:
        """Frame ``index``'s full-size luma (H, W) float32 and the (track id, where it is) of each
        face in it; ``cut``: the frame starts a shot (it pairs with no frame before it)."""
        first, self._first = self._first, None
        if first is not None and first[0] == index - 1 and not cut:
            for track_id, face in first[2]:
                agreement = detail_agreement(first[1], luma, face.landmarks, self.face_size, self.pixel_aspect)
                if agreement is not None:
                    self._agreements[track_id].append(agreement)
        if index % self.every == 0 and faces:
            self._first = (index, luma, faces)
            for track_id, face in faces:
                if (blocks := block_edges(luma, face.box)) is not None:
                    self._blocks[track_id].append(blocks)

    def regions(self, index: int, faces: list[tuple[int, Detection]], height: int, width: int) -> list[tuple[int, int, int, int]]:
        """The parts of frame ``index`` (height, width), with ``faces`` in it, that :meth:`offer`
        reads: the inner faces of the pair's first frame, cut out of both frames, and where it
        starts a pair, its own faces' and their boxes' blocks."""
        faces_cut = [face for _, face in self._first[2]] if self._first is not None and self._first[0] == index - 1 else []
        starts = index % self.every == 0
        if starts:
            faces_cut += [face for _, face in faces]
        cut_out = (_inner_region(face.landmarks, self.face_size, self.pixel_aspect, height, width) for face in faces_cut)
        return [box for box in cut_out if box is not None] + ([_block_region(face.box, height, width) for _, face in faces] if starts else [])

    def share(self, track_ids: Iterable[int]) -> float | None:
        """The share of the tracks ``track_ids`` together (one person's: the same face gets the same
        share in every shot); None where none of them was measured."""
        track_ids = list(track_ids)
        agreements = [a for i in track_ids for a in self._agreements.get(i, [])]
        if not agreements:
            return None
        blocks = [b for i in track_ids for b in self._blocks.get(i, [])]
        cap = block_cap(float(np.median(blocks)), self.blocky_share) if blocks else 1.0
        return float(np.clip(np.median(agreements), 0.0, cap))
