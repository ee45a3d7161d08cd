"""Small faces in a crowd: how much of each face pass 1 tracks, with and without looking again.

    python bench/crowd.py --data ../shared/data [--faces 24] [--cols 6] [--cell 96] [--frames 48]
                          [--detector-weights ../shared/data/weights/retinaface_mobilenet0.25_Final.pth]

A clip is made of ``--faces`` CelebA photos in a grid (``--cell`` px wide each, on a grey ground),
swaying a few pixels a frame, so every face is in every frame and near the detectors' limits
(dlib's HOG finds faces of about 65 px in the image it works on, a frame enlarged up to 3 times for
the default --min-face 32; the 1 MB RetinaFace works at 320 px and up to 640 px). Pass 1
(:func:`vidrestore.pipeline.analyse`) runs on it with each detector, twice: as it is, and with
:func:`vidrestore.faces.detect.look_again` made to find nothing (how pass 1 was before a missed
face was looked for again). Per run: tracks, people, face-frames tracked (of faces x frames),
faces tracked from the first frame to the last, and the detections that looking again found.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

import vidrestore.pipeline.analysis as pass_one
from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.pipeline import PipelineConfig, analyse


def crowd_clip(path: Path, photos: list[Path], cols: int, cell: int, frames: int) -> Path:
    """The photos in a grid of ``cols`` columns, ``cell`` px wide each, swaying together."""
    faces = [np.asarray(Image.open(p).convert("RGB").resize((cell, cell * 218 // 178))) for p in photos]
    rows = -(-len(faces) // cols)
    tall = faces[0].shape[0]
    width, height = cols * cell + 32, rows * tall + 32
    width, height = width + width % 2, height + height % 2
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            frame = np.full((height, width, 3), 90, np.uint8)
            dx, dy = round(8 * np.sin(t / 6)), round(4 * np.cos(t / 7))  # at most 8 px from the middle
            for i, face in enumerate(faces):
                row, col = divmod(i, cols)
                y, x = 16 + row * tall + dy, 16 + col * cell + dx
                frame[y:y + tall, x:x + cell] = face
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def measure(clip: Path, detector_config: DetectorConfig, frames: int, look: bool) -> dict[str, int]:
    found_again = 0
    looked = pass_one.look_again

    def counted(detector, image, boxes):
        nonlocal found_again
        faces = looked(detector, image, boxes) if look else [[] for _ in boxes]
        found_again += sum(bool(f) for f in faces)  # an upper bound: a face another track had is not taken
        return faces

    pass_one.look_again = counted
    try:
        analysis = analyse(clip, PipelineConfig(), create_detector(detector_config, torch.device("cpu")))
    finally:
        pass_one.look_again = looked
    tracks = analysis.tracks
    return {"tracks": len(tracks), "people": len({t.person for t in tracks}), "face_frames": sum(len(t) for t in tracks),
            "whole": sum(t.start == 0 and t.end == frames for t in tracks), "found_again": found_again}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--faces", type=int, default=24)
    parser.add_argument("--cols", type=int, default=6)
    parser.add_argument("--cell", type=int, default=96)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--detector-weights", type=Path, default=None, help="RetinaFace checkpoint (default: under --data)")
    args = parser.parse_args()
    photos = sorted((args.data / "train_hq" / "celeba_align").glob("*.jpg"))[:args.faces]
    if len(photos) < args.faces:
        raise SystemExit(f"{args.data / 'train_hq' / 'celeba_align'} holds {len(photos)} photos, fewer than --faces {args.faces}")
    weights = args.detector_weights or args.data / "weights" / "retinaface_mobilenet0.25_Final.pth"
    detectors = {"dlib": DetectorConfig(backend="dlib")}
    if weights.is_file():
        detectors["retinaface"] = DetectorConfig(backend="retinaface", weights=str(weights))
    with tempfile.TemporaryDirectory() as tmp:
        clip = crowd_clip(Path(tmp) / "crowd.mp4", photos, args.cols, args.cell, args.frames)
        with av.open(str(clip)) as c:
            size = f"{c.streams.video[0].width}x{c.streams.video[0].height}"
        print(f"clip: {args.faces} faces, {args.cell} px wide each, {size}, {args.frames} frames "
              f"({args.faces * args.frames} face-frames)")
        print(f"{'detector':<12}{'looking again':<15}{'tracks':>7}{'people':>7}{'face-frames':>12}{'whole':>6}{'found again':>12}")
        for name, config in detectors.items():
            for look in (False, True):
                m = measure(clip, config, args.frames, look)
                print(f"{name:<12}{'on' if look else 'off':<15}{m['tracks']:>7}{m['people']:>7}{m['face_frames']:>12}"
                      f"{m['whole']:>6}{m['found_again']:>12}")


if __name__ == "__main__":
    main()
