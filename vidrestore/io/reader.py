"""Streaming video decode with PyAV.

A background thread demuxes and decodes into a bounded queue, so memory stays at ``prefetch`` frames
(fewer where they would hold more than :data:`PREFETCH_BYTES`) whatever the video's length, and
decoding overlaps with the GPU/CPU work downstream. Packets that fail to decode are counted and
skipped: a damaged file restores what decodes.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..errors import InputError
from .excerpt import Excerpt, clock
from .fitting import StreamFitter
from .linear import VIDEO_LIGHTS, Light, display_view, to_display
from .patch import Box, crop_frame, merged, patch_area, patchable, rotate_box
from .probe import VideoInfo, open_input, probe
from .sequence import is_sequence

_END = object()


@dataclass
class Frame:
    """One decoded frame. ``image`` is RGB in display orientation (rotation applied): uint8, or
    uint16 when a reader with ``keep_depth`` reads a source deeper than 8 bits."""

    index: int
    pts: int | None
    image: np.ndarray | None  # None for a frame a reader with ``images_for`` was not asked to convert
    source: av.VideoFrame  # the decoded frame, re-encoded untouched when no face is pasted into it
    scale: tuple[float, float] = (1.0, 1.0)  # image size / display size (x, y); below 1 when the reader downscales
    fields: np.ndarray | None = None  # a ``keep_fields`` reader's: the interlaced frame's own image, for faces to be pasted into
    # a ``keep_fields`` or ``double_rate`` reader's, where each field is a moment of its own: the
    # later field's moment, deinterlaced as ``image`` is the earlier's, so that each field gets the face it showed
    second: np.ndarray | None = None
    # a ``double_rate`` reader's: the later field's progressive frame, a frame of its own in the
    # output, timed halfway to the next frame in half the stream's time base (as bwdif times it)
    second_source: av.VideoFrame | None = None


@dataclass
class DecodeStats:
    frames: int = 0
    corrupt_packets: int = 0
    resized: int = 0  # frames decoded at another size or pixel format than the stream starts with
    boxed: int = 0  # frames of another shape (by size or stated pixel aspect), placed on black bars (see StreamFitter)
    damaged_s: list[float] = dataclasses.field(default_factory=list)  # where packets the demuxer flagged corrupt are, from the start
    bytes_read: int = 0  # how far into the file the demuxer has read


def rotate_to_display(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a counter-clockwise display rotation (degrees, multiple of 90) to an HxWxC image."""
    return np.ascontiguousarray(np.rot90(image, k=(rotation // 90) % 4)) if rotation % 360 else image


def rotate_to_coded(image: np.ndarray, rotation: int) -> np.ndarray:
    """Undo :func:`rotate_to_display`."""
    return np.ascontiguousarray(np.rot90(image, k=-(rotation // 90) % 4)) if rotation % 360 else image


def bit_depth(pix_fmt: str) -> int:
    """Bits of the deepest component of ``pix_fmt`` (8 for yuv420p, 10 for yuv422p10le)."""
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def frame_to_rgb(frame: av.VideoFrame, info: VideoInfo, max_side: int = 0, deep: bool = False,
                 reformatter: VideoReformatter | None = None, viewed_in: list[Box] | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """RGB image in display orientation, downscaled in the same FFmpeg conversion so that its longer
    side is at most ``max_side`` (0: full size); returns it with its scale (x, y) to display pixels.
    ``deep``: uint16 (rgb48) instead of uint8, so 10- and 12-bit sources keep their precision.
    ``reformatter``: one kept across the frames of a stream, so FFmpeg sets its conversion up once
    (set up per frame, a downscaling conversion cost three times as much as the decode itself).
    ``viewed_in``: for HDR or log video (whose view costs the most) in a frame the patch can address,
    show only these boxes (display pixels of the full-size image); the rest of the image is black."""
    viewed = info.light in VIDEO_LIGHTS
    if info.light is not Light.DISPLAY and not viewed:  # FFmpeg's scaler would clamp a plate's float samples, and knows no printing density
        rgb, scale = to_display(frame, info.light, max_side, deep, info.chromaticities)
        return rotate_to_display(rgb, info.rotation), scale[::-1] if (info.rotation // 90) % 2 else scale
    if viewed and viewed_in is not None and not max_side and patchable(frame):
        return _viewed_in(frame, info, viewed_in, deep, reformatter or VideoReformatter()), (1.0, 1.0)
    # Convert with the stream's own matrix and range; FFmpeg's default (BT.601, limited) shifts
    # colours of HD material, and the inverse conversion on encode must be the same one.
    matrix = info.color.matrix if info.color.matrix not in (0, 2) else None
    kwargs = {"src_colorspace": matrix} if matrix else {}
    if info.color.range:
        kwargs["src_color_range"] = info.color.range
    factor = min(1.0, max_side / max(frame.width, frame.height)) if max_side else 1.0
    if factor < 1.0:
        kwargs.update(width=max(1, round(frame.width * factor)), height=max(1, round(frame.height * factor)),
                      interpolation="AREA")
    rgb = (reformatter or VideoReformatter()).reformat(frame, format="rgb48le" if deep or viewed else "rgb24", **kwargs).to_ndarray()
    scale = (rgb.shape[1] / frame.width, rgb.shape[0] / frame.height)
    if (info.rotation // 90) % 2:
        scale = scale[::-1]
    if viewed:  # HDR's or a camera log's codes, converted by FFmpeg from YUV like any video's, shown as an SDR grade would show them
        rgb = display_view(rgb, info.light, info.chromaticities, deep)
    return rotate_to_display(rgb, info.rotation), scale


def _viewed_in(frame: av.VideoFrame, info: VideoInfo, boxes: list[Box], deep: bool, reformatter: VideoReformatter) -> np.ndarray:
    """The view of HDR or log video's ``frame`` (:func:`.patch.patchable`) in ``boxes`` (display
    pixels), black elsewhere: its codes converted around the boxes alone (:func:`codes_around`)."""
    turned = (info.rotation // 90) % 2
    height, width = (frame.width, frame.height) if turned else (frame.height, frame.width)
    inside = [(max(0, x0), max(0, y0), min(width, x1), min(height, y1)) for x0, y0, x1, y1 in merged(boxes)]
    inside = [(x0, y0, x1, y1) for x0, y0, x1, y1 in inside if x1 > x0 and y1 > y0]
    codes = codes_around(frame, dataclasses.replace(info, light=Light.DISPLAY), inside, reformatter)
    shown = np.zeros((height, width, 3), np.uint16 if deep else np.uint8)
    for x0, y0, x1, y1 in inside:
        shown[y0:y1, x0:x1] = display_view(codes[y0:y1, x0:x1], info.light, info.chromaticities, deep)
    return shown


def codes_around(frame: av.VideoFrame, info: VideoInfo, boxes: list[Box], reformatter: VideoReformatter) -> np.ndarray:
    """The 16-bit R'G'B' codes of ``frame`` (:func:`.patch.patchable`; ``info`` says how it converts,
    as display-referred video) in display orientation (a view of an array in the frame's own),
    where :func:`.patch.patch_frame` reads them for ``boxes`` (display pixels) and so in the boxes
    themselves. Each part is converted from YUV alone, with a margin that makes it the whole
    frame's conversion there (tests/test_patch.py); elsewhere the array is unset. HDR video's
    faces are read and written back so: a whole 3840x2160 frame's conversion cost 32 ms, the part
    around a face a third of its height 2 ms (bench/video_light.py --view-only)."""
    codes = np.empty((frame.height, frame.width, 3), np.uint16)
    turns = info.rotation // 90
    shown = (frame.width, frame.height) if turns % 2 else (frame.height, frame.width)
    unturned = dataclasses.replace(info, rotation=0)
    for box in boxes:
        read = patch_area(rotate_box(box, -turns % 4, *shown), frame.height, frame.width)
        x0, y0, x1, y1 = patch_area(read, frame.height, frame.width)
        part = frame_to_rgb(crop_frame(frame, (x0, y0, x1, y1)), unturned, deep=True, reformatter=reformatter)[0]
        codes[read[1] : read[3], read[0] : read[2]] = part[read[1] - y0 : read[3] - y0, read[0] - x0 : read[2] - x0]
    return np.rot90(codes, turns)


def _merged(spans: list[range]) -> tuple[list[int], list[int]]:
    """Starts and stops of the union of ``spans``, as disjoint ranges in order (for bisection)."""
    starts: list[int] = []
    stops: list[int] = []
    for span in sorted((r for r in spans if len(r)), key=lambda r: r.start):
        if stops and span.start <= stops[-1]:
            stops[-1] = max(stops[-1], span.stop)
        else:
            starts.append(span.start)
            stops.append(span.stop)
    return starts, stops


PARITIES = ("tff", "bff")


@dataclass(frozen=True)
class FieldFilter:
    """How both passes turn interlaced frames into progressive ones, one frame out per frame in.

    ``parity``: which field is shown first, "tff" or "bff". ``match``: the frames are telecined
    film (3:2 pulldown: two frames in five woven from two film frames). FFmpeg's fieldmatch then
    pairs each field with its partner from the same film frame, which gives back whole film frames
    at full vertical resolution, and bwdif deinterlaces only the frames it could not pair.
    Otherwise bwdif deinterlaces every frame. Nothing is decimated: frame count and timestamps stay
    the input's, and one frame in five repeats the one before it, as it does in the telecined input."""

    parity: str
    match: bool = False

    def __post_init__(self) -> None:
        if self.parity not in PARITIES:
            raise ValueError(f"field parity must be one of {PARITIES}, not {self.parity!r}")

    def describe(self) -> str:
        return f"fields matched with fieldmatch, {self.parity} (inverse telecine)" if self.match \
            else f"deinterlaced with bwdif, {self.parity}"


@dataclass(frozen=True)
class FieldScan:
    """What FFmpeg made of stretches of a stream's frames. idet: frames that look interlaced, by
    field order, and frames that look progressive (static frames count as neither). fieldmatch, in the
    field order that suits the stream better: frames it rebuilt from fields of their neighbours
    (``matched``) and frames it left combed (``combed``)."""

    tff: int
    bff: int
    progressive: int
    matched: int = 0
    combed: int = 0
    match_parity: str = "tff"
    stretches: int = 1  # how many stretches were read (see _stretches)

    @property
    def interlaced(self) -> bool:
        return self.tff + self.bff > self.progressive

    @property
    def telecined(self) -> bool:
        """Field matching repairs the combed frames: telecined film (pulldown repeats a field in two
        frames of five), not video whose every field is a moment of its own (where nothing matches)."""
        scanned = self.tff + self.bff + self.progressive
        return self.matched >= max(3, scanned // 10) and self.matched > 2 * self.combed

    @property
    def parity(self) -> str:
        return "bff" if self.bff > self.tff else "tff"


def _chain(stream: av.video.stream.VideoStream, filters: list[tuple[str, str]]) -> av.filter.Graph:
    """A configured filter graph: ``stream``'s frames through ``filters`` (name, arguments) in turn."""
    graph = av.filter.Graph()
    node = graph.add_buffer(template=stream)
    for name, args in filters + [("buffersink", "")]:
        nxt = graph.add(name, args) if args else graph.add(name)
        node.link_to(nxt)
        node = nxt
    graph.configure()
    return graph


def _pull(graph: av.filter.Graph) -> list[av.VideoFrame]:
    ready = []
    with contextlib.suppress(av.error.BlockingIOError, av.error.EOFError):
        while True:
            ready.append(graph.vpull())
    return ready


def _fieldmatch(parity: str) -> tuple[str, str]:
    return "fieldmatch", f"order={parity}:combmatch=full"  # frames left combed are flagged interlaced


SCAN_STRETCHES = 5  # at most this many stretches of a video are scanned for fields


def _stretches(path: str | Path, frames: int, count: int = SCAN_STRETCHES) -> Iterator[tuple[av.video.stream.VideoStream, av.VideoFrame | None]]:
    """The video stream of ``path`` with each decoded frame (see :class:`StreamFitter`) of up to
    ``count`` stretches of ``frames`` frames, each stretch ended by None; the caller stops when it
    has seen enough. A video longer than ``count`` stretches is read from evenly spaced times (the
    first at its start): a tape often opens with a minute of colour bars, a slate or black, whose
    still frames tell no field from another. A shorter one, or one that cannot seek, is read in
    stretches one after the other from its start. A damaged stream ends a stretch at the damage."""
    info = probe(path)
    fit = StreamFitter(info)
    seekable = info.timestamps and info.duration_s and not is_sequence(path) and info.estimated_frames > count * frames
    with open_input(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = container.decode(stream)
        for k in range(count):
            with contextlib.suppress(av.error.FFmpegError):
                if seekable and k:
                    container.seek(int(info.duration_s * k / count / stream.time_base) + (stream.start_time or 0), stream=stream,
                                   backward=True)
                    decoded = container.decode(stream)
                for _, frame in zip(range(frames), decoded):  # the count first: no frame is taken and dropped
                    yield stream, fit(frame, stream.codec_context.sample_aspect_ratio)
            yield stream, None


# Rows in pairs this much more alike than between them (or less) are a doubled picture's
# (:func:`_rows_paired`): natural pictures, interlaced or not, measured 0.84-1.0 (keep_real_1,
# DV, Flash video), a Cinepak clip's 2x2 blocks 0.52-0.57.
_PAIRED_ROWS = 0.7


def _idet_scan(path: str | Path, frames: int) -> FieldScan:
    """idet's counts over stretches of ``frames`` frames (:func:`_stretches`), until half a stretch
    of frames was judged (still frames are judged neither interlaced nor progressive)."""
    totals = {kind: 0 for kind in ("tff", "bff", "progressive")}
    graph, stretches = None, 0
    for stream, frame in _stretches(path, frames):
        graph = graph or _chain(stream, [("idet", "")])
        graph.vpush(frame)
        for out in _pull(graph):
            verdict = out.metadata.get("lavfi.idet.multiple.current_frame", "")
            if verdict in ("tff", "bff") and _rows_paired(out.to_ndarray(format="gray")):
                verdict = "progressive"
            if verdict in totals:
                totals[verdict] += 1
        if frame is None:
            graph, stretches = None, stretches + 1
            if sum(totals.values()) >= frames // 2:
                break
    return FieldScan(totals["tff"], totals["bff"], totals["progressive"], stretches=stretches)


def _rows_paired(luma: np.ndarray) -> bool:
    """Whether a picture's rows come in pairs far more alike than the rows between the pairs: a
    picture of half the height with its lines doubled, or one a codec made of 2x2 blocks
    (Cinepak's). Its two fields show one moment, but idet reads them as interlaced: a 15 fps
    Cinepak clip was taken for telecined video and field-matched. Fields of moments of their
    own differ wherever anything moves, within the pairs as much as between them."""
    rows = luma.astype(np.int16)
    within, between = np.abs(rows[0:-1:2] - rows[1::2]).mean(), np.abs(rows[1:-1:2] - rows[2::2]).mean()
    return min(within, between) < _PAIRED_ROWS * max(within, between)


def _match_scan(path: str | Path, frames: int, stretches: int) -> dict[str, tuple[int, int]]:
    """Per field order: frames fieldmatch rebuilt from fields of their neighbours, and frames it
    left combed, in the first ``stretches`` stretches that idet read."""
    matches = {parity: [0, 0] for parity in PARITIES}
    matchers: dict[str, av.filter.Graph] = {}
    before: dict[int | None, np.ndarray] = {}  # luma of the frames in the matchers, by timestamp
    judged: dict[int | None, int] = {}  # how many matchers gave each of them back
    converter: av.filter.Graph | None = None
    for stream, frame in _stretches(path, frames, stretches):
        # RGB is matched as YUV: its luma to compare with is the same conversion's, not FFmpeg's
        # grey (full range, where YUV's is limited), which counted every frame of it as rebuilt
        yuv = [("format", "yuv444p")] if av.VideoFormat(stream.codec_context.pix_fmt).is_rgb else []
        matchers = matchers or {parity: _chain(stream, [*yuv, _fieldmatch(parity)]) for parity in PARITIES}
        converter = converter or (_chain(stream, yuv) if yuv else None)
        if frame is not None:
            before[frame.pts] = _luma(frame, converter)
        for parity, graph in matchers.items():
            graph.vpush(frame)
            for out in _pull(graph):
                rebuilt = out.pts in before and not np.array_equal(before[out.pts], out.to_ndarray(format="gray"))
                matches[parity][0] += rebuilt
                matches[parity][1] += bool(out.interlaced_frame)
                judged[out.pts] = judged.get(out.pts, 0) + 1
                if judged[out.pts] == len(PARITIES):
                    before.pop(out.pts, None)
        if frame is None:  # the next stretch starts afresh
            matchers, before, judged, converter = {}, {}, {}, None
    return {parity: (rebuilt, combed) for parity, (rebuilt, combed) in matches.items()}


def _luma(frame: av.VideoFrame, converter: av.filter.Graph | None) -> np.ndarray:
    """The luma of ``frame``, converted by ``converter`` first (None: as it is)."""
    if converter is not None:
        converter.vpush(frame)
        frame = next(iter(_pull(converter)))
    return frame.to_ndarray(format="gray")


def scan_fields(path: str | Path, frames: int = 60) -> FieldScan:
    """What idet, and fieldmatch in each field order, make of stretches of ``frames`` decoded
    frames of ``path`` (its content, not its flags; see :func:`_stretches`). Field matching runs
    only where idet finds frames that look interlaced (telecined film shows them in two frames of
    five while it moves), so progressive video, the common case, is decoded once and quickly."""
    seen = _idet_scan(path, frames)
    if seen.tff + seen.bff < max(3, (seen.tff + seen.bff + seen.progressive) // 10):
        return seen
    matches = _match_scan(path, frames, seen.stretches)
    best = max(PARITIES, key=lambda p: (matches[p][0] - 2 * matches[p][1], p == seen.parity))  # idet's order settles a tie
    return dataclasses.replace(seen, matched=matches[best][0], combed=matches[best][1], match_parity=best)


def doubles_rate(deinterlace: FieldFilter | None) -> bool:
    """Whether frames made progressive by ``deinterlace`` can be written at the field rate, a frame
    for each field (50p from 50i): where each field is a moment of its own, not half of a film
    frame that field matching put back together. Turned video too: its fields are deinterlaced in
    the coded picture, where they are rows."""
    return deinterlace is not None and not deinterlace.match


def fields_have_own_moments(deinterlace: FieldFilter | None, rotation: int) -> bool:
    """Whether a ``keep_fields`` reader deinterlaces each field's moment on its own
    (``Frame.second``): where the fields are moments of their own (not halves of film frames,
    which field matching puts back together) and rows on screen (a turned video shows them as
    columns)."""
    return doubles_rate(deinterlace) and rotation % 360 == 0


class Deinterlacer:
    """A :class:`FieldFilter` as a PyAV filter graph: one progressive frame per interlaced frame, so
    frame count and timing stay those of the input (``both_fields``: with the later field's moment
    beside it, for faces that are pasted back into the fields). Frames come out late (fieldmatch and bwdif
    look at the next frame); push None at the end of the stream for the last ones. The field order
    is always given: bwdif's "auto" reads per-frame flags, which H.264 streams coded as fields do
    not always carry (x264 without pic_struct), and then guesses wrong, keeping the later field
    and putting every frame half a frame late."""

    def __init__(self, stream: av.video.stream.VideoStream, fields: FieldFilter, both_fields: bool = False):
        # deint=all: also frames flagged progressive, as archival transfers often are; after field
        # matching, only the frames it flagged as still combed. send_field: a frame for each
        # field's moment, the earlier one the same as send_frame's.
        self.per_frame = 2 if both_fields else 1
        mode = "send_field" if self.per_frame == 2 else "send_frame"
        bwdif = ("bwdif", f"mode={mode}:parity={fields.parity}:deint={'interlaced' if fields.match else 'all'}")
        self.graph = _chain(stream, [_fieldmatch(fields.parity), bwdif] if fields.match else [bwdif])
        self.time_base = stream.time_base
        # bwdif counts time in fields (half the input's time base); each output frame takes back
        # the timestamp of the input frame it was made from, so they match the input's exactly.
        self.pending: deque[av.VideoFrame] = deque()
        self.made: list[av.VideoFrame] = []  # the current input frame's outputs so far

    def __call__(self, frame: av.VideoFrame | None) -> list[tuple[av.VideoFrame, av.VideoFrame, av.VideoFrame | None]]:
        """Push ``frame`` (None at the end of the stream) and return the frames that are ready,
        each with the interlaced frame it was made from and, with ``both_fields``, the frame of
        that frame's later field (else None)."""
        if frame is not None:
            self.pending.append(frame)
        self.graph.vpush(frame)
        ready = []
        for out in _pull(self.graph):
            self.made.append(out)
            if len(self.made) < self.per_frame:
                continue
            original = self.pending.popleft()
            first, *later = self.made
            self.made = []
            first.pts, first.time_base = original.pts, self.time_base
            ready.append((first, original, later[0] if later else None))
        return ready


class InTimeOrder:
    """Decoded frames in the order of their times. A decoder gives them so unless the stream is
    damaged: MPEG-2 in a broadcast capture that lost a packet gave a frame two frames late (its
    time before the last one's), and the output's muxer refused the restored video after all
    the work. Up to ``depth`` frames are held and given in order (frames at one time, as some
    files have, in the order they came); one that comes later than that, with a time before one
    already given, is dropped (``dropped`` counts them). Push None at the end."""

    def __init__(self, depth: int = 4):
        self.depth, self.held, self.last, self.dropped = depth, [], None, 0

    def __call__(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        if frame is None:
            ready, self.held = self.held, []
            return ready
        if self.last is not None and frame.pts < self.last:
            self.dropped += 1
            return []
        bisect.insort(self.held, frame, key=lambda f: f.pts)
        if len(self.held) <= self.depth:
            return []
        first = self.held.pop(0)
        self.last = first.pts
        return [first]


class DecodedFrames:
    """Every frame of a short stream as one pass decoded it, so that the next pass need not decode
    it again. A reader given it as ``keep`` adds its frames while they fit in ``budget_bytes``;
    when the stream outgrows the budget they are all dropped (memory stays bounded whatever the
    video's length) and the next pass decodes as usual. A reader given it as ``reuse`` yields the
    kept frames instead of decoding, once the pass that kept them reached the end of the stream.

    Pass 2's writer paints the restored faces into the frames it is given (so that they keep
    their captions and other side data): a kept frame must be read by every other reader before
    pass 2 writes it, as the identity reader, which runs ahead of pass 2, does."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.frames: list[av.VideoFrame] = []
        self.bytes = 0
        self.dropped = budget_bytes <= 0
        self.complete = False  # holds every frame of the stream

    def add(self, frame: av.VideoFrame) -> None:
        if self.dropped:
            return
        self.bytes += sum(plane.buffer_size for plane in frame.planes)
        if self.bytes > self.budget_bytes:
            self.clear()
            return
        self.frames.append(frame)

    def finish(self) -> None:
        """The stream ended: every frame was added, unless the budget was outgrown."""
        self.complete = not self.dropped

    def clear(self) -> None:
        self.frames, self.bytes, self.dropped, self.complete = [], 0, True, False

    def __getstate__(self) -> dict:
        """Sent to another process (a batch item's plan to a Ray worker), it arrives dropped: the
        frames are this process's memory, and the other pass decodes as usual."""
        return {"budget_bytes": self.budget_bytes, "frames": [], "bytes": 0, "dropped": True, "complete": False}


# The decode queue holds at most this much: 16 frames of 4K (each as decoded and as RGB) held
# 0.6 GB, and 7 keep the decoder as far ahead (bench/memory.py, docs/benchmarks.md)
PREFETCH_BYTES = 256 << 20


def queued_frames(prefetch: int, width: int, height: int, max_side: int = 0, deep: bool = False) -> int:
    """How many frames of ``width`` x ``height`` a reader's queue holds: ``prefetch``, or fewer
    where they would hold more than :data:`PREFETCH_BYTES` (at least 2). A frame is counted as
    decoded 4:2:0 and as RGB (images at most ``max_side`` on the longer side; 16-bit when ``deep``)."""
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    frame_bytes = (width * height * 1.5 + (width * scale) * (height * scale) * 3) * (2 if deep else 1)
    return min(prefetch, max(2, int(PREFETCH_BYTES // max(frame_bytes, 1))))


def _length_of(info: VideoInfo) -> str:
    """How long the video ``info`` describes lasts, for a message."""
    return f"it lasts {clock(info.duration_s)}" if info.duration_s else "it ends before that"


SEEK_BACK_S = (0, 1, 4, 16, 64)  # how far before a frame a seek is tried, in seconds, before reading from the start


def seek_point(path: str | Path, target: int, start: int | None) -> int | None:
    """The timestamp to seek the video of ``path`` to so that decoding gives the frame at
    ``target`` (in its stream's time base): ``target`` where the seek lands on a keyframe before
    it, as in MP4 and Matroska, whose indexes say where keyframes are; else one up to a minute
    before, where it does. None: decode from the start (``start``, the stream's first timestamp).
    MPEG-TS and MPEG-PS have no index: FFmpeg lands on whatever frame comes before the
    timestamp, and the decoder drops what follows up to the next keyframe, so an excerpt or a
    segment lost its first frames (all of them with a single keyframe). Each try decodes up to
    the first frame it gives."""
    with open_input(path) as container:
        stream = container.streams.video[0]
        for back in SEEK_BACK_S:
            at = target - round(back / stream.time_base)
            if start is not None and at <= start:
                return None
            container.seek(at, stream=stream, backward=True, any_frame=False)
            stream.codec_context.flush_buffers()
            first = next((f for p in container.demux(stream) for f in p.decode() if f.pts is not None), None)
            if first is not None and first.pts <= target:
                return at
    return None


class VideoReader:
    """Iterate over the frames of the first video stream: ``for frame in VideoReader(path): ...``.

    Use as a context manager so the decode thread stops when the consumer does.

    ``max_side``: images downscaled so their longer side is at most this (0: full size), for
    analysis that works on small images anyway. ``start``/``stop`` read frames ``[start, stop)``
    only; with ``start_pts`` (the PTS of frame ``start``, known from a previous pass) the reader
    seeks to the keyframe before it instead of
    decoding everything before it. ``deinterlace``: how to make interlaced frames progressive (see
    :class:`FieldFilter`), None to leave them as they are; ``Frame.source`` is then the progressive
    frame, unless ``keep_fields``: then it is the interlaced frame, and ``Frame.fields`` its image
    (``Frame.image`` stays progressive, for finding and cropping faces); with ``double_rate``, each
    frame also carries its later field's progressive frame (``Frame.second_source``), where the
    fields are moments of their own (not film frames that field matching put back together). ``keep_depth``:
    full-size images of sources deeper than 8 bits are uint16, for pasting faces into them without
    flattening the frame to 8 bits. ``only``: yield just these frame indices (the others are
    decoded, as they must be, but not converted), and stop after the last of them. ``keep``: add
    every decoded frame to this :class:`DecodedFrames` (a reader of the whole stream only);
    ``reuse``: take the frames from this one, when it holds the whole stream, instead of decoding
    (it must have been kept with the same ``deinterlace``). ``images_for``: convert to RGB only the
    frames in these ranges (``Frame.image`` is None elsewhere): pass 2 needs the pixels of frames
    with a face only, and the others go to the encoder as decoded. ``light``: what the samples stand
    for, when not what the probe found (``--light``). ``view_regions``: for HDR or log video, the
    boxes of each frame (by index; display pixels) that are shown at all (see :func:`frame_to_rgb`):
    pass 2 reads its pixels only around the faces. ``excerpt``: only the frames shown within it
    (``--start``/``--end``), counted from its first; ``start``, ``stop`` and ``only`` count in it.
    """

    def __init__(self, path: str | Path, prefetch: int = 16, max_side: int = 0,
                 start: int = 0, stop: int | None = None, start_pts: int | None = None, deinterlace: FieldFilter | None = None,
                 keep_depth: bool = False, only: set[int] | frozenset[int] | None = None,
                 keep: DecodedFrames | None = None, reuse: DecodedFrames | None = None,
                 images_for: list[range] | None = None, keep_fields: bool = False, double_rate: bool = False,
                 light: Light | None = None, view_regions: Callable[[int], list[Box]] | None = None,
                 excerpt: Excerpt | None = None):
        if keep is not None and (start or stop is not None or only is not None):
            raise ValueError("keep= needs a reader of the whole stream")
        self.path = Path(path)
        self.info = probe(self.path)
        if light is not None:
            self.info = self.info.read_as(light)
        self.prefetch = prefetch
        self.max_side = max_side
        self.deinterlace = deinterlace
        self.keep_fields = keep_fields and deinterlace is not None
        self.double_rate = double_rate and doubles_rate(deinterlace)
        self.deep = keep_depth and not max_side and bit_depth(self.info.pix_fmt) > 8
        self._index = 0
        self.only = frozenset(only) if only is not None else None
        if self.only is not None:
            last = max(self.only, default=start - 1) + 1
            stop = last if stop is None else min(stop, last)
        self.start, self.stop, self.start_pts = start, stop, start_pts
        self.excerpt = excerpt
        self._lower, self._upper = excerpt.ticks(self.info) if excerpt is not None else (None, None)
        self._past_excerpt = False
        self.keep = keep
        self.reuse = reuse if reuse is not None and reuse.complete else None
        if (self.keep_fields or self.double_rate) and (keep is not None or self.reuse is not None):
            raise ValueError("kept frames are one a frame: a keep_fields or double_rate reader decodes its own")
        self._spans = _merged(images_for) if images_for is not None else None
        self.view_regions = view_regions
        self.stats = DecodeStats()
        self._reformatter = VideoReformatter()  # used by the decode thread only
        self._fit = StreamFitter(self.info)  # used by the decode thread only
        self._last_pts: int | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queued_frames(max(1, prefetch), self.info.width, self.info.height,
                                                                     max_side, self.deep))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        # A stop signal can land inside Thread.start(), before the thread has begun: joining it
        # then raised a RuntimeError in place of the interruption (exit 1 and a traceback).
        if self._thread is not None and self._thread.ident is not None:
            while self._thread.is_alive():
                try:
                    self._queue.get(timeout=0.05)
                except queue.Empty:
                    pass
            self._thread.join()
            self._thread = None

    def __iter__(self) -> Iterator[Frame]:
        self._thread = threading.Thread(target=self._decode_loop, name="vidrestore-decode", daemon=True)
        self._thread.start()
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def expected_frames(self) -> int:
        """The stream's frame count (:attr:`VideoInfo.estimated_frames`), else an estimate from how far
        into the file the frames read so far reach: a raw stream or a recording that was never
        finished (a crashed capture's .mkv) states neither count nor duration, and a progress bar
        then had no total and no ETA. 0 before anything is read. For progress only."""
        if self.excerpt is not None:
            return max(self.stats.frames, self.excerpt.estimated_frames(self.info))
        if self.info.estimated_frames or not self.stats.bytes_read:
            return self.info.estimated_frames
        with contextlib.suppress(OSError):
            return max(self.stats.frames, round(self.stats.frames * self.path.stat().st_size / self.stats.bytes_read))
        return 0

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode_loop(self) -> None:
        try:
            if not (self._emit_reused() if self.reuse is not None else self._decode()):
                return  # stopped early: the end was queued, or the consumer left
            if self.stats.frames == 0 and self.excerpt is not None and self._index == 0:
                raise InputError(f"{self.path.name} has no frame from {self.excerpt.describe()}: "
                                 f"{_length_of(self.info)}")
            if self.stats.frames == 0:
                raise InputError(f"no video frame could be decoded from {self.path}; the stream is corrupt or truncated")
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer thread, which re-raises it
            self._put(exc)

    def _emit_reused(self) -> bool:
        self._index = self.start
        return all(self._emit(frame, seeking=False) for frame in self.reuse.frames[self.start : self.stop])

    def _decode(self) -> bool:
        """Decode and queue the frames in range; False if the reader stopped before the end of the stream."""
        with open_input(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            seeking = self.start > 0 and self.start_pts is not None and self.info.timestamps  # unstamped: nothing to seek to
            first = self.start_pts if seeking else self.excerpt.seek_target(self.info) if self.excerpt is not None else None
            # The deinterlacer looks at the frame before: seek before it, so a segment's first
            # frame is made from the same fields as in a run over the whole video.
            target = None if first is None else first - 1 if self.deinterlace is not None else first
            landing = None if target is None else seek_point(self.path, target, self.info.start_pts)
            if landing is not None:
                container.seek(landing, stream=stream, backward=True, any_frame=False)
            self._index = self.start if seeking else 0
            both_fields = self.double_rate or (self.keep_fields and fields_have_own_moments(self.deinterlace, self.info.rotation))
            deinterlacer = Deinterlacer(stream, self.deinterlace, both_fields) if self.deinterlace is not None else None
            in_order = InTimeOrder()
            try:
                for packet in itertools.chain(container.demux(stream), [None]):  # None: the end, for the frames held back
                    if packet is not None and packet.pos is not None and packet.pos >= 0:
                        self.stats.bytes_read = packet.pos + packet.size
                    if packet is not None and packet.is_corrupt and packet.pts is not None:  # as a player's clock shows it
                        self.stats.damaged_s.append(float((packet.pts - (stream.start_time or 0)) * packet.time_base))
                    decoded = [f for d in self._decode_packet(packet) for f in in_order(d)] if packet is not None else in_order(None)
                    for made in (m for d in decoded for m in (deinterlacer(d) if deinterlacer else [(d, d, None)])):
                        if not self._emit(*made, seeking=seeking):
                            return self._past_excerpt and self._finish()
            finally:
                self.stats.corrupt_packets += in_order.dropped
            for made in deinterlacer(None) if deinterlacer else []:
                if not self._emit(*made, seeking=seeking):
                    return self._past_excerpt and self._finish()
        return self._finish()

    def _finish(self) -> bool:
        """End a read that reached the end of what it reads (True)."""
        if self.keep is not None:
            self.keep.finish()
        return True

    def _emit(self, frame: av.VideoFrame, original: av.VideoFrame | None = None, second: av.VideoFrame | None = None,
              seeking: bool = False) -> bool:
        """Queue ``frame`` (made progressive from ``original``, if it was, with ``second`` from its
        later field) if it is in range; False once the reader should stop."""
        if seeking and frame.pts is not None and frame.pts < self.start_pts:
            return True  # between the keyframe and the first wanted frame
        if self._lower is not None and frame.pts is not None:
            if frame.pts < self._lower:
                return True  # before the excerpt
            if self._upper is not None and frame.pts >= self._upper:
                self._past_excerpt = True
                return False
        if self.keep is not None:
            self.keep.add(frame)
        if self.stop is not None and self._index >= self.stop:
            self._put(_END)
            return False
        if self._index >= self.start and (self.only is None or self._index in self.only):
            wanted = self._wants_image(self._index)
            regions = self.view_regions(self._index) if wanted and self.view_regions is not None else None
            image, scale = frame_to_rgb(frame, self.info, self.max_side, self.deep, self._reformatter, regions) if wanted else (None, (1.0, 1.0))
            if self.keep_fields or self.double_rate:
                fields, later = ((frame_to_rgb(f, self.info, self.max_side, self.deep, self._reformatter, regions)[0] if wanted and f is not None else None)
                                 for f in (original if self.keep_fields else None, second))
                item = Frame(self._index, frame.pts, image, original if self.keep_fields else frame, scale, fields, later,
                             second if self.double_rate else None)
            else:
                item = Frame(self._index, frame.pts, image, frame, scale)
            if not self._put(item):
                return False
            self.stats.frames += 1
        self._index += 1
        return True

    def _wants_image(self, index: int) -> bool:
        if self._spans is None:
            return True
        starts, stops = self._spans
        k = bisect.bisect_right(starts, index) - 1
        return k >= 0 and index < stops[k]

    def _decode_packet(self, packet: av.Packet) -> list[av.VideoFrame]:
        self._fit.read(packet)
        try:
            decoded = list(packet.decode())
        except av.error.InvalidDataError:
            self.stats.corrupt_packets += 1
            return []
        except av.error.FFmpegError as exc:
            if "decoder" in str(exc).lower() or "codec" in str(exc).lower():
                raise InputError(f"unsupported video codec {self.info.codec!r} in {self.path}") from exc
            self.stats.corrupt_packets += 1
            return []
        fitted = [self._fit(frame, packet.stream.codec_context.sample_aspect_ratio) for frame in decoded]
        self.stats.resized, self.stats.boxed = self._fit.resized, self._fit.boxed
        return [self._stamped(frame) for frame in fitted]

    def _stamped(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` with a timestamp: a raw stream's frames come without one, and are numbered at
        the stream's rate, as FFmpeg's own tools do, so that both passes and the output agree."""
        if frame.pts is None:
            frame.pts = 0 if self._last_pts is None else self._last_pts + self.info.frame_ticks
        self._last_pts = frame.pts
        return frame
