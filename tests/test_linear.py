"""OpenEXR plates (vidrestore.io.linear, vidrestore.io.exr): read and written plane by plane, their
float samples kept, their headers' attributes carried."""

import json
import shutil
import struct

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.cli import main
from vidrestore.io import VideoReader, probe
from vidrestore.io.exr import attributes_of, write_attributes
from vidrestore.io.linear import REC709, linear_frame, samples, srgb_decode, srgb_encode, to_display, to_rec709

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


def test_a_restored_box_keeps_the_plates_highlights_and_grain_beyond_what_the_picture_shows():
    """Where the restored picture is white (or black) in a channel and the plate's sample lies
    above 1 (or below 0) there, the curve clipped it: the plate's pixel stays. Elsewhere in the box
    the picture's value, decoded to linear light, replaces it; outside the box nothing changes."""
    plate = np.array([[[4.0, 0.5, 0.2], [0.3, 0.5, -0.2], [0.3, 0.5, 0.2], [0.3, 0.5, 0.2]]], np.float32).repeat(2, 0)  # (2, 4, 3)
    source = av.VideoFrame.from_ndarray(plate, format="gbrpf32le")
    image = np.array([[[65535, 65535, 9000], [20000, 30000, 0], [30000, 65535, 0], [0, 0, 0]]], np.uint16).repeat(2, 0)
    out = samples(linear_frame(source, image, [(0, 0, 3, 1)]))  # the first row's first three pixels
    assert np.array_equal(out[0, :2], plate[0, :2])  # a highlight under white, grain under black: the plate's
    assert np.array_equal(out[0, 2], srgb_decode(np.float32([30000, 65535, 0]) / 65535).astype(np.float32))
    assert np.array_equal(out[:, 3], plate[:, 3]) and np.array_equal(out[1], plate[1])  # outside the box: the plate


# ACEScg (AP1 primaries, ACES white) to linear Rec. 709 with Bradford adaptation to D65, as published
# with the ACES documentation and by colour-science; rows give R, G, B
ACESCG_TO_REC709 = np.array([[1.70505, -0.62179, -0.08326], [-0.13026, 1.14080, -0.01055], [-0.02400, -0.12897, 1.15297]])
AP1 = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)


def test_a_plates_primaries_are_converted_to_rec709s_for_the_model_and_back():
    assert np.allclose(to_rec709(AP1), ACESCG_TO_REC709, atol=2e-5)
    assert np.array_equal(to_rec709(()), np.eye(3)) and np.array_equal(to_rec709(REC709), np.eye(3))
    rng = np.random.default_rng(4)
    rec709 = rng.uniform(0.05, 0.9, (8, 8, 3)).astype(np.float32)  # colours both spaces hold
    plate = (rec709 @ np.linalg.inv(to_rec709(AP1)).T).astype(np.float32)
    plate[0, 0] = [0.02, 0.9, 0.02]  # a saturated AP1 green, outside Rec. 709: negative there, clipped to black
    source = av.VideoFrame.from_ndarray(plate, format="gbrpf32le")
    shown, _ = to_display(source, deep=True, chromaticities=AP1)
    assert np.abs(shown.astype(np.float64) / 65535 - srgb_encode(rec709.astype(np.float64)))[1:].max() < 1e-4
    back = samples(linear_frame(source, shown, None, AP1))
    assert np.array_equal(back[0, 0], plate[0, 0])  # clipped by the display: the plate's own
    assert np.allclose(back.reshape(-1, 3)[1:], plate.reshape(-1, 3)[1:], rtol=1e-3, atol=1e-4)


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
    pattern = write_plate(folder / "shot_%04d.exr", images, "half", alpha=True)
    for n in range(1001, 1009):  # what a studio's plate says that FFmpeg's encoder does not write
        assert write_attributes(folder / f"shot_{n}.exr", plate_attributes(n))
    return pattern


ACESCG = struct.pack("<8f", *AP1)  # as OpenEXR stores them


def plate_attributes(number):
    """Chromaticities, a frame rate, a timecode of its own and a studio's string, for picture ``number``."""
    return [(b"chromaticities", b"chromaticities", ACESCG), (b"framesPerSecond", b"rational", struct.pack("<iI", 24, 1)),
            (b"timeCode", b"timecode", struct.pack("<II", 0x01000000 + number, 0)), (b"shot", b"string", b"sh010")]


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
        carried = attributes_of(tmp_path / f"restored_{n}.exr")
        assert all(carried[name.decode()] == value for name, _, value in plate_attributes(n))  # its own picture's
        assert carried["comments"].startswith(b"faces restored by vidrestore")
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


def test_attributes_written_into_a_header_leave_the_pixels_as_they_were(plate, tmp_path):
    """Inserting attributes moves the pixel data: the offset table after the header is re-pointed,
    and FFmpeg decodes the same samples. A value set again replaces the old one in place."""
    picture = tmp_path / "p.exr"
    shutil.copy(plate.parent / "shot_1001.exr", picture)
    before = read_plate(picture)[1]
    assert write_attributes(picture, [(b"comments", b"string", b"x" * 300), (b"shot", b"string", b"sh020")])
    assert np.array_equal(read_plate(picture)[1], before)
    said = attributes_of(picture)
    assert said["comments"] == b"x" * 300 and said["shot"] == b"sh020" and said["chromaticities"] == ACESCG
    assert list(said).index("shot") < list(said).index("comments")  # replaced in place, the new one after
    assert probe(plate).stated_rate == 24  # the plate's framesPerSecond times a video made from it
    assert np.allclose(probe(plate).chromaticities, AP1)  # and its primaries are read
    picture.write_bytes(b"not an OpenEXR file")
    assert not write_attributes(picture, [(b"shot", b"string", b"sh030")])


def raw_exr(path, planes):
    """An uncompressed scan-line OpenEXR file of float channels ``planes`` (name -> (H, W) array),
    written by hand: FFmpeg's encoder writes R, G, B and A alone."""
    height, width = next(iter(planes.values())).shape
    names = sorted(planes)
    attribute = lambda name, kind, value: name + b"\0" + kind + b"\0" + struct.pack("<i", len(value)) + value
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 2, 0, 1, 1) for n in names) + b"\0"
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + b"".join([
        attribute(b"channels", b"chlist", chlist), attribute(b"compression", b"compression", b"\0"),
        attribute(b"dataWindow", b"box2i", window), attribute(b"displayWindow", b"box2i", window),
        attribute(b"lineOrder", b"lineOrder", b"\0"), attribute(b"pixelAspectRatio", b"float", struct.pack("<f", 1)),
        attribute(b"screenWindowCenter", b"v2f", struct.pack("<2f", 0, 0)), attribute(b"screenWindowWidth", b"float", struct.pack("<f", 1))]) + b"\0"
    line = 8 + 4 * width * len(names)
    table = struct.pack(f"<{height}Q", *(len(header) + 8 * height + y * line for y in range(height)))
    rows = b"".join(struct.pack("<ii", y, line - 8) + b"".join(planes[n][y].astype("<f4").tobytes() for n in names) for y in range(height))
    path.write_bytes(header + table + rows)
    return path


def test_a_plate_with_channels_beyond_colour_and_alpha_is_refused_before_any_work(tmp_path, capsys):
    """FFmpeg reads R, G, B and A alone: a depth channel would not be in the restored pictures."""
    rng = np.random.default_rng(3)
    planes = {name: rng.random((16, 24), np.float32) for name in ("R", "G", "B", "Z")}
    for n in (1, 2):
        raw_exr(tmp_path / f"d_{n}.exr", planes)
    assert read_plate(tmp_path / "d_1.exr")[0] == "gbrpf32le"  # FFmpeg reads the hand-written file, Z left out
    assert np.array_equal(read_plate(tmp_path / "d_1.exr")[1], np.stack([planes[c] for c in "RGB"], -1))
    out = tmp_path / "out"
    out.mkdir()
    assert main([str(tmp_path / "d_%d.exr"), str(out / "r_%d.exr"), "--model", "none", "--detector", "dlib", "--quiet"]) == 2
    assert "d_1.exr holds channels beyond R, G, B and A (Z)" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_a_plate_with_no_face_is_copied_file_for_file(tmp_path):
    rng = np.random.default_rng(5)
    images = [(rng.random((24, 32, 4)) * 3 - 0.5).astype(np.float32) for _ in range(3)]
    write_plate(tmp_path / "bg_%02d.exr", images, "half", alpha=True, first=7)
    for n in (7, 8, 9):
        assert write_attributes(tmp_path / f"bg_{n:02d}.exr", plate_attributes(n))
    out = tmp_path / "out"
    out.mkdir()
    assert main([str(tmp_path / "bg_%02d.exr"), str(out / "bg_%02d.exr"), "--model", "none", "--detector", "dlib", "--quiet"]) == 0
    assert [(out / f"bg_{n:02d}.exr").read_bytes() for n in (7, 8, 9)] == [(tmp_path / f"bg_{n:02d}.exr").read_bytes() for n in (7, 8, 9)]
