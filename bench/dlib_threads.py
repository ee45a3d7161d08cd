"""dlib's HOG on a batch of frames: one frame at a time, and as ``DlibDetector.detect`` runs it (a thread a core).

    python bench/dlib_threads.py CLIP [--side 1040] [--frames 16] [--repeat 3]

``--frames`` frames of CLIP (every 4th, as pass 1 detects them), enlarged to ``--side`` px on the
longer side as dlib works on an SD video's frames for ``--min-face 32`` (1040 for keep_real_1's
512 px; 1920 for 720p), detected one call a frame (one thread) and in one call (the batch on
threads); the fastest of ``--repeat`` runs each, and whether both found the same faces.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.io import VideoReader


def fastest(run, repeat: int) -> tuple[float, list]:
    best, found = float("inf"), []
    for _ in range(repeat):
        start = time.perf_counter()
        found = run()
        best = min(best, time.perf_counter() - start)
    return best, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", type=Path)
    ap.add_argument("--side", type=int, default=1040)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with VideoReader(args.clip) as reader:
        frames = [f.image for f in reader if f.index % 4 == 0][:args.frames]
    long_side = max(frames[0].shape[:2])
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")).sized_for(long_side, 32)
    det.input_side, det.enlargement = args.side, max(1.0, args.side / long_side)  # the working size asked for
    det.detect(frames[:2])  # builds a HOG detector for each thread
    alone, found_alone = fastest(lambda: [det.detect([f])[0] for f in frames], args.repeat)
    together, found_together = fastest(lambda: det.detect(frames), args.repeat)
    same = all([(d.box.tolist(), d.score) for d in a] == [(d.box.tolist(), d.score) for d in b] for a, b in zip(found_alone, found_together))
    print(f"{args.clip.name}: {len(frames)} frames at {args.side} px; one at a time {alone:.2f} s, "
          f"a batch on threads {together:.2f} s ({alone / together:.2f}x); same faces: {same}")


if __name__ == "__main__":
    main()
