"""What a face larger than the model's crop keeps: the restored crop pasted as it is (enlarged)
against what restoration changed pasted onto the frame (``--keep-detail``), and shares between.

    python bench/detail.py ../shared/data/videos/keep_real_1.mp4 [--frames 24] [--model flipnet-small] [--preset fast]
                           [--shares 0,0.5,1,auto] [--copies clean,mild,...] [--strengths auto,1] [--measure-only]

The clip's first ``--frames`` frames are the ground truth. Each is given as it is ("clean"), and
degraded at the frame's size: through JPEG at quality 80 alone ("light"), blurred by a Gaussian of
1 px with white noise of 4 levels and JPEG at quality 60 ("mild"), or blurred by 2 px with noise
of 8 and JPEG 30 ("heavy"); "mild xS" is "mild" done to the frame made S times smaller, then
enlarged back (bicubic), as standard-definition video is shown at a larger size, its compression
blocks with it. Each is written losslessly. The real pipeline (the configured detector, the
shipped model at its 128 px crop) restores each (``--copies``: only these), with each of
``--shares`` as ``keep_detail`` (0: enlarged; 1: keep detail; auto: each track's share measured,
``measure_detail``; the table then gives the share it measured), and each of ``--strengths``
(auto, the default: each person's from FaceQualityNet's estimate, ``measure_strength``; the
table gives the strengths the tracks got). ``--measure-only``: no
restoring; for each copy, the share pass 1 measures for each track, with and without the cap that
compression blocks put on it, and the median of ``faces.detail.block_edges`` over the first
track's faces in the first six frames (give ``--frames`` past the clip's end for the whole clip).
Against the ground truth, on the box of each frame's five landmarks grown by half (the face, inside the paste mask): PSNR and SSIM of the
input and of each output, and the high-frequency energy (``eval.metrics.high_frequency``,
what a Gaussian of 2 px removes) as a share of the ground truth's. The input clip is JPEG-free
video, so "clean" is what the pipeline does to a face that needs nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from vidrestore.config import CONFIG_DIR, load_yaml, resolve_config
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.eval.metrics import high_frequency, psnr, ssim
from vidrestore.faces.detail import block_edges
from vidrestore.faces.detect import create_detector
from vidrestore.faces.types import Track
from vidrestore.options import RestoreOptions, build_restorer
from vidrestore.pipeline import PipelineConfig, analyse, run

# (blur px, noise levels, JPEG quality, enlarged): blur, noise and JPEG at the frame's size divided by
# ``enlarged``, then enlarged back (bicubic), as standard-definition video shown at a larger size is
DEGRADATIONS = {"clean": None, "light": (0.0, 0.0, 80, 1.0), "mild": (1.0, 4.0, 60, 1.0), "heavy": (2.0, 8.0, 30, 1.0),
                "mild x1.5": (1.0, 4.0, 60, 1.5), "mild x2": (1.0, 4.0, 60, 2.0), "mild x2.25": (1.0, 4.0, 60, 2.25)}


def frames_of(path: Path, count: int) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(count), c.decode(video=0))]


def written(frames: list[np.ndarray], rate, out: Path) -> Path:
    with av.open(str(out), "w") as dst:
        o = dst.add_stream("ffv1", rate=rate)
        o.width, o.height, o.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for image in frames:
            dst.mux(o.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        dst.mux(o.encode(None))
    return out


def degraded(image: np.ndarray, blur: float, noise: float, quality: int, enlarged: float, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    small = cv2.resize(image, (round(width / enlarged), round(height / enlarged)), interpolation=cv2.INTER_AREA) if enlarged != 1 else image
    x = small.astype(np.float32)
    x = (cv2.GaussianBlur(x, (0, 0), blur) if blur else x) + rng.normal(0, noise, small.shape)
    x = np.clip(x, 0, 255).round().astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", x[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    x = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1]
    return (cv2.resize(x, (width, height), interpolation=cv2.INTER_CUBIC) if enlarged != 1 else x).copy()


def face_boxes(tracks: list[Track], frames: int) -> dict[int, tuple[int, int, int, int]]:
    """Frame index -> the box of its first face's landmarks grown by half."""
    boxes = {}
    for track in tracks:
        for i in range(track.start, min(track.end, frames)):
            points = track.landmarks[i - track.start]
            centre, half = (points.min(0) + points.max(0)) / 2, 0.75 * (points.max(0) - points.min(0))
            (x0, y0), (x1, y1) = np.floor(centre - half).astype(int), np.ceil(centre + half).astype(int)
            boxes.setdefault(i, (max(0, x0), max(0, y0), x1, y1))
    return boxes


def scores(frames: list[np.ndarray], truth: list[np.ndarray], boxes: dict[int, tuple[int, int, int, int]]) -> tuple[float, float, float]:
    """Mean PSNR, SSIM and high-frequency energy (as a share of the truth's) over the face boxes."""
    got, want = [], []
    for i, (x0, y0, x1, y1) in sorted(boxes.items()):
        got.append(torch.from_numpy(frames[i][y0:y1, x0:x1]).permute(2, 0, 1).float() / 255)
        want.append(torch.from_numpy(truth[i][y0:y1, x0:x1]).permute(2, 0, 1).float() / 255)
    side = min(min(g.shape[1:]) for g in got)
    crop = lambda t: t[:, :side, :side]
    a, b = torch.stack([crop(g) for g in got]), torch.stack([crop(w) for w in want])
    energy = high_frequency(a).pow(2).mean() / high_frequency(b).pow(2).mean()
    return float(psnr(a, b).mean()), float(ssim(a, b).mean()), float(energy)


def copies(truth: list[np.ndarray], names: list[str]) -> dict[str, list[np.ndarray]]:
    """The copies ``names`` (of :data:`DEGRADATIONS`) of ``truth``: noise drawn anew for each frame, the same in every run."""
    def copy(degradation: tuple[float, float, int, float]) -> list[np.ndarray]:
        rng = np.random.default_rng(0)
        return [degraded(image, *degradation, rng) for image in truth]
    return {name: truth if DEGRADATIONS[name] is None else copy(DEGRADATIONS[name]) for name in names}


def measure_only(clip: Path, frames: int, names: list[str], cfg: PipelineConfig, detector) -> None:
    with av.open(str(clip)) as c:
        rate = c.streams.video[0].average_rate
    truth = frames_of(clip, frames)
    print(f"clip {clip.name}, first {len(truth)} frames: the share measured for each track (without the block cap), block edges")
    with tempfile.TemporaryDirectory() as tmp:
        for name, given in copies(truth, names).items():
            path = written(given, rate, Path(tmp) / f"{name}.mkv")
            capped = analyse(path, cfg, detector).tracks
            uncapped = analyse(path, dataclasses.replace(cfg, keep_detail=1.0), detector).tracks
            shares = ", ".join(f"{a.detail:.2f} ({b.detail:.2f})" if a.detail is not None else "none"
                               for a, b in zip(capped, uncapped))
            first = capped[0] if capped else None
            edges = [block_edges(cv2.cvtColor(given[i], cv2.COLOR_RGB2GRAY).astype(np.float32), first.boxes[i - first.start])
                     for i in range(first.start, min(first.end, first.start + 6))] if first else []
            edges = [e for e in edges if e is not None]
            print(f"{name:>10s} shares {shares or 'no tracks'}; block edges {np.median(edges) if edges else float('nan'):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--model", default="flipnet-small")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--shares", type=lambda text: [v if v == "auto" else float(v) for v in text.split(",")], default=[0.0, 0.5, 1.0],
                    help="the keep_detail shares to restore with, comma-separated; auto: measured per track")
    ap.add_argument("--copies", type=lambda text: text.split(","), default=list(DEGRADATIONS),
                    help=f"which copies of the clip, comma-separated (default all: {','.join(DEGRADATIONS)})")
    ap.add_argument("--coarse", type=lambda text: [float(v) for v in text.split(",")],
                    help="the keep_coarse sizes (frame px) to restore with, comma-separated (default the configured one; 0: off)")
    ap.add_argument("--strengths", type=lambda text: [v if v == "auto" else float(v) for v in text.split(",")], default=["auto"],
                    help="the strengths to restore with, comma-separated; auto (default): each person's, from how damaged their faces look")
    ap.add_argument("--measure-only", action="store_true", help="only the shares pass 1 measures, and the copies' block edges")
    args = ap.parse_args()
    cfg = load_yaml(PipelineConfig, CONFIG_DIR / "pipeline.yaml")
    device = torch.device("cpu")
    detector = create_detector(cfg.detector, device)
    if args.measure_only:
        measure_only(args.clip, args.frames, args.copies, cfg, detector)
        return
    restorer = build_restorer(RestoreOptions(cfg, resolve_config(SamplerConfig, "presets", args.preset), args.model), device)
    with av.open(str(args.clip)) as c:
        rate = c.streams.video[0].average_rate
    truth = frames_of(args.clip, args.frames)
    print(f"clip {args.clip.name}, first {len(truth)} frames, model {args.model} ({restorer.face_size} px crop), preset {args.preset}")
    print(f"{'input':>10s} {'run':>12s} {'coarse':>6s} {'strength':>13s} {'PSNR':>7s} {'SSIM':>7s} {'detail':>7s} {'restore s':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        tracks = analyse(written(truth, rate, Path(tmp) / "truth.mkv"), cfg, detector).tracks
        boxes = face_boxes(tracks, len(truth))
        for name, given in copies(truth, args.copies).items():
            clip = written(given, rate, Path(tmp) / f"{name}.mkv")
            print(f"{name:>10s} {'as given':>12s} {'':6s} {'':13s} " + " ".join(f"{v:7.4f}" if k else f"{v:7.2f}" for k, v in enumerate(scores(given, truth, boxes))))
            for keep, coarse, strength in itertools.product(args.shares, args.coarse or [cfg.keep_coarse], args.strengths):
                out = Path(tmp) / f"{name}_{keep}_{coarse}_{strength}.mkv"
                shares = {"measure_detail": True} if keep == "auto" else {"measure_detail": False, "keep_detail": keep}
                strengths = {"measure_strength": True} if strength == "auto" else {"measure_strength": False, "strength": strength}
                pcfg = dataclasses.replace(cfg, **shares, **strengths, keep_coarse=coarse, face_size=restorer.face_size,
                                           encode=dataclasses.replace(cfg.encode, codec="ffv1"))
                t0 = time.perf_counter()
                report = run(clip, out, pcfg, restorer, device, detector=detector)
                seconds = time.perf_counter() - t0
                values = scores(frames_of(out, len(truth)), truth, boxes)
                measured = ",".join(f"{t['keep_detail']:.2f}" for t in report.tracks)
                label = f"auto {measured}" if keep == "auto" else {0.0: "enlarged", 1.0: "keep detail"}.get(keep, f"keep {keep:g}")
                strength_label = ("auto " if strength == "auto" else "") + ",".join(f"{t['strength']:.2f}" for t in report.tracks)
                print(f"{name:>10s} {label:>12s} {coarse:6g} {strength_label:>13s} " + " ".join(f"{v:7.4f}" if k else f"{v:7.2f}" for k, v in enumerate(values))
                      + f" {seconds:9.1f}")


if __name__ == "__main__":
    main()
