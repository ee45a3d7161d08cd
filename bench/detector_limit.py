"""The smallest face a detector finds at its own working size: the figure its ``smallest_face`` holds.

    python bench/detector_limit.py CLOSE_UP [--detector dlib|retinaface] [--dlib-model hog|cnn]
        [--detector-weights W] [--sizes 50,55,60,65,70] [--min-face PX]

Frames of a close-up clip (one face filling the frame; the test data's keep_real_1.mp4) are
shrunk so that the face's box is about each of ``--sizes`` px, set into blurred random texture in a
640x360 image (no detector downscales that), and detected. Per size: in how many frames the face
was found, the median side of the boxes found, and the time of one detection. ``smallest_face``
is the box side at the smallest size found in every frame.

With ``--min-face``, the detector is sized as the pipeline sizes it for a video of the canvas's
size and faces of that many px (``FaceDetector.sized_for``): dlib enlarges the canvas, up to 3 times,
to find faces smaller than its own limit.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from vidrestore.faces.detect import DetectorConfig, create_detector

CANVAS = (360, 640)
AT = (100, 300)  # top-left corner of the shrunk close-up


def close_ups(path: Path, count: int = 4) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames[:: max(1, len(frames) // count)][:count]


def placed(frame: np.ndarray, scale: float, background: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``frame`` shrunk by ``scale`` into a copy of ``background``; with the region it covers (x0, y0, x1, y1)."""
    small = cv2.resize(frame, (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    image = background.copy()
    y, x = AT
    image[y:y + small.shape[0], x:x + small.shape[1]] = small
    return image, (x, y, x + small.shape[1], y + small.shape[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("close_up", type=Path)
    ap.add_argument("--detector", default="dlib")
    ap.add_argument("--dlib-model", default="hog")
    ap.add_argument("--detector-weights")
    ap.add_argument("--sizes", default="40,50,55,60,65,70,80,100")
    ap.add_argument("--min-face", type=float, help="size the detector for faces this small (default: the canvas as it is)")
    args = ap.parse_args()
    built = create_detector(DetectorConfig(backend=args.detector, dlib_model=args.dlib_model, weights=args.detector_weights),
                            torch.device("cpu"))
    # the face's box side in each full-size close-up, measured on the canvas as it is
    as_it_is = built.sized_for(max(CANVAS), built.smallest_face or 1.0)
    frames = close_ups(args.close_up)
    background = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (*CANVAS, 3), dtype=np.uint8), (0, 0), 3)
    full = [max((d for d in as_it_is.detect([cv2.resize(f, None, fx=0.5, fy=0.5)])[0]), key=lambda d: d.box[2] - d.box[0])
            for f in frames]
    sides = [2 * float(d.box[2] - d.box[0]) for d in full]
    detector = as_it_is if args.min_face is None else built.sized_for(max(CANVAS), args.min_face)
    print(f"detector {detector.name}, working on {CANVAS[1]}x{CANVAS[0]} (input side {detector.input_side}), {len(frames)} frames")
    print(f"{'face px':>8s} {'found':>6s} {'box px':>7s} {'ms':>7s}")
    for size in (int(s) for s in args.sizes.split(",")):
        found, boxes, seconds = 0, [], []
        for frame, side in zip(frames, sides):
            image, (x0, y0, x1, y1) = placed(frame, size / side, background)
            t = time.perf_counter()
            detections = detector.detect([image])[0]
            seconds.append(time.perf_counter() - t)
            inside = [d for d in detections if x0 <= (d.box[0] + d.box[2]) / 2 <= x1 and y0 <= (d.box[1] + d.box[3]) / 2 <= y1]
            found += bool(inside)
            boxes += [float(d.box[2] - d.box[0]) for d in inside[:1]]
        box = f"{statistics.median(boxes):7.1f}" if boxes else f"{'-':>7s}"
        print(f"{size:8d} {found:>3d}/{len(frames):<2d} {box} {1000 * statistics.median(seconds):7.0f}")


if __name__ == "__main__":
    main()
