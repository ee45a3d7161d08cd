"""`vidrestore eval`: paired image folders, or a restored video against its input.

Every video figure is reported for the input too, so each has its baseline beside it. The report
schema (keys and units) is documented in docs/eval.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..diffusion.flow import flows_to_previous
from ..faces.align import align_faces
from ..faces.detect import FaceDetector
from ..faces.identity import DlibIdentityEncoder
from ..io import VideoReader
from ..pipeline import PipelineConfig, analyse
from ..train.data import list_images, read_rgb
from .metrics import UNAVAILABLE, flicker, identity_cosine, identity_stability, psnr, ssim, warping_error

SCHEMA_VERSION = 1


def _tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def eval_images(restored_dir: Path, reference_dir: Path) -> dict:
    """Full-reference metrics for files with the same stem in both folders."""
    refs = {p.stem: p for p in list_images([reference_dir])}
    pairs = [(p, refs[p.stem]) for p in list_images([restored_dir]) if p.stem in refs]
    encoder = DlibIdentityEncoder()
    rows, skipped = [], []
    for out_path, ref_path in pairs:
        out, ref = read_rgb(out_path), read_rgb(ref_path)
        if out is None or ref is None:
            skipped.append(out_path.name)
            continue
        if out.shape != ref.shape:
            out = np.asarray(Image.fromarray(out).resize(ref.shape[1::-1], Image.BICUBIC))
        a, b = _tensor([out]), _tensor([ref])
        ident = float(identity_cosine(encoder.embed(out[None]), encoder.embed(ref[None]))[0]) if ref.shape[0] == ref.shape[1] else None
        rows.append({"file": out_path.name, "psnr": float(psnr(a, b)[0]), "ssim": float(ssim(a, b)[0]), "identity_cosine": ident})
    mean = {k: float(np.mean([r[k] for r in rows if r[k] is not None])) if rows else None for k in ("psnr", "ssim", "identity_cosine")}
    return {"schema": SCHEMA_VERSION, "kind": "images", "pairs": len(rows), "skipped": skipped, "mean": mean,
            "per_image": rows, **UNAVAILABLE}


def _track_crops(path: Path, tracks, face_size: int, max_frames: int) -> dict[int, list[np.ndarray]]:
    crops: dict[int, list[np.ndarray]] = {t.track_id: [] for t in tracks}
    with VideoReader(path) as reader:
        for frame in reader:
            live = [t for t in tracks if t.covers(frame.index) and len(crops[t.track_id]) < max_frames]
            if not live:
                continue
            image = torch.from_numpy(frame.image).permute(2, 0, 1).float() / 255
            lms = torch.from_numpy(np.stack([t.landmarks_at(frame.index) for t in live])).float()
            out, _ = align_faces(image, lms, face_size)
            for t, c in zip(live, out):
                crops[t.track_id].append((c.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy())
    return crops


def _sequence_metrics(frames: np.ndarray, flows: torch.Tensor, valid: torch.Tensor, encoder: DlibIdentityEncoder) -> dict:
    x = _tensor(list(frames))
    pick = np.linspace(0, len(frames) - 1, min(32, len(frames))).round().astype(int)
    return {"warping_error": warping_error(x, flows, valid), "flicker": flicker(x, flows, valid),
            "identity_stability": identity_stability(encoder.embed(frames[pick]))}


def _contact_sheet(inp: np.ndarray, out: np.ndarray, path: Path) -> None:
    pick = np.linspace(0, len(inp) - 1, min(8, len(inp))).round().astype(int)
    diff = np.clip(np.abs(out[pick].astype(int) - inp[pick].astype(int)) * 3, 0, 255).astype(np.uint8)
    rows = [np.concatenate(list(x), 1) for x in (inp[pick], out[pick], diff)]
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def eval_video(input_path: Path, restored_path: Path, cfg: PipelineConfig, detector: FaceDetector,
               sheets: Path | None = None, max_frames: int = 600) -> dict:
    """Per-track temporal and identity metrics of ``restored_path``, with the same for ``input_path``.

    Tracks come from the input; the same landmarks cut crops from both videos, so the two are compared
    on exactly the same face regions. Flow is estimated on the input crops and used for both.
    """
    analysis = analyse(input_path, cfg, detector)
    encoder = DlibIdentityEncoder()
    inp = _track_crops(input_path, analysis.tracks, cfg.face_size, max_frames)
    out = _track_crops(restored_path, analysis.tracks, cfg.face_size, max_frames)
    tracks = []
    for t in analysis.tracks:
        a, b = np.stack(inp[t.track_id]), np.stack(out[t.track_id])
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
        flows, valid = flows_to_previous(a)
        m_in, m_out = _sequence_metrics(a, flows, valid, encoder), _sequence_metrics(b, flows, valid, encoder)
        row = {"id": t.track_id, "start": t.start, "frames_evaluated": n, "input": m_in, "restored": m_out,
               "flicker_ratio": m_out["flicker"] / max(m_in["flicker"], 1e-9)}
        if sheets is not None:
            sheets.mkdir(parents=True, exist_ok=True)
            row["contact_sheet"] = str(sheets / f"track{t.track_id:03d}.png")
            _contact_sheet(a, b, Path(row["contact_sheet"]))
        tracks.append(row)
    return {"schema": SCHEMA_VERSION, "kind": "video", "input": str(input_path), "restored": str(restored_path),
            "detector": analysis.detector, "frames": analysis.frames, "tracks": tracks, **UNAVAILABLE}
