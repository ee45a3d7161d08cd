"""How the output is timed and what becomes of interlaced fields: the deinterlacing chosen for
each video, telecined film decimated (``--decimate``, ``--hybrid``), a frame for each field
(``--double-rate``), an image sequence's pictures timed (``--frame-rate``), and the rates a video
comes at, and an excerpt's place in the input (``--start``, ``--end``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from .. import cadence
from ..errors import ConfigError, UsageError
from ..io import VideoInfo, probe
from ..io.encoders import one_rate_only
from ..io.excerpt import Cut, Excerpt, clock, excerpt_length
from ..io.reader import FieldFilter, doubles_rate, scan_fields
from ..io.remux import stated_timecode
from ..io.sequence import DEFAULT_RATE, IMAGE_ENCODERS, find_sequence, is_sequence, numbered
from ..io.timecode import is_timecode, seconds_after
from .config import PipelineConfig

if TYPE_CHECKING:  # the analysis calls choose_deinterlace
    from .analysis import Analysis


DEINTERLACE_MODES = ("auto", "on", "ivtc", "off")


def retiming(analysis: Analysis, cfg: PipelineConfig) -> str:
    """How the output's frame rate differs from the input's, as a report says it ("": it does not)."""
    if doubles(analysis, cfg):
        return "deinterlaced into a frame for each field (--double-rate)"
    return "decimated to the film's own frames (--decimate)" if decimates(analysis, cfg) else ""


def at_time_before(pts: list[int | None], index: int) -> bool:
    """Whether frame ``index`` comes at the time of the frame before it, as in a badly muxed file:
    no muxer holds two frames at one time, so it is written just after that one
    (:meth:`~vidrestore.io.writer.VideoWriter._on_grid`), by the same writer (no segment starts
    there), and such a video is not copied."""
    return 0 < index < len(pts) and pts[index] is not None and pts[index - 1] is not None and pts[index] <= pts[index - 1]


def at_shared_times(pts: list[int | None]) -> int:
    """How many frames come at the time of the frame before them (:func:`at_time_before`)."""
    return sum(at_time_before(pts, i) for i in range(1, len(pts)))


def shared_times_note(analysis: Analysis) -> list[str]:
    shared = at_shared_times(analysis.pts)
    if not shared:
        return []
    return [(f"{shared} frame{'s' if shared > 1 else ''} of the input came at the time of the frame before (a fault of the file's muxer); "
             "no container holds two frames at one time, so each was written just after it (1 ms, or the output's next tick) "
             "and every frame is kept")]


def decimates(analysis: Analysis, cfg: PipelineConfig) -> bool:
    """Whether the output leaves out the frames of telecined film that repeat a film frame
    (``cfg.decimate``, on field-matched film whose frames are evenly spaced: :func:`film_cadence`;
    with ``cfg.hybrid``, where some cycle is film)."""
    return cfg.decimate and bool(analysis.film_pts) and bool(film_repeats(analysis, cfg))


def film_repeats(analysis: Analysis, cfg: PipelineConfig) -> frozenset[int]:
    return cadence.in_film_cycles(analysis.repeats, analysis.video_cycles) if cfg.hybrid else analysis.repeats


def left_out(analysis: Analysis, cfg: PipelineConfig) -> frozenset[int]:
    """The input frames the output does not have: the repeated film frames that decimation
    (:func:`decimates`) leaves out, but for those of the video cycles ``cfg.hybrid`` keeps."""
    return film_repeats(analysis, cfg) if decimates(analysis, cfg) else frozenset()


def doubles(analysis: Analysis, cfg: PipelineConfig) -> bool:
    """Whether the output has a frame for each of the input's fields (``cfg.double_rate``, on
    video that was deinterlaced field by field)."""
    return cfg.double_rate and doubles_rate(analysis.deinterlace)


def choose_deinterlace(cfg: PipelineConfig, path: Path, info: VideoInfo) -> tuple[FieldFilter | None, str]:
    """How to make the frames progressive (None: leave them) and why, from ``cfg.deinterlace``,
    the declared field order, and what FFmpeg's idet and fieldmatch make of the frames scanned
    (:func:`~vidrestore.io.reader.scan_fields`).
    Archival transfers are often flagged progressive although their fields differ, and telecined
    film is often flagged interlaced although field matching gives its film frames back whole."""
    if cfg.deinterlace not in DEINTERLACE_MODES:
        raise ConfigError(f"deinterlace: expected {', '.join(DEINTERLACE_MODES)}, got {cfg.deinterlace!r}")
    if cfg.deinterlace == "off":
        return None, ""
    scan = scan_fields(path)
    # a hybrid transfer, said to be one (--hybrid), is field-matched wherever it has fields, even
    # where the stretches scanned are its video: fieldmatch leaves video's frames to bwdif
    hybrid = cfg.hybrid and (info.interlaced or scan.interlaced or scan.matched > 0)
    if cfg.deinterlace == "ivtc" or (cfg.deinterlace == "auto" and (scan.telecined or hybrid)):
        scanned = scan.tff + scan.bff + scan.progressive
        why = f"field matching rebuilt {scan.matched} and left {scan.combed} combed of {scanned} frames scanned"
        said = "" if cfg.deinterlace == "auto" and scan.telecined else "--deinterlace ivtc; " if cfg.deinterlace == "ivtc" else "--hybrid; "
        return FieldFilter(scan.match_parity, match=True), said + why
    if info.interlaced:
        return FieldFilter(info.parity), f"declared {info.field_order}"
    found = f"{scan.tff + scan.bff} of {scan.tff + scan.bff + scan.progressive} frames scanned look interlaced"
    if scan.interlaced:
        return FieldFilter(scan.parity), f"detected {scan.parity}: {found}"
    return (FieldFilter(scan.parity), f"--deinterlace on; {found}") if cfg.deinterlace == "on" else (None, "")


def coded_field_order(analysis: Analysis, info: VideoInfo, keep_fields: bool) -> str:
    """How the output's frames are coded: progressive when deinterlaced, else in the input's
    field order: as declared, or as found, for a transfer flagged progressive whose fields differ."""
    if analysis.deinterlace is None:
        return info.field_order
    if not keep_fields:
        return "progressive"
    return info.field_order if info.interlaced else ("tt" if analysis.deinterlace.parity == "tff" else "bb")


def check_timing(cfg: PipelineConfig, src: Path, dst: Path | None, length_known: bool = True) -> None:
    """``--frame-rate`` times the pictures of an image sequence in a video, or the times of an
    excerpt of them; refuse it elsewhere.
    ``--double-rate`` puts frames between the input's, and ``--decimate`` retimes film's frames,
    which a sequence's pictures, numbered as the input's frames, cannot say; ``--hybrid`` varies
    the rate, which some formats cannot store. ``length_known``: see :func:`check_excerpt`."""
    if cfg.frame_rate and not is_sequence(src):
        raise UsageError("--frame-rate times the pictures of an image sequence (name_%06d.png); a video keeps its own timing")
    if cfg.frame_rate and dst is not None and is_sequence(dst) and not (cfg.start or cfg.end):
        raise UsageError("--frame-rate times a video made from pictures, or the --start and --end of an excerpt of them; "
                         "an image sequence stores no timing")
    if cfg.decimate and dst is not None and is_sequence(dst):
        raise UsageError("--decimate writes a video (.mkv, .mov, .mp4): an image sequence's pictures are numbered as the "
                         "input's frames, and the film's own frames need their own times")
    held = one_rate_only(dst, cfg.encode, played_at(probe(src), cfg)) if cfg.hybrid and dst is not None else ""
    if held:
        raise UsageError(f"--hybrid writes video whose frame rate varies, and {held}: write .mkv, .mp4 or .mov, "
                         "or leave --hybrid out to write every cycle at the film's rate")
    if cfg.double_rate and dst is not None and is_sequence(dst):
        raise UsageError("--double-rate writes a video (.mkv, .mov, .mp4): an image sequence's pictures are numbered as the "
                         "input's frames, with no numbers for the fields between them")
    check_excerpt(cfg, src, length_known)


def in_seconds(cfg: PipelineConfig, src: Path) -> PipelineConfig:
    """``cfg`` with a ``--start`` or ``--end`` given as a timecode (01:00:10:12) as seconds from
    the first frame: counted from the timecode ``src`` states for it (00:00:00:00 where it states
    none) at its frame rate. Each is floored to the microsecond, so that the frame at that
    timecode is the first the excerpt holds (for ``--end``, the first it does not)."""
    given = {what: text for what in ("start", "end") if is_timecode(text := getattr(cfg, what))}
    if not given:
        return cfg
    info = played_at(probe(src), cfg)
    first = stated_timecode(src) or "00:00:00:00"
    if not info.average_rate:
        raise UsageError(f"--{next(iter(given))} {next(iter(given.values()))}: {src.name} states no frame rate to count a timecode in; give the time in seconds")
    seconds = {}
    for what, text in given.items():
        try:
            after = seconds_after(text, first, info.average_rate)
        except ValueError as exc:
            raise UsageError(f"--{what} {text}: {exc} in {src.name}") from None
        micros = math.floor(after * 1_000_000)
        seconds[what] = f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
    return dataclasses.replace(cfg, **seconds)


def excerpt_of(cfg: PipelineConfig, src: Path) -> Excerpt | None:
    """The excerpt ``cfg`` asks for (None: all of ``src``), its times on the clock ``src`` is played
    by: an image sequence's pictures at the rate of :func:`played_at`."""
    excerpt = cfg.excerpt
    if excerpt is None or not is_sequence(src):
        return excerpt
    return dataclasses.replace(excerpt, frame_time=played_at(probe(src), cfg).time_base)


def check_excerpt(cfg: PipelineConfig, src: Path, length_known: bool = True) -> None:
    """Refuse ``--start``/``--end`` where they cannot cut: in a picture, or past the end of a video
    whose length is known (not where ``length_known`` is false: a recording whose timestamps start
    over states the length of its first part alone)."""
    excerpt = excerpt_of(cfg, src)
    if excerpt is None:
        return
    if src.suffix.lower() in IMAGE_ENCODERS and not is_sequence(src):
        raise UsageError(f"--start and --end cut a video or an image sequence; {src.name} is one picture")
    lasts = excerpt_length(probe(src), excerpt) if length_known else None
    if lasts is not None and excerpt.start >= lasts:
        raise UsageError(f"--start {clock(excerpt.start)} is past the end of {src.name}, which lasts {clock(lasts)}")


def checked_as(src: Path, cfg: PipelineConfig) -> VideoInfo:
    """The input ``src`` as the checks of its output see it: played at its rate (:func:`played_at`),
    with the frames of its excerpt (a picture holds an excerpt of one frame), its samples read as
    ``cfg`` says."""
    played = played_at(probe(src), cfg)
    excerpt = excerpt_of(cfg, src)
    if excerpt is not None:
        played = dataclasses.replace(played, frames=excerpt.estimated_frames(played))
    return played.read_as(cfg.light_of(played))


def excerpt_shown(analysis: Analysis, info: VideoInfo) -> dict | None:
    """The report's ``excerpt``: the times asked for, and when its first frame is shown in the
    input, in seconds from the input's first frame (None: not an excerpt)."""
    excerpt = analysis.excerpt
    if excerpt is None or not analysis.pts or analysis.pts[0] is None:
        return None
    first = Fraction(analysis.pts[0] - (info.start_pts or 0)) * info.time_base
    return {"start_s": float(excerpt.start), "end_s": None if excerpt.end is None else float(excerpt.end), "first_frame_s": float(first)}


def excerpt_note(analysis: Analysis, info: VideoInfo, output: Path | None) -> list[str]:
    """What the report says of an excerpt: where it lies in the input, in frames and times, and
    where in ``output`` (an image sequence made from one keeps its pictures' numbers)."""
    shown = excerpt_shown(analysis, info)
    if shown is None:
        return []
    first = f"the first shown at {clock(shown['first_frame_s'])} in the input"
    if not is_sequence(info.path):
        return [(f"excerpt from {analysis.excerpt.describe()}: {analysis.frames} frames, {first}; its sound and subtitles cut "
                 "at the same times, and the output starts at 0")]
    picture = numbered(info.path, find_sequence(info.path).first + analysis.pts[0] - (info.start_pts or 0)).name
    kept = "its pictures keep their numbers" if output is not None and is_sequence(output) else "the output starts at 0"
    return [f"excerpt from {analysis.excerpt.describe()}: {analysis.frames} pictures, from {picture}, {first}; {kept}"]


def excerpt_cut(analysis: Analysis, info: VideoInfo, first_shown: Fraction | None) -> Cut | None:
    """Where the excerpt lies on the input's timeline, for :func:`~vidrestore.io.remux.remux`, from
    ``first_shown``, its first frame's time in seconds (None: not an excerpt)."""
    if analysis.excerpt is None or first_shown is None:
        return None
    upper = analysis.excerpt.ticks(info)[1]
    return Cut(first_shown, None if upper is None else upper * info.time_base)


def steady(pts: list[int | None], info: VideoInfo) -> bool:
    """Whether frames at ``pts`` (in ``info``'s time base) come one frame of its average rate apart,
    within a tick of rounding (Matroska's 1 ms ticks give 33 and 34 at 29.97 fps)."""
    known = [p for p in pts if p is not None]
    return bool(info.average_rate) and len(known) == len(pts) > 0 and \
        all(abs(b - a - info.frame_ticks) <= 1 for a, b in itertools.pairwise(known))


def at_steady_rate(info: VideoInfo, pts: list[int | None]) -> VideoInfo:
    """``info`` saying whether frames at ``pts`` come at a constant rate, and at which: its average
    rate, unless every frame is the same number of ticks after the one before at another. An .mp4
    whose stream duration counts a long last frame stated 29.77 fps for frames 1001/30000 s apart;
    an AVI of it then ran at 600 fps with empty frames between."""
    if steady(pts, info):
        return dataclasses.replace(info, constant_rate=True)
    step = cadence.frame_step(pts)
    exact = step is not None and all(b - a == step for a, b in itertools.pairwise(pts))  # not Matroska's 33 and 34 ms
    return dataclasses.replace(info, constant_rate=exact, average_rate=1 / (step * info.time_base) if exact else info.average_rate)


def played_at(info: VideoInfo, cfg: PipelineConfig) -> VideoInfo:
    """``info`` with the frames of an image sequence timed at ``cfg.frame_rate``, else at the rate
    their headers state (a DPX scan's), else at FFmpeg's 25. Sequences are read one tick of 1/25 s a
    frame (:mod:`vidrestore.io.sequence`), so only the tick changes."""
    if not is_sequence(info.path):
        return info
    rate = cfg.sequence_rate if cfg.frame_rate else info.stated_rate or DEFAULT_RATE
    return info if rate == info.average_rate else dataclasses.replace(info, time_base=1 / rate, average_rate=rate)


def output_timing(info: VideoInfo, analysis: Analysis, cfg: PipelineConfig) -> VideoInfo:
    """``info`` with the output's time base and frame rate: a frame for each field (:func:`doubles`)
    runs at twice the rate, timed as bwdif times them, in half the stream's ticks; film's own
    frames (:func:`decimates`) at 4/5 of the rate its frames are spaced at, in a quarter of them,
    unless cycles of video kept whole (``cfg.hybrid``) make the rate vary."""
    if doubles(analysis, cfg):
        return dataclasses.replace(info, time_base=info.time_base / 2, average_rate=2 * info.average_rate if info.average_rate else None)
    if decimates(analysis, cfg):
        rate = 1 / (cadence.frame_step(analysis.pts) * info.time_base)
        if cfg.hybrid and analysis.video_cycles:  # film and video cycles: stated at the video's rate, where frames are closest
            return dataclasses.replace(info, time_base=info.time_base / cadence.TICKS, average_rate=rate, constant_rate=False)
        return dataclasses.replace(info, time_base=info.time_base / cadence.TICKS, average_rate=cadence.FILM_RATE * rate)
    return info
