"""Command line: ``vidrestore IN OUT`` restores a video; subcommands for models, training, degradation.

Every ``VidrestoreError`` becomes one line on stderr and the exit code of its class.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from . import __version__
from .errors import UsageError, VidrestoreError

EXIT_INTERRUPTED = 130


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


class ProgressBar:
    """One line per stage on stderr: frames, faces, fps, ETA. Silent with --quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.stage, self.t0, self.last = None, 0.0, 0.0

    def __call__(self, stage: str, done: int, total: int, faces: int) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        if stage != self.stage:
            if self.stage is not None:
                sys.stderr.write("\n")
            self.stage, self.t0 = stage, now
        if now - self.last < 0.2 and done != total:
            return
        self.last = now
        elapsed = now - self.t0
        fps = done / elapsed if elapsed > 0.5 else 0.0
        eta = (total - done) / fps if total and fps > 0 else 0
        total_s = f"/{total}" if total else ""
        sys.stderr.write(f"\r{stage:8s} frames {done}{total_s}  faces {faces}  {fps:5.1f} fps  ETA {eta:5.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.quiet and self.stage is not None:
            sys.stderr.write("\n")


def build_restore_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vidrestore",
        description="Restore the faces in a video with FLIPNET. Audio, subtitles, timestamps and metadata are kept.",
        epilog="Other commands: vidrestore models {list,pull,verify,info} | vidrestore train {pack,run} | vidrestore degrade | vidrestore eval {images,video} | vidrestore sample. "
               "Exit codes: 2 usage, 3 input, 4 output, 5 model, 6 config, 130 interrupted.")
    p.add_argument("input", type=Path, help="video to restore")
    p.add_argument("output", type=Path, nargs="?", help="where to write the restored video (not needed with --dry-run)")
    p.add_argument("--model", default="flipnet-small", help="zoo name, a .safetensors path, or 'none' (pass-through, for debugging)")
    p.add_argument("--restorer", dest="model", help=argparse.SUPPRESS)
    p.add_argument("--preset", default="fast", help="sampling preset: fast (default; best measured with flipnet-small), balanced, quality, or a YAML path")
    p.add_argument("--config", help="pipeline YAML (see configs/pipeline.yaml); flags below override it")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="CUDA autocast dtype (auto: bf16)")
    p.add_argument("--batch-size", type=int, help="frames per restoration batch (bounds memory)")
    p.add_argument("--face-size", type=int, choices=[128, 256, 512], help="aligned crop size (default: the model's)")
    p.add_argument("--detector", choices=["auto", "retinaface", "dlib"], help="face detector (auto: RetinaFace if its weights are found)")
    p.add_argument("--detector-weights", help="RetinaFace checkpoint (.pth); also VIDRESTORE_WEIGHTS_RETINAFACE_MOBILENET0_25")
    p.add_argument("--detect-every", type=int, help="run the detector every k frames; tracking fills the rest")
    p.add_argument("--codec", help="video encoder (libx264, libx265, ffv1, prores_ks ...)")
    p.add_argument("--crf", type=int, help="quality for x264/x265 (lower is better)")
    p.add_argument("--x264-preset", dest="enc_preset", help="encoder speed preset (x264/x265)")
    p.add_argument("--pix-fmt", help="output pixel format (auto: the input's)")
    p.add_argument("--seed", type=int, help="sampling seed")
    p.add_argument("--no-temporal", action="store_true", help="no flow warping between frames (noise is still shared per track)")
    p.add_argument("--preview", type=Path, metavar="PATH", help="also write a side-by-side (input | restored) video here")
    p.add_argument("--dry-run", action="store_true", help="detect and track only; print the report")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--json", type=Path, metavar="REPORT", help="write the JSON report here ('-' for stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--version", action="version", version=f"vidrestore {__version__}")
    return p


def _pipeline_config(args: argparse.Namespace):
    from .config import CONFIG_DIR, load_yaml
    from .pipeline import PipelineConfig

    cfg = load_yaml(PipelineConfig, args.config or CONFIG_DIR / "pipeline.yaml")
    det, trk, enc = cfg.detector, cfg.tracker, cfg.encode
    if args.detector:
        det = dataclasses.replace(det, backend=args.detector)
    if args.detector_weights:
        det = dataclasses.replace(det, weights=args.detector_weights)
    if args.detect_every:
        trk = dataclasses.replace(trk, detect_every=args.detect_every)
    for field, value in (("codec", args.codec), ("crf", args.crf), ("preset", args.enc_preset), ("pix_fmt", args.pix_fmt)):
        if value is not None:
            enc = dataclasses.replace(enc, **{field: value})
    cfg = dataclasses.replace(cfg, detector=det, tracker=trk, encode=enc)
    if args.batch_size:
        cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
    if args.face_size:
        cfg = dataclasses.replace(cfg, face_size=args.face_size)
    return cfg


def cmd_restore(argv: list[str]) -> int:
    args = build_restore_parser().parse_args(argv)
    import torch

    from .config import resolve_config
    from .diffusion.sampler import SamplerConfig
    from .faces.identity import DlibIdentityEncoder
    from .pipeline import check_paths, run
    from .restore import load_restorer

    device = _device(args.device)
    cfg = _pipeline_config(args)
    sampler = resolve_config(SamplerConfig, "presets", args.preset)
    if args.seed is not None:
        sampler = dataclasses.replace(sampler, seed=args.seed)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "auto": torch.bfloat16}[args.dtype]
    encoder = DlibIdentityEncoder() if args.model != "none" else None
    if args.output is None and not args.dry_run:
        raise UsageError("give an output path, or --dry-run to only detect and track")
    restorer = load_restorer(args.model, sampler, device, dtype, encoder, cfg.face_size)
    if args.no_temporal and hasattr(restorer, "temporal"):
        restorer.temporal = False
    bar = ProgressBar(args.quiet)
    try:
        if args.preview is not None:
            check_paths(args.input, args.preview, args.overwrite)
        report = run(args.input, args.output, cfg, restorer, device, overwrite=args.overwrite, dry_run=args.dry_run,
                     progress=bar, preview=args.preview)
    finally:
        bar.close()
    text = report.to_json()
    if args.json is not None:
        if str(args.json) == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    if not args.quiet:
        summary = (f"{report.frames_in} frames, {len(report.shots)} shots, {len(report.tracks)} face tracks; "
                   f"detector {report.detector}; restorer {report.restorer}; {report.timings_s['total']:.1f}s")
        print(summary if args.dry_run or args.output is None else f"wrote {report.output}: {summary}", file=sys.stderr)
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        if args.dry_run and args.json is None:
            print(text)
    return 0


def cmd_models(argv: list[str]) -> int:
    from .models import zoo

    p = argparse.ArgumentParser(prog="vidrestore models", description="List, fetch and check model weights.")
    p.add_argument("action", choices=["list", "pull", "verify", "info"])
    p.add_argument("name", nargs="?")
    args = p.parse_args(argv)
    if args.action == "list":
        for e in zoo.entries().values():
            where = zoo.locate(e.name)
            state = "not supported" if not e.supported else (f"found: {where}" if where else "not downloaded")
            print(f"{e.name:30s} {e.kind:9s} {state}")
        return 0
    if not args.name:
        raise UsageError(f"`vidrestore models {args.action}` needs a model name")
    if args.action == "info":
        print(json.dumps(dataclasses.asdict(zoo.entry(args.name)), indent=2))
        return 0
    if args.action == "pull":
        e = zoo.entry(args.name)
        if not e.supported:
            raise UsageError(f"{e.name} is listed for reference but not supported: {e.note}")
        path = zoo.pull(args.name)
        print(f"{args.name}: {path} (sha256 {zoo.sha256_of(path)})")
        return 0
    path = zoo.verify(args.name)
    print(f"{args.name}: OK ({path})")
    return 0


def cmd_train(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="vidrestore train", description="Pack face data, or train FLIPNET.")
    sub = p.add_subparsers(dest="action", required=True)
    pk = sub.add_parser("pack", help="align faces from folders and pack them into one .npz")
    pk.add_argument("folders", nargs="+")
    pk.add_argument("--out", required=True)
    pk.add_argument("--face-size", type=int, default=128)
    pk.add_argument("--limit", type=int, default=0)
    pk.add_argument("--aligned", action="store_true", help="images are already aligned crops: only resize")
    ex = sub.add_parser("export", help="write a run's EMA weights as a shippable fp16 safetensors file")
    ex.add_argument("run_dir", type=Path)
    ex.add_argument("--out", type=Path, required=True)
    rn = sub.add_parser("run", help="train (resumes from the run folder's checkpoint)")
    rn.add_argument("--config", required=True, help="configs/train/<name>.yaml or a built-in name")
    rn.add_argument("--device", default="auto")
    rn.add_argument("--steps", type=int, help="override the config's total steps")
    args = p.parse_args(argv)
    if args.action == "pack":
        from .train.data import pack_faces

        stats = pack_faces(args.folders, args.out, args.face_size, args.limit, args.aligned)
        print(f"packed {stats.packed} of {stats.seen} images into {args.out} "
              f"({stats.unreadable} unreadable, {stats.no_face} without a face)")
        return 0
    if args.action == "export":
        import torch

        from .models.flipnet import load_flipnet, read_metadata, save_flipnet

        ema = args.run_dir / "checkpoint" / "ema.safetensors"
        step = read_metadata(ema).get("step", "?")
        save_flipnet(load_flipnet(ema), args.out, dtype=torch.float16, metadata={"step": step, "source": "EMA"})
        print(f"exported {ema} (step {step}) to {args.out}")
        return 0
    from .train.trainer import Trainer, load_train_config

    cfg = load_train_config(args.config)
    if args.steps:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    trainer = Trainer(cfg, _device(args.device))
    trainer.run(on_log=lambda row: print(json.dumps(row), flush=True))
    return 0


def cmd_degrade(argv: list[str]) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from .config import resolve_config
    from .degrade import DegradationConfig, degrade, sample_params
    from .train.data import list_images, read_rgb

    p = argparse.ArgumentParser(prog="vidrestore degrade", description="Degrade face images: synthetic chain, or FLIPNET degradation mode (--model).")
    p.add_argument("inputs", nargs="+", help="images or folders")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--synthetic", default="default", help="degradation config name or YAML path")
    how.add_argument("--model", help="a FLIPNET checkpoint: use its degradation mode instead of the synthetic model")
    p.add_argument("--preset", default="balanced", help="sampling preset for --model")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    cfg = resolve_config(DegradationConfig, "degradations", args.synthetic)
    learned = None
    if args.model:
        from .diffusion.sampler import SamplerConfig
        from .models.flipnet import DEGRADE, load_flipnet
        from .train.trainer import sample_faces

        model = load_flipnet(args.model)
        sampler = dataclasses.replace(resolve_config(SamplerConfig, "presets", args.preset), seed=args.seed)

        def learned(x: torch.Tensor) -> torch.Tensor:
            size = model.config.image_size
            small = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
            return sample_faces(model, small, None, sampler, DEGRADE)
    files = [Path(i) for i in args.inputs if Path(i).is_file()] + list_images([i for i in args.inputs if Path(i).is_dir()])
    args.out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(args.seed)
    for f in files:
        img = read_rgb(f)
        if img is None:
            print(f"skipped unreadable {f}", file=sys.stderr)
            continue
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        y = learned(x) if learned else degrade(x, sample_params(cfg, 1, gen), gen)
        Image.fromarray((y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(args.out / f"{f.stem}.png")
    print(f"wrote {len(files)} degraded images to {args.out}")
    return 0


def cmd_sample(argv: list[str]) -> int:
    from .sample import make_sample

    p = argparse.ArgumentParser(prog="vidrestore sample", description="Write the generated sample clip (degraded face, with audio).")
    p.add_argument("output", type=Path)
    p.add_argument("--frames", type=int, default=48)
    args = p.parse_args(argv)
    print(make_sample(args.output, frames=args.frames))
    return 0


def cmd_eval(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="vidrestore eval", description="Measure restorations: paired images, or a video against its input.")
    sub = p.add_subparsers(dest="kind", required=True)
    im = sub.add_parser("images", help="PSNR, SSIM, identity cosine of restored images against references (same file stems)")
    im.add_argument("restored", type=Path)
    im.add_argument("reference", type=Path)
    vd = sub.add_parser("video", help="per-track warping error, flicker and identity stability, input and restored")
    vd.add_argument("input", type=Path)
    vd.add_argument("restored", type=Path)
    vd.add_argument("--sheets", type=Path, help="folder for per-track contact sheets (input, restored, difference)")
    vd.add_argument("--detector", choices=["auto", "retinaface", "dlib"])
    vd.add_argument("--detector-weights")
    for sp in (im, vd):
        sp.add_argument("--json", type=Path, help="write the report here (default: stdout)")
    args = p.parse_args(argv)
    from .eval.report import eval_images, eval_video

    if args.kind == "images":
        report = eval_images(args.restored, args.reference)
    else:
        import torch

        from .config import CONFIG_DIR, load_yaml
        from .faces.detect import create_detector
        from .pipeline import PipelineConfig

        cfg = load_yaml(PipelineConfig, CONFIG_DIR / "pipeline.yaml")
        det = dataclasses.replace(cfg.detector, **{k: v for k, v in (("backend", args.detector), ("weights", args.detector_weights)) if v})
        report = eval_video(args.input, args.restored, cfg, create_detector(det, torch.device("cpu")), args.sheets)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"models": cmd_models, "train": cmd_train, "degrade": cmd_degrade, "sample": cmd_sample, "eval": cmd_eval}
    try:
        if argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return cmd_restore(argv)
    except VidrestoreError as exc:
        print(f"vidrestore: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vidrestore: interrupted; no partial output was left", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
