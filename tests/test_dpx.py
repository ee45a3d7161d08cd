"""DPX header fields (vidrestore.io.dpx): time and transfer characteristic, carried from a scan's
pictures into FFmpeg-written ones."""

import struct

import av
import numpy as np
import pytest

from vidrestore.io import probe
from vidrestore.io.dpx import HEADER, TRANSFER, copy_header_fields, says_printing_density
from vidrestore.io.probe import as_fraction


def _ffmpeg_dpx(path, image):
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as out:
        stream = out.add_stream("dpx", rate=25)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "rgb24"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def _decoded(path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frame = next(c.decode(stream))
        return frame.to_ndarray(format="rgb24"), dict(frame.metadata).get("timecode"), as_fraction(stream.codec_context.framerate)


@pytest.mark.parametrize("order, magic", [(">", b"SDPX"), ("<", b"XPDS")])
def test_a_scans_rate_and_timecode_go_into_an_ffmpeg_written_picture_whatever_its_byte_order(tmp_path, order, magic):
    image = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    target = _ffmpeg_dpx(tmp_path / "out.dpx", image)
    assert len(target.read_bytes()) < HEADER + image.size and _decoded(target)[1:] == (None, None)  # FFmpeg writes neither
    scan = bytearray(b"\xff" * HEADER)  # a scanner's header, big- or little-endian
    scan[:4] = magic
    struct.pack_into(order + "I", scan, 4, HEADER)
    for at in (1724, 1940):  # the film header's frame rate, and the television header's
        struct.pack_into(order + "f", scan, at, 24000 / 1001)
    struct.pack_into(order + "I", scan, 1920, 0x10203004)  # 10:20:30:04
    (tmp_path / "scan.dpx").write_bytes(bytes(scan))
    assert copy_header_fields(tmp_path / "scan.dpx", target)
    pixels, timecode, rate = _decoded(target)
    assert np.array_equal(pixels, image)
    assert timecode == "10:20:30:04"
    assert abs(float(rate) - 24000 / 1001) < 1e-3
    assert len(target.read_bytes()) == HEADER + image.size
    header = target.read_bytes()[:HEADER]
    written = "<" if header[:4] == b"XPDS" else ">"
    assert struct.unpack_from(written + "f", header, 1940)[0] == pytest.approx(24000 / 1001)
    written = target.read_bytes()
    assert not copy_header_fields(tmp_path / "scan.dpx", target) and target.read_bytes() == written  # twice: nothing left to copy


def test_a_picture_whose_header_has_no_television_header_gives_nothing(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    source, target = _ffmpeg_dpx(tmp_path / "a.dpx", image), _ffmpeg_dpx(tmp_path / "b.dpx", image)
    before = target.read_bytes()
    assert not copy_header_fields(source, target) and target.read_bytes() == before
    (tmp_path / "c.png").write_bytes(b"\x89PNG not a dpx")
    assert not copy_header_fields(tmp_path / "c.png", target) and target.read_bytes() == before
    (tmp_path / "cut.dpx").write_bytes(b"SDPX" + struct.pack(">I", HEADER) + bytes(100))  # a damaged scan, cut short
    assert not copy_header_fields(tmp_path / "cut.dpx", target) and target.read_bytes() == before


@pytest.mark.parametrize("transfer, log, light", [(1, True, "cineon"), (3, True, "cineon"), (2, False, "linear"), (4, False, "display")])
def test_a_log_scans_transfer_characteristic_goes_into_an_ffmpeg_written_picture(tmp_path, transfer, log, light):
    """FFmpeg's encoder writes its own transfer characteristic ("unspecified video" here), so a
    restored log scan would be read as video: the scan's codes are carried, and its pixels and
    the header's length stay as they were (no time fields to carry)."""
    image = np.random.default_rng(1).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    scan, target = _ffmpeg_dpx(tmp_path / "scan.dpx", image), _ffmpeg_dpx(tmp_path / "out.dpx", image)
    data = bytearray(scan.read_bytes())
    data[TRANSFER:TRANSFER + 2] = bytes([transfer, transfer])
    scan.write_bytes(bytes(data))
    before = target.read_bytes()
    assert says_printing_density(scan) is log and not says_printing_density(target)
    assert probe(scan).light.value == light and probe(target).light.value == "display"  # 2: FFmpeg reads it as linear
    assert copy_header_fields(scan, target) is (transfer != before[TRANSFER])
    after = target.read_bytes()
    assert after[TRANSFER:TRANSFER + 2] == bytes([transfer, transfer]) and len(after) == len(before)
    assert np.array_equal(_decoded(target)[0], image) and says_printing_density(target) is log
    (tmp_path / "c.png").write_bytes(b"\x89PNG not a dpx")
    assert not says_printing_density(tmp_path / "c.png") and not says_printing_density(tmp_path / "missing.dpx")


@pytest.mark.parametrize("order, magic", [(">", b"SDPX"), ("<", b"XPDS")])
def test_a_scans_edge_code_slate_source_and_project_go_into_an_ffmpeg_written_picture(tmp_path, order, magic):
    """What a conform is built on besides the timecode (the film's edge code, the frame's
    identification and slate) and where the picture came from, in the target's byte order; a
    field the scan leaves undefined keeps what FFmpeg wrote (its pixel aspect ratio)."""
    image = np.random.default_rng(2).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    target = _ffmpeg_dpx(tmp_path / "out.dpx", image)
    ffmpeg_aspect = target.read_bytes()[1628:1636]
    scan = bytearray(b"\xff" * HEADER)
    scan[:4] = magic
    struct.pack_into(order + "I", scan, 4, HEADER)
    scan[260:660] = bytes(400)  # project and copyright: text, undefined
    scan[260:267] = b"reel 12"
    struct.pack_into(order + "6I", scan, 1408, 0, 0, 0, 0, 4096, 3112)  # offsets and centre zero; original size: a 4K full-aperture scan
    scan[1432:1620] = bytes(188)
    scan[1432:1443], scan[1556:1564] = b"A001_C002.R", b"Scanity "
    scan[1664:1712] = b"KD" + b"50" + b"12" + b"123456" + b"7890" + b"35mm 4perf".ljust(32, b"\0")  # edge code, format
    struct.pack_into(order + "3I", scan, 1712, 17, 2400, 1)  # frame position, sequence length, held count
    struct.pack_into(order + "f", scan, 1728, 172.8)  # shutter angle
    scan[1732:1864] = bytes(132)
    scan[1732:1746], scan[1764:1778] = b"R12_F000017_A ", b"SC 4 TK 2 CAM "
    scan[1929] = 1  # field number
    struct.pack_into(order + "f", scan, 1948, 0.6)  # gamma
    (tmp_path / "scan.dpx").write_bytes(bytes(scan))
    assert copy_header_fields(tmp_path / "scan.dpx", target)
    header = target.read_bytes()[:HEADER]
    written = "<" if header[:4] == b"XPDS" else ">"
    assert header[260:267] == b"reel 12" and header[1432:1443] == b"A001_C002.R" and header[1556:1564] == b"Scanity "
    assert struct.unpack_from(written + "2I", header, 1424) == (4096, 3112)
    assert header[1664:1680] == b"KD50121234567890"  # manufacturer, film type, perforation offset, prefix, count
    assert header[1680:1690] == b"35mm 4perf" and header[1732:1746] == b"R12_F000017_A " and header[1764:1778] == b"SC 4 TK 2 CAM "
    assert struct.unpack_from(written + "3I", header, 1712) == (17, 2400, 1)
    assert struct.unpack_from(written + "f", header, 1728)[0] == pytest.approx(172.8, rel=1e-6)
    assert struct.unpack_from(written + "f", header, 1948)[0] == pytest.approx(0.6, rel=1e-6) and header[1929] == 1
    assert header[1628:1636] == ffmpeg_aspect  # undefined in the scan: FFmpeg's stays
    assert header[TRANSFER] == 4  # FFmpeg's: the scan's is undefined
    assert np.array_equal(_decoded(target)[0], image)
