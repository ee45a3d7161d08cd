"""Quality of a FLIPNET checkpoint on held-out degraded faces, against the input and a classical baseline.

    python bench/quality.py --pack runs/data/celeba128.npz --model path/or/zoo-name [--count 64] [--sheet out.png]
                            [--real-lq ../shared/data/faces_lq/codeformer_cropped_faces --real-count 24]

Held-out faces: the last ``count`` faces of the pack (the trainer's validation split). They are degraded
with configs/degradations/default.yaml at seed 1234. Metrics against the HQ face:
* PSNR
* SSIM (kornia, 11x11 Gaussian window)
* identity cosine with dlib's 128-d descriptor

The baseline is an unsharp mask of the LQ face. Each preset's row is the model's output as it is;
with ``--coarse PX`` (default 4, the pipeline's ``keep_coarse``; 0: no such row) a second row is
what the pipeline pastes for a face at the frame's own size (the crop is the frame, as with
``--aligned``): colour-matched to the LQ face, and its picture coarser than PX pixels the LQ face's.

With ``--real-lq`` (aligned 512 px real LQ faces, no ground truth): NIQE of the input, of the input
taken to the model's size and back with bicubic, of that with an unsharp mask, of FLIPNET's
restoration at the model's size taken back with bicubic (the same resolution path), and (with
``--coarse``) of that restoration as the pipeline would make it of faces that size before pasting.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import kornia
import numpy as np
import torch

from vidrestore.config import resolve_config
from vidrestore.degrade import DegradationConfig, degrade, sample_params
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.faces.identity import DlibIdentityEncoder, cosine
from vidrestore.faces.paste import coarse_sigmas, face_mask, keep_coarse, match_colour
from vidrestore.models import zoo
from vidrestore.models.flipnet import load_flipnet
from vidrestore.train.data import PackedFaces
from vidrestore.train.trainer import psnr, restore_batch


def unsharp(x: torch.Tensor) -> torch.Tensor:
    return kornia.filters.unsharp_mask(x, (5, 5), (1.5, 1.5)).clamp(0, 1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def load_model(name: str):
    """The checkpoint's path and the FLIPNET loaded from it (a .safetensors path or a zoo name)."""
    path = Path(name) if name.endswith(".safetensors") else zoo.verify(name)
    return path, load_flipnet(path)


def as_pasted(restored: torch.Tensor, lq: torch.Tensor, coarse: float, shrink: float = 1.0) -> torch.Tensor:
    """What the pipeline makes of ``restored`` from LQ crops that shrank their faces ``shrink``
    times (1: the crop is the frame) before pasting: colour-matched, and the picture coarser than
    ``coarse`` pixels of the frame taken from ``lq`` (faces.paste)."""
    size = lq.shape[-1]
    matched = match_colour(restored, lq, face_mask(size, lq.device))
    return keep_coarse(matched, lq, coarse_sigmas(np.eye(2, 3)[None].repeat(len(lq), 0) / shrink, coarse, size))


def held_out_faces(pack: str | Path, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last ``count`` faces of ``pack`` (HQ), and each degraded with the default degradations at seed 1234 (LQ)."""
    data = PackedFaces(pack)
    _, val = data.split(count)
    g = torch.Generator().manual_seed(1234)
    hq, _ = data.batch(val, g, flip=False)
    return hq, degrade(hq, sample_params(resolve_config(DegradationConfig, "degradations", "default"), len(hq), g), g)


def print_scores(rows: dict[str, torch.Tensor], hq: torch.Tensor, enc: DlibIdentityEncoder, width: int = 20) -> None:
    """PSNR, SSIM and identity cosine of each row's faces against ``hq``, a line each."""
    ref = enc.embed(to_uint8(hq))
    print(f"{'':{width}s} {'PSNR':>7s} {'SSIM':>7s} {'ID cos':>7s}")
    for name, x in rows.items():
        ssim = float(kornia.metrics.ssim(x, hq, 11).mean())
        ident = float(np.mean(cosine(enc.embed(to_uint8(x)), ref)))
        print(f"{name:{width}s} {float(psnr(x, hq).mean()):7.2f} {ssim:7.4f} {ident:7.4f}")


def real_lq_table(model, folder: Path, count: int, preset: str, enc: DlibIdentityEncoder, coarse: float) -> None:
    from vidrestore.eval.niqe import model_name, niqe
    from vidrestore.train.data import list_images, read_rgb

    images = [im for im in (read_rgb(p) for p in list_images([folder])[:count]) if im is not None]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    size, full = model.config.image_size, x.shape[-1]

    def up(y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(y, size=(full, full), mode="bicubic").clamp(0, 1)

    small = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
    ident = torch.from_numpy(enc.embed(to_uint8(small)))
    cfg = resolve_config(SamplerConfig, "presets", preset)
    restored = restore_batch(model, small, ident, cfg)
    rows = {"real LQ input": x, f"bicubic via {size} px": up(small), "unsharp via same": unsharp(up(small)),
            f"FLIPNET {preset} via same": up(restored)}
    if coarse:
        rows[f"  pasted, coarse {coarse:g} px"] = up(as_pasted(restored, small, coarse, full / size))
    print(f"\n{len(images)} real LQ faces from {folder} at {full} px; {model_name()}; lower is more natural")
    for name, y in rows.items():
        scores = [niqe(im) for im in to_uint8(y)]
        print(f"{name:26s} NIQE {np.mean(scores):6.3f} (sd {np.std(scores):.3f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", required=True)
    ap.add_argument("--model", default="flipnet-small")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--presets", default="fast,balanced")
    ap.add_argument("--coarse", type=float, default=4.0, help="keep_coarse for the pasted rows (frame px; 0: none)")
    ap.add_argument("--sheet", type=Path, help="write a contact sheet (rows: HQ, then each row of the table)")
    ap.add_argument("--real-lq", type=Path, help="folder of aligned real LQ faces (NIQE only: no ground truth)")
    ap.add_argument("--real-count", type=int, default=24)
    args = ap.parse_args()
    path, model = load_model(args.model)
    hq, lq = held_out_faces(args.pack, args.count)
    enc = DlibIdentityEncoder()
    lq_ident = torch.from_numpy(enc.embed(to_uint8(lq)))
    rows = {"LQ input": lq, "unsharp baseline": unsharp(lq)}
    for preset in args.presets.split(","):
        cfg = resolve_config(SamplerConfig, "presets", preset)
        rows[f"FLIPNET {preset}"] = restore_batch(model, lq, lq_ident, cfg)
        if args.coarse:
            rows[f"  pasted, coarse {args.coarse:g} px"] = as_pasted(rows[f"FLIPNET {preset}"], lq, args.coarse)
    print(f"model {path.name}; {len(hq)} held-out faces at {hq.shape[-1]} px; degradations: default, seed 1234")
    print_scores(rows, hq, enc)
    if args.real_lq:
        real_lq_table(model, args.real_lq, args.real_count, args.presets.split(",")[0], enc, args.coarse)
    if args.sheet:
        from PIL import Image

        n = min(8, len(hq))
        grid = np.concatenate([np.concatenate(list(to_uint8(x[:n])), 1) for x in [hq, *rows.values()]], 0)
        Image.fromarray(grid).save(args.sheet)
        print(f"contact sheet: {args.sheet} (rows: HQ, {', '.join(rows)})")


if __name__ == "__main__":
    main()
