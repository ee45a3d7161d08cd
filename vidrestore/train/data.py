"""Training data: folders of faces (aligned on the fly when they are not), packed for fast access.

``pack_faces`` aligns every readable image of some folders to the canonical crop with the
pipeline's own detector and aligner, computes its identity descriptor, and writes one ``.npz``
(uint8 or WebP-coded crops + descriptors). Unreadable files and images without a face are skipped
and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, OutputError
from ..faces.align import align_faces
from ..faces.detect import DetectorConfig, create_detector
from ..faces.identity import DlibIdentityEncoder
from ..io.output import atomic_output
from ..io.photo import displayed_rgb
from ..io.sequence import hidden_below

if TYPE_CHECKING:
    from ..pipeline import Progress

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".avif"}  # what Pillow reads (a scan's TIFF too)


@dataclass
class PackStats:
    seen: int = 0
    packed: int = 0
    unreadable: int = 0
    no_face: int = 0
    skipped_files: list[str] = field(default_factory=list)


def list_images(folders: list[str | Path]) -> list[Path]:
    """The pictures under each of ``folders``, in path order, but for hidden ones (:func:`hidden_below`):
    macOS's ``._face.jpg`` was packed, degraded and measured as an unreadable picture of its own."""
    files = []
    for folder in map(Path, folders):
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not hidden_below(p, folder))
    return files


def read_rgb(path: Path) -> np.ndarray | None:
    """RGB uint8 image as shown (:func:`~vidrestore.io.photo.displayed_rgb`), or None when the file cannot be decoded."""
    try:
        with Image.open(path) as im:
            return displayed_rgb(im)
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


def pack_faces(sources: list[str | Path], out: str | Path, face_size: int, limit: int = 0,
               aligned: bool = False, with_identity: bool = True, quality: int = 0,
               progress: Progress | None = None) -> PackStats:
    """Align, describe and pack faces from ``sources`` into ``out`` (.npz). A source is a folder of
    images, or an earlier pack whose faces and descriptors are taken as they are (to merge packs or
    re-encode one). ``quality`` > 0 stores the faces as WebP at that quality (see :func:`write_pack`).
    Nothing is written when no face is found.
    ``progress`` hears ("pack", images seen, images in all, faces found) after each image."""
    files = list_images([s for s in sources if not _is_pack(s)])
    if limit:
        files = files[: limit]
    detector = None if aligned or not files else create_detector(DetectorConfig(backend="dlib", max_side=4096), torch.device("cpu"))
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
    encoder = DlibIdentityEncoder() if with_identity and len(arr) else None
    ident = encoder.embed(arr) if encoder is not None else np.zeros((len(arr), 128), np.float32)
    for pack in (PackedFaces(s) for s in sources if _is_pack(s)):
        if pack.size != face_size:
            raise ConfigError(f"a pack of {pack.size} px faces cannot join a {face_size} px pack; use --face-size {pack.size}")
        arr = np.concatenate([arr, pack.faces_at(torch.arange(len(pack))).numpy()])
        ident = np.concatenate([ident, pack.identity.numpy()])
    if len(arr):  # a pack of no faces trains nothing
        write_pack(out, arr, ident, quality)
    stats.packed = len(arr)
    if stats.unreadable:
        log.warning("skipped %d unreadable files", stats.unreadable)
    return stats


def _is_pack(source: str | Path) -> bool:
    return Path(source).suffix == ".npz" and Path(source).is_file()


def write_pack(out: str | Path, faces: np.ndarray, identity: np.ndarray, quality: int = 0) -> None:
    """Write faces (N, S, S, 3) uint8 RGB and descriptors (N, 128). With ``quality`` > 0 the faces are
    WebP-coded into one byte array with offsets and the descriptors kept in float16: at quality 88 a
    128 px face takes 3.9 KB instead of 49 KB, at 39 dB PSNR. That lets a face set travel to a
    training machine, or a large one fit in memory. Written whole, then named (a full disk leaves no
    half a pack)."""
    if quality:
        coded = [cv2.imencode(".webp", np.ascontiguousarray(f[..., ::-1]), [cv2.IMWRITE_WEBP_QUALITY, quality])[1] for f in faces]
        blob = np.concatenate(coded) if coded else np.zeros(0, np.uint8)
        arrays = {"coded": blob, "offsets": np.cumsum([0] + [len(c) for c in coded]).astype(np.int64),
                  "size": np.int64(faces.shape[1]), "identity": identity.astype(np.float16)}
    else:
        arrays = {"faces": faces, "identity": identity}
    with atomic_output(out) as temp:
        try:
            with open(temp, "wb") as file:  # numpy adds ".npz" to a name, not to a file
                np.savez(file, **arrays)
        except OSError as exc:
            raise OutputError(f"cannot write {out} ({exc.strerror or exc})") from exc


class PackedFaces:
    """Random access to packed faces, raw or WebP-coded (decoded per batch); batches come from an
    explicit ``torch.Generator``. Several packs are read as one, in the order given."""

    def __init__(self, paths: str | Path | list[str | Path]):
        packs = [np.load(p) for p in (paths if isinstance(paths, list) else [paths])]
        self._parts = [_PackPart(d) for d in packs]
        sizes = {part.size for part in self._parts}
        if len(sizes) > 1:
            raise ConfigError(f"packs of different face sizes cannot train together: {sorted(sizes)} px")
        self.size = sizes.pop()
        self._starts = np.cumsum([0] + [len(part) for part in self._parts])
        self.identity = torch.from_numpy(np.concatenate([d["identity"] for d in packs])).float()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def faces_at(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 faces at pack-order ``indices``."""
        which = np.searchsorted(self._starts, indices.numpy(), side="right") - 1
        return torch.from_numpy(np.stack([self._parts[p].face(int(i) - int(self._starts[p]))
                                          for p, i in zip(which, indices.tolist())]))

    def split(self, holdout: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices for training and the last ``holdout`` faces for validation."""
        n = len(self)
        return torch.arange(0, n - holdout), torch.arange(n - holdout, n)

    def batch(self, indices: torch.Tensor, gen: torch.Generator, flip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.faces_at(indices).permute(0, 3, 1, 2).float() / 255
        if flip:
            flips = torch.rand(len(indices), generator=gen) < 0.5
            x[flips] = x[flips].flip(-1)
        return x, self.identity[indices]


class _PackPart:
    """One pack file's faces: a uint8 array, or coded images (WebP) with offsets."""

    def __init__(self, data):
        self._raw = data["faces"] if "faces" in data.files else None
        if self._raw is None:
            self._coded, self._offsets = data["coded"], data["offsets"]
            self.size = int(data["size"])
        else:
            self.size = self._raw.shape[1]

    def __len__(self) -> int:
        return len(self._raw) if self._raw is not None else len(self._offsets) - 1

    def face(self, i: int) -> np.ndarray:
        if self._raw is not None:
            return self._raw[i]
        image = cv2.imdecode(self._coded[self._offsets[i]:self._offsets[i + 1]], cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"face {i} of a WebP-coded pack could not be decoded (an OpenCV built without WebP?)")
        return image[..., ::-1]


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
