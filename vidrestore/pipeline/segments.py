"""What pass 2 encodes and in which pieces: restoration windows, segments (for resuming and for
parallel jobs), the state of the tracks one segment hands to the next, and the hidden files they
are written to until the remux joins them.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import torch

from .. import cadence
from ..errors import OutputError
from ..io import VideoInfo, probe, remux
from ..io.containers import TIMELESS_MUXERS, copies_into, holds_copy, muxer_of, stores_rotation
from ..io.excerpt import Cut, Excerpt
from ..io.reader import bit_depth
from ..io.reencode import damaged_sound_note, sound_encoder
from ..io.remux import carried_notes, left_out_note, lifted_captions_note, unflagged_note
from ..io.sequence import IMAGE_ENCODERS, SEGMENT_SUFFIX, hidden_stem, is_sequence
from ..restore import TrackContext, load_contexts, save_contexts
from ..resume import SegmentLedger
from .analysis import Analysis, selected_tracks
from .config import PipelineConfig, Progress
from .timing import at_shared_times, at_steady_rate, at_time_before, decimates, excerpt_cut, played_at, retiming


def faceless_encoding(src: Path, dst: Path, retiming: str = "", excerpt: Excerpt | None = None, codec: str = "auto",
                      shared_times: int = 0) -> str:
    """Why a video with nothing to restore is encoded unchanged rather than copied ("": it is
    copied): a copy would leave a JPEG inside a .png, or a raw stream's unstamped frames in a
    container that needs timestamps, or the pictures of an image sequence in a video file, or
    a turned video in a container that stores no rotation, or H.264 in a program stream, or video
    the output's container cannot hold (a GIF's in an .mp4); or the output runs at another rate,
    as ``retiming`` says (:func:`retiming`); or it is an ``excerpt``, which a copy could start only
    at a keyframe; or ``codec`` (--codec) names another codec than the input's (a ProRes master
    asked for came back as the input's H.264); or ``shared_times`` frames come at the time of the
    frame before them (:func:`at_shared_times`), which a copy would keep and no muxer takes."""
    if excerpt is not None:
        return "the excerpt was encoded unchanged, since a copy could start only at a keyframe"
    if retiming:
        return f"the video was {retiming}, as asked"
    if shared_times:
        return "the video was encoded unchanged, since a copy would keep frames at one time, which no muxer takes"
    info = probe(src)
    if codec != "auto" and av.Codec(codec, "w").canonical_name != info.codec:
        return f"the video was encoded unchanged with {codec}, as --codec asked (a copy would keep its {info.codec})"
    encoder = IMAGE_ENCODERS.get(dst.suffix.lower())
    if encoder is not None and info.codec != av.Codec(encoder, "w").canonical_name:  # libwebp writes webp
        return f"the frames were written as {dst.suffix} pictures unchanged" if is_sequence(dst) \
            else f"the picture was converted to {dst.suffix} unchanged"
    if encoder is None and is_sequence(src):
        return "the pictures were encoded into a video unchanged"
    if not info.timestamps:
        return "the video was encoded unchanged, since a copy of its raw stream would have no timestamps"
    if info.rotation % 360 and not stores_rotation(dst):
        return f"the video was encoded upright, since {dst.suffix} files store no rotation and a copy would play turned"
    if not copies_into(dst, info.codec):
        return f"the video was encoded unchanged, since FFmpeg cannot read {info.codec} back from a program stream"
    if not holds_copy(src, dst):
        return f"the video was encoded unchanged, since {dst.suffix} files cannot hold its {info.codec} video"
    return ""


CPU_WINDOW, GPU_WINDOWS = 16, (64, 32)


WINDOW_MEMORY = 2 << 30  # bytes of full-size frames a GPU window may hold


def window_frames(cfg: PipelineConfig, device: torch.device, info: VideoInfo) -> int:
    """Frames per restoration window (and most crops per forward pass): ``cfg.batch_size``, else 16
    on the CPU, whose caches larger passes outgrow, and on a GPU, whose passes run fuller (on an
    H200 flipnet-small restored 70, 127 and 177 face-frames/s in passes of 8, 32 and 64;
    docs/benchmarks.md), the largest of 64 and 32 whose full-size frames fit in 2 GiB, else 16.
    Each divides 64, where :func:`encoded_segments` may split a long shot."""
    if cfg.batch_size:
        return cfg.batch_size
    if device.type == "cpu":
        return CPU_WINDOW
    frame_bytes = info.width * info.height * 3 * (2 if bit_depth(info.pix_fmt) > 8 else 1)
    return next((n for n in GPU_WINDOWS if n * frame_bytes <= WINDOW_MEMORY), CPU_WINDOW)


def encoded_segments(analysis: Analysis, cfg: PipelineConfig, src: Path, dst: Path, whole: bool = False) -> list[range]:
    """The frames pass 2 encodes, in segments: with a track to restore, the whole video (split for
    resuming, unless ``whole``); with none, nothing (the video is copied) unless it must be
    encoded all the same (:func:`faceless_encoding`). Video whose frames come at varying times
    (pass 1 knows) is refused here, before any restoring, for a file that stores no frame's time."""
    if muxer_of(dst) in TIMELESS_MUXERS and not at_steady_rate(played_at(probe(src), cfg), analysis.pts).constant_rate:
        raise OutputError(f"{dst.suffix} files state a frame rate and no frame's time, and this video's frames come at varying "
                          "times (as a phone's do), so it would play out of step with its sound: write a .mkv, .mp4 or .mov")
    if selected_tracks(analysis, cfg):
        return plan_segments(analysis, 0 if whole else cfg.segment_frames, cfg.batch_size or max(GPU_WINDOWS))
    return [range(analysis.frames)] if faceless_encoding(src, dst, retiming(analysis, cfg), analysis.excerpt, cfg.encode.codec,
                                                         at_shared_times(analysis.pts)) else []


def plan_segments(analysis: Analysis, segment_frames: int, window: int = 0) -> list[range]:
    """Split the video into segments of at least ``segment_frames`` frames each (the last one may be
    shorter, down to half that); one segment when ``segment_frames`` is 0. Segments end at cuts;
    with ``window`` > 0, a long shot may also be split inside, at a multiple of ``window`` frames
    from its start, where pass 2's windows start anyway (its tracks' state then goes across in a
    file: :func:`~vidrestore.restore.save_contexts`); never at a frame that comes at the time of
    the one before it (:func:`at_time_before`), whose own writer could not write it after that one."""
    if segment_frames <= 0 or analysis.frames < 2 * segment_frames:
        return [range(analysis.frames)]
    ends = sorted({shot.end for shot in analysis.shots}
                  | {b for shot in analysis.shots if window > 0 for b in range(shot.start + window, shot.end, window)})
    segments, start = [], 0
    for end in ends:
        if end - start >= segment_frames and analysis.frames - end >= max(1, segment_frames // 2) and not at_time_before(analysis.pts, end):
            segments.append(range(start, end))
            start = end
    segments.append(range(start, analysis.frames))
    return segments


def segment_starts(analysis: Analysis, segments: list[range], time_base: Fraction, decimated: bool = False) -> list[Fraction | None]:
    """When, in seconds, the first frame each of ``segments`` writes is shown (for
    :func:`~vidrestore.io.remux.remux`); ``decimated``: at the film's rate (:func:`decimates`)."""
    if decimated:
        firsts = [next((analysis.film_pts[i] for i in s if analysis.film_pts[i] is not None), None) for s in segments]
        return [None if pts is None else pts * time_base / cadence.TICKS for pts in firsts]
    return [analysis.pts[s.start] * time_base if s.start < len(analysis.pts) and analysis.pts[s.start] is not None else None
            for s in segments]


def join_segments(parts: list[Path], segments: list[range], src: Path, output: Path, dst: Path, analysis: Analysis,
                  cfg: PipelineConfig, comment: str, alone: bool = False) -> list[str]:
    """Join the encoded ``parts`` (of ``segments``) and the other streams of ``src`` (none with
    ``alone``) into ``output`` (the temp file of ``dst``), cut to the excerpt if there is one
    (:func:`excerpt_cut`); returns the report's note on the streams left out."""
    source = played_at(probe(src), cfg)
    starts = segment_starts(analysis, segments, source.time_base, decimates(analysis, cfg))
    return carry_streams(parts, parts[0] if alone else src, output, dst, cfg, comment, starts, source.time_base,
                         excerpt_cut(analysis, source, starts[0]))


def join_preview(part: Path, segments: list[range], src: Path, output: Path, dst: Path, analysis: Analysis,
                 cfg: PipelineConfig, comment: str) -> list[str]:
    """Join the side-by-side video ``part`` into ``output`` (the temp file of the preview ``dst``)
    as :func:`join_segments` joins the output: with the input's other streams, or, where they
    cannot be written there, alone (the restored output, already joined, is not lost for its
    preview); returns the report's notes on it."""
    try:
        return [f"the preview: {note}" for note in join_segments([part], segments, src, output, dst, analysis, cfg, comment)]
    except OutputError as exc:
        join_segments([part], segments, src, output, dst, analysis, cfg, comment, alone=True)
        return [f"the preview was written without the input's sound and subtitles: {exc}"]


def carry_streams(video: Path | list[Path], src: Path, output: Path, dst: Path, cfg: PipelineConfig, comment: str = "",
                  starts: list[Fraction | None] | None = None, tick: Fraction | None = None, cut: Cut | None = None) -> list[str]:
    """:func:`~vidrestore.io.remux.remux` into ``output`` (the temp file of ``dst``), sound the
    container cannot hold re-encoded with ``cfg.audio_codec``; returns the report's notes on the
    streams left out or re-encoded, and on the closed captions lifted from the frames."""
    sound, damaged, unflagged = sound_encoder(dst, cfg.audio_codec), Counter(), []
    left_out = remux(video, src, output, comment, starts or (), tick, cut, sound, damaged, unflagged)
    return (left_out_note(left_out, dst) + carried_notes(src, dst, sound, excerpt=cut is not None)
            + damaged_sound_note(src, damaged) + lifted_captions_note(src, video, dst) + unflagged_note(unflagged, dst))


def segment_path(output: Path, index: int) -> Path:
    """Where segment ``index`` of ``output`` is encoded: hidden, beside the output, named like a temp
    file so that a cleanup of an interrupted run removes it. The segments of an image sequence are
    QuickTime files of its pictures (the one container that holds PNG, JPEG, TIFF and DPX alike),
    which the join writes out one file each."""
    return output.with_name(f".{hidden_stem(output)}.seg{index:04d}.part{output.suffix}" + (SEGMENT_SUFFIX if is_sequence(output) else ""))


def carry_path(output: Path, index: int) -> Path:
    """Where the state of the tracks that go on past segment ``index`` is kept (beside its file)."""
    return output.with_name(f".{hidden_stem(output)}.seg{index:04d}.carry")


def starts_inside_shot(analysis: Analysis, frames: range) -> bool:
    """Whether the segment ``frames`` goes on with a shot the segment before it began: it then
    needs the state that segment hands on (:func:`carried_in`), so it is restored after it."""
    return frames.start not in {shot.start for shot in analysis.shots}


def carried_in(output: Path, index: int, device: torch.device) -> dict[int, TrackContext]:
    """The state of the tracks that come into segment ``index`` of ``output`` from the one before
    it, as that one left it (:func:`hand_on`); none when no track crosses the boundary."""
    carried = carry_path(output, index - 1)
    return load_contexts(carried, device) if index > 0 and carried.exists() else {}


def hand_on(contexts: dict[int, TrackContext], output: Path, index: int, last: bool) -> Path | None:
    """Write the state of the tracks that go on past segment ``index`` (``last``: it ends the
    video) to its file for the next segment; returns the file, or None when no track crosses, in
    which case a file of that name left by an earlier run is removed."""
    path = carry_path(output, index)
    if not contexts or last:
        path.unlink(missing_ok=True)
        return None
    save_contexts(contexts, path)
    return path


def without_segments(progress: Progress | None, skipped: list[range]) -> Progress | None:
    """``progress`` that counts only this run's frames, leaving out the segments an earlier run
    restored, so the rate and ETA are this run's."""
    if progress is None or not skipped:
        return progress
    left_out = sum(len(s) for s in skipped)

    def report(stage: str, done: int, total: int, faces: int) -> None:
        progress(stage, done - sum(len(s) for s in skipped if s.stop <= done), total - left_out, faces)

    return report


def clean_segments(parts: list[Path], carries: list[Path], ledger: SegmentLedger | None, keep: bool,
                   preview: Path | None = None) -> None:
    """Remove the segment files (and their carried track state) of a run that ended, but with
    ``keep`` (it was stopped, or could not write: :func:`~vidrestore.resume.keeps_segments`) those
    its ledger records as finished, for the next run; ``preview``: the side-by-side part written
    with the first (then the only) segment, kept with it."""
    finished = ledger.finished() if ledger and keep else {}
    if ledger and not finished:
        ledger.discard()
    for part, carry in zip(parts, carries):
        if part not in finished:
            part.unlink(missing_ok=True)
            carry.unlink(missing_ok=True)
    if preview is not None and (not parts or parts[0] not in finished or finished[parts[0]].preview != preview.absolute()):
        preview.unlink(missing_ok=True)
