"""Per-track temporal and identity metrics of a restored video against its input, streamed.

The two videos are read in lockstep; each track's crops (the same landmarks cut both) go to a
:class:`TrackMeter`, which measures them a chunk at a time and keeps only the last crop between
chunks, so memory does not grow with the length of the video. Flow is estimated on the input crops
and used for both sides, so the two are compared on exactly the same motion. Used by
`vidrestore eval video` and by the pipeline's ``--qa``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..cadence import in_film_cycles
from ..diffusion.flow import flows_to_previous
from ..errors import InputError
from ..faces.align import align_faces
from ..faces.identity import DlibIdentityEncoder
from ..faces.types import Track
from ..io import VideoReader
from ..io.excerpt import Excerpt
from ..io.linear import Light
from ..io.probe import coded_frames, probe
from ..io.reader import FieldFilter, doubles_rate
from .metrics import high_frequency, identity_cosine, identity_stability, per_step_warping_error

SIDES = ("input", "restored")

# Alarm thresholds for --qa. Warping error is noisy from frame to frame but its track mean is
# stable, so a quarter above the input's is a real increase. dlib descriptors of one person's
# frames sit at cosine 0.93-0.99 to their mean (MODEL_CARD.md), so a frame 0.05 further from
# the input's face than the input's own worst frame has changed who it looks like.
FLICKER_ALARM_RATIO = 1.25
IDENTITY_ALARM_DROP = 0.05


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def spread(count: int, length: int) -> np.ndarray:
    """``count`` frame offsets spread evenly over ``length`` frames (all of them if fewer)."""
    return np.unique(np.linspace(0, length - 1, min(count, length)).round().astype(int)) if length else np.zeros(0, int)


@dataclass
class _Side:
    warping: list[float] = field(default_factory=list)  # per step i-1 -> i
    flicker: list[float] = field(default_factory=list)
    identity_crops: list[np.ndarray] = field(default_factory=list)
    sheet_crops: list[np.ndarray] = field(default_factory=list)


class TrackMeter:
    """Warping error, flicker and identity of one track's input and restored crops.

    ``add`` takes one frame's pair of aligned crops (S, S, 3) uint8; every ``chunk`` frames the
    buffered ones are measured (with the previous chunk's last frame, so no step is lost).
    ``length``: how many frames will be added, to spread the identity and contact-sheet samples."""

    def __init__(self, track_id: int, start: int, length: int, identity_samples: int = 32, sheet_samples: int = 8,
                 chunk: int = 32):
        self.track_id, self.start, self.length, self.chunk = track_id, start, length, chunk
        self.identity_at = set(spread(identity_samples, length).tolist())
        self.sheet_at = set(spread(sheet_samples, length).tolist())
        self.sides = {side: _Side() for side in SIDES}
        self.buffer: list[tuple[np.ndarray, np.ndarray]] = []
        self.carried: tuple[np.ndarray, np.ndarray] | None = None
        self.count = 0

    def add(self, input_crop: np.ndarray, restored_crop: np.ndarray) -> None:
        for side, crop in zip(SIDES, (input_crop, restored_crop)):
            if self.count in self.identity_at:
                self.sides[side].identity_crops.append(crop)
            if self.count in self.sheet_at:
                self.sides[side].sheet_crops.append(crop)
        self.buffer.append((input_crop, restored_crop))
        self.count += 1
        if len(self.buffer) >= self.chunk:
            self._measure()

    def _measure(self) -> None:
        pairs = ([self.carried] if self.carried is not None else []) + self.buffer
        self.carried, self.buffer = pairs[-1], []
        if len(pairs) < 2:
            return
        inputs = np.stack([a for a, _ in pairs])
        flows, valid = flows_to_previous(inputs)
        for side, crops in zip(SIDES, (inputs, np.stack([b for _, b in pairs]))):
            x = _tensor(crops)
            self.sides[side].warping += per_step_warping_error(x, flows, valid).tolist()
            self.sides[side].flicker += per_step_warping_error(high_frequency(x), flows, valid).tolist()

    def finish(self, encoder: DlibIdentityEncoder) -> dict:
        """The track's row: a summary per side, and per-frame series (frame numbers are the video's)."""
        self._measure()
        descriptors = {side: encoder.embed(np.stack(s.identity_crops)) if s.identity_crops else np.zeros((0, 128))
                       for side, s in self.sides.items()}
        input_mean = descriptors["input"].mean(0, keepdims=True)
        identity_frames = [self.start + i for i in sorted(self.identity_at)]
        row: dict = {"id": self.track_id, "start": self.start, "frames_evaluated": self.count}
        series = {}
        for side, s in self.sides.items():
            d = descriptors[side]
            to_input = identity_cosine(d, np.repeat(input_mean, len(d), 0)) if len(d) else np.zeros(0)
            own = identity_cosine(d, np.repeat(d.mean(0, keepdims=True), len(d), 0)) if len(d) else np.zeros(0)
            lowest = int(np.argmin(to_input)) if len(to_input) else None
            # None where a figure is undefined (one frame has no step to warp, no face no identity): not 0,
            # which reads as perfectly steady, and not NaN, which is not JSON
            row[side] = {"warping_error": _mean(s.warping), "flicker": _mean(s.flicker),
                         "identity_stability": identity_stability(d) if len(d) else None,
                         "identity_to_input": _mean(to_input),
                         "identity_to_input_min": float(to_input[lowest]) if lowest is not None else None,
                         "identity_to_input_min_frame": identity_frames[lowest] if lowest is not None else None}
            series[side] = {"warping_error": s.warping, "flicker": s.flicker, "identity_cosine": own.tolist(),
                            "identity_to_input": to_input.tolist(), "identity_frames": identity_frames}
        flickers = row["restored"]["flicker"], row["input"]["flicker"]
        row["flicker_ratio"] = flickers[0] / max(flickers[1], 1e-9) if None not in flickers else None
        row["per_frame"] = series
        return row

    def sheet(self) -> tuple[np.ndarray, np.ndarray]:
        """The contact-sheet samples: (K, S, S, 3) input crops and the restored ones."""
        return np.stack(self.sides["input"].sheet_crops), np.stack(self.sides["restored"].sheet_crops)


def _mean(values: list[float] | np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def measure_tracks(input_path: Path, restored_path: Path, tracks: list[Track], face_size: int, max_frames: int = 0,
                   deinterlace: FieldFilter | None = None, progress: Callable[[str, int, int, int], None] | None = None,
                   step: int = 1, left_out: frozenset[int] = frozenset(), light: Light | None = None,
                   excerpt: Excerpt | None = None, scale: tuple[float, float] = (1.0, 1.0)) -> list[TrackMeter]:
    """Read both videos in lockstep and feed every track's crops to its meter; returns the meters,
    not yet finished. ``max_frames``: measure at most this many frames of each track (0: all).
    ``deinterlace``: how the input's frames were made progressive when it was restored.
    ``progress`` hears ("qa", frames read, frames in all, faces measured). ``step``: restored
    frames for each input frame (2: a frame for each field, ``--double-rate``); ``left_out``:
    input frames the restored video does not have (repeated film frames, ``--decimate``). See
    :func:`output_cadence`. ``light``: what both videos' samples stand for, when not what the
    probe finds (``--light``). ``excerpt``: the stretch of the input that was restored (``--start``/``--end``).
    ``scale``: how much larger the restored frames are, in x and y (:func:`restored_scale`)."""
    lengths = {t.track_id: min(len(t), max_frames) if max_frames else len(t) for t in tracks}
    meters = {t.track_id: TrackMeter(t.track_id, t.start, lengths[t.track_id]) for t in tracks}
    last = max((t.start + lengths[t.track_id] for t in tracks), default=0)
    measured = 0
    written = last - sum(1 for i in left_out if i < last)
    with VideoReader(input_path, deinterlace=deinterlace, stop=last, light=light, excerpt=excerpt) as source, \
            VideoReader(restored_path, only=set(range(0, written * step, step)), light=light) as restored:
        # crops as the pipeline cut them, with square pixels: each video's own pixels made square
        sides = ((torch.ones(2), source.info.pixel_aspect), (torch.tensor(scale), restored.info.pixel_aspect))
        outputs = iter(restored)
        for before in source:
            after = None if before.index in left_out else next(outputs, None)
            if after is None:
                continue
            live = [t for t in tracks if t.covers(before.index) and meters[t.track_id].count < lengths[t.track_id]]
            if progress:
                progress("qa", before.index + 1, last, measured)
            if not live:
                continue
            measured += len(live)
            landmarks = torch.from_numpy(np.stack([t.landmarks_at(before.index) for t in live])).float()
            crops = [align_faces(torch.from_numpy(frame.image).permute(2, 0, 1).float() / 255, landmarks * stretch, face_size, aspect)[0]
                     for frame, (stretch, aspect) in zip((before, after), sides)]
            as_bytes = [(c.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().byte().numpy() for c in crops]
            for k, t in enumerate(live):
                meters[t.track_id].add(as_bytes[0][k], as_bytes[1][k])
    return list(meters.values())


def restored_scale(input_path: Path, restored_path: Path) -> tuple[float, float]:
    """How much larger the restored video's frames are than the input's, in x and y: another tool's
    restoration may be upscaled (CodeFormer's and GFPGAN's are 2x by default) or have square pixels
    where the input's are anamorphic, and the input's landmarks are scaled onto it (they cut the top
    left of a 2x video). A picture of another shape (cropped, padded) is refused: its faces are elsewhere."""
    source, restored = probe(input_path), probe(restored_path)
    (width, height), (restored_width, restored_height) = source.display_size, restored.display_size
    scale = (restored_width / width, restored_height / height)
    shown = [scale[axis] * restored.pixel_aspect[axis] / source.pixel_aspect[axis] for axis in (0, 1)]
    if abs(shown[0] / shown[1] - 1) > 0.01 + 2 / min(width, height):  # a pixel or two of rounding to even sizes
        raise InputError(f"{restored_path} shows a {restored_width}x{restored_height} picture of another shape than "
                         f"{input_path}'s {width}x{height}: eval video measures a restoration of the input's whole "
                         "picture, scaled or not, but not cropped or padded")
    return scale


def output_cadence(restored_path: Path, frames: int, deinterlace: FieldFilter | None, repeats: frozenset[int],
                   video_cycles: frozenset[int] = frozenset()) -> tuple[int, frozenset[int]]:
    """How a restored video's frames stand to the input's ``frames`` (``step`` and ``left_out`` of
    :func:`measure_tracks`), from how many it has: twice as many where interlaced input was written
    at the field rate (``--double-rate``, or another tool's bob deinterlacing), or fewer by the
    ``repeats`` of telecined film (``--decimate``, or another tool's decimation), or by those
    outside its ``video_cycles`` (``--decimate --hybrid``), else as many."""
    found = coded_frames(restored_path)
    ways = [((1, frozenset()), frames)]
    if doubles_rate(deinterlace):
        ways.append(((2, frozenset()), 2 * frames))
    hybrid = in_film_cycles(repeats, video_cycles)
    for left_out in (repeats, hybrid) if hybrid != repeats else (repeats,):
        if left_out:
            ways.append(((1, left_out), frames - len(left_out)))
    return min(ways, key=lambda way: abs(way[1] - found))[0]


def qa_alarms(rows: list[dict]) -> list[str]:
    """One line per track whose restoration flickers more than its input or drifts from its identity."""
    notes = []
    for row in rows:
        before, after = row["input"], row["restored"]
        # a figure is None where it is undefined (one frame has no step to warp): nothing to compare
        if after["warping_error"] is not None and after["warping_error"] > FLICKER_ALARM_RATIO * max(before["warping_error"], 1e-9):
            notes.append(f"qa: track {row['id']} flickers more than the input (warping error {after['warping_error']:.4f} "
                         f"against {before['warping_error']:.4f}); try --strength {row['id']}=0.5")
        if after["identity_to_input_min"] is not None and \
                after["identity_to_input_min"] < before["identity_to_input_min"] - IDENTITY_ALARM_DROP:
            notes.append(f"qa: track {row['id']} drifts from the person's identity at frame {after['identity_to_input_min_frame']} "
                         f"(cosine {after['identity_to_input_min']:.3f} to the input's face; the input's own lowest is "
                         f"{before['identity_to_input_min']:.3f}); try --reference {row['id']}=PHOTO or --strength {row['id']}=0.5")
    return notes
