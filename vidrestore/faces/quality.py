"""How much restoring a track's faces should change them, from how damaged they are (``--strength auto``).

Restoration redraws a face from what the model knows of faces. Where the face is damaged, that is
the point; where it is already clean, the redrawn face is further from the person than the input
was (held-out CelebA faces left untouched came out at 30.8 dB after restoring). Pass 1 gives
:class:`QualityMeter` the full-size frame every :data:`~vidrestore.faces.detail.DETAIL_EVERY`
frames; it crops each face as pass 2 will (at the net's 128 px) and asks FaceQualityNet
(``vidrestore.models.face_quality``) how far the crop is from a clean picture of it, in dB of
PSNR. A person's median estimate gives the strength of all their tracks (:func:`~.settings.strength_for`):
full below :data:`~.settings.DAMAGED_DB`, none above :data:`~.settings.UNDAMAGED_DB`, in proportion between.
Strengths chosen for PSNR would restore lightly damaged faces less (bench/face_quality.py's last
column), but PSNR undervalues taking blur off a smooth face: KEEP's plainly blurred synthetic clip 1
is estimated at 31.7 dB. So every face the estimate finds damaged is restored in full, and only
those it finds close to clean are restored less or left alone (bench/face_quality.py).

Crops cut by another aligner (``--aligned``: KEEP's and VFHQ's test clips) are judged twice, as
they are and with all but the face made flat (:func:`face_alone`), and the lower estimate counts:
such an aligner may have padded the picture out with a flat colour, whose straight, sharp edge the
net reads as a sharp picture (KEEP's blurred synthetic clip 2 was estimated clean, 40 dB, and left
alone; 31.8 dB on its face alone). The crops pass 1 cuts itself are completed by reflection, with
no such edge, and judged whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import torch

from ..models.face_quality import FaceQualityNet
from .align import align_faces, face_matrices, sampled_region
from .detail import DETAIL_EVERY
from .paste import face_mask
from .types import Detection

QUALITY_MODEL = "face-quality"  # the zoo entry of the FaceQualityNet that estimates it


class QualityMeter:
    """Pass 1's estimate of each track's damage: :meth:`wants` says which frames to give (full
    size, RGB) to :meth:`offer`; :meth:`quality` gives a set of tracks' median estimate (dB)."""

    def __init__(self, net: FaceQualityNet, pixel_aspect: tuple[float, float] = (1.0, 1.0), every: int = DETAIL_EVERY,
                 cut_elsewhere: bool = False):
        self.net, self.pixel_aspect, self.every = net, pixel_aspect, every
        self.cut_elsewhere = cut_elsewhere  # the frames are crops another aligner cut (--aligned): see damage_db
        self._estimates: defaultdict[int, list[float]] = defaultdict(list)

    def wants(self, index: int) -> bool:
        return index % self.every == 0

    def offer(self, image: np.ndarray, faces: list[tuple[int, Detection]]) -> None:
        """A frame's full-size RGB ``image`` (H, W, 3) uint8 and the (track id, where it is) of each face in it."""
        if not faces:
            return
        frame = torch.from_numpy(image).permute(2, 0, 1)
        # at the net's own size, whatever the restorer's: a smaller crop enlarged would look blurred
        crops, _ = align_faces(frame, np.stack([face.landmarks for _, face in faces]), self.net.config.image_size, self.pixel_aspect)
        estimates = damage_db(self.net, crops.float(), self.cut_elsewhere).tolist()
        for (track_id, _), estimate in zip(faces, estimates):
            self._estimates[track_id].append(estimate)

    def regions(self, faces: list[tuple[int, Detection]], height: int, width: int) -> list[tuple[int, int, int, int]]:
        """The parts of a (height, width) frame, with ``faces`` in it, that :meth:`offer` reads."""
        size = self.net.config.image_size
        return [sampled_region(face_matrices(face.landmarks[None], size, self.pixel_aspect), size, height, width) for _, face in faces]

    def quality(self, track_ids: Iterable[int]) -> float | None:
        """The median estimate (dB) over the faces of ``track_ids`` (one person's), None where none was measured."""
        estimates = [e for i in track_ids for e in self._estimates.get(i, [])]
        return float(np.median(estimates)) if estimates else None


def face_alone(crops: torch.Tensor) -> torch.Tensor:
    """Aligned ``crops`` (B, 3, S, S) in [0, 1] with all but the face (the paste mask's feathered
    ellipse) made the face's mean colour."""
    mask = face_mask(crops.shape[-1], crops.device)
    mean = (crops * mask).sum((2, 3), keepdim=True) / mask.sum()
    return crops * mask + mean * (1 - mask)


def damage_db(net: FaceQualityNet, crops: torch.Tensor, cut_elsewhere: bool = False) -> torch.Tensor:
    """FaceQualityNet's estimate (B,) in dB for aligned ``crops`` (B, 3, S, S) in [0, 1]; for crops
    ``cut_elsewhere``, the lower of the whole crop's and the face's alone (:func:`face_alone`)."""
    with torch.inference_mode():
        whole = net(crops)
        return torch.minimum(whole, net(face_alone(crops))) if cut_elsewhere else whole
