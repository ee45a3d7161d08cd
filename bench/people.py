"""How far apart dlib's descriptors put one person's faces and two people's, and what linking a
person's tracks (one noise field) does where a film cuts back to them.

    python bench/people.py CLIP_A CLIP_B [--frames 30] [--every 10] [--model flipnet-small]
                           [--celeba TRAIN_HQ --identities 60]

CLIP_A and CLIP_B should each show one person, two different people (the shared test clips
``keep_real_1.mp4`` and ``keep_real_2.mp4`` do).

1. **Descriptor distances.** Every ``--every``-th frame of each clip is detected; its face is aligned
   to a 128 px portrait as pass 1 does (:class:`vidrestore.faces.people.Portraits`) and described.
   Printed: the smallest, median and largest distance between two portraits of A, of B, and
   between A and B. ``max_distance`` (0.4) should lie between most of the first two and the third.
2. **Cut back.** A clip of A's first ``--frames`` frames, B's, then A's again (FFV1, lossless) is
   restored twice with ``--model``: people linked (the default) and not (``people: {link: false}``).
   Printed: the mean and largest difference (8-bit levels, over the pixels restoration changed)
   between the output's first take of A and its second, which are the same input frames; and, for
   scale, what restoration changed there.
3. **Labelled people** (``--celeba``: the shared ``train_hq`` folder, whose ``provenance.csv``
   names each CelebA photo's celebrity). Photos of ``--identities`` people, 12 each, are described
   as pass 1 does, clean and degraded as video often is (halved, then JPEG quality 30); each
   person's photos make 4 "tracks" of 3 (a track's descriptor is the mean of its 3 best). Printed:
   how many pairs of tracks of one person, and of two people, lie within ``max_distance``. Photos
   of one celebrity span years, make-up and light, so they are linked less often than the frames
   of one video are; the figure that matters is how rarely two people are.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from collections import defaultdict
from pathlib import Path

import av
import cv2
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
    crops = [portraits.crop(image, max(found, key=lambda d: d.size).landmarks)
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


def degraded(image: np.ndarray) -> np.ndarray:
    """Halved in size and back, then JPEG quality 30: roughly what a face in an old broadcast keeps."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 30])
    return cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def labelled_tracks(train_hq: Path, identities: int, damage: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean descriptors of 4 tracks of 3 photos per person, and the person of each."""
    people: dict[str, list[Path]] = defaultdict(list)
    with open(train_hq / "provenance.csv") as f:
        for row in csv.DictReader(f):
            parts = row["source_path"].split("/")
            if len(parts) > 2 and parts[2].startswith("celeb_"):
                people[parts[2]].append(train_hq / row["file"])
    detector = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")).sized_for(218, 32)
    portraits = Portraits(PeopleConfig(), DlibIdentityEncoder())
    means, labels = [], []
    for label, name in enumerate(sorted(people, key=lambda n: int(n.split("_")[1]))[:identities]):
        crops = []
        for path in sorted(people[name]):
            image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            image = degraded(image) if damage else image
            found = detector.detect([image])[0]
            if found:
                crops.append(portraits.crop(image, max(found, key=lambda d: d.size).landmarks))
            if len(crops) == 12:
                break
        descriptors = portraits.encoder.embed(np.stack(crops))
        for k in range(0, len(crops) - 2, 3):
            means.append(descriptors[k:k + 3].mean(0))
            labels.append(label)
    return np.stack(means), np.array(labels)


def linked_pairs(train_hq: Path, identities: int) -> None:
    shipped = PeopleConfig().max_distance
    for damage in (False, True):
        means, labels = labelled_tracks(train_hq, identities, damage)
        d = np.linalg.norm(means[:, None] - means[None], axis=-1)
        pairs = np.triu(np.ones_like(d, bool), 1)
        same, other = pairs & (labels[:, None] == labels[None]), pairs & (labels[:, None] != labels[None])
        print(f"{'degraded' if damage else 'clean'}: {len(means)} tracks of {labels.max() + 1} people, {same.sum()} pairs of one "
              f"person (median {np.median(d[same]):.2f}), {other.sum()} of two (closest {d[other].min():.2f}); linked within")
        for limit in (0.35, 0.4, 0.45, 0.5):
            print(f"  {limit:.2f}{' (shipped)' if limit == shipped else '          '}: one person {(d[same] <= limit).mean():6.1%}, "
                  f"two people {(d[other] <= limit).mean():.2%} ({(d[other] <= limit).sum()} pairs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip_a", type=Path)
    parser.add_argument("clip_b", type=Path)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--model", default="flipnet-small")
    parser.add_argument("--celeba", type=Path, help="the shared train_hq folder (with provenance.csv)")
    parser.add_argument("--identities", type=int, default=60)
    args = parser.parse_args()
    if args.celeba:
        linked_pairs(args.celeba, args.identities)
    a, b = descriptors(args.clip_a, args.every), descriptors(args.clip_b, args.every)
    print("descriptor distance, min / median / max")
    print(f"  within A: {spread(a)}\n  within B: {spread(b)}\n  A to B:   {spread(a, b)}")
    with tempfile.TemporaryDirectory() as work:
        cut_back(args.clip_a, args.clip_b, args.frames, args.model, Path(work))


if __name__ == "__main__":
    main()
