"""A face in a fast pan: how much of it pass 1 tracks, with and without looking for it by its look.

    python bench/fast_pan.py --data ../shared/data [--speeds 0.05,0.15,0.3,0.45,0.6,0.8] [--frames 60]
                             [--detector-weights ../shared/data/weights/retinaface_mobilenet0.25_Final.pth]

A CelebA photo (134x164 px, a face of about 73 px box side) swings across a still 640x360 ground
of blurred noise, x = 253 + 240 sin(speed t), sharp in every frame (real footage blurs a face
this fast). Pass 1 (:func:`vidrestore.pipeline.analyse`, detection every 4th frame) runs on it
with each detector, twice: as it is, and with the search of :mod:`vidrestore.faces.motion` made to
find nothing (the flow alone, as before it). Per run: the tracks (first frame, end), the frames
they cover of the clip's, the searches made, and how far the followed frames' boxes are from
where the face is (after the detections' own offset from the photo's corner).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from PIL import Image

import vidrestore.faces.motion as motion
from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.pipeline import PipelineConfig, analyse

WIDTH, HEIGHT = 640, 360
PHOTO = (134, 164)


def photo_x(t: np.ndarray | int, speed: float) -> np.ndarray:
    return np.round(WIDTH / 2 - PHOTO[0] / 2 + (WIDTH / 2 - 80) * np.sin(np.asarray(t) * speed)).astype(int)


def pan_clip(path: Path, photo: Path, speed: float, frames: int) -> Path:
    face = np.asarray(Image.open(photo).convert("RGB").resize(PHOTO))
    noise = np.random.default_rng(1).uniform(40, 200, (HEIGHT // 8, WIDTH // 8, 3)).astype(np.uint8)
    ground = cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for t in range(frames):
            frame = ground.copy()
            x = int(photo_x(t, speed))
            frame[100:100 + PHOTO[1], x:x + PHOTO[0]] = face
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def measure(clip: Path, detector_config: DetectorConfig, speed: float, search: bool) -> dict[str, object]:
    searches = 0
    searched = motion._searched_motion

    def counted(*args):
        nonlocal searches
        searches += 1
        return searched(*args) if search else None

    motion._searched_motion = counted
    try:
        analysis = analyse(clip, PipelineConfig(), create_detector(detector_config, torch.device("cpu")))
    finally:
        motion._searched_motion = searched
    errors = []
    for track in analysis.tracks:
        offset = track.boxes[:, 0] - photo_x(track.frames, speed)
        followed = ~track.detected
        if followed.any():
            errors.append(np.abs(offset[followed] - np.median(offset[track.detected])).max())
    return {"tracks": [(t.start, t.end) for t in analysis.tracks], "covered": len({f for t in analysis.tracks for f in t.frames}),
            "searches": searches, "error": max(errors, default=float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--speeds", default="0.05,0.15,0.3,0.45,0.6,0.8", help="radians a frame of the swing")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--detector-weights", type=Path, default=None, help="RetinaFace checkpoint (default: under --data)")
    args = parser.parse_args()
    photos = sorted((args.data / "train_hq" / "celeba_align").glob("*.jpg"))
    if len(photos) < 10:
        raise SystemExit(f"{args.data / 'train_hq' / 'celeba_align'} holds {len(photos)} photos; the bench takes the tenth")
    weights = args.detector_weights or args.data / "weights" / "retinaface_mobilenet0.25_Final.pth"
    detectors = {"dlib": DetectorConfig(backend="dlib")}
    if weights.is_file():
        detectors["retinaface"] = DetectorConfig(backend="retinaface", weights=str(weights))
    print(f"{'speed':>6}{'px/frame':>9}  {'detector':<11}{'search':<8}{'covered':>8}{'searches':>9}{'max error':>10}  tracks")
    with tempfile.TemporaryDirectory() as tmp:
        for speed in (float(s) for s in args.speeds.split(",")):
            clip = pan_clip(Path(tmp) / f"pan{speed}.mp4", photos[9], speed, args.frames)
            fastest = int(np.abs(np.diff(photo_x(np.arange(args.frames), speed))).max())
            for name, config in detectors.items():
                for search in (False, True):
                    m = measure(clip, config, speed, search)
                    print(f"{speed:>6.2f}{fastest:>9d}  {name:<11}{'on' if search else 'off':<8}{m['covered']:>5d}/{args.frames:<2d}"
                          f"{m['searches']:>9d}{m['error']:>10.1f}  {m['tracks']}")


if __name__ == "__main__":
    main()
