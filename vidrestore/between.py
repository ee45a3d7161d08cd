"""The model on every Nth frame of a track, and its restoration carried to the frames between.

``--restore-every N`` (``KeyframeRestorer``) wraps any :class:`~vidrestore.restore.Restorer`: of
each track it restores every Nth frame (a keyframe), and the last frame of each batch, so that every
frame between has a restored frame on either side. A frame between keeps its own input crop and
takes what restoration changed on those two keyframes (the restored crop less the input crop),
warped onto it along the optical flow between the input crops, weighted by how near each is and
where the flow holds (forward-backward consistency; where neither holds, the weights alone). The
model's share of the run falls about N-fold; the frame's own motion, expression and light stay
its own, and only the detail the model adds is borrowed from its neighbours.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F

from .diffusion.flow import pair_flows, warp
from .errors import UsageError
from .restore import Keyframe, Restorer, TrackContext, TrackPiece

# the flow's validity mask is softened over this many pixels of the crop, so that where one
# keyframe's change gives way to the other's no seam shows in the added detail
MASK_SOFTENING = 5


def keyframe_indices(count: int, every: int, carried: bool) -> list[int]:
    """The frames of a batch of ``count`` of one track that the model restores: every ``every``th
    frame counted from the track's last keyframe (``carried``: the previous batch's last frame,
    else this batch's first), and the batch's last."""
    first = every - 1 if carried else 0
    return sorted({*range(first, count, every), count - 1})


def _uint8(crops: torch.Tensor) -> np.ndarray:
    return (crops.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class KeyframeRestorer(Restorer):
    """``inner`` on every ``every``th frame of each track; the frames between take its changes along flow."""

    def __init__(self, inner: Restorer, every: int):
        if every < 1:
            raise UsageError(f"--restore-every {every}: give 1 (every frame) or more")
        self.inner = inner
        self.every = every
        self.face_size = inner.face_size
        self.uses_identity = inner.uses_identity
        self.dtype = inner.dtype

    @property
    def name(self) -> str:
        return f"{self.inner.name}, on one frame in {self.every} of each track, carried along flow to the others"

    @property
    def notes(self) -> list[str]:
        return self.inner.notes

    def start_track(self, track_id: int, first_crops: torch.Tensor, reference: torch.Tensor | None = None,
                    person: int | None = None) -> TrackContext:
        return self.inner.start_track(track_id, first_crops, reference, person)

    def restore_tracks(self, pieces: list[TrackPiece]) -> list[torch.Tensor]:
        keys = [keyframe_indices(len(crops), self.every, context.keyframe is not None) for crops, context in pieces]
        restored = self.inner.restore_tracks([(crops[k], context) for (crops, context), k in zip(pieces, keys)])
        return [self._between(crops, context, k, r.to(crops.device)) for (crops, context), k, r in zip(pieces, keys, restored)]

    def _between(self, crops: torch.Tensor, context: TrackContext, keys: list[int], restored: torch.Tensor) -> torch.Tensor:
        """The batch ``crops`` with its keyframes ``restored`` and the frames between filled in."""
        out = crops.clone()
        out[keys] = restored
        changes = restored - crops[keys]
        carried = context.keyframe
        # anchors: (index in ``frames``, change); the carried keyframe is frame 0 of ``frames`` when there is one
        shift = 1 if carried is not None else 0
        frames = torch.cat([carried.crop[None].to(crops), crops]) if carried is not None else crops
        anchors = ([(0, carried.change.to(crops))] if carried is not None else []) + [(k + shift, c) for k, c in zip(keys, changes)]
        gaps = [(a, b, t) for (a, _), (b, _) in pairwise(anchors) for t in range(a + 1, b)]
        if gaps:
            flows, valid = pair_flows(_uint8(frames), [pair for a, b, t in gaps for pair in ((t, a), (t, b))], crops.device)
            valid = F.avg_pool2d(valid, MASK_SOFTENING, 1, MASK_SOFTENING // 2, count_include_pad=False)
            change_at = dict(anchors)
            from_a = warp(torch.stack([change_at[a] for a, _, _ in gaps]), flows[0::2])
            from_b = warp(torch.stack([change_at[b] for _, b, _ in gaps]), flows[1::2])
            near_b = torch.tensor([(t - a) / (b - a) for a, b, t in gaps], device=crops.device)[:, None, None, None]
            w_a, w_b = (1 - near_b) * valid[0::2], near_b * valid[1::2]
            held = w_a + w_b
            # where the flow to neither keyframe holds, their changes are still warped, by nearness alone
            w_a = torch.where(held > 1e-3, w_a / held.clamp_min(1e-3), 1 - near_b)
            w_b = torch.where(held > 1e-3, w_b / held.clamp_min(1e-3), near_b)
            between = [t - shift for _, _, t in gaps]
            out[between] = (crops[between] + w_a * from_a + w_b * from_b).clamp(0, 1)
        context.keyframe = Keyframe(crops[-1].clone(), changes[-1].clone())
        return out
