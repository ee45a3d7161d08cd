"""One input into one output: the paths and options checked before any work, pass 1, pass 2 over
its segments (resumable), the remux of the other streams, the quality check and the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import UsageError
from ..faces.detect import FaceDetector, create_detector
from ..faces.parsing import ParsingMasker as Masker
from ..faces.parsing import load_parsenet
from ..faces.weights import parsing_weights
from ..io import remux
from ..io.output import atomic_output, writing
from ..io.paths import check_input, check_output_path
from ..io.photo import carry_photo_tags
from ..io.piped import spool_folder
from ..io.reader import DecodedFrames
from ..io.restarts import played_in_order, timed_on_folder
from ..io.sequence import check_unchanged, number_offset, source_stamp
from ..models.precision import precision_name
from ..restore import Restorer, TrackContext
from ..resume import SegmentLedger, keeps_segments, remove_leftovers, reused_note
from .analysis import selected_tracks
from .analysis_store import AnalysisStore, analysed, analysis_notes
from .checks import checked
from .config import PipelineConfig, Progress
from .report import (
    Report,
    build_report,
    copy_note,
    encoding,
    provenance,
    quality_check,
    restoring_advice,
    video_notes,
    write_faces,
)
from .restoring import restore_video
from .segments import (
    carried_in,
    carry_path,
    carry_streams,
    clean_segments,
    encoded_segments,
    hand_on,
    join_preview,
    join_segments,
    segment_path,
    without_segments,
)


def create_masker(cfg: PipelineConfig, device: torch.device, dtype: torch.dtype) -> Masker | None:
    """The parsing masker ``cfg.mask`` asks for, at the restorer's precision ``dtype``; None means
    the feathered ellipse (or, with ``cfg.aligned``, the whole frame)."""
    weights = parsing_weights(cfg.mask, cfg.parsing_weights, cfg.aligned)
    return Masker(load_parsenet(weights, device), dtype) if weights is not None else None


def frames_to_keep(cfg: PipelineConfig, dry_run: bool = False) -> DecodedFrames:
    """Where pass 1 keeps the decoded frames for pass 2 (:class:`~vidrestore.io.reader.DecodedFrames`):
    nowhere for a dry run, which has no pass 2, or with ``keep_fields`` or ``double_rate``, whose
    pass 2 reads two pictures a frame."""
    return DecodedFrames(cfg.decode_once_mib << 20 if not (dry_run or cfg.keep_fields or cfg.double_rate) else 0)


def mask_name(masker: Masker | None, cfg: PipelineConfig) -> str:
    if cfg.aligned:
        return "whole frame (--aligned)"
    if masker is None:
        return "ellipse (feathered)"
    return masker.name if cfg.parse_every == 1 else f"{masker.name}, once every {cfg.parse_every} frames of a track, drawn between"


def run(src: str | Path, dst: str | Path | None, cfg: PipelineConfig, restorer: Restorer | Callable[[], Restorer], device: torch.device,
        overwrite: bool = False, dry_run: bool = False, progress: Progress | None = None,
        detector: FaceDetector | None = None, preview: str | Path | None = None, qa: bool = False,
        resume: str = "", analyses: AnalysisStore | None = None) -> Report:
    """Restore ``src`` into ``dst`` (or only analyse it with ``dry_run``); returns the report.

    ``restorer``: the restorer, or what makes it, called once the paths, streams and options are
    checked, so that a wrong input is told before a model loads (seconds, with its imports).

    ``preview``: also write a side-by-side input | restored video (video only) there; the video is
    then restored as one segment. ``qa``: then measure every restored track against the input
    (:func:`quality_check`). ``resume``: the fingerprint of the input and options
    (:meth:`~vidrestore.options.RestoreOptions.fingerprint_for`); with it, each finished segment
    is recorded beside ``dst``, an interruption or a failure to write (a full disk) keeps them, and
    the next run with the same fingerprint reuses them (:mod:`vidrestore.resume`). ``analyses``:
    where pass 1's analysis is kept for the next run, and taken from when an earlier one kept it
    (:mod:`~vidrestore.pipeline.analysis_store`); None: the video is analysed, and nothing is kept."""
    src = Path(src)
    if dst is None and not dry_run:
        raise UsageError("an output path is needed unless --dry-run is given")
    check_input(src)  # a dry run's too: it probed first, and a URL was "not found"
    if dst is not None:
        check_output_path(src, Path(dst), overwrite)
    with writing(dst) if dst is not None and not dry_run else contextlib.nullcontext(), \
            played_in_order(src, Path(dst) if dst is not None else None) as (readable, restarted):
        report = _restore(readable, dst, cfg, restorer, device, dry_run, overwrite, progress, detector, preview, qa, resume, analyses,
                          src if readable != src else None)
    return dataclasses.replace(report, input=str(src), notes=[*restarted, *report.notes])


def _restore(src: Path, dst: str | Path | None, cfg: PipelineConfig, restorer: Restorer | Callable[[], Restorer], device: torch.device,
             dry_run: bool, overwrite: bool, progress: Progress | None, detector: FaceDetector | None, preview: str | Path | None,
             qa: bool, resume: str, analyses: AnalysisStore | None, copied_from: Path | None) -> Report:
    cfg = checked(src, dst, cfg, preview)
    if callable(restorer):
        restorer = restorer()
    if cfg.face_size != restorer.face_size:
        cfg = dataclasses.replace(cfg, face_size=restorer.face_size)  # crops at the model's own size
    timings: dict[str, float] = {}
    notes: list[str] = []
    encoder = None
    t0 = time.perf_counter()
    stamp = source_stamp(src)
    # a detector of the caller's own is not told by its config: its analysis is made, and not kept
    make_detector = functools.cache(lambda: detector or create_detector(cfg.detector, device))
    analyses = analyses if detector is None else None
    masker = create_masker(cfg, device, restorer.dtype) if not dry_run else None
    decoded = frames_to_keep(cfg, dry_run)
    analysis, analysis_kept = analysed(src, cfg, make_detector, progress, keep=decoded, store=analyses, copied_from=copied_from)
    check_unchanged(src, stamp)
    if cfg.faces_dir:
        write_faces(analysis, Path(cfg.faces_dir), overwrite)
    restoring = selected_tracks(analysis, cfg)
    timings["analyse"] = time.perf_counter() - t0
    frames_out = 0
    if dst is not None and not dry_run:
        dst = Path(dst)
        t1 = time.perf_counter()
        segments = encoded_segments(analysis, cfg, src, dst, whole=preview is not None)
        parts = [segment_path(dst, i) for i in range(len(segments))]
        carries = [carry_path(dst, i) for i in range(len(segments))]
        ledger = SegmentLedger(dst, resume) if resume else None
        kept = ledger.finished() if ledger else {}
        # the side-by-side video alone, joined with the input's sound and subtitles as the output is
        preview_part = segment_path(Path(preview), 0) if preview else None
        reused = {i for i, (part, frames) in enumerate(zip(parts, segments)) if part in kept and kept[part].serves(frames, preview_part)}
        if ledger and not reused and ledger.path.exists():
            ledger.discard()
            notes.append("the segments an earlier run left were not reused: they were made from another input, with other options "
                         "or another model, or have changed since")
        remove_leftovers(dst, keep=[timed_on_folder(dst), spool_folder(dst), *(p for i in reused for p in (parts[i], carries[i]))])  # not the copy read
        if preview_part is not None:
            remove_leftovers(Path(preview), keep=[preview_part] if reused else [])
        with contextlib.ExitStack() as stack:
            final_tmp = stack.enter_context(atomic_output(dst, number_offset(src)))
            preview_tmp = stack.enter_context(atomic_output(preview)) if preview else None
            if segments:
                notes.extend(video_notes(analysis, cfg, src, dst))
                encoder, master = encoding(src, dst, cfg)
                notes.extend(master)
                this_run = without_segments(progress, [segments[i] for i in reused])
                stopped = False
                try:
                    contexts: dict[int, TrackContext] = {}  # tracks going on from one segment into the next
                    noise: defaultdict[int, list[tuple[float, float, float]]] = defaultdict(list)  # for the advice below
                    for index, (part, frames) in enumerate(zip(parts, segments)):
                        if index in reused:
                            frames_out += kept[part].written
                            contexts = carried_in(dst, index + 1, device) if index + 1 not in reused else {}
                            continue
                        written = restore_video(src, part, analysis, restorer, cfg, device, this_run, preview_part, frames,
                                                masker, decoded, contexts, target=dst, noise=noise)
                        frames_out += written
                        carry = hand_on(contexts, dst, index, last=index + 1 == len(segments))
                        if ledger:
                            ledger.record(part, frames, written, precision_name(restorer.dtype), carry, preview_part)
                    timings["restore_encode"] = time.perf_counter() - t1
                    notes.extend(reused_note(len(reused), len(parts), precision_name(restorer.dtype)) + restorer.notes)
                    notes.extend(restoring_advice(noise, masker.seconds if masker is not None else 0.0, timings["restore_encode"], cfg))
                    t2 = time.perf_counter()
                    comment = provenance(restorer.name)
                    notes.extend(join_segments(parts, segments, src, final_tmp, dst, analysis, cfg, comment))
                    if preview_part is not None:
                        notes.extend(join_preview(preview_part, segments, src, preview_tmp, Path(preview), analysis, cfg, comment))
                    notes.extend(carry_photo_tags(src, final_tmp, dst, comment))
                    timings["remux"] = time.perf_counter() - t2
                except BaseException as exc:
                    stopped = keeps_segments(exc)
                    raise
                finally:
                    clean_segments(parts, carries, ledger, keep=stopped, preview=preview_part)
            else:
                notes.append(copy_note(analysis, src))
                notes.extend(carry_streams(src, src, final_tmp, dst, cfg))
                if preview_tmp is not None:
                    remux(src, src, preview_tmp)
                frames_out = analysis.frames
                timings["remux"] = time.perf_counter() - t1
            check_unchanged(src, stamp)  # before the output is named: it would hold frames or sound of two ends
    decoded.clear()
    qa_rows = None
    if qa and restoring and dst is not None and not dry_run:
        t3 = time.perf_counter()
        qa_rows, alarms = quality_check(src, dst, analysis, restoring, cfg, progress)
        notes.extend(alarms)
        timings["qa"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    report = build_report(src, dst if not dry_run else None, analysis, cfg, restorer.name, mask_name(masker, cfg), frames_out,
                          timings, notes + analysis_notes(analysis_kept, dry_run))
    return dataclasses.replace(report, qa=qa_rows, encoder=encoder)
