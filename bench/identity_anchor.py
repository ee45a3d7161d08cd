"""How well a track's identity anchor stands for the whole track: the old rule (8 frames spread
over the track's first 16) against the best frames (`vidrestore/anchor.py`).

    python bench/identity_anchor.py ../shared/data/videos/keep_real_*.mp4 [--detector dlib|retinaface]
                                    [--detector-weights PATH]

For each track, every frame is aligned and described with dlib's 128-d descriptor. The track's
consensus is the mean descriptor over all its frames; an anchor is the mean over its chosen
frames: the first window's, 8 frames spread evenly over the whole track (to tell how much of the
difference is spreading alone), and the best frames. The table gives each anchor's cosine to the
consensus (higher: the restorer is told an identity closer to the person the whole track shows).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from vidrestore.anchor import identity_frames
from vidrestore.config import CONFIG_DIR, load_yaml
from vidrestore.faces.align import align_faces
from vidrestore.faces.detect import create_detector
from vidrestore.faces.identity import DlibIdentityEncoder, cosine
from vidrestore.io import VideoReader
from vidrestore.pipeline import PipelineConfig, analyse


def first_window_frames(start: int, length: int, window: int = 16, count: int = 8) -> list[int]:
    """The frames the restorer used before anchoring: ``count`` spread over the first window."""
    n = min(window, length)
    return sorted({start + int(i) for i in np.linspace(0, n - 1, min(count, n)).round()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--detector", default="dlib")
    ap.add_argument("--detector-weights", default="")
    args = ap.parse_args()
    cfg = load_yaml(PipelineConfig, CONFIG_DIR / "pipeline.yaml")
    det_cfg = dataclasses.replace(cfg.detector, backend=args.detector, weights=args.detector_weights)
    detector = create_detector(det_cfg, torch.device("cpu"))
    encoder = DlibIdentityEncoder()
    print(f"{'clip':22s} {'track':>5s} {'frames':>6s}  {'first window':>12s}  {'spread':>7s}  {'best frames':>11s}")
    for clip in args.clips:
        analysis = analyse(clip, cfg, detector)
        crops: dict[int, dict[int, np.ndarray]] = {t.track_id: {} for t in analysis.tracks}
        with VideoReader(clip) as reader:
            for frame in reader:
                live = [t for t in analysis.tracks if t.covers(frame.index)]
                if not live:
                    continue
                marks = torch.from_numpy(np.stack([t.landmarks_at(frame.index) for t in live])).float()
                cut, _ = align_faces(torch.from_numpy(frame.image).permute(2, 0, 1), marks, cfg.face_size)
                for t, c in zip(live, cut):
                    crops[t.track_id][frame.index] = (c.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        for t in analysis.tracks:
            frames = sorted(crops[t.track_id])
            described = dict(zip(frames, encoder.embed(np.stack([crops[t.track_id][i] for i in frames]))))
            consensus = np.mean(list(described.values()), 0, keepdims=True)

            def anchor_cosine(chosen: list[int]) -> float:
                return float(cosine(np.mean([described[i] for i in chosen], 0, keepdims=True), consensus)[0])

            print(f"{clip.name:22s} {t.track_id:5d} {len(t):6d}  {anchor_cosine(first_window_frames(t.start, len(t))):12.4f}  "
                  f"{anchor_cosine(first_window_frames(t.start, len(t), window=len(t))):7.4f}  {anchor_cosine(identity_frames(t)):11.4f}")


if __name__ == "__main__":
    main()
