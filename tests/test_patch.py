import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter
from conftest import make_clip
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.io import EncodeOptions, VideoReader, VideoWriter, probe
from vidrestore.io.patch import crop_frame, over_checks, patch_area, patch_frame, patchable, rotate_box

COLOUR = {"dst_colorspace": 1, "dst_color_range": 1, "threads": 1}  # BT.709, limited range; see the last test for threads


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [np.frombuffer(p, np.uint8)[: p.height * p.line_size].reshape(p.height, p.line_size)[:, : p.width * (2 if max(c.bits for c in frame.format.components) > 8 else 1)].copy()
            for p in frame.planes]


def _random_frame(fmt: str, height: int, width: int, seed: int) -> av.VideoFrame:
    deep = fmt.endswith("le")
    rgb = np.random.default_rng(seed).integers(0, 65536 if deep else 256, (height, width, 3)).astype(np.uint16 if deep else np.uint8)
    return VideoReformatter().reformat(av.VideoFrame.from_ndarray(rgb, format="rgb48le" if deep else "rgb24"), format=fmt, **COLOUR)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.data(), st.integers(0, 7))
def test_a_box_turns_with_the_image(height, width, data, turns):
    x0 = data.draw(st.integers(0, width - 1))
    y0 = data.draw(st.integers(0, height - 1))
    box = (x0, y0, data.draw(st.integers(x0 + 1, width)), data.draw(st.integers(y0 + 1, height)))
    marked = np.zeros((height, width), bool)
    marked[box[1] : box[3], box[0] : box[2]] = True
    x0, y0, x1, y1 = rotate_box(box, turns, height, width)
    turned = np.rot90(marked, turns)
    expected = np.zeros_like(turned)
    expected[y0:y1, x0:x1] = True
    assert np.array_equal(turned, expected)


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p10le", "yuv444p", "gbrp"])
def test_patched_boxes_convert_as_the_whole_frame_would_and_the_rest_keeps_its_samples(fmt):
    height, width = 72, 96
    source = _random_frame(fmt, height, width, 0)
    deep = fmt.endswith("le")
    image = source.to_ndarray(format="rgb48le" if deep else "rgb24", **({"src_colorspace": 1, "src_color_range": 1} if not fmt.startswith("gbr") else {}))
    boxes = [(13, 7, 40, 33), (35, 30, 96, 71)]  # odd edges, overlapping, one at the frame's border
    changed = image.copy()
    rng = np.random.default_rng(1)
    for x0, y0, x1, y1 in boxes:
        changed[y0:y1, x0:x1] = rng.integers(0, 65536 if deep else 256, (y1 - y0, x1 - x0, 3))
    patched = _random_frame(fmt, height, width, 0)  # the same frame again, to write into
    patch_frame(patched, changed, boxes, VideoReformatter(), **COLOUR)
    whole = VideoReformatter().reformat(av.VideoFrame.from_ndarray(changed, format="rgb48le" if deep else "rgb24"), format=fmt, **COLOUR)
    covered = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:  # grown to the chroma grid, as the patch is
        covered[y0 // 2 * 2 : -(-y1 // 2) * 2, x0 // 2 * 2 : -(-x1 // 2) * 2] = True
    for plane, got, want, before in zip(source.planes, _planes(patched), _planes(whole), _planes(source)):
        sx, sy = int(plane.width < width), int(plane.height < height)
        inside = np.repeat(covered[:: 1 << sy, :: 1 << sx], 2 if deep else 1, axis=1)  # samples to bytes
        assert np.array_equal(got[~inside], before[~inside])
        assert np.array_equal(got[inside], want[inside])
    assert not np.array_equal(_planes(patched)[0], _planes(source)[0])


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["yuv420p10le", "yuv422p10le", "yuv444p12le", "yuv420p"]), st.integers(0, 95), st.integers(0, 71),
       st.integers(1, 96), st.integers(1, 72))
def test_a_part_cropped_with_the_patchs_margin_converts_as_the_whole_frame_does(fmt, x0, y0, w, h):
    """The writer converts HDR video's codes around the faces alone (crop_frame): over the area
    patch_frame reads, the part's conversion must be the whole frame's, sample for sample."""
    height, width = 72, 96
    source = _random_frame(fmt, height, width, 3)
    convert = {"format": "rgb48le", "src_colorspace": 1, "src_color_range": 1}
    whole = VideoReformatter().reformat(source, **convert).to_ndarray()
    read = patch_area((x0, y0, min(width, x0 + w), min(height, y0 + h)), height, width)
    cx0, cy0, cx1, cy1 = patch_area(read, height, width)
    part = VideoReformatter().reformat(crop_frame(source, (cx0, cy0, cx1, cy1)), **convert).to_ndarray()
    assert part.shape[:2] == (cy1 - cy0, cx1 - cx0)
    assert np.array_equal(part[read[1] - cy0 : read[3] - cy0, read[0] - cx0 : read[2] - cx0], whole[read[1] : read[3], read[0] : read[2]])


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_hdr_codes_converted_around_the_faces_alone_write_what_the_whole_frames_do(sample_clip, tmp_path, monkeypatch, rotation):
    """The writer takes HDR video's codes from the decoded frame only around the pasted boxes
    (display pixels, turned to the coded frame's): the frames written must be the ones the whole
    frame's conversion gives, bit for bit through FFV1."""
    from conftest import graded_clip

    from vidrestore.io import writer as writer_module
    from vidrestore.io.linear import Light
    from vidrestore.io.reader import frame_to_rgb

    clip = graded_clip(tmp_path / "in.mkv", sample_clip, Light.PQ, frames=3, rotation=rotation)
    boxes = [(45, 91, 130, 207), (100, 0, 181, 33)]  # display pixels, overlapping, one at the border

    def written(out):
        with VideoReader(clip, keep_depth=True) as reader, VideoWriter(out, probe(clip), EncodeOptions(codec="ffv1")) as w:
            for frame in reader:
                image = frame.image.copy()
                for x0, y0, x1, y1 in boxes:
                    image[y0:y1, x0:x1] = 65535 - image[y0:y1, x0:x1] // 2
                w.write(frame.source, frame.pts, image, boxes)
        with av.open(str(out)) as c:
            return [_planes(f) for f in c.decode(video=0)]

    alone = written(tmp_path / "alone.mkv")
    monkeypatch.setattr(writer_module, "codes_around", lambda source, coded, regions, reformatter: frame_to_rgb(source, coded, deep=True)[0])
    whole = written(tmp_path / "whole.mkv")
    with av.open(str(clip)) as c:
        original = [_planes(f) for f in c.decode(video=0)]
    assert len(alone) == 3 and all(np.array_equal(a, b) for x, y in zip(alone, whole) for a, b in zip(x, y))
    assert not all(np.array_equal(a, b) for x, y in zip(alone, original) for a, b in zip(x, y))  # the boxes were written


def test_frames_the_patch_cannot_address_are_told_apart():
    assert patchable(_random_frame("yuv420p", 8, 8, 0))
    assert not patchable(_random_frame("yuv420p", 9, 8, 0))  # odd side: chroma is not half size
    assert not patchable(_random_frame("nv12", 8, 8, 0))  # two components in one plane
    assert not patchable(_random_frame("yuv410p", 8, 8, 0))  # chroma a quarter wide
    assert not patchable(av.VideoFrame(8, 8, "gbrpf32le"))  # float samples


@pytest.mark.parametrize("rotation", [0, 90])
def test_a_lossless_master_keeps_every_sample_outside_the_faces(tmp_path, rotation):
    """Through ffv1 the output equals the decoded input bit for bit outside the boxes (given in
    display pixels, so on a rotated stream they are turned to the coded frame's)."""
    clip = make_clip(tmp_path / "in.mp4", [i * 40 for i in range(4)], size=(64, 80), rotation=rotation)
    out = tmp_path / "out.mkv"
    box = (10, 20, 41, 47)  # display pixels
    with VideoReader(clip) as reader, VideoWriter(out, probe(clip), EncodeOptions(codec="ffv1")) as writer:
        for frame in reader:
            image = frame.image.copy()
            image[box[1] : box[3], box[0] : box[2]] = 255 - image[box[1] : box[3], box[0] : box[2]]
            writer.write(frame.source, frame.pts, image, [box])
    with VideoReader(clip) as a, VideoReader(out) as b:
        pairs = [(x.image.astype(int), y.image.astype(int)) for x, y in zip(a, b)]
    assert len(pairs) == 4
    outside = np.ones(pairs[0][0].shape[:2], bool)
    outside[box[1] - 2 : box[3] + 2, box[0] - 2 : box[2] + 2] = False  # chroma grid and upsampling reach
    for before, after in pairs:
        assert np.array_equal(before[outside], after[outside])
        assert np.abs(after[box[1] + 2 : box[3] - 2, box[0] + 2 : box[2] - 2] - 255 + before[box[1] + 2 : box[3] - 2, box[0] + 2 : box[2] - 2]).mean() < 3


def test_deep_frames_are_converted_the_same_way_every_time(tmp_path):
    """FFmpeg's threaded RGB48-to-10-bit 4:2:2 conversion (libswscale 9.5) races: in most runs a few
    chroma samples at the start of one row came out up to 259 levels off, at 720 px wide (SD
    masters). The writer converts on one thread; every run must then give the same samples."""
    width, height = 720, 16
    source = tmp_path / "master.mkv"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv422p10le"
        out.mux(stream.encode(_random_frame("yuv422p10le", height, width, 0)))
        out.mux(stream.encode(None))
    image = np.random.default_rng(2).integers(0, 65536, (height, width, 3)).astype(np.uint16)
    runs = []
    for k in range(6):
        with VideoReader(source, keep_depth=True) as reader, VideoWriter(tmp_path / f"{k}.mkv", probe(source), EncodeOptions(codec="ffv1")) as writer:
            for frame in reader:
                writer.write(frame.source, frame.pts, image)
        with av.open(str(tmp_path / f"{k}.mkv")) as c:
            runs.append(_planes(next(c.decode(video=0))))
    assert all(np.array_equal(a, b) for run in runs[1:] for a, b in zip(run, runs[0]))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_over_checks_lays_a_picture_over_two_greys_by_its_alpha(dtype):
    """Opaque pixels keep their colour, clear ones show the checks (0.4 and 0.6 of white in 16 px
    squares), half-clear ones half of each; a frame without alpha leaves the picture as it is."""
    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:, 32:, 3] = 0
    rgba[:16, 16:32, 3] = 128
    image = np.full((32, 48, 3), 0.8 * top, np.float64).astype(dtype)
    laid = over_checks(image, av.VideoFrame.from_ndarray(rgba, format="rgba")).astype(np.float64) / top
    assert laid.dtype == np.float64 and np.allclose(laid[:, :16], 0.8, atol=1e-3)
    assert np.allclose(laid[:16, 32:], 0.4, atol=1e-3) and np.allclose(laid[16:, 32:], 0.6, atol=1e-3)
    assert np.allclose(laid[:16, 16:32], 0.8 * 128 / 255 + 0.6 * 127 / 255, atol=2e-3)
    opaque = av.VideoFrame.from_ndarray(rgba[..., :3].copy(), format="rgb24")
    assert over_checks(image, opaque) is image
