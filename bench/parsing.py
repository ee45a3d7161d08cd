"""Face parsing's cost: ParseNet at facexlib's size (512 px) per face, and the paste masks of a
window of one track's crops parsed on every frame or on every Nth (``--parse-every``).

    python bench/parsing.py [--window 16] [--every 1 4 8] [--repeat 2] [--device cuda] [--dtype auto|fp32|bf16]

No ParseNet weights ship with vidrestore, so the network is randomly initialised in facexlib's
layout (``ParseNetConfig()``): its time does not depend on its weights. Prints seconds a face for
the network in contiguous and channels-last layout (the loader's choice), at ``--dtype`` (as
vidrestore's: auto is bf16 on CUDA and on a CPU with AMX or AVX-512 BF16), and for each ``--every``
the seconds a window of ``--window`` crops of 128 px takes (``faces.parsing.sparse_masks`` with
the keys ``pipeline.restoring.parse_keys`` picks), fastest of ``--repeat``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vidrestore.faces.parsing import ParseNet, ParseNetConfig, ParsingMasker, sparse_masks
from vidrestore.faces.types import Track
from vidrestore.models.precision import DTYPES, autocast, network_dtype, precision_name
from vidrestore.pipeline.restoring import parse_keys


def fastest(job, repeat: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        job()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--every", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["auto", *DTYPES], default="auto")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = network_dtype(args.dtype, device)
    torch.manual_seed(0)
    net = ParseNet(ParseNetConfig()).eval().to(device)
    faces = torch.rand(2, 3, 512, 512, device=device) * 2 - 1  # as the masker feeds it
    print(f"ParseNet {ParseNetConfig().size} px, random weights, on {device} in {precision_name(dtype)}, "
          f"{torch.get_num_threads()} torch threads, fastest of {args.repeat}")
    with torch.no_grad():
        for layout, form in (("contiguous", torch.contiguous_format), ("channels-last", torch.channels_last)):
            net.to(memory_format=form)
            with autocast(device, dtype):  # one context a layout: autocast keeps its casts of the weights while it lasts
                print(f"{layout:14s} {fastest(lambda: net(faces), args.repeat, device) / len(faces):6.2f} s a face")
    masker = ParsingMasker(net, dtype)
    crops = torch.rand(args.window, 3, 128, 128, device=device)
    track = Track(track_id=0, shot_index=0, frames=np.arange(args.window), boxes=np.zeros((args.window, 4), np.float32),
                  landmarks=np.zeros((args.window, 5, 2), np.float32), scores=np.ones(args.window, np.float32))
    moments = [(i, 0) for i in range(args.window)]
    for every in args.every:
        keys = parse_keys(track, moments, every)
        seconds = fastest(lambda: sparse_masks(masker, crops, keys), args.repeat, device)
        print(f"every {every}: {len(keys):2d} of {args.window} crops parsed, {seconds:6.2f} s a window, {seconds / args.window:5.2f} s a face-frame")


if __name__ == "__main__":
    main()
