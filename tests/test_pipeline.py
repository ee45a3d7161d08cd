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
    spans = sorted((t.shot_index, t.start, t.end) for t in analysis.tracks)
    assert [s[0] for s in spans] == [0, 1]
    assert spans[0][1:] == (0, 16) and spans[1][1] == 16 and spans[1][2] > 21  # the darker shot may lose its last detections

