"""The three steps of one batch item, run by a worker that keeps its models loaded between items.

``analyse`` (decode, shots, faces, tracks) and ``restore_segment`` (restore and encode a segment)
need the detector and the restorer: a ``RestoreWorker`` holds them, one per GPU under Ray or one in
the batch process. ``finish`` (join the segments, remux the other streams, rename into place) needs
no model and runs on any CPU worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..faces.detect import DetectorConfig, FaceDetector, create_detector
from ..faces.parsing import ParsingMasker as Masker
from ..io.output import atomic_output
from ..io.paths import check_paths
from ..io.photo import carry_photo_tags
from ..io.reader import DecodedFrames
from ..io.remux import remux
from ..io.restarts import timed_on, timed_on_folder
from ..io.sequence import check_unchanged, number_offset, source_stamp
from ..models.precision import resolve_device
from ..options import RestoreOptions, build_restorer, pinned_precision
from ..pipeline import Analysis, PipelineConfig, Progress, restore_video
from ..pipeline.analysis import selected_tracks
from ..pipeline.analysis_store import AnalysisStore, analysed, analysis_notes
from ..pipeline.checks import checked
from ..pipeline.driver import create_masker, frames_to_keep, mask_name
from ..pipeline.report import (
    build_report,
    copy_note,
    encoding,
    provenance,
    quality_check,
    restoring_advice,
    video_notes,
    write_faces,
)
from ..pipeline.segments import (
    carried_in,
    carry_path,
    carry_streams,
    encoded_segments,
    hand_on,
    join_preview,
    join_segments,
    segment_path,
)
from ..restore import Restorer
from ..resume import SegmentLedger, reused_note


@dataclass(frozen=True)
class Item:
    input: Path
    output: Path
    options: RestoreOptions
    fingerprint: str
    qa: bool = False  # measure the output against the input once it is written (not part of the fingerprint)
    reanalyse: bool = False  # analyse the input again rather than take the analysis an earlier run kept (pipeline.analysis_store)
    preview: Path | None = None  # where its side-by-side (input | restored) video goes; it is then restored as one segment

    def preview_part(self, index: int) -> Path | None:
        """The side-by-side part that segment ``index`` writes beside the preview, if it has one."""
        return segment_path(self.preview, index) if self.preview is not None else None


@dataclass
class ItemPlan:
    item: Item
    analysis: Analysis
    segments: list[range]  # empty: no face, the video is copied
    restorer: str
    mask: str
    started: float
    analyse_s: float
    decoded: DecodedFrames  # the frames the analysis kept for restoring (none once sent to a Ray worker)
    # the input as listed; item.input is the file read, its copy timed on where its timestamps start over
    source: Path | None = None
    restarted: tuple[str, ...] = ()  # the note that says so
    kept: tuple[str, ...] = ()  # the note that says the analysis an earlier run kept was taken, if it was
    stamp: str = ""  # item.input's source_stamp as its analysis began: finish checks it is unchanged


@dataclass(frozen=True)
class Remarks:
    """What restoring segments leaves for the item's report, added up over its segments as a single
    run gathers it over the whole video: the restorer's notes (e.g. a smaller pass after running
    out of memory), and what the advice of :func:`~vidrestore.pipeline.report.restoring_advice` is
    drawn from."""
    notes: tuple[str, ...] = ()
    noise: tuple[tuple[int, tuple[float, float, float]], ...] = ()  # (track, sample) of the faces' noise
    parsing_s: float = 0.0  # spent parsing faces for the paste masks
    restore_s: float = 0.0  # spent restoring and encoding

    def __add__(self, other: Remarks) -> Remarks:
        return Remarks(self.notes + other.notes, self.noise + other.noise, self.parsing_s + other.parsing_s,
                       self.restore_s + other.restore_s)

    def report_notes(self, cfg: PipelineConfig) -> list[str]:
        by_track: defaultdict[int, list[tuple[float, float, float]]] = defaultdict(list)
        for track, sample in self.noise:
            by_track[track].append(sample)
        return list(self.notes) + restoring_advice(by_track, self.parsing_s, self.restore_s, cfg)


@dataclass(frozen=True)
class SegmentDone:
    frames: int  # written
    remarks: Remarks
    carry: Path | None = None  # the state of the tracks that go on into the next segment (it starts inside a shot)


def _key(value: object) -> str:
    """A cache key for configs, which hold lists and so are not hashable."""
    return json.dumps(value, default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o) else str(o), sort_keys=True)


class RestoreWorker:
    """Holds one detector and one restorer per distinct setting, for the life of the worker. The
    in-process batch analyses one item while it restores another: the models are made under a lock."""

    def __init__(self, device: str = "auto"):
        self.device = resolve_device(device)
        self._models: dict[tuple[str, str], object] = {}
        self._making = threading.Lock()
        self.name = f"pid {os.getpid()} {self.device}"

    def _model(self, kind: str, setting: object, make: Callable[[], object]) -> object:
        key = (kind, _key(setting))
        with self._making:
            if key not in self._models:
                self._models[key] = make()
            return self._models[key]

    def _detector(self, cfg: DetectorConfig) -> FaceDetector:
        return self._model("detector", cfg, lambda: create_detector(cfg, self.device))

    def _masker(self, cfg: PipelineConfig, dtype: torch.dtype) -> Masker | None:
        return self._model("masker", (cfg.mask, cfg.parsing_weights, dtype), lambda: create_masker(cfg, self.device, dtype))

    def _restorer(self, options: RestoreOptions) -> Restorer:
        return self._model("restorer", (options.model, options.sampler, options.dtype, options.temporal, options.pipeline.face_size,
                                          options.restore_every),
                           lambda: build_restorer(options, self.device))

    def analyse(self, item: Item, progress: Progress | None = None) -> ItemPlan:
        """Plan ``item``: its analysis, its segments, and its precision, settled here once for all
        of them, whichever worker restores each (:func:`~vidrestore.options.pinned_precision`)."""
        started = time.time()
        item = dataclasses.replace(item, options=pinned_precision(item.options, self.device, SegmentLedger(item.output, item.fingerprint)))
        check_paths(item.input, item.output, overwrite=True)  # the batch state decides about existing outputs
        if item.preview is not None:
            check_paths(item.input, item.preview, overwrite=True)
        source = item.input
        readable, restarted = timed_on(source, timed_on_folder(item.output))  # removed by finish, or with the leftovers
        item = dataclasses.replace(item, input=readable)
        cfg = checked(item.input, item.output, item.options.pipeline, item.preview)
        restorer = self._restorer(item.options)
        cfg = dataclasses.replace(cfg, face_size=restorer.face_size)  # measured and cropped at the model's size, as restored
        mask = mask_name(self._masker(cfg, restorer.dtype), cfg)
        decoded = frames_to_keep(cfg)
        stamp = source_stamp(item.input)
        analysis, kept = analysed(item.input, cfg, lambda: self._detector(cfg.detector), progress, keep=decoded,
                                  store=AnalysisStore.default(read=not item.reanalyse), copied_from=source if readable != source else None)
        check_unchanged(item.input, stamp)
        if cfg.faces_dir:
            write_faces(analysis, Path(cfg.faces_dir), overwrite=True)  # the item's own folder: the batch decides
        segments = encoded_segments(analysis, cfg, item.input, item.output, whole=item.preview is not None)
        return ItemPlan(item, analysis, segments, restorer.name, mask, started, time.time() - started, decoded, source,
                        tuple(restarted), tuple(analysis_notes(kept, dry_run=False)), stamp)

    def restore_segment(self, plan: ItemPlan, index: int, progress: Progress | None = None) -> SegmentDone:
        """Restore and encode segment ``index`` of ``plan`` into its part file. A segment that starts
        inside a shot takes up the state of its tracks from the file the segment before it left."""
        restorer = self._restorer(plan.item.options)
        cfg = dataclasses.replace(plan.item.options.pipeline, face_size=restorer.face_size)
        output = plan.item.output
        contexts = carried_in(output, index, self.device)
        noise: defaultdict[int, list[tuple[float, float, float]]] = defaultdict(list)
        masker = self._masker(cfg, restorer.dtype)
        # the models outlive the item: what they say and spend while this segment is restored belongs to it
        parsed_before, started = masker.seconds if masker is not None else 0.0, time.perf_counter()
        frames = restore_video(plan.item.input, segment_path(output, index), plan.analysis, restorer, cfg,
                               self.device, progress, plan.item.preview_part(index), frames=plan.segments[index], masker=masker, reuse=plan.decoded,
                               contexts=contexts, target=output, noise=noise)
        carry = hand_on(contexts, output, index, last=index + 1 == len(plan.segments))
        remarks = Remarks(tuple(restorer.notes), tuple((track, sample) for track, samples in noise.items() for sample in samples),
                          masker.seconds - parsed_before if masker is not None else 0.0, time.perf_counter() - started)
        restorer.notes.clear()
        return SegmentDone(frames, remarks, carry)


def finish(plan: ItemPlan, frames_out: int, reused: int = 0, remarks: Remarks = Remarks()) -> dict:
    """Join the segments and the other streams into a temp file, rename it onto the output, and
    return the item's report (the pipeline's report plus ``faces`` and ``seconds``). ``reused``:
    how many segments an earlier, interrupted run had finished; ``remarks``: the others' (their
    notes and the advice a single run gives). The copy of an input timed on is removed."""
    try:
        return _finished(plan, frames_out, reused, remarks)
    finally:
        if plan.item.input != plan.source:
            shutil.rmtree(timed_on_folder(plan.item.output), ignore_errors=True)


def _finished(plan: ItemPlan, frames_out: int, reused: int, remarks: Remarks) -> dict:
    item = plan.item
    parts = [segment_path(item.output, i) for i in range(len(plan.segments))]
    notes = reused_note(reused, len(parts), item.options.dtype) + remarks.report_notes(item.options.pipeline)
    encoder = None
    preview_part = item.preview_part(0)  # a segment is reused only with the side-by-side it was written with
    try:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_output(item.output, number_offset(item.input)))
            preview_tmp = stack.enter_context(atomic_output(item.preview)) if item.preview is not None else None
            selected = selected_tracks(plan.analysis, item.options.pipeline)
            if parts:
                notes.extend(video_notes(plan.analysis, item.options.pipeline, item.input, item.output))
                encoder, master = encoding(item.input, item.output, item.options.pipeline)
                notes.extend(master)
                comment = provenance(plan.restorer)
                notes.extend(join_segments(parts, plan.segments, item.input, tmp, item.output, plan.analysis, item.options.pipeline, comment))
                # a photo's EXIF block and colour profile, as a single run keeps them (a batch of scans lost every date taken)
                notes.extend(carry_photo_tags(item.input, tmp, item.output, comment))
                if preview_tmp is not None:
                    notes.extend(join_preview(preview_part, plan.segments, item.input, preview_tmp, item.preview, plan.analysis,
                                              item.options.pipeline, comment))
            else:
                notes.append(copy_note(plan.analysis, item.input))
                notes.extend(carry_streams(item.input, item.input, tmp, item.output, item.options.pipeline))
                if preview_tmp is not None:
                    remux(item.input, item.input, preview_tmp)  # nothing restored: the input is its own preview
            check_unchanged(item.input, plan.stamp)  # before the output is named, as a single run checks
    finally:
        plan.decoded.clear()  # a failed item starts over from its analysis
    # only now: the segments of a join that was stopped, or could not write, serve the next run (the runner clears the others)
    for part in (*parts, *(carry_path(item.output, i) for i in range(len(parts))), preview_part):
        if part is not None:
            part.unlink(missing_ok=True)
    timings = {"analyse": plan.analyse_s}
    qa = None
    if item.qa and selected:
        t0 = time.time()
        qa, alarms = quality_check(item.input, item.output, plan.analysis, selected, item.options.pipeline)
        notes.extend(alarms)
        timings["qa"] = time.time() - t0
    seconds = time.time() - plan.started
    timings["total"] = seconds
    report = build_report(item.input, item.output, plan.analysis, item.options.pipeline, plan.restorer, plan.mask,
                          frames_out if parts else plan.analysis.frames, timings, notes)
    out = dataclasses.asdict(dataclasses.replace(report, input=str(plan.source or item.input), notes=[*plan.restarted, *report.notes, *plan.kept],
                                                 qa=qa, encoder=encoder))
    out.update(faces=sum(len(t) for t in selected), seconds=round(seconds, 3), segments=len(parts))
    return out
