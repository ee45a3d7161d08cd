"""What keeping pass 1's analysis saves: a dry run, then the same dry run and a run with other
restoration options, each taking the analysis the first kept, against each analysing again.

    python bench/analysis_kept.py VIDEO [--detector retinaface --detector-weights W] [--repeat 3]

Every command is a fresh interpreter running ``cli.py`` with a cache folder of its own
(``VIDRESTORE_CACHE``). The restoring runs use ``--model none --strength 1`` (the faces pasted
back through the pass-through restorer) so that what is timed is the pipeline around the model.
Each row gives the fastest and the median wall seconds, and the ``analyse`` seconds of the
fastest run's report (detector start-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(command: list[str], cache: Path, report: Path) -> tuple[float, float]:
    """Wall seconds of ``command`` (with ``--json report``) and its report's analyse seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "cli.py"), *command, "--quiet", "--json", str(report)], check=True,
                   env={**os.environ, "VIDRESTORE_CACHE": str(cache)})
    return time.perf_counter() - start, json.loads(report.read_text())["timings_s"]["analyse"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("video", type=Path)
    p.add_argument("--detector", default="auto")
    p.add_argument("--detector-weights")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    detection = ["--detector", args.detector, *(["--detector-weights", args.detector_weights] if args.detector_weights else [])]
    rows: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for round_ in range(args.repeat):
            cache = work / f"cache{round_}"
            out = work / f"out{round_}.mkv"
            restore = [str(args.video), str(out), *detection, "--model", "none", "--strength", "1", "--codec", "ffv1", "--overwrite"]
            dry = [str(args.video), "--dry-run", *detection]
            runs = {"dry run, analysing": dry + ["--reanalyse"], "dry run, analysis taken": dry,
                    "run, analysing": restore + ["--reanalyse"], "run, analysis taken": restore}
            for name, command in runs.items():
                rows.setdefault(name, []).append(timed(command, cache, work / "report.json"))
    print(f"{args.video.name}, {args.repeat} rounds; wall seconds fastest / median, and the fastest run's analyse seconds")
    for name, times in rows.items():
        walls = [wall for wall, _ in times]
        fastest = min(times)
        print(f"  {name:26s} {fastest[0]:6.2f} / {statistics.median(walls):6.2f} s   analyse {fastest[1]:6.2f} s")


if __name__ == "__main__":
    main()
