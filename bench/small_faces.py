"""How small a face each detector finds in a wide shot, at its fixed size and sized for --min-face.

    python bench/small_faces.py --detector-weights W [--close-up CLIP] [--photo GROUP.jpg] [--min-face 32]

Two measurements, each for the detector as built (its default working size) and as the pipeline
sizes it for a video (``FaceDetector.sized_for(long side, --min-face)``):

* synthetic 1080p wide shots: the first frame of ``--close-up`` (one face filling it) shrunk to a
  face of 24-200 px and set into blurred random texture; per face size, the frames (of 5 close-up
  frames) where exactly that face was found, and the detections anywhere else (false faces);
* ``--photo``, a crowd (the "World's Largest Selfie" in the test data): faces found, and the time of
  one detection (fastest of 3).

RetinaFace (``--detector-weights``) and dlib's HOG are both measured. The figures are what
README's "Small faces in wide shots" and docs/benchmarks.md quote.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from PIL import Image

from vidrestore.faces.detect import DetectorConfig, FaceDetector, create_detector

FACE_SIZES = (24, 32, 40, 60, 80, 120, 200)
FACE_AT = (1200, 600)  # top-left corner of the shrunk close-up in the 1920x1080 frame


def close_ups(path: Path, count: int = 5) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames[:: max(1, len(frames) // count)][:count]


def wide_shot(close_up: np.ndarray, face_px: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 1080p frame of blurred texture holding ``close_up`` shrunk so its face is about ``face_px``
    (the close-up's face is about 230 px wide); returns it and the shrunk close-up's box."""
    canvas = cv2.GaussianBlur(rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8), (0, 0), 6)
    canvas = cv2.normalize(canvas, None, 40, 200, cv2.NORM_MINMAX)
    small = cv2.resize(close_up, None, fx=face_px / 230, fy=face_px / 230, interpolation=cv2.INTER_AREA)
    x, y = FACE_AT
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas, (x, y, x + small.shape[1], y + small.shape[0])


def wide_shot_row(detector: FaceDetector, frames: list[np.ndarray]) -> list[str]:
    rng = np.random.default_rng(0)
    row = []
    for px in FACE_SIZES:
        hits = false = 0
        for frame in frames:
            image, (x1, y1, x2, y2) = wide_shot(frame, px, rng)
            found = detector.detect([image])[0]
            inside = [d for d in found if x1 - 10 <= d.box[0] and d.box[2] <= x2 + 10 and y1 - 10 <= d.box[1] and d.box[3] <= y2 + 10]
            hits += len(inside) == 1
            false += len(found) - len(inside)
        row.append(f"{hits}/{len(frames)}" + (f" +{false}" if false else ""))
    return row


def photo_row(detector: FaceDetector, image: np.ndarray) -> tuple[int, float]:
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        found = detector.detect([image])[0]
        times.append(time.perf_counter() - t0)
    return len(found), min(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector-weights", required=True)
    ap.add_argument("--close-up", type=Path, default=Path("../shared/data/videos/keep_real_1.mp4"))
    ap.add_argument("--photo", type=Path, default=Path("../shared/data/faces_lq/retinaface_sample_group.jpg"))
    ap.add_argument("--min-face", type=float, default=32.0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    frames = close_ups(args.close_up)
    photo = np.array(Image.open(args.photo).convert("RGB"))
    print(f"wide shots: 1920x1080, {len(frames)} frames per face size; 'k/n +f': the face found alone in k of n, "
          f"f detections elsewhere; sized for --min-face {args.min_face:g}")
    print(f"{'detector':44s} {'side':>5s} " + " ".join(f"{px:>7d}" for px in FACE_SIZES) + f" {'photo faces':>12s} {'ms':>6s}")
    for cfg in (DetectorConfig(backend="retinaface", weights=args.detector_weights), DetectorConfig(backend="dlib")):
        built = create_detector(cfg, torch.device("cpu"))
        for label, wide, on_photo in (("as built", built, built),
                                      ("sized", built.sized_for(1920, args.min_face), built.sized_for(max(photo.shape[:2]), args.min_face))):
            faces, ms = photo_row(on_photo, photo)
            name = f"{built.name.split(' (')[0]} {label}"
            print(f"{name:44s} {wide.input_side:5d} " + " ".join(f"{c:>7s}" for c in wide_shot_row(wide, frames))
                  + f" {faces:12d} {ms:6.0f}")


if __name__ == "__main__":
    main()
