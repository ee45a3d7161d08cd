"""Identity anchoring: which frames of a track show the person best, and their crops, read just
ahead of pass 2.

A track's identity embedding conditions every one of its frames, so it should come from the
frames where the face is seen best, not from whichever frames open the track (a face entering
the frame, turned, or half detected). The best frames are chosen from pass 1's landmarks alone;
a second reader then runs ahead of pass 2 and crops only those frames, so memory holds the crops
of the tracks between the two readers, never of the whole video.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from .faces.align import align_faces
from .faces.pose import portrait_score
from .faces.types import Track
from .io import VideoReader
from .io.excerpt import Excerpt
from .io.linear import Light
from .io.reader import DecodedFrames, FieldFilter

IDENTITY_FRAMES = 8


def identity_frames(track: Track, count: int = IDENTITY_FRAMES) -> list[int]:
    """Up to ``count`` frame indices of ``track``: the one that shows the face best in each of
    ``count`` equal parts of the track. Best is found by the detector (not filled in by the
    tracker), large, frontal, and in a steady picture (not a flash's, nor half of a dissolve or
    a fade's darkness); one per part keeps the anchor spread over the whole track, so it stands
    for all of it rather than for one good moment. Parts where the head is turned to profile
    throughout give none, unless the whole track is."""
    size = np.sqrt(np.clip((track.boxes[:, 2] - track.boxes[:, 0]) * (track.boxes[:, 3] - track.boxes[:, 1]), 0, None))
    detected = track.detected if len(track.detected) == len(track) else np.ones(len(track), bool)
    steady = track.steady if len(track.steady) == len(track) else np.ones(len(track), bool)
    score = portrait_score(size, track.landmarks) * np.where(detected, 1.0, 0.25) * np.where(steady, 1.0, 0.1)
    parts = np.array_split(np.arange(len(track)), min(count, len(track)))
    best = [int(part[np.argmax(score[part])]) for part in parts]
    return [track.start + k for k in best if score[k] > 0] or [track.start + k for k in best]


class IdentityCrops:
    """Aligned crops of each track's :func:`identity_frames`, from a reader that runs ahead of pass 2.

    Ask for tracks in the order they start (as pass 2 meets them); ``frames``, ``start_pts`` and
    ``deinterlace`` as pass 2 reads the video, so the crops are cut from the same pixels; ``reuse``:
    pass 1's frames, as pass 2 gets them; ``light``: what the samples stand for, and ``excerpt``, the
    stretch of the video, as pass 2 reads them."""

    def __init__(self, path: Path, tracks: list[Track], face_size: int, frames: range, start_pts: int | None,
                 deinterlace: FieldFilter | None, reuse: DecodedFrames | None = None, light: Light | None = None,
                 excerpt: Excerpt | None = None):
        self.face_size = face_size
        self.wanted = {t.track_id: identity_frames(t) for t in tracks}
        self.at: dict[int, list[Track]] = defaultdict(list)
        for t in tracks:
            for i in self.wanted[t.track_id]:
                self.at[i].append(t)
        self.crops: dict[int, list[np.ndarray]] = defaultdict(list)
        self.reader = VideoReader(path, start=frames.start, stop=frames.stop, start_pts=start_pts,
                                  deinterlace=deinterlace, only=set(self.at), reuse=reuse, light=light,
                                  excerpt=excerpt) if self.at else None
        self.frames = iter(self.reader) if self.reader is not None else iter(())
        self.done: set[int] = set()  # frame indices read so far

    def __call__(self, track: Track) -> torch.Tensor | None:
        """(K, 3, S, S) crops in [0, 1] of ``track``'s best frames; None if none could be decoded."""
        wanted = self.wanted.get(track.track_id, [])
        while wanted and not set(wanted) <= self.done:
            frame = next(self.frames, None)
            if frame is None:
                break  # the rest did not decode: anchor on what did
            self.done.add(frame.index)
            self._cut(frame.index, frame.image)
        crops = self.crops.pop(track.track_id, [])
        if not crops:
            return None
        return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255

    def _cut(self, index: int, image: np.ndarray) -> None:
        tracks = self.at.pop(index, [])
        if not tracks:
            return
        landmarks = torch.from_numpy(np.stack([t.landmarks_at(index) for t in tracks])).float()
        crops, _ = align_faces(torch.from_numpy(image).permute(2, 0, 1), landmarks, self.face_size, self.reader.info.pixel_aspect)
        for t, crop in zip(tracks, crops):
            self.crops[t.track_id].append((crop.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy())

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
