"""Peak memory: the largest resident set of a whole ``vidrestore`` run, by frame size and length.

    python bench/memory.py [CLIP] [--heights 540 1080 2160] [--frames 48 192] [--model none] [--detector auto]

For each height (16:9 frames) and each length, a clip is made of CLIP's frames (the generated sample
clip when no CLIP is given) enlarged to 70% of the frame's height and panning across a grey frame
(x264, ultrafast), and ``vidrestore`` restores it in a process of its own with the default
options (``--strength 1``, so that every face is pasted and the video encoded, not copied). The
table gives that process's peak resident set (``getrusage``'s ``ru_maxrss``) and its wall time.
Memory that does not grow with the length is what "bounded" means; what grows with the frame size
is the frames held at once (decode queue, restoration batch, encoder queue and x264's lookahead).
``--model none`` measures the pipeline around the model; ``--model flipnet-small`` adds it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

from vidrestore.sample import make_sample

_CHILD = """
import resource, sys, time
from vidrestore.cli import main
start = time.perf_counter()
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - start, code)
"""


def source_frames(clip: Path | None, folder: Path) -> list[np.ndarray]:
    """RGB frames of ``clip``, or of the generated sample clip."""
    clip = clip or make_sample(folder / "sample.mp4")
    with av.open(str(clip)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def make_clip(path: Path, faces: list[np.ndarray], height: int, frames: int) -> Path:
    """``frames`` frames of ``height`` px (16:9, even), each a face of ``faces`` (in turn, back and
    forth) at 70% of the height, panning slowly across a grey frame."""
    width = 2 * round(height * 16 / 9 / 2)
    face_h = 2 * round(0.35 * height)
    face_w = 2 * round(face_h * faces[0].shape[1] / faces[0].shape[0] / 2)
    cycle = faces + faces[::-1]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20"}
        for i in range(frames):
            canvas = np.full((height, width, 3), 96, np.uint8)
            x = round((width - face_w) * (0.4 + 0.2 * np.sin(i / 40)))
            y = (height - face_h) // 2
            canvas[y : y + face_h, x : x + face_w] = cv2.resize(cycle[i % len(cycle)], (face_w, face_h), interpolation=cv2.INTER_CUBIC)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")))
        out.mux(stream.encode())
    return path


def peak_of_run(clip: Path, output: Path, extra: list[str]) -> tuple[float, float, float]:
    """Peak resident set (MiB) and wall seconds of ``vidrestore clip output`` in a process of its
    own, and the share of the frames in which a face was restored (from its report)."""
    report = output.with_suffix(".json")
    args = [str(clip), str(output), "--overwrite", "--quiet", "--strength", "1", "--json", str(report), *extra]
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, check=False)
    last = done.stdout.strip().splitlines()[-1:] if done.stdout.strip() else []
    if done.returncode or not last or last[0].split()[2] != "0":
        raise SystemExit(f"vidrestore failed on {clip.name}: {done.stderr.strip() or done.stdout.strip()}")
    rss_kib, seconds, _ = last[0].split()
    written = json.loads(report.read_text())
    covered = {i for track in written["tracks"] for i in range(track["start"], track["end"])}
    return int(rss_kib) / 1024, float(seconds), len(covered) / max(written["frames_in"], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", nargs="?", type=Path, help="a video with a face (default: the generated sample clip)")
    parser.add_argument("--heights", type=int, nargs="+", default=[540, 1080, 2160])
    parser.add_argument("--frames", type=int, nargs="+", default=[48, 192])
    parser.add_argument("--model", default="none", help="zoo name or 'none' (the pipeline around the model alone)")
    parser.add_argument("--detector", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        faces = source_frames(args.clip, folder)
        print(f"source: {args.clip or 'the generated sample clip'} ({len(faces)} frames), model {args.model}, "
              f"detector {args.detector}, vidrestore's defaults otherwise")
        print("each cell: peak resident set, wall time, share of the frames with a restored face")
        print(f"{'frames':>10} " + " ".join(f"{f:>22}" for f in args.frames))
        for height in args.heights:
            cells = []
            for frames in args.frames:
                clip = make_clip(folder / f"in_{height}_{frames}.mp4", faces, height, frames)
                peak, seconds, faces_on = peak_of_run(clip, folder / "out.mp4", ["--model", args.model, "--detector", args.detector])
                cells.append(f"{peak:>6.0f} MiB {seconds:>5.1f}s {faces_on:>4.0%}")
                clip.unlink()
            print(f"{str(height) + 'p':>10} " + " ".join(f"{c:>22}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
