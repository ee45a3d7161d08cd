import dataclasses
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.io.fitting import StreamFitter, placed_size
from vidrestore.io.probe import probe

FORMATS = ["yuv420p", "yuv420p10le", "nv12", "yuyv422", "rgb24", "gbrp", "yuva420p", "gray16le", "yuv422p"]


@pytest.fixture(scope="module")
def stream_info(sample_clip):
    return probe(sample_clip)


def _stream(info, width, height, pix_fmt="yuv420p", sar=Fraction(1)):
    return dataclasses.replace(info, width=width, height=height, pix_fmt=pix_fmt, sample_aspect_ratio=sar)


def _grey(width, height, pix_fmt, level=128):
    frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), level, np.uint8), format="rgb24").reformat(format=pix_fmt)
    frame.pts, frame.time_base = 7, Fraction(1, 25)
    return frame


@settings(max_examples=300, deadline=None)
@given(st.integers(16, 2000), st.integers(16, 2000), st.sampled_from([None, Fraction(1), Fraction(64, 45), Fraction(16, 15), Fraction(4, 3)]),
       st.integers(16, 2000), st.integers(16, 2000), st.sampled_from([Fraction(1), Fraction(16, 11), None]),
       st.sampled_from(["yuv420p", "yuv422p", "yuv411p", "rgb24"]), st.booleans())
def test_a_part_is_placed_inside_the_frame_on_its_chroma_grid_with_its_shape(stream_info, w, h, sar, fw, fh, fsar, pix_fmt, fields):
    info = _stream(stream_info, fw, fh, pix_fmt, fsar)
    pw, ph = placed_size(w, h, sar, info, fields)
    fmt = av.VideoFormat(pix_fmt)
    down = 64 // fmt.chroma_height(64)  # in even rows, fields stay fields; scaled each alone, in even chroma rows
    steps = (64 // fmt.chroma_width(64), 2 * down if fields else max(2, down))
    assert 0 < pw <= fw and 0 < ph <= fh
    assert (pw % steps[0] == 0 or pw == fw) and (ph % steps[1] == 0 or ph == fh)
    assert pw == fw or ph == fh  # as large as the frame allows
    shape, frame_shape = Fraction(w * (sar or 1)) / h, Fraction(fw * (fsar or 1)) / fh
    if abs(float(shape / frame_shape) - 1) < 0.01:
        assert (pw, ph) == (fw, fh)
    else:  # the ideal size, its shape kept, to the nearest step of the grid
        ideal = (fw, fh * frame_shape / shape) if shape > frame_shape else (fw * shape / frame_shape, fh)
        assert all(abs(p - i) <= step / 2 or p in (step, side) for p, i, step, side in zip((pw, ph), ideal, steps, (fw, fh)))


@pytest.mark.parametrize("pix_fmt", FORMATS)
def test_a_square_picture_is_pillarboxed_in_black_in_a_4_3_stream(stream_info, pix_fmt):
    fit = StreamFitter(_stream(stream_info, 96, 72, pix_fmt))
    fitted = fit(_grey(64, 64, pix_fmt), None)
    assert (fitted.width, fitted.height, fitted.format.name) == (96, 72, pix_fmt)
    assert (fitted.pts, fitted.time_base) == (7, Fraction(1, 25))
    rgb = fitted.to_ndarray(format="rgb24").astype(int)
    assert rgb[:, :12].max() <= 2 and rgb[:, 84:].max() <= 2  # bars: black, in this format's black
    assert np.abs(rgb[:, 13:83] - 128).max() <= 4  # the picture, whole, between them (4:2:2 packed loses 3)
    assert fit.boxed == 1


def test_a_wide_picture_is_letterboxed_by_the_pixel_aspect_its_decoder_states(stream_info):
    """A 16:9 part (1024x576, square pixels) inside a 4:3 broadcast (720x576, pixels 16:15) is
    letterboxed to three quarters of the frame's height. Later frames of that size keep the aspect
    stated when the first came out, whatever the decoder states by then (it runs ahead of them)."""
    fit = StreamFitter(_stream(stream_info, 720, 576, sar=Fraction(16, 15)))
    own = _grey(720, 576, "yuv420p")
    assert fit(own, Fraction(64, 45)) is own  # the stream's own size passes untouched
    for stated in (Fraction(1), Fraction(64, 45)):
        luma = fit(_grey(1024, 576, "yuv420p"), stated).to_ndarray(format="gray")
        rows = np.flatnonzero(luma.max(1) > 60)
        assert (rows[0], rows[-1]) == (72, 503)
        assert luma[:72].max() < 20 and luma[504:].max() < 20
    assert fit.boxed == 2


def test_black_is_the_frames_own_range(stream_info):
    fit = StreamFitter(_stream(stream_info, 96, 72))
    limited, full = _grey(64, 64, "yuv420p"), _grey(64, 64, "yuv420p")
    limited.color_range, full.color_range = 1, 2
    assert np.frombuffer(memoryview(fit(limited, None).planes[0]), np.uint8)[0] == 16
    assert np.frombuffer(memoryview(fit(full, None).planes[0]), np.uint8)[0] == 0


def test_a_part_of_the_same_shape_or_in_bits_is_scaled_to_fill_the_frame(stream_info):
    fit = StreamFitter(_stream(stream_info, 96, 72))
    assert fit(_grey(64, 48, "yuv444p"), None).to_ndarray(format="rgb24").min() >= 126  # 4:3 in 4:3: no bars
    one_bit = StreamFitter(_stream(stream_info, 96, 72, "monob"))
    assert one_bit(_grey(64, 64, "monob", level=255), None).to_ndarray(format="gray").min() == 255  # stretched, as FFmpeg does
    assert fit.boxed == one_bit.boxed == 0


@pytest.mark.parametrize(("size", "rows"), [((128, 96), (0, 96)), ((128, 100), (0, 96)), ((128, 128), (16, 112))])
def test_an_interlaced_picture_keeps_its_fields_and_their_colours(stream_info, tmp_path, size, rows):
    """Top field red, bottom field blue (a fast movement, frozen): scaled or placed, each field
    keeps its own picture, its chroma too (in 4:2:0 chroma rows alternate fields as luma rows do:
    a picture placed 2 rows down would get the other field's colours)."""
    src = tmp_path / "i.mkv"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"x264-params": "interlaced=1:tff=1"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane, levels in zip(frame.planes, ((100, 100), (128, 128), (220, 40)), strict=True):
                values = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
                values[0::2], values[1::2] = levels  # red in the top field's chroma rows, blue in the bottom's
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(src)) as c:
        frames = list(c.decode(video=0))
    assert all(f.interlaced_frame for f in frames)
    fit = StreamFitter(_stream(stream_info, *size))
    fitted = fit(frames[0], None)
    top, bottom = rows
    red = np.frombuffer(memoryview(fitted.planes[2]), np.uint8).reshape(fitted.planes[2].height, -1)[:, : size[0] // 2].astype(int)
    assert red[top // 2 : bottom // 2 : 2].mean() > 180 and red[top // 2 + 1 : bottom // 2 : 2].mean() < 100
    assert fit.boxed == (size != (128, 96))


@pytest.mark.parametrize(("params", "pix_fmt", "size", "sar"), [
    ("", "yuv420p", (64, 48), Fraction(64, 45)),
    ("cqm=jvt", "yuv420p", (64, 48), Fraction(16, 15)),  # scaling matrices before the VUI
    ("interlaced=1:tff=1", "yuv420p", (64, 48), Fraction(12, 11)),  # fields: one more flag
    ("bframes=0", "yuv420p", (62, 46), Fraction(10, 11)),  # another picture order; cropped to an odd macroblock
    ("", "yuv444p", (64, 48), Fraction(7, 5)),  # 4:4:4 (High 4:4:4); an aspect of no table entry
    ("", "yuv420p", (64, 48), None),  # none stated: square
])
def test_an_h264_parameter_sets_pixel_aspect_is_read_as_ffmpeg_reads_it(tmp_path, params, pix_fmt, size, sar):
    from vidrestore.io.fitting import h264_pixel_aspect
    from vidrestore.io.hdr10plus import nal_units, unescape

    src = tmp_path / "a.h264"  # Annex B, as MPEG-TS carries it
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"x264-params": params} if params else {})
        stream.width, stream.height, stream.pix_fmt = *size, pix_fmt
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 90, np.uint8), format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(src)) as c:
        first = next(p for p in c.demux(video=0) if p.size)
        ffmpeg = c.streams.video[0].codec_context.sample_aspect_ratio
    sps = next(unit for _, unit in nal_units(bytes(first), None) if unit[0] & 0x1F == 7)
    assert h264_pixel_aspect(unescape(sps)) == (ffmpeg or 1) == (sar or 1)
