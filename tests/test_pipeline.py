import numpy as np
import torch
from conftest import make_clip

from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.io import VideoReader
from vidrestore.pipeline import PipelineConfig, analyse


def test_tracks_split_at_a_cut_with_batched_detection(sample_clip, tmp_path):
    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r][:16]
    # Second shot: the same face darker and in swapped colour channels (another histogram, still a face).
    images = frames + [np.ascontiguousarray(f[..., ::-1] // 3) for f in frames]
    h, w = images[0].shape[:2]
    clip = make_clip(tmp_path / "cut.mp4", [i * 40 for i in range(len(images))], size=(h, w), images=images)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    analysis = analyse(clip, PipelineConfig(), det, detect_batch=5)
    assert [(s.start, s.end) for s in analysis.shots] == [(0, 16), (16, 32)]
    for t in analysis.tracks:  # no track crosses the cut
        shot = analysis.shots[t.shot_index]
        assert shot.start <= t.start and t.end <= shot.end
    assert sorted({t.shot_index for t in analysis.tracks}) == [0, 1]
    assert all(len(t) >= 8 for t in analysis.tracks), [(t.start, t.end, int(t.detected.sum())) for t in analysis.tracks]


def test_detection_on_downscaled_frames_lands_on_full_size_pixels(sample_clip):
    def landmarks(max_side):
        det = create_detector(DetectorConfig(backend="dlib", max_side=max_side), torch.device("cpu"))
        assert det.input_side == max_side
        tracks = analyse(sample_clip, PipelineConfig(), det).tracks
        assert len(tracks) == 1
        return tracks[0].landmarks

    with VideoReader(sample_clip) as r:
        side = max(next(iter(r)).image.shape[:2])
    full, small = landmarks(side), landmarks(int(side * 0.7))
    assert np.abs(full - small).mean() < 2.0  # same face, same pixels; a missing rescale would be off by ~30%
