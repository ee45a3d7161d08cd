"""Whether x264 codes the same frames with the same bits run after run, and what keeping it to its
AVX2 code costs (vidrestore.io.encoders.x264_instruction_sets).

    python bench/x264_bits.py CLIP [--size 720x576] [--frames 60] [--runs 6]

The first ``--frames`` frames of CLIP, tiled or cut to ``--size``, are made into new YUV frames
for every run (as the writer's are) and coded with x264 at vidrestore's defaults (CRF 18, preset
medium), once with the instruction sets x264 finds itself and once with those vidrestore gives
it, alternating. It prints the CPU's features as torch sees them, how many different bitstreams
each way gave in ``--runs`` runs, and the CPU seconds of each way's runs.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import time
from pathlib import Path

import av
import numpy as np
import torch

from vidrestore.io import VideoReader
from vidrestore.io.encoders import x264_instruction_sets


def frames_of(clip: Path, size: tuple[int, int], count: int) -> list[np.ndarray]:
    width, height = size
    with VideoReader(clip) as reader:
        images = [f.image for f in itertools.islice(reader, count)]
    return [np.ascontiguousarray(np.tile(i, (-(-height // i.shape[0]), -(-width // i.shape[1]), 1))[:height, :width]) for i in images]


def coded(images: list[np.ndarray], params: str, out: Path) -> tuple[str, float]:
    """The digest of the packets x264 writes for ``images``, and the CPU seconds it took."""
    digest = hashlib.sha256()
    started = time.process_time()
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        stream.options = {"crf": "18", "preset": "medium", **({"x264-params": params} if params else {})}
        for pts, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = pts
            for packet in stream.encode(frame):
                digest.update(bytes(packet))
        for packet in stream.encode():
            digest.update(bytes(packet))
    return digest.hexdigest(), time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--size", default="720x576")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    size = tuple(int(n) for n in args.size.split("x"))
    images = frames_of(args.clip, size, args.frames)
    given = x264_instruction_sets()
    ways = {"x264's own choice": "", f"vidrestore's (asm={given or 'its own'})": f"asm={given}" if given else ""}
    results: dict[str, list[tuple[str, float]]] = {name: [] for name in ways}
    out = Path("/tmp") / "vidrestore-x264-bits.mp4"
    for _ in range(args.runs):
        for name, params in ways.items():
            results[name].append(coded(images, params, out))
    out.unlink(missing_ok=True)
    print(f"clip: {args.clip.name}, {len(images)} frames at {size[0]}x{size[1]}; torch's CPU capability: "
          f"{torch.backends.cpu.get_cpu_capability()}")
    for name, runs in results.items():
        seconds = [s for _, s in runs]
        different = len({d for d, _ in runs})
        print(f"{name:32s} {different} different bitstream{'s' if different > 1 else ''} in {len(runs)} runs; CPU s "
              f"{' '.join(f'{s:.2f}' for s in seconds)} (median {np.median(seconds):.2f})")


if __name__ == "__main__":
    main()
