"""Black-and-white and toned footage: telling it from colour, showing it to the detector, keeping its tone."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.faces.tone import (
    LUMA,
    MAX_GAIN,
    MONOCHROME_LEVELS,
    WHITE,
    for_detection,
    grey_parts,
    is_grey_face,
    keep_tone,
    tone_curves,
    tone_spread,
    tone_spreads,
)

WEIGHTS = torch.tensor(LUMA).view(1, 3, 1, 1)


def luma_of(pictures: torch.Tensor) -> torch.Tensor:
    return (pictures * WEIGHTS).sum(1)


def smooth_luma(seed: int, size: int = 96) -> torch.Tensor:
    """A picture-like luma (1, 1, S, S) in [0.05, 0.95]: gradients and blobs, no pixel noise."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, 6, 6, generator=gen)
    return 0.05 + 0.9 * torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def toned(luma: torch.Tensor, gain: tuple[float, float, float], offset: tuple[float, float, float]) -> torch.Tensor:
    """A monochrome picture: each channel a linear function of one luma (grey, sepia, a tinted reel)."""
    return (luma * torch.tensor(gain).view(1, 3, 1, 1) + torch.tensor(offset).view(1, 3, 1, 1)).clamp(0, 1)


# tones that clip no channel of smooth_luma's range (a clipped one: see test_a_clipped_tone_is_still_monochrome)
tones = st.tuples(st.tuples(*[st.floats(0.4, 0.95)] * 3), st.tuples(*[st.floats(0.0, 0.09)] * 3))


def chroma_at_luma(reference: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    """The chroma (N, 3) of the ``reference`` (1, 3, H, W) pixels whose luma is nearest to each of ``luma`` (N,)."""
    rgb = reference[0].flatten(1).T
    known = rgb @ torch.tensor(LUMA)
    order = known.argsort()
    nearest = order[torch.searchsorted(known[order], luma).clamp(max=len(order) - 1)]
    return rgb[nearest] - known[nearest, None]


@settings(max_examples=30, deadline=None)
@given(tone=tones, seed=st.integers(0, 10_000))
def test_a_toned_picture_is_monochrome_and_restored_faces_take_its_tone(tone, seed):
    reference = toned(smooth_luma(seed), *tone)
    assert tone_curves(reference)[1].item() < 0.1
    # whatever colours the model gave, the luma stays and the chroma is the reference's at that luma
    known = luma_of(reference)
    # random colours, their luma within the reference's (beyond it the curve is held, not followed)
    restored = known.min() + (known.max() - known.min()) * torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(seed + 1))
    kept = keep_tone(restored, reference)
    inside = (kept > 0.001).all(1) & (kept < 0.999).all(1)  # no channel clipped
    assert inside.float().mean() > 0.9
    luma = luma_of(kept)[inside]
    assert torch.allclose(luma, luma_of(restored)[inside], atol=2e-3)
    chroma = kept.permute(0, 2, 3, 1)[inside] - luma[:, None]
    assert (chroma - chroma_at_luma(reference, luma)).abs().max() < 0.012  # 3 levels
    assert torch.isfinite(keep_tone(torch.ones(1, 3, 8, 8), reference)).all()  # brighter than the reference: no wild colour
    assert (keep_tone(torch.ones(1, 3, 96, 96), reference) - keep_tone(torch.ones(1, 3, 96, 96) * known.max(), reference)).abs().max() > 0


def test_a_clipped_tone_is_still_monochrome():
    """Blue lifted and gained until it clips over the top tenth of the picture's range: no longer
    quite quadratic in luma, still well under the threshold."""
    assert 0.5 < tone_curves(toned(smooth_luma(4), (1.0, 1.0, 1.09), (0.0, 0.0, 0.0625)))[1].item() < MONOCHROME_LEVELS


def test_grey_stays_grey_and_a_flat_picture_keeps_its_colour():
    grey = smooth_luma(3).expand(1, 3, -1, -1)
    restored = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(4))
    kept = keep_tone(restored, grey)
    assert torch.allclose(kept[:, 0], kept[:, 1], atol=1e-4) and torch.allclose(kept[:, 1], kept[:, 2], atol=1e-4)
    assert torch.allclose(kept[:, 0], luma_of(restored), atol=1e-4)
    flat = torch.tensor([0.6, 0.45, 0.3]).view(1, 3, 1, 1).expand(1, 3, 64, 64)  # one colour: a singular fit
    coefficients, spread = tone_curves(flat)
    assert torch.isfinite(coefficients).all() and spread.item() < 0.01
    same_luma = luma_of(flat)[:, None].expand(1, 3, -1, -1).clone()
    assert torch.allclose(keep_tone(same_luma, flat), flat, atol=2e-3)


def test_colour_pictures_are_not_monochrome(sample_clip):
    from vidrestore.io import VideoReader

    luma = smooth_luma(5)
    skin, sky = toned(luma, (1.15, 0.95, 0.8), (0, 0, 0)), toned(luma, (0.8, 1.0, 1.3), (0, 0, 0))
    halves = torch.cat([skin[..., :48], sky[..., 48:]], -1)  # two hues at one brightness
    assert tone_spreads(halves).item() > 3 * MONOCHROME_LEVELS
    # grey but for its bottom third, in the two hues: more than a small part of it, so colour
    grey = luma.expand(1, 3, -1, -1)
    assert tone_spreads(torch.cat([grey[..., :64, :], halves[..., 64:, :]], -2)).item() > MONOCHROME_LEVELS
    with VideoReader(sample_clip) as r:
        frame = next(iter(r)).image
    assert tone_spread(frame) > 2 * MONOCHROME_LEVELS
    grey = np.repeat((frame @ np.asarray(LUMA)).round().astype(np.uint8)[..., None], 3, 2)
    assert tone_spread(grey) < 0.1
    assert abs(tone_spread(frame.astype(np.uint16) * 257) - tone_spread(frame)) < 0.05  # 16-bit frames alike


@pytest.mark.parametrize("part", ["logo", "border"])
def test_black_and_white_with_colour_in_a_small_part_is_monochrome(part):
    """A grey picture with a channel's logo on 4% of it, or a coloured border 2 px wide on a 96 px
    picture (8%): monochrome on its core, though the whole picture's fit leaves several times the
    threshold, and the detector is shown it in skin tones as any grey frame."""
    picture = smooth_luma(7).expand(1, 3, -1, -1).clone()
    if part == "logo":
        picture[..., 4:23, 70:89] = torch.tensor([0.85, 0.1, 0.1]).view(1, 3, 1, 1)
    else:
        picture[..., :, :2] = picture[..., :, -2:] = picture[..., :2, :] = picture[..., -2:, :] = torch.tensor([0.1, 0.25, 0.8]).view(1, 3, 1, 1)
    assert tone_curves(picture)[1].item() > 2 * MONOCHROME_LEVELS
    assert tone_spreads(picture).item() < MONOCHROME_LEVELS
    image = (picture[0] * 255).round().byte().permute(1, 2, 0).numpy()
    assert tone_spread(image) < MONOCHROME_LEVELS
    seen = torch.from_numpy(for_detection([image])[0]).permute(2, 0, 1).float() / 255
    mid = (luma_of(seen[None])[0] - 0.5).abs() < 0.2
    assert (seen[0][mid] > seen[1][mid] + 0.05).float().mean() > 0.9  # skin-toned, but where the logo or border was


def test_a_grey_picture_in_a_wide_coloured_border_is_shown_again_skin_toned_and_only_it():
    """A grey picture inside a coloured border a sixth of the width on each side is colour as a
    whole (for_detection does not skin-tone it), so it is shown a second time: its luma stretched over
    the grey part's range and coloured as skin. Not so a colour picture, one with a small grey part,
    or a grey one (for_detection tones it whole)."""
    luma = smooth_luma(3)
    colour = torch.cat([toned(luma, (1.1, 0.95, 0.8), (0, 0, 0))[..., :48], toned(luma, (0.8, 1.0, 1.2), (0, 0, 0))[..., 48:]], -1)
    bordered = (0.2 + 0.7 * luma).expand(1, 3, -1, -1).clone()  # grey, luma 0.24-0.87
    # dark, and of two hues at one luma, so that no tone curve fits it
    bordered[..., :, :16] = bordered[..., :, -16:] = torch.tensor([0.21, 0.0, 0.0]).view(1, 3, 1, 1)
    bordered[..., :16, :] = bordered[..., -16:, :] = torch.tensor([0.0, 0.05, 0.3]).view(1, 3, 1, 1)
    small_grey = colour.clone()
    small_grey[..., 30:50, 30:50] = luma[..., 30:50, 30:50]  # 4% of the picture
    pictures = torch.cat([colour, bordered, small_grey, luma.expand(1, 3, -1, -1)])
    images = list((pictures * 255).round().byte().permute(0, 2, 3, 1).numpy())
    assert tone_spread(images[1]) > MONOCHROME_LEVELS  # colour: for_detection does not skin-tone it
    parts = grey_parts(images)
    assert list(parts) == [1]
    seen = torch.from_numpy(parts[1]).permute(2, 0, 1).float() / 255
    inside = seen[:, 16:-16, 16:-16]
    inside_luma = luma_of(inside[None])[0]
    assert inside_luma.min().item() < 0.05 and inside_luma.max().item() > 0.95  # stretched over the grey part's range
    mid = (inside_luma - 0.5).abs() < 0.2
    assert (inside[0][mid] > inside[1][mid] + 0.05).all() and (inside[1][mid] > inside[2][mid]).all()  # skin
    assert is_grey_face(images[1], np.array([20.0, 20.0, 70.0, 70.0])) and not is_grey_face(images[1], np.array([0.0, 0.0, 40.0, 40.0]))
    assert not is_grey_face(images[0], np.array([20.0, 20.0, 70.0, 70.0]))
    assert not is_grey_face(images[1], np.array([120.0, 20.0, 150.0, 70.0]))  # outside the picture


def test_the_detector_sees_colour_as_it_is_dark_frames_brightened_and_monochrome_ones_in_skin_tones():
    luma = smooth_luma(6, 64)
    colour = torch.cat([toned(luma, (1.1, 0.95, 0.8), (0, 0, 0))[..., :32], toned(luma, (0.8, 1.0, 1.2), (0, 0, 0))[..., 32:]], -1)
    flat = 0.33 + 0.3 * colour  # low contrast about mid grey: no bright 1%, but not dim
    pictures = torch.cat([colour, colour * 0.4, toned(luma, (0.55, 0.72, 1.0), (0, 0.02, 0.05)), torch.zeros(1, 3, 64, 64), flat])
    images = list((pictures * 255).round().byte().permute(0, 2, 3, 1).numpy())
    seen = for_detection(images)
    assert seen[0] is images[0]  # a well-exposed colour frame
    assert np.array_equal(seen[3], images[3])  # black stays black (no grey picture is stretched more than MAX_GAIN)
    assert seen[4] is images[4]  # brightened, such a frame gave false faces in blurred texture
    # a dim one is brightened, its colours in proportion, until its brightest 1% reach WHITE
    dim, brightened = (torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255 for im in (images[1], seen[1]))
    assert abs(torch.quantile(luma_of(brightened).flatten(), 0.99).item() - WHITE) < 0.03
    assert torch.allclose(brightened, dim * (brightened.sum() / dim.sum()), atol=2 / 255)
    # the blue-tinted one: its luma stretched to black and white, coloured as skin (red over green over blue)
    blue = torch.from_numpy(seen[2]).permute(2, 0, 1).float() / 255
    blue_luma = luma_of(blue[None])[0]
    assert torch.quantile(blue_luma.flatten(), 0.01).item() < 0.02 and torch.quantile(blue_luma.flatten(), 0.99).item() > 0.97
    mid = (blue_luma - 0.5).abs() < 0.2
    assert (blue[0][mid] > blue[1][mid] + 0.05).all() and (blue[1][mid] > blue[2][mid]).all()
    assert MAX_GAIN < 255


def test_a_face_is_measured_as_if_well_exposed_and_a_grey_one_is_monochrome(sample_clip):
    """A track's faces are measured in their boxes: a colour face at a third of its exposure
    leaves a third of the spread over the box, which fell under the threshold; measured as if
    brightened it does not. The same face made grey does, and a face too small is not measured."""
    from vidrestore.faces.tone import face_tone_spread
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        frame = next(iter(r)).image
    box = np.array([140.0, 30.0, 260.0, 180.0])  # the sample's face
    face = frame[30:180, 140:260]
    dark = (frame // 3).astype(np.uint8)
    assert tone_spread(dark[30:180, 140:260]) < MONOCHROME_LEVELS < tone_spread(face)
    assert face_tone_spread(dark, box) > MONOCHROME_LEVELS and face_tone_spread(frame, box) > MONOCHROME_LEVELS
    grey = np.repeat((frame @ np.asarray(LUMA)).round().astype(np.uint8)[..., None], 3, 2)
    assert face_tone_spread(grey, box) < 0.1 and face_tone_spread(grey // 4, box) < 0.5
    assert face_tone_spread(frame, np.array([140.0, 30.0, 160.0, 180.0])) is None


@pytest.mark.parametrize("shot, faces, kept", [
    (False, [], False), (True, [], True),  # no face measured: the shot decides
    (False, [0.2, 0.3, 9.0], True), (True, [0.2, 0.4], True),  # grey faces keep their tone in a colour picture
    (True, [6.6, 7.1, 0.5], False), (False, [6.6], False),  # colour faces in a mostly grey picture stay colour
    (True, [1.8], True), (False, [1.9], False),  # between: the shot decides
])
def test_a_tracks_faces_decide_its_tone_where_they_are_clearly_grey_or_clearly_colour(shot, faces, kept):
    from vidrestore.faces.tone import track_is_monochrome

    assert track_is_monochrome(shot, faces) is kept


def test_a_colour_face_in_a_mostly_grey_picture_is_measured_colour_though_the_picture_is_not(sample_clip):
    """The sample shrunk to a fifth of a grey picture: the picture's core leaves the face out
    and is monochrome, the face in its box is clearly colour."""
    import cv2

    from vidrestore.faces.tone import COLOUR_FACE_LEVELS, face_tone_spread
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        frame = next(iter(r)).image
    small = cv2.resize(frame, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    picture = np.full((360, 640, 3), 120, np.uint8)
    picture[100:100 + small.shape[0], 250:250 + small.shape[1]] = small
    assert tone_spread(picture) < MONOCHROME_LEVELS
    assert face_tone_spread(picture, np.array([292.0, 109.0, 328.0, 154.0])) > COLOUR_FACE_LEVELS
