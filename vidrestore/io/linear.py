"""Pictures whose samples are not encoded for a display: OpenEXR plates (scene-linear light, in
half or float, with or without alpha), RGB pictures tagged linear, and film scans in printing
density (Cineon log, as a DPX header states it). :class:`Light` names the three; the probe sets it.

FFmpeg's scaler clamps float samples to [0, 1] when it converts them: a plate's highlights above
1 and its negative samples were lost over the whole picture, faces or not. Float frames are
therefore read and written here, plane by plane, and never pass through it.

The detector and the model work on display-referred pictures, so light is encoded with the sRGB
curve (IEC 61966-2-1) for them (values above 1 clip there): linear light as it is, after a plate
of other primaries (its chromaticities attribute: an ACEScg plate's) is converted to Rec. 709's,
its white adapted to D65 with the Bradford transform; printing density after Kodak's conversion to
linear light (:func:`to_light`), the one a compositor's "Cineon" colour space applies. Shown so,
a log scan's faces have the contrast the model learned faces with, instead of a log picture's
flat, grey one. Restored faces go back through the inverse curve and matrix into the boxes around
them; every other sample of the picture is the source's own, to the bit (half samples widen to
float exactly, and the encoder writes them back as half).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np

from .patch import Box

if TYPE_CHECKING:
    from .probe import VideoInfo


class Light(enum.Enum):
    """What a picture's samples stand for."""

    DISPLAY = "display"  # light encoded for a display (Rec. 709, sRGB): video, photographs
    LINEAR = "linear"  # scene-linear light: an OpenEXR plate's float samples, RGB samples tagged linear
    CINEON = "cineon"  # printing density (Cineon log): a film scan's DPX pictures that say so


LIGHT_WORDS = {Light.DISPLAY: "display-referred", Light.LINEAR: "linear light in integer samples",
               Light.CINEON: "printing density (Cineon log)"}

# planar G, B, R (and alpha), as FFmpeg's OpenEXR decoder gives them
LINEAR_FORMATS = {"gbrpf16le": np.float16, "gbrapf16le": np.float16, "gbrpf32le": np.float32, "gbrapf32le": np.float32}
_RGB_PLANES = (2, 0, 1)  # the planes R, G and B are in
_PLANE_CHANNELS = tuple(int(c) for c in np.argsort(_RGB_PLANES))  # the channels (R, G, B) planes G, B and R hold
LINEAR_TRANSFER = 8  # AVCOL_TRC_LINEAR: how FFmpeg reads a DPX picture's "linear" transfer characteristic

# Kodak's conventions for printing density, which compositors' "Cineon" colour spaces follow: on
# 10-bit codes, 95 is black (linear 0) and 685 reference white (linear 1); a code is 0.002 of
# density, at a film gamma of 0.6, so 300 codes make a decade of light. A 12- or 16-bit scan's codes
# are these, scaled.
CINEON_BLACK, CINEON_WHITE, CINEON_CODES_PER_DECADE, CINEON_TOP = 95, 685, 300, 1023
_CINEON_FLOOR = 10 ** ((CINEON_BLACK - CINEON_WHITE) / CINEON_CODES_PER_DECADE)  # the light code 95 stands for, as a fraction of white's


def light_of(pix_fmt: str, transfer: int, printing_density: bool) -> Light:
    """What the samples of a stream of ``pix_fmt`` stand for, from its transfer characteristic (an
    AVColorTransferCharacteristic) and whether its pictures' headers say printing density."""
    if is_linear(pix_fmt):
        return Light.LINEAR
    if av.VideoFormat(pix_fmt).is_rgb:  # a YUV stream tagged linear is a mistagged video
        if printing_density:
            return Light.CINEON
        if transfer == LINEAR_TRANSFER:
            return Light.LINEAR
    return Light.DISPLAY


def to_light(values: np.ndarray, light: Light) -> np.ndarray:
    """Samples scaled to [0, 1] (codes over the largest code; float samples as they are) as linear light."""
    if light is Light.CINEON:
        return (np.power(10, (values * CINEON_TOP - CINEON_WHITE) / CINEON_CODES_PER_DECADE) - _CINEON_FLOOR) / (1 - _CINEON_FLOOR)
    return values


def from_light(linear: np.ndarray, light: Light) -> np.ndarray:
    """The inverse of :func:`to_light`; light below what the lowest code stands for gives a value below 0."""
    if light is Light.CINEON:
        relative = np.maximum(linear * (1 - _CINEON_FLOOR) + _CINEON_FLOOR, 1e-12)
        return (CINEON_WHITE + CINEON_CODES_PER_DECADE * np.log10(relative)) / CINEON_TOP
    return linear


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
    """``info`` as the display-referred images made from its frames are: for a source whose samples
    are not display-referred, 16-bit RGB with the sRGB curve (a preview of a plate or a log scan is
    such a video); others as they are."""
    if info.light is Light.DISPLAY:
        return info
    return dataclasses.replace(info, pix_fmt="rgb48le", light=Light.DISPLAY,
                               color=dataclasses.replace(info.color, transfer=SRGB_TRANSFER))


def samples(frame: av.VideoFrame) -> np.ndarray:
    """The frame's samples (H, W, C): R, G, B (and alpha), as stored: float32 for a float format,
    else the integer codes."""
    if not is_linear(frame.format.name):
        return frame.to_ndarray()
    dtype = LINEAR_FORMATS[frame.format.name]
    planes = [np.frombuffer(p, dtype).reshape(p.height, p.line_size // np.dtype(dtype).itemsize)[:, : p.width]
              for p in frame.planes]
    order = [*_RGB_PLANES, *range(3, len(planes))]
    return np.stack([planes[i] for i in order], axis=-1).astype(np.float32)


def full_scale(pix_fmt: str) -> float:
    """The sample of ``pix_fmt`` that stands for 1: the largest code of an integer format, 1 for float."""
    return 1.0 if is_linear(pix_fmt) else float(2 ** max(c.bits for c in av.VideoFormat(pix_fmt).components) - 1)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light, clipped to [0, 1], encoded with the sRGB curve."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] back to linear light."""
    return np.where(encoded <= 0.04045, encoded / 12.92, np.power((encoded + 0.055) / 1.055, 2.4))


@functools.cache
def _display_table(light: Light, full: float, deep: bool) -> np.ndarray:
    """Each code (0 to ``full``) of an integer picture in ``light``, as the display-referred value it is shown as."""
    shown = srgb_encode(to_light(np.arange(int(full) + 1) / full, light))
    return (shown * (65535 if deep else 255) + 0.5).astype(np.uint16 if deep else np.uint8)


def to_display(frame: av.VideoFrame, light: Light, max_side: int = 0, deep: bool = False,
               chromaticities: tuple[float, ...] = ()) -> tuple[np.ndarray, tuple[float, float]]:
    """A frame whose samples stand for ``light``, of primaries ``chromaticities`` (none: Rec. 709's),
    as a display-referred Rec. 709 RGB image, uint16 with ``deep`` else uint8, downscaled so that
    its longer side is at most ``max_side`` (0: full size); returns it with its scale (x, y).
    Float samples are downscaled in linear light (as light adds up); integer codes go through a
    table, and the image is downscaled as shown, as a video's picture is."""
    factor = min(1.0, max_side / max(frame.width, frame.height)) if max_side else 1.0
    size = (max(1, round(frame.width * factor)), max(1, round(frame.height * factor)))
    if is_linear(frame.format.name):
        rgb = samples(frame)[..., :3]
        if factor < 1.0:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        top = 65535 if deep else 255
        image = (srgb_encode(rgb @ to_rec709(chromaticities).T) * top + 0.5).astype(np.uint16 if deep else np.uint8)
    else:
        image = _display_table(light, full_scale(frame.format.name), deep)[samples(frame)[..., :3]]
        if factor < 1.0:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, (image.shape[1] / frame.width, image.shape[0] / frame.height)


def plate_frame(source: av.VideoFrame, light: Light, image: np.ndarray | None = None, boxes: list[Box] | None = None,
                chromaticities: tuple[float, ...] = ()) -> av.VideoFrame:
    """A frame of ``source``, whose samples stand for ``light`` in primaries ``chromaticities``: its
    own samples, but in ``boxes`` (x0, y0, x1, y1; every pixel when None) those of the
    display-referred Rec. 709 RGB ``image`` (uint8 or uint16, the frame's size), taken back to
    ``light`` in the source's primaries (and to the nearest code of an integer format). A pixel the
    picture shows at the end of its range (white or black in a channel) where the source lies
    beyond it (a specular highlight above 1, grain below 0) stays the source's: the curve clipped
    it, restoration did not put it there. Alpha stays the source's. Float frames come in float32
    (the encoder's format), integer ones in the source's format."""
    floating = is_linear(source.format.name)
    if image is None and not floating:
        return source
    values = samples(source)
    if image is not None:
        top, full = np.iinfo(image.dtype).max, full_scale(source.format.name)
        matrix = to_rec709(chromaticities)
        back = np.linalg.inv(matrix).astype(np.float32)
        for x0, y0, x1, y1 in boxes if boxes is not None else [(0, 0, source.width, source.height)]:
            shown, stored = image[y0:y1, x0:x1], values[y0:y1, x0:x1, :3]
            seen = to_light(stored.astype(np.float32) / full, light) @ matrix.T
            clipped = (((shown == top) & (seen > 1)) | ((shown == 0) & (seen < 0))).any(-1, keepdims=True)
            made = from_light(srgb_decode(shown.astype(np.float32) / top) @ back.T, light) * full
            values[y0:y1, x0:x1, :3] = np.where(clipped, stored, made if floating else np.clip(np.rint(made), 0, full))
    if not floating:
        return av.VideoFrame.from_ndarray(values, format=source.format.name)
    frame = av.VideoFrame(source.width, source.height, float_format(source.format.name))
    for plane, channel in zip(frame.planes, [*_PLANE_CHANNELS, *range(3, values.shape[2])]):
        rows = np.frombuffer(plane, np.float32).reshape(plane.height, plane.line_size // 4)
        rows[:, : plane.width] = values[..., channel]
    return frame
