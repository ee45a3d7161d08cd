"""What reading pictures as the light they store gains: FLIPNET on held-out faces stored as
10-bit codes of printing density (Cineon log, as a film scanner's DPX pictures hold them), PQ or
HLG (HDR video), or a camera's S-Log3, V-Log, LogC3, LogC4 or Apple Log, restored on the view that vidrestore shows the
model (io.linear) against restored on the codes taken for SDR video (what a tool that reads them
as video does, and what vidrestore did before it read the DPX header or the HDR transfer tag, and
does for a camera's log unless --light names it).

    python bench/light.py --pack runs/data/celeba128.npz [--light cineon|pq|hlg|slog3|slog3-sgamut3|slog2|vlog|logc3|logc4|applelog|clog3|clog2|clog|dlog] [--model flipnet-small] [--count 64] [--preset fast]

The faces are bench/quality.py's: the pack's last ``count`` faces, degraded with the default
degradations at seed 1234. Each face is stored as the codes of the light it shows (HDR's graded as
BT.2408 has it: SDR white at reference white, in BT.2020's primaries; a camera log's as the scene's
light, in its gamut). Either way the restored face
goes back into codes, and every row is scored on what its codes show (the view) against what the
HQ face's codes show: PSNR, SSIM, dlib identity cosine.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from quality import held_out_faces, load_model, print_scores, to_uint8

from vidrestore.config import resolve_config
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.faces.identity import DlibIdentityEncoder
from vidrestore.io.linear import CAMERA_LOGS, Light, display_view, from_light, from_view, srgb_decode, to_rec709, video_chromaticities
from vidrestore.train.trainer import restore_batch

TOP = 1023  # 10-bit codes
PRIMARIES = {light: video_chromaticities(light, 9) for light in (Light.CINEON, Light.PQ, Light.HLG, *sorted(CAMERA_LOGS, key=lambda light: light.value))}


def to_codes(shown: torch.Tensor, light: Light) -> torch.Tensor:
    """sRGB pictures (N, 3, H, W) in [0, 1] as the 10-bit codes (N, H, W, 3) of the light they show."""
    linear = srgb_decode(shown.double().permute(0, 2, 3, 1).numpy()) @ np.linalg.inv(to_rec709(PRIMARIES[light])).T
    return torch.from_numpy(np.clip(np.rint(from_light(linear, light) * TOP), 0, TOP))


def view(codes: torch.Tensor, light: Light) -> torch.Tensor:
    """What 10-bit codes (N, H, W, 3) show, as vidrestore's view does (16 bits), in [0, 1] (N, 3, H, W)."""
    shown = display_view(codes.numpy() / TOP, light, PRIMARIES[light], deep=True)
    return torch.from_numpy(shown / 65535).float().permute(0, 3, 1, 2)


def from_shown(restored: torch.Tensor, light: Light) -> torch.Tensor:
    """The 10-bit codes that the view shows as ``restored`` (N, 3, H, W in [0, 1])."""
    shown = (restored.clamp(0, 1) * 65535).round().permute(0, 2, 3, 1).numpy().astype(np.uint16)
    return torch.from_numpy(np.clip(np.rint(from_view(shown, light, PRIMARIES[light]) * TOP), 0, TOP))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", required=True)
    ap.add_argument("--light", choices=[light.value for light in PRIMARIES], default=Light.CINEON.value)
    ap.add_argument("--model", default="flipnet-small")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--preset", default="fast")
    args = ap.parse_args()
    light = Light(args.light)
    path, model = load_model(args.model)
    hq, lq = held_out_faces(args.pack, args.count)
    sampler = resolve_config(SamplerConfig, "presets", args.preset)
    enc = DlibIdentityEncoder()
    codes = to_codes(lq, light)

    def restored(seen: torch.Tensor) -> torch.Tensor:
        return restore_batch(model, seen, torch.from_numpy(enc.embed(to_uint8(seen))), sampler)

    as_video = restored(codes.float().permute(0, 3, 1, 2) / TOP)  # the codes taken for SDR video's samples
    rows = {"LQ, as shown": view(codes, light),
            "codes taken for video": view(torch.clamp(torch.round(as_video.double() * TOP), 0, TOP).permute(0, 2, 3, 1), light),
            "view (vidrestore)": view(from_shown(restored(view(codes, light)), light), light)}
    print(f"model {path.name}, {args.preset} preset; {len(hq)} held-out faces at {hq.shape[-1]} px as 10-bit {light.value} codes; "
          "degradations: default, seed 1234; scored on what the codes show against what the HQ face's show")
    print_scores(rows, view(to_codes(hq, light), light), enc, width=24)


if __name__ == "__main__":
    main()
