"""Encode restored frames, alone, into a video stream (:class:`VideoWriter`); :mod:`.remux` then
copies the input's other streams beside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import queue
import re
import struct
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Self

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..errors import OutputError, UsageError
from . import hdr10plus
from .containers import DECODE_ORDER_ONLY, FRAME_RATE_MUXERS, ISO_MEDIA_MUXERS, MILLISECOND_MUXERS, muxer_options
from .encoders import (
    FRAME_RATE_ENCODERS,
    PALETTE_ENCODERS,
    VARYING_GRID,
    EncodeOptions,
    check_encoder,
    codec_options,
    mpeg_rate,
    output_pix_fmt,
    yuv_colours,
)
from .linear import HDR_LIGHTS, LIGHT_WORDS, VIDEO_LIGHTS, Light, from_view, plate_frame, written_back
from .patch import Box, copy_samples, patch_frame, patchable, planar_twin, rgb_format, rotate_box, with_alpha_of
from .probe import FIELD_ORDERS, VideoInfo, probe, side_data
from .reader import codes_around, frame_to_rgb, rotate_to_coded
from .sequence import is_sequence


def _mastering_display(data: bytes) -> str:
    """AVMasteringDisplayMetadata (R, G, B and white point xy, min and max luminance, as rationals;
    then two flags) in the x264/x265 notation: G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min), chromaticity in
    units of 0.00002 and luminance of 0.0001 cd/m2. Empty unless primaries and luminance are both set."""
    *rationals, has_primaries, has_luminance = struct.unpack_from("<22i", data)
    rx, ry, gx, gy, bx, by, wx, wy, lmin, lmax = (n / d if d else 0.0 for n, d in zip(rationals[::2], rationals[1::2]))
    if not (has_primaries and has_luminance):
        return ""

    def xy(x: float, y: float) -> str:
        return f"({round(x * 50000)},{round(y * 50000)})"
    return f"G{xy(gx, gy)}B{xy(bx, by)}R{xy(rx, ry)}WP{xy(wx, wy)}L({round(lmax * 10000)},{round(lmin * 10000)})"


def _content_light(data: bytes) -> str:
    """AVContentLightMetadata (MaxCLL, MaxFALL) as x264/x265 take it: "MaxCLL,MaxFALL"."""
    return "{},{}".format(*struct.unpack_from("<2I", data))


_HDR10_FORMAT = {"MASTERING_DISPLAY_METADATA": _mastering_display, "CONTENT_LIGHT_LEVEL": _content_light}

_HDR10_PARAMS = {  # encoder -> side data kind -> its parameter
    "libx264": {"MASTERING_DISPLAY_METADATA": "mastering-display", "CONTENT_LIGHT_LEVEL": "cll"},
    "libx265": {"MASTERING_DISPLAY_METADATA": "master-display", "CONTENT_LIGHT_LEVEL": "max-cll"},
}


def roomier(path: Path) -> str:
    """The containers that hold the most codecs, to suggest for ``path`` when its own refused one:
    .mkv or .mov, less its own (a .mov output was told to write a .mov)."""
    return " or ".join(suffix for suffix in (".mkv", ".mov") if suffix != path.suffix.lower())


class VideoWriter:
    """Encode frames (RGB in display orientation, or untouched decoded frames) with the input's timing."""

    def __init__(self, path: str | Path, info: VideoInfo, options: EncodeOptions, upright_from: int = 0):
        """``upright_from``: the rotation of the decoded frames handed to :meth:`write` when ``info``
        is the video written upright (a turned video in a container that stores no rotation): each
        output frame is new, and HDR or log video keeps its codes from the decoded frame turned."""
        self.path = Path(path)
        self.info = info
        self.upright_from = upright_from
        self.options = options
        self.frames_written = 0
        codec = check_encoder(options, self.path, info)
        self.container = av.open(str(self.path), "w", options=muxer_options(self.path, info.path))
        try:
            self.stream = self._add_stream(codec)
        except BaseException:
            self.container.close()
            raise
        # Colour conversion and encoding run in their own thread (FFmpeg releases the GIL), so the
        # next frames are restored while these are encoded; the queue bounds the frames held.
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._reformatter = VideoReformatter()  # one conversion set up for the whole stream (the encode thread's)
        self._patch_reformatter = VideoReformatter()  # for regions, whose sizes change from frame to frame
        self._codes_reformatter = VideoReformatter()  # HDR or log video's frames to R'G'B' codes (see _codes_in_light)
        self._palettes: av.filter.Graph | None = None  # GIF: a palette for each frame (see _palettized)
        # HDR10+: the input's payloads by its frames' times, read at the first frame; those still to
        # put into the packets, by presentation time in the encoder's ticks (see io.hdr10plus)
        self._hdr10_plus: dict[int, bytes] | None = None if hdr10plus.carried(info, codec.name) else {}
        self._hdr10_plus_due: dict[int, bytes] = {}
        self._error: BaseException | None = None
        self._opened = False  # the encoder opens on the first frame, with options read from it
        self._last_tick = -(1 << 62)  # the last frame's tick in the encoder's time base (see _on_grid)
        self._thread = threading.Thread(target=self._encode_loop, name="vidrestore-encode", daemon=True)
        self._thread.start()

    def _add_stream(self, codec: av.Codec) -> av.video.stream.VideoStream:
        info, opts = self.info, self.options
        try:
            stream = self.container.add_stream(codec.name)
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"{codec.name} cannot be stored in {self.path.suffix} files; try a {roomier(self.path)} output") from exc
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = output_pix_fmt(codec, opts, info)
        self.info = info = dataclasses.replace(info, color=yuv_colours(info, stream.pix_fmt, codec.name))
        # Encoder timestamps are the input's own: VFR stays VFR and every PTS survives.
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        if codec.name in FRAME_RATE_ENCODERS and info.average_rate:  # frames are moved onto the rate's grid
            info = dataclasses.replace(info, average_rate=VARYING_GRID if info.constant_rate is False else mpeg_rate(info.average_rate))
            stream.codec_context.time_base = 1 / info.average_rate
        if self.container.format.name in FRAME_RATE_MUXERS and info.average_rate and info.constant_rate:
            stream.time_base = stream.codec_context.time_base = 1 / info.average_rate
        elif self.container.format.name in FRAME_RATE_MUXERS and info.time_base.denominator > 0xFFFF:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)  # MPEG-TS's 1/90000 was refused
        if codec.name in PALETTE_ENCODERS:  # GIF counts time in hundredths of a second
            stream.time_base = stream.codec_context.time_base = Fraction(1, 100)
        if info.average_rate:
            stream.codec_context.framerate = info.average_rate
        cc = stream.codec_context
        cc.color_primaries, cc.color_trc = info.color.primaries, info.color.transfer
        cc.colorspace, cc.color_range = info.color.matrix, info.color.range
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        if self.container.format.name in DECODE_ORDER_ONLY:
            cc.max_b_frames = 0
        if codec.name == "libx265" and self.container.format.name in ISO_MEDIA_MUXERS:
            stream.codec_tag = "hvc1"  # the muxer's default, hev1, is refused by Apple's players
        if info.field_order != "unknown":  # kept fields keep their declared order, and deinterlaced frames say they
            # are progressive (FFV1, ProRes and MPEG-2 in Matroska and QuickTime said "unknown" unless told)
            cc.field_order = {v: k for k, v in FIELD_ORDERS.items()}[info.field_order]
        stream.options = codec_options(codec.name, stream.pix_fmt, info, opts)
        return stream

    def write(self, source: av.VideoFrame | None, pts: int | None, image: np.ndarray | None = None,
              regions: list[Box] | None = None) -> None:
        """Queue one frame for encoding: ``source`` as decoded when ``image`` is None, else ``image``
        (RGB uint8 or uint16, display orientation: the source with faces pasted in).

        The faces are written into ``source`` itself (see :meth:`_paint`), so what the decoder
        attached to it reaches the encoder (x264 writes the frame's A53 closed captions back). The
        frame is the writer's from then on. ``regions``: the boxes (display pixels) outside which
        ``image`` is ``source`` unchanged; only they are converted back (see :mod:`.patch`) when
        the frame's format allows. None: the whole image is new. ``source`` None: an image with no
        decoded frame behind it (the side-by-side preview)."""
        self._raise_pending()
        self._queue.put((source, pts, image, regions))
        self.frames_written += 1

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _encode_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so a producer blocked on a full queue is released
            try:
                self._encode(*item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer's thread
                self._error = exc

    def _encode(self, source: av.VideoFrame | None, pts: int | None, image: np.ndarray | None,
                regions: list[Box] | None) -> None:
        viewed = self.info.light in VIDEO_LIGHTS
        if source is not None and self.info.light is not Light.DISPLAY and not viewed:  # see io.linear: not through FFmpeg's scaler
            frame = self._in_output_format(plate_frame(source, self.info.light, image, regions, self.info.chromaticities))
        else:
            frame = self._in_output_format(source) if source is not None and not self.upright_from else None
            if image is not None:
                frame = self._paint(frame, self._codes_in_light(source, image, regions, frame) if viewed else image, regions, source)
        frame.pts, frame.time_base = self._on_grid(pts)
        if self.info.light in HDR_LIGHTS:  # PNG's encoder writes its cICP chunk from the frame's tags, not the stream's
            frame.color_primaries, frame.color_trc = self.stream.codec_context.color_primaries, self.stream.codec_context.color_trc
        # The encoder chooses its own frame types. A decoded frame keeps its type from the source,
        # and x264 obeys it: an all-intra master (ProRes, MJPEG, FFV1) came out all keyframes.
        frame.pict_type = av.video.frame.PictureType.NONE
        self._keep_hdr10_plus(source, pts)
        opening = not self._opened
        if opening:
            self._carry_hdr10(source if source is not None else frame)  # an upright copy's frame is new: no side data
            self._opened = True
        name = self.stream.codec_context.name  # read before: PyAV 19 crashes on a context that failed to open
        try:
            packets = self.stream.encode(frame)
        except av.error.FFmpegError as exc:
            if not opening:
                raise
            raise OutputError(f"the {name} encoder refused this video's settings ({exc.strerror or exc}: "
                              f"{self.info.width}x{self.info.height} {self.stream.pix_fmt}, time base {self.info.time_base}); "
                              "try another --codec") from exc
        self._mux(packets)

    def _carry_hdr10(self, frame: av.VideoFrame) -> None:
        """Have x264/x265 write the HDR10 static metadata (mastering display, content light level)
        that the decoder attached to the first frame. Their FFmpeg wrappers read it from the codec's
        side data, which PyAV cannot set, and not from the frames: an HDR10 master lost it."""
        names = _HDR10_PARAMS.get(self.stream.codec_context.name)
        found = {str(sd.type).rsplit(".", 1)[-1]: bytes(sd) for sd in side_data(frame, self.info.codec)}
        params = [f"{name}={value}" for kind, name in (names or {}).items()
                  if kind in found and (value := _HDR10_FORMAT[kind](found[kind]))]
        if params:
            key = f"{self.stream.codec_context.name[3:]}-params"  # x264-params, x265-params
            options = dict(self.stream.codec_context.options)
            options[key] = ":".join(filter(None, [options.get(key, ""), *params]))
            self.stream.codec_context.options = options

    def _codes_in_light(self, source: av.VideoFrame | None, image: np.ndarray, regions: list[Box] | None,
                        base: av.VideoFrame | None) -> np.ndarray:
        """``image``, a restored SDR view of HDR or log video (see :mod:`.linear`), as the 16-bit R'G'B'
        codes of the stream's light, which FFmpeg converts to its YUV as any video's: in ``regions``
        (every pixel when None) taken back from the view by :func:`.linear.written_back`, which keeps
        the source's own codes where the view clipped them or shows them unchanged; elsewhere the
        source's codes (turned upright for an upright copy). Where :meth:`_paint` will paint the
        regions alone into ``base``, only the parts it reads are converted from ``source``
        (:func:`.reader.codes_around`). With no ``source`` (the side-by-side preview), every pixel
        is taken back from the view."""
        light, chromaticities = self.info.light, self.info.chromaticities
        if source is None:
            return (np.clip(from_view(image, light, chromaticities), 0, 1) * 65535 + 0.5).astype(np.uint16)
        coded = dataclasses.replace(self.info, light=Light.DISPLAY, rotation=self.upright_from or self.info.rotation)
        if self._patches(base, regions) and patchable(source):
            codes = codes_around(source, coded, regions, self._codes_reformatter)
        else:
            codes = frame_to_rgb(source, coded, deep=True, reformatter=self._codes_reformatter)[0]
        height, width = codes.shape[:2]
        for x0, y0, x1, y1 in regions if regions is not None else [(0, 0, width, height)]:
            back = written_back(image[y0:y1, x0:x1], codes[y0:y1, x0:x1], light, chromaticities)
            codes[y0:y1, x0:x1] = np.clip(back * 65535 + 0.5, 0, 65535).astype(np.uint16)
        return codes

    def _in_output_format(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` converted to the stream's pixel format; a conversion keeps the frame's side data."""
        if frame.format.name == self.stream.pix_fmt and not frame.format.has_palette:
            return frame
        if self.stream.pix_fmt == "pal8":
            return self._palettized(frame)
        return self._reformatter.reformat(frame, format=self.stream.pix_fmt, **self._yuv_kwargs())

    def _palettized(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` in 256 colours of its own (see :data:`PALETTE_ENCODERS`); a transparent
        video's with one of them transparent, for the pixels under half opaque (GIF's one level of
        transparency), which GIF's encoder then writes as its transparent colour."""
        layout = "rgba" if self.info.transparent else "rgb24"
        rgb = self._reformatter.reformat(frame, format=layout)
        if self._palettes is None:
            graph = self._palettes = av.filter.Graph()
            source = graph.add_buffer(width=rgb.width, height=rgb.height, format=layout, time_base=Fraction(1, 100))
            split, sink = graph.add("split"), graph.add("buffersink")
            colours = graph.add("palettegen", "stats_mode=single:reserve_transparent=1")
            mapped = graph.add("paletteuse", "new=1:alpha_threshold=128")
            source.link_to(split)
            split.link_to(colours, 0, 0)
            split.link_to(mapped, 1, 0)
            colours.link_to(mapped, 0, 1)
            mapped.link_to(sink)
            graph.configure()
        self._palettes.vpush(rgb)
        return self._palettes.vpull()

    def _paint(self, base: av.VideoFrame | None, image: np.ndarray, regions: list[Box] | None,
               source: av.VideoFrame | None) -> av.VideoFrame:
        """``image`` written into ``base``, the decoded frame in the output format: its boxes
        ``regions`` alone when the format allows, else all of it. A new frame only when there is
        no ``base``, or for a palette, made for the whole picture, with ``source``'s alpha. Painting
        into the decoded frame rather than a new one keeps its side data, which the encoder reads:
        a new frame dropped the captions of every frame with a face."""
        coded = rotate_to_coded(image, self.info.rotation)
        if base is None or base.format.has_palette:  # a palette is made for the whole picture
            return self._in_output_format(self._to_video_frame(coded if source is None else with_alpha_of(source, coded, self.upright_from)))
        base.make_writable()  # copies the samples first while the decoder still references them
        coded = with_alpha_of(base, coded)
        planar = planar_twin(base) if regions is not None and not self._patches(base, regions) else None
        if self._patches(base, regions) or planar is not None:
            height, width = image.shape[:2]
            turns = -(self.info.rotation // 90) % 4  # as rotate_to_coded turns the image
            patch_frame(planar or base, coded, [rotate_box(b, turns, height, width) for b in regions],
                        self._patch_reformatter, **self._yuv_kwargs())
            if planar is not None:
                copy_samples(base, planar.reformat(format=base.format.name))
        else:
            copy_samples(base, self._in_output_format(self._to_video_frame(coded)))
        return base

    @staticmethod
    def _patches(base: av.VideoFrame | None, regions: list[Box] | None) -> bool:
        """Whether :meth:`_paint` writes ``regions`` alone into ``base`` (else the whole image)."""
        return regions is not None and base is not None and not base.format.has_palette and patchable(base)

    def _stop_thread(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _yuv_kwargs(self) -> dict[str, int]:
        # One thread: FFmpeg's threaded RGB48-to-10-bit conversion (libswscale 9.5) races and
        # writes wrong chroma into a few samples of a row, differently from run to run
        # (tests/test_patch.py). The conversion runs on the encode thread, beside the rest.
        kwargs = {"threads": 1}
        if self.info.color.matrix not in (0, 2):
            kwargs["dst_colorspace"] = self.info.color.matrix
        if self.info.color.range:
            kwargs["dst_color_range"] = self.info.color.range
        return kwargs

    def _on_grid(self, pts: int) -> tuple[int, Fraction]:
        """``pts`` and its time base as the encoder is given them: as they are, or, for one that codes
        a frame rate (MPEG-2), in its ticks; either way each after the last, by a step the muxer
        keeps apart (a millisecond in Matroska). Rounded onto a rate's grid, two frames of a phone's
        video (varying rate) fell on one tick, and the encoder failed after the work; frames that
        share a time in the input (a badly muxed file's) failed so, into any container."""
        grid = self.stream.codec_context.time_base
        if self.stream.codec_context.name not in FRAME_RATE_ENCODERS:
            grid = self.info.time_base
        ticks = math.floor(Fraction(pts) * self.info.time_base / grid + Fraction(1, 2))
        step = math.ceil(Fraction(1, 1000) / grid) if self.container.format.name in MILLISECOND_MUXERS else 1
        self._last_tick = max(ticks, self._last_tick + step)
        return self._last_tick, grid

    def _keep_hdr10_plus(self, source: av.VideoFrame | None, pts: int) -> None:
        """Remember the HDR10+ payload of ``source`` (by its time in the input) for the packet of ``pts``."""
        if source is None or source.pts is None or self._hdr10_plus == {}:
            return
        if self._hdr10_plus is None:
            self._hdr10_plus = hdr10plus.hdr10_plus_payloads(self.info.path)
        payload = self._hdr10_plus.get(source.pts)
        if payload is not None:  # the encoder's packets count time in its own ticks, rounded as FFmpeg rounds
            ticks = Fraction(pts) * self.info.time_base / self.stream.codec_context.time_base
            self._hdr10_plus_due[math.floor(ticks + Fraction(1, 2)) if ticks >= 0 else -math.floor(-ticks + Fraction(1, 2))] = payload

    def _with_hdr10_plus(self, packet: av.Packet) -> av.Packet:
        """``packet`` with the payload kept for its frame put in (a new packet: PyAV cannot resize one)."""
        payload = self._hdr10_plus_due.pop(packet.pts, None) if self._hdr10_plus_due and packet.pts is not None else None
        if payload is None:
            return packet
        written = hdr10plus.WRITTEN_BY[self.stream.codec_context.name]
        carrying = av.Packet(hdr10plus.with_payload(bytes(packet), payload, written, hdr10plus.length_size(self.stream)))
        carrying.pts, carrying.dts, carrying.time_base, carrying.stream = packet.pts, packet.dts, packet.time_base, packet.stream
        carrying.is_keyframe, carrying.duration = packet.is_keyframe, packet.duration
        return carrying

    @staticmethod
    def _to_video_frame(coded: np.ndarray) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(coded), format=rgb_format(coded))

    def _mux(self, packets: list[av.Packet]) -> None:
        packets = [self._with_hdr10_plus(packet) for packet in packets]
        for packet in packets:
            _repair_decode_time(packet)
        try:
            self.container.mux(packets)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path} ({exc.strerror or exc})") from exc
        except av.error.FFmpegError as exc:  # the header, written with the first packet, holds the settings
            reason = _without_command_line_advice(exc.log[2]) if exc.log else exc.strerror or str(exc)
            raise OutputError(f"FFmpeg's {self.container.format.name} muxer refused the {self.stream.codec_context.name} "
                              f"video ({reason}); write a {roomier(self.path)}") from exc

    def close(self) -> None:
        try:
            self._stop_thread()
            self._raise_pending()
            self._mux(self.stream.encode(None))
        finally:
            try:
                self.container.close()  # writes the trailer (Matroska's cues): a full disk can fail it alone
            except OSError as exc:
                raise OutputError(f"cannot write {self.path} ({exc.strerror or exc})") from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._error = self._error or RuntimeError("stopped")  # skip the frames still queued
            self._stop_thread()
            with contextlib.suppress(Exception):
                self.container.close()


# FFmpeg's advice to users of its own command line, naming an option of it ("Set -strict option to
# 'unofficial' or lower in order to allow it!"): vidrestore has no such option, so it only misleads
_COMMAND_LINE_ADVICE = re.compile(r"[^.!?]*\s-[a-z_]+ option[^.!?]*[.!?]?")


def _without_command_line_advice(reason: str) -> str:
    """FFmpeg's ``reason`` for a refusal, less its advice to users of the ffmpeg command."""
    return _COMMAND_LINE_ADVICE.sub("", reason).strip().rstrip(".")


def _repair_decode_time(packet: av.Packet) -> None:
    """Give ``packet`` its presentation time as decode time where the encoder left it unset: x265
    does so now and then for a stream of one or two frames (7 of 40 one-frame encodes had a random
    decode time, and the MP4 muxer refused the file). No encoder decodes a frame after showing it,
    or an hour before."""
    if packet.dts is None or packet.pts is None:
        return
    if packet.dts > packet.pts or (packet.pts - packet.dts) * packet.time_base > 3600:
        packet.dts = packet.pts


def check_writable(output: str | Path, options: EncodeOptions, source: VideoInfo) -> None:
    """Encode one blank frame of ``source`` into a scratch file of ``output``'s type, so that a
    container or an encoder that refuses this video's settings (MXF at 20 fps) fails before any
    work, with FFmpeg's reason, and not when the restored video is written. HDR video must also
    come back from it tagged as HDR: a GIF, an AVI or a JPEG cannot say so, and its PQ or HLG codes
    would show dark or flat there."""
    hdr = source.light in HDR_LIGHTS
    if is_sequence(output) and not hdr:
        return  # written picture by picture, by encoders that take any size and rate
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # FFmpeg's reason reaches the exception, and Capture keeps it off the terminal
    with tempfile.TemporaryDirectory() as scratch:
        trial = Path(scratch) / (f"trial_%04d{Path(output).suffix}" if is_sequence(output) else f"trial{Path(output).suffix}")
        try:
            with av.logging.Capture(local=False), VideoWriter(trial, source, options) as writer:  # Capture: the encoding thread's too
                width, height = source.display_size
                writer.write(None, source.start_pts or 0, np.zeros((height, width, 3), np.uint8))
        except OutputError as exc:
            raise OutputError(f"{Path(output).name} cannot be written: {exc}") from exc
        finally:
            av.logging.set_level(level)
        if hdr and probe(trial).color.transfer != source.color.transfer:
            raise UsageError(f"{Path(output).name} cannot say that its video is {LIGHT_WORDS[source.light]} ({writer.stream.codec_context.name} "
                             f"in {Path(output).suffix}), and its codes would show dark or flat: write a .mkv, .mp4 or .mov, "
                             "or PNG pictures, which keep HDR; or give --light display to write the codes as they are")
