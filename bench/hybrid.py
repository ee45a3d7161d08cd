"""How well ``--hybrid`` tells film cycles from video cycles (vidrestore.cadence.video_cycles).

    python bench/hybrid.py CLIP [CLIP ...] [--film 80] [--video 100] [--crf 18 23 30]

Each CLIP's first ``--film`` frames are taken as 24 fps film and put through 3:2 pulldown (FFmpeg's
telecine filter); its next ``--video`` frames become video whose every field is a moment of its
own (each frame's later field from the next frame). Film then video is coded with x264 at each
CRF, flagged progressive, and read back as pass 1 reads it (field matching, changes measured on
the thumbnails). For each cycle of 5 it prints the least change over the median of the others
(film: the repeat; video: the frame that happened to change least), how many cycles
``video_cycles`` judged right, and for the video cycles judged film, how much the frame they
lose changed (mean grey levels of 255 on the thumbnails; film's repeats change by the noise of
the coding); the longest runs of cycles judged video in the film and in the video (``--decimate``
suggests ``--hybrid`` from 3 in a row). The last two columns are the same without the check that a
repeat falls at the same place as its neighbour's (the ratio alone).
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidrestore import cadence
from vidrestore.io import VideoReader
from vidrestore.io.encoders import REPRODUCIBLE_X264
from vidrestore.io.reader import FieldFilter


def interlaced(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Video whose later (bottom) field in each frame is the next frame's."""
    woven = [f.copy() for f in frames[:-1]]
    for image, later in zip(woven, frames[1:]):
        image[1::2] = later[1::2]
    return woven


def encode(frames: list[np.ndarray], path: Path, crf: int) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), **REPRODUCIBLE_X264}  # the same bits on every run
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def changes_of(path: Path) -> list[float]:
    previous, changes = None, []
    with VideoReader(path, max_side=320, deinterlace=FieldFilter("tff", match=True)) as reader:
        for frame in reader:
            current = cadence.thumbnail(frame.image)
            changes.append(cadence.change(previous, current))
            previous = current
    return changes


def ratios(changes: list[float], starts: range) -> list[float]:
    """Per cycle: its least change over the median of its others."""
    out = []
    for start in starts:
        least, *others = sorted(changes[start : start + cadence.CYCLE])
        out.append(least / float(np.median(others)))
    return out


def by_ratio_alone(changes: list[float]) -> frozenset[int]:
    """``cadence.video_cycles`` without its check of where the repeat falls."""
    found = set()
    for start in range(0, len(changes) // cadence.CYCLE * cadence.CYCLE, cadence.CYCLE):
        least, *others = sorted(changes[start : start + cadence.CYCLE])
        if least > cadence.STILL and least >= cadence.DISTINCT * float(np.median(others)):
            found.add(start)
    return frozenset(found)


def run(judged: frozenset[int], part: range) -> int:
    """The longest run of cycles judged video within ``part``."""
    return cadence.longest_run(frozenset(s for s in judged if s in part))[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--film", type=int, default=80, help="film frames (a multiple of 4)")
    ap.add_argument("--video", type=int, default=100, help="video frames (a multiple of 5)")
    ap.add_argument("--crf", type=int, nargs="+", default=[18, 23, 30])
    args = ap.parse_args()
    film_cycles = args.film // 4
    print(f"{'clip':16s} {'crf':>4s} {'film ratio max':>15s} {'video ratio min':>16s} {'film judged film':>17s} "
          f"{'video judged video':>19s} {'repeat change max':>18s} {'lost video change max':>22s} {'runs: film':>10s} {'video':>5s} "
          f"{'ratio alone: video':>19s} {'lost':>5s}")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            with VideoReader(clip) as reader:
                frames = [f.image[: f.image.shape[0] // 2 * 2, : f.image.shape[1] // 2 * 2]
                          for _, f in zip(range(args.film + args.video + 1), reader)]
            woven = cadence.pulled_down(frames[: args.film]) + interlaced(frames[args.film :])
            for crf in args.crf:
                changes = changes_of(encode(woven, Path(tmp) / f"{clip.stem}_{crf}.mp4", crf))
                film = range(0, film_cycles * cadence.CYCLE, cadence.CYCLE)
                video = range(film.stop, len(changes) // cadence.CYCLE * cadence.CYCLE, cadence.CYCLE)
                judged, alone = cadence.video_cycles(changes), by_ratio_alone(changes)
                repeats = [min(changes[s : s + cadence.CYCLE]) for s in film]

                def lost(found: frozenset[int]) -> float:
                    return max((min(changes[s : s + cadence.CYCLE]) for s in video if s not in found), default=float("nan"))

                print(f"{clip.stem:16s} {crf:4d} {max(ratios(changes, film)):15.2f} {min(ratios(changes, video)):16.2f} "
                      f"{sum(s not in judged for s in film):>11d} of {len(film):<3d} {sum(s in judged for s in video):>13d} of {len(video):<3d} "
                      f"{max(repeats):18.2f} {lost(judged):22.2f} {run(judged, film):10d} {run(judged, video):5d} "
                      f"{sum(s in alone for s in video):>13d} of {len(video):<3d} {lost(alone):5.2f}")


if __name__ == "__main__":
    main()
