"""HDR video (PQ, HLG) and cameras' log video (S-Log3, V-Log, LogC3, LogC4, Apple Log, Canon Log 3, D-Log): does restoring it on an SDR view
(vidrestore.io.linear) find its faces and restore them as the same pictures in SDR are restored?

    python bench/video_light.py ../shared/data/videos/keep_real_1.mp4 [--frames 40] [--lights pq,hlg,slog3,slog3-sgamut3,slog2,vlog,logc3,logc4,applelog,clog3,clog2,clog,dlog] \
        [--detector retinaface --detector-weights ../shared/data/weights/retinaface_mobilenet0.25_Final.pth]

The clip's first ``--frames`` are graded as HDR is from SDR (BT.2408: SDR white at 203 cd/m2, in
BT.2020's primaries, tagged so), or stored as a camera's log of the scene light they show (in its
gamut, tagged BT.709 as cameras tag it), and kept in 10-bit SDR (BT.709) beside them, all as
lossless FFV1, so that what differs is the light alone. Each is restored by the CLI (the shipped
model, ``--strength 1``) twice: on the view (HDR: by its tags; a log: with ``--light``) and on its
codes taken for SDR video (HDR: ``--light display``; a log: by its tags), which is what vidrestore
did before it read them. Per run: frames with a face found, run time, and, where the SDR run
restored a face (its picture moved by more than 3 levels of 8 bits), how far the output's view
lies from the SDR output (mean of |difference|, 8-bit levels), how far the input's view lies from
the SDR input (what 4:2:0 in another light leaves), and the correlation of the restoration's
change with the SDR run's. The SDR run goes twice, the first to warm up (model load), and only the
second is reported. First, what the view costs: milliseconds to show one frame of the clip, enlarged
to 1920x1080 and 3840x2160, from its R'G'B' codes (best of 5; FFmpeg's conversion from YUV to
those codes comes on top); what the writer's conversion of a frame to the codes it writes a face
back into costs, whole and around one face; what pass 2's reader takes to make a frame into
the image faces are read from, viewed whole and only around one face; and what pass 1 takes to
make a frame its detail meter and face-quality rater measure (every 12th frame and the next) into
their image, viewed whole and only where they read one face. ``--view-only``: those parts alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from vidrestore.cli import main as vidrestore_main
from vidrestore.faces.align import template
from vidrestore.faces.detail import DetailMeter
from vidrestore.faces.quality import QUALITY_MODEL, QualityMeter
from vidrestore.faces.types import Detection
from vidrestore.io.linear import CAMERA_LOGS, Light, display_view, from_light, srgb_decode, to_rec709, video_chromaticities
from vidrestore.io import probe
from vidrestore.io.patch import crop_frame, patch_area
from vidrestore.io.reader import frame_to_rgb
from vidrestore.models import zoo
from vidrestore.models.face_quality import load_face_quality
from vidrestore.pipeline.analysis import regions_measured

# primaries, transfer, matrix: HDR's BT.2020 and its curve; a camera's log tagged BT.709, as cameras tag it
TAGS = {"sdr": (1, 1, 1), "pq": (9, 16, 9), "hlg": (9, 18, 9), **{light.value: (1, 1, 1) for light in CAMERA_LOGS}}


def graded(source: Path, out: Path, kind: str, frames: int) -> Path:
    """``source``'s first ``frames`` as 10-bit lossless FFV1: SDR (BT.709) codes, PQ or HLG in
    BT.2020 with SDR white at reference white, or a camera's log in its gamut."""
    primaries, transfer, matrix = TAGS[kind]
    to_source = np.linalg.inv(to_rec709(video_chromaticities(Light(kind), 9))) if kind != "sdr" else None
    with av.open(str(source)) as inp, av.open(str(out), "w") as dst:
        vs = inp.streams.video[0]
        stream = dst.add_stream("ffv1", rate=vs.average_rate)
        stream.width, stream.height, stream.pix_fmt = vs.width, vs.height, "yuv420p10le"
        cc = stream.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = primaries, transfer, matrix, 1
        stream.time_base = vs.time_base
        for n, frame in enumerate(inp.decode(vs)):
            if n == frames:
                break
            rgb = frame.to_ndarray(format="rgb24")
            if kind == "sdr":
                codes = rgb.astype(np.uint16) * 257
            else:
                linear = srgb_decode(rgb.astype(np.float32) / 255) @ to_source.T
                codes = (np.clip(from_light(linear, Light(kind)), 0, 1) * 65535 + 0.5).astype(np.uint16)
            coded = av.VideoFrame.from_ndarray(codes, format="rgb48le").reformat(format="yuv420p10le", dst_colorspace=matrix, dst_color_range=1)
            coded.pts, coded.time_base = frame.pts, frame.time_base
            dst.mux(stream.encode(coded))
        dst.mux(stream.encode(None))
    return out


def views(path: Path, kind: str) -> Iterator[np.ndarray]:
    """Each frame of ``path`` as the SDR view shows it (float, 8-bit levels); SDR's as they are."""
    matrix = TAGS[kind][2]
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            codes = frame.reformat(format="rgb48le", src_colorspace=matrix, src_color_range=1).to_ndarray()
            shown = codes if kind == "sdr" else display_view(codes, Light(kind), video_chromaticities(Light(kind), 9), deep=True)
            yield (shown / 257.0).astype(np.float32)


def restore(source: Path, out: Path, options: list[str]) -> tuple[float, int]:
    """Run time and frames with a face of one CLI run."""
    report = out.with_suffix(".json")
    start = time.perf_counter()
    assert vidrestore_main([str(source), str(out), "--overwrite", "--quiet", "--strength", "1", "--json", str(report), *options]) == 0
    seconds = time.perf_counter() - start
    frames = set()
    for track in json.loads(report.read_text())["tracks"]:
        frames.update(range(track["start"], track["end"]))
    return seconds, len(frames)


def agreement(sdr_in: Path, sdr_out: Path, source: Path, output: Path, kind: str) -> dict[str, float]:
    """How the restored HDR view compares with the SDR run, where that restored a face."""
    away, before, corr = [], [], []
    for a, b, c, d in zip(views(sdr_in, "sdr"), views(sdr_out, "sdr"), views(source, kind), views(output, kind)):
        face = np.abs(b - a).max(-1) > 3
        if face.sum() < 100:
            continue
        away.append(np.abs(d - b)[face].mean())
        before.append(np.abs(c - a)[face].mean())
        change, ours = (b - a)[face].ravel(), (d - c)[face].ravel()
        corr.append(float(np.corrcoef(change, ours)[0, 1]) if ours.std() > 0 else 0.0)
    return {"output_vs_sdr_output": float(np.mean(away)), "input_vs_sdr_input": float(np.mean(before)),
            "change_correlation": float(np.mean(corr))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--lights", default="pq,hlg,slog3,vlog")
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--detector-weights")
    parser.add_argument("--view-only", action="store_true", help="time the view alone, restoring nothing")
    args = parser.parse_args()
    options = ["--detector", args.detector, *(["--detector-weights", args.detector_weights] if args.detector_weights else [])]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        kinds = args.lights.split(",")
        clips = {kind: graded(args.clip, work / f"{kind}.mkv", kind, 1 if args.view_only else args.frames) for kind in ["sdr", *kinds]}
        for kind in kinds:
            print(f"{kind} view of one frame: " + ", ".join(f"{w}x{h} {view_ms(clips[kind], kind, (w, h)):.0f} ms"
                                                           for w, h in ((1920, 1080), (3840, 2160))))
        for w, h in ((1920, 1080), (3840, 2160)):
            clip, kind = (clips["pq"], "pq") if "pq" in clips else (clips[kinds[0]], kinds[0])
            whole, around = codes_ms(clip, (w, h))
            print(f"write-back codes of one {w}x{h} frame: whole {whole:.1f} ms, around one face ({h // 3} px box) {around:.1f} ms")
            whole, around = read_ms(clip, kind, (w, h))
            print(f"{kind} pass-2 read of one {w}x{h} frame: whole view {whole:.0f} ms, "
                  f"view around one face ({2 * h // 3} px crop region) {around:.0f} ms")
            whole, around = meters_read_ms(clip, kind, (w, h))
            print(f"{kind} pass-1 meters' read of one {w}x{h} frame: whole view {whole:.0f} ms, "
                  f"view where they read one face ({2 * h // 3} px crop region) {around:.0f} ms")
        if args.view_only:
            return
        restore(clips["sdr"], work / "sdr_out.mkv", options)
        seconds, found = restore(clips["sdr"], work / "sdr_out.mkv", options)
        print(f"sdr (10-bit BT.709): faces in {found}/{args.frames} frames, {seconds:.1f} s")
        for kind in kinds:
            said = Light(kind) in CAMERA_LOGS
            for name, extra in (("view", ["--light", kind] if said else []), ("codes", [] if said else ["--light", "display"])):
                out = work / f"{kind}_{name}.mkv"
                seconds, found = restore(clips[kind], out, [*options, *extra])
                measured = agreement(clips["sdr"], work / "sdr_out.mkv", clips[kind], out, kind)
                print(f"{kind} {name}: faces in {found}/{args.frames} frames, {seconds:.1f} s; "
                      + ", ".join(f"{key} {value:.3f}" for key, value in measured.items()))


def view_ms(path: Path, kind: str, size: tuple[int, int]) -> float:
    """Milliseconds :func:`display_view` takes to show the first frame of ``path`` enlarged to ``size`` (best of 5)."""
    with av.open(str(path)) as c:
        codes = next(c.decode(video=0)).reformat(format="rgb48le", src_colorspace=TAGS[kind][2], src_color_range=1).to_ndarray()
    codes = cv2.resize(codes, size, interpolation=cv2.INTER_CUBIC)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        display_view(codes, Light(kind), video_chromaticities(Light(kind), 9), deep=True)
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def best_ms(run) -> float:
    """Milliseconds of the fastest of 5 calls of ``run``."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def enlarged_frame(path: Path, size: tuple[int, int]) -> av.VideoFrame:
    """The first frame of ``path`` enlarged to ``size``, 10-bit 4:2:0."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    return frame.reformat(width=size[0], height=size[1], format="yuv420p10le", interpolation="BICUBIC")


def read_ms(path: Path, kind: str, size: tuple[int, int]) -> tuple[float, float]:
    """Milliseconds (best of 5) pass 2's reader takes to make one frame of ``path``, enlarged to
    ``size``, into the 16-bit image the faces are read from: viewed whole, and viewed only in the
    region a face a third of the frame's height is cropped from (a square of two thirds)."""
    frame = enlarged_frame(path, size)
    info = dataclasses.replace(probe(path), width=size[0], height=size[1], pix_fmt="yuv420p10le").read_as(Light(kind))
    side = 2 * size[1] // 3
    box = (size[0] // 2 - side // 2, size[1] // 6, size[0] // 2 + side // 2, size[1] // 6 + side)
    reformatter = VideoReformatter()
    return (best_ms(lambda: frame_to_rgb(frame, info, deep=True, reformatter=reformatter)),
            best_ms(lambda: frame_to_rgb(frame, info, deep=True, reformatter=reformatter, viewed_in=[box])))


def meters_read_ms(path: Path, kind: str, size: tuple[int, int]) -> tuple[float, float]:
    """Milliseconds (best of 5) pass 1 takes to make one frame of ``path``, enlarged to ``size``,
    into the 8-bit image its meters measure (pipeline.analysis): viewed whole, and viewed only
    where the detail meter and the rater read a face cropped from a square of two thirds of its height."""
    frame = enlarged_frame(path, size)
    info = dataclasses.replace(probe(path), width=size[0], height=size[1], pix_fmt="yuv420p10le").read_as(Light(kind))
    landmarks = template(size[1] // 3) * 2 + np.float32([size[0] / 2 - size[1] / 3, size[1] / 6])  # a crop of two thirds
    box = np.concatenate([landmarks.min(0) - size[1] / 12, landmarks.max(0) + size[1] / 12])
    rater = QualityMeter(load_face_quality(zoo.verify(QUALITY_MODEL)))
    boxes = regions_measured(DetailMeter(128), rater, 0, [(0, Detection(box, 1.0, landmarks))], *size)
    reformatter = VideoReformatter()
    return (best_ms(lambda: frame_to_rgb(frame, info, reformatter=reformatter)),
            best_ms(lambda: frame_to_rgb(frame, info, reformatter=reformatter, viewed_in=boxes)))


def codes_ms(path: Path, size: tuple[int, int]) -> tuple[float, float]:
    """Milliseconds (best of 5) the writer spends taking one frame of ``path``, enlarged to ``size``
    (10-bit 4:2:0), to the R'G'B' codes it writes a face back into: the whole frame's conversion,
    and the conversion around one face a third of the frame's height (as :mod:`vidrestore.io.writer` does)."""
    frame = enlarged_frame(path, size)
    side = size[1] // 3
    box = (size[0] // 2 - side // 2, side, size[0] // 2 + side // 2, 2 * side)
    convert = {"format": "rgb48le", "src_colorspace": 9, "src_color_range": 1}
    whole_reformatter, part_reformatter = VideoReformatter(), VideoReformatter()

    def around() -> None:
        read = patch_area(box, size[1], size[0])
        part_reformatter.reformat(crop_frame(frame, patch_area(read, size[1], size[0])), **convert).to_ndarray()

    return best_ms(lambda: whole_reformatter.reformat(frame, **convert).to_ndarray()), best_ms(around)


if __name__ == "__main__":
    main()
