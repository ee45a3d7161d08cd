"""Scene-linear floating-point pictures: OpenEXR plates, in half or float, with or without alpha.

FFmpeg's scaler clamps float samples to [0, 1] when it converts them: a plate's highlights above
1 and its negative samples were lost over the whole picture, faces or not. Float frames are
therefore read and written here, plane by plane, and never pass through it.

The detector and the model work on display-referred pictures, so linear light is encoded with
the sRGB curve (IEC 61966-2-1) for them (linear-light values above 1 clip there), after a plate
of other primaries (its chromaticities attribute: an ACEScg plate's) is converted to Rec. 709's,
its white adapted to D65 with the Bradford transform. Restored faces go back through the inverse
curve and matrix into the boxes around them; every other sample of the picture is the plate's
own, to the bit: half samples widen to float exactly, and the encoder writes them back as half.
"""

from __future__ import annotations

import dataclasses
import functools

import av
import cv2
import numpy as np

from .patch import Box
from .probe import VideoInfo

# planar G, B, R (and alpha), as FFmpeg's OpenEXR decoder gives them
LINEAR_FORMATS = {"gbrpf16le": np.float16, "gbrapf16le": np.float16, "gbrpf32le": np.float32, "gbrapf32le": np.float32}
_RGB_PLANES = (2, 0, 1)  # the planes R, G and B are in
_PLANE_CHANNELS = tuple(int(c) for c in np.argsort(_RGB_PLANES))  # the channels (R, G, B) planes G, B and R hold


# x, y of red, green, blue and white, in the order of OpenEXR's chromaticities attribute
REC709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _to_xyz(chromaticities: tuple[float, ...]) -> np.ndarray:
    """The linear RGB -> XYZ matrix of ``chromaticities`` (white at Y = 1)."""
    xy = np.asarray(chromaticities, float).reshape(4, 2)
    xyz = np.column_stack([xy[:, 0] / xy[:, 1], np.ones(4), (1 - xy.sum(1)) / xy[:, 1]])  # R, G, B, white
    primaries = xyz[:3].T
    return primaries * np.linalg.solve(primaries, xyz[3])


@functools.cache
def to_rec709(chromaticities: tuple[float, ...] = ()) -> np.ndarray:
    """The 3x3 matrix from linear RGB of ``chromaticities`` (none: Rec. 709's) to linear Rec. 709
    RGB, the white adapted to D65 with the Bradford transform (as ACES's own conversions do)."""
    if not chromaticities or np.allclose(chromaticities, REC709, atol=1e-4):
        return np.eye(3, dtype=np.float32)
    source, target = _to_xyz(chromaticities), _to_xyz(REC709)
    cone_source, cone_target = _BRADFORD @ source.sum(1), _BRADFORD @ target.sum(1)  # the whites' cone responses
    adapt = np.linalg.solve(_BRADFORD, np.diag(cone_target / cone_source) @ _BRADFORD)
    return np.linalg.solve(target, adapt @ source).astype(np.float32)


def is_linear(pix_fmt: str) -> bool:
    """Whether frames of ``pix_fmt`` are scene-linear float pictures that only this module converts."""
    return pix_fmt in LINEAR_FORMATS


def float_format(pix_fmt: str) -> str:
    """The float twin of a linear ``pix_fmt`` (gbrpf32le for gbrpf16le): what the OpenEXR encoder takes."""
    return pix_fmt.replace("f16", "f32")


SRGB_TRANSFER = 13  # AVCOL_TRC_IEC61966_2_1


def displayed(info: VideoInfo) -> VideoInfo:
    """``info`` as the display-referred images made from its frames are: for a linear source,
    16-bit RGB with the sRGB curve (a preview of a plate is such a video); others as they are."""
    if not is_linear(info.pix_fmt):
        return info
    return dataclasses.replace(info, pix_fmt="rgb48le", color=dataclasses.replace(info.color, transfer=SRGB_TRANSFER))


def samples(frame: av.VideoFrame) -> np.ndarray:
    """The frame's samples as float32 (H, W, C): R, G, B (and alpha), as stored."""
    dtype = LINEAR_FORMATS[frame.format.name]
    planes = [np.frombuffer(p, dtype).reshape(p.height, p.line_size // np.dtype(dtype).itemsize)[:, : p.width]
              for p in frame.planes]
    order = [*_RGB_PLANES, *range(3, len(planes))]
    return np.stack([planes[i] for i in order], axis=-1).astype(np.float32)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light, clipped to [0, 1], encoded with the sRGB curve."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] back to linear light."""
    return np.where(encoded <= 0.04045, encoded / 12.92, np.power((encoded + 0.055) / 1.055, 2.4))


def to_display(frame: av.VideoFrame, max_side: int = 0, deep: bool = False,
               chromaticities: tuple[float, ...] = ()) -> tuple[np.ndarray, tuple[float, float]]:
    """A linear frame of primaries ``chromaticities`` (none: Rec. 709's) as a display-referred
    Rec. 709 RGB image, uint16 with ``deep`` else uint8, downscaled in linear light (as light adds
    up) so that its longer side is at most ``max_side`` (0: full size); returns it with its scale (x, y)."""
    rgb = samples(frame)[..., :3]
    factor = min(1.0, max_side / max(frame.width, frame.height)) if max_side else 1.0
    if factor < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(frame.width * factor)), max(1, round(frame.height * factor))), interpolation=cv2.INTER_AREA)
    rgb = rgb @ to_rec709(chromaticities).T
    top = 65535 if deep else 255
    image = (srgb_encode(rgb) * top + 0.5).astype(np.uint16 if deep else np.uint8)
    return image, (image.shape[1] / frame.width, image.shape[0] / frame.height)


def linear_frame(source: av.VideoFrame, image: np.ndarray | None = None, boxes: list[Box] | None = None,
                 chromaticities: tuple[float, ...] = ()) -> av.VideoFrame:
    """A float frame (the encoder's format) of the linear ``source`` of primaries
    ``chromaticities``: its own samples, but in ``boxes`` (x0, y0, x1, y1; every pixel when None)
    those of the display-referred Rec. 709 RGB ``image`` (uint8 or uint16, the frame's size),
    decoded to linear light in the plate's primaries. A pixel the picture shows at the end of its
    range (white or black in a channel) where the plate lies beyond it (a specular highlight above
    1, grain below 0) stays the plate's: the curve clipped it, restoration did not put it there.
    Alpha stays the source's."""
    values = samples(source)
    if image is not None:
        top = np.iinfo(image.dtype).max
        matrix = to_rec709(chromaticities)
        back = np.linalg.inv(matrix).astype(np.float32)
        for x0, y0, x1, y1 in boxes if boxes is not None else [(0, 0, source.width, source.height)]:
            shown, plate = image[y0:y1, x0:x1], values[y0:y1, x0:x1, :3]
            seen = plate @ matrix.T
            clipped = (((shown == top) & (seen > 1)) | ((shown == 0) & (seen < 0))).any(-1, keepdims=True)
            values[y0:y1, x0:x1, :3] = np.where(clipped, plate, srgb_decode(shown.astype(np.float32) / top) @ back.T)
    frame = av.VideoFrame(source.width, source.height, float_format(source.format.name))
    for plane, channel in zip(frame.planes, [*_PLANE_CHANNELS, *range(3, values.shape[2])]):
        rows = np.frombuffer(plane, np.float32).reshape(plane.height, plane.line_size // 4)
        rows[:, : plane.width] = values[..., channel]
    return frame
