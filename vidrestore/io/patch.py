"""Write changed regions of an RGB image back into the decoded frame, plane by plane.

A restored frame differs from its decoded original only around the faces. Converting the whole
frame back from RGB would re-quantise every pixel (8-bit RGB holds YUV only to about one level,
and chroma is resampled twice) and costs the most expensive conversion of the write path
(RGB to YUV has no vectorised path in FFmpeg for packed RGB). Instead, the boxes around the
faces are converted alone and written into the planes of the decoded frame: elsewhere the
encoder gets the decoder's own samples, bit for bit through a lossless codec.
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import VideoReformatter

Box = tuple[int, int, int, int]  # x0, y0, x1, y1: pixels [x0, x1) x [y0, y1)

# FFmpeg's RGB-to-YUV conversion filters chroma vertically over neighbouring rows, so a region
# converted alone differs from the whole frame's conversion in its first and last chroma rows; a
# margin this wide is converted around each box and dropped, so the box's samples are the ones a
# whole-frame conversion gives. The converted region snaps to a grid so that its size changes
# rarely as a face moves: setting a conversion up for a new size cost more than converting.
_MARGIN = 8
_GRID = 32


def patchable(frame: av.VideoFrame) -> bool:
    """Whether regions can be written into ``frame`` plane by plane: planar, one component per plane
    (yuv420p, yuv422p10le, gbrp...; not nv12, packed or float formats), chroma subsampled by 2 at most,
    and even sides so that chroma is exactly half size where it is subsampled (FFmpeg scales odd
    sides' chroma by a ratio off 2:1)."""
    fmt = frame.format
    return (fmt.is_planar and not fmt.is_bayer and not fmt.has_palette
            and len({c.plane for c in fmt.components}) == len(fmt.components) == len(frame.planes)
            and max(c.bits for c in fmt.components) <= 16 and not fmt.name.endswith(("f32le", "f32be", "f16le", "f16be"))
            and frame.width % 2 == 0 and frame.height % 2 == 0
            and all(-(-frame.width >> 1) <= p.width and -(-frame.height >> 1) <= p.height for p in frame.planes))


# Packed YUV formats and the planar ones that hold their samples as they are (swscale converts
# between them without a change)
_PLANAR_TWINS = {"uyvy422": "yuv422p", "yuyv422": "yuv422p"}


def planar_twin(frame: av.VideoFrame) -> av.VideoFrame | None:
    """``frame``'s samples in the planar format that holds them as they are, where it is packed
    YUV (a capture's UYVY) and that one is :func:`patchable`; else None. Regions are written into
    it and it is packed back: written whole, the frame was converted from RGB everywhere, and an
    uncompressed capture's picture changed by a level or two where no face was."""
    twin = _PLANAR_TWINS.get(frame.format.name)
    planar = frame.reformat(format=twin) if twin else None
    return planar if planar is not None and patchable(planar) else None


def rgb_format(image: np.ndarray) -> str:
    """The pixel format of an RGB or RGBA ``image`` of uint8 or uint16 samples."""
    return {(False, 3): "rgb24", (True, 3): "rgb48le", (False, 4): "rgba", (True, 4): "rgba64le"}[
        (image.dtype == np.uint16, image.shape[2])]


def with_alpha_of(frame: av.VideoFrame, image: np.ndarray, turned: int = 0) -> np.ndarray:
    """``image`` (RGB, ``frame``'s size and orientation, or for an upright copy ``frame`` turned by
    ``turned`` degrees counter-clockwise) with ``frame``'s alpha as a fourth channel when its format
    has one (a render's PNG, a ProRes 4444 master), so that writing the image back keeps the alpha
    as it was; else ``image``."""
    if not any(c.is_alpha for c in frame.format.components):
        return image
    alpha = frame.reformat(format="rgba64le" if image.dtype == np.uint16 else "rgba").to_ndarray()[..., 3:]
    return np.concatenate([image, np.rot90(alpha, k=turned // 90 % 4)], axis=2)


def over_checks(image: np.ndarray, frame: av.VideoFrame, turned: int = 0, square: int = 16) -> np.ndarray:
    """``image`` (as in :func:`with_alpha_of`) laid by ``frame``'s alpha over a checkerboard of two
    greys, as editors show transparency: an RGB picture of a transparent video (the side-by-side
    preview) showed its clear pixels black, whatever colour they held."""
    if not any(c.is_alpha for c in frame.format.components):
        return image
    alpha = np.rot90(frame.reformat(format="rgba").to_ndarray()[..., 3], k=turned // 90 % 4)[..., None] / np.float32(255)
    top = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else 1
    rows, columns = np.indices(image.shape[:2], dtype=np.int32) // square
    checks = np.where((rows + columns) % 2 == 1, np.float32(0.6 * top), np.float32(0.4 * top))[..., None]
    laid = image * alpha + checks * (1 - alpha)
    return (laid + 0.5).astype(image.dtype) if np.issubdtype(image.dtype, np.integer) else laid.astype(image.dtype)


def plane_array(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """The bytes of ``plane`` as a writable (height, line size) array."""
    return np.frombuffer(plane, np.uint8)[: plane.height * plane.line_size].reshape(plane.height, plane.line_size)


def _shift(full: int, part: int) -> int:
    """log2 of a plane's subsampling, from the frame's and the plane's size along one axis."""
    return next(s for s in range(4) if -(-full >> s) == part)


def copy_samples(dst: av.VideoFrame, src: av.VideoFrame) -> None:
    """Copy the samples of ``src`` into ``dst``, a frame of the same format and size."""
    for to, fro in zip(dst.planes, src.planes):
        width = min(to.line_size, fro.line_size)
        plane_array(to)[:, :width] = plane_array(fro)[:, :width]


def rotate_box(box: Box, quarter_turns: int, height: int, width: int) -> Box:
    """Where ``box`` of a (height, width) image lands in ``np.rot90(image, quarter_turns)``."""
    x0, y0, x1, y1 = box
    for _ in range(quarter_turns % 4):  # one counter-clockwise turn: (x, y) -> (y, width - 1 - x)
        x0, y0, x1, y1 = y0, width - x1, y1, width - x0
        height, width = width, height
    return x0, y0, x1, y1


def merged(boxes: list[Box]) -> list[Box]:
    """``boxes`` with every overlapping group replaced by the box bounding it: what they cover
    (and a little more), each pixel once."""
    out: list[Box] = []
    for box in boxes:
        while (hit := next((o for o in out if o[0] < box[2] and box[0] < o[2] and o[1] < box[3] and box[1] < o[3]), None)) is not None:
            out.remove(hit)
            box = (min(box[0], hit[0]), min(box[1], hit[1]), max(box[2], hit[2]), max(box[3], hit[3]))
        out.append(box)
    return out


def _expand(box: Box, unit: int, margin: int, height: int, width: int) -> Box:
    """``box`` grown by ``margin`` and out to multiples of ``unit``, within the frame."""
    x0, y0, x1, y1 = box
    return (max(0, (x0 - margin) // unit * unit), max(0, (y0 - margin) // unit * unit),
            min(width, -(-(x1 + margin) // unit) * unit), min(height, -(-(y1 + margin) // unit) * unit))


def patch_area(box: Box, height: int, width: int) -> Box:
    """The part of a (height, width) image that :func:`patch_frame` converts for ``box``; the same
    function grown once more gives a part whose conversion from YUV is, over that area, the whole
    frame's (FFmpeg's chroma filter reaches a few pixels out)."""
    return _expand(box, _GRID, _MARGIN, height, width)


def crop_frame(frame: av.VideoFrame, box: Box) -> av.VideoFrame:
    """The ``box`` of ``frame``, a :func:`patchable` frame (``box`` at even coordinates), as a frame
    of its own: its planes' samples copied, so that FFmpeg converts that part alone."""
    x0, y0, x1, y1 = box
    part = av.VideoFrame(x1 - x0, y1 - y0, frame.format.name)
    sample = 2 if max(c.bits for c in frame.format.components) > 8 else 1  # bytes
    for dst, src in zip(part.planes, frame.planes):
        sx, sy = _shift(frame.width, src.width), _shift(frame.height, src.height)
        rows = plane_array(src)[y0 >> sy : -(-y1 >> sy), (x0 >> sx) * sample : -(-x1 >> sx) * sample]
        plane_array(dst)[: rows.shape[0], : rows.shape[1]] = rows
    return part


def patch_frame(target: av.VideoFrame, image: np.ndarray, boxes: list[Box], reformatter: VideoReformatter,
                **conversion: int) -> None:
    """Convert the ``boxes`` of ``image`` (RGB or RGBA, uint8 or uint16, coded orientation, the frame's size)
    to ``target``'s format with the ``conversion`` arguments of :meth:`VideoReformatter.reformat`
    (colour space, range, threads) and write them into its planes. ``target`` must be :func:`patchable`."""
    height, width = image.shape[:2]
    unit = 2  # covers every chroma subsampling of an even-sided patchable frame (4:2:0, 4:2:2, 4:4:4)
    sample = 2 if max(c.bits for c in target.format.components) > 8 else 1  # bytes
    for box in boxes:
        inner = _expand(box, unit, 0, height, width)
        outer = patch_area(box, height, width)
        if inner[2] <= inner[0] or inner[3] <= inner[1]:
            continue
        rgb = np.ascontiguousarray(image[outer[1] : outer[3], outer[0] : outer[2]])
        source = av.VideoFrame.from_ndarray(rgb, format=rgb_format(rgb))
        converted = reformatter.reformat(source, format=target.format.name, **conversion)
        for dst, src in zip(target.planes, converted.planes):
            sx, sy = _shift(width, dst.width), _shift(height, dst.height)
            ix0, iy0, ix1, iy1 = inner[0] >> sx, inner[1] >> sy, inner[2] >> sx, inner[3] >> sy
            ox0, oy0 = outer[0] >> sx, outer[1] >> sy
            plane_array(dst)[iy0:iy1, ix0 * sample : ix1 * sample] = \
                plane_array(src)[iy0 - oy0 : iy1 - oy0, (ix0 - ox0) * sample : (ix1 - ox0) * sample]
