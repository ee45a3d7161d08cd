"""Which face tracks show the same person, so that they share one noise field.

A diffusion restorer invents detail from its noise, and each track drew its own: a person's
restored face changed its look at every cut back to them (shot and reverse shot) and after
every occlusion longer than the tracker bridges (``max_missed``), where the face comes back as a
new track. Tracks of one person now draw the noise of the person's first track.

Who is who is settled in pass 1, with no extra decoding: each open track keeps the aligned crops
of its best few detections (largest, most frontal), cut from the images the detector saw; once
the track has ended, their dlib descriptors, averaged, stand for it. Tracks are then linked in the
order they start, each to the person whose mean descriptor is nearest, when that is within
``max_distance`` and none of that person's tracks shares a frame with it: two faces on screen at
once are two people. The identity embedding stays each track's own (:mod:`vidrestore.anchor`),
so a wrong link costs shared noise, never someone else's identity.
"""

from __future__ import annotations

from collections.abc import Collection

import cv2
import numpy as np

from .align import face_matrices, warp_image
from .identity import IdentityEncoder
from .pose import portrait_score
from .settings import PeopleConfig
from .types import Detection, Track


class Portraits:
    """The best few aligned crops of each open track as pass 1 meets its detections, and each
    ended track's mean descriptor (:attr:`descriptors`); with ``keep_faces``, also its best crop
    as a JPEG (:attr:`faces`), to show the user who each track is."""

    def __init__(self, config: PeopleConfig, encoder: IdentityEncoder, keep_faces: bool = False):
        self.config = config
        self.encoder = encoder
        self.keep_faces = keep_faces
        self.descriptors: dict[int, np.ndarray] = {}
        self.faces: dict[int, bytes] = {}
        self._best: dict[int, list[tuple[float, np.ndarray]]] = {}  # track id -> (score, crop), best first

    def offer(self, image: np.ndarray, scale: tuple[float, float], found: list[tuple[int, Detection]]) -> None:
        """``found``: (track id, detection in frame pixels) of each face detected in ``image``,
        the frame downscaled by ``scale`` (sx, sy)."""
        for track_id, detection in found:
            score = float(portrait_score(np.float64(detection.size), detection.landmarks))
            kept = self._best.setdefault(track_id, [])
            if len(kept) < self.config.portraits or score > kept[-1][0]:
                kept.append((score, self.crop(image, detection.landmarks * np.asarray(scale, np.float32))))
                kept.sort(key=lambda k: -k[0])
                del kept[self.config.portraits:]

    def settle(self, open_ids: Collection[int]) -> None:
        """Describe every track that is no longer open, and let its crops go."""
        for track_id in [i for i in self._best if i not in open_ids]:
            crops = np.stack([crop for _, crop in self._best.pop(track_id)])
            self.descriptors[track_id] = self.encoder.embed(crops).mean(0)
            if self.keep_faces:
                self.faces[track_id] = cv2.imencode(".jpg", cv2.cvtColor(crops[0], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()

    def crop(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The aligned portrait of the face with these 5 ``landmarks`` (in ``image``'s pixels)."""
        size = self.config.portrait_size
        return warp_image(image, face_matrices(landmarks[None], size)[0], (size, size), "reflection")


def link_people(tracks: list[Track], descriptors: dict[int, np.ndarray], max_distance: float) -> dict[int, int]:
    """Track id -> its person's id (the id of the person's first track), for every track of
    ``tracks``. A track without a descriptor is a person of its own."""
    ordered = sorted(tracks, key=lambda t: (t.start, t.track_id))
    dim = len(next(iter(descriptors.values()))) if descriptors else 0
    # per person: id, sum and count of descriptors (their mean is where the person is), and the
    # frame their tracks end by; tracks come in start order, so a person is on screen with a
    # track exactly when one of their tracks ends after it starts
    ids = np.zeros(len(ordered), int)
    sums, counts = np.zeros((len(ordered), dim)), np.zeros(len(ordered))
    until = np.zeros(len(ordered), int)
    people = 0
    person_of: dict[int, int] = {}
    for track in ordered:
        own = descriptors.get(track.track_id)
        k = people
        if own is not None and people:
            free = (counts[:people] > 0) & (until[:people] <= track.start)
            distance = np.where(free, np.linalg.norm(sums[:people] / np.maximum(counts[:people], 1)[:, None] - own, axis=1), np.inf)
            nearest = int(np.argmin(distance))
            k = nearest if distance[nearest] <= max_distance else people
        if k == people:
            ids[k] = track.track_id
            people += 1
        if own is not None:
            sums[k] += own
            counts[k] += 1
        until[k] = max(until[k], track.end)
        person_of[track.track_id] = int(ids[k])
    return person_of


def contact_sheet(faces: dict[int, np.ndarray], person_of: dict[int, int], per_row: int = 8) -> np.ndarray:
    """One picture of who is who: a row per person, their label on the left, then the faces
    (colour images, all one size) of their tracks, each with its track id, ``per_row`` to a row."""
    size = next(iter(faces.values())).shape[0]
    rows = []
    for person in sorted({person_of[t] for t in faces}):
        tracks = sorted(t for t in faces if person_of[t] == person)
        for start in range(0, len(tracks), per_row):
            row = np.zeros((size, size + per_row * size, 3), np.uint8)
            if start == 0:
                _label(row, f"person {person}", (6, size // 2))
            for k, track in enumerate(tracks[start:start + per_row]):
                x = size * (k + 1)
                row[:, x:x + size] = faces[track]
                row[size - 18:, x:x + size] //= 3  # a dark strip under the track id
                _label(row, f"track {track}", (x + 4, size - 5))
            rows.append(row)
    return np.concatenate(rows)


def _label(image: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
