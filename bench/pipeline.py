"""Pipeline stage timings against the PyAV decode+encode floor, in one run.

    python bench/pipeline.py CLIP [--detector dlib|retinaface --detector-weights W] [--detect-every K]

The restoration stage is the pass-through restorer, so the figure is the cost of everything
around the model. Prints a table and the ratio (goal: <= 1.3x the floor).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.io import EncodeOptions, VideoReader, VideoWriter, probe
from vidrestore.pipeline import PipelineConfig, run
from vidrestore.restore import PassThroughRestorer


def floor(clip: Path, out: Path, opts: EncodeOptions) -> float:
    """Decode every frame to RGB and encode it again: the least any restorer must do."""
    t = time.perf_counter()
    with VideoReader(clip) as r, VideoWriter(out, probe(clip), opts) as w:
        for f in r:
            w.write(f.source, f.pts, f.image)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("--detector", default="dlib")
    ap.add_argument("--detector-weights")
    ap.add_argument("--detect-every", type=int, default=1)
    args = ap.parse_args()
    cfg = PipelineConfig()
    cfg = PipelineConfig(detector=DetectorConfig(backend=args.detector, weights=args.detector_weights),
                         tracker=type(cfg.tracker)(detect_every=args.detect_every))
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        base = floor(args.clip, Path(tmp) / "floor.mp4", cfg.encode)
        det = create_detector(cfg.detector, device)
        rep = run(args.clip, Path(tmp) / "out.mp4", cfg, PassThroughRestorer(cfg.face_size), device, detector=det)
    frames = rep.frames_in
    print(f"clip: {args.clip.name}, {frames} frames, detector {rep.detector}, detect every {args.detect_every}")
    print(f"{'stage':24s} {'seconds':>8s} {'fps':>8s}")
    print(f"{'decode+encode floor':24s} {base:8.2f} {frames / base:8.1f}")
    for k, v in rep.timings_s.items():
        print(f"{k:24s} {v:8.2f} {frames / max(v, 1e-9):8.1f}")
    print(f"ratio total / floor: {rep.timings_s['total'] / base:.2f}x")


if __name__ == "__main__":
    main()
