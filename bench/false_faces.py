"""Faces dlib's HOG is unsure of, with and without asking dlib's CNN to confirm them.

    python bench/false_faces.py --data ../shared/data [--celeba 60]

HOG's faces scoring under ``CONFIRM_BELOW`` are kept only where dlib's CNN finds them too
(``DlibDetector._confirmed``). This counts, for the detector as a video of each size gets it
(``sized_for(long side, 32)``), with confirming off and on, and with the time of a detection:

* real faces: CodeFormer's 20 real damaged faces and ``--celeba`` CelebA faces blurred (sigma 1.2)
  and saved as JPEG at quality 30, each shrunk to 48, 80 and 160 px wide on a 640x360 grey canvas:
  the faces found and how many of them scored under ``CONFIRM_BELOW``;
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

from vidrestore.faces import detect
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


def detected(frames: list[np.ndarray], long_side: int, confirm: bool) -> tuple[list, float]:
    detect.CONFIRM_BELOW = 0.95 if confirm else 0.0
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")).sized_for(long_side, 32)
    det.detect(frames[:1])
    start = time.perf_counter()
    found = [det.detect([frame])[0] for frame in frames]
    return found, (time.perf_counter() - start) / len(frames)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--celeba", type=int, default=60)
    args = ap.parse_args()
    read = [cv2.imread(str(p))[..., ::-1] for p in sorted((args.data / "faces_lq/codeformer_cropped_faces").glob("*.png"))]
    celeba = [damaged(cv2.imread(str(p)))[..., ::-1] for p in sorted((args.data / "train_hq/celeba_align").glob("*.jpg"))[:args.celeba]]
    print("set | face px | confirm | faces found | of them under CONFIRM_BELOW | ms a detection")
    for name, faces in (("CodeFormer real", read), (f"CelebA damaged ({len(celeba)})", celeba)):
        for width in (48, 80, 160):
            frames = [on_canvas(np.ascontiguousarray(f), width) for f in faces]
            for confirm in (False, True):
                found, seconds = detected(frames, 640, confirm)
                unsure = sum(f.score < 0.95 for faces_in in found for f in faces_in)
                print(f"{name} | {width} | {'on' if confirm else 'off'} | {sum(map(len, found))} of {len(frames)} | {unsure} | {seconds * 1000:.0f}")
    frames = astronaut_frames()
    for confirm in (False, True):
        found, seconds = detected(frames, 3840, confirm)
        false = [round(f.score, 2) for faces_in in found for f in faces_in if f.box[3] > 900]
        real = sum(f.box[3] <= 900 for faces_in in found for f in faces_in)
        print(f"astronaut 4K, 12 frames | confirm {'on' if confirm else 'off'} | her face in {real} | false faces {len(false)} "
              f"(scores {min(false, default=0):.2f}-{max(false, default=0):.2f}) | {seconds * 1000:.0f} ms a detection")


if __name__ == "__main__":
    main()
