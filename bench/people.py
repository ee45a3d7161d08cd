"""How far apart dlib's descriptors put one person's faces and two people's, and what linking a
person's tracks (one noise field) does where a film cuts back to them.

    python bench/people.py CLIP_A CLIP_B [--frames 30] [--every 10] [--model flipnet-small]

CLIP_A and CLIP_B should each show one person, two different people (the shared test clips
``keep_real_1.mp4`` and ``keep_real_2.mp4`` do).

1. **Descriptor distances.** Every ``--every``-th frame of each clip is detected; its face is aligned
   to a 128 px portrait as pass 1 does (:class:`vidrestore.faces.people.Portraits`) and described.
   Printed: the smallest, median and largest distance between two portraits of A, of B, and
   between A and B. ``max_distance`` (0.5) should lie between the first two and the third.
2. **Cut back.** A clip of A's first ``--frames`` frames, B's, then A's again (FFV1, lossless) is
   restored twice with ``--model``: people linked (the default) and not (``people: {link: false}``).
   Printed: the mean and largest difference (8-bit levels, over the pixels restoration changed)
   between the output's first take of A and its second, which are the same input frames; and, for
   scale, what restoration changed there.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

from vidrestore.cli import main as vidrestore
from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.faces.identity import DlibIdentityEncoder
from vidrestore.faces.people import PeopleConfig, Portraits
from vidrestore.io import VideoReader


def frames_of(clip: Path, count: int) -> list[np.ndarray]:
    with VideoReader(clip) as reader:
        return [f.image for _, f in zip(range(count), reader)]


def descriptors(clip: Path, every: int) -> np.ndarray:
    detector = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    with VideoReader(clip) as reader:
        images = [f.image for f in reader][::every]
    detector = detector.sized_for(max(images[0].shape[:2]), 32)
    portraits = Portraits(PeopleConfig(), DlibIdentityEncoder())
    crops = [portraits._crop(image, max(found, key=lambda d: d.size).landmarks)
             for image in images for found in [detector.detect([image])[0]] if found]
    return portraits.encoder.embed(np.stack(crops))


def spread(a: np.ndarray, b: np.ndarray | None = None) -> str:
    d = np.linalg.norm(a[:, None] - (a if b is None else b)[None], axis=-1)
    values = d[np.triu_indices(len(a), 1)] if b is None else d.ravel()
    return f"{values.min():.2f} / {np.median(values):.2f} / {values.max():.2f} ({len(values)} pairs)"


def write_lossless(path: Path, images: list[np.ndarray]) -> Path:
    h, w = min(i.shape[0] for i in images), min(i.shape[1] for i in images)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=20)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        for image in images:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="rgb24")))
        out.mux(stream.encode(None))
    return path


def decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(int)


def cut_back(a: Path, b: Path, frames: int, model: str, work: Path) -> None:
    take_a, take_b = frames_of(a, frames), frames_of(b, frames)
    clip = write_lossless(work / "a_b_a.mkv", take_a + take_b + take_a)
    source = decoded(clip)
    (work / "unlinked.yaml").write_text("people: {link: false}\n")
    for label, extra in [("linked", []), ("not linked", ["--config", str(work / "unlinked.yaml")])]:
        out = work / f"{label.replace(' ', '_')}.mkv"
        assert vidrestore([str(clip), str(out), "--model", model, "--codec", "ffv1", "--quiet", *extra]) == 0
        restored = decoded(out)
        first, again = restored[:frames], restored[2 * frames:]
        changed = np.abs(first - source[:frames]).max(axis=3) > 2
        gap = np.abs(first - again).max(axis=3)[changed]
        print(f"{label:>10}: second take of A against the first: mean {gap.mean():.2f}, max {gap.max()} levels; "
              f"restoration changed those pixels by {np.abs(first - source[:frames]).max(axis=3)[changed].mean():.2f} on average")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip_a", type=Path)
    parser.add_argument("clip_b", type=Path)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--model", default="flipnet-small")
    args = parser.parse_args()
    a, b = descriptors(args.clip_a, args.every), descriptors(args.clip_b, args.every)
    print("descriptor distance, min / median / max")
    print(f"  within A: {spread(a)}\n  within B: {spread(b)}\n  A to B:   {spread(a, b)}")
    with tempfile.TemporaryDirectory() as work:
        cut_back(args.clip_a, args.clip_b, args.frames, args.model, Path(work))


if __name__ == "__main__":
    main()
