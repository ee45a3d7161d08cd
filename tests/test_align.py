import numpy as np
import torch
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
    m = estimate_similarity(torch.from_numpy(pts.astype(np.float32))[None], torch.from_numpy(template(size)))
    back = apply_affine(invert_affine(m), torch.from_numpy(template(size))[None])[0].numpy()
    assert np.abs(back - pts).max() < 1.0
    assert np.abs(apply_affine(m, torch.from_numpy(pts.astype(np.float32))[None])[0].numpy() - template(size)).max() < 1.0


def test_paste_of_an_unchanged_smooth_crop_is_invisible():
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 120), torch.linspace(0, 1, 160), indexing="ij")
    frame = torch.stack([xs, ys, (xs + ys) / 2])
    lm = torch.from_numpy(template(64) + np.array([40, 20], np.float32))[None]
    crops, m = align_faces(frame, lm, 128)
    out = paste_faces(frame, crops, m)
    assert (out - frame).abs().max() < 0.02


def test_face_at_the_border_is_handled():
    frame = torch.rand(3, 100, 100)
    lm = torch.from_numpy(template(80) - np.array([30, 30], np.float32))[None]  # partly outside
    crops, m = align_faces(frame, lm, 128)
    assert torch.isfinite(crops).all()
    out = paste_faces(frame, torch.zeros_like(crops), m)
    assert out.shape == frame.shape and (out != frame).any()
