"""Image sequences (vidrestore.io.sequence): naming, finding, reading, and writing them in place."""

import stat
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.errors import InputError
from vidrestore.io import VideoReader, probe
from vidrestore.io.output import atomic_output
from vidrestore.io.sequence import NAME_MAX, ImageSequence, find_sequence, hidden_stem, is_sequence, numbered, numbers_in


@settings(max_examples=40, deadline=None)
@given(prefix=st.from_regex(r"[a-z_.-]{0,6}", fullmatch=True), width=st.integers(0, 8), number=st.integers(0, 10**7),
       other=st.integers(0, 10**7))
def test_a_numbered_name_is_found_again_by_its_pattern_and_no_other_spelling_is(prefix, width, number, other):
    with tempfile.TemporaryDirectory() as folder:
        pattern = Path(folder) / f"{prefix}%{f'0{width}' if width else ''}d.png"
        numbered(pattern, number).touch()
        (Path(folder) / f"{prefix}{other:0{width + 1}d}.png").touch()  # one digit more: another number's spelling
        found = numbers_in(pattern)
        assert number in found
        assert set(found) <= {number, other}
        assert all(numbered(pattern, n).exists() for n in found)


def test_what_names_a_sequence():
    assert is_sequence("scan/r_%06d.dpx") and is_sequence("a%d.PNG") and is_sequence("f_%4d.tif")  # %4d: FFmpeg's %04d
    assert numbered(Path("f_%4d.tif"), 12) == Path("f_0012.tif") and numbered(Path("a%d.png"), 12) == Path("a12.png")
    assert not is_sequence("r_%06d.mp4") and not is_sequence("100%_%d.png") and not is_sequence("r_%06d_%02d.png")
    assert not is_sequence("photo.png")


def test_a_sequence_is_found_from_wherever_its_numbers_start_and_a_gap_is_named(tmp_path):
    pattern = tmp_path / "r_%06d.png"
    for n in (86400, 86401, 86402, 86404, 86405):
        numbered(pattern, n).write_bytes(b"x")
    (tmp_path / "r_0086403.png").write_bytes(b"x")  # not how %06d spells 86403
    with pytest.raises(InputError, match=r"lacks r_086403\.png between r_086400\.png and r_086405\.png"):
        find_sequence(pattern)
    numbered(pattern, 86403).write_bytes(b"x")
    assert find_sequence(pattern) == ImageSequence(pattern, 86400, 6)
    with pytest.raises(InputError, match="no picture matches"):
        find_sequence(tmp_path / "s_%06d.png")
    with pytest.raises(InputError, match="input not found"):
        find_sequence(tmp_path / "missing" / "r_%06d.png")


def test_a_sequence_is_read_one_tick_a_frame_from_its_first_number(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(5)]
    pattern = tmp_path / "f_%04d.png"
    for n, image in enumerate(images, start=7):
        cv2.imwrite(str(numbered(pattern, n)), image[..., ::-1])
    info = probe(pattern)
    assert (info.width, info.height, info.frames, info.time_base) == (32, 24, 5, Fraction(1, 25))
    with VideoReader(pattern) as reader:
        frames = list(reader)
    assert [f.pts for f in frames] == list(range(5))
    assert all(np.array_equal(f.image, image) for f, image in zip(frames, images))


def test_a_sequence_output_appears_only_when_whole_and_replaces_an_earlier_one(tmp_path):
    target = tmp_path / "o_%04d.png"
    for n in (1, 2, 3, 9):  # an earlier, longer run's pictures
        numbered(target, n).write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_output(target, number_offset=100) as staged:
        numbered(staged, 0).write_bytes(b"new")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o_0001.png", "o_0002.png", "o_0003.png", "o_0009.png"]
    with atomic_output(target, number_offset=100) as staged:
        assert staged.name == target.name and staged.parent.name.startswith(".o_04d.")
        for n in (0, 1, 3):
            numbered(staged, n).write_bytes(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o_0100.png", "o_0101.png", "o_0103.png"]
    assert all(p.read_bytes() == b"new" for p in tmp_path.iterdir())
    assert stat.S_IMODE(numbered(target, 100).stat().st_mode) & 0o044  # readable by others, not mkdtemp's 0700


def test_a_ten_bit_dpx_scan_is_written_back_as_ten_bit_dpx(tmp_path):
    """Pictures of an RGB format the encoder takes keep it: a 10-bit DPX scan came out as 16-bit
    DPX (rgb48), twice the size, when every deep picture was written as rgb48."""
    import av

    from vidrestore.io import EncodeOptions, VideoWriter

    scan = tmp_path / "s_%07d.dpx"
    ramp = (np.arange(32 * 24 * 3, dtype=np.uint16).reshape(24, 32, 3) * 21) & 0xFFC0  # 10 significant bits
    with av.open(str(scan), "w", format="image2", options={"start_number": "1001"}) as out:
        stream = out.add_stream("dpx", rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "gbrp10le"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(ramp, format="rgb48le").reformat(format="gbrp10le")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    info = probe(scan)
    assert (info.pix_fmt, info.frames) == ("gbrp10le", 3)
    written = tmp_path / "out" / "s_%07d.dpx"
    written.parent.mkdir()
    with VideoReader(scan, keep_depth=True) as reader, VideoWriter(written, info, EncodeOptions()) as writer:
        for frame in reader:
            writer.write(frame.source, frame.pts, frame.image, [])
    with av.open(str(numbered(written, 1))) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "gbrp10le"
        assert np.array_equal(next(c.decode(video=0)).to_ndarray(format="rgb48le") >> 6, ramp >> 6)


@settings(max_examples=200, deadline=None)
@given(st.one_of(*(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0."), min_size=low, max_size=high)
                   for low, high in [(1, 40), (180, 255)])),
       st.sampled_from([".mp4", ".mkv", ".mov", ".webm", ".m2ts", ".dpx"]))
def test_the_hidden_files_of_any_output_have_names_a_file_system_takes(stem, suffix):
    """An output named near the longest a name may be (a batch item named as its input) was refused:
    "cannot write to output folder" (File name too long), for its temp file's name."""
    name = f"{stem}{suffix}"
    if len(name.encode()) > NAME_MAX:
        return
    hidden = hidden_stem(Path(name))
    longest = f".{hidden}.seg0000.part{suffix}.mov"  # a sequence's segment, the longest made
    assert len(longest.encode()) <= NAME_MAX
    assert len(f".{hidden}.k2x9qz_a.part{suffix}".encode()) <= NAME_MAX  # mkstemp's temp file
    if len(f"{stem}{suffix}".encode()) + 40 <= NAME_MAX:  # room for what the hidden names add
        assert hidden == stem.replace("%", "")  # short names are kept as they are
    else:  # two long names that differ only at the end keep apart
        assert hidden != hidden_stem(Path(f"{stem[:-1]}{'b' if stem[-1] != 'b' else 'c'}{suffix}"))
