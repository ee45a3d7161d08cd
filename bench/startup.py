"""How long a run takes from the command to its end on one picture, where start-up is most of it,
and how long a run with a wrong input or output takes to say so.

    python bench/startup.py [--repeat 5] [--cli PATH]

The picture is the first frame of the generated sample clip (one face, which dlib finds). Each run
is a fresh interpreter running ``cli.py`` on it with dlib: with ``--model none`` (pass-through),
with the default model, whose run restores the face once, and a ``--dry-run`` (detection and
tracking alone, the default model named); then six runs that end in an error: an input
that does not exist, an output that exists (no ``--overwrite``), a text file named as a
picture, an encoder FFmpeg does not have (``--codec``), a sampling preset not found
(``--preset``), each with the default model, and a model not found (``--model``). The table gives the fastest and the
median wall seconds of each, and the seconds the fastest run's imports took (``-X importtime``:
the sum over the top-level imports). ``--cli``: another checkout's ``cli.py`` (say, a worktree of
an earlier commit), to compare on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from vidrestore.sample import make_sample

REPO = Path(__file__).resolve().parent.parent


def first_frame_picture(folder: Path) -> Path:
    clip = make_sample(folder / "sample.mp4", frames=2)
    picture = folder / "photo.png"
    with av.open(str(clip)) as c:
        next(c.decode(video=0)).to_image().save(picture)
    return picture


def import_seconds(stderr: str) -> float:
    """The top-level imports' cumulative microseconds in ``-X importtime`` output, as seconds."""
    rows = [line.split("|") for line in stderr.splitlines() if line.startswith("import time:")]
    return sum(int(cumulative) for _, cumulative, name in rows
               if cumulative.strip().isdigit() and not name.startswith("  ")) / 1e6  # one space: imported at the top


def timed_run(cli: Path, args: list[str], code: int) -> tuple[float, float]:
    """Wall seconds of one run in a fresh interpreter, which is to end with exit status ``code``,
    and its imports' seconds."""
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", str(cli), *args, "--detector", "dlib", "--quiet"],
                          capture_output=True, text=True, check=False, cwd=cli.parent)
    wall = time.perf_counter() - began
    if proc.returncode != code:
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
        raise SystemExit(f"{args}: exit status {proc.returncode}: {errors[-1:]}")
    return wall, import_seconds(proc.stderr)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cli", type=Path, default=REPO / "cli.py")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        picture = first_frame_picture(folder)
        restored, unwritten = folder / "restored.png", folder / "unwritten.png"  # the errors' output is never written
        existing, text = folder / "existing.png", folder / "notes.png"
        existing.write_bytes(b"an earlier output")
        text.write_text("not a picture")
        rows = {"--model none": ([picture, restored, "--overwrite", "--model", "none"], 0),
                "default model": ([picture, restored, "--overwrite"], 0),
                "--dry-run": ([picture, restored, "--overwrite", "--dry-run"], 0),
                "input missing": ([folder / "missing.png", unwritten], 3),
                "output exists": ([picture, existing], 4),
                "not a picture": ([text, unwritten], 3),
                "codec unknown": ([picture, unwritten, "--codec", "nosuch"], 4),
                "preset unknown": ([picture, unwritten, "--preset", "nosuch"], 6),
                "model unknown": ([picture, unwritten, "--model", "nosuch"], 5)}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        for _ in range(args.repeat):  # alternated, so that a busy moment falls on both
            for name, (run_args, code) in rows.items():
                runs[name].append(timed_run(args.cli, [str(a) for a in run_args], code))
    print(f"{args.cli}, {args.repeat} runs of each on a {picture.suffix} picture")
    print(f"{'run':16s} {'fastest s':>10s} {'median s':>10s} {'imports s':>10s}")
    for name, timings in runs.items():
        fastest = min(timings)
        print(f"{name:16s} {fastest[0]:10.2f} {statistics.median(w for w, _ in timings):10.2f} {fastest[1]:10.2f}")


if __name__ == "__main__":
    main()
