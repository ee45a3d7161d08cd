"""Grain: how much noise the restored faces carry against their frames, with and without ``--grain``.

    python bench/grain.py ../shared/data/videos/keep_real_1.mp4 [--frames 24] [--noise 0 6] [--blur 0 1.5]
                          [--shadows 6] [--grain 0 0.5 1] [--model flipnet-small] [--preset fast]

The clip's first ``--frames`` frames, as they are (noise 0) and with luma noise of each ``--noise``
deviation (8-bit levels) added, white or blurred by a Gaussian of each ``--blur`` px (grain coarser
than a pixel, as film's or an upscaled transfer's), and with white noise of each ``--shadows``
deviation at mid grey that grows to twice that in black and fades to none in white (noise that
follows brightness, as a sensor's read noise and a print's grain do), written losslessly, are restored by the real
pipeline (the shipped model, the configured detector) at each ``--grain``. In every frame the luma
noise (:func:`vidrestore.faces.paste.noise_levels`: Immerkaer's mask, median, at the pixels, halves
and quarters) is measured on the face, the box of its five landmarks, and around it, a ring from 3
to 3.8 times that box (outside the paste mask, where the frame is its own); the table gives their
medians over frames and the ratio face / ring at each scale: about 1 in the input, and far below
where a restored face looks pasted on (a clean face in a grainy frame). With the restore time, and
whether the run's report advised ``--grain 1`` (:func:`vidrestore.pipeline.report.grain_note`).
A second table gives the noise at the pixels on the face in each of three bands of the input's
brightness there (:func:`vidrestore.faces.paste.brightness_bands`): dark, middle and bright.
First, what the grain costs a face a frame on one thread (:func:`vidrestore.faces.paste.grain_for`
on square regions of 200, 400 and 700 px of noise, fastest of 5).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from vidrestore.config import CONFIG_DIR, load_yaml, resolve_config
from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.faces.detect import create_detector
from vidrestore.faces.paste import brightness, brightness_bands, grain_for, noise_levels, scaled_masks
from vidrestore.faces.types import Track
from vidrestore.options import RestoreOptions, build_restorer
from vidrestore.pipeline import PipelineConfig, analyse, run

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def noisy_head(clip: Path, frames: int, noise: float, blur: float, out: Path, shadows: bool = False) -> Path:
    """The first ``frames`` frames of ``clip`` with luma noise of deviation ``noise`` (levels), white
    noise blurred by a Gaussian of ``blur`` px; with ``shadows``, ``noise`` at mid grey, twice that in
    black, none in white; lossless."""
    rng = np.random.default_rng(0)
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        s = src.streams.video[0]
        o = dst.add_stream("libx264", rate=s.average_rate)
        o.width, o.height, o.pix_fmt, o.options = s.width, s.height, "yuv444p", {"qp": "0"}
        for i, f in enumerate(src.decode(s)):
            if i >= frames:
                break
            grain = rng.normal(0, 1, (f.height, f.width)).astype(np.float32)
            grain = cv2.GaussianBlur(grain, (0, 0), blur) if blur else grain
            image = f.to_ndarray(format="rgb24").astype(np.float32)
            deviation = 2 * noise * (1 - image @ LUMA / 255) if shadows else noise
            image += (grain / grain.std() * deviation)[..., None]
            dst.mux(o.encode(av.VideoFrame.from_ndarray(np.clip(image, 0, 255).round().astype(np.uint8), format="rgb24")))
        dst.mux(o.encode(None))
    return out


def landmark_box(luma: torch.Tensor, points: np.ndarray, scale: float) -> torch.Tensor:
    """The pixels of the box of ``points`` grown by ``scale`` about its centre, within the frame."""
    centre, half = (points.min(0) + points.max(0)) / 2, (points.max(0) - points.min(0)) / 2
    (x0, y0), (x1, y1) = (centre - scale * half).astype(int), (centre + scale * half).astype(int)
    inside = torch.zeros(luma.shape, dtype=torch.bool)
    inside[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    return inside


def frame_lumas(path: Path):
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            yield torch.from_numpy(frame.to_ndarray(format="rgb24").astype(np.float32) @ LUMA)


def noise_around_faces(path: Path, tracks: list[Track], reference: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median over the frames with a face of the luma noise at each scale on the face (the box of
    its landmarks) and in a ring around it (3 to 3.8 times that box, within the frame), and of the
    noise at the pixels on the face in each brightness band of the ``reference`` video's frame."""
    on_face, around, banded = [], [], []
    for index, (luma, seen) in enumerate(zip(frame_lumas(path), frame_lumas(reference))):
        for track in tracks:
            if not track.start <= index < track.end:
                continue
            points = track.landmarks[index - track.start]
            face = landmark_box(luma, points, 1.0)
            on_face.append(noise_levels(luma, face))
            around.append(noise_levels(luma, landmark_box(luma, points, 3.8) & ~landmark_box(luma, points, 3.0)))
            bands, _ = brightness_bands(brightness(seen), scaled_masks(face))
            banded.append(noise_levels(luma, bands)[:, 0])
    return np.median(on_face, 0), np.median(around, 0), np.median(banded, 0)


def grain_cost(side: int, repeat: int = 5) -> float:
    """Milliseconds :func:`grain_for` takes on a ``side`` px square face region, fastest of ``repeat``."""
    generator = torch.Generator().manual_seed(0)
    face = torch.rand(3, side, side, generator=generator) * 255
    source = face + 6 * torch.randn(3, side, side, generator=generator)
    weight = torch.ones(side, side)
    best = float("inf")
    for seed in range(repeat):
        t0 = time.perf_counter()
        grain_for(face, source, weight, 1.0, seed)
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 6.0], help="luma noise added to the clip (levels)")
    ap.add_argument("--blur", type=float, nargs="+", default=[0.0, 1.5], help="px: the Gaussian the added noise is blurred by")
    ap.add_argument("--shadows", type=float, nargs="*", default=[6.0], help="white noise (levels at mid grey) that follows brightness")
    ap.add_argument("--grain", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--model", default="flipnet-small")
    ap.add_argument("--preset", default="fast")
    args = ap.parse_args()
    cfg = load_yaml(PipelineConfig, CONFIG_DIR / "pipeline.yaml")
    device = torch.device("cpu")
    detector = create_detector(cfg.detector, device)
    restorer = build_restorer(RestoreOptions(cfg, resolve_config(SamplerConfig, "presets", args.preset), args.model), device)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    print("grain_for, one thread: " + ", ".join(f"{side} px {grain_cost(side):.1f} ms" for side in (200, 400, 700)))
    torch.set_num_threads(threads)
    print(f"clip {args.clip.name}, first {args.frames} frames, model {args.model}, preset {args.preset}, detector {detector.name}")
    print("luma noise (levels) at the pixels / halves / quarters")
    print(f"{'noise added':>11s} {'run':>10s} {'face':>18s} {'around':>18s} {'face / around':>18s} {'restore s':>10s} {'advised':>7s}")
    triple = lambda values, digits: " / ".join(f"{v:.{digits}f}" for v in values)
    noises = [(noise, blur, False) for noise in args.noise for blur in (args.blur if noise else [0.0])]
    noises += [(noise, 0.0, True) for noise in args.shadows]
    banded = []
    with tempfile.TemporaryDirectory() as tmp:
        for noise, blur, shadows in noises:
            added = f"{noise:g}, {'shadows' if shadows else f'{blur:g} px'}"
            clip = noisy_head(args.clip, args.frames, noise, blur, Path(tmp) / f"noise{noise}_{blur}_{shadows}.mp4", shadows)
            tracks = analyse(clip, cfg, detector).tracks
            rows = [("input", clip, 0.0, "")]
            for grain in args.grain:
                out = Path(tmp) / f"noise{noise}_{blur}_{shadows}_grain{grain}.mkv"
                pcfg = dataclasses.replace(cfg, grain=grain, face_size=restorer.face_size,
                                           encode=dataclasses.replace(cfg.encode, codec="ffv1"))
                t0 = time.perf_counter()
                report = run(clip, out, pcfg, restorer, device, detector=detector)
                advised = any("--grain 1" in note for note in report.notes)
                rows.append((f"grain {grain:g}", out, time.perf_counter() - t0, "yes" if advised else "no"))
            for name, path, seconds, advised in rows:
                face, around, bands = noise_around_faces(path, tracks, clip)
                banded.append((added, name, bands))
                print(f"{added:>11s} {name:>10s} {triple(face, 2):>18s} {triple(around, 2):>18s} "
                      f"{triple(face / np.maximum(around, 1e-6), 2):>18s} {seconds:10.1f} {advised:>7s}")
    print("\nluma noise (levels) at the pixels on the face, by the input's brightness there: dark / middle / bright")
    for added, name, bands in banded:
        print(f"{added:>11s} {name:>10s} {triple(bands, 2):>18s}")


if __name__ == "__main__":
    main()
