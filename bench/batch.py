"""Batch throughput: N copies of a clip through ``vidrestore batch``'s in-process executor against
N PyAV decode+encode floors of the clip, in one run.

    python bench/batch.py CLIP [--items N] [--repeat R] [any restore option of `vidrestore batch`]

Three batch runs: one item at a time with each pass decoding the video (as the batch ran until
2026-12-04), one at a time with pass 1's frames kept for pass 2 (``decode_once_mib``), and with
the next item analysed while this one is restored (the default now). Restore options default to
the pass-through restorer (``--model none``), so the figure is the cost of everything around the
model, as in ``bench/pipeline.py``; give ``--model flipnet-small`` for the shipped model. Floors
and the three runs alternate ``--repeat`` times; the table gives the fastest of each (wall
seconds, CPU seconds of all threads) and the paired medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import shutil
import statistics
import tempfile
from pathlib import Path

from pipeline import floor, timed

from vidrestore.batch.runner import BatchProgress, InProcessExecutor, run_batch
from vidrestore.batch.state import JobState
from vidrestore.batch.worker import Item
from vidrestore.cli import add_restore_options, options_from_args
from vidrestore.options import RestoreOptions


def batch(clips: list[Path], out: Path, options: RestoreOptions, device: str, overlap: bool) -> None:
    out.mkdir()
    items = [Item(c, out / c.name, options, options.fingerprint_for(c)) for c in clips]
    progress = BatchProgress(len(items), 0, quiet=True)
    with JobState(out) as state:
        for item in items:
            state.register(item.output, item.input, item.fingerprint, options.model)
        executor = InProcessExecutor(device, progress, overlap=overlap)
        try:
            run_batch(items, state, executor, 1, progress)
        finally:
            executor.close()
        failed = [r for r in state.rows() if r.status != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} items failed: {failed[0].error}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--items", type=int, default=3, help="copies of the clip in the batch")
    ap.add_argument("--repeat", type=int, default=2, help="alternate the three runs this many times; keep the fastest")
    ap.add_argument("--device", default="cpu")
    args, restore = ap.parse_known_args()
    restore = ["--model", "none", *restore] if "--model" not in restore else restore
    # (overlap, decode once): as the batch ran before either, one item at a time, and as it runs now
    modes = {"decoded per pass": (False, False), "one at a time": (False, True), "overlapped": (True, True)}
    runs: dict[str, list[tuple[float, float, object]]] = {"floor": [], **{name: [] for name in modes}}
    with tempfile.TemporaryDirectory() as tmp:
        clips = [Path(shutil.copy(args.clip, Path(tmp) / f"item{i}{args.clip.suffix}")) for i in range(args.items)]
        options = options_from_args(_parsed(restore))
        for r in range(max(1, args.repeat)):
            runs["floor"].append(timed(lambda: [floor(c, Path(tmp) / f"floor{c.suffix}", options.pipeline.encode) for c in clips]))
            for name, (overlap, once) in modes.items():
                kept = options if once else dataclasses.replace(options, pipeline=dataclasses.replace(options.pipeline, decode_once_mib=0))
                runs[name].append(timed(functools.partial(batch, clips, Path(tmp) / f"out-{overlap}-{once}-{r}", kept, args.device, overlap)))
    print(f"batch of {args.items} copies of {args.clip.name}, options: {' '.join(restore)}, fastest of {len(runs['floor'])} runs")
    print(f"{'run':16s} {'seconds':>8s} {'CPU s':>8s} {'x floor':>8s} {'paired median (range)':>24s}")
    base = min(runs["floor"])[0]
    for name, results in runs.items():
        wall, cpu, _ = min(results)
        paired = [r[0] / f[0] for f, r in zip(runs["floor"], results)]
        print(f"{name:16s} {wall:8.2f} {cpu:8.2f} {wall / base:7.2f}x {statistics.median(paired):8.2f}x "
              f"({min(paired):.2f}-{max(paired):.2f})")


def _parsed(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_restore_options(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
