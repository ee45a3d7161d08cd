"""RetinaFace on a GPU: the first and the second pass over a clip, in a new thread and in the same one.

    python bench/detector_threads.py CLIP --detector-weights W [--device cuda] [--detect-every 4] [--batch 8]

Pass 1 runs the detector on a worker thread. PyTorch keeps cuDNN's execution plans in a
thread-local cache, so a worker started for each video builds a plan for every convolution (and
every batch shape) again. This times the frames that pass 1 would detect (every ``--detect-every``
th frame at the detector's working size, in batches of ``--batch``), in milliseconds per frame:
twice on one new thread, then once more on another new thread; with cuDNN on and off
(``torch.backends.cudnn.flags``), in that order.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
import torch

from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.faces.track import TrackerConfig
from vidrestore.io import VideoReader, probe


def frames_to_detect(clip: Path, side: int, every: int) -> list[np.ndarray]:
    with VideoReader(clip, max_side=side) as reader:
        return [f.image for f in reader if f.index % every == 0]


def on_new_thread(job) -> object:
    """``job()`` run on a thread started for it, as pass 1 starts one per video."""
    result = []
    worker = threading.Thread(target=lambda: result.append(job()))
    worker.start()
    worker.join()
    return result[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("--detector-weights", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--detect-every", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    device = torch.device(args.device)
    det = create_detector(DetectorConfig(backend="retinaface", weights=args.detector_weights, refine_landmarks=False), device)
    det = det.sized_for(max(probe(args.clip).display_size), TrackerConfig().min_face_size)
    images = frames_to_detect(args.clip, det.input_side, args.detect_every)
    shape = images[0].shape

    def one_pass() -> float:
        start = time.perf_counter()
        for i in range(0, len(images), args.batch):
            det.detect(images[i:i + args.batch])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1e3 / len(images)

    print(f"{len(images)} frames of {shape[1]}x{shape[0]} in batches of {args.batch}, {det.name}, on {device} "
          f"(torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}); ms per frame")
    for cudnn in (True, False):
        def two_passes(cudnn: bool = cudnn) -> tuple[float, float]:
            with torch.backends.cudnn.flags(enabled=cudnn):
                return one_pass(), one_pass()
        first, second = on_new_thread(two_passes)
        third, _ = on_new_thread(two_passes)
        print(f"cuDNN {'on ' if cudnn else 'off'}: new thread {first:8.2f}, same thread again {second:8.2f}, "
              f"another new thread {third:8.2f}")


if __name__ == "__main__":
    main()
