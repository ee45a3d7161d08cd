"""What reading a log film scan as what it is gains: FLIPNET on held-out faces stored as 10-bit
printing density (Cineon log, as a film scanner's DPX pictures hold them), restored on the sRGB
view that vidrestore shows the model (io.linear) against restored on the codes taken for video
(what a tool that reads DPX as video does, and what vidrestore did before it read the header).

    python bench/log_scans.py --pack runs/data/celeba128.npz [--model flipnet-small] [--count 64] [--preset fast]

The faces are bench/quality.py's: the pack's last ``count`` faces, degraded with the default
degradations at seed 1234. Each LQ face is stored as the codes of the light it shows. Either way
the restored face goes back into codes, and every row is scored on what those codes show (the
sRGB view) against the HQ face: PSNR, SSIM, dlib identity cosine.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from quality import held_out_faces, load_model, print_scores, to_uint8

from vidrestore.config import resolve_config
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.faces.identity import DlibIdentityEncoder
from vidrestore.io.linear import CINEON_TOP, Light, from_light, srgb_decode, srgb_encode, to_light
from vidrestore.train.trainer import restore_batch


def to_codes(shown: torch.Tensor) -> torch.Tensor:
    """sRGB pictures in [0, 1] as the 10-bit printing-density codes of the light they show."""
    light = srgb_decode(shown.double().numpy())
    return torch.from_numpy(np.clip(np.rint(from_light(light, Light.CINEON) * CINEON_TOP), 0, CINEON_TOP))


def view(codes: torch.Tensor) -> torch.Tensor:
    """What 10-bit printing-density codes show: their light, sRGB-encoded, in [0, 1]."""
    return torch.from_numpy(srgb_encode(to_light(codes.numpy() / CINEON_TOP, Light.CINEON))).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", required=True)
    ap.add_argument("--model", default="flipnet-small")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--preset", default="fast")
    args = ap.parse_args()
    path, model = load_model(args.model)
    hq, lq = held_out_faces(args.pack, args.count)
    sampler = resolve_config(SamplerConfig, "presets", args.preset)
    enc = DlibIdentityEncoder()
    codes = to_codes(lq)

    def restored(seen: torch.Tensor) -> torch.Tensor:
        return restore_batch(model, seen, torch.from_numpy(enc.embed(to_uint8(seen))), sampler)

    as_video = restored(codes.float() / CINEON_TOP)  # the codes taken for display-referred samples
    rows = {"LQ scan, as shown": view(codes),
            "codes taken for video": view(torch.clamp(torch.round(as_video.double() * CINEON_TOP), 0, CINEON_TOP)),
            "sRGB view (vidrestore)": view(to_codes(restored(view(codes))))}
    print(f"model {path.name}, {args.preset} preset; {len(hq)} held-out faces at {hq.shape[-1]} px as 10-bit printing density; "
          "degradations: default, seed 1234; scored on what the codes show")
    print_scores(rows, hq, enc, width=24)


if __name__ == "__main__":
    main()
