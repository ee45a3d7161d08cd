"""Black-and-white, toned and dark footage: found, shown to the face detector as it finds faces
best, and its tone kept in the restored faces.

A picture is *monochrome* here when its colour follows from its brightness alone: grey, a colour
cast, sepia or selenium toning, a tinted reel. Its chroma (RGB less luma) is then fitted well by
a quadratic in luma, one curve per channel (:func:`tone_curves`); what the fit leaves, averaged
over the picture, is its *tone spread*. Colour pictures have faces, clothes and backgrounds of
different hues at one brightness, and leave more. A black-and-white picture with colour in a
small part of it (a channel's logo, a coloured border or caption, a hand-tinted detail) leaves
much there and nothing elsewhere; so the spread is also measured on the picture's *core*, the
blocks the curve fits best once those it fits worst are left out, and the lesser of the two
counts (:func:`tone_spreads`).

Two things went wrong on such footage. RetinaFace, trained on well-exposed colour photos, missed
most faces in grey, tinted or dim frames (none of 50 frames of a KEEP clip made grey, or at half
its exposure, against 50 of 50 in colour), and dlib's landmark predictor placed landmarks worse on
dim frames; :func:`for_detection` shows both such frames stretched and skin-toned, or
brightened (``bench/monochrome.py``); a colour frame that is grey over a large part (a
black-and-white picture in a wide coloured border) is shown twice, as it is and with that part
skin-toned (:func:`grey_parts`). And a restoration model trained on colour faces tints a
grey or sepia face (CodeFormer's users report green patches in grey hair), so a restored face of
a monochrome shot keeps the luma the model gave it, coloured by the tone curve of its own input
crop (:func:`keep_tone`).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)  # BT.601, as the decoders' YUV -> RGB
# Mean chroma left by the fit, in 8-bit levels, under which a picture is monochrome. Measured with
# bench/monochrome.py: 0 to 1.12 for black-and-white photos (CodeFormer's grey faces, some of them
# toned) and 0 to 0.23 for the KEEP clips made grey, sepia or blue; 2 of 2000 CelebA colour photos
# (dim, skin-toned faces on black) are under it; the KEEP clips in colour leave 11 or more.
MONOCHROME_LEVELS = 1.5
# The core: this share of a picture's blocks, fitted again without the others, whose spread is
# scaled so that 0.8 levels there counts as MONOCHROME_LEVELS. Measured with bench/monochrome.py
# on 60 frames of each KEEP clip made grey: with a red logo on 2% or 5% of the picture, a blue
# border 3% of its width, or its bottom tenth left in colour, the tone spread is 1.31 at most,
# where the whole picture's fit leaves 2.5 to 7.3; a 6% border or the bottom fifth in colour stay
# colour (1.79 at least). Of 2000 CelebA and 2000 UTKFace photos, no more fall under
# MONOCHROME_LEVELS than over the whole picture alone (2 and 28).
CORE_SHARE = 0.85
CORE_SCALE = MONOCHROME_LEVELS / 0.8
# The chroma of skin at mid grey (luma 0.5), as the median over the cheeks, nose and mouth of
# 1500 UTKFace faces; it falls off towards black and white about as 4y(1 - y) does.
SKIN_CHROMA = (0.161, -0.053, -0.137)
# Pictures are fitted averaged over whole blocks of pixels, to this width or a little more: chroma
# noise averages out, and a batch of 8 detector frames costs about 2 ms (a third of it at 64).
FIT_WIDTH = 32
WHITE = 0.8  # dimmer pictures are brightened until their brightest 1% reach it (the KEEP clips' reach 0.77 and 0.84)
MIDDLE = 0.45  # ... or their median reaches this (the KEEP clips': 0.43 to 0.5)
MAX_GAIN = 8.0  # no picture's levels are stretched more: a near-black or flat frame's noise is not made a picture
_RIDGE = 1e-4  # keeps the fit solvable for a flat picture (one luma)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """Luma (..., N) of RGB (..., N, 3)."""
    return rgb @ torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device)


def _basis(luma: torch.Tensor) -> torch.Tensor:
    centred = luma - 0.5  # keeps the normal equations well conditioned in float32
    return torch.stack([torch.ones_like(centred), centred, centred * centred], -1)


def thumbnails(images: np.ndarray) -> torch.Tensor:
    """RGB frames (K, H, W, 3), uint8 or uint16, as float pictures (K, 3, h, w) in [0, 1], each
    pixel the mean of a block of pixels, about :data:`FIT_WIDTH` wide (OpenCV's area resize by a
    whole factor: a tenth of the time of pooling the full frames in torch). A block is no taller
    than the frame: a strip 4096 px wide and 16 high, read at 320 x 1 for the detector, failed."""
    block = max(1, min(images.shape[2] // FIT_WIDTH, images.shape[1]))
    height, width = images.shape[1] // block * block, images.shape[2] // block * block
    small = np.stack([cv2.resize(image[:height, :width], (width // block, height // block), interpolation=cv2.INTER_AREA)
                      for image in images])
    return torch.from_numpy(small.astype(np.float32) / np.iinfo(images.dtype).max).permute(0, 3, 1, 2)


def _blocks(pictures: torch.Tensor) -> torch.Tensor:
    """RGB ``pictures`` (K, 3, H, W) averaged over blocks of pixels to about :data:`FIT_WIDTH`
    wide, as (K, N, 3) rows of block colours."""
    block = min(pictures.shape[-1] // FIT_WIDTH, pictures.shape[-2])
    small = F.avg_pool2d(pictures, block) if block > 1 else pictures
    return small.float().flatten(2).transpose(1, 2)


def _fit(rgb: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Chroma as a quadratic in luma, fitted to block colours ``rgb`` (K, N, 3) by least squares
    (over the blocks of ``weights`` (K, N) 1, when given): coefficients (K, 3, 3) (constant,
    linear, square by channel), and each block's residual (K, N), mean over channels, in [0, 1]."""
    luma = _luma(rgb)
    chroma = rgb - luma[..., None]
    basis = _basis(luma)
    weighted = basis if weights is None else basis * weights[..., None]
    # normal equations with a small ridge: one solver for every device, and a flat picture's
    # singular system (a single luma) still has an answer
    gram = weighted.transpose(1, 2) @ basis + _RIDGE * torch.eye(3, device=rgb.device)
    coefficients = torch.linalg.solve(gram, weighted.transpose(1, 2) @ chroma)
    return coefficients, (chroma - basis @ coefficients).abs().mean(-1)


def tone_curves(pictures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each picture's chroma as a quadratic in luma: coefficients (K, 3, 3) (constant, linear,
    square by channel) and what the fit leaves over the whole picture (K,), in 8-bit levels, of
    RGB ``pictures`` (K, 3, H, W) in [0, 1], averaged over blocks of pixels to about
    :data:`FIT_WIDTH` wide first."""
    coefficients, residual = _fit(_blocks(pictures))
    return coefficients, residual.mean(1) * 255


def tone_spreads(pictures: torch.Tensor) -> torch.Tensor:
    """The tone spread (K,), in 8-bit levels, of RGB ``pictures`` (K, 3, H, W) in [0, 1]: the
    lesser of what the fit leaves over the whole picture and, scaled by :data:`CORE_SCALE`, over
    its core (the :data:`CORE_SHARE` of its blocks the curve fits best, fitted again on them)."""
    rgb = _blocks(pictures)
    _, residual = _fit(rgb)
    _, refitted = _fit(rgb, _best_fitted(residual).float())
    core = _best_fitted(refitted)
    return torch.minimum(residual.mean(1), CORE_SCALE * (refitted * core).sum(1) / core.sum(1)) * 255


def _best_fitted(residual: torch.Tensor) -> torch.Tensor:
    """The :data:`CORE_SHARE` of each row of block ``residual`` (K, N) that is smallest, as a mask."""
    return residual <= torch.quantile(residual, CORE_SHARE, dim=1, keepdim=True)


def tone_spread(image: np.ndarray) -> float:
    """The tone spread (8-bit levels, :func:`tone_spreads`) of an RGB frame (H, W, 3), uint8 or uint16."""
    return float(tone_spreads(thumbnails(image[None]))[0])


# px: smaller faces are not measured (their blocks would be single pixels of coding noise). Of the
# faces RetinaFace finds in 2000 CelebA photos, 3 of 1974 in colour measure under MONOCHROME_LEVELS
# (6 and 9 at half and 0.3 of their exposure), none of the KEEP clips' colour faces (least 2.44),
# and every one made grey or blue (bench/monochrome.py --only-faces).
FACE_SIDE = 24


# A face whose tone spread is this or more is in colour whatever its shot's pictures say. The
# shot's core leaves out the blocks its curve fits worst, so a colour face on under about a tenth
# of a mostly grey picture (a grey wall or suit, an overcast street) was taken for a black-and-white
# shot and restored grey, its lips with it. Measured with bench/monochrome.py --only-faces: the
# KEEP clips' faces shrunk to 0.2 and 0.3 onto a grey ground 3.15 to 13.65 (their pictures 0 to
# 0.04), 1 of 583 CelebA colour faces under 2, the same made grey, sepia or blue 0 to 1.65;
# black-and-white photos' faces 0 to 1.12. Between the two, the shot decides.
COLOUR_FACE_LEVELS = 2.0


def track_is_monochrome(shot_monochrome: bool, face_spreads: list[float]) -> bool:
    """Whether a track's restored faces keep its tone: its faces' median tone spread decides where
    it is clearly grey or clearly colour, its shot's pictures where no face was measured or the
    faces are between. A black-and-white picture with colour on much of it (a wide coloured
    border, a colourised part) is taken for colour, but its faces are grey; a colour face in a
    mostly grey picture is taken for black-and-white, but it is in colour."""
    face = float(np.median(face_spreads)) if face_spreads else None
    if face is None or MONOCHROME_LEVELS <= face < COLOUR_FACE_LEVELS:
        return shot_monochrome
    return face < MONOCHROME_LEVELS


def face_tone_spread(image: np.ndarray, box: np.ndarray) -> float | None:
    """The tone spread of the face in ``box`` (x0, y0, x1, y1, pixels of the RGB ``image``) as if
    brightened until its brightest 1% reach :data:`WHITE` (by at most :data:`MAX_GAIN`): a dark
    face's chroma is as small as its levels, and what the fit leaves scales with them (a
    colour face at a third of its exposure left a third of its spread, under the threshold).
    None for a face under :data:`FACE_SIDE`."""
    pixels = _in_box(image, box)
    if min(pixels.shape[:2]) < FACE_SIDE:
        return None
    face = thumbnails(pixels[None])
    bright = float(torch.quantile(_luma(face.flatten(2).transpose(1, 2)), 0.99))
    return float(tone_spreads(face)[0]) * min(max(WHITE / max(bright, 1e-3), 1.0), MAX_GAIN)


def for_detection(images: list[np.ndarray]) -> list[np.ndarray]:
    """RGB uint8 frames as a detector trained on well-exposed colour photos finds faces in best,
    and a landmark predictor places landmarks best. Monochrome frames are made anew: their luma
    stretched so that its 1st and 99th percentiles become black and white, and coloured as skin
    is at each luma (:data:`SKIN_CHROMA`). Dim colour frames are brightened until their 99th
    percentile reaches :data:`WHITE`, or their median :data:`MIDDLE` if sooner; stretching their
    contrast as well made RetinaFace find faces in pairs of lamps, and brightening a flat
    mid-grey picture (which has no bright 1%) made it find them in blurred texture. Other frames
    are returned as they are. Half-exposed, grey or blue-tinted frames then give faces as
    well-exposed colour frames do, and dlib's landmarks within 2 px of theirs (bench/monochrome.py)."""
    small = thumbnails(np.stack(images))  # a detector's batch: frames of one size
    low, middle, high = torch.quantile(_luma(small.flatten(2).transpose(1, 2)), torch.tensor([0.01, 0.5, 0.99]), dim=1).tolist()
    monochrome = (tone_spreads(small) < MONOCHROME_LEVELS).tolist()
    gains = [min(max(min(WHITE / max(h, 1e-3), MIDDLE / max(m, 1e-3)), 1.0), MAX_GAIN) for m, h in zip(middle, high)]
    return [_skin_toned(image, lo, hi) if mono else cv2.convertScaleAbs(image, alpha=gain) if gain > 1 else image
            for image, mono, lo, hi, gain in zip(images, monochrome, low, high, gains)]


# A block (of the thumbnails :func:`thumbnails` makes) is grey when its chroma averages under this
# many 8-bit levels and it is not dark (dark blocks have little chroma whatever their colour).
# Measured with bench/monochrome.py: colour KEEP frames have at most 5% of their blocks grey, CelebA
# photos 29% at the 90th percentile (grey backdrops); a grey picture inside a coloured border an
# eighth of the width on each side, 58-61%.
GREY_LEVELS = 2.0
GREY_DARK = 0.08
GREY_SHARE = 0.3  # colour frames with more of their blocks grey are shown a second time, skin-toned


def grey_parts(images: list[np.ndarray]) -> dict[int, np.ndarray]:
    """The colour frames of RGB uint8 ``images`` (one size) that are grey over a large part
    (:data:`GREY_SHARE` of their blocks): a black-and-white picture inside a wide coloured border,
    beside coloured graphics, or partly colourised. Their grey faces are lost on a detector shown
    them as they are (:func:`for_detection` takes them for colour); here, by index, each is made
    anew as a monochrome frame is, its luma stretched over the range of its grey part."""
    small = thumbnails(np.stack(images))
    rgb = small.flatten(2).transpose(1, 2)
    luma = _luma(rgb)
    grey = ((rgb - luma[..., None]).abs().mean(-1) * 255 < GREY_LEVELS) & (luma > GREY_DARK)
    candidates = [b for b in range(len(images)) if grey[b].float().mean() >= GREY_SHARE]
    if not candidates:
        return {}
    colour = tone_spreads(small[candidates]) >= MONOCHROME_LEVELS  # monochrome ones for_detection tones whole
    parts = {}
    for b, is_colour in zip(candidates, colour.tolist()):
        if is_colour:
            low, high = torch.quantile(luma[b][grey[b]], torch.tensor([0.01, 0.99])).tolist()
            parts[b] = _skin_toned(images[b], low, high)
    return parts


GREY_FACE_BLUR = 5  # px: a face's chroma is averaged over boxes this wide first, as the blocks of grey_parts average it


def is_grey_face(image: np.ndarray, box: np.ndarray) -> bool:
    """Whether the face in ``box`` (x0, y0, x1, y1, pixels of the RGB uint8 ``image``) is grey: its
    chroma, averaged over boxes of :data:`GREY_FACE_BLUR` px, averages under :data:`GREY_LEVELS`:
    pixel by pixel, noise of 4 levels in each channel (a scan's or a capture's) lost 19 of 20 grey
    faces of keep_real_1 in a coloured border. A box outside the image is not."""
    pixels = _in_box(image, box)
    if pixels.size == 0:
        return False
    face = cv2.blur(pixels.astype(np.float32), (GREY_FACE_BLUR, GREY_FACE_BLUR)).reshape(-1, 3)
    return float(np.abs(face - (face @ np.asarray(LUMA, np.float32))[:, None]).mean()) < GREY_LEVELS


def _in_box(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pixels of ``image`` inside ``box`` (x0, y0, x1, y1; fractions of a pixel taken in), empty when it lies outside."""
    height, width = image.shape[:2]
    x0, y0 = (max(0, int(v)) for v in box[:2])
    x1, y1 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    return image[y0:max(y0, y1), x0:max(x0, x1)]


def _skin_toned(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """A monochrome RGB uint8 frame with its luma stretched from ``low``-``high`` to 0-1 and coloured as skin is at that luma."""
    luma = ((np.arange(256, dtype=np.float32) / 255 - low) / max(high - low, 1 / MAX_GAIN)).clip(0, 1)
    table = (luma[:, None] + (4 * luma * (1 - luma))[:, None] * np.asarray(SKIN_CHROMA, np.float32)).clip(0, 1)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)  # BT.601, as LUMA
    return cv2.LUT(cv2.merge([grey, grey, grey]), (table * 255 + 0.5).astype(np.uint8)[:, None, :])


def keep_tone(restored: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Restored crops (K, 3, S, S) in [0, 1] with the luma the model gave them, coloured by the
    tone curve of their input crops ``reference`` (K, 3, S, S): a grey face stays grey, a sepia
    face sepia, whatever colour the model put in. Beyond the reference's range of luma the curve
    is not extrapolated: a pixel brighter or darker than any of the input's takes the colour of
    its brightest or darkest."""
    coefficients, _ = tone_curves(reference)
    k, _, h, w = restored.shape
    luma = _luma(restored.float().flatten(2).transpose(1, 2))  # (K, N)
    known = _luma(reference.float().flatten(2).transpose(1, 2))
    within = luma.clamp(known.amin(1, keepdim=True), known.amax(1, keepdim=True))
    rgb = luma[..., None] + _basis(within) @ coefficients
    return rgb.transpose(1, 2).reshape(k, 3, h, w).clamp_(0, 1).to(restored.dtype)
