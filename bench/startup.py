"""How long a run takes from the command to its end on one picture, where start-up is most of it.

    python bench/startup.py [--repeat 5] [--cli PATH]

The picture is the first frame of the generated sample clip (one face, which dlib finds). Each run
is a fresh interpreter running ``cli.py`` on it with dlib: with ``--model none`` (pass-through),
with the default model, whose run restores the face once, and a ``--dry-run`` (detection and
tracking alone, the default model named). The table gives the fastest and the
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


def timed_run(cli: Path, picture: Path, out: Path, model: list[str]) -> tuple[float, float]:
    """Wall seconds of one run in a fresh interpreter, and its imports' seconds."""
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", str(cli), str(picture), str(out), "--detector", "dlib",
                           "--quiet", "--overwrite", *model], capture_output=True, text=True, check=False,
                          cwd=cli.parent)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.splitlines()[-1])
    return wall, import_seconds(proc.stderr)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cli", type=Path, default=REPO / "cli.py")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        picture = first_frame_picture(Path(tmp))
        rows = {"--model none": ["--model", "none"], "default model": [], "--dry-run": ["--dry-run"]}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        for _ in range(args.repeat):  # alternated, so that a busy moment falls on both
            for name, model in rows.items():
                runs[name].append(timed_run(args.cli, picture, Path(tmp) / "restored.png", model))
    print(f"{args.cli}, {args.repeat} runs of each on a {picture.suffix} picture")
    print(f"{'run':16s} {'fastest s':>10s} {'median s':>10s} {'imports s':>10s}")
    for name, timings in runs.items():
        fastest = min(timings)
        print(f"{name:16s} {fastest[0]:10.2f} {statistics.median(w for w, _ in timings):10.2f} {fastest[1]:10.2f}")


if __name__ == "__main__":
    main()
