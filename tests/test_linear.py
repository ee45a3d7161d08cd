"""Pictures that are not display-referred (vidrestore.io.linear, vidrestore.io.exr): OpenEXR plates,
read and written plane by plane, their float samples kept, their headers' attributes carried; film
scans in printing density (Cineon log DPX), shown to the detector and the model through their curve;
HDR video (PQ, HLG) and cameras' log video (S-Log3, V-Log), shown as an SDR grade of it and
written back in its own light."""

import json
import shutil
import struct
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.cli import main
from vidrestore.io import EncodeOptions, VideoReader, VideoWriter, probe
from vidrestore.io.exr import attributes_of, write_attributes
from vidrestore.io.linear import (
    BT2020,
    CINEMA_GAMUT,
    CINEON_BLACK,
    CINEON_WHITE,
    D_GAMUT,
    LIGHT_WORDS,
    P3_D65,
    REC709,
    REFERENCE_WHITE_NITS,
    S_GAMUT,
    Light,
    display_view,
    from_light,
    light_of,
    plate_frame,
    samples,
    srgb_decode,
    srgb_encode,
    to_display,
    to_light,
    to_rec709,
    video_chromaticities,
    written_back,
)

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
        assert np.array_equal(samples(plate_frame(next(c.decode(video=0)), Light.LINEAR)), read)
    assert plate.name == "p_%02d.exr"


def test_a_restored_box_keeps_the_plates_highlights_and_grain_beyond_what_the_picture_shows():
    """Where the restored picture is white (or black) in a channel and the plate's sample lies
    above 1 (or below 0) there, the curve clipped it: the plate's pixel stays. Elsewhere in the box
    the picture's value, decoded to linear light, replaces it; outside the box nothing changes."""
    plate = np.array([[[4.0, 0.5, 0.2], [0.3, 0.5, -0.2], [0.3, 0.5, 0.2], [0.3, 0.5, 0.2]]], np.float32).repeat(2, 0)  # (2, 4, 3)
    source = av.VideoFrame.from_ndarray(plate, format="gbrpf32le")
    image = np.array([[[65535, 65535, 9000], [20000, 30000, 0], [30000, 65535, 0], [0, 0, 0]]], np.uint16).repeat(2, 0)
    out = samples(plate_frame(source, Light.LINEAR, image, [(0, 0, 3, 1)]))  # the first row's first three pixels
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
    shown, _ = to_display(source, Light.LINEAR, deep=True, chromaticities=AP1)
    assert np.abs(shown.astype(np.float64) / 65535 - srgb_encode(rec709.astype(np.float64)))[1:].max() < 1e-4
    back = samples(plate_frame(source, Light.LINEAR, shown, None, AP1))
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
    corner, negative samples in the bottom right and a render's NaN samples in the top right,
    away from the face."""
    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r][:8]
    rng = np.random.default_rng(2)
    images = []
    for frame in frames:
        linear = srgb_decode(frame.astype(np.float32) / 255).astype(np.float32)
        linear[:12, :12], linear[-6:, -6:], linear[:6, -6:] = HIGHLIGHT, NEGATIVE, np.nan
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
        assert np.isnan(after[:6, -6:, :3]).all()
        moved = np.any((after != before) & ~np.isnan(before), axis=-1)
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
    assert "OpenEXR pictures are written from float linear light (OpenEXR plates, float TIFF pictures)" in capsys.readouterr().err.strip().splitlines()[-1]
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
    assert np.array_equal(read_plate(picture)[1], before, equal_nan=True)
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


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 1023), min_size=1, max_size=64))
def test_printing_density_and_linear_light_undo_each_other(codes):
    values = np.array(codes) / 1023
    assert np.allclose(from_light(to_light(values, Light.CINEON), Light.CINEON), values, atol=1e-9)
    assert np.all(np.diff(to_light(np.sort(values), Light.CINEON)) >= 0)
    assert np.array_equal(to_light(values, Light.LINEAR), values)


def test_kodaks_black_white_and_grey_points_are_where_a_compositor_puts_them():
    light = to_light(np.array([CINEON_BLACK, CINEON_WHITE, 470, 1023]) / 1023, Light.CINEON)
    assert light[0] == pytest.approx(0, abs=1e-12) and light[1] == pytest.approx(1)
    assert light[2] == pytest.approx(0.18, abs=0.005)  # code 470: the 18% grey card
    assert light[3] == pytest.approx(13.5, abs=0.1)  # the headroom a negative holds above white


def log_frame(codes):
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(codes, np.uint16), format="gbrp10le")


def test_a_log_scan_is_shown_through_its_curve_and_every_code_comes_back_from_the_deep_view():
    """Each of the 1024 codes: shown as the sRGB encoding of the light it stands for (black at 95,
    white at 685, as no video's code values would be), and a deep view written back unchanged gives
    the scan's own codes, to the bit. In a box where a restored picture is white, a code above
    white (light above 1, which the view clipped) stays the scan's; others take the picture's."""
    codes = np.arange(1024, dtype=np.uint16).reshape(32, 32, 1).repeat(3, -1)
    source = log_frame(codes)
    shown, scale = to_display(source, Light.CINEON)
    expected = (srgb_encode(to_light(codes / 1023, Light.CINEON)) * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(shown, expected) and scale == (1.0, 1.0)
    assert shown.reshape(-1, 3)[CINEON_BLACK].tolist() == [0] * 3 and shown.reshape(-1, 3)[CINEON_WHITE].tolist() == [255] * 3
    assert abs(int(shown.reshape(-1, 3)[470, 0]) - 118) <= 1  # 18% grey, 0.46 in sRGB: mid-screen, not 470/1023 of it
    deep, _ = to_display(source, Light.CINEON, deep=True)
    assert np.array_equal(plate_frame(source, Light.CINEON, deep, None).to_ndarray(), codes)
    white = np.full_like(deep, 65535)
    out = plate_frame(source, Light.CINEON, white, [(0, 0, 32, 32)]).to_ndarray().reshape(-1, 3)
    assert np.array_equal(out[CINEON_WHITE + 1:], codes.reshape(-1, 3)[CINEON_WHITE + 1:])  # highlights: the scan's
    assert np.all(out[CINEON_BLACK:CINEON_WHITE + 1] == CINEON_WHITE)  # the rest: white, as the picture is
    small, scale = to_display(source, Light.CINEON, max_side=16)
    assert small.shape == (16, 16, 3) and scale == (0.5, 0.5)


@pytest.mark.parametrize("pix_fmt", ["rgb24", "gbrp12le", "rgb48be", "rgba64le"])
def test_every_code_of_a_log_scan_of_any_depth_comes_back_from_its_view_written_back_unchanged(pix_fmt):
    """8-bit views of 8-bit scans, 16-bit views of deeper ones (as pass 2 reads them): written back
    unchanged, every code is the scan's own, and alpha stays."""
    full = 2 ** max(c.bits for c in av.VideoFormat(pix_fmt).components) - 1
    codes = np.arange(full + 1).reshape(-1, 16, 1).repeat(len(av.VideoFormat(pix_fmt).components), -1).astype(np.uint8 if full == 255 else np.uint16)
    source = av.VideoFrame.from_ndarray(codes, format=pix_fmt)
    shown, _ = to_display(source, Light.CINEON, deep=full > 255)
    assert shown.shape == codes.shape[:2] + (3,)
    assert np.array_equal(plate_frame(source, Light.CINEON, shown, None).to_ndarray(), codes)


def test_what_the_samples_stand_for_is_told_by_format_transfer_and_header():
    assert light_of("gbrpf16le", 2, False) is Light.LINEAR  # an OpenEXR plate
    assert light_of("gbrp10le", 2, True) is Light.CINEON  # a DPX that says printing density
    assert light_of("gbrp10le", 8, False) is Light.LINEAR and light_of("rgb48le", 8, False) is Light.LINEAR  # RGB tagged linear
    assert light_of("yuv420p", 8, False) is Light.DISPLAY  # video tagged linear is mistagged: shown as it is
    assert light_of("gbrp10le", 2, False) is Light.DISPLAY and light_of("rgb24", 1, False) is Light.DISPLAY
    assert light_of("yuv420p10le", 16, False) is Light.PQ and light_of("yuv420p10le", 18, False) is Light.HLG  # HDR video
    assert light_of("rgb48le", 16, False) is Light.PQ and light_of("yuv420p10le", 14, False) is Light.DISPLAY  # BT.2020 SDR


@pytest.fixture(scope="module")
def log_scan(sample_clip, tmp_path_factory):
    """The sample clip as a 10-bit DPX scan in printing density, its headers saying so, with a
    highlight above white in the top left corner, away from the face."""
    from conftest import dpx_scan

    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r][:8]
    scans = []
    for frame in frames:
        light = srgb_decode(frame.astype(np.float64) / 255)
        codes = np.clip(np.rint(from_light(light, Light.CINEON) * 1023), 0, 1023).astype(np.uint16)
        codes[:10, :10] = 900
        scans.append(codes)
    return dpx_scan(tmp_path_factory.mktemp("log") / "s_%07d.dpx", scans, 86400, 24, "01:00:00:00", transfer=1)


def test_a_log_scans_faces_are_restored_on_its_display_view_and_written_back_in_printing_density(log_scan, tmp_path):
    """A face comes out as the restorer's negative of it as shown (not of its log codes: a flat
    grey picture that the model never learned faces from), written back in printing density.
    Every sample away from the face is the scan's own, and the output's headers still say
    printing density, where FFmpeg's encoder writes "unspecified video"."""
    import torch
    from conftest import Negative, paste_strength

    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.pipeline import PipelineConfig, analyse, run

    info = probe(log_scan)
    assert info.light is Light.CINEON and info.pix_fmt == "gbrp10le"
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    cfg = PipelineConfig(face_size=64, colour_match=False, keep_coarse=0.0)
    [track] = analyse(log_scan, cfg, det).tracks
    out = tmp_path / "r_%07d.dpx"
    report = run(log_scan, out, cfg, Negative(64), torch.device("cpu"), detector=det)
    assert any(note.startswith("the pictures hold printing density") for note in report.notes)
    for n in range(8):
        before, after = (read_plate(folder / f"{stem}_{86400 + n:07d}.dpx")[1] for folder, stem in [(log_scan.parent, "s"), (tmp_path, "r")])
        assert after.dtype == np.uint16 and after.max() <= 1023
        shown_before, shown_after = (to_display(log_frame(c), Light.CINEON)[0] for c in (before, after))
        assert paste_strength(shown_before, shown_after, track.landmarks_at(n)) > 0.9
        moved = np.any(after != before, axis=-1)
        ys, xs = np.nonzero(moved)
        x0, y0, x1, y1 = track.boxes[n - track.start]
        assert 0 < moved.mean() < 0.5 and x0 - 16 <= xs.mean() <= x1 + 16 and y0 - 16 <= ys.mean() <= y1 + 16  # at the face
        assert np.array_equal(after[:10, :10], before[:10, :10])  # the highlight above white: the scan's
        assert (tmp_path / f"r_{86400 + n:07d}.dpx").read_bytes()[801] == 1


def test_light_cineon_restores_a_log_scan_whose_headers_say_nothing_as_one_whose_headers_say_so(log_scan, sample_clip, plate, tmp_path, capsys):
    """Not every scanner states printing density: its pictures say "unspecified video" (FFmpeg's
    own code) or "user-defined". --light cineon reads them as a scan that says so is read: the
    same pictures come out, to the bit. --light is refused, with one line and nothing written,
    where it cannot hold: on video, and on a plate's float samples (linear light whatever is said)."""
    silent = tmp_path / "silent"
    silent.mkdir()
    for picture in log_scan.parent.glob("*.dpx"):
        data = bytearray(picture.read_bytes())
        data[801:803] = bytes([4, 4])  # unspecified video
        (silent / picture.name).write_bytes(bytes(data))
    assert probe(silent / log_scan.name).light is Light.DISPLAY
    said, told = tmp_path / "said", tmp_path / "told"
    for folder in (said, told):
        folder.mkdir()
    options = ["--model", "none", "--detector", "dlib", "--quiet"]
    assert main([str(log_scan), str(said / "r_%07d.dpx"), *options]) == 0
    assert main([str(silent / log_scan.name), str(told / "r_%07d.dpx"), *options, "--light", "cineon", "--json", str(tmp_path / "r.json")]) == 0
    told_report = json.loads((tmp_path / "r.json").read_text())
    assert told_report["light"] == "cineon"
    assert any(note.startswith("the pictures hold printing density (Cineon log), as --light says") for note in told_report["notes"])
    pictures = sorted(p.name for p in said.iterdir())
    assert len(pictures) == 8 and pictures == sorted(p.name for p in told.iterdir())
    assert all(np.array_equal(read_plate(said / name)[1], read_plate(told / name)[1]) for name in pictures)
    assert main([str(silent / log_scan.name), str(tmp_path / "shown.mkv"), *options, "--light", "display"]) == 0  # as before
    measured = []  # `eval video` takes it too: the silent scan measured as the scan that says it
    for scan, light in [(log_scan, []), (silent / log_scan.name, ["--light", "cineon"])]:
        assert main(["eval", "video", str(scan), str(said / "r_%07d.dpx"), "--detector", "dlib", "--json", str(tmp_path / "e.json"), *light]) == 0
        measured.append(json.loads((tmp_path / "e.json").read_text())["tracks"])
    assert measured[0] == measured[1] and len(measured[0]) == 1
    capsys.readouterr()
    for source, output, light, said_in_error in [(sample_clip, "refused.mkv", "cineon", "yuv420p (YUV), not RGB: it takes display or"),
                                                 (plate, "refused_%04d.exr", "display", "float samples are linear light"),
                                                 (sample_clip, "refused.mkv", "sunlight", "light: expected one of auto, display, linear, cineon")]:
        before = sorted(tmp_path.iterdir())
        assert main([str(source), str(tmp_path / output), *options, "--light", light]) != 0
        assert said_in_error in capsys.readouterr().err.strip().splitlines()[-1]
        assert sorted(tmp_path.iterdir()) == before


HDR = [Light.PQ, Light.HLG]
LOGS = [Light.SLOG3, Light.SLOG3_SGAMUT3, Light.SLOG2, Light.VLOG, Light.LOGC3, Light.LOGC4, Light.APPLE_LOG, Light.CLOG3, Light.CLOG2, Light.CLOG, Light.DLOG]
VIDEO = [*HDR, *LOGS]


def test_hdr_signals_stand_for_the_light_bt2100_and_bt2408_give_them():
    """PQ: 10,000 cd/m2 at the top code, reference white (203 cd/m2) at 58%. HLG on its nominal
    1000 cd/m2 display: 1000 at the top, reference white at 75%. The view shows reference white near
    white (the shoulder takes it from 0.75 up), 0.75 of it as it is, and nothing at white's top
    code below twice reference white."""
    def nits(signal, light):
        return to_light(np.full((1, 3), signal), light)[0, 0] * REFERENCE_WHITE_NITS

    assert abs(nits(1.0, Light.PQ) - 10000) < 1e-6 and abs(from_light(np.full((1, 3), 1.0), Light.PQ)[0, 0] - 0.5806) < 1e-3
    assert abs(nits(1.0, Light.HLG) - 1000) < 1e-3 and abs(nits(0.75, Light.HLG) - REFERENCE_WHITE_NITS) < 1.5
    grey = display_view(from_light(np.full((1, 1, 3), 1.0), Light.PQ), Light.PQ, (), deep=True)  # reference white
    assert 0.93 < grey[0, 0, 0] / 65535 < 0.99  # white, a little below its top: the shoulder's
    knee = from_light(np.full((1, 1, 3), 0.75), Light.PQ)
    assert np.array_equal(display_view(knee, Light.PQ, (), True), (srgb_encode(np.full((1, 1, 3), 0.75)) * 65535 + 0.5).astype(np.uint16))
    assert display_view(from_light(np.full((1, 1, 3), 2.0), Light.PQ), Light.PQ, (), True).max() < 65535


def test_camera_logs_put_grey_and_white_cards_and_black_on_their_makers_codes():
    """Sony's S-Log3: black at 10-bit code 95, a grey card at 420, a white card at 598; Panasonic's
    V-Log: 128, 433 and 602, as recorded in legal-range video (FFmpeg stretches 64-940 to 0-1).
    ARRI's LogC3 at EI 800: black at 0.0928 of its signal and a grey card at 0.391 (codes 95 and
    400 of a full-range picture); ARRI's LogC4: black at 95/1023 and a grey card at 0.2784 (ARRI's
    LogC4 specification). Canon Log 3: 128, 351 and 577 (Canon's input transforms, v1.2), and no
    step where its straight part meets its logs; Canon Log 2: 3.5%, 39.2% and 58.4% of the legal
    range (codes 95, 407 and 575), Canon Log 7.3%, 32.8% and 62.7% (128, 351, 614); Sony's S-Log2:
    90, 347 and 582, straight below black without a step; D-Log: 0.0929, 0.399 and 0.573 of its signal. Apple Log goes on from its parabola to its log2 at
    reflectance 0.01 without a step. Their gamuts come with them, whatever the primaries tag says:
    Apple Log's is BT.2020's, Canon Log 3's and Canon Log 2's Canon's Cinema Gamut, D-Log's DJI's
    D-Gamut, S-Log2's S-Gamut."""
    cards = np.array([0.0, 0.18, 0.9])
    for light, codes in [(Light.SLOG3, [95, 420, 598]), (Light.VLOG, [128, 433, 602]), (Light.CLOG3, [128, 351.3, 577.5]),
                         (Light.SLOG2, [90.3, 347.3, 582.0]), (Light.CLOG2, [95.0, 407.4, 575.2]), (Light.CLOG, [128.0, 351.3, 613.6])]:
        assert np.allclose(64 + 876 * from_light(cards, light), codes, atol=0.5)
        assert np.allclose(to_light((np.array(codes) - 64) / 876, light), cards, rtol=5e-3, atol=1e-4)  # codes rounded
    assert np.allclose(1023 * from_light(cards[:2], Light.LOGC3), [95, 400], atol=0.5)
    assert np.allclose(from_light(cards[:2], Light.LOGC4), [95 / 1023, 0.2784], atol=5e-5)
    assert abs(from_light(np.array([0.01 - 1e-9]), Light.APPLE_LOG)[0] - from_light(np.array([0.01]), Light.APPLE_LOG)[0]) < 1e-6
    for cut in (0.9 * 0.014, -0.9 * 0.014):
        assert np.ptp(from_light(np.array([cut - 1e-9, cut + 1e-9]), Light.CLOG3)) < 1e-6
    assert np.allclose(from_light(cards, Light.DLOG), [0.0929, 0.3988, 0.5729], atol=5e-5)  # DJI's white paper
    assert np.ptp(from_light(np.array([0.0078 - 1e-9, 0.0078 + 1e-9]), Light.DLOG)) < 1e-5
    for light in (Light.SLOG2, Light.CLOG2, Light.CLOG):  # a log each side of black, or a straight part below
        assert np.ptp(from_light(np.array([-1e-9, 0.0, 1e-9]), light)) < 1e-6
    for light in LOGS:
        assert video_chromaticities(light, 1) == video_chromaticities(light, 9) != ()
    assert video_chromaticities(Light.APPLE_LOG, 1) == BT2020 and video_chromaticities(Light.CLOG3, 1) == CINEMA_GAMUT
    assert video_chromaticities(Light.DLOG, 9) == D_GAMUT and video_chromaticities(Light.CLOG2, 9) == CINEMA_GAMUT
    assert video_chromaticities(Light.SLOG2, 1) == S_GAMUT and video_chromaticities(Light.CLOG, 9) == REC709
    assert video_chromaticities(Light.DISPLAY, 9) == () and video_chromaticities(Light.PQ, 9) == BT2020


def test_the_clis_light_words_are_the_lights():
    from vidrestore.cli import LIGHTS

    assert LIGHTS.split("|") == ["auto", *(light.value for light in Light)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(*[st.floats(0.0, 1.0)] * 3), min_size=1, max_size=16), st.sampled_from(VIDEO))
def test_hdr_and_log_signals_and_their_light_undo_each_other(signals, light):
    """HLG's light depends on each pixel's luminance (its OOTF): the inverse takes R, G and B together."""
    values = np.array(signals)
    back = from_light(to_light(values, light), light)
    dark = to_light(values, light).max(-1) < 1e-4  # black's neighbours: their light rounds to a code of its own
    assert np.allclose(back[~dark], values[~dark], atol=1e-6)
    assert np.all(np.diff(to_light(np.sort(values[:, :1], 0).repeat(3, 1), light)[:, 0]) >= 0)


@pytest.mark.parametrize("light", VIDEO)
def test_16_bit_codes_are_shown_through_a_table_as_their_formula_shows_them(light):
    """The reader hands HDR's R'G'B' codes to the view as uint16, which a table takes to light."""
    rng = np.random.default_rng(3)
    codes = np.sort(rng.integers(0, 65536, (64, 3)), axis=1).astype(np.uint16)  # natural: no channel far from the others
    assert np.allclose(to_light(codes, light), to_light(codes / 65535, light), rtol=1e-5, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-0.5, 8.0, width=32), min_size=1, max_size=64), st.sampled_from([Light.LINEAR, Light.PQ]),
       st.booleans())
def test_the_views_table_shows_light_within_a_code_of_its_curves(values, light, deep):
    """The view looks linear light up in one table (the shoulder and the sRGB curve together):
    within one code of the curves computed in double precision, white at its end, black below 0."""
    linear = np.array([*values, 4.0, 8.0], np.float32).reshape(-1, 1, 1).repeat(3, 2)  # and light the view shows white
    top = 65535 if deep else 255
    x = np.clip(linear.astype(np.float64), 0, None)
    curve = np.where(x <= 0.75, x, 1 - 0.25 * np.exp(-(x - 0.75) / 0.25)) if light is Light.PQ else np.minimum(x, 1)
    expected = np.floor(srgb_encode(curve) * top + 0.5)
    shown = display_view(from_light(linear, light) if light is Light.PQ else linear, light, (), deep)
    assert np.abs(shown.astype(np.float64) - expected).max() <= 1
    assert np.all(shown[-2:] == top)


@pytest.mark.parametrize("light", VIDEO)
def test_a_boxs_view_is_the_frames_view_of_it_to_the_code(light):
    """The writer takes a box's codes back only where the restored view differs from the view of
    the source's codes, which it computes for the box alone: that must be, code for code, what the
    reader showed of the whole frame, or pixels nothing touched would be rewritten."""
    codes = np.random.default_rng(0).integers(0, 65536, (1080, 1920, 3)).astype(np.uint16)
    gamut = video_chromaticities(light, 9)
    frame = display_view(codes, light, gamut, deep=True)
    for x0, y0, x1, y1 in [(0, 100, 301, 400), (101, 7, 402, 333), (1001, 13, 1009, 1080), (5, 1, 1920, 2)]:
        box = codes[y0:y1, x0:x1]
        assert np.array_equal(display_view(box, light, gamut, True), frame[y0:y1, x0:x1])
        assert np.array_equal(written_back(frame[y0:y1, x0:x1], box, light, gamut), box / 65535)


def test_a_renders_nan_samples_are_shown_black_and_kept_as_they_were():
    """A render's NaN (and infinite) samples: black (and white) in the view, not a crash; written
    back unchanged where the view shows them unchanged."""
    plate = np.array([[[np.nan, 0.5, np.inf], [-np.inf, 1.0, 0.2]]], np.float32)
    shown = display_view(plate, Light.LINEAR, (), deep=True)
    assert shown.tolist() == [[[0, display_view(np.full((1, 1, 3), 0.5), Light.LINEAR, (), True)[0, 0, 0], 65535], [0, 65535, shown[0, 1, 2]]]]
    assert np.array_equal(written_back(shown, plate, Light.LINEAR), plate, equal_nan=True)


@pytest.mark.parametrize("light", VIDEO)
def test_an_hdr_face_is_written_back_in_its_own_light_and_what_the_view_clips_stays_the_sources(light):
    """Codes the view shows unchanged come back as they were; a restored pixel comes back so that
    the view shows it as restored; a highlight above what the view shows, and a green outside
    Rec. 709, keep their codes under a restored box that leaves them as the view showed them."""
    rng = np.random.default_rng(5)
    linear = np.clip(rng.normal(0.3, 0.1, (32, 32, 1)) * np.array([1.0, 0.8, 0.7]), 0.001, None)
    linear[:4, :4] = 6.0
    linear[4:8, :4] = (0.0, 0.6, 0.0)
    gamut = video_chromaticities(light, 9)
    codes = np.clip(from_light(linear, light) * 65535 + 0.5, 0, 65535).astype(np.uint16)
    shown = display_view(codes, light, gamut, deep=True)
    assert np.array_equal(written_back(shown, codes, light, gamut), codes / 65535)
    restored = shown.copy()
    restored[16:, 16:] = (30000, 20000, 15000)
    back = (written_back(restored, codes, light, gamut) * 65535 + 0.5).astype(np.uint16)
    assert np.array_equal(back[:16], codes[:16]) and np.array_equal(back[:, :16], codes[:, :16])
    assert np.abs(display_view(back, light, gamut, True)[16:, 16:].astype(int) - restored[16:, 16:]).max() <= 16  # a 10-bit code's step
    assert shown[:4, :4].min() > 65000 and shown[4:8, :4, [0, 2]].max() == 0  # what the view clips, or nearly


def test_hdr_videos_primaries_come_from_its_tag(sample_clip, tmp_path):
    """BT.2100 defines HDR video in BT.2020's primaries, which an untagged stream is taken to be in."""
    from conftest import graded_clip

    assert probe(graded_clip(tmp_path / "pq.mkv", sample_clip, Light.PQ, 1)).chromaticities == BT2020
    assert probe(graded_clip(tmp_path / "p3.mkv", sample_clip, Light.PQ, 1, primaries=12)).chromaticities == P3_D65
    untagged = probe(graded_clip(tmp_path / "untagged.mkv", sample_clip, Light.HLG, 1, primaries=2))
    assert untagged.light is Light.HLG and untagged.chromaticities == BT2020
    assert probe(sample_clip).chromaticities == () and probe(sample_clip).read_as(Light.PQ).chromaticities == BT2020


@pytest.fixture(scope="module", params=HDR, ids=lambda light: light.value)
def hdr_video(request, sample_clip, tmp_path_factory):
    from conftest import graded_clip

    return graded_clip(tmp_path_factory.mktemp("hdr") / f"{request.param.value}.mkv", sample_clip, request.param)


def test_hdr_videos_faces_are_restored_on_an_sdr_view_and_written_back_in_its_light(hdr_video, tmp_path):
    """A face comes out as the restorer's negative of it as an SDR grade shows it, written back in
    the video's light: the output's view shows the negative, every sample away from the face is
    the source's, the highlight and the green beyond Rec. 709 keep their codes, and the output is
    tagged as the input (BT.2020, PQ or HLG)."""
    import torch
    from conftest import Negative, paste_strength

    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.pipeline import PipelineConfig, analyse, run

    info = probe(hdr_video)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    cfg = PipelineConfig(face_size=64, colour_match=False, keep_coarse=0.0)
    [track] = analyse(hdr_video, cfg, det).tracks
    assert len(track) == 8
    out = tmp_path / "out.mkv"
    report = run(hdr_video, out, cfg, Negative(64), torch.device("cpu"), detector=det)
    assert report.light == info.light.value
    assert any(note.startswith(f"the video is HDR ({info.light.value.upper()}), as its transfer tag says") for note in report.notes)
    assert (probe(out).color, probe(out).light, probe(out).codec) == (info.color, info.light, "ffv1")
    with VideoReader(hdr_video, keep_depth=True) as before, VideoReader(out, keep_depth=True) as after, \
            av.open(str(hdr_video)) as a, av.open(str(out)) as b:
        for n, (x, y, planes_x, planes_y) in enumerate(zip(before, after, a.decode(video=0), b.decode(video=0))):
            assert paste_strength(x.image >> 8, y.image >> 8, track.landmarks_at(n)) > 0.9
            yuv_x, yuv_y = planes_x.to_ndarray(), planes_y.to_ndarray()
            moved = np.any(yuv_x != yuv_y, axis=-1) if yuv_x.ndim == 3 else yuv_x[: info.height] != yuv_y[: info.height]
            ys, xs = np.nonzero(moved)
            x0, y0, x1, y1 = track.boxes[n - track.start]
            assert 0 < moved.mean() < 0.5 and x0 - 16 <= xs.mean() <= x1 + 16 and y0 - 16 <= ys.mean() <= y1 + 16  # at the face
            assert np.array_equal(yuv_x[:16, :8], yuv_y[:16, :8])  # the highlight and the green: the source's


@pytest.mark.parametrize("light, rotation", [(Light.PQ, 0), (Light.HLG, 90), (Light.SLOG3, 0)], ids=["pq", "hlg-turned", "slog3"])
def test_hdr_video_viewed_only_where_the_faces_are_read_is_restored_as_when_viewed_whole(sample_clip, tmp_path, monkeypatch,
                                                                                        light, rotation):
    """Pass 2 has the reader make HDR or log video's view only in the boxes it reads the faces
    from and pastes them into (pipeline.restoring.regions_read), the rest left black: the video
    written must be the one a view of every pixel gives, sample for sample (lossless FFV1), on a
    turned video too, whose boxes are in display pixels."""
    import torch
    from conftest import Negative, graded_clip

    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.pipeline import PipelineConfig, restoring, run

    source = graded_clip(tmp_path / "in.mkv", sample_clip, light, rotation=rotation)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    cfg = PipelineConfig(face_size=64, light=light.value)
    seen = []
    regions_read = restoring.regions_read

    def counted(*args):
        boxes = regions_read(*args)
        return lambda index: seen.append(index) or boxes(index)

    def written(name):
        out = tmp_path / name
        assert run(source, out, cfg, Negative(64), torch.device("cpu"), detector=det).tracks
        with av.open(str(out)) as c:
            return [f.to_ndarray() for f in c.decode(video=0)]

    monkeypatch.setattr(restoring, "regions_read", counted)
    alone = written("alone.mkv")
    assert len(seen) == 8
    monkeypatch.setattr(restoring, "regions_read", lambda *args: None)
    whole = written("whole.mkv")
    assert len(alone) == len(whole) == 8 and all(np.array_equal(a, b) for a, b in zip(alone, whole))
    with av.open(str(source)) as c:
        assert not np.array_equal(next(c.decode(video=0)).to_ndarray(), alone[0])  # the faces were restored


@pytest.mark.parametrize("light, rotation", [(Light.PQ, 0), (Light.HLG, 90), (Light.SLOG3, 0)], ids=["pq", "hlg-turned", "slog3"])
def test_hdr_video_viewed_only_where_the_meters_read_measures_as_when_viewed_whole(sample_clip, tmp_path, monkeypatch,
                                                                                   light, rotation):
    """Pass 1's detail meter and face-quality rater read full-size frames (every 12th, and the
    frame after it); HDR or log video is viewed only in the boxes they read
    (pipeline.analysis.regions_measured), black elsewhere. Each track's measured share of detail
    and its quality must be those a view of every pixel gives, to the bit, on a turned video too."""
    import torch
    from conftest import graded_clip

    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.pipeline import PipelineConfig, analyse, analysis

    source = graded_clip(tmp_path / "in.mkv", sample_clip, light, frames=14, rotation=rotation)  # pairs at frames 0 and 12
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    cfg = PipelineConfig(face_size=64, light=light.value)
    boxes = []
    regions_measured = analysis.regions_measured

    def counted(*args):
        boxes.append(regions_measured(*args))
        return boxes[-1]

    monkeypatch.setattr(analysis, "regions_measured", counted)
    alone = analyse(source, cfg, det).tracks
    assert len(boxes) == 4 and all(boxes)  # frames 0, 1, 12 and 13
    monkeypatch.setattr(analysis, "regions_measured", lambda *args: None)
    whole = analyse(source, cfg, det).tracks
    assert len(alone) == len(whole) >= 1
    for a, w in zip(alone, whole):
        assert a.detail is not None and a.quality is not None
        assert (a.detail, a.quality) == (w.detail, w.quality)


def test_an_hdr_picture_with_no_decoded_frame_behind_it_is_taken_back_from_its_view_whole(hdr_video, tmp_path):
    """A picture with no decoded frame behind it (the side-by-side preview's) has no codes to keep:
    every pixel goes back from the view, and reads back as the view showed it, but for what the
    view clips (the corner's highlight and green)."""
    with VideoReader(hdr_video, keep_depth=True) as r:
        shown = [f.image for f in r][:3]
    out = tmp_path / "upright.mkv"
    with VideoWriter(out, probe(hdr_video), EncodeOptions(codec="ffv1")) as w:
        for n, image in enumerate(shown):
            w.write(None, n, image)
    with VideoReader(out, keep_depth=True) as r:
        back = [f.image for f in r]
    assert len(back) == 3 and probe(out).light is probe(hdr_video).light
    for before, after in zip(shown, back):
        levels = np.abs(before.astype(int) - after)[16:] / 257
        assert np.mean(levels) < 0.5 and np.percentile(levels, 99) < 3  # 4:2:0 chroma at the edges


def test_a_turned_hdr_video_written_upright_keeps_its_codes_turned_where_the_view_leaves_them(sample_clip, tmp_path):
    """MPEG-TS stores no rotation, so a phone's turned HDR video is written upright there. Its
    frames are new, but their codes are the decoded frame's turned upright, not the view's taken
    back: the corner's highlight (about 1000 cd/m2, above what the view shows) keeps its luma
    within a code, where the view's inverse put it at the view's top (74 codes of 10 bits lower)."""
    from conftest import graded_clip

    source = graded_clip(tmp_path / "phone.mkv", sample_clip, Light.PQ, rotation=90)
    out = tmp_path / "upright.ts"
    assert main([str(source), str(out), "--model", "none", "--detector", "dlib", "--crf", "0", "--quiet"]) == 0
    written = probe(out)
    assert (written.rotation, written.display_size, written.light) == (0, probe(source).display_size, Light.PQ)

    def luma(path):
        with av.open(str(path)) as c:
            return [f.to_ndarray()[: f.height].astype(int) for f in c.decode(video=0)]

    for before, after in zip(luma(source), luma(out), strict=True):
        turned = np.rot90(before, 1)
        assert np.abs(after - turned)[:8, :8].max() <= 1
        assert np.abs(after - turned).mean() < 1  # elsewhere: 4:2:0 chroma through R'G'B' and back, the face pasted


@pytest.mark.parametrize("light", LOGS, ids=lambda light: light.value)
def test_a_camera_logs_faces_are_restored_on_its_view_when_light_names_it(light, sample_clip, tmp_path):
    """No tag names a camera's log: --light does. Its face comes out as the restorer's negative of
    it as the view shows it, the corner's highlight and green keep their codes, and the output is
    tagged as the input (BT.709, as cameras tag it). Read as its codes, the same clip is flat."""
    import torch
    from conftest import Negative, graded_clip, paste_strength

    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.pipeline import PipelineConfig, analyse, run

    clip = graded_clip(tmp_path / "log.mkv", sample_clip, light)
    info = probe(clip)
    assert info.light is Light.DISPLAY and info.color.transfer == 1
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    cfg = PipelineConfig(face_size=64, colour_match=False, keep_coarse=0.0, light=light.value)
    [track] = analyse(clip, cfg, det).tracks
    out = tmp_path / "out.mkv"
    report = run(clip, out, cfg, Negative(64), torch.device("cpu"), detector=det)
    assert report.light == light.value and probe(out).color == info.color
    assert any(note.startswith(f"the video is {LIGHT_WORDS[light]}, as --light says") for note in report.notes)
    with VideoReader(clip, keep_depth=True, light=light) as before, VideoReader(out, keep_depth=True, light=light) as after, \
            VideoReader(clip, keep_depth=True) as codes, av.open(str(clip)) as a, av.open(str(out)) as b:
        for n, (x, y, c, planes_x, planes_y) in enumerate(zip(before, after, codes, a.decode(video=0), b.decode(video=0))):
            assert paste_strength(x.image >> 8, y.image >> 8, track.landmarks_at(n)) > 0.9
            assert np.array_equal(planes_x.to_ndarray()[:16, :8], planes_y.to_ndarray()[:16, :8])
            assert np.std(c.image[16:]) < 0.75 * np.std(x.image[16:])  # the codes: a flat picture


def test_hdr_goes_only_where_it_is_said_to_be_hdr(hdr_video, tmp_path, capsys):
    """A GIF, an AVI or TIFF pictures cannot say that they hold PQ or HLG: written there, the codes
    would show dark or flat, so the run is refused before any work, with one line and nothing
    written; --light display writes the codes as they are. PNG pictures say it (cICP), from the
    frames' tags: they come back as HDR."""
    light = probe(hdr_video).light
    options = ["--model", "none", "--detector", "dlib", "--quiet", "--strength", "1"]
    capsys.readouterr()
    for output in ("out.gif", "out.avi", "out_%04d.tif"):
        assert main([str(hdr_video), str(tmp_path / output), *options]) == 2
        assert f"cannot say that its video is HDR ({light.value.upper()})" in capsys.readouterr().err.strip().splitlines()[-1]
        assert list(tmp_path.iterdir()) == []
    assert main([str(hdr_video), str(tmp_path / "codes.gif"), *options, "--light", "display"]) == 0
    assert main([str(hdr_video), str(tmp_path / "out_%04d.png"), *options]) == 0
    pictures = probe(tmp_path / "out_%04d.png")
    assert pictures.light is light and pictures.color.primaries == 9 and pictures.frames == 8


def test_light_pq_reads_untagged_hdr_video_as_tagged_and_display_reads_its_codes(hdr_video, tmp_path):
    """HDR video whose tags were lost comes out of --light pq (or hlg) as the tagged video does, to
    the sample; --light display restores its codes as they are, as before; video takes no other."""
    light = probe(hdr_video).light
    untagged = tmp_path / "untagged.mkv"
    with av.open(str(hdr_video)) as src, av.open(str(untagged), "w") as out:
        vs = out.add_stream("ffv1", rate=25)
        vs.width, vs.height, vs.pix_fmt = src.streams.video[0].width, src.streams.video[0].height, "yuv420p10le"
        vs.codec_context.colorspace, vs.codec_context.color_range = 9, 1  # the matrix is said: only the light is lost
        for n, frame in enumerate(src.decode(video=0)):
            frame.pts, frame.time_base = n, Fraction(1, 25)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    assert probe(untagged).light is Light.DISPLAY
    options = ["--model", "none", "--detector", "dlib", "--quiet", "--strength", "1"]
    outputs = {}
    for name, source, said in [("tagged", hdr_video, []), ("told", untagged, ["--light", light.value]), ("codes", hdr_video, ["--light", "display"])]:
        outputs[name] = tmp_path / f"{name}.mkv"
        assert main([str(source), str(outputs[name]), *options, *said, "--json", str(tmp_path / f"{name}.json")]) == 0
        assert json.loads((tmp_path / f"{name}.json").read_text())["light"] == (light.value if name != "codes" else "display")
    with av.open(str(outputs["tagged"])) as a, av.open(str(outputs["told"])) as b:
        assert all(np.array_equal(x.to_ndarray(), y.to_ndarray()) for x, y in zip(a.decode(video=0), b.decode(video=0)))
    assert main([str(hdr_video), str(tmp_path / "refused.mkv"), *options, "--light", "cineon"]) != 0
    assert not (tmp_path / "refused.mkv").exists()


def test_retinaface_finds_the_face_of_a_real_clip_made_hdr(shared_data, tmp_path):
    """Read as its codes, a PQ picture is dark and flat: RetinaFace found no face in 40 frames of
    keep_real_1 made PQ, and missed 5 of them made HLG. Through the view it finds the face in each."""
    import torch
    from conftest import graded_clip, shared_file

    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.pipeline import PipelineConfig, analyse

    weights = shared_file(shared_data, "weights/retinaface_mobilenet0.25_Final.pth")
    clip = shared_file(shared_data, "videos/keep_real_1.mp4")
    det = create_detector(DetectorConfig(backend="retinaface", weights=str(weights)), torch.device("cpu"))
    for light in HDR:
        tracks = analyse(graded_clip(tmp_path / f"{light.value}.mkv", clip, light, 24), PipelineConfig(), det).tracks
        assert sum(len(t) for t in tracks) >= 23
