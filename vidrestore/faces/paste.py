"""Paste restored crops back into frames with feathered masks, optional colour matching, and
optional grain: a restored face is clean, and in grainy or noisy footage a clean face looks pasted
on. With ``grain`` the noise the face lost is put back as the frame has it (:func:`noise_level`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import kornia
import numpy as np
import torch
import torch.nn.functional as F

from .align import (
    PEAK,
    blurred,
    invert_affine,
    shift_affine,
    shrinks_by,
    source_region,
    template,
    to_unit_float,
    warp_affine,
    warp_image,
)
from .tone import LUMA


@functools.lru_cache(maxsize=8)
def _face_mask_cpu(face_size: int) -> torch.Tensor:
    # An ellipse around the template's landmarks, eroded from the crop edge and feathered, as in
    # facexlib's paste-back: it covers brow to chin and fades out before the crop's border.
    pts = torch.from_numpy(template(face_size))
    centre = pts.mean(0) + torch.tensor([0.0, -0.02 * face_size])
    eye_dist = float(pts[1, 0] - pts[0, 0])
    ry, rx = 1.45 * eye_dist, 1.1 * eye_dist
    ys, xs = torch.meshgrid(torch.arange(face_size) + 0.5, torch.arange(face_size) + 0.5, indexing="ij")
    r = ((xs - centre[0]) / rx) ** 2 + ((ys - centre[1]) / ry) ** 2
    mask = (r <= 1.0).float()[None, None]
    sigma = face_size / 24
    k = int(2 * math.ceil(3 * sigma) + 1)
    return kornia.filters.gaussian_blur2d(mask, (k, k), (sigma, sigma), border_type="constant")


def mask_support(row_peaks: np.ndarray, col_peaks: np.ndarray) -> np.ndarray | None:
    """Corners (4, 2) of the crop-space box outside which a mask is zero to 8 bits, from the mask's
    maximum along each row and each column; None if it is empty."""
    rows, cols = np.flatnonzero(row_peaks > 0.5 / 255), np.flatnonzero(col_peaks > 0.5 / 255)
    if len(cols) == 0:
        return None
    x0, x1, y0, y1 = float(cols[0]), float(cols[-1]) + 1, float(rows[0]), float(rows[-1]) + 1
    return np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])


def face_mask(face_size: int, device: torch.device) -> torch.Tensor:
    """Soft paste-back mask (1, 1, S, S) in crop coordinates, values in [0, 1]."""
    return _face_mask_cpu(face_size).to(device)


def match_colour(restored: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Shift each channel's mean and spread inside ``mask`` to the reference's (counters colour drift).

    The figures are taken on a grid of about 64 x 64 pixels of the crop: plenty for a mean and a
    spread, and a quarter of the work at 128 px (the step was 40% of the align/paste time)."""
    step = max(1, mask.shape[-1] // 64)
    weights = mask[..., ::step, ::step]
    w = (weights / weights.sum().clamp_min(1e-6)).flatten()

    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Row-wise sums rather than matrix products: each crop's figures must not depend on how
        # many crops share the call (batches split differently must paste the same faces). The
        # spread is taken about the mean; E[x^2] - mean^2 cancels badly in float32 for flat crops.
        flat = x[..., ::step, ::step].flatten(2)
        mean = (flat * w).sum(-1)
        centred = flat - mean[..., None]
        return mean, (centred * centred * w).sum(-1).sqrt().clamp_min(1e-4)
    m_r, s_r = stats(restored)
    m_t, s_t = stats(reference)
    gain = s_t / s_r
    return (restored * gain[..., None, None] + (m_t - m_r * gain)[..., None, None]).clamp_(0, 1)


def coarse_sigmas(matrices: np.ndarray, frame_px: float, face_size: int) -> torch.Tensor:
    """The Gaussian (px of the crop) that, for each frame-to-crop matrix of ``matrices`` (N, 2, 3),
    spans ``frame_px`` pixels of the frame; at most a sixteenth of the crop (a tiny face enlarged
    keeps its shading and no more), and at least a 64th, 2 px of a 128 px crop: a face many times
    the crop's size would otherwise leave the model nothing to change, and on real faces damaged
    at that scale (CodeFormer's test faces, 512 px) a 128th cost the restored faces' naturalness
    (NIQE 14.58 as restored, 15.11 at 1 px of 128, 14.70 at 2; bench/quality.py --real-lq)."""
    shrinks = np.array([shrinks_by(m) for m in matrices], np.float64)
    return torch.from_numpy(np.clip(frame_px / np.maximum(shrinks, 1e-6), face_size / 64, face_size / 16)).float()


def keep_coarse(restored: torch.Tensor, reference: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """``restored`` (N, C, S, S) with its picture coarser than a Gaussian of ``sigmas`` (N,) crop
    pixels replaced by ``reference``'s (the crops it was restored from): restoration changes the
    detail finer than that and nothing else.

    Blur, noise and compression of a few pixels hardly touch a face's coarser shapes, and the
    model's guesses there were wrong more often than the input: on faces about three times the
    crop's size, clean, blurred, noisy or compressed, PSNR on the faces rose by 0.15-3.1 dB with
    the picture coarser than 2 crop pixels kept (README, bench/detail.py)."""
    change = reference.to(restored.dtype) - restored  # each crop blurred alone: its result does not depend on the call
    return (restored + torch.stack([blurred(c, float(sigma)) for c, sigma in zip(change, sigmas)])).clamp_(0, 1)


# Immerkaer's noise mask: the product of two second differences, [1, -2, 1] down and across
# (so zero on any picture that is linear along a row or a column), scaled by 1/6 so that white
# noise of deviation s gives responses of deviation s; the median of their size is 0.6745 s for
# Gaussian noise, and edges, fewer than half the pixels, hardly move it.


def _noise_response(images: torch.Tensor, step: int) -> torch.Tensor:
    """Immerkaer's mask over ``images`` (N, H, W) at every ``step``-th pixel of their inner part
    (the pixels [1:-1:step] each way). By slices, not conv2d: on a batch of one-channel images
    oneDNN took 8 times as long (31 against 3.7 ms for 6 images of 400 x 350 px)."""
    rows = images[:, :-2:step] - 2 * images[:, 1:-1:step] + images[:, 2::step]
    return (rows[..., :-2:step] - 2 * rows[..., 1:-1:step] + rows[..., 2::step]) / 6


_HALF_NORMAL_MEDIAN = 0.6745
_MIN_NOISE_PIXELS = 64  # fewer pixels measure nothing
# Grain is measured at the frame's pixels, at halves and at quarters: film grain and the noise of
# an upscaled transfer are coarser than a pixel, and the mask at the pixels alone sees little of
# them (noise blurred by a Gaussian of 1 px measured 0.5 of 6 levels there, 2.1 at halves).
GRAIN_SCALES = 3
GRAIN_SIZES = tuple(np.linspace(0.0, 2.5, 11))  # px: the Gaussians white noise is blurred by to make grain of each size


_NOISE_SAMPLES = 16384  # more pixels to measure are measured on a grid of about this many (the median's error: about 1%)


def _measured(images: torch.Tensor, where: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The deviation of the white noise in each of ``images`` (N, H, W) over each mask of ``where``
    (B, H, W): (N, B); and whether each mask had the 64 pixels a measure needs (0 where not). The
    first mask sets the grid of samples (the whole area, where the others are parts of it)."""
    step = max(1, int(math.sqrt(float(where[0].sum()) / _NOISE_SAMPLES)))
    response = _noise_response(images.float(), step).abs()
    levels, measured = np.zeros((len(images), len(where))), np.zeros(len(where), bool)
    for b, mask in enumerate(where[:, 1:-1:step, 1:-1:step]):
        values = response[:, mask]
        if values.shape[1] >= _MIN_NOISE_PIXELS:
            levels[:, b], measured[b] = values.median(1).values.cpu().numpy() / _HALF_NORMAL_MEDIAN, True
    return levels, measured


def noise_level(luma: torch.Tensor, where: torch.Tensor) -> float:
    """The deviation of the white noise in ``luma`` (H, W), in its own units, over the pixels
    ``where`` (H, W) is true; 0 where fewer than 64 pixels are measured."""
    return float(_measured(luma[None], where[None])[0][0, 0])


def _scaled_levels(images: torch.Tensor, where: torch.Tensor | list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`noise_levels` of each of ``images`` (N, H, W) over each mask: (N, B, scales), and
    whether each mask was measured at each scale (B, scales)."""
    masks = where if isinstance(where, list) else scaled_masks(where)
    masks = [mask if mask.dim() == 3 else mask[None] for mask in masks]
    levels, measured = np.zeros((len(images), len(masks[0]), len(masks))), np.zeros((len(masks[0]), len(masks)), bool)
    for k, mask in enumerate(masks):
        if images.shape[1:] == mask.shape[1:]:
            levels[:, :, k], measured[:, k] = _measured(images, mask)
        images = F.avg_pool2d(images.float()[:, None], 2)[:, 0] if min(images.shape[1:]) >= 2 else images
    return levels, measured


def noise_levels(luma: torch.Tensor, where: torch.Tensor | list[torch.Tensor]) -> np.ndarray:
    """:func:`noise_level` of ``luma`` (H, W) at each of :data:`GRAIN_SCALES` scales: its pixels,
    then averaged over blocks of 2, 4... (over the blocks wholly ``where``; or give
    :func:`scaled_masks` of it, when several pictures are measured over one mask). ``where`` (B,
    H, W) measures B areas at once: (B, scales)."""
    levels = _scaled_levels(luma[None], where)[0][0]
    one = (where[0] if isinstance(where, list) else where).dim() == 2
    return levels[0] if one else levels


def scaled_masks(where: torch.Tensor) -> list[torch.Tensor]:
    """``where`` (H, W) at each of :data:`GRAIN_SCALES` scales: the blocks of 2, 4... wholly in it."""
    masks = [where]
    for _ in range(GRAIN_SCALES - 1):
        where = F.avg_pool2d(where.float()[None, None], 2)[0, 0] > 0.99 if min(where.shape) >= 2 else where
        masks.append(where)
    return masks


def _grain(shape: tuple[int, int], size: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Noise (H, W) of deviation 1: white, blurred by a Gaussian of ``size`` px (grain about twice
    that across), the same statistics everywhere, so it measures alike wherever a face lies."""
    white = torch.randn(shape, generator=generator, device=device)
    if not size:
        return white
    taps = 2 * math.ceil(3 * size) + 1
    spread = float((kornia.filters.get_gaussian_kernel1d(taps, size) ** 2).sum())  # of the blurred noise, per dimension
    blurred = kornia.filters.gaussian_blur2d(white[None, None], (taps, taps), (size, size), border_type="reflect")[0, 0]
    return blurred / spread


@functools.cache
def _grain_powers() -> np.ndarray:
    """(sizes, scales): the square of what :func:`noise_levels` measures at each scale of the
    grain of each of :data:`GRAIN_SIZES`, at deviation 1."""
    generator = torch.Generator().manual_seed(0)
    everywhere = torch.ones(512, 512, dtype=torch.bool)
    return np.stack([noise_levels(_grain((512, 512), size, generator, torch.device("cpu")), everywhere) ** 2 for size in GRAIN_SIZES])


Tint = tuple[float, float, float] | None  # a monochrome face's tone slopes (tone_slopes); None: a colour face
LUMA_RED, LUMA_GREEN, LUMA_BLUE = LUMA


def luma_of(rgb: torch.Tensor) -> torch.Tensor:
    """Luma (..., H, W) of RGB (..., 3, H, W)."""
    return LUMA_RED * rgb[..., 0, :, :] + LUMA_GREEN * rgb[..., 1, :, :] + LUMA_BLUE * rgb[..., 2, :, :]


def tone_slopes(crops: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """How much each channel of toned crops (K, 3, S, S) changes with their luma, inside ``mask``
    (1, 1, S, S): (K, 3), the least-squares slope of each channel on luma. 1, 1, 1 for grey; a
    sepia face's red rises faster than its blue. Detail kept from a monochrome face's frame is
    its luma detail times these, so that it stays on the tone (added alike to every channel, it
    shifted a sepia face's colours off it). A flat crop (no luma to fit on) gets 1, 1, 1."""
    weight = mask.flatten(1).float() / mask.float().sum().clamp_min(1e-6)  # (1, N)
    rgb, luma = crops.float().flatten(2), luma_of(crops.float()).flatten(1)  # (K, 3, N), (K, N)
    centred = luma - (luma * weight).sum(1, keepdim=True)
    spread = (centred * centred * weight).sum(1)  # (K,)
    slopes = ((rgb - (rgb * weight[:, None]).sum(2, keepdim=True)) * (centred * weight)[:, None]).sum(2) / spread.clamp_min(1e-12)[:, None]
    return torch.where(spread[:, None] > 1e-8, slopes, torch.ones_like(slopes))


def _fit(missing: np.ndarray) -> tuple[int, float] | None:
    """The grain size (an index into :data:`GRAIN_SIZES`) and power (a deviation's square) whose
    powers at each scale fit the ``missing`` ones best (least squares); None where none is missing."""
    shapes = _grain_powers()
    powers = np.maximum(shapes @ missing / (shapes * shapes).sum(1), 0)  # each size's best power
    best = int(np.argmin(((shapes * powers[:, None] - missing) ** 2).sum(1)))
    return (best, float(powers[best])) if powers[best] > 0 else None


def _missing(sources: torch.Tensor, faces: torch.Tensor, where: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """The noise power each of ``sources`` (N, H, W) has over each of ``faces`` at each scale, over
    each mask of ``where`` (:func:`scaled_masks`, of one mask or of several): (N, B, scales); and
    where it was measured (B, scales)."""
    levels, measured = _scaled_levels(torch.cat([sources, faces]), where)
    ahead, behind = levels[: len(sources)], levels[len(sources) :]
    return np.maximum(ahead ** 2 - behind ** 2, 0), measured


GRAIN_BANDS = 3  # bands of brightness whose grain is measured apart: noise and grain vary with it


def brightness(luma: torch.Tensor) -> torch.Tensor:
    """``luma`` (H, W) averaged over blocks of 4 and drawn back to its size: its brightness, the
    noise all but gone (a quarter of it), at a fraction of the cost of a sliding mean."""
    if min(luma.shape) < 4:
        return luma
    means = F.avg_pool2d(luma[None, None], 4)
    return F.interpolate(means, size=luma.shape, mode="bilinear", align_corners=False)[0, 0]


def brightness_bands(light: torch.Tensor, where: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[float]]:
    """The parts of ``where`` (:func:`scaled_masks`) in each of :data:`GRAIN_BANDS` bands of equal
    area by ``light`` (H, W, a :func:`brightness`), at each scale (bands, h, w), the band of a
    block going by its mean brightness, so that coarse scales measure whole blocks near a band's
    edge; and each band's median brightness."""
    inside = light[where[0]]
    quantiles = torch.arange(1, 2 * GRAIN_BANDS, device=light.device) / (2 * GRAIN_BANDS)
    picked = torch.quantile(inside[:: max(1, inside.numel() // _NOISE_SAMPLES)].float(), quantiles)  # a sample's are close enough
    edges, middles = picked[1::2].contiguous(), picked[0::2]
    bands = []
    for mask in where:
        band = torch.bucketize(light, edges)
        bands.append(torch.stack([mask & (band == b) for b in range(GRAIN_BANDS)]))
        light = F.avg_pool2d(light[None, None], 2)[0, 0] if min(light.shape) >= 2 else light
    return bands, middles.tolist()


def _piecewise(x: torch.Tensor, knots: list[float], values: list[float]) -> torch.Tensor:
    """The line through (``knots``, ``values``) at ``x``, level beyond the first and last knot."""
    out = torch.full_like(x, values[0])
    for x0, x1, y0, y1 in zip(knots, knots[1:], values, values[1:]):
        out += ((x - x0) / max(x1 - x0, 1e-6)).clamp(0, 1) * (y1 - y0)
    return out


def _deviations(missing: np.ndarray, measured: np.ndarray, size: int, power: float) -> list[float]:
    """The deviation of grain of ``size`` (an index into :data:`GRAIN_SIZES`) that best makes up
    each band's ``missing`` power at the scales ``measured`` there (``power``'s in a band that
    none measured)."""
    shape = _grain_powers()[size]
    return [math.sqrt(max(float(shape[ok] @ m[ok]) / float(shape[ok] @ shape[ok]), 0.0)) if ok.any() else math.sqrt(power)
            for m, ok in zip(missing, measured)]


def grain_for(face: torch.Tensor, source: torch.Tensor, weight: torch.Tensor, grain: float, seed: int,
              colour: bool = True) -> torch.Tensor | None:
    """The grain (3, h, w) to add to the blend of the warped restored ``face`` (3, h, w, float)
    into the ``source`` pixels (3, h, w, same scale) by the paste ``weight`` (h, w): ``grain`` (0 to
    1) of the noise the face lacks; None for none.

    What the face lacks is the power the source's noise has over the face's at each scale
    (:func:`noise_levels`, both over the face's own area: where the weight is over half its
    greatest, whatever the strength), in luma and, with ``colour``, in each colour difference (R
    and B less luma: a video's chroma noise, film's coloured grain); each is made up by grain of
    one size (:data:`GRAIN_SIZES`) fitted over the whole area. One size, not a mix of them: a mix
    fitted to three noisy measures made coarse blotches out of small errors. Each one's strength
    follows brightness: it is measured in three bands of the source's brightness (the shadows,
    the middle and the highlights of the face), and each pixel gets the strength of its
    brightness in the blend, between the bands' medians. Sensor noise and film grain differ from
    shadows to highlights, and a clipped highlight has none. The colour differences' grain
    leaves luma as it is; a frame without chroma noise gets none, so a grey face stays grey.
    ``colour`` False (a monochrome track, whose face keeps its tone curve) gives luma grain alone.
    Where the weight is w, the blend keeps (1 - w) of the source's noise, so the grain there is
    scaled by sqrt(1 - (1 - w)^2): the sum has the source's power along a feathered edge and in a
    face pasted at part strength (at w = 0.5 the blend alone kept 0.71 of it). ``seed`` makes the
    noise, so a frame's is the same in every run and differs from the next frame's."""
    area = weight > 0.5 * float(weight.max())
    if not area.any():
        return None
    where = scaled_masks(area)
    source, face, weight = source.float(), face.float(), weight.float()
    luma_of_source, luma_of_face = luma_of(source), luma_of(face)
    generator = torch.Generator(face.device).manual_seed(seed)
    shape = face.shape[1:]
    zero = torch.zeros(shape, device=face.device)
    bands, middles = brightness_bands(brightness(luma_of_source), where)
    measures = [torch.cat([w[None], b]) for w, b in zip(where, bands)]  # the whole area, then each band
    shown = brightness(luma_of_face * weight + luma_of_source * (1 - weight))
    colours = (0, 2) if colour else ()  # R - Y, then B - Y
    sources = torch.stack([luma_of_source, *(source[c] - luma_of_source for c in colours)])
    faces = torch.stack([luma_of_face, *(face[c] - luma_of_face for c in colours)])
    missing, measured = _missing(sources, faces, measures)
    fields = []
    for lacking in missing:  # luma, then each colour difference
        fit = _fit(lacking[0])  # the size and power over the whole area, then the power in each band
        fields.append(None if fit is None else
                      _piecewise(shown, middles, _deviations(lacking[1:], measured[1:], *fit)) * _grain(shape, GRAIN_SIZES[fit[0]], generator, face.device))
    if all(field is None for field in fields):
        return None
    luma, red, blue = (zero if field is None else field for field in (*fields, None, None)[:3])
    rgb = torch.stack([luma + red, luma - (LUMA_RED * red + LUMA_BLUE * blue) / LUMA_GREEN, luma + blue])
    return rgb * (grain * (1 - (1 - weight) ** 2).clamp_min(0).sqrt())


def paste_faces(frame: torch.Tensor, crops: torch.Tensor, matrices: np.ndarray, strength: torch.Tensor | None = None,
                masks: torch.Tensor | None = None, padding: str = "zeros", grain: float = 0.0,
                grains: Sequence[tuple[int, Tint]] = (), detail: float | Sequence[float] = 0.0,
                in_place: bool = False) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    """Blend restored ``crops`` (K, 3, S, S) into ``frame`` (3, H, W; uint8/uint16, or float in [0, 1])
    through the inverse of the frame-to-crop ``matrices`` (K, 2, 3). ``masks`` (K, 1, S, S): per-face
    paste masks (e.g. from face parsing); default the feathered ellipse. Only the frame region under
    each face's mask is warped and blended. ``strength`` (K,) scales each face's mask (fade-in/out
    at track ends). ``padding``: how crops and masks extend past their edges where the frame's
    pixels sample beyond them; "border" repeats the edge, for a crop that covers the whole frame.
    ``grain`` (0 to 1): how much of the noise each face lacks against the frame is put back
    (:func:`grain_for`), from ``grains`` (K,), one per face: the seed of its grain, and None for a
    colour face, or for a monochrome track's face the slopes of its tone (:func:`tone_slopes`):
    its grain is then luma alone, and the detail kept below the frame's luma detail times them. ``detail`` (0 to 1, one for all faces or one a
    face): the share of the frame's own detail finer than the crop's pixels that the faces keep.
    The crops are then the restored faces less ``detail`` times the crops they were restored from
    (in [-1, 1]), and ``detail`` times the frame is added to them under the mask: at 1, what restoration changed is
    added to the frame, so a face larger than the crop is not the crop enlarged; at 0, the
    restored crops are blended in as they are.

    Returns a new frame of the same dtype (``frame`` is left as it was) and the boxes
    ``(x0, y0, x1, y1)`` outside which it equals ``frame``. ``in_place``: a CPU frame that is a
    view of HWC memory (a decoded image) is pasted into and returned instead (a 4K frame
    copied for each frame of a restoration window held 16 x 25 MB)."""
    _, height, width = frame.shape
    size = crops.shape[-1]
    masks = masks if masks is not None else face_mask(size, frame.device).expand(len(crops), -1, -1, -1)
    strength = strength if strength is not None else torch.ones(len(crops), device=frame.device)
    details = np.broadcast_to(np.asarray(detail, np.float64), (len(crops),))
    on_cpu = frame.device.type == "cpu"
    out = frame.permute(1, 2, 0).numpy() if on_cpu else frame.clone()
    if on_cpu and not (in_place and out.flags.c_contiguous):  # OpenCV blends HWC rows
        out = out.copy()
    row_peaks, col_peaks = masks[:, 0].amax(2).cpu().numpy(), masks[:, 0].amax(1).cpu().numpy()
    boxes = []
    for k in range(len(crops)):
        support = mask_support(row_peaks[k], col_peaks[k])
        if support is None:
            continue
        x0, y0, x1, y1 = source_region(matrices[k : k + 1], support, height, width, margin=1)
        if x1 <= x0 or y1 <= y0:
            continue  # the face lies wholly outside the frame
        crop_to_region = invert_affine(shift_affine(matrices[k : k + 1], x0, y0))[0]
        blend = _blend_cpu if on_cpu else _blend_torch
        noise = (grain, grains[k][0], grains[k][1] is None) if grain > 0 else None
        tint = grains[k][1] if grains else None
        blend(out, (x0, y0, x1, y1), crops[k], masks[k] * strength[k], crop_to_region, padding, noise, float(details[k]), tint)
        boxes.append((x0, y0, x1, y1))
    return (torch.from_numpy(out).permute(2, 0, 1) if on_cpu else out), boxes


_NUMPY_PEAK = {np.uint8: 255, np.uint16: 65535}


Noise = tuple[float, int, bool] | None  # (grain, seed, colour) of grain_for(), or None for none


def _blend_cpu(out: np.ndarray, box: tuple[int, int, int, int], crop: torch.Tensor, alpha: torch.Tensor,
               crop_to_region: np.ndarray, padding: str = "zeros", noise: Noise = None, detail: float = 0.0,
               tint: Tint = None) -> None:
    """OpenCV blend into the HWC array ``out``. A uint8 frame stays uint8 throughout (the crop is
    quantised before the warp), which costs a fraction of converting the region to float and back.
    Deeper frames, faces given grain, and faces that keep the frame's ``detail`` (the crop is then
    added to that share of the frame, or, with a ``tint``, of its luma times the tint) blend in
    float32 (OpenCV blends only 8-bit or float) and keep their depth."""
    x0, y0, x1, y1 = box
    region = out[y0:y1, x0:x1]
    peak = _NUMPY_PEAK.get(region.dtype.type, 1.0)
    in_float = region.dtype != np.uint8 or noise is not None or detail > 0
    rgb = crop.permute(1, 2, 0).numpy()
    rgb = (rgb if detail else rgb.clip(0, 1)) * peak
    rgb = rgb.astype(np.float32) if in_float else np.rint(rgb).astype(np.uint8)
    dsize = (y1 - y0, x1 - x0)
    weight = warp_image(alpha[0].float().numpy(), crop_to_region, dsize, padding)
    base = region.astype(np.float32) if in_float else region
    face = warp_image(rgb, crop_to_region, dsize, padding)
    if detail:
        face = (base if tint is None else (base @ np.asarray(LUMA, np.float32))[..., None] * np.asarray(tint, np.float32)) * detail + face
    blended = cv2.blendLinear(base, face, 1 - weight, weight)
    if noise is not None:
        chw = lambda image: torch.from_numpy(image).permute(2, 0, 1)
        field = grain_for(chw(face), chw(base), torch.from_numpy(weight), *noise)
        blended = blended if field is None else blended + field.permute(1, 2, 0).numpy()
    region[...] = blended if blended.dtype == region.dtype else np.rint(blended).clip(0, peak)


def _blend_torch(out: torch.Tensor, box: tuple[int, int, int, int], crop: torch.Tensor, alpha: torch.Tensor,
                 crop_to_region: np.ndarray, padding: str = "zeros", noise: Noise = None, detail: float = 0.0,
                 tint: Tint = None) -> None:
    """Batched-warp blend into the (3, H, W) tensor ``out`` on its accelerator."""
    x0, y0, x1, y1 = box
    warped = warp_affine(torch.cat([crop, alpha])[None], crop_to_region[None], (y1 - y0, x1 - x0), padding)[0]
    weight = warped[3:4]
    source = to_unit_float(out[:, y0:y1, x0:x1])
    kept = source if tint is None else luma_of(source)[None] * torch.tensor(tint, device=source.device, dtype=source.dtype)[:, None, None]
    face = kept * detail + warped[:3] if detail else warped[:3]
    blended = source * (1 - weight) + face * weight
    field = None if noise is None else grain_for(face, source, weight[0], *noise)
    blended = blended if field is None else blended + field
    peak = PEAK.get(out.dtype)
    out[:, y0:y1, x0:x1] = (blended.clamp(0, 1) * peak).round().to(out.dtype) if peak else blended
