import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.faces.align import align_faces, apply_affine, estimate_similarity, invert_affine, template
from vidrestore.faces.paste import paste_faces


@settings(max_examples=40, deadline=None)
@given(scale=st.floats(0.3, 3.0), angle=st.floats(-0.6, 0.6), tx=st.floats(-50, 300), ty=st.floats(-50, 300),
       size=st.sampled_from([128, 256, 512]))
def test_align_inverse_roundtrip_under_one_pixel(scale, angle, tx, ty, size):
    c, s = np.cos(angle), np.sin(angle)
    pts = template(size) @ (scale * np.array([[c, -s], [s, c]])).T + np.array([tx, ty])
    m = estimate_similarity(pts.astype(np.float32)[None], template(size))
    back = apply_affine(invert_affine(m), template(size)[None])[0]
    assert np.abs(back - pts).max() < 1.0
    assert np.abs(apply_affine(m, pts[None])[0] - template(size)).max() < 1.0


def _umeyama_svd(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The textbook similarity fit (Umeyama 1991, via the SVD), as the reference for the closed form."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    cov = (dst - mu_d).T @ (src - mu_s) / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.array([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ np.diag(fix) @ vt
    scale = (sig * fix).sum() / ((src - mu_s) ** 2).sum(1).mean()
    return np.concatenate([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]], 1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-200, 200), min_size=10, max_size=10), st.floats(0.2, 4.0), st.floats(-3.1, 3.1),
       st.booleans())
def test_closed_form_similarity_matches_the_svd_solution(noise, scale, angle, mirrored):
    """Noisy and even mirrored landmark sets: the closed form must give Umeyama's rotation (never a
    reflection), scale and translation."""
    c, s = np.cos(angle), np.sin(angle)
    src = template(256) * (np.array([-1.0, 1.0]) if mirrored else 1.0)
    dst = src @ (scale * np.array([[c, -s], [s, c]])).T + np.array(noise).reshape(5, 2) * 0.1 + 30
    got = estimate_similarity(src[None], dst)[0]
    assert np.allclose(got, _umeyama_svd(src, dst), atol=1e-6 * max(1.0, np.abs(dst).max()))
    assert np.linalg.det(got[:, :2]) > 0


def test_pasting_leaves_the_frame_it_was_given_as_it_was():
    """A new frame comes back: the decoded frame is still needed unchanged (the --preview's input side).
    Frames arrive as views of the decoder's HWC arrays, whose HWC view is contiguous again."""
    decoded = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for frame in (torch.from_numpy(decoded).permute(2, 0, 1), torch.from_numpy(decoded).permute(2, 0, 1).contiguous()):
        before = frame.clone()
        lm = torch.from_numpy(template(64) + np.array([40, 20], np.float32))[None]
        crops, m = align_faces(frame, lm, 128)
        out, _ = paste_faces(frame, 1 - crops, m)
        assert torch.equal(frame, before) and not torch.equal(out, frame)


def test_pasting_in_place_gives_the_new_frame_in_the_decoded_images_own_memory():
    """Pass 2 pastes into the decoded image when nothing needs it as it was (no preview): the same
    pixels as a new frame, without a copy of the frame. A frame that is not a view of an HWC image
    is copied as before."""
    decoded = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    lm = torch.from_numpy(template(64) + np.array([40, 20], np.float32))[None]
    crops, m = align_faces(torch.from_numpy(decoded).permute(2, 0, 1), lm, 128)
    expected, boxes = paste_faces(torch.from_numpy(decoded).permute(2, 0, 1), 1 - crops, m)
    image = decoded.copy()
    out, same_boxes = paste_faces(torch.from_numpy(image).permute(2, 0, 1), 1 - crops, m, in_place=True)
    assert torch.equal(out, expected) and same_boxes == boxes
    assert np.array_equal(image, expected.permute(1, 2, 0).numpy())  # written where it was decoded
    planar = torch.from_numpy(decoded.copy()).permute(2, 0, 1).contiguous()
    out, _ = paste_faces(planar, 1 - crops, m, in_place=True)
    assert torch.equal(out, expected) and torch.equal(planar, torch.from_numpy(decoded).permute(2, 0, 1))


@pytest.mark.parametrize("shape", [(48, 40, 3), (48, 40, 4), (48, 40)])
def test_opencv_warps_through_four_channels_give_the_three_channel_result(shape):
    import cv2

    from vidrestore.faces.align import warp_image

    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    m = np.array([[2.3, 0.4, 5.0], [-0.4, 2.3, 7.0]])
    for size in [(130, 110), (20, 16)]:  # enlarged (the four-channel path), shrunk (direct)
        expected = cv2.warpAffine(image, m, (size[1], size[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        got = warp_image(image, m, size, "zeros")
        assert np.array_equal(got.reshape(expected.shape), expected)


def test_paste_of_an_unchanged_smooth_crop_is_invisible():
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 120), torch.linspace(0, 1, 160), indexing="ij")
    frame = torch.stack([xs, ys, (xs + ys) / 2])
    lm = torch.from_numpy(template(64) + np.array([40, 20], np.float32))[None]
    crops, m = align_faces(frame, lm, 128)
    out, _ = paste_faces(frame, crops, m)
    assert (out - frame).abs().max() < 0.02


def test_face_at_the_border_is_handled():
    frame = torch.rand(3, 100, 100)
    lm = torch.from_numpy(template(80) - np.array([30, 30], np.float32))[None]  # partly outside
    crops, m = align_faces(frame, lm, 128)
    assert torch.isfinite(crops).all()
    out, _ = paste_faces(frame, torch.zeros_like(crops), m)
    assert out.shape == frame.shape and (out != frame).any()


@pytest.mark.parametrize("dtype, peak, mean_limit", [(torch.uint8, 255, 0.1), (torch.uint16, 65535, 0.5)])
def test_cpu_and_accelerator_blends_agree(dtype, peak, mean_limit):
    """uint8 frames, and uint16 ones (sources deeper than 8 bits), on both blend paths."""
    from vidrestore.faces.align import invert_affine, shift_affine
    from vidrestore.faces.paste import _blend_cpu, _blend_torch, face_mask

    gen = torch.Generator().manual_seed(0)
    frame = torch.randint(0, peak + 1, (3, 90, 110), dtype=torch.int32, generator=gen).to(dtype)
    lm = torch.from_numpy(template(60) + np.array([25, 15], np.float32))[None]
    crops, m = align_faces(frame, lm, 128)
    restored = torch.rand(crops.shape, generator=gen)
    to_region = invert_affine(shift_affine(m, 5, 3))[0]
    alpha = face_mask(128, frame.device)[0] * 0.8
    on_torch = frame.clone()
    _blend_torch(on_torch, (5, 3, 95, 85), restored[0], alpha, to_region)
    on_cpu = np.ascontiguousarray(frame.permute(1, 2, 0).numpy())
    _blend_cpu(on_cpu, (5, 3, 95, 85), restored[0], alpha, to_region)
    diff = (torch.from_numpy(on_cpu).permute(2, 0, 1).int() - on_torch.int()).abs()
    assert on_cpu.dtype == frame.numpy().dtype and on_torch.dtype == dtype
    assert (on_torch != frame).float().mean() > 0.1  # the face was pasted
    assert diff.max() <= 1 and diff.float().mean() < mean_limit  # one level at most: a uint8 crop is quantised first


def test_colour_matching_gives_the_reference_mean_and_spread_whatever_the_batch():
    from vidrestore.faces.paste import face_mask, match_colour

    gen = torch.Generator().manual_seed(5)
    smooth = F.avg_pool2d(torch.rand(4, 3, 128, 128, generator=gen), 9, 1, 4)  # face-like: no pixel noise
    reference = 0.2 + 0.6 * smooth
    restored = (reference * torch.tensor([1.3, 0.8, 1.0])[:, None, None] + torch.tensor([0.0, 0.1, -0.05])[:, None, None]).clamp(0, 1)
    mask = face_mask(128, torch.device("cpu"))
    out = match_colour(restored, reference, mask)
    w = mask.flatten() / mask.sum()

    def stats(x):
        flat = x.flatten(2)
        mean = (flat * w).sum(-1)
        return mean, ((flat - mean[..., None]) ** 2 * w).sum(-1).sqrt()

    (m_out, s_out), (m_ref, s_ref), (m_in, _) = stats(out), stats(reference), stats(restored)
    assert (m_in - m_ref).abs().max() > 20 / 255  # the drift to undo
    assert (m_out - m_ref).abs().max() < 0.5 / 255
    assert ((s_out - s_ref).abs() / s_ref).max() < 0.02
    for k in range(len(out)):  # one crop's result does not depend on the others in its call
        assert torch.equal(match_colour(restored[k : k + 1], reference[k : k + 1], mask)[0], out[k])


@settings(max_examples=25, deadline=None)
@given(sigma=st.floats(1.0, 8.0), tilt=st.floats(-0.2, 0.2), seed=st.integers(0, 2**16))
def test_kept_coarse_picture_undoes_a_restorers_shading_and_keeps_its_finer_change(sigma, tilt, seed):
    """A restorer that re-shades a face (a tilt of light across it, coarser than ``sigma``) and
    changes its finer detail: with the coarse picture kept, the tilt is gone and the finer change
    is there; each crop comes out as it does alone, whatever else shares the call."""
    import kornia

    from vidrestore.faces.paste import keep_coarse

    gen = torch.Generator().manual_seed(seed)
    reference = 0.3 + 0.4 * F.avg_pool2d(torch.rand(3, 3, 64, 64, generator=gen), 9, 1, 4)
    ramp = torch.linspace(-1, 1, 64)[None, None, None, :] * torch.linspace(0.5, 1.0, 3)[:, None, None, None]
    fine = 0.05 * (torch.rand(3, 3, 64, 64, generator=gen) - 0.5)
    restored = reference + tilt * ramp + fine
    sigmas = torch.tensor([sigma, 1.0, 1.5])
    out = keep_coarse(restored, reference, sigmas)
    inner = (slice(None), slice(None), slice(16, 48), slice(16, 48))  # a face's paste mask fades out before the crop's edge
    left = (out - reference)[inner]
    wide = lambda x: kornia.filters.gaussian_blur2d(x, (33, 33), (8.0, 8.0))[inner]
    assert wide(out - reference).abs().max() < 0.1 * max(abs(tilt), 0.02) + 0.003  # the tilt is gone
    high = lambda x: (x - kornia.filters.gaussian_blur2d(x, (9, 9), (1.0, 1.0)))[inner]
    kept = (high(out - reference) * high(fine)).sum() / high(fine).pow(2).sum()
    assert 0.85 < kept < 1.05 and left.abs().max() < 0.05  # the change finer than a pixel or two stays
    for k in range(3):
        assert torch.equal(keep_coarse(restored[k : k + 1], reference[k : k + 1], sigmas[k : k + 1])[0], out[k])


@settings(max_examples=20, deadline=None)
@given(sigma=st.floats(0.3, 8.0), channels=st.sampled_from([1, 3, 4]), side=st.integers(56, 130), seed=st.integers(0, 2**16))
def test_a_blur_on_the_cpu_is_the_one_accelerators_get(sigma, channels, side, seed):
    """``align.blurred`` runs OpenCV on the CPU and kornia elsewhere: the same Gaussian, the same
    reflected edge, so a face comes out alike on either."""
    import kornia

    from vidrestore.faces.align import blurred

    image = torch.rand(channels, side, side, generator=torch.Generator().manual_seed(seed))
    taps = 2 * int(np.ceil(3 * sigma)) + 1
    want = kornia.filters.gaussian_blur2d(image[None], (taps, taps), (sigma, sigma), border_type="reflect")[0]
    got = blurred(image, sigma)
    assert got.shape == image.shape and (got - want).abs().max() < 2e-3


def test_the_coarse_scale_is_given_in_frame_pixels_and_bounded_in_crop_pixels():
    from vidrestore.faces.paste import coarse_sigmas

    scaled = lambda s: np.array([[s, 0.0, 10.0], [0.0, s, -4.0]])  # the frame s times its size in the crop
    got = coarse_sigmas(np.stack([scaled(0.75), scaled(1.0), scaled(1 / 3), scaled(0.05), scaled(2.0), scaled(8.0)]), 4.0, 128)
    assert got.tolist() == pytest.approx([3.0, 4.0, 2.0, 2.0, 8.0, 8.0])  # 4 px of the frame; 2 crop pixels at least, 8 at most
    assert coarse_sigmas(scaled(1.0)[None], 4.0, 512).tolist() == pytest.approx([8.0])  # a 512 px crop: at least 8


def test_an_anamorphic_frames_face_is_cropped_in_proportion(sample_clip):
    """DV and DVD store a 16:9 picture in 720 px: their faces are squeezed. With the frame's pixel
    aspect the crop is the square-pixel frame's crop; without it, the face comes out narrow."""
    import cv2

    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        frame = next(iter(r)).image
    (face,) = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")).detect([frame])[0]
    h, w = frame.shape[:2]
    squeezed = cv2.resize(frame, (round(w / 1.5), h), interpolation=cv2.INTER_AREA)
    stretch = w / squeezed.shape[1]
    landmarks = face.landmarks[None] / np.array([stretch, 1.0], np.float32)

    def crop(image, points, aspect=(1.0, 1.0)):
        return align_faces(torch.from_numpy(image).permute(2, 0, 1), points, 128, aspect)[0]

    square = crop(frame, face.landmarks[None])
    in_proportion = (crop(squeezed, landmarks, (stretch, 1.0)) - square).abs().mean()
    squashed = (crop(squeezed, landmarks) - square).abs().mean()
    assert in_proportion < 0.01 and squashed > 0.06, (in_proportion, squashed)  # measured: 0.0035 and 0.127


def test_pixel_aspect_follows_the_rotation(sample_clip):
    import dataclasses
    from fractions import Fraction

    from vidrestore.io import probe

    info = probe(sample_clip)
    assert info.pixel_aspect == (1.0, 1.0)
    pal_wide = dataclasses.replace(info, sample_aspect_ratio=Fraction(64, 45))
    assert pal_wide.pixel_aspect == (64 / 45, 1.0)
    assert dataclasses.replace(pal_wide, rotation=90).pixel_aspect == (1.0, 64 / 45)
    assert dataclasses.replace(info, sample_aspect_ratio=Fraction(0, 1)).pixel_aspect == (1.0, 1.0)  # unknown


def _shaded(height: int = 96, width: int = 128) -> torch.Tensor:
    """A picture (3, H, W) in [0, 1]: smooth shading with a bright box's sharp edges across it."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    luma = 0.25 + 0.3 * xs + 0.2 * ys * ys
    luma[height // 4 : height // 2, width // 3 : width // 2] += 0.3
    return torch.stack([luma * 1.05, luma, luma * 0.9]).clamp(0, 1)


@settings(max_examples=25, deadline=None)
@given(sigma=st.floats(1.0, 20.0), seed=st.integers(0, 1000))
def test_noise_level_measures_white_noise_over_shading_and_edges(sigma, seed):
    from vidrestore.faces.paste import noise_level

    luma = _shaded()[1] * 255
    where = torch.ones(luma.shape, dtype=torch.bool)
    assert noise_level(luma, where) < 0.05  # shading and the box's edges are no noise
    noisy = luma + sigma * torch.randn(luma.shape, generator=torch.Generator().manual_seed(seed))
    assert noise_level(noisy, where) == pytest.approx(sigma, rel=0.12)
    assert noise_level(noisy, torch.zeros_like(where)) == 0.0  # nothing to measure


@pytest.mark.parametrize("on_cpu", [True, False])
@pytest.mark.parametrize("blur", [0.0, 1.0, 2.0])
def test_grain_puts_back_the_noise_a_clean_face_lacks_at_its_scale_and_keeps_a_grey_face_grey(on_cpu, blur):
    """A noisy grey frame (8 levels of noise, white or blurred by a Gaussian of 1 or 2 px, as grain
    coarser than a pixel is) with a clean face pasted in: with grain 1 the face has the frame's noise again
    at each scale (pixels, halves, quarters), with 0.5 half of it, with 0 none; the noise is luma
    alone (the face stays grey), does not move its mean, and comes from the seed."""
    import cv2

    from vidrestore.faces.paste import _blend_torch, face_mask, noise_levels

    clean = _shaded(480, 640).mean(0, keepdim=True).expand(3, -1, -1)
    noise = np.random.default_rng(1).normal(0, 1, (480, 640)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), blur) if blur else noise
    frame = ((clean + torch.from_numpy(noise / noise.std() * 8 / 255)).clamp(0, 1) * 255).round().to(torch.uint8)
    lm = torch.from_numpy(template(280) + np.array([180, 100], np.float32))[None]
    crops, m = align_faces(clean, lm, 256)  # the restored face: the picture without its noise
    white, _ = paste_faces(torch.zeros_like(frame), torch.ones_like(crops), m)
    inner = white[0] == 255  # where the paste mask is 1
    assert inner.sum() > 64 * 64  # the median over 256 blocks of 4 at quarters

    edge = (white[0] > 0.3 * 255) & (white[0] < 0.7 * 255)  # the mask's feathered edge

    def pasted(grain: float, seed: int = 7, strength: float = 1.0) -> torch.Tensor:
        if on_cpu:
            return paste_faces(frame, crops, m, torch.tensor([strength]), grain=grain, grains=[(seed, None)])[0].float()
        out = frame.clone()  # the accelerator's blend, over the whole frame
        _blend_torch(out, (0, 0, 640, 480), crops[0], face_mask(256, out.device)[0] * strength, invert_affine(m)[0], "zeros",
                     (grain, seed, True) if grain else None)
        return out.float()

    levels = lambda image: noise_levels(image[1], inner)
    source = levels(frame.float())
    assert source.max() > 2  # the blurred grain shows at halves and quarters more than at the pixels
    seen = source > 1.5
    assert np.all(levels(pasted(0.0))[seen] < 0.35 * source[seen])
    assert levels(pasted(1.0))[seen] == pytest.approx(source[seen], rel=0.2)
    assert levels(pasted(0.5))[seen] == pytest.approx(0.5 * source[seen], rel=0.3)
    # where the blend keeps part of the frame's noise, the grain makes up the rest, no more: along
    # the feathered edge, and over a face pasted at 0.4 (the blend alone keeps 0.71 and 0.6 of it)
    assert levels(pasted(1.0, strength=0.4))[seen] == pytest.approx(source[seen], rel=0.2)
    assert noise_levels(pasted(1.0)[1], edge)[0] == pytest.approx(noise_levels(frame[1].float(), edge)[0], rel=0.15)
    grained = pasted(1.0)
    assert (grained[0] - grained[2]).abs().max() <= 1 and (grained[1] - grained[2]).abs().max() <= 1  # grey
    # zero-mean grain (coarse grain's mean over a face wanders more: fewer grains)
    assert abs(grained[:, inner].mean() - pasted(0.0)[:, inner].mean()) < 0.5 + blur
    assert torch.equal(grained, pasted(1.0)) and not torch.equal(grained, pasted(1.0, seed=8))


def test_a_crop_that_shrinks_a_face_does_not_alias_its_finest_detail():
    """Stripes a pixel wide across a face of 560 px, cropped at 64 px (8.75 times smaller): sampled
    as they are, a crop would be stripes of whatever the samples hit, and change completely when
    the face moves by half a pixel; blurred first (shrink_blur), it is the stripes' mean grey, and
    stays so."""
    from vidrestore.faces.align import shrink_blur

    stripes = torch.from_numpy(np.tile(np.array([0, 255], np.uint8), (3, 600, 400)))  # (3, 600, 800)
    lm = np.asarray(template(560) + np.array([120, 20], np.float32))[None]
    crops, m = align_faces(stripes, lm, 64)
    moved, _ = align_faces(stripes, lm + np.float32(0.5), 64)
    inner = crops[0, :, 8:-8, 8:-8] * 255
    assert shrink_blur(m[0]) > 3
    assert abs(float(inner.mean()) - 127.5) < 3 and float(inner.std()) < 4
    assert float((moved[0] - crops[0])[:, 8:-8, 8:-8].abs().mean()) * 255 < 3
    assert shrink_blur(np.array([[1.0, 0, 0], [0, 1.0, 0]])) == 0 and shrink_blur(np.array([[0.8, 0, 0], [0, 0.8, 0]])) == 0


@pytest.mark.parametrize("on_cpu", [True, False])
def test_pasting_with_detail_keeps_that_share_of_the_frames_detail_finer_than_the_crop(on_cpu):
    """A face of 280 px cropped at 64 px: pasting the crop back enlarges it and loses the fine
    texture; pasting what changed with ``detail`` 1 keeps the frame to the level where nothing
    changed, and adds a change where there is one, the texture still there; ``detail`` 0.5 keeps
    half the texture the enlarged crop lacks."""
    from vidrestore.faces.paste import _blend_torch, face_mask

    rng = np.random.default_rng(4)
    frame = torch.from_numpy(rng.integers(60, 200, (3, 300, 400), dtype=np.uint8))  # texture at the pixels
    lm = torch.from_numpy(template(280) + np.array([60, 10], np.float32))[None]
    crops, m = align_faces(frame, lm, 64)

    def pasted(crop: torch.Tensor, detail: float) -> torch.Tensor:
        crop = crop - detail * crops
        if on_cpu:
            return paste_faces(frame, crop, m, detail=detail)[0].int()
        out = frame.clone()
        _blend_torch(out, (0, 0, 400, 300), crop[0], face_mask(64, out.device)[0], invert_affine(m)[0], "zeros", None, detail)
        return out.int()

    white, _ = paste_faces(torch.zeros_like(frame), torch.ones_like(crops), m)
    inner = white[0] == 255  # where the paste mask is 1
    lost = (pasted(crops, 0.0) - frame.int())[:, inner].float()
    assert lost.abs().mean() > 20  # the texture, lost
    half = (pasted(crops, 0.5) - frame.int())[:, inner].float()
    assert torch.allclose(half, lost / 2, atol=1.0)  # half of it kept, to the rounding
    assert torch.equal(pasted(crops, 1.0), frame.int())
    brighter = pasted(crops + 0.1, 1.0) - frame.int()
    assert brighter[:, inner].min() >= 25 and brighter[:, inner].max() <= 26  # 0.1 of 255, on the texture as it was
    assert torch.equal(brighter[:, white[0] == 0], torch.zeros_like(brighter[:, white[0] == 0]))


def test_each_face_keeps_its_own_share_of_detail():
    """Two faces pasted at once, with a share each, come out as each pasted alone with its share."""
    rng = np.random.default_rng(6)
    frame = torch.from_numpy(rng.integers(60, 200, (3, 300, 640), dtype=np.uint8))
    lm = torch.from_numpy(np.stack([template(280) + np.array([x, 10], np.float32) for x in (20, 330)]))
    crops, m = align_faces(frame, lm, 64)
    shares = [0.2, 0.9]
    restored = crops + 0.05 - torch.tensor(shares)[:, None, None, None] * crops
    together, _ = paste_faces(frame, restored, m, detail=shares)
    alone = frame
    for k in range(2):
        alone, _ = paste_faces(alone, restored[k : k + 1], m[k : k + 1], detail=shares[k])
    assert torch.equal(together, alone)
    lost = [(paste_faces(frame, crops[k : k + 1] - shares[k] * crops[k : k + 1], m[k : k + 1], detail=shares[k])[0].int()
             - frame.int()).abs().float().mean() for k in range(2)]
    assert lost[0] > 2 * lost[1]  # the face with the smaller share kept less of the frame's texture


@pytest.mark.parametrize("on_cpu", [True, False])
def test_a_monochrome_face_keeps_the_frames_luma_detail_alone(on_cpu):
    """A face whose grain may not be coloured (a monochrome track's) keeps the frame's fine luma
    with ``detail`` 1, but not its fine colour: that is the enlarged crop's, as the restored luma
    less the crop's luma leaves it."""
    from vidrestore.faces.paste import _blend_torch, face_mask, luma_of

    rng = np.random.default_rng(5)
    frame = torch.from_numpy(rng.integers(60, 200, (3, 300, 400), dtype=np.uint8))  # colour texture at the pixels
    lm = torch.from_numpy(template(280) + np.array([60, 10], np.float32))[None]
    crops, m = align_faces(frame, lm, 64)
    change = crops - luma_of(crops)[:, None]
    if on_cpu:
        out = paste_faces(frame, change, m, detail=1.0, grains=[(0, (1.0, 1.0, 1.0))])[0].float()
    else:
        out = frame.clone()
        _blend_torch(out, (0, 0, 400, 300), change[0], face_mask(64, out.device)[0], invert_affine(m)[0], "zeros", None, 1.0, (1.0, 1.0, 1.0))
        out = out.float()
    inner = paste_faces(torch.zeros_like(frame), torch.ones_like(crops), m)[0][0] == 255
    source = frame.float()
    assert (luma_of(out) - luma_of(source))[inner].abs().max() <= 2  # the frame's luma, to the rounding
    assert ((out - luma_of(out)) - (source - luma_of(source)))[:, inner].abs().mean() > 10  # its fine colour, not kept


@pytest.mark.parametrize("on_cpu", [True, False])
def test_a_sepia_face_keeps_its_detail_on_its_tone(on_cpu):
    """A sepia frame's fine detail, kept through its luma times the tone's slopes (tone_slopes),
    comes back as it was, colours and all; added alike to every channel it left the tone."""
    from vidrestore.faces.paste import _blend_torch, face_mask, luma_of, tone_slopes

    rng = np.random.default_rng(8)
    grey = torch.from_numpy(rng.uniform(40, 190, (300, 400)).astype(np.float32))
    frame = (grey[None] * torch.tensor([1.0, 0.82, 0.6])[:, None, None] + torch.tensor([14.0, 9.0, 4.0])[:, None, None]).round().to(torch.uint8)
    lm = torch.from_numpy(template(280) + np.array([60, 10], np.float32))[None]
    crops, m = align_faces(frame, lm, 64)
    tints = tone_slopes(crops, face_mask(64, crops.device))
    assert torch.allclose(tints[0] / tints[0, 0], torch.tensor([1.0, 0.82, 0.6]), atol=0.02)
    grey_crops = crops.float().mean(1, keepdim=True).expand(-1, 3, -1, -1)
    flat = torch.full_like(crops, 0.4)
    assert torch.allclose(tone_slopes(torch.cat([grey_crops, flat]), face_mask(64, crops.device)), torch.ones(2, 3), atol=1e-4)
    inner = paste_faces(torch.zeros_like(frame), torch.ones_like(crops), m)[0][0] == 255

    def kept(tint: tuple[float, float, float]) -> torch.Tensor:
        change = crops - torch.tensor(tint)[:, None, None] * luma_of(crops)[:, None]  # a restorer that changes nothing
        if on_cpu:
            return paste_faces(frame, change, m, detail=1.0, grains=[(0, tint)])[0].float()
        out = frame.clone()
        _blend_torch(out, (0, 0, 400, 300), change[0], face_mask(64, out.device)[0], invert_affine(m)[0], "zeros", None, 1.0, tint)
        return out.float()

    off = lambda out: (out - frame.float())[:, inner].abs()
    assert off(kept(tuple(tints[0].tolist()))).max() <= 2  # the frame as it was, to the rounding
    assert off(kept((1.0, 1.0, 1.0))).mean() > 4 * off(kept(tuple(tints[0].tolist()))).mean() + 1


@settings(max_examples=15, deadline=None)
@given(sigma=st.floats(1.0, 20.0), seed=st.integers(0, 1000))
def test_brightness_bands_split_the_area_and_are_measured_as_each_alone(sigma, seed):
    """Bands of equal area by brightness, darkest first, cover the area once at the pixels; the
    noise of an area and its bands measured together is what each measures alone."""
    from vidrestore.faces.paste import GRAIN_BANDS, brightness, brightness_bands, noise_level, noise_levels, scaled_masks

    luma = _shaded(160, 200)[1] * 255
    noisy = luma + sigma * torch.randn(luma.shape, generator=torch.Generator().manual_seed(seed))
    area = torch.zeros(luma.shape, dtype=torch.bool)
    area[20:150, 10:190] = True
    where = scaled_masks(area)
    bands, middles = brightness_bands(brightness(noisy), where)
    assert bands[0].shape == (GRAIN_BANDS, *luma.shape) and middles == sorted(middles)
    assert torch.equal(bands[0].sum(0), area.long())  # each pixel of the area in one band
    assert bands[0].sum((1, 2)).float().std() < 0.05 * area.sum() / GRAIN_BANDS  # of equal area
    together = noise_levels(noisy, [torch.cat([w[None], b]) for w, b in zip(where, bands)])
    assert together.shape == (1 + GRAIN_BANDS, len(where))
    assert together[0] == pytest.approx(noise_levels(noisy, area))
    assert together[1:, 0] == pytest.approx([noise_level(noisy, band) for band in bands[0]], rel=0.05)
    assert together[1:, 0] == pytest.approx(sigma, rel=0.2)


@pytest.mark.parametrize("on_cpu", [True, False])
@pytest.mark.parametrize("coloured", [False, True])
def test_grain_follows_the_noise_from_shadows_to_a_clipped_highlight(on_cpu, coloured):
    """A frame brightening from left to right across the face, its noise 16 levels in black and
    less as it brightens, and a clipped highlight (flat white, no noise) over its right quarter:
    with grain 1 a clean face has the shadows' noise in its shadows and the middle's in its
    middle, and its clipped highlight stays clean (one strength for the whole face gave about 0.5
    of the shadows' noise, and 3 levels of noise to the highlight). Grey noise (the same in each
    channel) is luma noise; ``coloured`` noise (each channel its own) is chroma noise too, whose
    grain follows brightness the same way."""
    from vidrestore.faces.paste import _blend_torch, face_mask, noise_levels

    lm = torch.from_numpy(template(280) + np.array([180, 100], np.float32))[None]
    _, m = align_faces(torch.zeros(3, 480, 640), lm, 256)
    white, _ = paste_faces(torch.zeros(3, 480, 640, dtype=torch.uint8), torch.ones(1, 3, 256, 256), m)
    area = white[0] > 127  # where grain_for measures
    columns = area.any(0).nonzero()[:, 0]
    x0, x1 = int(columns.min()), int(columns.max())
    quarter = (x1 - x0) // 4
    clean = (0.1 + 0.8 * (torch.arange(640.0) - x0) / (x1 - x0)).clamp(0.1, 1).expand(480, 640).clone()
    clean[:, x1 - quarter :] = 1.0
    noise = torch.from_numpy(np.random.default_rng(3).normal(0, 1, (3 if coloured else 1, 480, 640)).astype(np.float32))
    frame = ((clean + noise * 16 * (1 - clean) / 255).clamp(0, 1) * 255).round().to(torch.uint8).expand(3, -1, -1).contiguous()
    crops, m = align_faces(clean.expand(3, -1, -1), lm, 256)
    if on_cpu:
        out = paste_faces(frame, crops, m, grain=1.0, grains=[(7, None)])[0].float()
    else:
        out = frame.clone()  # the accelerator's blend
        _blend_torch(out, (0, 0, 640, 480), crops[0], face_mask(256, out.device)[0], invert_affine(m)[0], "zeros", (1.0, 7, True))
        out = out.float()

    def levels(image: torch.Tensor, start: int, stop: int) -> np.ndarray:
        """Luma and R - Y noise at the pixels over the columns from ``start`` to ``stop``."""
        where = area.clone()
        where[:, :start] = where[:, stop:] = False
        luma = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]
        return np.array([noise_levels(luma, where)[0], noise_levels(image[0] - luma, where)[0]])

    shadows, middle, highlight = (x0, x0 + quarter), (x0 + quarter, x0 + 2 * quarter), (x1 - quarter + 4, x1)
    source = frame.float()
    assert levels(source, *shadows)[0] > 7 and levels(source, *middle)[0] > 5 and levels(source, *highlight).max() < 0.1
    components = 2 if coloured else 1  # grey noise has no R - Y
    assert levels(out, *shadows)[:components] == pytest.approx(levels(source, *shadows)[:components], rel=0.15)
    assert levels(out, *middle)[:components] == pytest.approx(levels(source, *middle)[:components], rel=0.15)
    assert levels(out, *highlight).max() < 0.5
    if not coloured:
        assert levels(out, *shadows)[1] < 0.5  # and gets none


@pytest.mark.parametrize("colour", [True, False])
def test_grain_puts_back_chroma_noise_in_colour_but_not_on_a_monochrome_face(colour):
    """Noise of 6 levels in each channel of a colour frame is luma and chroma noise: a clean face
    gets both back, its R - Y and B - Y as noisy as the frame's; a monochrome track's face
    (``colour`` False, its tone curve kept) gets luma noise alone."""
    from vidrestore.faces.paste import noise_levels

    clean = _shaded(480, 640)
    noise = torch.from_numpy(np.random.default_rng(2).normal(0, 6 / 255, (3, 480, 640)).astype(np.float32))
    frame = ((clean + noise).clamp(0, 1) * 255).round().to(torch.uint8)
    lm = torch.from_numpy(template(280) + np.array([180, 100], np.float32))[None]
    crops, m = align_faces(clean, lm, 256)
    white, _ = paste_faces(torch.zeros_like(frame), torch.ones_like(crops), m)
    inner = white[0] == 255
    luma = lambda image: 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]
    levels = lambda image: np.stack([noise_levels(luma(image), inner), noise_levels(image[0] - luma(image), inner),
                                     noise_levels(image[2] - luma(image), inner)])  # luma, R - Y, B - Y by scale
    source = levels(frame.float())
    assert source[1:, 0].min() > 3  # chroma noise at the pixels
    out = levels(paste_faces(frame, crops, m, grain=1.0, grains=[(7, None if colour else (1.0, 1.0, 1.0))])[0].float())
    assert out[0, 0] == pytest.approx(source[0, 0], rel=0.15)
    if colour:
        assert out[1:, 0] == pytest.approx(source[1:, 0], rel=0.15)
    else:
        assert out[1:, 0].max() < 0.3 * source[1:, 0].min()
