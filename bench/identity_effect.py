"""How much the identity embedding steers FLIPNET: one person's faces restored with their own
embedding and with another person's, the noise and everything else the same.

    python bench/identity_effect.py ../shared/data/videos/keep_synthetic_1.mp4 ../shared/data/videos/keep_synthetic_2.mp4
                                    [--model flipnet-small] [--preset fast] [--frames 8] [--dtype auto]

Both clips are of aligned faces filling the frame (KEEP's synthetic ones), of two people. The first
clip's faces (``--frames`` of them, every 10th frame) are restored twice as one track: anchored on
their own frames, then on the second clip's. Prints the two embeddings' distance, how far the two
restorations lie apart (mean absolute difference in 8-bit levels) against how far restoration
moved the faces at all, and the restored faces' mean descriptor distance to each person: a network
that follows its identity input brings the second restoration closer to the second person.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from identity import crops_of

from vidrestore.config import resolve_config
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.faces.identity import DlibIdentityEncoder
from vidrestore.models.precision import DTYPES, network_dtype
from vidrestore.restore import load_restorer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path, help="the person whose faces are restored")
    ap.add_argument("other", type=Path, help="another person, whose embedding is given instead")
    ap.add_argument("--model", default="flipnet-small")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--dtype", choices=["auto", *DTYPES], default="auto")
    args = ap.parse_args()
    cpu = torch.device("cpu")
    encoder = DlibIdentityEncoder()
    restorer = load_restorer(args.model, resolve_config(SamplerConfig, "presets", args.preset), cpu,
                             network_dtype(args.dtype, cpu), encoder, 128)
    size = restorer.face_size
    own, other = (torch.from_numpy(crops_of(clip, args.frames, size, every=10)).permute(0, 3, 1, 2).float() / 255
                  for clip in (args.clip, args.other))
    restored = {}
    for name, reference in (("own", own), ("other", other)):
        context = restorer.start_track(0, own, reference)  # one track id: the same noise both times
        restored[name] = restorer.restore(own, context)
        restored[name + " embedding"] = context.identity.cpu().numpy()

    def levels(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().mean() * 255)

    def to_uint8(x: torch.Tensor) -> np.ndarray:
        return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()

    people = {"own": encoder.embed(to_uint8(own)).mean(0), "other": encoder.embed(to_uint8(other)).mean(0)}
    print(f"{restorer.name}, preset {args.preset}; {len(own)} faces of {args.clip.name}; other person: {args.other.name}")
    print(f"distance between the two embeddings given: {np.linalg.norm(restored['own embedding'] - restored['other embedding']):.3f}")
    print(f"restoration moved the faces by {levels(restored['own'], own):.2f} levels (own embedding); "
          f"the other person's embedding moved the result by {levels(restored['other'], restored['own']):.2f}")
    for name in ("own", "other"):
        described = encoder.embed(to_uint8(restored[name]))
        print(f"restored with the {name:5s} embedding: descriptor distance to the person {np.linalg.norm(described - people['own'], axis=1).mean():.4f}, "
              f"to the other person {np.linalg.norm(described - people['other'], axis=1).mean():.4f}")


if __name__ == "__main__":
    main()
