"""The model on every Nth frame of a track, the frames between carried along flow (vidrestore/between.py)."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import read_pts
from hypothesis import given
from hypothesis import strategies as st

from vidrestore.between import KeyframeRestorer, keyframe_indices
from vidrestore.cli import main
from vidrestore.errors import UsageError
from vidrestore.restore import FlipnetRestorer, Restorer, TrackContext, TrackPiece

SIZE = 64


@given(count=st.integers(1, 40), every=st.integers(1, 8), carried=st.booleans())
def test_keyframes_leave_no_more_than_every_frames_apart_and_end_each_batch(count, every, carried):
    keys = keyframe_indices(count, every, carried)
    assert keys == sorted(set(keys)) and keys[-1] == count - 1 and all(0 <= k < count for k in keys)
    # from the carried keyframe (the previous batch's last frame, at -1) or from this batch's first
    assert keys[0] == (min(every - 1, count - 1) if carried else 0)
    assert all(b - a <= every for a, b in zip([-1 if carried else 0, *keys], keys, strict=False))
    if every == 1:
        assert keys == list(range(count))


class Sharpening(Restorer):
    """A restorer that is a real image operation (an unsharp mask), so that what it changes moves
    with the picture; it counts the crops it is given."""

    name, face_size, uses_identity, dtype, notes = "unsharp", SIZE, False, torch.float32, []

    def __init__(self):
        self.seen = 0

    def start_track(self, track_id, first_crops, reference=None, person=None) -> TrackContext:
        return TrackContext(track_id)

    def restore_tracks(self, pieces: list[TrackPiece]) -> list[torch.Tensor]:
        self.seen += sum(len(crops) for crops, _ in pieces)
        return [sharpened(crops) for crops, _ in pieces]


def sharpened(crops: torch.Tensor) -> torch.Tensor:
    images = crops.permute(0, 2, 3, 1).numpy()
    blurred = np.stack([cv2.GaussianBlur(i, (0, 0), 2.0) for i in images])
    return torch.from_numpy(np.clip(images + 1.5 * (images - blurred), 0, 1)).permute(0, 3, 1, 2)


def drifting(frames: int, step: float, seed: int = 0) -> torch.Tensor:
    """A textured picture moving ``step`` pixels a frame to the right and half that down: (T, 3, S, S) in [0, 1]."""
    rng = np.random.default_rng(seed)
    canvas = cv2.GaussianBlur(rng.random((SIZE * 2, SIZE * 2, 3)).astype(np.float32), (0, 0), 1.5)
    canvas = (canvas - canvas.min()) / (canvas.max() - canvas.min())
    shots = []
    for t in range(frames):
        matrix = np.float32([[1, 0, SIZE / 2 - step * t], [0, 1, SIZE / 2 - step * t / 2]])
        shots.append(cv2.warpAffine(canvas, matrix, (SIZE, SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    return torch.from_numpy(np.clip(np.stack(shots), 0, 1)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("every", [2, 4])
def test_frames_between_keyframes_take_the_restoration_that_moves_with_them(every):
    """Keyframes are the model's own; a frame between comes far nearer the model's result on it
    than its input is, though the model never saw it; the model sees about 1/every of the frames."""
    crops = drifting(16, 1.3)
    inner = Sharpening()
    restorer = KeyframeRestorer(inner, every)
    context = restorer.start_track(0, crops[:1])
    first, second = crops[:9], crops[9:]  # two batches: the second starts from the first's last keyframe
    out = torch.cat([restorer.restore(first, context), restorer.restore(second, context)])
    direct = sharpened(crops)
    keys = keyframe_indices(9, every, False) + [9 + k for k in keyframe_indices(7, every, True)]
    assert inner.seen == len(keys) < 16 * (1 / every + 0.25)
    assert torch.allclose(out[keys], direct[keys], atol=1e-6)
    between = [t for t in range(16) if t not in keys]
    inside = (slice(None), slice(8, -8), slice(8, -8))  # away from the border the picture moves in from
    for t in between:
        left = float((out[t] - direct[t])[inside].abs().mean())
        change = float((crops[t] - direct[t])[inside].abs().mean())
        assert left < 0.3 * change, (t, left, change)
    # without the flow (a keyframe's change added where it was) the frames between come out worse
    still = [(crops[t] + direct[k] - crops[k]).clamp(0, 1) for t, k in zip(between, [max(k for k in keys if k < t) for t in between], strict=True)]
    assert np.mean([float((s - direct[t])[inside].abs().mean()) for s, t in zip(still, between, strict=True)]) > \
        2 * np.mean([float((out[t] - direct[t])[inside].abs().mean()) for t in between])


class Brightening(Sharpening):
    """A tone curve: what it changes depends on how bright the frame is."""

    def restore_tracks(self, pieces: list[TrackPiece]) -> list[torch.Tensor]:
        self.seen += sum(len(crops) for crops, _ in pieces)
        return [crops**0.6 for crops, _ in pieces]


def test_a_frame_between_takes_more_of_the_nearer_keyframe():
    """In a fade the change differs from keyframe to keyframe: a frame between follows the nearer
    one's more, as its own light does."""
    fade = torch.linspace(0.3, 0.9, 13)[:, None, None, None]
    crops = drifting(1, 0.0)[0] * fade
    context = TrackContext(0)
    out = KeyframeRestorer(Brightening(), 4).restore(crops, context)
    error = (out - crops**0.6).abs().mean(dim=(1, 2, 3))
    assert float(error.max()) < 0.004, error
    assert context.keyframe is not None and torch.equal(context.keyframe.crop, crops[-1])


def test_every_frame_asked_for_is_refused_below_one():
    with pytest.raises(UsageError, match="--restore-every 0"):
        KeyframeRestorer(Sharpening(), 0)


def test_the_report_names_how_the_model_ran():
    restorer = KeyframeRestorer(Sharpening(), 3)
    assert restorer.name == "unsharp, on one frame in 3 of each track, carried along flow to the others"


def test_the_command_restores_one_frame_in_n_and_keeps_every_frame(sample_clip, tiny_model, tmp_path, monkeypatch):
    """End to end: the model is given about a third of the face's frames; the output keeps every
    frame on its time, each face changed from the input, and the report says how it ran."""
    shown = []
    restore_tracks = FlipnetRestorer.restore_tracks
    monkeypatch.setattr(FlipnetRestorer, "restore_tracks",
                        lambda self, pieces: shown.append(sum(len(c) for c, _ in pieces)) or restore_tracks(self, pieces))
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    assert main([str(sample_clip), str(out), "--model", str(tiny_model), "--restore-every", "3", "--strength", "1",
                 "--crf", "10", "--batch-size", "8", "--json", str(report), "--quiet"]) == 0
    rep = json.loads(report.read_text())
    faces = sum(t["frames"] for t in rep["tracks"])
    assert rep["restorer"].endswith(", on one frame in 3 of each track, carried along flow to the others")
    assert faces >= 20 and sum(shown) <= faces / 3 + 2 * len(rep["tracks"]) + faces / 8
    assert read_pts(out) == read_pts(sample_clip)
    with av.open(str(sample_clip)) as a, av.open(str(out)) as b:
        pairs = list(zip(a.decode(video=0), b.decode(video=0), strict=True))
    changed = [np.abs(x.to_ndarray(format="rgb24").astype(int) - y.to_ndarray(format="rgb24")).max() > 8 for x, y in pairs]
    assert sum(changed) >= faces - 1
