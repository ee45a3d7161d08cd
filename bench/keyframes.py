"""How steady the aligned face crops are when the detector skips frames, with and without
optical-flow following in between.

    python bench/keyframes.py CLIP [CLIP ...] [--detector retinaface --detector-weights W] [--every 1,4,8] [--own-landmarks]

For each clip and each detection interval k, pass 1 runs twice (k > 1): with the tracker following
faces by optical flow between detections, and with the smoother interpolating them. Every frame of
every track is then aligned to the 128 px crop the restorer would get. Reported per variant:

* **crop motion**: the mean absolute difference (8-bit levels) between consecutive crops of a
  track inside the paste mask. A crop that holds the face still scores low; landmarks that lag
  behind the head, or jitter, score high.
* **off k=1**: the mean landmark distance, as a share of the face size, from the track found with
  the detector on every frame. That track is not ground truth (the detector's landmarks jitter by
  a few percent of the face from frame to frame), so this says how far a variant wanders, not how
  right it is.
* **analyse s**: the wall time of pass 1.

``--own-landmarks`` keeps a RetinaFace checkpoint's own landmarks where vidrestore would re-fit
them with dlib's predictor (``refine_landmarks: false``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from vidrestore.faces.align import align_faces
from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.faces.paste import face_mask
from vidrestore.faces.types import Track
from vidrestore.io import VideoReader
from vidrestore.pipeline import PipelineConfig, analyse

FACE = 128


def crop_motion(clip: Path, tracks: list[Track]) -> float:
    """Mean absolute change (8-bit levels) between consecutive crops of each track, inside the mask."""
    mask = face_mask(FACE, torch.device("cpu"))[0, 0]
    previous: dict[int, torch.Tensor] = {}
    changes = []
    with VideoReader(clip) as reader:
        for frame in reader:
            image = torch.from_numpy(frame.image).permute(2, 0, 1)
            for t in tracks:
                if not t.covers(frame.index):
                    continue
                crop = align_faces(image, t.landmarks_at(frame.index)[None], FACE)[0][0]
                if t.track_id in previous and frame.index > t.start:
                    diff = (crop - previous[t.track_id]).abs().mean(0)
                    changes.append(float((diff * mask).sum() / mask.sum()) * 255)
                previous[t.track_id] = crop
    return float(np.mean(changes)) if changes else float("nan")


def off_reference(tracks: list[Track], reference: list[Track]) -> float:
    """Mean landmark distance over face size from the reference track sharing the most frames."""
    errors = []
    for t in tracks:
        ref = max(reference, key=lambda r: len(np.intersect1d(r.frames, t.frames)), default=None)
        common = np.intersect1d(ref.frames, t.frames) if ref is not None else np.zeros(0, int)
        if len(common) == 0:
            continue
        a, b = t.landmarks[common - t.start], ref.landmarks[common - ref.start]
        size = np.sqrt(np.prod(ref.boxes[common - ref.start, 2:] - ref.boxes[common - ref.start, :2], -1))
        errors.append(np.linalg.norm(a - b, axis=-1).mean(-1) / size)
    return float(np.concatenate(errors).mean()) if errors else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clips", type=Path, nargs="+")
    ap.add_argument("--detector", default="dlib")
    ap.add_argument("--detector-weights")
    ap.add_argument("--every", default="1,4,8", help="detection intervals to compare; 1 is the reference")
    ap.add_argument("--own-landmarks", action="store_true", help="do not re-fit a RetinaFace checkpoint's landmarks")
    args = ap.parse_args()
    base = PipelineConfig(detector=DetectorConfig(backend=args.detector, weights=args.detector_weights,
                                                  refine_landmarks=not args.own_landmarks))
    detector = create_detector(base.detector, torch.device("cpu"))
    intervals = sorted({1, *(int(k) for k in args.every.split(","))})
    print(f"detector {detector.name}")
    print(f"{'clip':24s} {'k':>2s} {'between':12s} {'tracks':>6s} {'frames':>6s} {'crop motion':>11s} {'off k=1':>8s} {'analyse s':>9s}")
    for clip in args.clips:
        reference: list[Track] = []
        for k in intervals:
            for follow in ([True, False] if k > 1 else [True]):
                cfg = dataclasses.replace(base, tracker=dataclasses.replace(base.tracker, detect_every=k, follow=follow))
                start = time.perf_counter()
                tracks = analyse(clip, cfg, detector).tracks
                seconds = time.perf_counter() - start
                reference = tracks if k == 1 else reference
                between = "-" if k == 1 else ("flow" if follow else "interpolated")
                print(f"{clip.name:24s} {k:2d} {between:12s} {len(tracks):6d} {sum(len(t) for t in tracks):6d} "
                      f"{crop_motion(clip, tracks):11.2f} {off_reference(tracks, reference) * 100:7.2f}% {seconds:9.2f}", flush=True)


if __name__ == "__main__":
    main()
