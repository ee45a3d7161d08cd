"""FaceQualityNet's estimates, and what the strength they set does to restored faces.

    python bench/face_quality.py --pack runs/data/celeba128.npz [--count 64] [--weights path.safetensors]
                                 [--scale S] [--estimates-only] [--aligned] [--dtype auto|fp32|bf16]
                                 [--real-lq ../shared/data/faces_lq/codeformer_cropped_faces]
    python bench/face_quality.py --video ../shared/data/videos/keep_real_2.mp4 [--weights path.safetensors]

Held-out faces (the last ``count`` of the pack, which neither FLIPNET's nor FaceQualityNet's
training saw) at six levels of damage: untouched, and through configs/degradations light,
"mild" (light's ranges a step up: blur 0.6-1.2 px, downscaling 1.2-2x, noise 1-4, JPEG 60-80),
default, archival and enlarged (noise and JPEG done on the face downscaled, then enlarged). With
``--scale S``, the damage is done on the face enlarged S times (bicubic), as on a face S times the
crop in a frame, and the damaged face is taken back to the crop as pass 1 crops a larger face (``faces.align.warp_affine``); the clean face is taken back the
same way, so only the damage counts. For each level: the faces' true PSNR against the clean crop as the net
learnt it (each channel's gain and offset fitted first, at most 40 dB), the net's estimate (mean
absolute error), the strength it sets (``faces.settings.strength_for``), and (unless
``--estimates-only``) the PSNR and SSIM of the faces as pasted (``--preset fast``, colour-matched, the coarse picture
kept) at strength 1, at the estimated strength, and at the best strength for each face (an oracle
that knows the clean face). With ``--real-lq``: the estimates and strengths of real damaged faces
(aligned 512 px crops, taken to the net's size), and the NIQE of each as given, restored at
strength 1 and at the estimated strength (restored at the model's size, pasted as a face of
that size would be, and taken back with bicubic, as bench/quality.py does). ``--aligned``: the
faces are judged as an aligned clip's crops are (``faces.quality.damage_db``: the lower of the
whole crop's estimate and the face's alone), for both.

``--video CLIP``: the estimates alone, on the sharp faces of a real clip (every 10th frame, found by
dlib), damaged at the frame's size as web and broadcast copies are: the frame shrunk k times and
enlarged back (bicubic), or also JPEG-compressed (quality 60) while small; each face is then cut
out at the net's 128 px as pass 1 cuts it, from the damaged and from the clean frame, so the true
dB counts the damage the crop still shows. A video's face is often several times the crop and
sharper than any CelebA face at it, which the pack's faces cannot show.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import kornia
import numpy as np
import torch
from quality import as_pasted, load_model, to_uint8

from vidrestore.config import resolve_config
from vidrestore.degrade import DegradationConfig, degrade, sample_params
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.eval.niqe import niqe
from vidrestore.faces.align import warp_affine
from vidrestore.faces.identity import DlibIdentityEncoder
from vidrestore.faces.quality import QUALITY_MODEL, damage_db
from vidrestore.faces.settings import strength_for
from vidrestore.models import zoo
from vidrestore.models.face_quality import load_face_quality
from vidrestore.models.precision import DTYPES, autocast, network_dtype
from vidrestore.train.data import PackedFaces, list_images, read_rgb
from vidrestore.train.quality import quality_target
from vidrestore.train.trainer import psnr, restore_batch


def levels() -> dict[str, DegradationConfig | None]:
    light = resolve_config(DegradationConfig, "degradations", "light")
    mild = dataclasses.replace(light, blur_sigma=(0.6, 1.2), downscale=(1.2, 2.0), noise_sigma=(1.0, 4.0), jpeg_prob=1.0, jpeg_quality=(60.0, 80.0))
    return {"untouched": None, "light": light, "mild": mild,
            "default": resolve_config(DegradationConfig, "degradations", "default"),
            "archival": resolve_config(DegradationConfig, "degradations", "archival"),
            "enlarged": resolve_config(DegradationConfig, "degradations", "enlarged")}


def blended(lq: torch.Tensor, pasted: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    return lq + strength[:, None, None, None] * (pasted - lq)


def damaged_at(faces: torch.Tensor, cfg: DegradationConfig | None, gen: torch.Generator, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(damaged, clean) crops: ``faces`` damaged by ``cfg`` (None: untouched) on a picture of them
    ``scale`` times their size, quantised to 8 bits, then taken back to their size as pass 1 crops
    a larger face; the clean crop is the undamaged picture taken back the same way."""
    size = faces.shape[-1]
    side = round(size * scale)
    big = faces if side == size else up(faces, side)
    lq = big if cfg is None else (degrade(big, sample_params(cfg, len(big), gen), gen).clamp(0, 1) * 255).round() / 255
    if side == size:
        return lq, faces
    shrink = np.tile(np.float32([[size / side, 0, 0], [0, size / side, 0]]), (len(faces), 1, 1))
    return tuple(warp_affine(x, shrink, (size, size), "reflection") for x in (lq, big))


def up(x: torch.Tensor, side: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(x, size=(side, side), mode="bicubic").clamp(0, 1)


def best_strength(lq: torch.Tensor, pasted: torch.Tensor, hq: torch.Tensor) -> torch.Tensor:
    """Each face's strength of least squared error against ``hq``."""
    change, wanted = (pasted - lq).flatten(1), (hq - lq).flatten(1)
    return ((change * wanted).sum(1) / (change * change).sum(1).clamp_min(1e-10)).clamp(0, 1)


VIDEO_SHRINKS = (2, 3, 4, 5, 6, 8)


def frame_damaged(image: np.ndarray, shrink: int, jpeg: bool) -> np.ndarray:
    """``image`` (H, W, 3 uint8) shrunk ``shrink`` times (area), JPEG-compressed at quality 60 there
    if ``jpeg``, and enlarged back (bicubic)."""
    import cv2

    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, width // shrink), max(1, height // shrink)), interpolation=cv2.INTER_AREA)
    if jpeg:
        small = cv2.imdecode(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_UNCHANGED)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def video_estimates(net: torch.nn.Module, clip: Path, every: int = 10) -> None:
    """Print the true dB and the estimate of the faces of ``clip`` damaged at the frame's size (see the module's doc)."""
    from vidrestore.faces.align import align_faces, shrinks_by
    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.io import VideoReader

    detector = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    with VideoReader(clip) as reader:
        frames = [f.image for f in reader if f.index % every == 0]
    found = [(image, faces[0].landmarks[None]) for image, faces in zip(frames, detector.detect(frames)) if faces]
    size = net.config.image_size
    print(f"{clip.name}: faces of every {every}th frame, damaged at the frame's size, cut out at {size} px")
    print(f"{'damage':14s} {'faces':>5s} {'face/crop':>9s} {'true dB':>8s} {'est. dB':>8s} {'MAE':>5s} {'strength':>8s}")
    for jpeg in (False, True):
        for shrink in VIDEO_SHRINKS:
            clean, damaged, scales = [], [], []
            for image, landmarks in found:
                for picture, into in ((image, clean), (frame_damaged(image, shrink, jpeg), damaged)):
                    crop, matrices = align_faces(torch.from_numpy(picture).permute(2, 0, 1), landmarks, size)
                    into.append(crop[0])
                scales.append(shrinks_by(matrices[0]))
            lq, hq = torch.stack(damaged).float(), torch.stack(clean).float()
            with torch.inference_mode():
                estimate = net(lq)
            truth = quality_target(lq, hq)
            strength = np.mean([strength_for(float(e)) for e in estimate])
            name = f"1/{shrink}" + (" + JPEG 60" if jpeg else "")
            print(f"{name:14s} {len(lq):5d} {np.median(scales):9.2f} {float(truth.mean()):8.2f} {float(estimate.mean()):8.2f} "
                  f"{float((estimate - truth).abs().mean()):5.2f} {strength:8.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", help="packed faces (vidrestore train pack); their last --count are the held-out ones")
    ap.add_argument("--video", type=Path, help="instead: the estimates on a real clip's faces damaged at the frame's size")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--weights", help="a FaceQualityNet file (default: the shipped one)")
    ap.add_argument("--model", default="flipnet-small")
    ap.add_argument("--real-lq", type=Path)
    ap.add_argument("--scale", type=float, default=1.0, help="damage the faces enlarged this many times, then crop them back")
    ap.add_argument("--estimates-only", action="store_true", help="leave out restoring (the PSNR / SSIM and NIQE columns)")
    ap.add_argument("--aligned", action="store_true", help="judge the faces as crops another aligner cut (--aligned): the lower "
                                                            "of the whole crop's estimate and the face's alone")
    ap.add_argument("--dtype", choices=["auto", *DTYPES], default="auto", help="FLIPNET's precision, as --dtype of vidrestore "
                    "(auto: bf16 on a CPU with AMX or AVX-512 BF16, else fp32)")
    args = ap.parse_args()
    net = load_face_quality(args.weights or zoo.verify(QUALITY_MODEL))
    if args.video:
        video_estimates(net, args.video)
        return
    if not args.pack:
        ap.error("give --pack (or --video)")
    _, model = load_model(args.model)
    data = PackedFaces(args.pack)
    _, val = data.split(args.count)
    gen = torch.Generator().manual_seed(99)
    faces, _ = data.batch(val, gen, flip=False)
    enc = DlibIdentityEncoder()
    sampler = resolve_config(SamplerConfig, "presets", "fast")
    cpu = torch.device("cpu")
    precision = autocast(cpu, network_dtype(args.dtype, cpu))
    side = round(faces.shape[-1] * args.scale)
    print(f"{len(faces)} held-out faces damaged at {side} px" + (f", taken to {faces.shape[-1]}" if side != faces.shape[-1] else "")
          + f"; FLIPNET fast in {str(network_dtype(args.dtype, cpu)).removeprefix('torch.')}, pasted as the pipeline does (coarse 4 px); PSNR / SSIM against the clean crop")
    print(f"{'level':10s} {'true dB':>8s} {'est. dB':>8s} {'MAE':>5s} {'strength':>8s}" + ("" if args.estimates_only else
          f" {'input':>15s} {'strength 1':>15s} {'estimated':>15s} {'oracle':>15s}"))
    for name, cfg in levels().items():
        lq, hq = damaged_at(faces, cfg, gen, args.scale)
        estimate = damage_db(net, lq, args.aligned)
        truth = quality_target(lq, hq)
        strength = torch.tensor([strength_for(float(e)) for e in estimate])
        row = (f"{name:10s} {float(truth.mean()):8.2f} {float(estimate.mean()):8.2f} {float((estimate - truth).abs().mean()):5.2f} "
               f"{float(strength.mean()):8.2f}")
        if args.estimates_only:
            print(row, flush=True)
            continue
        identity = torch.from_numpy(enc.embed(to_uint8(lq)))
        with precision:
            restored = restore_batch(model, lq, identity, sampler).float()
        pasted = as_pasted(restored, lq, 4.0)
        cells = [f"{float(psnr(x, hq).clamp(max=99).mean()):6.2f} / {float(kornia.metrics.ssim(x, hq, 11).mean()):.4f}"
                 for x in (lq, pasted, blended(lq, pasted, strength), blended(lq, pasted, best_strength(lq, pasted, hq)))]
        print(row + " " + " ".join(f"{c:>15s}" for c in cells), flush=True)
    if args.real_lq:
        read = [(p, image) for p in list_images([args.real_lq]) if (image := read_rgb(p)) is not None]
        paths = [p for p, _ in read]
        x = torch.from_numpy(np.stack([image for _, image in read])).permute(0, 3, 1, 2).float() / 255
        full = x.shape[-1]
        estimate = damage_db(net, torch.nn.functional.interpolate(x, size=(net.config.image_size,) * 2, mode="area"), args.aligned)
        strengths = [strength_for(float(e)) for e in estimate]
        print(f"\n{len(x)} real damaged faces from {args.real_lq}, {full} px: estimate (dB) and strength of each")
        print("\n".join(f"  {p.name:34s} {float(e):6.2f} {k:5.2f}" for p, e, k in zip(paths, estimate, strengths)))
        print(f"mean estimate {float(estimate.mean()):.2f} dB, strength {np.mean(strengths):.2f}")
        if args.estimates_only:
            return
        size = model.config.image_size
        small = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
        identity = torch.from_numpy(enc.embed(to_uint8(small)))
        with precision:
            restored = restore_batch(model, small, identity, sampler).float()
        pasted = as_pasted(restored, small, 4.0, full / size)
        niqe_of = {"input": x, "strength 1": pasted, "estimated strength": blended(small, pasted, torch.tensor(strengths))}
        niqe_of = {k: float(np.mean([niqe(im) for im in to_uint8(up(v, full) if k != "input" else v)])) for k, v in niqe_of.items()}
        print("NIQE (lower is more natural) " + ", ".join(f"{k} {v:.3f}" for k, v in niqe_of.items())
              + f" (restored at {size} px, pasted as a {full} px face would be, bicubic back)")


if __name__ == "__main__":
    main()
