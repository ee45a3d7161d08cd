"""OpenEXR plates (vidrestore.io.linear): read and written plane by plane, their float samples kept."""

import json

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.cli import main
from vidrestore.io import VideoReader
from vidrestore.io.linear import linear_frame, samples, srgb_decode, srgb_encode

HIGHLIGHT, NEGATIVE = 6.0, -0.25  # samples no display-referred picture holds


def write_plate(pattern, images, sample_type="half", alpha=False, first=1001):
    """An OpenEXR sequence (ZIP) of linear float ``images`` (H, W, 3 or 4), numbered from ``first``."""
    fmt = "gbrapf32le" if alpha else "gbrpf32le"
    with av.open(str(pattern), "w", format="image2", options={"start_number": str(first)}) as out:
        stream = out.add_stream("exr", rate=25)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], fmt
        stream.options = {"format": sample_type, "compression": "zip16"}
        for image in images:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image, np.float32), format=fmt)))
        out.mux(stream.encode())
    return pattern


def read_plate(path):
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return frame.format.name, samples(frame)


def exr_compression(path) -> int:
    """The compression attribute of an OpenEXR file's header (3: ZIP)."""
    data = path.read_bytes()
    at = data.index(b"compression\x00compression\x00") + len(b"compression\x00compression\x00")
    return data[at + 4]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=32))
def test_the_srgb_curve_and_its_inverse_undo_each_other(values):
    x = np.array(values)
    assert np.allclose(srgb_decode(srgb_encode(x)), x, atol=1e-9)
    assert np.all(np.diff(srgb_encode(np.sort(x))) >= 0)


@pytest.mark.parametrize("sample_type, alpha", [("half", False), ("half", True), ("float", False)])
def test_a_plates_samples_are_read_and_written_as_they_are(tmp_path, sample_type, alpha):
    """Highlights above 1 and negative samples survive reading and a rewrite with nothing changed:
    FFmpeg's scaler clamped them to [0, 1] over the whole picture."""
    rng = np.random.default_rng(1)
    image = (rng.random((6, 10, 4 if alpha else 3)) * 8 - 1).astype(np.float32)
    plate = write_plate(tmp_path / "p_%02d.exr", [image], sample_type, alpha, first=1)
    name, read = read_plate(tmp_path / "p_01.exr")
    assert name == ("gbrapf16le" if alpha else "gbrpf16le") if sample_type == "half" else name == "gbrpf32le"
    precision = 2.0 ** -10 if sample_type == "half" else 0.0  # FFmpeg truncates to half
    assert np.all(np.abs(read - image) <= precision * np.abs(image) + 1e-7)
    assert read.max() > 6 and read.min() < -0.9  # not clamped to [0, 1]
    with av.open(str(tmp_path / "p_01.exr")) as c:
        assert np.array_equal(samples(linear_frame(next(c.decode(video=0)))), read)
    assert plate.name == "p_%02d.exr"


def test_the_detector_and_the_model_see_the_plate_encoded_with_the_srgb_curve(tmp_path):
    image = np.full((8, 12, 3), 0.18, np.float32)  # mid grey in linear light
    image[0, 0] = HIGHLIGHT
    write_plate(tmp_path / "g_%d.exr", [image], "float", first=1)
    with VideoReader(tmp_path / "g_%d.exr", keep_depth=True) as r:
        deep = next(iter(r)).image
    with VideoReader(tmp_path / "g_%d.exr", max_side=6) as r:
        small = next(iter(r))
    assert deep.dtype == np.uint16 and abs(int(deep[4, 6, 0]) - round(srgb_encode(np.float64(0.18)) * 65535)) <= 1  # 0.46, not 0.18
    assert tuple(deep[0, 0]) == (65535, 65535, 65535)
    assert small.image.dtype == np.uint8 and small.image.shape == (4, 6, 3) and small.scale == (0.5, 0.5)


@pytest.fixture(scope="module")
def plate(sample_clip, tmp_path_factory):
    """The sample clip as a linear OpenEXR plate with alpha: highlights above 1 in the top left
    corner and negative samples in the bottom right, away from the face."""
    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r][:8]
    rng = np.random.default_rng(2)
    images = []
    for frame in frames:
        linear = srgb_decode(frame.astype(np.float32) / 255).astype(np.float32)
        linear[:12, :12], linear[-6:, -6:] = HIGHLIGHT, NEGATIVE
        images.append(np.concatenate([linear, rng.random(linear.shape[:2] + (1,), np.float32)], -1))
    folder = tmp_path_factory.mktemp("plate")
    return write_plate(folder / "shot_%04d.exr", images, "half", alpha=True)


def test_an_exr_plate_is_restored_into_exr_and_keeps_every_sample_away_from_the_faces(plate, tmp_path, capsys):
    out = tmp_path / "restored_%04d.exr"
    report = tmp_path / "report.json"
    side = tmp_path / "side.mp4"
    assert main([str(plate), str(out), "--model", "none", "--detector", "dlib", "--quiet", "--json", str(report), "--preview", str(side)]) == 0
    said = json.loads(report.read_text())
    assert said["tracks"], "the face is found in the plate"
    assert said["encoder"] == "exr, gbrapf32le, samples half, compression zip16"
    assert sorted(p.name for p in tmp_path.glob("restored_*.exr")) == [f"restored_{n}.exr" for n in range(1001, 1009)]
    changed = []
    for n in range(1001, 1009):
        name_in, before = read_plate(plate.parent / f"shot_{n}.exr")
        name_out, after = read_plate(tmp_path / f"restored_{n}.exr")
        assert name_out == name_in == "gbrapf16le"  # half samples, alpha kept
        assert exr_compression(tmp_path / f"restored_{n}.exr") == 3  # ZIP
        assert np.array_equal(after[..., 3], before[..., 3])
        assert np.all(after[:12, :12, :3] == HIGHLIGHT) and np.all(after[-6:, -6:, :3] == NEGATIVE)
        moved = np.any(after != before, axis=-1)
        changed.append(moved.mean())
        ys, xs = np.nonzero(moved)
        assert len(ys) and 0.15 < xs.mean() / moved.shape[1] < 0.85  # around the face, not all over
    assert 0 < max(changed) < 0.4
    with av.open(str(side)) as c:  # the preview shows the plate as displayed: sRGB-encoded, tagged so
        stream = c.streams.video[0]
        assert (stream.width, stream.codec_context.color_trc) == (2 * before.shape[1], 13) and stream.frames == 8


def test_exr_goes_only_into_exr_and_only_plates_into_exr(plate, sample_clip, tmp_path, capsys):
    """Linear light into a display-referred format would clip the plate's highlights, and a
    display-referred video written as OpenEXR would be taken for linear light: both are refused
    before any work, with one line, and nothing is written."""
    assert main([str(plate), str(tmp_path / "out.mp4"), "--model", "none", "--detector", "dlib", "--quiet"]) == 2
    assert "write OpenEXR pictures" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main([str(sample_clip), str(tmp_path / "f_%04d.exr"), "--model", "none", "--detector", "dlib", "--quiet"]) == 2
    assert "OpenEXR pictures are written from OpenEXR plates" in capsys.readouterr().err.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


def test_a_batch_over_a_folder_finds_its_plate_and_restores_it_into_exr(plate, tmp_path):
    out = tmp_path / "out"
    assert main(["batch", str(plate.parent), "--out", str(out), "--model", "none", "--detector", "dlib", "--quiet"]) == 0
    written = sorted(out.rglob("*.exr"))
    assert [p.name for p in written] == [f"shot_{n}.exr" for n in range(1001, 1009)]
    assert read_plate(written[0])[0] == "gbrapf16le"
