"""TIFF files FFmpeg's decoder reads wrongly or not at all (vidrestore.io.tiff), refused by name
before any work; float RGB TIFF pictures read as linear light, as an OpenEXR plate is."""

import json
import struct

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.cli import main
from vidrestore.errors import InputError
from vidrestore.io import VideoReader, probe
from vidrestore.io.linear import Light, samples, srgb_decode
from vidrestore.io.tiff import BITS, CHANNELS, COMPRESSION, SAMPLE_FORMAT, tiff_fields

UNSIGNED, SIGNED, FLOAT = 1, 2, 3
HIGHLIGHT, NEGATIVE = 6.0, -0.25


def write_tiff(path, image, sample_format, order="<"):
    """An uncompressed one-strip TIFF of ``image`` (H, W) or (H, W, C), its samples stated as
    ``sample_format``, its IFD after them (as libtiff writes one)."""
    image = np.ascontiguousarray(image, image.dtype.newbyteorder(order))
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    data = image.tobytes()
    per_channel = (8 * image.dtype.itemsize,) * channels, (sample_format,) * channels
    extra = 8 + len(data)  # the channels' bits and formats, where they do not fit in an entry
    fields = [(256, 4, (width,)), (257, 4, (height,)), (259, 3, (1,)), (262, 3, (2 if channels >= 3 else 1,)),
              (273, 4, (8,)), (277, 3, (channels,)), (278, 4, (height,)), (279, 4, (len(data),)), (284, 3, (1,)),
              (258, 3, per_channel[0]), (339, 3, per_channel[1])]
    blobs, entries = b"", []
    for tag, kind, values in sorted(fields):
        packed = struct.pack(order + ("H" if kind == 3 else "I") * len(values), *values)
        if len(packed) > 4:
            entries.append(struct.pack(order + "HHII", tag, kind, len(values), extra + len(blobs)))
            blobs += packed
        else:
            entries.append(struct.pack(order + "HHI", tag, kind, len(values)) + packed.ljust(4, b"\0"))
    ifd = extra + len(blobs)
    head = (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(order + "I", ifd)
    path.write_bytes(head + data + blobs + struct.pack(order + "H", len(entries)) + b"".join(entries) + b"\0" * 4)
    return path


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([np.uint8, np.uint16, np.int16, np.float16, np.float32, np.float64]), st.sampled_from([1, 2, 3, 4]),
       st.sampled_from(["<", ">"]))
def test_a_tiffs_compression_bits_channels_and_sample_format_are_read_from_its_first_ifd(tmp_path_factory, dtype, channels, order):
    image = np.zeros((3, 5, channels), dtype)
    kind = FLOAT if np.dtype(dtype).kind == "f" else SIGNED if np.dtype(dtype).kind == "i" else UNSIGNED
    path = write_tiff(tmp_path_factory.mktemp("t") / "p.tif", image, kind, order)
    bits = 8 * np.dtype(dtype).itemsize
    assert tiff_fields(path, (COMPRESSION, BITS, CHANNELS, SAMPLE_FORMAT)) == {
        COMPRESSION: (1,), BITS: (bits,) * channels, CHANNELS: (channels,), SAMPLE_FORMAT: (kind,) * channels}


def test_what_is_not_a_whole_tiff_has_no_fields(tmp_path):
    path = write_tiff(tmp_path / "p.tif", np.zeros((4, 4), np.uint8), UNSIGNED)
    whole = path.read_bytes()
    for cut in (b"", b"not a tiff", whole[:-20]):
        path.write_bytes(cut)
        assert tiff_fields(path, (BITS,)) == {}


@pytest.mark.parametrize("dtype, channels, kind, what", [
    (np.int16, 1, SIGNED, "16-bit signed integers, which FFmpeg's TIFF decoder reads as unsigned ones"),
    (np.int8, 3, SIGNED, "8-bit signed integers, which FFmpeg's TIFF decoder reads as unsigned ones"),
    (np.float16, 3, FLOAT, r"16-bit \(half\) floats, which FFmpeg's TIFF decoder reads as integers"),
    (np.uint32, 3, UNSIGNED, "32-bit integers, which FFmpeg's TIFF decoder does not read as such"),
    (np.float32, 1, FLOAT, r"32-bit floats in 1 channel, which FFmpeg's TIFF decoder does not read \(it reads 32-bit float RGB\)"),
    (np.float64, 3, FLOAT, "64-bit floats in 3 channels, which FFmpeg's TIFF decoder does not read"),
    (np.float32, 4, FLOAT, "32-bit float RGBA, which the FFmpeg in PyAV cannot convert"),
])
def test_samples_ffmpeg_misreads_or_refuses_are_named_before_any_work(tmp_path, capsys, dtype, channels, kind, what):
    """Signed samples came out as unsigned ones, half floats as integers and 32-bit integer RGB as
    NaN floats, without a word: a face found there would be restored on nonsense; float grey and
    doubles were called "truncated or corrupt"; float RGBA failed with a traceback."""
    image = (np.arange(24 * 32 * channels).reshape(24, 32, channels) % 100 - 50).astype(dtype)
    path = write_tiff(tmp_path / "scan.tif", image[..., 0] if channels == 1 else image, kind)
    with pytest.raises(InputError, match=f"cannot read scan.tif: its samples are {what}.*; save it with 8- or 16-bit unsigned "
                                         "samples, or as 32-bit float RGB or OpenEXR for linear light"):
        probe(path)
    assert main([str(path), str(tmp_path / "out.png"), "--model", "none", "--quiet"]) == 3
    assert capsys.readouterr().err.count("\n") == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["scan.tif"]


def test_ffmpeg_still_misreads_signed_and_half_float_samples(tmp_path):
    """Why those are refused: should FFmpeg learn to read them, this fails and the refusal can go."""
    signed = write_tiff(tmp_path / "s.tif", np.full((4, 6), -1000, np.int16), SIGNED)
    half = write_tiff(tmp_path / "h.tif", np.full((4, 6, 3), 0.5, np.float16), FLOAT)
    with av.open(str(signed)) as c:
        assert next(c.decode(video=0)).to_ndarray().min() == 65536 - 1000
    with av.open(str(half)) as c:
        assert next(c.decode(video=0)).to_ndarray().max() == np.float16(0.5).view(np.uint16)


@pytest.mark.parametrize("compression, what", [
    ("jpeg", "it is JPEG-compressed TIFF, which FFmpeg's TIFF decoder reads as a black picture"),
    ("lzma", "it is LZMA-compressed TIFF, which FFmpeg's TIFF decoder does not read"),
    ("tiff_lzw", None),
])
def test_a_tiff_compressed_as_ffmpeg_cannot_read_is_refused_by_name(tmp_path, compression, what):
    """A JPEG-compressed TIFF (a scanner's or Photoshop's option) decoded as black without a word,
    and a face-less one was then written out black; LZMA's was taken for a truncated file."""
    from PIL import Image

    path = tmp_path / "scan.tif"
    Image.fromarray(np.full((24, 32, 3), 120, np.uint8)).save(path, compression=compression)
    if what is None:
        assert probe(path).width == 32
        return
    with pytest.raises(InputError, match=f"cannot read scan.tif: {what}; save it uncompressed or with LZW or ZIP compression"):
        probe(path)


def test_a_float_tiff_is_restored_as_linear_light_into_exr_keeping_every_sample_away_from_the_face(sample_clip, tmp_path, capsys):
    """A float TIFF (Photoshop's 32-bit mode) went through FFmpeg's scaler: its light above 1 and
    below 0 was clipped over the whole picture and it was written as 16-bit integers. It is read
    as an OpenEXR plate is, and goes only into OpenEXR."""
    with VideoReader(sample_clip) as r:
        image = srgb_decode(next(iter(r)).image.astype(np.float32) / 255).astype(np.float32)
    image[:12, :12], image[-6:, -6:] = HIGHLIGHT, NEGATIVE
    photo = write_tiff(tmp_path / "merged.tif", image, FLOAT)
    assert probe(photo).light is Light.LINEAR
    assert main([str(photo), str(tmp_path / "restored.tif"), "--model", "none", "--detector", "dlib", "--quiet"]) == 2
    assert capsys.readouterr().err.strip().endswith("cannot go into a tiff picture without clipping its highlights: "
                                                    "write an OpenEXR picture (name.exr)")
    out, report = tmp_path / "restored.exr", tmp_path / "report.json"
    assert main([str(photo), str(out), "--model", "none", "--detector", "dlib", "--quiet", "--json", str(report)]) == 0
    said = json.loads(report.read_text())
    assert said["tracks"] and said["encoder"].startswith("exr, gbrpf32le, samples float")
    with av.open(str(out)) as c:
        after = samples(next(c.decode(video=0)))
    assert np.all(after[:12, :12] == HIGHLIGHT) and np.all(after[-6:, -6:] == NEGATIVE)
    moved = np.any(after != image, axis=-1)
    ys, xs = np.nonzero(moved)
    assert len(ys) and 0 < moved.mean() < 0.4 and 0.15 < xs.mean() / moved.shape[1] < 0.85  # around the face
