"""`vidrestore eval`: paired image folders, or a restored video against its input.

Every video figure is reported for the input too, so each has its baseline beside it. The report
schema (keys and units) is documented in docs/eval.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputError, OutputError
from ..faces.detect import FaceDetector
from ..faces.identity import DlibIdentityEncoder
from ..io import VideoReader
from ..io.excerpt import Excerpt
from ..io.linear import Light
from ..io.output import check_folder
from ..io.probe import coded_frames
from ..pipeline import PipelineConfig, analyse
from ..pipeline.timing import in_seconds
from ..train.data import list_images, read_rgb
from . import niqe as niqe_metric
from .metrics import UNAVAILABLE, identity_cosine, landmark_distance, psnr, ssim
from .tracks import SIDES, TrackMeter, measure_tracks, output_cadence, restored_scale

SCHEMA_VERSION = 5


def _tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def _niqe_or_none(image: np.ndarray) -> float | None:
    """NIQE when the image has a whole 96 px patch and the pristine model is installed."""
    if min(image.shape[:2]) < niqe_metric.PATCH or niqe_metric.pristine_model() is None:
        return None
    return niqe_metric.niqe(image)


def _landmarks(detector: FaceDetector, image: np.ndarray) -> np.ndarray | None:
    found = detector.detect([image])[0]
    return max(found, key=lambda d: d.size).landmarks if found else None


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def _check_folders(*folders: Path) -> None:
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"{'not a folder' if folder.exists() else 'not found'}: {folder}")


def eval_images(restored_dir: Path, reference_dir: Path, detector: FaceDetector) -> dict:
    """Full-reference metrics for files with the same stem in both folders, and NIQE of each side."""
    _check_folders(restored_dir, reference_dir)
    pairs, unpaired = _paired(list_images([restored_dir]), list_images([reference_dir]))
    if not pairs:  # the means were null and the run said nothing of why
        raise InputError(f"no picture in {restored_dir} has a reference of the same name (less its type) in {reference_dir}")
    encoder = DlibIdentityEncoder()
    rows, skipped = [], []
    for out_path, ref_path in pairs:
        out, ref = read_rgb(out_path), read_rgb(ref_path)
        if out is None or ref is None:
            skipped.append(out_path.name)
            continue
        resized_from = f"{out.shape[1]}x{out.shape[0]}" if out.shape != ref.shape else None
        if resized_from:
            out = np.asarray(Image.fromarray(out).resize(ref.shape[1::-1], Image.BICUBIC))
        a, b = _tensor([out]), _tensor([ref])
        ident = float(identity_cosine(encoder.embed(out[None]), encoder.embed(ref[None]))[0]) if ref.shape[0] == ref.shape[1] else None
        lm_out, lm_ref = _landmarks(detector, out), _landmarks(detector, ref)
        rows.append({"file": out_path.name, "psnr": float(psnr(a, b)[0]), "ssim": float(ssim(a, b)[0]), "identity_cosine": ident,
                     "landmark_distance": landmark_distance(lm_out, lm_ref) if lm_out is not None and lm_ref is not None else None,
                     "niqe": _niqe_or_none(out), "niqe_reference": _niqe_or_none(ref), "resized_from": resized_from})
    keys = ("psnr", "ssim", "identity_cosine", "landmark_distance", "niqe", "niqe_reference")
    return {"schema": SCHEMA_VERSION, "kind": "images", "pairs": len(rows), "skipped": skipped, "unpaired": unpaired,
            "mean": {k: _mean(rows, k) for k in keys}, "niqe_model": niqe_metric.model_name(), "detector": detector.name,
            "per_image": rows, **UNAVAILABLE}


def _paired(restored: list[Path], references: list[Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Each restored picture with the reference of its stem, and the names of those that have none
    (they were left out without a word, the means over fewer). GFPGAN names a restored face
    ``x_00.png`` after the face's number, also for aligned input: it is paired with ``x`` when no
    ``x_00`` is a reference (every face was unpaired). Two references of one stem, or two restored
    pictures of one reference (a results folder holding the faces, the whole pictures and the
    side-by-sides), are refused: either pairing would be a guess."""
    by_stem: dict[str, Path] = {}
    for reference in references:
        if by_stem.setdefault(reference.stem, reference) != reference:
            raise InputError(f"two references are named {reference.stem}: {by_stem[reference.stem]} and {reference}; "
                             "give a folder where each name is one picture's")
    pairs, unpaired, measured = [], [], {}
    for picture in restored:
        reference = by_stem.get(picture.stem) or by_stem.get(picture.stem.removesuffix("_00"))
        if reference is None:
            unpaired.append(picture.name)
        elif measured.setdefault(reference, picture) != picture:
            raise InputError(f"{measured[reference]} and {picture} would both be measured against {reference}: give the "
                             "folder of the restored faces alone (GFPGAN's and CodeFormer's restored_faces)")
        else:
            pairs.append((picture, reference))
    return pairs, unpaired


def eval_noref(folder: Path, baseline: Path | None = None) -> dict:
    """NIQE of every image in ``folder`` (real LQ or restored, no ground truth); with ``baseline``
    (e.g. the LQ inputs of a restored folder), the same for the files of the same stem there (paired
    as :func:`eval_images` pairs), and the mean of ``folder``'s over those alone (``niqe_paired``:
    the mean over all set against the baseline's over some compared other pictures)."""
    _check_folders(folder, *([baseline] if baseline else []))
    pictures = list_images([folder])
    if not pictures:
        raise InputError(f"no pictures in {folder}")
    pairs, unpaired = _paired(pictures, list_images([baseline])) if baseline else ([], [])
    base = dict(pairs)
    rows, skipped = [], []
    for path in pictures:
        image = read_rgb(path)
        score = _niqe_or_none(image) if image is not None else None
        if score is None:
            skipped.append(path.name)
            continue
        row = {"file": path.name, "niqe": score}
        if path in base and (b := read_rgb(base[path])) is not None and (before := _niqe_or_none(b)) is not None:
            row["niqe_baseline"] = before
        rows.append(row)
    paired = [row for row in rows if "niqe_baseline" in row]
    return {"schema": SCHEMA_VERSION, "kind": "noref", "images": len(rows), "skipped": skipped, "unpaired": unpaired,
            "mean": {"niqe": _mean(rows, "niqe"), "niqe_paired": _mean(paired, "niqe"), "niqe_baseline": _mean(paired, "niqe_baseline")},
            "niqe_model": niqe_metric.model_name(), "per_image": rows}


def _contact_sheet(inp: np.ndarray, out: np.ndarray, path: Path) -> None:
    diff = np.clip(np.abs(out.astype(int) - inp.astype(int)) * 3, 0, 255).astype(np.uint8)
    rows = [np.concatenate(list(x), 1) for x in (inp, out, diff)]
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def plot_series(path: Path, title: str, panels: list[tuple[str, list, dict[str, list]]]) -> None:
    """One PNG, one panel per metric: ``(ylabel, x values, {line label: y values})``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), sharex=True, squeeze=False)
    for ax, (ylabel, xs, lines) in zip(axes[:, 0], panels):
        for label, ys in lines.items():
            ax.plot(xs[:len(ys)], ys, label=label, linewidth=1.2)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("frame")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _frame_niqe(path: Path, every: int, stop: int, limit: int, light: Light, excerpt: Excerpt | None = None) -> tuple[list[int], list[float]]:
    """NIQE of every ``every``-th frame before frame ``stop`` (of ``excerpt``, if given), at most
    ``limit`` of them, its samples read as ``light``."""
    frames, scores = [], []
    if niqe_metric.pristine_model() is None:
        return frames, scores
    with VideoReader(path, stop=stop, light=light, excerpt=excerpt) as reader:
        for frame in reader:
            if frame.index % every == 0 and len(frames) < limit and min(frame.image.shape[:2]) >= niqe_metric.PATCH:
                frames.append(frame.index)
                scores.append(niqe_metric.niqe(frame.image))
    return frames, scores


def track_figures(row: dict, meter: TrackMeter, figures: Path) -> None:
    """A track's contact sheet (input, restored, difference) and per-frame metric plot; paths go in ``row``."""
    row["contact_sheet"] = str(figures / f"track{meter.track_id:03d}.png")
    _contact_sheet(*meter.sheet(), Path(row["contact_sheet"]))
    row["plot"] = str(figures / f"track{meter.track_id:03d}_metrics.png")
    steps = list(range(meter.start + 1, meter.start + meter.count))
    series = row["per_frame"]
    plot_series(Path(row["plot"]), f"track {meter.track_id}", [
        (name, steps, {side: series[side][key] for side in SIDES})
        for name, key in (("warping error", "warping_error"), ("flicker", "flicker"))
    ] + [("identity cos", series["input"]["identity_frames"], {side: series[side]["identity_cosine"] for side in SIDES})])


def _folder_made(folder: Path, option: str) -> None:
    check_folder(folder, option, "the figures")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot make the {option} folder {folder} ({exc.strerror or exc})") from exc


def eval_video(input_path: Path, restored_path: Path, cfg: PipelineConfig, detector: FaceDetector,
               figures: Path | None = None, max_frames: int = 0, niqe_every: int = 5, niqe_limit: int = 600) -> dict:
    """Per-track temporal and identity metrics of ``restored_path``, with the same for ``input_path``
    (:mod:`vidrestore.eval.tracks`), and NIQE of whole frames (every ``niqe_every``-th) of both.

    Tracks come from the input (from its excerpt, ``cfg.start`` to ``cfg.end``, when the restored
    video is one). With ``figures``, writes a contact sheet and a per-frame plot per
    track, and a NIQE plot. ``max_frames``: at most this many frames per track (0: all), and of the
    video for NIQE, which scores at most ``niqe_limit`` frames."""
    if figures is not None:  # made before any work: a file of its name failed with a traceback once all was measured
        _folder_made(figures, "--figures")
    scale = restored_scale(input_path, restored_path)
    analysis = analyse(input_path, in_seconds(cfg, input_path), detector)
    encoder = DlibIdentityEncoder()
    step, left_out = output_cadence(restored_path, analysis.frames, analysis.deinterlace, analysis.repeats, analysis.video_cycles)
    expected, found = analysis.frames * step - len(left_out), coded_frames(restored_path)
    if abs(found - expected) > max(2, expected // 50):  # it measured any two videos against each other
        raise InputError(f"{restored_path} has {found} frame{'s' if found != 1 else ''} where a restoration of {input_path} would have {expected}: "
                         "eval video measures a video against its own input (an excerpt's with --start and --end)")
    meters = measure_tracks(input_path, restored_path, analysis.tracks, cfg.face_size, max_frames, analysis.deinterlace,
                            step=step, left_out=left_out, light=analysis.light, excerpt=analysis.excerpt, scale=scale)
    tracks = []
    for meter in meters:
        row = meter.finish(encoder)
        if figures is not None and meter.count:
            track_figures(row, meter, figures)
        tracks.append(row)
    frames = max_frames or analysis.frames
    niqe_frames, niqe_in = _frame_niqe(input_path, niqe_every, frames, niqe_limit, analysis.light, analysis.excerpt)
    _, niqe_out = _frame_niqe(restored_path, niqe_every * step, frames * step, niqe_limit, analysis.light)
    report = {"schema": SCHEMA_VERSION, "kind": "video", "input": str(input_path), "restored": str(restored_path),
              "detector": analysis.detector, "frames": analysis.frames, "restored_scale": [round(side, 4) for side in scale], "tracks": tracks,
              "niqe": {"model": niqe_metric.model_name(), "frames": niqe_frames, "input": niqe_in, "restored": niqe_out,
                       "mean_input": float(np.mean(niqe_in)) if niqe_in else None,
                       "mean_restored": float(np.mean(niqe_out)) if niqe_out else None},
              **UNAVAILABLE}
    if figures is not None and niqe_frames:
        report["niqe"]["plot"] = str(figures / "niqe.png")
        plot_series(figures / "niqe.png", "NIQE of whole frames (lower is more natural)",
                    [("NIQE", niqe_frames, {"input": niqe_in, "restored": niqe_out})])
    return report
