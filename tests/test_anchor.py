"""Identity anchoring: a track's best frames, and their crops read ahead of pass 2."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.anchor import IdentityCrops, identity_frames
from vidrestore.faces.align import align_faces, template
from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.faces.types import Track
from vidrestore.io import VideoReader
from vidrestore.pipeline import PipelineConfig, analyse


def _track(sizes, turned, detected, start=100) -> Track:
    """Frontal faces (the template at each size) or, where ``turned``, one turned to profile."""
    marks, boxes = [], []
    for size, side in zip(sizes, turned):
        points = template(128) * (size / 128)
        if side:
            points[2, 0] = points[1, 0] + size * 0.1  # nose beyond the far eye
        marks.append(points)
        boxes.append([0, 0, size, size])
    n = len(sizes)
    return Track(0, 0, np.arange(start, start + n), np.array(boxes, float), np.array(marks), np.ones(n),
                 np.array(detected, bool))


def test_the_best_frames_are_detected_large_and_frontal():
    n = 40
    sizes = np.linspace(60, 120, n)
    turned = np.arange(n) >= 30  # the face turns away in the last quarter, while it is largest
    detected = np.arange(n) % 2 == 0  # every other frame filled in by the tracker
    # one per quarter: the largest detected frame of each, and none from the turned quarter
    assert identity_frames(_track(sizes, turned, detected), count=4) == [108, 118, 128]
    assert len(identity_frames(_track(sizes, np.ones(n, bool), detected), count=4)) == 4  # all turned: still an anchor


def test_frames_of_a_flash_or_a_dissolve_give_no_identity_where_a_steady_frame_can():
    """A flash burns the face out, and a dissolve mixes it with the next shot's: a smaller face in
    a steady picture is better evidence of the person."""
    n = 40
    sizes = np.where(np.arange(n) % 10 == 5, 120.0, 80.0)  # the largest face of each quarter...
    track = _track(sizes, np.zeros(n, bool), np.ones(n, bool))
    assert identity_frames(track, count=4) == [105, 115, 125, 135]
    track.steady = np.arange(n) % 10 != 5  # ...is in a flash or a dissolve
    assert all(f % 10 != 5 for f in identity_frames(track, count=4))
    track.steady = np.arange(n) >= 10  # a quarter in a transition throughout still gives its best frame
    assert identity_frames(track, count=4)[0] == 105


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(20, 300), st.booleans(), st.booleans()), min_size=1, max_size=80), st.integers(1, 10))
def test_identity_frames_are_distinct_frames_of_the_track_one_per_part(faces, count):
    sizes, turned, detected = zip(*faces)
    track = _track(sizes, turned, detected)
    frames = identity_frames(track, count)
    assert frames == sorted(set(frames)) and 1 <= len(frames) <= min(count, len(track))
    parts = np.array_split(np.arange(track.start, track.end), min(count, len(track)))
    assert all(sum(f in part for f in frames) <= 1 for part in parts)
    if not all(turned):
        assert not any(turned[f - track.start] for f in frames)


def test_crops_read_ahead_are_the_best_frames_cut_as_pass_two_cuts_them(sample_clip):
    analysis = analyse(sample_clip, PipelineConfig(), create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")))
    (track,) = analysis.tracks
    crops = IdentityCrops(sample_clip, analysis.tracks, 64, range(analysis.frames), None, None)
    got = crops(track)
    crops.close()
    wanted = identity_frames(track)
    assert got.shape == (len(wanted), 3, 64, 64) and not crops.crops  # nothing kept once handed over
    with VideoReader(sample_clip) as r:
        frames = {f.index: f.image for f in r}
    for crop, i in zip(got, wanted):
        expected, _ = align_faces(torch.from_numpy(frames[i]).permute(2, 0, 1), torch.from_numpy(track.landmarks_at(i)).float()[None], 64)
        assert torch.allclose(crop, (expected[0].clamp(0, 1) * 255).round() / 255, atol=1e-6)


def test_the_crops_of_an_excerpts_track_are_cut_from_the_excerpts_frames(sample_clip):
    """``--start``: frame 0 of the track is the excerpt's first, 12 frames into this 24 fps clip;
    the reader running ahead of pass 2 must read the excerpt too, or it cut the faces of the
    video's first frames at the excerpt's landmarks."""
    analysis = analyse(sample_clip, PipelineConfig(start="0.5"), create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")))
    (track,) = analysis.tracks
    crops = IdentityCrops(sample_clip, analysis.tracks, 64, range(analysis.frames), None, None, excerpt=analysis.excerpt)
    got = crops(track)
    crops.close()
    with VideoReader(sample_clip) as r:
        frames = {f.index - 12: f.image for f in r if f.index >= 12}
    for crop, i in zip(got, identity_frames(track)):
        expected, _ = align_faces(torch.from_numpy(frames[i]).permute(2, 0, 1), torch.from_numpy(track.landmarks_at(i)).float()[None], 64)
        assert torch.allclose(crop, (expected[0].clamp(0, 1) * 255).round() / 255, atol=1e-6)
