"""Pipeline stage timings against the PyAV decode+encode floor, in one run.

    python bench/pipeline.py CLIP [--detector dlib|retinaface --detector-weights W] [--detect-every K] [--repeat N] [--device cuda]
                                  [--glue-threads N] [--glue-device cpu|model] [--keep-detail SHARE] [--profile N]

The restoration stage is the pass-through restorer, so the figure is the cost of everything
around the model. Floor and pipeline run alternately ``--repeat`` times; the table gives the
fastest run of each (wall seconds, and CPU seconds of all threads, which a busy shared machine
disturbs less) and the ratio (goal: <= 1.3x the floor). On a shared virtual machine whose speed
drifts from minute to minute, the median of the ratios of each floor run and the pipeline run
right after it is the steadier figure; it is printed too. ``--profile N``: one more pipeline run
under a sampling profiler of every thread (``bench/stacks.py``), and each thread's N heaviest functions.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from stacks import sampled

from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.faces.people import PeopleConfig
from vidrestore.faces.track import TrackerConfig
from vidrestore.io import EncodeOptions, VideoReader, VideoWriter, probe
from vidrestore.pipeline import PipelineConfig, run
from vidrestore.pipeline.config import GLUE_DEVICES
from vidrestore.pipeline.restoring import glue_on, glue_workers
from vidrestore.restore import PassThroughRestorer


def floor(clip: Path, out: Path, opts: EncodeOptions) -> None:
    """Decode every frame to RGB and encode it again: the least any restorer must do."""
    with VideoReader(clip) as r, VideoWriter(out, probe(clip), opts) as w:
        for f in r:
            w.write(None, f.pts, f.image)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(job: Callable[[], object]) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds (all threads) and the result of ``job()``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = job()
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("--detector", default="dlib")
    ap.add_argument("--detector-weights")
    ap.add_argument("--detect-every", type=int, default=TrackerConfig().detect_every)
    ap.add_argument("--repeat", type=int, default=3, help="alternate floor and pipeline runs this many times; keep the fastest")
    ap.add_argument("--device", default="cpu", help="where detection, align and paste run (cpu, cuda)")
    ap.add_argument("--no-people", action="store_true", help="leave people linking out (it needs dlib's face descriptor model)")
    ap.add_argument("--no-refine", action="store_true", help="leave RetinaFace's dlib landmark refiner out (it needs the 68-point model)")
    ap.add_argument("--glue-threads", type=int, default=0, help="threads aligning and pasting faces (0: by the cores, as the product does)")
    ap.add_argument("--glue-device", choices=GLUE_DEVICES, default=PipelineConfig.glue_device,
                    help="where faces are aligned and pasted with --device cuda: cpu (the default) or the model's device")
    ap.add_argument("--keep-detail", type=lambda v: v if v == "auto" else float(v), default="auto",
                    help="share of the frame's detail finer than the crop that faces keep (default auto: measured per track, as the pipeline does)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="then profile one more run: each thread's N heaviest functions")
    args = ap.parse_args()
    shares = {} if args.keep_detail == "auto" else {"keep_detail": args.keep_detail, "measure_detail": False}
    # every face pasted at full strength: the estimate would leave this clip's clean faces out of pass 2
    cfg = PipelineConfig(glue_threads=args.glue_threads, glue_device=args.glue_device, **shares, measure_strength=False,
                         detector=DetectorConfig(backend=args.detector, weights=args.detector_weights, refine_landmarks=not args.no_refine),
                         tracker=TrackerConfig(detect_every=args.detect_every), people=PeopleConfig(link=not args.no_people))
    device = torch.device(args.device)
    det = create_detector(cfg.detector, device)
    floors, runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = lambda: run(args.clip, Path(tmp) / "out.mp4", cfg, PassThroughRestorer(cfg.face_size), device,
                               overwrite=True, detector=det)
        for _ in range(max(1, args.repeat)):
            floors.append(timed(lambda: floor(args.clip, Path(tmp) / "floor.mp4", cfg.encode)))
            runs.append(timed(pipeline))
        profiled = sampled(pipeline) if args.profile else None
    base_wall, base_cpu, _ = min(floors)
    wall, cpu, rep = min(runs, key=lambda r: r[0])
    frames = rep.frames_in
    print(f"clip: {args.clip.name}, {frames} frames, detector {rep.detector}, detect every {args.detect_every}, "
          f"device {device}, {torch.get_num_threads()} CPU threads, glue threads {'none (on the device)' if glue_on(cfg, device).type != 'cpu' else args.glue_threads or glue_workers()}, "
          f"people linking {'off' if args.no_people else 'on'}, "
          f"landmark refiner {'off' if args.no_refine else 'as the detector has it'}, keep detail {args.keep_detail}, "
          f"fastest of {len(runs)} runs")
    print(f"{'stage':24s} {'seconds':>8s} {'fps':>8s} {'CPU s':>8s}")
    print(f"{'decode+encode floor':24s} {base_wall:8.2f} {frames / base_wall:8.1f} {base_cpu:8.2f}")
    for k, v in rep.timings_s.items():
        print(f"{k:24s} {v:8.2f} {frames / max(v, 1e-9):8.1f} {cpu if k == 'total' else float('nan'):8.2f}")
    print(f"ratio total / floor: {rep.timings_s['total'] / base_wall:.2f}x wall, {cpu / base_cpu:.2f}x CPU "
          f"(every run: floor {', '.join(f'{f[0]:.2f}' for f in floors)} s; pipeline {', '.join(f'{r[0]:.2f}' for r in runs)} s)")
    paired = [r[0] / f[0] for f, r in zip(floors, runs)]
    paired_cpu = [r[1] / f[1] for f, r in zip(floors, runs)]
    print(f"paired ratios, median (range): {statistics.median(paired):.2f}x wall ({min(paired):.2f}-{max(paired):.2f}), "
          f"{statistics.median(paired_cpu):.2f}x CPU ({min(paired_cpu):.2f}-{max(paired_cpu):.2f})")
    if profiled:
        wall, sampler = profiled
        print(f"\nprofiled run: {wall:.2f} s\n{sampler.report(args.profile)}")


if __name__ == "__main__":
    main()
