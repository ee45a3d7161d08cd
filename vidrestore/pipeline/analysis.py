"""Pass 1: decode, cut shots, detect faces and track them, and tell who is who; the
:class:`Analysis` it returns is all that pass 2 and the report need of the video (boxes,
landmarks, shots and frame timestamps, never frames, unless the whole video fits in
``decode_once_mib``).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from .. import cadence
from ..errors import UsageError
from ..faces.align import align_faces, template
from ..faces.detail import DetailMeter
from ..faces.detect import FaceDetector, look_again, smallest_findable
from ..faces.identity import DlibIdentityEncoder
from ..faces.people import Portraits, link_people
from ..faces.quality import QUALITY_MODEL, QualityMeter
from ..faces.tone import MONOCHROME_LEVELS, face_tone_spread, tone_spread, track_is_monochrome
from ..faces.track import Confirmations, FaceTracker
from ..faces.types import Detection, Track
from ..io import VideoReader, probe
from ..io.excerpt import Excerpt
from ..io.linear import VIDEO_LIGHTS, Light
from ..io.patch import Box
from ..io.photo import read_reference
from ..io.reader import DecodedFrames, FieldFilter, frame_to_rgb
from ..models import zoo
from ..models.face_quality import load_face_quality
from ..shots import Shot, ShotDetector
from ..stopping import raise_if_stopped
from .config import PipelineConfig, Progress
from .timing import choose_deinterlace, excerpt_of


@dataclass
class Analysis:
    frames: int
    shots: list[Shot]
    tracks: list[Track]
    detector: str
    corrupt_packets: int = 0
    pts: list[int | None] = field(default_factory=list)  # per frame, so a segment can seek to its first frame
    deinterlace: FieldFilter | None = None  # how both passes make frames progressive (None: they are left as they are)
    fields: str = ""  # why: "declared tt", "detected bff: 57 of 60 frames scanned look interlaced", ...
    references: dict[int, np.ndarray] = field(default_factory=dict)  # track id -> aligned reference crop (S, S, 3) uint8
    too_small: int = 0  # face tracks left out because their median face is under the tracker's min_face_size
    resized: int = 0  # frames decoded at another size or pixel format than the stream's first (brought to it)
    damaged_s: list[float] = field(default_factory=list)  # where the demuxer found the file damaged (seconds)
    smallest_findable: float = 0.0  # box side (frame px) of the smallest faces the detector finds at its working size; 0: unknown
    detect_side: int = 0  # longer side of the images the detector worked on
    frame_side: int = 0  # longer side of the frames
    faces: dict[int, bytes] = field(default_factory=dict)  # track id -> JPEG of its best detection (faces_dir)
    # Field-matched film at a steady rate: the frame of each pulldown cycle that changed least (the
    # repeat of a film frame, except in a hybrid transfer's video cycles, which start at the
    # frames of video_cycles), and every frame's time as decimate writes it, in a quarter of the
    # stream's ticks (None for the frames left out; see vidrestore.cadence). Empty for other video.
    repeats: frozenset[int] = frozenset()
    video_cycles: frozenset[int] = frozenset()
    film_pts: list[int | None] = field(default_factory=list)
    light: Light = Light.DISPLAY  # what the samples stand for, as both passes read them (PipelineConfig.light_of)
    judged_at: int = 0  # side (px) of the crops FaceQualityNet judged each track's damage at (Track.quality); 0: not judged
    # The stretch of the video analysed (--start/--end), whose frames every later reader counts from 0; None: all of it
    excerpt: Excerpt | None = None
    boxed: int = 0  # frames of another shape (by size or stated pixel aspect), placed on black bars (io.fitting)
    not_faces: int = 0  # tracks left out because the detector was unsure of them and its second look found no face


def regions_measured(meter: DetailMeter | None, rater: QualityMeter | None, index: int, faces: list[tuple[int, Detection]],
                     width: int, height: int) -> list[Box]:
    """The boxes of frame ``index`` (display pixels, ``faces`` in it) that the meters that want it read."""
    return [*(meter.regions(index, faces, height, width) if meter is not None and meter.wants(index) else []),
            *(rater.regions(faces, height, width) if rater is not None and rater.wants(index) else [])]


def analyse(path: Path, cfg: PipelineConfig, detector: FaceDetector, progress: Progress | None = None,
            detect_batch: int = 8, keep: DecodedFrames | None = None) -> Analysis:
    """Pass 1: shots and face tracks, without keeping frames.

    Frames are decoded at the detector's working size (one FFmpeg conversion instead of a full-size
    one and a resize); detections are mapped back to full-size pixels. Frames to detect are sent to
    the detector ``detect_batch`` at a time (one forward pass on GPU), on a worker thread, so the
    next frames are decoded and cut-checked meanwhile; cuts, detections and, when the detector skips
    frames, every frame's grey image for optical-flow following reach the tracker in frame order.
    ``keep``: the decoded frames are added there for pass 2 (see
    :class:`~vidrestore.io.reader.DecodedFrames`)."""
    shots = ShotDetector(cfg.shots)
    tracker = FaceTracker(cfg.tracker)
    # Portraits serve linking and --faces; without either, dlib's encoder is not even loaded.
    wants_portraits = not cfg.aligned and (cfg.people.link or bool(cfg.faces_dir))
    portraits = Portraits(cfg.people, DlibIdentityEncoder(), keep_faces=bool(cfg.faces_dir)) if wants_portraits else None
    info = probe(path)
    light = cfg.light_of(info)
    excerpt = excerpt_of(cfg, path)
    long_side = max(info.display_size)
    detector = detector.sized_for(long_side, cfg.tracker.min_face_size)
    confirmations = Confirmations(detector)
    # before the video is read: a reference photo that cannot be read, or shows no face, is told
    # at once, not after a whole film's pass 1
    crops = reference_crops(cfg, detector)
    faces = 0
    # each track's share of detail finer than the crop, measured on pairs of full-size frames (faces.detail)
    meter = DetailMeter(cfg.face_size, info.pixel_aspect, cfg.keep_detail) if cfg.measure_detail else None
    # and how damaged each track's faces are, on full-size frames too (faces.quality)
    rater = QualityMeter(load_face_quality(zoo.verify(QUALITY_MODEL)), info.pixel_aspect, cut_elsewhere=cfg.aligned) \
        if cfg.measure_strength else None
    full_size = VideoReformatter()  # FFmpeg's conversion of the measured frames, set up once
    measured: list[Future] = []  # the meters' work, on a thread of their own
    # (index, starts a shot, image to detect, grey image to follow faces in, their scale, the
    # decoded frame when the meter measures it)
    pending: list[tuple[int, bool, np.ndarray | None, np.ndarray | None, tuple[float, float], av.VideoFrame | None]] = []
    every = max(1, cfg.tracker.detect_every)
    follow = every > 1 and cfg.tracker.follow
    submitted: deque[tuple[list, Future]] = deque()  # batches handed to the detector, oldest first
    pts: list[int | None] = []

    def submit() -> None:
        images = [item[2] for item in pending if item[2] is not None]
        submitted.append((pending.copy(), detect_pool.submit(detector.detect, images)))
        pending.clear()

    def look_again_for(index: int, image: np.ndarray, scale: tuple[float, float]) -> list[Detection]:
        """The tracked faces this frame's detection missed, looked for again where they were
        (:func:`~vidrestore.faces.detect.look_again`, on the detector's thread) and given to their tracks."""
        missed = tracker.missed_at(index)
        if not missed:
            return []
        s4 = np.tile(np.asarray(scale, np.float32), 2)
        around = detect_pool.submit(look_again, detector, image, [where.box * s4 for _, where in missed]).result()
        again = [tracker.found_again(index, track_id, [to_display(d, scale) for d in faces]) for (track_id, _), faces in zip(missed, around)]
        return [d for d in again if d is not None]

    def track(until_in_flight: int) -> None:
        """Feed the tracker the oldest batches until at most ``until_in_flight`` are in flight."""
        nonlocal faces
        while len(submitted) > until_in_flight:
            items, result = submitted.popleft()
            found = iter(result.result())
            for index, cut, image, grey, scale, source in items:
                if cut:
                    tracker.end_shot()
                if grey is not None:
                    tracker.follow(index, grey, scale)
                if image is not None:
                    dets = [to_display(d, scale) for d in next(found)]
                    tracker.update(index, dets)
                    dets += look_again_for(index, image, scale)
                    faces += len(dets)
                    confirmations.offer(image, scale, tracker.detected_at(index))
                    if portraits is not None:
                        portraits.offer(image, scale, tracker.detected_at(index))
                        portraits.settle(tracker.open_ids)
                    if index in spreads:  # where the picture's tone is measured, each face's too
                        for track_id, detection in tracker.detected_at(index):
                            if (spread := face_tone_spread(image, detection.box * np.tile(scale, 2))) is not None:
                                face_spreads[track_id].append(spread)
                if source is not None:
                    measured.append(measure_pool.submit(measure, index, source, tracker.seen_at(index), cut))

    fields, why = choose_deinterlace(cfg, path, info)
    shot_start, side, shot_number = 0, 0.0, 0
    spreads: dict[int, float] = {}  # frame index -> tone spread, of a frame in every TONE_EVERY of each shot
    face_spreads: defaultdict[int, list[float]] = defaultdict(list)  # track id -> tone spreads of its faces in those frames

    def wanted(index: int) -> bool:
        return any(m is not None and m.wants(index) for m in (meter, rater))

    def measure(index: int, source: av.VideoFrame, faces: list[tuple[int, Detection]], cut: bool) -> None:
        # HDR and log video are viewed only where the meters read, as pass 2 views them (its view costs the most of a frame)
        viewed = regions_measured(meter, rater, index, faces, *reader.info.display_size) if reader.info.light in VIDEO_LIGHTS else None
        rgb, _ = frame_to_rgb(source, reader.info, reformatter=full_size, viewed_in=viewed)
        if meter is not None and meter.wants(index):
            meter.offer(index, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), faces, cut)
        if rater is not None and rater.wants(index):
            rater.offer(rgb, faces)

    def take(index: int, image: np.ndarray, scale: tuple[float, float], source: av.VideoFrame | None, cut: bool,
             last: bool) -> None:
        """Hand a frame on to detection and tracking; ``cut``: it starts a shot; ``last``: it ends one."""
        nonlocal shot_start, side, shot_number
        shot_start = index if cut else shot_start
        shot_number += cut
        if (index - shot_start) % TONE_EVERY == 0:
            spreads[index] = tone_spread(image)
        if cfg.aligned:
            side = side or aligned_side(image, scale)
            if source is not None:  # the face fills the frame: the shot's one track (aligned_tracks)
                measured.append(measure_pool.submit(measure, index, source, [(shot_number, aligned_face(side))], cut))
            return
        # a shot's first and last frames are always detected: a face the flow lost after the last
        # scheduled detection was left unrestored in the shot's (or the video's) last frames
        detect = (index - shot_start) % every == 0 or last
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if follow else None
        pending.append((index, cut, image if detect else None, grey, scale, source))
        if sum(item[2] is not None for item in pending) >= detect_batch:
            raise_if_stopped()
            submit()
            track(until_in_flight=1)
            if progress:
                progress("analyse", index + 1, reader.expected_frames(), faces)

    with VideoReader(path, max_side=detector.input_side, deinterlace=fields, keep=keep, light=light, excerpt=excerpt) as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="vidrestore-detect") as detect_pool, \
            ThreadPoolExecutor(1, thread_name_prefix="vidrestore-detail") as measure_pool:
        # the images the shot detector has not yet settled (a flash, a dissolve), without their decoded frames
        held: deque[tuple[int, np.ndarray, tuple[float, float], av.VideoFrame | None]] = deque()
        answered: list[tuple] = []  # the frame answered last, until the next answer says whether it ends its shot

        def answer(cuts: list[bool]) -> None:
            for cut in cuts:
                if answered:
                    take(*answered.pop(), last=cut)
                answered.append((*held.popleft(), cut))

        matched = fields is not None and fields.match
        changes: list[float] = []  # field-matched film: how much each frame changed from the one before
        previous = None
        for frame in reader:
            pts.append(frame.pts)
            if matched:
                changes.append(cadence.change(previous, current := cadence.thumbnail(frame.image)))
                previous = current
            held.append((frame.index, frame.image, frame.scale, frame.source if wanted(frame.index) else None))
            answer(shots.update(frame.image))
        answer(shots.finish())
        if answered:
            take(*answered.pop(), last=True)
        submit()
        track(until_in_flight=0)
        tracker.end_shot()
        for done in measured:
            done.result()  # the meter's errors are raised here
        count, stats, expected = reader.stats.frames, reader.stats, reader.expected_frames()
    if progress:
        progress("analyse", count, expected or count, faces)
    all_shots = toned(shots.shots(count), spreads)
    tracks = aligned_tracks(all_shots, side) if cfg.aligned else sorted(tracker.tracks, key=lambda t: (t.start, t.track_id))
    faces_only = [t for t in tracks if confirmations.is_face(t.track_id)]
    not_faces, tracks = len(tracks) - len(faces_only), faces_only
    unsteady = np.fromiter(shots.unsteady(), int)
    if portraits is not None:
        portraits.settle(())
    person_of = link_people(tracks, portraits.descriptors, cfg.people.max_distance) if portraits is not None and cfg.people.link else {}
    for t in tracks:
        t.steady = ~np.isin(t.frames, unsteady)
        t.person = person_of.get(t.track_id, t.track_id)
        t.monochrome = track_is_monochrome(all_shots[t.shot_index].monochrome, face_spreads[t.track_id])
    tracks_of: defaultdict[int, list[int]] = defaultdict(list)  # one share and one quality a person, over all their tracks
    for t in tracks:
        tracks_of[t.person].append(t.track_id)
    if meter is not None:
        share_of = {person: meter.share(ids) for person, ids in tracks_of.items()}
        for t in tracks:
            t.detail = share_of[t.person]
    if rater is not None:
        quality_of = {person: rater.quality(ids) for person, ids in tracks_of.items()}
        for t in tracks:
            t.quality = quality_of[t.person]
    name = "none: the frames are aligned face crops (--aligned)" if cfg.aligned else \
        f"{detector.name}, on frames of {detector.input_side} px on the longer side"
    return Analysis(count, all_shots, tracks, name, stats.corrupt_packets, pts, fields, why, references_of(tracks, cfg, crops), tracker.too_small,
                    stats.resized, stats.damaged_s, 0.0 if cfg.aligned else smallest_findable(detector, long_side), detector.input_side, long_side,
                    portraits.faces if portraits is not None else {}, *film_cadence(changes, pts, cfg.hybrid), light=light,
                    judged_at=rater.net.config.image_size if rater is not None else 0, excerpt=excerpt, boxed=stats.boxed, not_faces=not_faces)



TONE_EVERY = 12  # frames of a shot between two whose tone is measured (the first is, always)


def toned(shots: list[Shot], spreads: dict[int, float]) -> list[Shot]:
    """``shots``, each marked monochrome where the median tone spread of its frames measured
    (``spreads``, by frame index) is under :data:`~vidrestore.faces.tone.MONOCHROME_LEVELS`."""
    frames = np.fromiter(spreads, int, len(spreads))
    values = np.fromiter(spreads.values(), float, len(spreads))
    order = np.argsort(frames)
    frames, values = frames[order], values[order]

    def spread(shot: Shot) -> float:
        first, end = np.searchsorted(frames, [shot.start, shot.end])
        return float(np.median(values[first:end])) if end > first else np.inf
    return [dataclasses.replace(shot, monochrome=spread(shot) < MONOCHROME_LEVELS) for shot in shots]


def film_cadence(changes: list[float], pts: list[int | None],
                 hybrid: bool) -> tuple[frozenset[int], frozenset[int], list[int | None]]:
    """Field-matched film's repeated frames, the cycles of video in it, and its frames' times once
    decimated: all at the film's rate, or with ``hybrid`` the video cycles at their own
    (:mod:`~vidrestore.cadence`); none for other video (no ``changes``) or frames that are not
    evenly spaced."""
    step = cadence.frame_step(pts)
    if not changes or step is None:
        return frozenset(), frozenset(), []
    repeats, video = cadence.repeated_frames(changes), cadence.video_cycles(changes)
    return repeats, video, cadence.film_timing(pts, cadence.in_film_cycles(repeats, video) if hybrid else repeats, step)


def aligned_side(image: np.ndarray, scale: tuple[float, float]) -> float:
    """The side of the square full-size frame of ``image`` (downscaled by ``scale``), for --aligned."""
    width, height = image.shape[1] / scale[0], image.shape[0] / scale[1]
    if round(width) != round(height):
        raise UsageError(f"--aligned expects square frames of aligned face crops; this video is {round(width)}x{round(height)}")
    return width


def aligned_face(side: float) -> Detection:
    """--aligned: the face of a frame of ``side`` px, filling it where the alignment template puts it."""
    return Detection(np.float32([0.0, 0.0, side, side]), 1.0, template(side).astype(np.float32))


def aligned_tracks(shots: list[Shot], side: float) -> list[Track]:
    """--aligned: one track per shot (its id the shot's index), each frame's face :func:`aligned_face`."""
    face = aligned_face(side)
    tracks = []
    for i, shot in enumerate(shots):
        n = shot.end - shot.start
        tracks.append(Track(i, i, np.arange(shot.start, shot.end), np.tile(face.box, (n, 1)),
                            np.broadcast_to(face.landmarks, (n, 5, 2)).copy(), np.ones(n), np.ones(n, bool)))
    return tracks


def reference_crops(cfg: PipelineConfig, detector: FaceDetector) -> dict[str, np.ndarray]:
    """Every reference photo ``cfg`` names -> its :func:`reference_crop` at ``cfg.face_size``
    (``detector`` sized for the video, as pass 1 uses it)."""
    return {photo: reference_crop(photo, detector, cfg.face_size) for photo in sorted(cfg.photos)}


def references_of(tracks: list[Track], cfg: PipelineConfig, crops: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """Track id -> the aligned crop of the reference photo ``cfg`` gives it, for the tracks given one."""
    return {t.track_id: crops[cfg.reference_of(t)] for t in tracks if cfg.reference_of(t)}


def reference_crop(photo: str, detector: FaceDetector, face_size: int) -> np.ndarray:
    """The largest face of a reference photo, aligned like the video's crops: (S, S, 3) uint8."""
    image = read_reference(photo)
    height, width = image.shape[:2]
    factor = min(1.0, detector.input_side / max(height, width)) if detector.input_side else 1.0
    small = cv2.resize(image, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA) \
        if factor < 1 else image
    found = detector.detect([small])[0]
    if not found:
        raise UsageError(f"no face found in the reference photo {photo}")
    face = to_display(max(found, key=lambda d: float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))),
                      (small.shape[1] / width, small.shape[0] / height))
    crop, _ = align_faces(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(face.landmarks).float()[None], face_size)
    return (crop[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def selected_tracks(analysis: Analysis, cfg: PipelineConfig) -> list[Track]:
    """The tracks to restore: those ``cfg.only_tracks`` names or whose person ``cfg.only_people``
    names (default every one), whose strength is above 0. A track or person id the analysis did
    not find is a usage error (ids come from a --dry-run report with the same detection options)."""
    found = [t.track_id for t in analysis.tracks]
    people = sorted({t.person for t in analysis.tracks})
    named = set(cfg.only_tracks) | {i for i, _ in cfg.track_strength} | {i for i, _ in cfg.track_references}
    named_people = set(cfg.only_people) | {i for i, _ in cfg.person_strength} | {i for i, _ in cfg.person_references}
    for what, unknown, known in [("track", sorted(named - set(found)), found),
                                 ("person", sorted(named_people - set(people)), people)]:
        if unknown:
            raise UsageError(f"no {what} {', '.join(map(str, unknown))} in this video; its {'tracks' if what == 'track' else 'people'} "
                             f"are {', '.join(map(str, known)) or 'none'} (see --dry-run; ids depend on the detection options)")
    chosen = lambda t: t.track_id in cfg.only_tracks or t.person in cfg.only_people
    return [t for t in analysis.tracks
            if (not (cfg.only_tracks or cfg.only_people) or chosen(t)) and cfg.strength_of(t) > 0]


def to_display(detection: Detection, scale: tuple[float, float]) -> Detection:
    """A detection in a downscaled image, mapped to the full-size frame's pixels."""
    sx, sy = scale
    return Detection(detection.box / np.array([sx, sy, sx, sy], np.float32), detection.score,
                     detection.landmarks / np.array([sx, sy], np.float32))
