"""What a face a field costs: an interlaced clip restored deinterlaced (a face a frame), with
``--keep-fields`` (a face a field, written back interlaced) and with ``--double-rate`` (a frame
and a face a field), one run each, through the CLI with its default model.

    python bench/fields.py CLIP [--weave --frames 48] [-- MORE CLI OPTIONS]

``--weave``: CLIP is progressive; ``--frames`` frames are woven from twice as many of its frames
into a top-field-first clip first (lossless FFV1): a 20 fps clip gives 10 fps with 20 fields a
second.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from vidrestore.cli import main as vidrestore
from vidrestore.io import EncodeOptions, VideoReader, VideoWriter, probe


def weave(clip: Path, out: Path, frames: int) -> Path:
    """``frames`` interlaced frames from twice as many of ``clip``: frame i's fields are frames 2i
    and 2i + 1 (no field is in two frames, as with a camera; else field matching pairs them up)."""
    info = probe(clip)
    info = dataclasses.replace(info, field_order="tt", rotation=0, average_rate=info.average_rate / 2)
    with VideoReader(clip) as r, VideoWriter(out, info, EncodeOptions(codec="ffv1")) as w:
        pairs = zip(*[iter(r)] * 2)
        for _, (earlier, later) in zip(range(frames), pairs):
            woven = earlier.image.copy()
            woven[1::2] = later.image[1::2]
            w.write(None, earlier.pts, woven)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("--weave", action="store_true", help="weave a progressive CLIP into interlaced video first")
    ap.add_argument("--frames", type=int, default=48, help="with --weave: how many frames")
    ap.add_argument("more", nargs="*", help="more vidrestore options, after --")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = weave(args.clip, Path(tmp) / "woven.mkv", args.frames) if args.weave else args.clip
        print(f"{clip.name}: {probe(clip).estimated_frames} frames, field order {probe(clip).field_order}")
        print(f"{'run':>22}  {'frames':>6}  {'faces':>5}  {'analyse s':>9}  {'restore+encode s':>16}")
        for run, (label, flags) in enumerate((("deinterlaced", []), ("--keep-fields", ["--keep-fields"]),
                                              ("--double-rate", ["--double-rate"]))):
            report = Path(tmp) / "r.json"
            code = vidrestore([str(clip), str(Path(tmp) / f"out{run}.mkv"), "--codec", "ffv1", "--quiet",
                               "--json", str(report), *flags, *args.more])
            if code:
                raise SystemExit(code)
            r = json.loads(report.read_text())
            faces = int(np.sum([t["frames"] for t in r["tracks"]]))
            print(f"{label:>22}  {r['frames_out']:>6}  {faces:>5}  {r['timings_s']['analyse']:>9.2f}  {r['timings_s']['restore_encode']:>16.2f}")


if __name__ == "__main__":
    main()
