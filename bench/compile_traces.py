"""How often torch.compile traces the restorer's network over a track's windows, and what each window costs.

A trace is paid once per input layout and shape the network meets; the restorer should meet one:
    python bench/compile_traces.py                      # dynamo with eager kernels: no C++ build, any machine
    python bench/compile_traces.py --backend inductor --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
import torch._dynamo
from torch._dynamo.utils import counters

from vidrestore.config import resolve_config
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.models.flipnet import Flipnet, load_config
from vidrestore.restore import FlipnetRestorer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--architecture", default="tiny", help="model config (tiny, small, base); untrained weights")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--backend", default="eager")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--window", type=int, default=4, help="frames per window")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Flipnet(load_config(args.architecture))
    sampler = resolve_config(SamplerConfig, "presets", args.preset)
    restorer = FlipnetRestorer(model, sampler, device, None, args.architecture, compile_backend=args.backend)
    size = model.config.image_size
    crops = torch.rand(args.windows * args.window, 3, size, size)
    torch._dynamo.reset()
    counters.clear()
    context = restorer.start_track(0, crops[: args.window])
    print(f"{args.architecture} at {size} px, {args.preset} ({sampler.steps} steps), backend {args.backend}, {device}")
    for w in range(args.windows):
        t = time.perf_counter()
        restorer.restore(crops[w * args.window : (w + 1) * args.window], context)
        if device.type == "cuda":
            torch.cuda.synchronize()
        print(f"window {w + 1}: {time.perf_counter() - t:6.2f} s, traces so far {counters['stats']['unique_graphs']}")


if __name__ == "__main__":
    main()
