"""Training data: folders of faces (aligned on the fly when they are not), packed for fast access.

``pack_faces`` aligns every readable image of some folders to the canonical crop with the
pipeline's own detector and aligner, computes its identity descriptor, and writes one ``.npz``
(uint8 crops + descriptors). Unreadable files and images without a face are skipped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..faces.align import align_faces
from ..faces.detect import DetectorConfig, create_detector
from ..faces.identity import DlibIdentityEncoder

if TYPE_CHECKING:
    from ..pipeline import Progress

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass
class PackStats:
    seen: int = 0
    packed: int = 0
    unreadable: int = 0
    no_face: int = 0
    skipped_files: list[str] = field(default_factory=list)


def list_images(folders: list[str | Path]) -> list[Path]:
    files = []
    for folder in folders:
        files += sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files


def read_rgb(path: Path) -> np.ndarray | None:
    """RGB uint8 image, or None when the file cannot be decoded."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # writable, so torch.from_numpy may share it
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def align_image(image: np.ndarray, detector, face_size: int, upscale: float = 2.0) -> np.ndarray | None:
    """The most confident face of ``image`` aligned to ``face_size``, or None if no face is found."""
    import cv2

    big = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC) if upscale != 1 else image
    dets = detector.detect([big])[0]
    if not dets:
        return None
    best = max(dets, key=lambda d: d.score * d.size)
    frame = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    crops, _ = align_faces(frame, torch.from_numpy(best.landmarks / upscale)[None], face_size)
    return (crops[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def pack_faces(folders: list[str | Path], out: str | Path, face_size: int, limit: int = 0,
               aligned: bool = False, with_identity: bool = True, progress: Progress | None = None) -> PackStats:
    """Align, describe and pack faces from ``folders`` into ``out`` (.npz with ``faces`` and ``identity``).
    ``progress`` hears ("pack", images seen, images in all, faces found) after each image."""
    files = list_images(folders)
    if limit:
        files = files[: limit]
    detector = None if aligned else create_detector(DetectorConfig(backend="dlib", max_side=4096), torch.device("cpu"))
    encoder = DlibIdentityEncoder() if with_identity else None
    stats, faces = PackStats(), []
    for path in files:
        if progress:
            progress("pack", stats.seen, len(files), len(faces))
        stats.seen += 1
        image = read_rgb(path)
        if image is None:
            stats.unreadable += 1
            stats.skipped_files.append(str(path))
            continue
        if aligned:
            crop = np.asarray(Image.fromarray(image).resize((face_size, face_size), Image.BICUBIC))
        else:
            crop = align_image(image, detector, face_size)
        if crop is None:
            stats.no_face += 1
            continue
        faces.append(crop)
    if progress:
        progress("pack", stats.seen, len(files), len(faces))
    arr = np.stack(faces) if faces else np.zeros((0, face_size, face_size, 3), np.uint8)
    ident = encoder.embed(arr) if encoder is not None and len(arr) else np.zeros((len(arr), 128), np.float32)
    np.savez(out, faces=arr, identity=ident)
    stats.packed = len(arr)
    if stats.unreadable:
        log.warning("skipped %d unreadable files", stats.unreadable)
    return stats


class PackedFaces:
    """Random access to a packed face set; batches come from an explicit ``torch.Generator``."""

    def __init__(self, paths: str | Path | list[str | Path]):
        packs = [np.load(p) for p in (paths if isinstance(paths, list) else [paths])]
        self.faces = torch.from_numpy(np.concatenate([d["faces"] for d in packs]))  # (N, S, S, 3) uint8, in pack order
        self.identity = torch.from_numpy(np.concatenate([d["identity"] for d in packs])).float()

    def __len__(self) -> int:
        return len(self.faces)

    def split(self, holdout: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices for training and the last ``holdout`` faces for validation."""
        n = len(self)
        return torch.arange(0, n - holdout), torch.arange(n - holdout, n)

    def batch(self, indices: torch.Tensor, gen: torch.Generator, flip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.faces[indices].permute(0, 3, 1, 2).float() / 255
        if flip:
            flips = torch.rand(len(indices), generator=gen) < 0.5
            x[flips] = x[flips].flip(-1)
        return x, self.identity[indices]


class ClipFrames:
    """Random runs of consecutive frames from video files: decord when present, PyAV otherwise."""

    def __init__(self, paths: list[str | Path]):
        self.paths = [Path(p) for p in paths]
        try:
            import decord  # noqa: F401

            self.backend = "decord"
        except ImportError:
            self.backend = "pyav"

    def read(self, index: int, start: int, count: int) -> np.ndarray:
        """(count, H, W, 3) uint8 RGB frames ``start .. start+count-1`` of clip ``index``."""
        path = self.paths[index]
        if self.backend == "decord":
            import decord

            vr = decord.VideoReader(str(path))
            idx = list(range(start, min(start + count, len(vr))))
            return vr.get_batch(idx).asnumpy()
        from ..io import VideoReader

        out = []
        with VideoReader(path) as reader:
            for frame in reader:
                if frame.index >= start + count:
                    break
                if frame.index >= start:
                    out.append(frame.image)
        return np.stack(out)
