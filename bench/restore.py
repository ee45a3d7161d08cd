"""Restoration throughput (face-frames per second) against batch size, steps and dtype, and
batched-track vs frame-by-frame as a ratio, in one run; with ``--tracks N``, also N faces in a scene
restored track after track against all in one forward pass per window (cross-track batching).

    python bench/restore.py [--model flipnet-small | path.safetensors] [--device cuda] [--frames 32] [--tracks 4]
    python bench/restore.py --architecture small@256   # a freshly initialised network: the speed of a size with no weights yet
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from torch.profiler import ProfilerActivity

from vidrestore.config import resolve_config
from vidrestore.diffusion.flow import flows_to_previous
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.models.flipnet import Flipnet, load_config
from vidrestore.models.precision import DTYPES
from vidrestore.restore import FlipnetRestorer, Restorer, load_restorer


def throughput(restorer, frames: torch.Tensor, batch: int) -> float:
    ctx = restorer.start_track(0, frames[:1])
    if frames.is_cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(0, len(frames), batch):
        restorer.restore(frames[i:i + batch], ctx)
    if frames.is_cuda:
        torch.cuda.synchronize()
    return len(frames) / (time.perf_counter() - t)


def scene_throughput(restorer, frames: torch.Tensor, tracks: int, window: int, together: bool) -> float:
    """``frames`` split into ``tracks`` faces seen at once, restored ``window`` frames at a time."""
    faces = frames.chunk(tracks)
    contexts = [restorer.start_track(j, f[:1]) for j, f in enumerate(faces)]
    if frames.is_cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(0, len(faces[0]), window):
        pieces = [(f[i:i + window], c) for f, c in zip(faces, contexts)]
        if together:
            restorer.restore_tracks(pieces)
        else:
            for piece in pieces:
                restorer.restore_tracks([piece])
    if frames.is_cuda:
        torch.cuda.synchronize()
    return sum(len(f) for f in faces) / (time.perf_counter() - t)


def bench_restorer(args: argparse.Namespace, sampler: SamplerConfig, device: torch.device, dtype: torch.dtype) -> Restorer:
    """``--model``'s restorer, or with ``--architecture CONFIG@SIZE`` a randomly initialised network
    of that config at that face size (time per step does not depend on the weights)."""
    if not args.architecture:
        return load_restorer(args.model, sampler, device, dtype, None, 128, args.compile)
    name, _, size = args.architecture.partition("@")
    config = load_config(name)
    config = dataclasses.replace(config, image_size=int(size)) if size else config
    torch.manual_seed(0)
    return FlipnetRestorer(Flipnet(config), sampler, device, None, f"untrained {config.name} at {config.image_size} px",
                           dtype=dtype, compile_backend=args.compile)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="flipnet-small")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--presets", default="fast,balanced")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--architecture", default="", metavar="CONFIG@SIZE",
                    help="time an untrained network of this config and face size (e.g. small@256) instead of --model")
    ap.add_argument("--compile", default="", metavar="BACKEND", help="torch.compile backend (e.g. inductor)")
    ap.add_argument("--memory-format", choices=["channels_last", "contiguous"], default="",
                    help="override the restorer's choice (channels_last) to measure it")
    ap.add_argument("--micro-batch", type=int, help="override the restorer's crops per forward pass (4 on the CPU, "
                    "0: the whole batch) to measure it")
    ap.add_argument("--profile", action="store_true", help="after each table, torch.profiler's top operations for one "
                    "pass at the largest batch, and the time of that pass's optical flow")
    ap.add_argument("--tracks", type=int, default=0, help="also compare N simultaneous faces track by track and together")
    ap.add_argument("--window", type=int, default=8, help="frames per track per window in the --tracks comparison")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = f"untrained {args.architecture}" if args.architecture else args.model
    print(f"device {device}; model {model}; {args.frames} frames of one track; compile {args.compile or 'no'}")
    print(f"{'preset':10s} {'steps':>5s} {'dtype':>5s} {'batch':>5s} {'face-frames/s':>14s}")
    for preset in args.presets.split(","):
        sampler = resolve_config(SamplerConfig, "presets", preset)
        for dname in args.dtypes.split(","):
            restorer = bench_restorer(args, sampler, device, DTYPES[dname])
            if args.memory_format:
                restorer.model.to(memory_format={"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}[args.memory_format])
            if args.micro_batch is not None:
                restorer.micro_batch = args.micro_batch
            frames = torch.rand(args.frames, 3, restorer.face_size, restorer.face_size, device=device)
            throughput(restorer, frames[:2], 2)  # warm-up
            rates = {}
            for b in map(int, args.batches.split(",")):
                rates[b] = throughput(restorer, frames, b)
                print(f"{preset:10s} {sampler.steps:5d} {dname:>5s} {b:5d} {rates[b]:14.2f}")
            top = max(rates)
            if 1 in rates and top > 1:
                print(f"{'':10s} batched ({top}) / frame-by-frame (1): {rates[top] / rates[1]:.1f}x")
            if args.tracks > 1:
                apart, together = (scene_throughput(restorer, frames, args.tracks, args.window, joint) for joint in (False, True))
                print(f"{'':10s} {args.tracks} faces, window {args.window}: track by track {apart:.2f}, "
                      f"together {together:.2f} face-frames/s ({together / apart:.2f}x)")
            if args.profile:
                profile(restorer, frames[:top])


def profile(restorer, frames: torch.Tensor) -> None:
    """Where one batched pass spends its time: the optical flow on the host, then the top operations."""
    crops = (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    t = time.perf_counter()
    flows_to_previous(crops, frames.device)
    print(f"optical flow for {len(frames)} frames: {time.perf_counter() - t:.3f} s")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if frames.is_cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        throughput(restorer, frames, len(frames))
    key = "cuda_time_total" if frames.is_cuda else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=48))


if __name__ == "__main__":
    main()
