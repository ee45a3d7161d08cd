"""Faces dlib's HOG is unsure of, and what dlib's CNN says of them on a second look.

    python bench/false_faces.py --data ../shared/data [--celeba 60]

A track whose faces HOG scores under ``CONFIRM_BELOW`` is a face only where dlib's CNN finds one
at one of its first unsure detections (``DlibDetector.confirms``, ``faces.track.Confirmations``).
This counts, for the detector as a video of each size gets it (``sized_for(long side, 32)``), the
faces found, those it is unsure of, and those the second look confirms, with the time of a
detection and of a second look:

* real faces: CodeFormer's 20 real damaged faces and ``--celeba`` CelebA faces blurred (sigma 1.2)
  and saved as JPEG at quality 30, each shrunk to 48, 80 and 160 px wide on a 640x360 grey canvas;
* false faces: scikit-image's astronaut photograph enlarged to 2160 px on a 4K canvas, moved 32 px
  a frame over 12 frames (HOG sees faces in her mission patch and name tag): the detections other
  than her face.

The figures are what README's "Faces that are not faces" and docs/benchmarks.md quote.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage import data

from vidrestore.faces.detect import DetectorConfig, create_detector


def on_canvas(image: np.ndarray, width: int) -> np.ndarray:
    small = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA)
    canvas = np.full((360, 640, 3), 128, np.uint8)
    y, x = (360 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


def damaged(image: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), 1.2)
    return cv2.imdecode(cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR)


def astronaut_frames(count: int = 12) -> list[np.ndarray]:
    photo = cv2.resize(data.astronaut(), (2160, 2160), interpolation=cv2.INTER_CUBIC)
    frames = []
    for i in range(count):
        frame = np.full((2160, 3840, 3), 100, np.uint8)
        frame[:, 800 + 32 * i:2960 + 32 * i] = photo
        frames.append(frame)
    return frames


def looked_at(frames: list[np.ndarray], long_side: int) -> tuple[list[list[tuple[float, bool, bool]]], float, float]:
    """Each frame's faces as (score, unsure, confirmed), the seconds of a detection and of a second look."""
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")).sized_for(long_side, 32)
    det.detect(frames[:1])
    start = time.perf_counter()
    found = [det.detect([frame])[0] for frame in frames]
    detecting = (time.perf_counter() - start) / len(frames)
    start, looks = time.perf_counter(), 0
    rows = []
    for frame, faces in zip(frames, found):
        rows.append([])
        for face in faces:
            unsure = det.unsure_of(face)
            confirmed = unsure and det.confirms(frame, face.box)
            looks += unsure
            rows[-1].append((face.score, unsure, confirmed, face.box))
    return rows, detecting, (time.perf_counter() - start) / max(looks, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--celeba", type=int, default=60)
    args = ap.parse_args()
    read = [cv2.imread(str(p))[..., ::-1] for p in sorted((args.data / "faces_lq/codeformer_cropped_faces").glob("*.png"))]
    celeba = [damaged(cv2.imread(str(p)))[..., ::-1] for p in sorted((args.data / "train_hq/celeba_align").glob("*.jpg"))[:args.celeba]]
    print("set | face px | faces found | unsure (under CONFIRM_BELOW) | confirmed of those | ms a detection | ms a second look")
    for name, faces in (("CodeFormer real", read), (f"CelebA damaged ({len(celeba)})", celeba)):
        for width in (48, 80, 160):
            rows, detecting, looking = looked_at([on_canvas(np.ascontiguousarray(f), width) for f in faces], 640)
            flat = [face for row in rows for face in row]
            print(f"{name} | {width} | {len(flat)} of {len(faces)} | {sum(f[1] for f in flat)} | {sum(f[2] for f in flat)} | "
                  f"{detecting * 1000:.0f} | {looking * 1000:.0f}")
    rows, detecting, looking = looked_at(astronaut_frames(), 3840)
    flat = [face for row in rows for face in row]
    false = [face for face in flat if face[3][3] > 900]
    print(f"astronaut 4K, 12 frames | her face in {len(flat) - len(false)} | false faces {len(false)} (scores "
          f"{min(f[0] for f in false):.2f}-{max(f[0] for f in false):.2f}), unsure {sum(f[1] for f in false)}, "
          f"confirmed {sum(f[2] for f in false)} | {detecting * 1000:.0f} ms a detection, {looking * 1000:.0f} ms a second look")

if __name__ == "__main__":
    main()
