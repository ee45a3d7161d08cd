"""Shared fixtures: clips made with PyAV, the shared data folder (skipped with a message when absent)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vidrestore.io.encoders import REPRODUCIBLE_X264
from vidrestore.io.hdr10plus import escape
from vidrestore.io.probe import side_data
from vidrestore.restore import PassThroughRestorer

REPO = Path(__file__).resolve().parent.parent
# the runs of the tests (their subprocesses too) keep their analyses and find weights in a cache of
# their own, never the user's
TEST_CACHE = Path(tempfile.mkdtemp(prefix="vidrestore-test-cache-"))
os.environ["VIDRESTORE_CACHE"] = str(TEST_CACHE)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


# dlib's detectors give the same faces for the same picture every time, and most tests scan the
# same few clips scaled the same way: of the suite's 3,470 scans, 2,503 were of a picture scanned
# before, 147 s of dlib's 204 (counted by a plugin wrapping DlibDetector._raw, 2026-12-07), and the
# CNN's second looks at unsure faces took another 12 s. A test gets the answer of the first scan or
# look at each picture (a real one, by whichever test came first); tests marked fresh_scans
# (test_detect.py: threads, shared models) have dlib scan every picture itself.
_DLIB_ANSWERS: dict[tuple, object] = {}


@pytest.fixture(autouse=True)
def dlib_scans_remembered(request, monkeypatch) -> None:
    if request.node.get_closest_marker("fresh_scans"):
        return
    from vidrestore.faces.detect import DlibDetector

    for name in ("_raw", "confirms"):  # the faces in a picture; whether the CNN finds one in a box of it
        monkeypatch.setattr(DlibDetector, name, _remembered(getattr(DlibDetector, name), name))


def _remembered(method: Callable, name: str) -> Callable:
    def answer(self, image: np.ndarray, *rest: np.ndarray):
        key = (name, self.config.dlib_model, image.shape, hashlib.blake2b(image.tobytes(), digest_size=16).digest(),
               *(np.asarray(arg).tobytes() for arg in rest))
        if key not in _DLIB_ANSWERS:
            _DLIB_ANSWERS[key] = method(self, image, *rest)
        found = _DLIB_ANSWERS[key]
        return list(found) if isinstance(found, list) else found  # a caller may extend its list
    return answer


def pytest_addoption(parser):
    parser.addoption("--shared-data", default=os.environ.get("VIDRESTORE_SHARED_DATA", str(REPO.parent / "shared" / "data")),
                     help="folder with test clips and weights (../shared/data)")


@pytest.fixture(scope="session")
def shared_data(request) -> Path:
    path = Path(request.config.getoption("--shared-data"))
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path} (pass --shared-data or set VIDRESTORE_SHARED_DATA)")
    return path


def shared_file(shared_data: Path, rel: str) -> Path:
    path = shared_data / rel
    if not path.is_file():
        pytest.skip(f"{rel} not found under {shared_data}")
    return path


def stream_copied(path: Path, source: Path, kind: str = "video") -> Path:
    """``source``'s first stream of ``kind`` ("video", "audio") alone, its packets copied into
    ``path`` (the container by its name: a raw .hevc, whose packets have no timestamps, or an
    MP4, M4A or Matroska file)."""
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        copy = out.add_stream_from_template(getattr(inp.streams, kind)[0])
        for packet in inp.demux(**{kind: 0}):
            if packet.size:
                packet.stream = copy
                out.mux(packet)
    return path


def astronaut_frame(x: int = 0) -> np.ndarray:
    """scikit-image's astronaut photograph enlarged to 1080 px on a 1920x1080 grey frame, ``x`` px
    from its left third: dlib's HOG sees faces in her mission patch and her name tag there."""
    from skimage import data

    frame = np.full((1080, 1920, 3), 100, np.uint8)
    frame[:, 400 + x:1480 + x] = cv2.resize(data.astronaut(), (1080, 1080), interpolation=cv2.INTER_CUBIC)
    return frame


@contextlib.contextmanager
def held_by_another_run(output: Path, holding: Callable[[], None] = lambda: None) -> Iterator[None]:
    """``output`` held as another run holds it while the body runs (a thread stands in for the other
    process: a thread holding an output holds it again), with ``holding`` run inside the hold."""
    from vidrestore.io.output import writing

    held, release, failed = threading.Event(), threading.Event(), []

    def other_run() -> None:
        try:
            with writing(output):
                holding()
                held.set()
                release.wait(120)
        except BaseException as exc:  # noqa: BLE001 (shown by the test's thread)
            failed.append(exc)
            held.set()

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        held.wait(120)
        if failed:
            raise failed[0]
        yield
    finally:
        release.set()
        thread.join()


def make_clip(path: Path, pts: list[int], size: tuple[int, int] = (48, 64), time_base: Fraction = Fraction(1, 1000),
              rotation: int = 0, audio: bool = False, pix_fmt: str = "yuv420p", images: list[np.ndarray] | None = None,
              color: bool = False, subtitles: list[tuple[int, str]] | None = None, x264_params: str = "", rate: int = 25,
              sar: Fraction | None = None) -> Path:
    """Write an H.264 clip with the given presentation timestamps (VFR allowed); ``subtitles``:
    (start in ms, text) cues in a subtitle stream (mov_text in .mp4, subrip elsewhere);
    ``x264_params``: e.g. "interlaced=1:tff=1" for a stream coded as top-field-first fields;
    ``rate``: the frame rate declared (in a raw .h264 stream, the only timing there is); ``sar``:
    the pixel aspect the stream's headers state."""
    h, w = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
        # x264's macroblock tree gave other bits for the same frames depending on what the process
        # had done before (the same clip differed by up to 31 levels from one test run to the
        # next), so a test whose face sits at a detector's threshold passed or failed by chance
        vs.options = {"x264-params": ":".join(filter(None, [REPRODUCIBLE_X264["x264-params"], x264_params]))}
        if color:
            cc = vs.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 1
        if rotation:
            vs.set_display_rotation(rotation)
        if sar is not None:
            vs.codec_context.sample_aspect_ratio = sar
        if audio:  # every stream must exist before the first packet is muxed
            aus = out.add_stream("aac", rate=44100)
            aus.layout = "mono"
        if subtitles:
            subs = out.add_stream("mov_text" if path.suffix == ".mp4" else "subrip")
            subs.codec_context.subtitle_header = b"[Script Info]\nScriptType: v4.00+\n\n[Events]\n"
            subs.time_base = Fraction(1, 1000)
            for start, text in subtitles:  # MP4's timed text states its length first
                packet = av.Packet(len(text.encode()).to_bytes(2, "big") + text.encode() if path.suffix == ".mp4" else text.encode())
                packet.stream, packet.pts, packet.dts, packet.duration = subs, start, start, 500
                packet.time_base = Fraction(1, 1000)
                out.mux(packet)
        rng = np.random.default_rng(0)
        for i, t in enumerate(pts):
            img = images[i] if images is not None else np.full((h, w, 3), (i * 37) % 256, np.uint8) + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb48le" if img.dtype == np.uint16 else "rgb24")
            f.pts, f.time_base = t, time_base
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        if audio:
            duration = float(pts[-1] * time_base) + 0.1
            for start in range(0, int(44100 * duration), 1024):
                af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 44100, start
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    return path


SOUND_RATE = 48000


def chirp(seconds: float) -> np.ndarray:
    """Sound whose pitch rises all along, so that any stretch of it is found at one place alone."""
    t = np.arange(int(seconds * SOUND_RATE)) / SOUND_RATE
    return (0.5 * np.sin(2 * np.pi * (200 * t + 300 * t * t))).astype(np.float32)


def chirped_clip(path: Path, codec: str, frames: int = 40, bit_rate: int = 0) -> Path:
    """``frames`` of faceless 25 fps video and a chirp (mono, 48 kHz) encoded with ``codec`` (at
    ``bit_rate``, for an encoder that has no default: WMA's)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream(codec, rate=SOUND_RATE)
        sound.layout = "mono"
        if bit_rate:
            sound.bit_rate = bit_rate
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        step, signal = sound.codec_context.frame_size or 1024, chirp(frames / 25)
        for start in range(0, len(signal), step):  # PyAV converts them to the encoder's sample format
            part = av.AudioFrame.from_ndarray(signal[None, start:start + step], format="fltp", layout="mono")
            part.sample_rate, part.pts = SOUND_RATE, start
            out.mux(sound.encode(part))
        out.mux(sound.encode(None))
    return path


def vp9_flac_clip(path: Path, frames: int = 25) -> Path:
    """A .mkv of VP9 video (which .webm holds) and 44.1 kHz stereo FLAC sound (which it does not)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libvpx-vp9", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("flac", rate=44100)
        sound.layout = "stereo"
        sound.metadata["language"] = "fre"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 9, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        tone = np.sin(np.arange(44100 * frames // 25) / 44100 * 2 * np.pi * 440).astype(np.float32)
        for start in range(0, len(tone), 1024):
            piece = np.repeat(tone[None, start:start + 1024], 2, axis=0)
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray((piece * 20000).astype(np.int16).T.reshape(1, -1)), format="s16", layout="stereo")
            chunk.sample_rate, chunk.pts = 44100, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return path


def _middle(image: np.ndarray, shape: Fraction) -> np.ndarray:
    """The middle of ``image`` that is ``shape`` (width / height) in shape."""
    h, w = image.shape[:2]
    ch, cw = (round(w / shape), w) if shape > Fraction(w, h) else (h, round(h * shape))
    return image[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]


def resized_clip(path: Path, source: Path, second: tuple[int, int] | None = None, sar: Fraction | None = None) -> Path:
    """``source``'s frames as MPEG-TS that changes size and pixel format halfway (a splice of two
    recordings, as broadcast captures have): frames 0-11 as they are, then at the size ``second``
    (height, width; else two thirds the size) in yuv444p, stating ``sar``: the middle of each
    picture of the shape that size and pixel aspect show (a 16:9 recording of the same scene).
    Each half is a TS of its own; MPEG-TS halves joined byte for byte play as one stream.
    Its first frame is shown at 1 s, as in a broadcast capture, so that neither half's muxer moves it."""
    from vidrestore.io import VideoReader

    with VideoReader(source) as r:
        images = [f.image for f in r]
    half = len(images) // 2
    h, w = images[0].shape[:2]
    small = second or (h * 2 // 3 // 2 * 2, w * 2 // 3 // 2 * 2)
    first = make_clip(path.with_name("first.ts"), [1000 + i * 40 for i in range(half)], size=(h, w), images=images[:half])
    later = make_clip(path.with_name("second.ts"), [1000 + i * 40 for i in range(half, len(images))], size=small, pix_fmt="yuv444p",
                      images=[cv2.resize(_middle(img, small[1] * (sar or 1) / small[0]), small[::-1], interpolation=cv2.INTER_AREA)
                              for img in images[half:]], sar=sar)
    path.write_bytes(first.read_bytes() + later.read_bytes())
    return path


def aspect_switching_clip(path: Path, aspects: list[Fraction], frames: int = 6, codec: str = "mpeg2video") -> Path:
    """A transport stream at 720x576 (MPEG-2, or H.264 with ``codec`` libx264) whose parts,
    ``frames`` each, state the pixel aspects ``aspects`` (16/15: 4:3, 64/45: 16:9), as a DVB
    channel's SD programme and adverts do: each part a TS of its own, joined byte for byte.
    Pictures grey and bright from edge to edge, with B-frames, so that a decoder gives each picture
    after the next one is read."""
    parts = []
    for k, sar in enumerate(aspects):
        part = path.with_name(f"{path.stem}-{k}.ts")
        with av.open(str(part), "w") as out:
            stream = out.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = 720, 576, "yuv420p"
            stream.codec_context.sample_aspect_ratio = sar
            stream.codec_context.max_b_frames, stream.codec_context.gop_size = 2, 6
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(np.full((576, 720, 3), 120 + 10 * k, np.uint8), format="rgb24")
                frame.pts, frame.time_base = 25 + k * frames + i, Fraction(1, 25)
                out.mux(stream.encode(frame.reformat(format="yuv420p")))
            out.mux(stream.encode(None))
        parts.append(part.read_bytes())
    path.write_bytes(b"".join(parts))
    return path


def caption_sei(pairs: list[tuple[int, int]]) -> bytes:
    """An Annex B SEI NAL unit carrying CEA-608 byte ``pairs`` as ATSC A/53 cc_data (field 1), as
    broadcast H.264 carries closed captions; FFmpeg's decoder exports them as A53_CC side data."""
    cc_data = bytes([0xC0 | len(pairs), 0xFF]) + b"".join(bytes([0xFC, a, b]) for a, b in pairs) + b"\xff"
    payload = b"\xb5\x00\x31GA94\x03" + cc_data  # ITU-T T.35 USA, ATSC, "GA94", cc_data type
    return b"\x00\x00\x00\x01\x06" + escape(bytes([4, len(payload)]) + payload + b"\x80")


def _before_first_slice(access_unit: bytes, nal: bytes) -> bytes:
    at = 0
    while (at := access_unit.find(b"\x00\x00\x01", at)) >= 0:
        if access_unit[at + 3] & 0x1F in (1, 5):  # a coded slice: the SEI must come before it
            start = at - 1 if at and access_unit[at - 1] == 0 else at
            return access_unit[:start] + nal + access_unit[start:]
        at += 3
    raise ValueError("access unit without a slice")


def caption_pairs(text: str) -> list[tuple[int, int]]:
    """``text`` as CEA-608 byte pairs: each character with odd parity, padded to a whole pair."""
    odd = [b | 0x80 if b.bit_count() % 2 == 0 else b for b in text.encode("ascii")]
    odd += [0x80] * (len(odd) % 2)
    return list(zip(odd[::2], odd[1::2], strict=True))


def pop_on(text: str) -> list[tuple[int, int]]:
    """The CEA-608 commands that pop ``text`` on (channel 1), each sent twice as broadcasters do:
    load, erase the hidden screen, place on row 15, the words, show them."""
    return [(0x94, 0x20)] * 2 + [(0x94, 0xAE)] * 2 + [(0x94, 0x52)] * 2 + caption_pairs(text) + [(0x94, 0x2F)] * 2


ERASE_SCREEN = [(0x94, 0x2C)] * 2  # CEA-608's Erase Displayed Memory, sent twice
PADDING = [(0x80, 0x80)]  # what a broadcast frame without captions carries


def captioned_clip(path: Path, source: Path, sent: dict[int, list[tuple[int, int]]] | None = None) -> Path:
    """``source``'s frames as an MPEG-TS H.264 stream whose frames carry CEA-608 byte pairs in their
    SEI: frame i those ``sent`` gives it (padding where it gives none); without ``sent``, (0x94,
    0x2C) and (0x80 + i % 64, 0x80), so each frame's captions are its own."""
    from vidrestore.io import VideoReader

    with VideoReader(source) as r:
        images = [f.image for f in r]
    with av.open(str(path), "w", format="mpegts") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.height, vs.width = images[0].shape[:2]
        vs.pix_fmt = "yuv420p"
        order = {}
        for i, image in enumerate(images + [None]):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24") if image is not None else None
            if frame is not None:
                frame.pts = i
                order[i] = caption_sei([(0x94, 0x2C), (0x80 + i % 64, 0x80)] if sent is None else sent.get(i, PADDING))
            for packet in vs.encode(frame):  # packets come in decode order: each takes its frame's SEI
                captioned = av.Packet(_before_first_slice(bytes(packet), order[packet.pts]))
                captioned.pts, captioned.dts, captioned.time_base = packet.pts, packet.dts, packet.time_base
                captioned.is_keyframe, captioned.stream = packet.is_keyframe, vs
                out.mux(captioned)
    return path


def captions(path: Path) -> list[bytes]:
    """The A53 closed-caption bytes of each decoded frame of ``path``, in display order (b"" for none)."""
    with av.open(str(path)) as c:
        return [b"".join(bytes(sd) for sd in side_data(f, "h264") if sd.type == av.sidedata.sidedata.Type.A53_CC)
                for f in c.decode(video=0)]


def cover_picture() -> bytes:
    """A small JPEG, as the cover art yt-dlp's --embed-thumbnail adds to downloads."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.tile(np.arange(32, dtype=np.uint8)[:, None, None] * 8, (1, 24, 3))).save(buffer, "JPEG")
    return buffer.getvalue()


def audio_only(path: Path, frames: int = 5) -> Path:
    """A file of silent AAC sound alone (an .m4a)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        stream.layout = "mono"
        for i in range(frames):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def covered_clip(path: Path, source: Path) -> Path:
    """A copy of ``source`` with :func:`cover_picture` as cover art: in .mp4 a picture stream (the
    covr atom), in .mkv an image attachment named cover.jpg (FFmpeg reads both as a video stream
    with the attached_pic disposition)."""
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in src.streams}
        if path.suffix == ".mkv":
            out.add_attachment("cover.jpg", "image/jpeg", cover_picture())
        else:
            cover = out.add_stream("mjpeg")
            cover.width, cover.height, cover.pix_fmt = 24, 32, "yuvj420p"
            cover.disposition = av.stream.Disposition.attached_pic
            packet = av.Packet(cover_picture())
            packet.stream, packet.pts, packet.dts, packet.time_base = cover, 0, 0, Fraction(1, 90000)
            out.mux(packet)
        for packet in src.demux():
            if packet.size:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    return path


def dressed_clip(path: Path, source: Path) -> Path:
    """A Matroska copy of ``source`` (a clip with audio and subtitles) dressed as a finished programme:
    a title, chapters, a font attachment, stream titles and languages, and dispositions (the
    audio a default commentary track, the subtitles forced)."""
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        out.metadata["title"] = "Archive reel 7"
        copies = {s.index: out.add_stream_from_template(s) for s in src.streams}
        video, audio, subtitles = (copies[s.index] for s in src.streams)
        video.metadata.update(title="Camera A", language="eng")
        audio.metadata.update(title="Commentary", language="fre")
        audio.disposition = av.stream.Disposition.default | av.stream.Disposition.comment
        subtitles.metadata["language"] = "eng"
        subtitles.disposition = av.stream.Disposition.forced
        out.add_attachment("font.ttf", "application/x-truetype-font", b"\0\1\0\0 not really a font")
        out.set_chapters([{"id": 1, "start": 0, "end": 200, "time_base": Fraction(1, 1000), "metadata": {"title": "Intro"}},
                          {"id": 2, "start": 200, "end": 480, "time_base": Fraction(1, 1000), "metadata": {"title": "Main"}}])
        for packet in src.demux():
            if packet.size:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    return path


# What a drone's KLV packet starts with: a MISB ST 0601 local set's 16-byte key, then a length.
KLV_KEY = bytes.fromhex("060e2b34020b01010e01030101000000") + bytes([5])
GPMF_KEY = b"DEVC\x00\x01\x00\x05"  # GoPro's telemetry (GPMF): a device's key, type, size and count


def data_clip(path: Path, source: Path, codec: str, key: bytes, handler: str = "", every: int = 5) -> Path:
    """A copy of ``source`` with a data stream of ``codec`` that FFmpeg has no decoder for (a
    drone's KLV in MPEG-TS, GoPro's telemetry in MP4) named ``handler``: a packet at every
    ``every``-th frame, ``key`` and a count, lasting to the next."""
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in src.streams}
        data = out.add_data_stream(codec)
        if handler:
            data.metadata["handler_name"] = handler
        frames = []
        for packet in src.demux():
            if packet.size:
                frames += [packet.pts] if packet.stream.type == "video" else []
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
        times = sorted(frames)[::every]
        for count, (pts, after) in enumerate(zip(times, [*times[1:], None], strict=True)):  # muxed last: interleaved by time
            sample = av.Packet(key + f"{count:05d}".encode())
            sample.stream, sample.time_base = data, src.streams.video[0].time_base
            sample.pts = sample.dts = pts
            sample.duration = (after - pts) if after is not None else times[1] - times[0]
            out.mux(sample)
    return path


def timecoded_clip(path: Path, timecode: str = "01:00:00:00", frames: int = 10) -> Path:
    """A QuickTime clip with a timecode (tmcd) track, as NLEs and cameras write them."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.metadata["timecode"] = timecode
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def dpx_scan(pattern: Path, images: list[np.ndarray], first: int, rate: float, timecode: str, transfer: int = 0) -> Path:
    """A DPX sequence as film scanners write it: 2048-byte headers whose film header states the
    frame rate and whose television header each picture's SMPTE timecode (BCD, 0xHHMMSSFF), counted
    on from ``timecode`` at ``rate``. FFmpeg's own DPX encoder writes neither, so its 1664-byte
    header is extended here. ``images``: uint8 RGB, or uint16 RGB of 10-bit codes; ``transfer``:
    the transfer characteristic and colorimetric codes to state (1: printing density), else FFmpeg's."""
    pattern.parent.mkdir(exist_ok=True)
    hh, mm, ss, ff = map(int, timecode.split(":"))
    start = ((hh * 60 + mm) * 60 + ss) * round(rate) + ff
    bcd = lambda v: (v // 10) << 4 | v % 10
    for n, image in enumerate(images):
        path = pattern.parent / (pattern.name % (first + n))
        with av.open(str(path), "w", format="image2", options={"update": "1"}) as out:
            stream = out.add_stream("dpx", rate=round(rate))
            fmt = "rgb24" if image.dtype == np.uint8 else "gbrp10le"
            stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], fmt
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format=fmt)))
            out.mux(stream.encode())
        data = path.read_bytes()
        endian = "<" if data[:4] == b"XPDS" else ">"
        offset = struct.unpack(endian + "I", data[4:8])[0]
        header = bytearray(data[:offset] + b"\xff" * (2048 - offset))  # undefined fields are all ones
        seconds, f = divmod(start + n, round(rate))
        minutes, sec = divmod(seconds, 60)
        h, m = divmod(minutes, 60)
        code = bcd(h) << 24 | bcd(m) << 16 | bcd(sec) << 8 | bcd(f)
        for at, fmt, value in [(4, "I", 2048), (16, "I", 2048 + len(data) - offset), (808, "I", 2048),  # image offsets, file size
                               (1724, "f", rate), (1920, "I", code)]:
            header[at:at + 4] = struct.pack(endian + fmt, value)
        if transfer:
            header[801:803] = bytes([transfer, transfer])
        path.write_bytes(bytes(header) + data[offset:])
    return pattern


MASTERING_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"  # BT.2020, 1000 nits


def hdr10_clip(path: Path, frames: int = 6, rotation: int = 0) -> Path:
    """A 10-bit PQ (HDR10) H.264 clip whose stream carries mastering-display and content-light SEI
    (MaxCLL 1000, MaxFALL 400), which FFmpeg's decoder attaches to the frames as side data;
    ``rotation``: the display rotation it is tagged with."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p10le"
        cc = vs.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 9, 16, 9, 1  # BT.2020, PQ, limited
        vs.options = {"x264-params": f"mastering-display={MASTERING_DISPLAY}:cll=1000,400"}
        if rotation:
            vs.set_display_rotation(rotation)
        for i in range(frames):
            image = np.full((48, 64, 3), 8000 * (i + 1), np.uint16)
            frame = av.VideoFrame.from_ndarray(image, format="rgb48le")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def hdr10_plus_payload(peak: int) -> bytes:
    """A valid SMPTE ST 2094-40 T.35 payload (one window, two percentiles, no tone curve) whose
    targeted display peak is ``peak`` cd/m2, so that each frame's metadata can differ."""
    from vidrestore.io.hdr10plus import HDR10_PLUS_PREFIX

    fields = [(1, 8), (1, 2), (peak, 27), (0, 1), *[(50000, 17)] * 3, (20000, 17), (2, 4), (50, 7), (10000, 17),
              (99, 7), (60000, 17), (10, 10), (0, 1), (0, 1), (0, 1)]  # version 1, one window ... no saturation mapping
    value, bits = 0, 0
    for field, width in fields:
        value, bits = value << width | field, bits + width
    return HDR10_PLUS_PREFIX + (value << -bits % 8).to_bytes((bits + 7) // 8, "big")


def hdr10_plus_clip(path: Path, source: Path, rate: Fraction = Fraction(25), encoder: str = "libx265") -> Path:
    """``source`` (an HDR10 clip, :func:`graded_clip`) re-encoded by ``encoder`` (x265 or SVT-AV1)
    at ``rate`` with HDR10+ metadata in every frame (an SEI message, a metadata OBU), each frame's
    targeted display peak its own (400 + 50 × its number), as Samsung's phones record HDR10+ video;
    B-frames (hidden frames in AV1) put the packets out of display order."""
    from vidrestore.io.hdr10plus import WRITTEN_BY, with_payload

    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        vs = out.add_stream(encoder, rate=rate)
        vs.width, vs.height, vs.pix_fmt = inp.streams.video[0].width, inp.streams.video[0].height, "yuv420p10le"
        cc = vs.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 9, 16, 9, 1  # BT.2020, PQ, limited
        vs.options = {"x265-params": "log-level=none"} if encoder == "libx265" else {}

        def mux(packets: list[av.Packet]) -> None:
            for packet in packets:
                number = round(packet.pts * packet.time_base * rate)
                carrying = av.Packet(with_payload(bytes(packet), hdr10_plus_payload(400 + 50 * number), WRITTEN_BY[encoder], None))
                carrying.pts, carrying.dts, carrying.time_base = packet.pts, packet.dts, packet.time_base
                carrying.stream, carrying.is_keyframe = vs, packet.is_keyframe
                out.mux(carrying)

        for i, frame in enumerate(inp.decode(video=0)):
            frame.pts, frame.time_base = i, 1 / rate
            mux(vs.encode(frame))
        mux(vs.encode(None))
    return path


def hdr10_plus_metadata(path: Path) -> list[bytes]:
    """Each frame's HDR10+ metadata as FFmpeg's decoder reads it (b"" for none), in display order."""
    with av.open(str(path)) as c:
        codec = c.streams.video[0].codec_context.codec.canonical_name
        return [b"".join(bytes(sd) for sd in side_data(f, codec) if str(sd.type).endswith("DYNAMIC_HDR_PLUS")) for f in c.decode(video=0)]


def graded_clip(path: Path, source: Path, light, frames: int = 8, primaries: int | None = None, rotation: int = 0) -> Path:
    """``source``'s first ``frames`` in ``light`` (io.linear.Light: PQ or HLG, as a grader makes
    HDR, SDR white at BT.2408's 203 cd/m2, in BT.2020's primaries; or a camera's log, in its gamut,
    the picture's light taken for the scene's), 10-bit FFV1 (lossless, so that every sample read
    back is the one written), tagged as HDR is (``primaries``: the primaries tag, 2 leaves it out)
    or as cameras tag their log video (BT.709). The top left corner holds a highlight at about
    five times white (1000 cd/m2) and, below it, a green no Rec. 709 display shows: what an SDR
    view clips. ``rotation``: the display rotation the stream is tagged with, the pictures stored
    turned the other way, as a phone stores them, so that they play upright."""
    from vidrestore.io import VideoReader
    from vidrestore.io.linear import HDR_LIGHTS, from_light, srgb_decode, to_rec709, video_chromaticities

    hdr = light in HDR_LIGHTS
    primaries = primaries if primaries is not None else 9 if hdr else 1
    to_source = np.linalg.inv(to_rec709(video_chromaticities(light, primaries)))
    with VideoReader(source) as r, av.open(str(path), "w") as out:
        vs = out.add_stream("ffv1", rate=25)
        turned = (rotation // 90) % 2
        vs.width, vs.height = (r.info.height, r.info.width) if turned else (r.info.width, r.info.height)
        vs.pix_fmt = "yuv420p10le"
        cc = vs.codec_context
        cc.color_primaries, cc.color_trc = primaries, {"pq": 16, "hlg": 18}.get(light.value, 1)
        cc.colorspace, cc.color_range = 9 if hdr else 1, 1
        if rotation:
            vs.set_display_rotation(rotation)
        for f in r:
            if f.index == frames:
                break
            linear = srgb_decode(f.image.astype(np.float32) / 255) @ to_source.T
            linear[:8, :8] = 1000 / 203
            linear[8:16, :8] = (0.0, 0.6, 0.0)
            codes = np.clip(from_light(linear, light) * 65535 + 0.5, 0, 65535).astype(np.uint16)
            codes = np.ascontiguousarray(np.rot90(codes, -rotation // 90))
            frame = av.VideoFrame.from_ndarray(codes, format="rgb48le").reformat(format="yuv420p10le", dst_colorspace=cc.colorspace, dst_color_range=1)
            frame.pts = f.index
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def dolby_vision_tagged(path: Path, source: Path) -> Path:
    """``source``'s frames as 10-bit HEVC in an .mp4 sample entry of Dolby Vision (dvh1), as
    Dolby Vision files name their streams (no RPU: nothing here writes one)."""
    from vidrestore.io import VideoReader

    with VideoReader(source) as r, av.open(str(path), "w") as out:
        vs = out.add_stream("libx265", rate=25)
        vs.width, vs.height, vs.pix_fmt = r.info.width, r.info.height, "yuv420p10le"
        vs.codec_tag = "dvh1"
        vs.options = {"x265-params": "log-level=error"}
        for f in r:
            frame = av.VideoFrame.from_ndarray(f.image, format="rgb24")
            frame.pts = f.index
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def hdr10_metadata(path: Path) -> dict[str, bytes]:
    """The mastering-display and content-light side data of the first decoded frame of ``path``."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return {str(sd.type).rsplit(".", 1)[-1]: bytes(sd) for sd in side_data(frame, c.streams.video[0].codec_context.name)
                if str(sd.type).endswith(("MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL"))}


def _default_stop_signals() -> None:
    # A suite started in the background by a shell without job control inherits SIGINT ignored,
    # and Python then installs no Ctrl-C handler in its children: the stop tests would hit nothing.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def start_and_signal_when(cmd: list[str], ready: Callable[[], bool], sig: int, timeout: float = 120) -> subprocess.Popen:
    """Start ``cmd`` with the stop signals at their defaults, send it ``sig`` as soon as ``ready()``
    holds, and wait for it to end. Fails if it ended first."""
    # an ignored signal stays ignored across exec: only the child can reset it
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=_default_stop_signals)  # noqa: PLW1509
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, f"the command ended before it could be stopped: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    return proc


def read_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory) -> Path:
    from vidrestore.sample import make_sample

    return make_sample(tmp_path_factory.mktemp("sample") / "sample.mp4", frames=24)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny FLIPNET built here: exercises the real restorer path; it is not a trained restorer."""
    import torch

    from vidrestore.models.flipnet import Flipnet, load_config, save_flipnet

    torch.manual_seed(0)
    model = Flipnet(load_config("tiny"))
    # diffusers zero-initialises the output conv; untrained, every face would come out the same grey,
    # and tests could not tell one face's crops from another's.
    torch.nn.init.normal_(model.conv_out.weight, std=0.05)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_flipnet(model, path)
    return path


# The sample (one shot of 24 frames) restored by the tiny model, losslessly coded, in windows of 4:
# a run split into segments inside the shot must give the frames of a run in one piece.
ONE_TAKE = ["--detector", "dlib", "--quiet", "--codec", "ffv1", "--batch-size", "4"]


@pytest.fixture(scope="session")
def one_take_whole(sample_clip, tiny_model, tmp_path_factory) -> Path:
    """The sample restored in one piece with ``ONE_TAKE`` options (single-file command, .mkv)."""
    from vidrestore.cli import main

    whole = tmp_path_factory.mktemp("whole") / "whole.mkv"
    assert main([str(sample_clip), str(whole), "--model", str(tiny_model), *ONE_TAKE, "--segment-frames", "0"]) == 0
    return whole


@pytest.fixture(scope="session")
def two_face_clip(sample_clip, tmp_path_factory) -> Path:
    """18 frames, two faces side by side: the sample's face on the left in frames 0-8, and the same
    face darker in swapped colours (so their crops differ) on the right from frame 3 on."""
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        faces = [f.image for f in r][:18]
    blank = np.full_like(faces[0], 128)
    other = [np.ascontiguousarray(f[..., ::-1] // 3) for f in faces]
    images = [np.concatenate([faces[i] if i < 9 else blank, other[i] if i >= 3 else blank], 1) for i in range(18)]
    h, w = images[0].shape[:2]
    return make_clip(tmp_path_factory.mktemp("two") / "two.mp4", [i * 40 for i in range(18)], size=(h, w), images=images)


def aligned_clip(sample_clip: Path, path: Path, side: int) -> Path:
    """The sample's face as a clip of FFHQ-aligned ``side`` px crops, as KEEP's test clips are."""
    import torch

    from vidrestore.faces.align import align_faces
    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.faces.track import TrackerConfig
    from vidrestore.io import VideoReader
    from vidrestore.pipeline import PipelineConfig, analyse

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    track = analyse(sample_clip, PipelineConfig(tracker=TrackerConfig(detect_every=1)), det).tracks[0]
    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r][track.start : track.end]
    crops = [align_faces(torch.from_numpy(im).permute(2, 0, 1), track.landmarks[i][None], side)[0][0] for i, im in enumerate(frames)]
    images = [np.ascontiguousarray((c.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for c in crops]
    return make_clip(path, [i * 40 for i in range(len(images))], size=(side, side), images=images)


def combing(image: np.ndarray) -> float:
    """Mean distance of each row from the average of its neighbours: high where two fields disagree."""
    rows = image.astype(float)
    return float(np.abs(rows[1:-1] - (rows[:-2] + rows[2:]) / 2).mean())


def woven_frames(frames: list[np.ndarray], top_first: bool = True) -> list[np.ndarray]:
    """``frames`` as interlaced video: the later field of each is the next frame moved 4 px to the
    right, so each field is a moment of its own (combing on every edge)."""
    later = 1 if top_first else 0  # the rows of the later field
    woven = []
    for i, first in enumerate(frames):
        image = first.copy()
        image[later::2] = np.roll(frames[min(i + 1, len(frames) - 1)], 4, axis=1)[later::2]
        woven.append(image)
    return woven


def weave_clip(path: Path, source: Path, top_first: bool = True, declare: bool = True) -> Path:
    """``source``'s frames as interlaced video (:func:`woven_frames`); a keyframe every 6 frames.
    ``declare``: code it as interlaced (field order tt or bb); otherwise it is flagged progressive,
    as many archival transfers are."""
    from vidrestore.io import VideoReader

    with VideoReader(source) as r:
        woven = woven_frames([f.image for f in r], top_first)
    h, w = woven[0].shape[:2]
    fields = f"interlaced=1:{'tff' if top_first else 'bff'}=1:" if declare else ""
    return make_clip(path, [i * 40 for i in range(len(woven))], size=(h, w), images=woven, audio=True,
                     x264_params=f"{fields}keyint=6:no-mbtree=1")


def film_frames(source: Path) -> list[np.ndarray]:
    """``source``'s frames as film that pans: frame i moved 3·i px to the right (every edge moves)."""
    from vidrestore.io import VideoReader

    with VideoReader(source) as r:
        return [np.ascontiguousarray(np.roll(f.image, 3 * i, axis=1)) for i, f in enumerate(r)]


def ntsc_clip(path: Path, frames: list[np.ndarray], declare: bool = False) -> Path:
    """``frames`` at 30000/1001 fps, coded losslessly (x264 at qp 0, so each field keeps its own
    pixels) as progressive, as many transfers are flagged, or with ``declare`` as interlaced
    fields, as on DVDs; a keyframe every 10 frames; with a sound track."""
    h, w = frames[0].shape[:2]
    return make_clip(path, list(range(len(frames))), size=(h, w), time_base=Fraction(1001, 30000), images=frames,
                     audio=True, x264_params=f"{'interlaced=1:tff=1:' if declare else ''}keyint=10:qp=0")


def telecine_clip(path: Path, source: Path, top_first: bool = True, declare: bool = False) -> Path:
    """:func:`film_frames` of ``source`` as 24 fps film in 3:2 pulldown (:func:`vidrestore.cadence.pulled_down`):
    30000/1001 fps, written by :func:`ntsc_clip`."""
    from vidrestore.cadence import pulled_down

    return ntsc_clip(path, pulled_down(film_frames(source), top_first), declare)


def hybrid_transfer(folder: Path) -> tuple[Path, list[np.ndarray]]:
    """A hybrid transfer at 30000/1001 (:func:`ntsc_clip`): 48 frames of panning film in 3:2
    pulldown (60 frames), then 20 frames of video whose every field is a moment of its own; and
    the 68 pictures it was made from, each film frame once and each video frame once."""
    from vidrestore.cadence import pulled_down
    from vidrestore.io import VideoReader
    from vidrestore.sample import make_sample

    with VideoReader(make_sample(folder / "sample.mp4", frames=68, size=(240, 320))) as r:
        moving = [np.ascontiguousarray(np.roll(f.image, 3 * i, axis=1)) for i, f in enumerate(r)]
    return ntsc_clip(folder / "hybrid.mp4", pulled_down(moving[:48]) + woven_frames(moving[48:])), moving


@pytest.fixture(scope="session")
def hybrid_clip(tmp_path_factory) -> Path:
    """:func:`hybrid_transfer`'s clip."""
    return hybrid_transfer(tmp_path_factory.mktemp("hybrid"))[0]


@pytest.fixture(scope="session")
def telecined_clip(sample_clip, tmp_path_factory) -> Path:
    """The sample's 24 frames as panning film in 3:2 pulldown: 30 frames (see telecine_clip)."""
    return telecine_clip(tmp_path_factory.mktemp("telecined") / "telecined.mp4", sample_clip)


@pytest.fixture(scope="session")
def interlaced_clip(sample_clip, tmp_path_factory) -> Path:
    """The sample's 24 frames, coded as top-field-first interlaced video (see weave_clip)."""
    return weave_clip(tmp_path_factory.mktemp("interlaced") / "interlaced.mp4", sample_clip)


@pytest.fixture(scope="session")
def three_shot_clip(sample_clip, tmp_path_factory) -> Path:
    """48 frames with audio in three shots of 16 (a face in each): the sample clip, the same face
    darker in swapped colours, then the sample again."""
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r][:16]
    images = frames + [np.ascontiguousarray(f[..., ::-1] // 3) for f in frames] + frames
    h, w = images[0].shape[:2]
    return make_clip(tmp_path_factory.mktemp("shots") / "three_shots.mp4", [i * 40 for i in range(len(images))],
                     size=(h, w), images=images, audio=True)


class Negative(PassThroughRestorer):
    """A visible change: each face comes out as its negative."""

    def restore_tracks(self, pieces):
        self.notes[:] = ["every face came out as its negative"]  # what a restorer says reaches the report
        return [1 - crops for crops, _ in pieces]


def paste_strength(source: np.ndarray, out: np.ndarray, landmarks: np.ndarray) -> float:
    """How much of Negative's face is in ``out`` around the landmarks: 0 the input, 1 its negative."""
    ratios = []
    for x, y in np.round(landmarks).astype(int):
        a, b = source[y - 3:y + 4, x - 3:x + 4].astype(float), out[y - 3:y + 4, x - 3:x + 4].astype(float)
        keep = np.abs(2 * a - 255) > 40  # where the negative differs enough from the input to measure
        ratios += list(((a - b) / (2 * a - 255))[keep])
    return float(np.median(ratios))
