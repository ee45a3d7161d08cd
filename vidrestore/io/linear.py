"""Pictures whose samples are not encoded for an SDR display: OpenEXR plates (scene-linear light,
in half or float, with or without alpha), RGB pictures tagged linear, film scans in printing
density (Cineon log, as a DPX header states it), HDR video (PQ or HLG, as its transfer tag
says), and cameras' log video (S-Log3, S-Log2, V-Log, LogC3, LogC4, Apple Log, Canon Log 3, Canon Log 2,
Canon Log, D-Log: no tag says so; ``--light`` does, or a Sony camera's file beside the clip,
:mod:`.sidecar`). :class:`Light`
names them; the probe sets it.

FFmpeg's scaler clamps float samples to [0, 1] when it converts them: a plate's highlights above
1 and its negative samples were lost over the whole picture, faces or not. Float frames are
therefore read and written here, plane by plane, and never pass through it.

The detector and the model work on display-referred pictures, so light is encoded with the sRGB
curve (IEC 61966-2-1) for them (values above 1 clip there): linear light as it is, after a plate
of other primaries (its chromaticities attribute: an ACEScg plate's) is converted to Rec. 709's,
its white adapted to D65 with the Bradford transform; printing density after Kodak's conversion to
linear light (:func:`to_light`), the one a compositor's "Cineon" colour space applies. Shown so,
a log scan's faces have the contrast the model learned faces with, instead of a log picture's
flat, grey one. HDR video is shown as an SDR grade of it would be (BT.2408): its reference
white (203 cd/m2) near white, light from three quarters of it up rolled off into a shoulder
rather than clipped, in Rec. 709's primaries (read as it is, a PQ picture is dark and flat, and
RetinaFace found no face in one). A camera's log video is shown as its scene light, a white card
near white, through the same shoulder. Restored faces go back through the inverse curve and matrix
into the boxes around them; every other sample of the picture is the source's own, to the bit
(half samples widen to float exactly, and the encoder writes them back as half).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
from collections.abc import Callable
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
    PQ = "pq"  # HDR video in SMPTE ST 2084's perceptual quantiser (HDR10, Dolby Vision's base): light in cd/m2
    HLG = "hlg"  # HDR video in ARIB STD-B67's hybrid log-gamma (phones' HDR, broadcast): scene light
    SLOG3 = "slog3"  # Sony's S-Log3 in S-Gamut3.Cine, as Sony's cameras record it: scene light
    SLOG3_SGAMUT3 = "slog3-sgamut3"  # S-Log3 in S-Gamut3, the wider gamut Sony's cameras offer beside it: scene light
    SLOG2 = "slog2"  # Sony's S-Log2 in S-Gamut, as Sony's earlier cameras (FS7, a7S) record it: scene light
    VLOG = "vlog"  # Panasonic's V-Log in V-Gamut, as Panasonic's cameras record it: scene light
    LOGC3 = "logc3"  # ARRI's LogC3 at EI 800 in ARRI Wide Gamut 3, as ALEXA cameras record ProRes: scene light
    LOGC4 = "logc4"  # ARRI's LogC4 in ARRI Wide Gamut 4, as the ALEXA 35 records ProRes: scene light
    APPLE_LOG = "applelog"  # Apple Log in BT.2020's primaries, as iPhones (15 Pro on) record ProRes: scene light
    CLOG3 = "clog3"  # Canon Log 3 in Cinema Gamut, as Canon's cinema and mirrorless cameras record it: scene light
    CLOG2 = "clog2"  # Canon Log 2 in Cinema Gamut, as Canon's cinema cameras (C300 Mark II on) record it: scene light
    CLOG = "clog"  # Canon Log, the first, in Rec. 709's primaries (C100, C300, EOS cameras): scene light
    DLOG = "dlog"  # DJI's D-Log in D-Gamut, as DJI's drones and cinema cameras record it (not D-Log M): scene light


HDR_LIGHTS = frozenset({Light.PQ, Light.HLG})
LIGHT_WORDS = {Light.DISPLAY: "display-referred", Light.LINEAR: "linear light in integer samples",
               Light.CINEON: "printing density (Cineon log)", Light.PQ: "HDR (PQ)", Light.HLG: "HDR (HLG)",
               Light.SLOG3: "Sony S-Log3 (S-Gamut3.Cine)", Light.SLOG3_SGAMUT3: "Sony S-Log3 (S-Gamut3)",
               Light.SLOG2: "Sony S-Log2 (S-Gamut)", Light.VLOG: "Panasonic V-Log (V-Gamut)",
               Light.LOGC3: "ARRI LogC3 (EI 800, ARRI Wide Gamut 3)", Light.LOGC4: "ARRI LogC4 (ARRI Wide Gamut 4)",
               Light.APPLE_LOG: "Apple Log (BT.2020)", Light.CLOG3: "Canon Log 3 (Cinema Gamut)",
               Light.CLOG2: "Canon Log 2 (Cinema Gamut)", Light.CLOG: "Canon Log (Rec. 709)", Light.DLOG: "DJI D-Log (D-Gamut)"}

# planar G, B, R (and alpha), as FFmpeg's OpenEXR decoder gives them, and packed R, G, B, as its
# TIFF decoder gives a float TIFF's (Photoshop's 32-bit mode, a compositor's render; io.tiff)
LINEAR_FORMATS = {"gbrpf16le": np.float16, "gbrapf16le": np.float16, "gbrpf32le": np.float32, "gbrapf32le": np.float32,
                  "rgbf32le": np.float32}
_PLANAR_FLOATS = {"gbrpf16le": "gbrpf32le", "gbrapf16le": "gbrapf32le", "rgbf32le": "gbrpf32le"}
_RGB_PLANES = (2, 0, 1)  # the planes R, G and B are in
_PLANE_CHANNELS = tuple(int(c) for c in np.argsort(_RGB_PLANES))  # the channels (R, G, B) planes G, B and R hold
LINEAR_TRANSFER = 8  # AVCOL_TRC_LINEAR: how FFmpeg reads a DPX picture's "linear" transfer characteristic

# Kodak's conventions for printing density, which compositors' "Cineon" colour spaces follow: on
# 10-bit codes, 95 is black (linear 0) and 685 reference white (linear 1); a code is 0.002 of
# density, at a film gamma of 0.6, so 300 codes make a decade of light. A 12- or 16-bit scan's codes
# are these, scaled.
CINEON_BLACK, CINEON_WHITE, CINEON_CODES_PER_DECADE, CINEON_TOP = 95, 685, 300, 1023
_CINEON_FLOOR = 10 ** ((CINEON_BLACK - CINEON_WHITE) / CINEON_CODES_PER_DECADE)  # the light code 95 stands for, as a fraction of white's


# BT.2100's transfer functions and BT.2408's levels: HDR's reference white (graphics white, where
# an SDR grade puts its white), HLG's nominal display peak and system gamma (its OOTF), and the
# BT.2020 luminance weights the OOTF uses.
PQ_TRANSFER, HLG_TRANSFER = 16, 18  # AVCOL_TRC_SMPTE2084, AVCOL_TRC_ARIB_STD_B67
REFERENCE_WHITE_NITS, HLG_PEAK_NITS, HLG_GAMMA = 203.0, 1000.0, 1.2
_PQ_M1, _PQ_M2, _PQ_C1, _PQ_C2, _PQ_C3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
_HLG_A, _HLG_B, _HLG_C = 0.17883277, 1 - 4 * 0.17883277, 0.5 - 0.17883277 * np.log(4 * 0.17883277)
_BT2020_LUMINANCE = np.array([0.2627, 0.6780, 0.0593], np.float32)
# Light above this share of white (HDR's reference white) is rolled off towards white in the SDR view
# (:func:`_shoulder`), so that a face lit above reference white keeps its modelling there instead
# of clipping flat; the view saturates (its top 16-bit code) at 3.1 times reference white (640 cd/m2).
_KNEE = 0.75


def light_of(pix_fmt: str, transfer: int, printing_density: bool) -> Light:
    """What the samples of a stream of ``pix_fmt`` stand for, from its transfer characteristic (an
    AVColorTransferCharacteristic) and whether its pictures' headers say printing density."""
    if is_linear(pix_fmt):
        return Light.LINEAR
    if transfer in (PQ_TRANSFER, HLG_TRANSFER):
        return Light.PQ if transfer == PQ_TRANSFER else Light.HLG
    if av.VideoFormat(pix_fmt).is_rgb:  # a YUV stream tagged linear is a mistagged video
        if printing_density:
            return Light.CINEON
        if transfer == LINEAR_TRANSFER:
            return Light.LINEAR
    return Light.DISPLAY


def to_light(values: np.ndarray, light: Light) -> np.ndarray:
    """Samples scaled to [0, 1] (codes over the largest code; float samples as they are), or 16-bit
    codes (uint16, through a table of each code's light), as linear light, 1 standing for white
    (HDR's reference white, a camera's white card). HLG's need R, G and B along the last axis: its display light depends
    on the pixel's luminance (BT.2100's OOTF)."""
    light_of_signal = _code_light(light)[values] if values.dtype == np.uint16 else _signal_light(values, light)
    if light is not Light.HLG:
        return light_of_signal
    luminance = np.maximum(_bt2020_luminance(light_of_signal), 0)[..., None]
    return HLG_PEAK_NITS / REFERENCE_WHITE_NITS * np.power(luminance, np.float32(HLG_GAMMA - 1)) * light_of_signal


def _bt2020_luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.2020's luminance of linear R, G, B (last axis), as a sum of products: numpy's
    matrix-vector product rounds a pixel differently by where it lies in the array, and the
    writer's view of a box must be the reader's view of the frame there, code for code."""
    return rgb[..., 0] * _BT2020_LUMINANCE[0] + rgb[..., 1] * _BT2020_LUMINANCE[1] + rgb[..., 2] * _BT2020_LUMINANCE[2]


def _signal_light(values: np.ndarray, light: Light) -> np.ndarray:
    """Each sample's light by the transfer function alone: HLG's scene light, before its OOTF."""
    if light is Light.CINEON:
        return (np.power(10, (values * CINEON_TOP - CINEON_WHITE) / CINEON_CODES_PER_DECADE) - _CINEON_FLOOR) / (1 - _CINEON_FLOOR)
    if light is Light.PQ:
        encoded = np.power(np.clip(values, 0, 1), 1 / _PQ_M2)
        return 10000 / REFERENCE_WHITE_NITS * np.power(np.maximum(encoded - _PQ_C1, 0) / (_PQ_C2 - _PQ_C3 * encoded), 1 / _PQ_M1)
    if light is Light.HLG:
        signal = np.clip(values, 0, 1)
        with np.errstate(over="ignore"):  # the branch not taken overflows for signals near 0
            return np.where(signal <= 0.5, signal * signal / 3, (np.exp((signal - _HLG_C) / _HLG_A) + _HLG_B) / 12)
    if light in CAMERA_LOGS:
        return _CAMERA_LOGS[light].light(values)
    return values


@functools.cache
def _code_light(light: Light) -> np.ndarray:
    """:func:`_signal_light` of each 16-bit code, float32: a frame's codes are looked up, not computed."""
    return _signal_light(np.arange(65536) / 65535, light).astype(np.float32)


def from_light(linear: np.ndarray, light: Light) -> np.ndarray:
    """The inverse of :func:`to_light`; light below what the lowest code stands for gives a value
    below 0 (HDR's: 0), and HDR's above its top code a value above 1."""
    if light is Light.CINEON:
        relative = np.maximum(linear * (1 - _CINEON_FLOOR) + _CINEON_FLOOR, 1e-12)
        return (CINEON_WHITE + CINEON_CODES_PER_DECADE * np.log10(relative)) / CINEON_TOP
    if light is Light.PQ:
        powered = np.power(np.maximum(linear, 0) * (REFERENCE_WHITE_NITS / 10000), _PQ_M1)
        return np.power((_PQ_C1 + _PQ_C2 * powered) / (1 + _PQ_C3 * powered), _PQ_M2)
    if light is Light.HLG:
        shown = np.maximum(linear, 0) * (REFERENCE_WHITE_NITS / HLG_PEAK_NITS)
        luminance = np.power(np.maximum(_bt2020_luminance(shown), 1e-12), 1 / HLG_GAMMA)[..., None]  # the scene's
        scene = shown / np.power(luminance, HLG_GAMMA - 1)
        with np.errstate(invalid="ignore", divide="ignore"):  # the branch not taken takes the log of values below 1/12
            return np.where(scene <= 1 / 12, np.sqrt(3 * scene), _HLG_A * np.log(12 * scene - _HLG_B) + _HLG_C)
    if light in CAMERA_LOGS:
        with np.errstate(invalid="ignore", divide="ignore"):  # as above, below the curves' cuts
            return _CAMERA_LOGS[light].signal(linear)
    return linear


def _shoulder(linear: np.ndarray) -> np.ndarray:
    """Video's HDR or scene light (1: reference white, a white card) as an SDR view shows it: as it
    is up to the knee, rolled off exponentially above it towards 1, which it reaches only at
    infinite light."""
    room = 1 - _KNEE
    return np.where(linear <= _KNEE, linear, 1 - room * np.exp(-(np.maximum(linear, _KNEE) - _KNEE) / room))


def _unshoulder(shown: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_shoulder` (1 itself, which no light reaches, stands for the light its
    top code's half step below 1 does)."""
    room = 1 - _KNEE
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(shown <= _KNEE, shown, _KNEE - room * np.log(np.maximum(1 - shown, 2**-17) / room))


# x, y of red, green, blue and white, in the order of OpenEXR's chromaticities attribute
REC709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
BT2020 = (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290)
P3_D65 = (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290)
S_GAMUT3_CINE = (0.766, 0.275, 0.225, 0.800, 0.089, -0.087, 0.3127, 0.3290)
V_GAMUT = (0.730, 0.280, 0.165, 0.840, 0.100, -0.030, 0.3127, 0.3290)
ARRI_WIDE_GAMUT3 = (0.6840, 0.3130, 0.2210, 0.8480, 0.0861, -0.1020, 0.3127, 0.3290)
ARRI_WIDE_GAMUT4 = (0.7347, 0.2653, 0.1424, 0.8576, 0.0991, -0.0308, 0.3127, 0.3290)
CINEMA_GAMUT = (0.7400, 0.2700, 0.1700, 1.1400, 0.0800, -0.1000, 0.3127, 0.3290)  # Canon's
D_GAMUT = (0.71, 0.31, 0.21, 0.88, 0.09, -0.08, 0.3127, 0.3290)  # DJI's
S_GAMUT = (0.730, 0.280, 0.140, 0.855, 0.100, -0.050, 0.3127, 0.3290)  # Sony's S-Gamut and S-Gamut3


# Cameras' log curves, from the signal FFmpeg gives for a legal-range video's codes (10-bit 64-940
# stretched to 0-1) to scene light (1: a white card, 0.18: a grey card), and back. Their makers
# publish them on 10-bit codes (Sony's, Panasonic's, Canon Log 3's), on that stretched signal
# itself (S-Log2's, Canon Log's and Canon Log 2's "IRE"), or on a normalised signal of their own
# (ARRI's, Apple's, DJI's), taken here as that stretched signal, since ProRes records LogC3's in
# legal range.
_LEGAL_BLACK, _LEGAL_SPAN = 64.0, 876.0


def _code(signal: np.ndarray) -> np.ndarray:
    """The 10-bit code of a legal-range signal."""
    return _LEGAL_BLACK + _LEGAL_SPAN * signal


def _legal(code: np.ndarray) -> np.ndarray:
    """The legal-range signal of a 10-bit code."""
    return (code - _LEGAL_BLACK) / _LEGAL_SPAN


# Sony's S-Log3: black at code 95, a grey card at 420, a white card at 598; log10 above its cut
_SLOG3_GREY, _SLOG3_BLACK, _SLOG3_CUT, _SLOG3_CODES_PER_DECADE = 420.0, 95.0, 171.2102946929, 261.5


def _slog3_light(signal: np.ndarray) -> np.ndarray:
    code = _code(signal)
    return np.where(code >= _SLOG3_CUT, np.power(10, (code - _SLOG3_GREY) / _SLOG3_CODES_PER_DECADE) * 0.19 - 0.01,
                    (code - _SLOG3_BLACK) * 0.01125 / (_SLOG3_CUT - _SLOG3_BLACK))


def _slog3_signal(linear: np.ndarray) -> np.ndarray:
    return _legal(np.where(linear >= 0.01125, _SLOG3_GREY + _SLOG3_CODES_PER_DECADE * np.log10((linear + 0.01) / 0.19),
                           linear * (_SLOG3_CUT - _SLOG3_BLACK) / 0.01125 + _SLOG3_BLACK))


# Sony's S-Log2 (its technical summary): S-Log's curve on reflectance over 0.9 scaled by 155/219,
# on the stretched signal; black at code 90, a grey card at 347, a white card at 582, straight below
# black (Sony's 0.0300012, the log's value at 0).
_SLOG2_SCALE, _SLOG2_OFFSET, _SLOG2_SLOPE, _SLOG2_LIFT, _SLOG2_STRAIGHT = 155 / (219 * 0.9), 0.037584, 0.432699, 0.646596, 5.0
_SLOG2_BLACK = _SLOG2_SLOPE * math.log10(_SLOG2_OFFSET) + _SLOG2_LIFT


def _slog2_light(signal: np.ndarray) -> np.ndarray:
    return np.where(signal >= _SLOG2_BLACK, np.power(10, (signal - _SLOG2_LIFT) / _SLOG2_SLOPE) - _SLOG2_OFFSET,
                    (signal - _SLOG2_BLACK) / _SLOG2_STRAIGHT) / _SLOG2_SCALE


def _slog2_signal(linear: np.ndarray) -> np.ndarray:
    x = linear * _SLOG2_SCALE
    return np.where(x >= 0, _SLOG2_SLOPE * np.log10(x + _SLOG2_OFFSET) + _SLOG2_LIFT, _SLOG2_STRAIGHT * x + _SLOG2_BLACK)


# Panasonic's V-Log, on codes over 1023: black at code 128, a grey card at 433, a white card at 602
_VLOG_CUT, _VLOG_B, _VLOG_C, _VLOG_D = 0.181, 0.00873, 0.241514, 0.598206


def _vlog_light(signal: np.ndarray) -> np.ndarray:
    level = _code(signal) / 1023
    return np.where(level < _VLOG_CUT, (level - 0.125) / 5.6, np.power(10, (level - _VLOG_D) / _VLOG_C) - _VLOG_B)


def _vlog_signal(linear: np.ndarray) -> np.ndarray:
    return _legal(1023 * np.where(linear < 0.01, 5.6 * linear + 0.125, _VLOG_C * np.log10(linear + _VLOG_B) + _VLOG_D))


# ARRI's LogC3 at EI 800, on its normalised signal: black at 0.0928 and a grey card at 0.391
# (codes 95 and 400 of a full-range picture)
_LOGC3_CUT, _LOGC3_A, _LOGC3_B, _LOGC3_C, _LOGC3_D, _LOGC3_E, _LOGC3_F = 0.010591, 5.555556, 0.052272, 0.247190, 0.385537, 5.367655, 0.092809


def _logc3_light(signal: np.ndarray) -> np.ndarray:
    return np.where(signal > _LOGC3_E * _LOGC3_CUT + _LOGC3_F, (np.power(10, (signal - _LOGC3_D) / _LOGC3_C) - _LOGC3_B) / _LOGC3_A,
                    (signal - _LOGC3_F) / _LOGC3_E)


def _logc3_signal(linear: np.ndarray) -> np.ndarray:
    return np.where(linear > _LOGC3_CUT, _LOGC3_C * np.log10(_LOGC3_A * linear + _LOGC3_B) + _LOGC3_D, _LOGC3_E * linear + _LOGC3_F)


# ARRI's LogC4 (its specification; one curve for every EI): black at 95/1023, log2 above its cut
# at signal 0, straight below it
_LOGC4_A = (2**18 - 16) / 117.45
_LOGC4_B, _LOGC4_C = (1023 - 95) / 1023, 95 / 1023
_LOGC4_S = 7 * np.log(2) * 2 ** (7 - 14 * _LOGC4_C / _LOGC4_B) / (_LOGC4_A * _LOGC4_B)
_LOGC4_T = (2 ** (14 * -_LOGC4_C / _LOGC4_B + 6) - 64) / _LOGC4_A


def _logc4_light(signal: np.ndarray) -> np.ndarray:
    return np.where(signal >= 0, (np.power(2, 14 * (signal - _LOGC4_C) / _LOGC4_B + 6) - 64) / _LOGC4_A, signal * _LOGC4_S + _LOGC4_T)


def _logc4_signal(linear: np.ndarray) -> np.ndarray:
    return np.where(linear >= _LOGC4_T, (np.log2(_LOGC4_A * linear + 64) - 6) / 14 * _LOGC4_B + _LOGC4_C, (linear - _LOGC4_T) / _LOGC4_S)


# Apple Log (Apple's Apple Log profile white paper, whose constants the Apple-supplied ACES input
# transform also carries): a parabola from reflectance R0 (signal 0) up to Rt, log2 above it
_APPLE_R0, _APPLE_RT, _APPLE_C, _APPLE_BETA, _APPLE_GAMMA, _APPLE_DELTA = -0.05641088, 0.01, 47.28711236, 0.00964052, 0.08550479, 0.69336945
_APPLE_PT = _APPLE_C * (_APPLE_RT - _APPLE_R0) ** 2  # the signal at the cut


def _apple_log_light(signal: np.ndarray) -> np.ndarray:
    return np.where(signal >= _APPLE_PT, np.power(2, (signal - _APPLE_DELTA) / _APPLE_GAMMA) - _APPLE_BETA,
                    np.sqrt(np.maximum(signal, 0) / _APPLE_C) + _APPLE_R0)


def _apple_log_signal(linear: np.ndarray) -> np.ndarray:
    return np.where(linear >= _APPLE_RT, _APPLE_GAMMA * np.log2(linear + _APPLE_BETA) + _APPLE_DELTA,
                    _APPLE_C * np.square(np.maximum(linear - _APPLE_R0, 0)))


# DJI's D-Log, as its white paper gives it: straight up to reflectance 0.0078, log10 above (black
# at 0.0929 of its signal, a grey card at 0.399, a white card at 0.573)
_DLOG_CUT, _DLOG_STRAIGHT, _DLOG_ZERO = 0.0078, 6.025, 0.0929
_DLOG_SCALE, _DLOG_OFFSET, _DLOG_SLOPE, _DLOG_GREY = 0.9892, 0.0108, 0.256663, 0.584555


def _dlog_light(signal: np.ndarray) -> np.ndarray:
    return np.where(signal > _DLOG_STRAIGHT * _DLOG_CUT + _DLOG_ZERO,
                    (np.power(10, (signal - _DLOG_GREY) / _DLOG_SLOPE) - _DLOG_OFFSET) / _DLOG_SCALE, (signal - _DLOG_ZERO) / _DLOG_STRAIGHT)


def _dlog_signal(linear: np.ndarray) -> np.ndarray:
    return np.where(linear > _DLOG_CUT, _DLOG_SLOPE * np.log10(_DLOG_SCALE * linear + _DLOG_OFFSET) + _DLOG_GREY, _DLOG_STRAIGHT * linear + _DLOG_ZERO)


@dataclasses.dataclass(frozen=True)
class _CanonLog:
    """Canon's log curves, from x (reflectance over 0.9) to a level: ``above + slope·log10(scale·x + 1)``
    for x over the cut, ``below - slope·log10(1 - scale·x)`` for x under minus the cut, straight
    between (Canon Log 3's; the others have no straight part). Canon Log 3's level is the 10-bit code
    over 1023 (Canon's input transforms, v1.2); Canon Log's and Canon Log 2's is the stretched signal."""

    slope: float
    scale: float
    above: float
    below: float
    zero: float  # the level at x = 0
    straight: float = 1.0
    cut: float = 0.0
    per_code: bool = False

    def light(self, signal: np.ndarray) -> np.ndarray:
        level = _code(signal) / 1023 if self.per_code else signal
        reach = self.straight * self.cut
        x = np.where(level > self.zero + reach, (np.power(10, (level - self.above) / self.slope) - 1) / self.scale,
                     np.where(level < self.zero - reach, (1 - np.power(10, (self.below - level) / self.slope)) / self.scale,
                              (level - self.zero) / self.straight))
        return 0.9 * x

    def signal(self, linear: np.ndarray) -> np.ndarray:
        x = linear / 0.9
        level = np.where(x > self.cut, self.slope * np.log10(self.scale * x + 1) + self.above,
                         np.where(x < -self.cut, self.below - self.slope * np.log10(1 - self.scale * x), self.straight * x + self.zero))
        return _legal(1023 * level) if self.per_code else level


# Canon Log 3: black at code 128, a grey card at 351, a white card at 577, straight for |x| up to 0.014
_CANON_LOG3 = _CanonLog(slope=0.36726845, scale=14.98325, above=0.12240537, below=0.12783901, zero=0.12512219,
                        straight=1.9754798, cut=0.014, per_code=True)
# Canon Log 2 (black at 3.5% of the signal, a grey card at 39.2%, a white card at 58.4%) and Canon
# Log (7.3%, 32.8%, 62.7%), from Canon's input transforms
_CANON_LOG2 = _CanonLog(slope=0.281863093, scale=87.09937546, above=0.035388128, below=0.035388128, zero=0.035388128)
_CANON_LOG = _CanonLog(slope=0.529136, scale=10.1596, above=0.0730597, below=0.0730597, zero=0.0730597)


@dataclasses.dataclass(frozen=True)
class _CameraLog:
    light: Callable[[np.ndarray], np.ndarray]  # scene light of a stretched signal
    signal: Callable[[np.ndarray], np.ndarray]  # its inverse
    gamut: tuple[float, ...]  # the primaries the camera records in, whatever its tag says


_CAMERA_LOGS = {
    Light.SLOG3: _CameraLog(_slog3_light, _slog3_signal, S_GAMUT3_CINE),
    Light.SLOG3_SGAMUT3: _CameraLog(_slog3_light, _slog3_signal, S_GAMUT),
    Light.SLOG2: _CameraLog(_slog2_light, _slog2_signal, S_GAMUT),
    Light.VLOG: _CameraLog(_vlog_light, _vlog_signal, V_GAMUT),
    Light.LOGC3: _CameraLog(_logc3_light, _logc3_signal, ARRI_WIDE_GAMUT3),
    Light.LOGC4: _CameraLog(_logc4_light, _logc4_signal, ARRI_WIDE_GAMUT4),
    Light.APPLE_LOG: _CameraLog(_apple_log_light, _apple_log_signal, BT2020),
    Light.CLOG3: _CameraLog(_CANON_LOG3.light, _CANON_LOG3.signal, CINEMA_GAMUT),
    Light.CLOG2: _CameraLog(_CANON_LOG2.light, _CANON_LOG2.signal, CINEMA_GAMUT),
    Light.CLOG: _CameraLog(_CANON_LOG.light, _CANON_LOG.signal, REC709),
    Light.DLOG: _CameraLog(_dlog_light, _dlog_signal, D_GAMUT),
}
CAMERA_LOGS = frozenset(_CAMERA_LOGS)
# Video (YUV, which FFmpeg converts to R'G'B' codes as any video's) shown through a view with a shoulder
VIDEO_LIGHTS = HDR_LIGHTS | CAMERA_LOGS
# a video's primaries by their tag (AVColorPrimaries), for HDR video: BT.2100 defines it in
# BT.2020's, which an untagged stream is taken to be in
_TAGGED_PRIMARIES = {1: REC709, 9: BT2020, 12: P3_D65}


def video_chromaticities(light: Light, primaries: int) -> tuple[float, ...]:
    """The primaries of a video stream in ``light`` whose primaries tag is ``primaries``, as
    :func:`to_rec709` takes them: HDR video's as tagged; a camera log's gamut, whatever the tag
    says (cameras tag their log video BT.709 or nothing); () for others, shown as they are."""
    if light in CAMERA_LOGS:
        return _CAMERA_LOGS[light].gamut
    return _TAGGED_PRIMARIES.get(primaries, BT2020) if light in HDR_LIGHTS else ()


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
    """The planar float32 format of a linear ``pix_fmt`` (gbrpf32le for gbrpf16le and rgbf32le):
    what the OpenEXR encoder takes."""
    return _PLANAR_FLOATS.get(pix_fmt, pix_fmt)


SRGB_TRANSFER = 13  # AVCOL_TRC_IEC61966_2_1


def displayed(info: VideoInfo) -> VideoInfo:
    """``info`` as the display-referred images made from its frames are: for a source whose samples
    are not display-referred, 16-bit RGB with the sRGB curve in Rec. 709's primaries (a preview of a
    plate, a log scan or HDR video is such a video); others as they are."""
    if info.light is Light.DISPLAY:
        return info
    unset = 2  # AVCOL_*_UNSPECIFIED: an RGB source's matrix and, once converted, its primaries
    color = dataclasses.replace(info.color, transfer=SRGB_TRANSFER, primaries=unset if info.chromaticities else info.color.primaries,
                                matrix=unset, range=0)
    return dataclasses.replace(info, pix_fmt="rgb48le", light=Light.DISPLAY, chromaticities=(), color=color)


def samples(frame: av.VideoFrame) -> np.ndarray:
    """The frame's samples (H, W, C): R, G, B (and alpha), as stored: float32 for a float format,
    else the integer codes."""
    if not is_linear(frame.format.name):
        return frame.to_ndarray()
    if not frame.format.is_planar:  # a float TIFF's
        return frame.to_ndarray().astype(np.float32)
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


def display_view(values: np.ndarray, light: Light, chromaticities: tuple[float, ...] = (), deep: bool = False) -> np.ndarray:
    """R, G, B samples scaled to [0, 1] (float samples as they are), or 16-bit codes (uint16), that
    stand for ``light`` in the primaries ``chromaticities`` (none: Rec. 709's), as the
    display-referred Rec. 709 image (sRGB curve) that the detector and the model see: uint16 with
    ``deep``, else uint8. Works through the pixels a band at a time, so that its float
    intermediates stay in the processor's cache; with :func:`_view_table`, a whole 3840x2160
    view took 0.16-0.26 s, against 0.39-0.51 s before both (bench/video_light.py --view-only)."""
    pixels = values.reshape(-1, 3)
    shown = np.empty(pixels.shape, np.uint16 if deep else np.uint8)
    for start in range(0, len(pixels), _VIEW_BAND):
        band = pixels[start : start + _VIEW_BAND]
        shown[start : start + _VIEW_BAND] = _viewed(_in_rec709(to_light(band, light), chromaticities), light, deep)
    return shown.reshape(values.shape)


_VIEW_BAND = 1 << 16  # pixels


def _in_rec709(linear: np.ndarray, chromaticities: tuple[float, ...], inverse: bool = False) -> np.ndarray:
    """Linear RGB (R, G, B along the last axis) of ``chromaticities`` in Rec. 709's primaries
    (``inverse``: from Rec. 709's to them). numpy's product, not OpenCV's faster transform: that
    rounds the last pixels of an array differently, so a box's view would differ from the frame's."""
    matrix = to_rec709(chromaticities)
    if np.array_equal(matrix, np.eye(3)):
        return linear
    return linear @ (np.linalg.inv(matrix) if inverse else matrix).T.astype(np.float32)


# Steps of linear light in the view's table: fine enough that the sRGB curve's steepest part
# (12.92) moves a 16-bit code by less than one between them.
_VIEW_STEPS = 1 << 20


@functools.cache
def _view_table(shouldered: bool, deep: bool) -> np.ndarray:
    """The view's code of linear light in steps of 1 / :data:`_VIEW_STEPS`, from 0 to where the view
    reaches its top code (white; with ``shouldered``, far above it): the sRGB curve, after the
    shoulder (:func:`_shoulder`) when ``shouldered``: one lookup, instead of the shoulder computed
    per sample and the curve looked up after it."""
    top = 65535 if deep else 255
    edge = srgb_decode(np.float64(1 - 0.5 / top))  # the light the top code starts at, as shown
    reach = float(_unshoulder(edge)) if shouldered else 1.0
    linear = np.arange(math.ceil(reach * _VIEW_STEPS) + 1) / _VIEW_STEPS
    shown = _shoulder(linear) if shouldered else linear
    return (srgb_encode(shown) * top + 0.5).astype(np.uint16 if deep else np.uint8)


def _viewed(linear: np.ndarray, light: Light, deep: bool) -> np.ndarray:
    """Linear Rec. 709 light as the view shows it (:func:`_view_table`): uint16 codes with ``deep``
    else uint8; light below 0 shows as 0, light beyond the table's end as its top code, and a
    render's NaN samples as 0 (fmax and fmin pass over NaN, where clipping kept it)."""
    steps = np.fmax(linear, 0, dtype=np.float32)
    np.fmin(steps, _view_end(light, deep), out=steps)
    steps *= _VIEW_STEPS
    steps += 0.5
    return _view_table(light in VIDEO_LIGHTS, deep)[steps.astype(np.int32)]


def _view_end(light: Light, deep: bool) -> float:
    """The linear light from which the view shows its top code: white's (1) for pictures shown as
    they are, far above it through the shoulder."""
    return (len(_view_table(light in VIDEO_LIGHTS, deep)) - 1) / _VIEW_STEPS


def written_back(shown: np.ndarray, stored: np.ndarray, light: Light, chromaticities: tuple[float, ...] = ()) -> np.ndarray:
    """The samples, scaled to [0, 1] (float samples as they are), for which the view of pixels
    stored as ``stored`` (as :func:`display_view` takes them) now shows ``shown`` (restored, uint8
    or uint16): :func:`display_view`'s inverse. A pixel the view shows as it was keeps its stored
    samples, and so does one shown at the end of its range where the stored light lies beyond it
    (a highlight above 1, a colour outside Rec. 709, grain below 0): the curve clipped it,
    restoration did not put it there."""
    top, deep = np.iinfo(shown.dtype).max, shown.dtype == np.uint16
    linear = _in_rec709(to_light(stored, light), chromaticities)
    was = _viewed(linear, light, deep)
    kept = ((shown == was).all(-1) | (((shown == top) & (linear > _view_end(light, deep))) | ((shown == 0) & (linear < 0))).any(-1))[..., None]
    return np.where(kept, stored / 65535 if stored.dtype == np.uint16 else stored, from_view(shown, light, chromaticities))


def from_view(shown: np.ndarray, light: Light, chromaticities: tuple[float, ...] = ()) -> np.ndarray:
    """The samples, scaled to [0, 1], that :func:`display_view` shows as ``shown`` (uint8 or uint16)."""
    linear = srgb_decode(shown.astype(np.float32) / np.iinfo(shown.dtype).max)
    if light in VIDEO_LIGHTS:
        linear = _unshoulder(linear)
    return from_light(_in_rec709(linear, chromaticities, inverse=True), light)


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
        image = display_view(rgb, light, chromaticities, deep)
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
    ``light`` in the source's primaries (and to the nearest code of an integer format) by
    :func:`written_back`. Alpha stays the source's. Float frames come in float32
    (the encoder's format), integer ones in the source's format."""
    floating = is_linear(source.format.name)
    if image is None and not floating:
        return source
    values = samples(source)
    if image is not None:
        full = full_scale(source.format.name)
        for x0, y0, x1, y1 in boxes if boxes is not None else [(0, 0, source.width, source.height)]:
            made = written_back(image[y0:y1, x0:x1], values[y0:y1, x0:x1, :3].astype(np.float32) / full, light, chromaticities) * full
            values[y0:y1, x0:x1, :3] = made if floating else np.clip(np.rint(made), 0, full)
    if not floating:
        return av.VideoFrame.from_ndarray(values, format=source.format.name)
    frame = av.VideoFrame(source.width, source.height, float_format(source.format.name))
    for plane, channel in zip(frame.planes, [*_PLANE_CHANNELS, *range(3, values.shape[2])]):
        rows = np.frombuffer(plane, np.float32).reshape(plane.height, plane.line_size // 4)
        rows[:, : plane.width] = values[..., channel]
    return frame
