"""A sample clip generated on the spot, so the demo needs no download and ships no media.

The face is scikit-image's bundled ``astronaut`` photograph (Eileen Collins, NASA, public domain).
The clip pans and zooms slowly over it, is degraded with the archival degradation model (drifting
parameters), and carries a 440 Hz AAC tone so that audio survival can be checked.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from .config import resolve_config
from .degrade import DegradationConfig, degrade_clip, sample_clip_params
from .io.encoders import REPRODUCIBLE_X264


def _camera_path(image: np.ndarray, frames: int, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    out = []
    for i in range(frames):
        s = i / max(frames - 1, 1)
        zoom = 1.0 + 0.15 * s
        cx, cy = 256 + 12 * np.sin(2 * np.pi * s), 200 + 6 * s
        half_w, half_h = 200 / zoom, 200 * h / w / zoom
        m = cv2.getAffineTransform(np.float32([[cx - half_w, cy - half_h], [cx + half_w, cy - half_h], [cx - half_w, cy + half_h]]),
                                   np.float32([[0, 0], [w, 0], [0, h]]))
        out.append(cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    return np.stack(out)


SAMPLE_TYPES = (".mp4", ".mkv", ".mov")  # the containers make_sample writes into


def make_sample(path: str | Path, frames: int = 48, size: tuple[int, int] = (360, 480), fps: int = 24, seed: int = 7) -> Path:
    """Write a degraded talking-head-like clip with audio to ``path`` (mp4)."""
    from skimage import data

    clean = _camera_path(data.astronaut(), frames, size)
    # Archival character, but mild enough that every frame's face stays detectable.
    cfg = dataclasses.replace(resolve_config(DegradationConfig, "degradations", "archival"),
                              blur_sigma=(0.5, 1.5), downscale=(2.0, 3.0), motion_prob=0.0, interlace_prob=0.0)
    gen = torch.Generator().manual_seed(seed)
    hq = torch.from_numpy(clean).permute(0, 3, 1, 2).float() / 255
    lq = degrade_clip(hq, sample_clip_params(cfg, frames, gen), gen, cfg)
    video = (lq.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[1], size[0], "yuv420p"
        vs.options = {"crf": "23", **REPRODUCIBLE_X264}
        aus = out.add_stream("aac", rate=48000)
        aus.layout = "mono"
        for i, img in enumerate(video):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        samples = int(48000 * frames / fps)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        for start in range(0, samples, 1024):
            af = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, start
            out.mux(aus.encode(af))
        out.mux(aus.encode(None))
    return path
