"""Temporal quality of the shipped model on real clips: the input, FLIPNET with the temporal design
(shared noise + flow-warped x0), FLIPNET frame by frame (shared noise only, --no-temporal), and
FLIPNET on every Nth frame with the frames between carried along flow (--restore-every N).

    python bench/video_quality.py ../shared/data/videos/keep_real_1.mp4 [--model flipnet-small] [--preset fast]
                                  [--frames 120] [--dtype auto|fp32|bf16] [--figures DIR] [--detect-every K] [--aligned] [--keep-coarse PX]
                                  [--restore-every 2,4]

Each variant is restored with the real pipeline, then measured with `vidrestore eval video`'s code:
per-track warping error, flicker and identity stability (mean over tracks), and NIQE of whole
frames; and "to temporal": the PSNR between the variant's frames and the temporal run's, over
the pixels the temporal run changed (how far a variant's faces are from the default's; the
restoration itself, the input against the temporal run, is the input's row). With
``--restore-every``, a run with the next seed too: how far the model's own randomness moves them. Prints a table;
lower is better except identity stability and "to temporal". ``--aligned``: the clip is of
aligned face crops (KEEP's synthetic test clips); both the runs and the measurement take each shot
as one face filling the frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from vidrestore.config import CONFIG_DIR, load_yaml, resolve_config
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.eval.report import eval_video
from vidrestore.faces.detect import create_detector
from vidrestore.options import RestoreOptions, build_restorer
from vidrestore.pipeline import PipelineConfig, run


def head(clip: Path, frames: int, out: Path) -> Path:
    """The first ``frames`` frames of ``clip`` (video only, re-encoded near-losslessly)."""
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        s = src.streams.video[0]
        o = dst.add_stream("libx264", rate=s.average_rate)
        o.width, o.height, o.pix_fmt, o.options = s.width, s.height, "yuv420p", {"crf": "10"}
        for i, f in enumerate(src.decode(s)):
            if i >= frames:
                break
            dst.mux(o.encode(f.reformat(format="yuv420p")))
        dst.mux(o.encode(None))
    return out


def decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.float32)


def psnr_where_changed(reference: Path, changed_from: Path, other: Path) -> float:
    """PSNR (dB) of ``other`` against ``reference`` over the pixels where ``reference`` differs from
    ``changed_from`` by more than 2 levels (the restored faces; the rest is the same video)."""
    ref, base, frames = decoded(reference), decoded(changed_from), decoded(other)
    where = np.abs(ref - base[: len(ref)]).max(-1) > 2
    return float(10 * np.log10(255**2 / np.mean((ref - frames[: len(ref)])[where] ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("--model", default="flipnet-small")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--frames", type=int, default=120, help="restore only the first N frames (0: all)")
    ap.add_argument("--figures", type=Path)
    ap.add_argument("--detect-every", type=int, help="detection interval for the restored runs (default: the config's)")
    ap.add_argument("--aligned", action="store_true", help="the clip's frames are aligned face crops")
    ap.add_argument("--keep-coarse", type=float, help="keep_coarse for the restored runs (frame px; default: the config's)")
    ap.add_argument("--strength", help="strength of the restored runs: auto (each person's, from how damaged their faces look) "
                                       "or 0-1 (default: the config's, auto)")
    ap.add_argument("--dtype", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                    help="the network's precision, as --dtype of vidrestore")
    ap.add_argument("--restore-every", default="", metavar="N,M",
                    help="also these runs: the model on every Nth frame, the frames between carried along flow")
    args = ap.parse_args()
    cfg = dataclasses.replace(load_yaml(PipelineConfig, CONFIG_DIR / "pipeline.yaml"), aligned=args.aligned)
    if args.keep_coarse is not None:
        cfg = dataclasses.replace(cfg, keep_coarse=args.keep_coarse)
    if args.strength is not None:
        cfg = dataclasses.replace(cfg, measure_strength=args.strength == "auto",
                                  **({} if args.strength == "auto" else {"strength": float(args.strength)}))
    measure_cfg = cfg  # the measurement tracks faces the same way whatever the runs did
    if args.detect_every:
        cfg = dataclasses.replace(cfg, tracker=dataclasses.replace(cfg.tracker, detect_every=args.detect_every))
    device = torch.device("cpu")
    detector = create_detector(cfg.detector, device)
    sampler = resolve_config(SamplerConfig, "presets", args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        clip = head(args.clip, args.frames, Path(tmp) / "input.mp4") if args.frames else args.clip
        outputs, seconds, strengths = {"input": clip}, {}, set()
        variants = [("FLIPNET temporal", True, 1, sampler), ("FLIPNET per frame", False, 1, sampler)]
        if args.restore_every:  # the model's own spread, to judge their distance from the temporal run by
            variants.append(("FLIPNET next seed", True, 1, dataclasses.replace(sampler, seed=sampler.seed + 1)))
        variants += [(f"FLIPNET every {n}", True, int(n), sampler) for n in args.restore_every.split(",") if n]
        for name, temporal, every, seeded in variants:
            opts = RestoreOptions(cfg, seeded, args.model, args.dtype, temporal=temporal, restore_every=every)
            restorer = build_restorer(opts, device)
            pcfg = dataclasses.replace(cfg, face_size=restorer.face_size, encode=dataclasses.replace(cfg.encode, crf=10))
            out = Path(tmp) / f"{name.replace(' ', '_')}.mp4"
            t0 = time.perf_counter()
            strengths |= {round(t["strength"], 2) for t in run(clip, out, pcfg, restorer, device, detector=detector).tracks}
            seconds[name] = time.perf_counter() - t0
            outputs[name] = out
        print(f"clip {args.clip.name}, {args.frames or 'all'} frames, {restorer.name}, preset {args.preset}, "
              f"detector {'none (aligned)' if args.aligned else detector.name}, detect every {cfg.tracker.detect_every}, "
              f"tracks' strengths {', '.join(map(str, sorted(strengths)))}{' (auto)' if cfg.measure_strength else ''}")
        print(f"{'':20s} {'warp err':>9s} {'flicker':>9s} {'ID stab':>8s} {'NIQE':>7s} {'restore s':>10s} {'to temporal dB':>15s}")
        for name, path in outputs.items():
            figures = args.figures / name.replace(" ", "_") if args.figures else None
            rep = eval_video(clip, path, measure_cfg, detector, figures)
            side = [t["restored"] for t in rep["tracks"]]
            mean = {k: float(np.mean([s[k] for s in side if s[k] is not None] or [np.nan]))
                    for k in ("warping_error", "flicker", "identity_stability")}
            niqe = rep["niqe"]["mean_restored"]
            near = psnr_where_changed(outputs["FLIPNET temporal"], clip, path) if name != "FLIPNET temporal" else float("inf")
            print(f"{name:20s} {mean['warping_error']:9.4f} {mean['flicker']:9.4f} {mean['identity_stability']:8.4f} "
                  f"{niqe if niqe is not None else float('nan'):7.3f} {seconds.get(name, 0.0):10.1f} {near:15.2f}")


if __name__ == "__main__":
    main()
