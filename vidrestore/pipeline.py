"""Orchestration: decode -> shots -> detect/track -> align -> restore -> paste -> encode -> remux.

Two streaming passes over the input keep memory bounded whatever the video's length:

1. *analyse*: decode, cut shots, detect faces (every k-th frame), track them; only boxes,
   landmarks and frame timestamps are kept, never frames, unless the whole video fits in
   ``decode_once_mib`` (then pass 2 takes pass 1's decoded frames instead of decoding again).
2. *restore*: decode again in windows of ``batch_size`` frames that never cross a cut; for each
   track in a window, align its crops, restore them as one temporal batch (state carried to the
   next window), paste them back, and encode. Frames with no face are not even converted to RGB:
   they go to the encoder as decoded.

Pass 2 may be split into *segments* (``segment_frames``). No track crosses a cut and restore
windows restart at every cut, so a segment of whole shots restored on its own (another process,
another machine) gives exactly the frames a single pass gives. The single-file command may also
split a long shot at a window boundary; its tracks' state then goes to the next segment in a file. Segments are encoded separately,
their packets joined into one stream, and the input's audio, subtitle and data streams remuxed
beside it, into a temp file that is renamed onto the output only when everything succeeded.
A run that is stopped keeps its finished segments, and the next run with the same input and
options restores only the others (:mod:`vidrestore.resume`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from . import __version__, cadence, jsonio
from .anchor import IdentityCrops, identity_frames
from .config import check_minimums
from .errors import ConfigError, InputError, ModelError, OutputError, UsageError
from .eval.tracks import measure_tracks, qa_alarms
from .faces.align import align_faces, crop_faces, face_matrices, template
from .faces.detect import DetectorConfig, FaceDetector, create_detector, smallest_findable
from .faces.identity import DlibIdentityEncoder
from .faces.people import PeopleConfig, Portraits, contact_sheet, link_people
from .faces.parsing import ParsingMasker as Masker
from .faces.parsing import create_masker as parsing_masker
from .faces.pose import frontal_weight
from .faces.paste import face_mask, match_colour, paste_faces
from .faces.tone import MONOCHROME_LEVELS, keep_tone, tone_spread
from .faces.track import FaceTracker, TrackerConfig
from .faces.types import Detection, Track
from .io import EncodeOptions, VideoInfo, VideoReader, VideoWriter, probe, remux
from .io.reader import DecodedFrames, FieldFilter, bit_depth, doubles_rate, fields_have_own_moments, scan_fields
from .io.sequence import DEFAULT_RATE, IMAGE_ENCODERS, SEGMENT_SUFFIX, files_of, find_sequence, has_number_field, hidden_stem, is_sequence, number_offset, numbered, sequences_in, unsupported_type
from .io.writer import atomic_output, check_encoder, check_output, copies_into, describe_encoding, dolby_vision_note, holds_copy, left_out_note, master_note, one_rate_only, stores_rotation, unrestored_videos_note
from .restore import Restorer, TrackContext, load_contexts, save_contexts
from .resume import SegmentLedger, keeps_segments, remove_leftovers, reused_note
from .shots import Shot, ShotConfig, ShotDetector
from .stopping import raise_if_stopped

Progress = Callable[[str, int, int, int], None]  # (stage, frames done, frames total, faces so far)


def frames_per_second(text: str) -> Fraction:
    """A frame rate as written (24, 24000/1001, 23.976) as a fraction; FFmpeg's 25 for ""."""
    try:
        rate = Fraction(text) if text else DEFAULT_RATE
    except (ValueError, ZeroDivisionError):
        rate = Fraction(0)
    if not 0 < rate <= 1000:
        raise ConfigError(f"frame_rate: expected frames per second like 24, 25, 24000/1001 or 23.976, got {text!r}")
    return rate


@dataclass(frozen=True)
class PipelineConfig:
    face_size: int = 128
    batch_size: int = 0  # frames per restoration window and per forward pass, over all its tracks (bounds memory); 0: by device (window_frames)
    colour_match: bool = True
    fade_frames: int = 3  # restoration strength ramps in/out over this many frames where a face comes or goes within a shot
    segment_frames: int = 2000  # split pass 2 at cuts into segments of at least this many frames (0: one segment); a stopped run resumes at the first unfinished one
    # A video whose decoded frames fit in this many MiB is decoded once: pass 1 keeps its frames
    # for pass 2. Longer ones are decoded in each pass, so memory stays bounded (0: always twice).
    decode_once_mib: int = 256
    # Streams the output's container cannot hold (SRT subtitles or fonts in .mp4, a timecode track
    # in .mkv) stop the run before any work unless this is set; then they are left out, and the
    # report says which.
    drop_streams: bool = False
    mask: str = "auto"  # paste mask: ellipse | parsing (ParseNet weights needed) | auto (parsing when weights are found)
    parsing_weights: str = ""  # ParseNet checkpoint; also VIDRESTORE_WEIGHTS_PARSENET_512 or the cache
    # auto: telecined film (found by field matching in the frames scanned) is field-matched (inverse
    # telecine); other interlaced video (declared, or found by FFmpeg's idet) is deinterlaced with
    # bwdif; on: always bwdif; ivtc: always field matching; off: never (faces restored on combed
    # frames come out combed).
    deinterlace: str = "auto"
    # Interlaced input deinterlaced for restoration (above) is written back interlaced: the faces,
    # restored at the field rate, are pasted into the input's own fields, and everything
    # else keeps both fields of every frame (a broadcast master keeps its 50 or 60 motions a second).
    keep_fields: bool = False
    # Interlaced input deinterlaced for restoration (above) is written at the field rate: a
    # progressive frame for each field (50p from 50i), each with the face it showed, timed halfway
    # between the input's frames. Film rebuilt by field matching keeps its rate.
    double_rate: bool = False
    # Telecined film, whose frames field matching rebuilt (above), is written at the film's rate:
    # the frame of each 5 that repeats a film frame is left out (inverse telecine), 24000/1001 fps
    # from 30000/1001. Other video keeps its rate.
    decimate: bool = False
    # With decimate, for a hybrid transfer (film mixed with video shot at the video rate: titles,
    # effects): a cycle of 5 frames in which no frame repeats the one before it keeps all 5, at
    # their own times, and the output's frame rate varies (FFmpeg's decimate with mixed=1).
    hybrid: bool = False
    only_tracks: tuple[int, ...] = ()  # restore only these track ids (from a --dry-run report); empty: every track
    only_people: tuple[int, ...] = ()  # and/or only the tracks of these people (person ids from a --dry-run report)
    # How much of each restored face replaces the original: 1 all of it, 0.5 an even blend (a
    # fidelity knob, like CodeFormer's w but applied in the paste); per track as (id, strength) pairs.
    # Per person (every track of it, in every shot) as (person id, strength); a track's own wins.
    strength: float = 1.0
    track_strength: tuple[tuple[int, float], ...] = ()
    person_strength: tuple[tuple[int, float], ...] = ()
    # Identity anchoring: a photo of the person (any size; its largest face is used) gives a track
    # its identity embedding instead of the track's own degraded frames; per track as (id, path),
    # per person as (person id, path).
    reference: str = ""
    track_references: tuple[tuple[int, str], ...] = ()
    person_references: tuple[tuple[int, str], ...] = ()
    # A head turning to profile fades back to the original frame (faces.pose): full strength up to
    # the first turn ratio (about 35 degrees of yaw), none from the second (about 55); () turns it off.
    profile_fade: tuple[float, ...] = (0.7, 1.4)
    # The frames are already aligned face crops (FFHQ-aligned, square, as the test clips of KEEP and
    # VFHQ): nothing is detected; each shot is one face filling the frame, restored whole.
    aligned: bool = False
    # The rate an image sequence's pictures are played at (24, 24000/1001, 23.976), which pictures do
    # not store: it times the frames of a video made from them. "": the rate the pictures state (a DPX
    # scan's headers may), else FFmpeg's 25. A video keeps its own.
    frame_rate: str = ""
    # A folder to write each track's best face to (as pass 1 saw it, aligned), named by person and
    # track, to tell who is who before choosing --tracks, --people, --strength or --reference.
    faces_dir: str = ""
    shots: ShotConfig = field(default_factory=ShotConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    people: PeopleConfig = field(default_factory=PeopleConfig)
    encode: EncodeOptions = field(default_factory=EncodeOptions)

    def __post_init__(self) -> None:
        check_minimums(self, batch_size=0, face_size=16, fade_frames=0, segment_frames=0, decode_once_mib=0)
        for what, value in [("strength", self.strength), *((f"strength of track {i}", v) for i, v in self.track_strength),
                            *((f"strength of person {i}", v) for i, v in self.person_strength)]:
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{what}: expected a value from 0 to 1, got {value}")
        if self.profile_fade and not (len(self.profile_fade) == 2 and 0 <= self.profile_fade[0] < self.profile_fade[1]):
            raise ConfigError(f"profile_fade: expected two turn ratios FULL < ZERO (e.g. 0.7, 1.4) or none, "
                              f"got {list(self.profile_fade)}")
        frames_per_second(self.frame_rate)  # a bad rate fails before any work
        if self.double_rate and self.keep_fields:
            raise ConfigError("double_rate (--double-rate) and keep_fields (--keep-fields) exclude each other: one writes a progressive frame for each field, "
                              "the other keeps the fields interlaced")
        if self.decimate and (self.double_rate or self.keep_fields):
            raise ConfigError("decimate (--decimate) leaves out the frames of telecined film that repeat a film frame; "
                              "it cannot be combined with double_rate (--double-rate) or keep_fields (--keep-fields)")
        if self.hybrid and not self.decimate:
            raise ConfigError("hybrid (--hybrid) keeps the video cycles of telecined film that decimate (--decimate) "
                              "leaves a frame out of; it needs decimate")
        if self.double_rate and self.deinterlace == "off":
            raise ConfigError("double_rate (--double-rate) makes a frame of each field by deinterlacing them; "
                              "deinterlace off keeps the fields")

    @property
    def sequence_rate(self) -> Fraction:
        return frames_per_second(self.frame_rate)

    def strength_of(self, track: Track) -> float:
        """The track's own strength, else its person's, else everyone's."""
        return dict(self.track_strength).get(track.track_id, dict(self.person_strength).get(track.person, self.strength))

    def reference_of(self, track: Track) -> str:
        """The track's own reference photo, else its person's, else everyone's ("" for none)."""
        return dict(self.track_references).get(track.track_id, dict(self.person_references).get(track.person, self.reference))

    @property
    def photos(self) -> set[str]:
        """Every reference photo named."""
        return {self.reference, *(path for _, path in (*self.track_references, *self.person_references))} - {""}


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
    resized: int = 0  # frames decoded at another size than the stream's first (scaled to it)
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


@dataclass
class Report:
    input: str
    output: str | None
    frames_in: int
    frames_out: int
    shots: list[dict]
    tracks: list[dict]
    detector: str
    restorer: str
    mask: str
    timings_s: dict[str, float]
    corrupt_packets: int
    notes: list[str]
    damaged_s: list[float] = field(default_factory=list)  # where the file is damaged, seconds from the start
    qa: list[dict] | None = None  # with --qa: per restored track, output and input metrics
    encoder: str | None = None  # how the output's video was encoded; None: copied, or not written (--dry-run)
    people: list[dict] = field(default_factory=list)  # who is who: each person's id, tracks and frames on screen

    def to_json(self) -> str:
        return jsonio.dumps(asdict(self), indent=2)


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
    long_side = max(info.display_size)
    detector = detector.sized_for(long_side, cfg.tracker.min_face_size)
    faces = 0
    # (index, starts a shot, image to detect, grey image to follow faces in, their scale)
    pending: list[tuple[int, bool, np.ndarray | None, np.ndarray | None, tuple[float, float]]] = []
    every = max(1, cfg.tracker.detect_every)
    follow = every > 1 and cfg.tracker.follow
    submitted: deque[tuple[list, Future]] = deque()  # batches handed to the detector, oldest first
    pts: list[int | None] = []

    def submit() -> None:
        images = [item[2] for item in pending if item[2] is not None]
        submitted.append((pending.copy(), detect_pool.submit(detector.detect, images)))
        pending.clear()

    def track(until_in_flight: int) -> None:
        """Feed the tracker the oldest batches until at most ``until_in_flight`` are in flight."""
        nonlocal faces
        while len(submitted) > until_in_flight:
            items, result = submitted.popleft()
            found = iter(result.result())
            for index, cut, image, grey, scale in items:
                if cut:
                    tracker.end_shot()
                if grey is not None:
                    tracker.follow(index, grey, scale)
                if image is not None:
                    dets = [to_display(d, scale) for d in next(found)]
                    faces += len(dets)
                    tracker.update(index, dets)
                    if portraits is not None:
                        portraits.offer(image, scale, tracker.detected_at(index))
                        portraits.settle(tracker.open_ids)

    fields, why = choose_deinterlace(cfg, path, info)
    shot_start, side = 0, 0.0
    spreads: dict[int, float] = {}  # frame index -> tone spread, of a frame in every TONE_EVERY of each shot

    def take(index: int, image: np.ndarray, scale: tuple[float, float], cut: bool, last: bool) -> None:
        """Hand a frame on to detection and tracking; ``cut``: it starts a shot; ``last``: it ends one."""
        nonlocal shot_start, side
        shot_start = index if cut else shot_start
        if (index - shot_start) % TONE_EVERY == 0:
            spreads[index] = tone_spread(image)
        if cfg.aligned:
            side = side or aligned_side(image, scale)
            return
        # a shot's first and last frames are always detected: a face the flow lost after the last
        # scheduled detection was left unrestored in the shot's (or the video's) last frames
        detect = (index - shot_start) % every == 0 or last
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if follow else None
        pending.append((index, cut, image if detect else None, grey, scale))
        if sum(item[2] is not None for item in pending) >= detect_batch:
            raise_if_stopped()
            submit()
            track(until_in_flight=1)
            if progress:
                progress("analyse", index + 1, reader.expected_frames(), faces)

    with VideoReader(path, max_side=detector.input_side, deinterlace=fields, keep=keep) as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="vidrestore-detect") as detect_pool:
        # the images the shot detector has not yet settled (a flash, a dissolve), without their decoded frames
        held: deque[tuple[int, np.ndarray, tuple[float, float]]] = deque()
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
            held.append((frame.index, frame.image, frame.scale))
            answer(shots.update(frame.image))
        answer(shots.finish())
        if answered:
            take(*answered.pop(), last=True)
        submit()
        track(until_in_flight=0)
        tracker.end_shot()
        count, stats = reader.stats.frames, reader.stats
    if progress:
        progress("analyse", count, info.estimated_frames or count, faces)
    all_shots = toned(shots.shots(count), spreads)
    tracks = aligned_tracks(all_shots, side) if cfg.aligned else sorted(tracker.tracks, key=lambda t: (t.start, t.track_id))
    unsteady = np.fromiter(shots.unsteady(), int)
    if portraits is not None:
        portraits.settle(())
    person_of = link_people(tracks, portraits.descriptors, cfg.people.max_distance) if portraits is not None and cfg.people.link else {}
    for t in tracks:
        t.steady = ~np.isin(t.frames, unsteady)
        t.person = person_of.get(t.track_id, t.track_id)
        t.monochrome = all_shots[t.shot_index].monochrome
    name = "none: the frames are aligned face crops (--aligned)" if cfg.aligned else \
        f"{detector.name}, on frames of {detector.input_side} px on the longer side"
    crops = {photo: reference_crop(photo, detector, cfg.face_size)
             for photo in {cfg.reference_of(t) for t in tracks} - {""}}
    references = {t.track_id: crops[cfg.reference_of(t)] for t in tracks if cfg.reference_of(t)}
    return Analysis(count, all_shots, tracks, name, stats.corrupt_packets, pts, fields, why, references, tracker.too_small,
                    stats.resized, stats.damaged_s, 0.0 if cfg.aligned else smallest_findable(detector, long_side), detector.input_side, long_side,
                    portraits.faces if portraits is not None else {}, *film_cadence(changes, pts, cfg.hybrid))


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


def aligned_tracks(shots: list[Shot], side: float) -> list[Track]:
    """--aligned: one track per shot, its face filling the frame where the alignment template puts it."""
    tracks = []
    for i, shot in enumerate(shots):
        n = shot.end - shot.start
        tracks.append(Track(i, i, np.arange(shot.start, shot.end), np.tile([0.0, 0.0, side, side], (n, 1)),
                            np.broadcast_to(template(side), (n, 5, 2)).copy(), np.ones(n), np.ones(n, bool)))
    return tracks


def reference_crop(photo: str, detector: FaceDetector, face_size: int) -> np.ndarray:
    """The largest face of a reference photo, aligned like the video's crops: (S, S, 3) uint8."""
    try:
        with Image.open(photo) as im:
            image = np.array(ImageOps.exif_transpose(im).convert("RGB"))  # phone photos are stored rotated
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the reference photo {photo} ({exc.__class__.__name__})") from exc
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


DEINTERLACE_MODES = ("auto", "on", "ivtc", "off")


def retiming(analysis: Analysis, cfg: PipelineConfig) -> str:
    """How the output's frame rate differs from the input's, as a report says it ("": it does not)."""
    if doubles(analysis, cfg):
        return "deinterlaced into a frame for each field (--double-rate)"
    return "decimated to the film's own frames (--decimate)" if decimates(analysis, cfg) else ""


def decimates(analysis: Analysis, cfg: PipelineConfig) -> bool:
    """Whether the output leaves out the frames of telecined film that repeat a film frame
    (``cfg.decimate``, on field-matched film whose frames are evenly spaced: :func:`film_cadence`;
    with ``cfg.hybrid``, where some cycle is film)."""
    return cfg.decimate and bool(analysis.film_pts) and bool(_film_repeats(analysis, cfg))


def _film_repeats(analysis: Analysis, cfg: PipelineConfig) -> frozenset[int]:
    return cadence.in_film_cycles(analysis.repeats, analysis.video_cycles) if cfg.hybrid else analysis.repeats


def left_out(analysis: Analysis, cfg: PipelineConfig) -> frozenset[int]:
    """The input frames the output does not have: the repeated film frames that decimation
    (:func:`decimates`) leaves out, but for those of the video cycles ``cfg.hybrid`` keeps."""
    return _film_repeats(analysis, cfg) if decimates(analysis, cfg) else frozenset()


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


HYBRID_HINT_CYCLES = 3  # cycles of video in a row (half a second) that --decimate suggests --hybrid for


def deinterlace_note(analysis: Analysis, cfg: PipelineConfig, rotation: int = 0) -> list[str]:
    """What was done with the input's fields (``cfg.keep_fields``, ``cfg.double_rate``), and why."""
    fields = analysis.deinterlace
    if fields is None:
        asked = [flag for flag, on in (("--keep-fields", cfg.keep_fields), ("--double-rate", cfg.double_rate),
                                       ("--decimate", cfg.decimate)) if on]
        return [f"{asked[0]} changed nothing: the video was not deinterlaced (it looks progressive, or --deinterlace off "
                "kept its fields)"] if asked else []
    how = f"{fields.describe()} ({analysis.fields})"
    if cfg.keep_fields:
        rate = "a face for each field" if fields_have_own_moments(fields, rotation) else "a face for each frame"
        return [f"faces restored on frames {how}, {rate}, and pasted into the input's fields: the output keeps them, {fields.parity}"]
    if cfg.double_rate:
        return [f"{how}, a frame for each field (--double-rate): twice the input's frames, each with the face it showed"] \
            if doubles_rate(fields) else [f"--double-rate changed nothing: {how} gives back the film's own frames, which have "
                                          "no fields of their own; the output keeps the input's rate"]
    if cfg.decimate:
        if decimates(analysis, cfg):
            video = len(analysis.video_cycles) if cfg.hybrid else 0
            kept = f"; in {video} cycles of 5 no frame repeated (video shot at the video rate), and they keep all their frames " \
                   "at their own times (--hybrid), so the frame rate varies" if video else ""
            run, first = (0, 0) if cfg.hybrid else cadence.longest_run(analysis.video_cycles)
            if run >= HYBRID_HINT_CYCLES:
                kept = f"; from frame {first}, {run} cycles of 5 in a row look like video shot at the video rate (no frame " \
                       "repeats), and each lost a real frame: --hybrid keeps such cycles whole"
            return [f"{how}, decimated (--decimate): the {len(left_out(analysis, cfg))} frames that repeated a film frame were "
                    f"left out, and the film's own frames are timed at 4/5 of the input's rate{kept}"]
        why = "its fields are moments of their own, not film in pulldown" if not fields.match else \
            "its frames are not evenly spaced" if not analysis.film_pts else \
            "in every cycle of 5 each frame is a moment of its own (video shot at the video rate, which --hybrid keeps)"
        return [f"--decimate changed nothing: {how}; {why}, so no frame repeats a film frame"]
    doubling = ", --double-rate writes a frame for each field" if doubles_rate(fields) else ""
    return [f"{how}; --keep-fields pastes the faces into the input's fields and keeps them{doubling}, --deinterlace off "
            "keeps the fields and restores faces on them"]


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


def decode_notes(analysis: Analysis, info: VideoInfo) -> list[str]:
    """What the decoder could not give as it was: damaged and corrupt packets, frames of another size."""
    notes = []
    if analysis.damaged_s:
        at = ", ".join(f"{t:.2f} s" for t in analysis.damaged_s[:5]) + (", ..." if len(analysis.damaged_s) > 5 else "")
        packets = "1 packet" if len(analysis.damaged_s) == 1 else f"{len(analysis.damaged_s)} packets"
        notes.append(f"the file is damaged: {packets} flagged corrupt, at {at} from the start; "
                     "frames there may be missing or show blocks that restoration does not repair")
    if analysis.corrupt_packets:
        notes.append(f"{analysis.corrupt_packets} corrupt packets could not be decoded; the frames that decoded were restored")
    if analysis.corrupt_packets and is_sequence(info.path):
        notes.extend(undecoded_pictures_note(analysis, info.path))
    lead = undecodable_lead_s(analysis, info)
    if lead:
        notes.append(f"the picture starts {lead:.2f} s after the video stream does: its first packets cannot be decoded, as in a "
                     "recording cut from a longer one where there was no keyframe; the sound there is kept")
    if analysis.resized:
        notes.append(f"{analysis.resized} frames came in another size or pixel format than the stream's first; "
                     f"they were scaled to {info.width}x{info.height} {info.pix_fmt}, as FFmpeg does")
    return notes


def undecodable_lead_s(analysis: Analysis, info: VideoInfo) -> float:
    """Seconds from the video stream's first timestamp to its first decoded frame, when that is more
    than two frames: a recording cut at no keyframe (a TS clipped from a broadcast) starts with
    packets no decoder can use. 0 otherwise."""
    first = next((p for p in analysis.pts if p is not None), None)
    if first is None or info.start_pts is None or not info.timestamps:
        return 0.0
    lead = float((first - info.start_pts) * info.time_base)
    frame = 1 / float(info.average_rate) if info.average_rate else 0.1
    return lead if lead > 2 * frame else 0.0


def undecoded_pictures_note(analysis: Analysis, pattern: Path) -> list[str]:
    """Which pictures of an image sequence did not decode (frames of a sequence are stamped with
    their place in it, so the missing ones are known by name)."""
    sequence = find_sequence(pattern)
    lost = sorted(set(sequence.numbers) - {sequence.first + p for p in analysis.pts if p is not None})
    if not lost:
        return []
    names = ", ".join(numbered(pattern, n).name for n in lost[:5]) + (", ..." if len(lost) > 5 else "")
    return [f"{len(lost)} pictures could not be decoded and were not restored ({names}); "
            "a sequence written from this one lacks their numbers"]


def monochrome_note(analysis: Analysis) -> list[str]:
    toned = [t for t in analysis.tracks if t.monochrome]
    if not toned:
        return []
    which = "every face track is" if len(toned) == len(analysis.tracks) else f"{len(toned)} of {len(analysis.tracks)} face tracks are"
    return [f"{which} in black-and-white or toned footage: the restored faces keep its tone"]


def small_faces_note(analysis: Analysis, cfg: PipelineConfig) -> list[str]:
    """Say that faces were seen but left alone for their size, or that faces as small as asked for
    are beyond the detector at the size it can work at: the user can act on either."""
    notes = []
    n = analysis.too_small
    if n:
        faces = "face track" if n == 1 else "face tracks"
        notes.append(f"{n} {faces} smaller than {cfg.tracker.min_face_size:g} px (median box side) left as they are; "
                     f"--min-face lowers the limit")
    if analysis.smallest_findable > cfg.tracker.min_face_size * 1.05 and analysis.detect_side < analysis.frame_side:
        notes.append(f"faces under about {analysis.smallest_findable:.0f} px cannot be found by this detector at the size it "
                     f"works at ({analysis.detect_side} px of the frame's {analysis.frame_side} on the longer side), though "
                     f"--min-face is {cfg.tracker.min_face_size:g}; a larger detector max_side in a --config file finds smaller ones "
                     "with dlib, more slowly, and RetinaFace finds smaller ones still")
    return notes


def aligned_hint(analysis: Analysis, cfg: PipelineConfig, info: VideoInfo) -> list[str]:
    """Point to --aligned when no face was found in square frames the size of face crops: detectors
    miss a face that fills the whole frame, as in the aligned test clips of face video benchmarks."""
    if analysis.tracks or analysis.too_small or cfg.aligned or info.width != info.height or info.width > 1024:
        return []
    return ["no face was found in these square frames: if they are aligned face crops (as the test clips of KEEP and VFHQ), "
            "--aligned restores each shot whole"]


def copy_note(analysis: Analysis, encoded_because: str = "") -> str:
    """Why a video with nothing to restore was copied as it is (or encoded unchanged: see :func:`faceless_encoding`)."""
    if analysis.tracks:
        why = "no track selected with a strength above 0"
    else:
        why = "no face large enough to restore" if analysis.too_small else "no face found"
    return f"{why}: " + (encoded_because or "the video was copied without re-encoding")


def video_notes(analysis: Analysis, cfg: PipelineConfig, src: Path, dst: Path) -> list[str]:
    """What the report says of an encoded video: how its fields were treated, or, with no track to
    restore, why it was encoded rather than copied."""
    if selected_tracks(analysis, cfg):
        return deinterlace_note(analysis, cfg, probe(src).rotation)
    return [copy_note(analysis, faceless_encoding(src, dst, retiming(analysis, cfg)))]


def check_timing(cfg: PipelineConfig, src: Path, dst: Path | None) -> None:
    """``--frame-rate`` times the pictures of an image sequence in a video; refuse it elsewhere.
    ``--double-rate`` puts frames between the input's, and ``--decimate`` retimes film's frames,
    which a sequence's pictures, numbered as the input's frames, cannot say; ``--hybrid`` varies
    the rate, which some formats cannot store."""
    if cfg.frame_rate and not is_sequence(src):
        raise UsageError("--frame-rate times the pictures of an image sequence (name_%06d.png); a video keeps its own timing")
    if cfg.frame_rate and dst is not None and is_sequence(dst):
        raise UsageError("--frame-rate times a video made from pictures; an image sequence stores no timing")
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


def steady(pts: list[int | None], info: VideoInfo) -> bool:
    """Whether frames at ``pts`` (in ``info``'s time base) come one frame of its average rate apart,
    within a tick of rounding (Matroska's 1 ms ticks give 33 and 34 at 29.97 fps)."""
    known = [p for p in pts if p is not None]
    return bool(info.average_rate) and len(known) == len(pts) > 0 and \
        all(abs(b - a - info.frame_ticks) <= 1 for a, b in zip(known, known[1:]))


def at_steady_rate(info: VideoInfo, pts: list[int | None]) -> VideoInfo:
    """``info`` saying whether frames at ``pts`` come at a constant rate, and at which: its average
    rate, unless every frame is the same number of ticks after the one before at another. An .mp4
    whose stream duration counts a long last frame stated 29.77 fps for frames 1001/30000 s apart;
    an AVI of it then ran at 600 fps with empty frames between."""
    if steady(pts, info):
        return dataclasses.replace(info, constant_rate=True)
    step = cadence.frame_step(pts)
    exact = step is not None and all(b - a == step for a, b in zip(pts, pts[1:]))  # not Matroska's 33 and 34 ms
    return dataclasses.replace(info, constant_rate=exact, average_rate=1 / (step * info.time_base) if exact else info.average_rate)


def played_at(info: VideoInfo, cfg: PipelineConfig) -> VideoInfo:
    """``info`` with the frames of an image sequence timed at ``cfg.frame_rate``, else at the rate
    their headers state (a DPX scan's), else at FFmpeg's 25. Sequences are read one tick of 1/25 s a
    frame (:mod:`vidrestore.io.sequence`), so only the tick changes."""
    if not is_sequence(info.path):
        return info
    rate = cfg.sequence_rate if cfg.frame_rate else info.stated_rate or DEFAULT_RATE
    return info if rate == info.average_rate else dataclasses.replace(info, time_base=1 / rate, average_rate=rate)


def faceless_encoding(src: Path, dst: Path, retiming: str = "") -> str:
    """Why a video with nothing to restore is encoded unchanged rather than copied ("": it is
    copied): a copy would leave a JPEG inside a .png, or a raw stream's unstamped frames in a
    container that needs timestamps, or the pictures of an image sequence in a video file, or
    a turned video in a container that stores no rotation, or H.264 in a program stream, or video
    the output's container cannot hold (a GIF's in an .mp4); or the output runs at another rate,
    as ``retiming`` says (:func:`retiming`)."""
    if retiming:
        return f"the video was {retiming}, as asked"
    info = probe(src)
    encoder = IMAGE_ENCODERS.get(dst.suffix.lower())
    if encoder is not None and info.codec != encoder:
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


def encoding(src: Path, dst: Path, cfg: PipelineConfig) -> tuple[str, list[str]]:
    """How the video of ``dst`` is encoded from ``src`` (for the report), and notes on what the
    encoding loses: a master written as delivery video by codec auto
    (:func:`~vidrestore.io.writer.master_note`), Dolby Vision's dynamic metadata."""
    source = played_at(probe(src), cfg)
    auto = cfg.encode.codec == "auto"
    masters = master_note(source, check_encoder(cfg.encode, dst, source).name, dst) if auto else []
    return describe_encoding(cfg.encode, dst, source), masters + dolby_vision_note(source)


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
    encoded all the same (:func:`faceless_encoding`)."""
    if selected_tracks(analysis, cfg):
        return plan_segments(analysis, 0 if whole else cfg.segment_frames, cfg.batch_size or max(GPU_WINDOWS))
    return [range(analysis.frames)] if faceless_encoding(src, dst, retiming(analysis, cfg)) else []


def to_display(detection: Detection, scale: tuple[float, float]) -> Detection:
    """A detection in a downscaled image, mapped to the full-size frame's pixels."""
    sx, sy = scale
    return Detection(detection.box / np.array([sx, sy, sx, sy], np.float32), detection.score,
                     detection.landmarks / np.array([sx, sy], np.float32))


def plan_segments(analysis: Analysis, segment_frames: int, window: int = 0) -> list[range]:
    """Split the video into segments of at least ``segment_frames`` frames each (the last one may be
    shorter, down to half that); one segment when ``segment_frames`` is 0. Segments end at cuts;
    with ``window`` > 0, a long shot may also be split inside, at a multiple of ``window`` frames
    from its start, where pass 2's windows start anyway (its tracks' state then goes across in a
    file: :func:`~vidrestore.restore.save_contexts`)."""
    if segment_frames <= 0 or analysis.frames < 2 * segment_frames:
        return [range(analysis.frames)]
    ends = sorted({shot.end for shot in analysis.shots}
                  | {b for shot in analysis.shots if window > 0 for b in range(shot.start + window, shot.end, window)})
    segments, start = [], 0
    for end in ends:
        if end - start >= segment_frames and analysis.frames - end >= max(1, segment_frames // 2):
            segments.append(range(start, end))
            start = end
    segments.append(range(start, analysis.frames))
    return segments


def segment_starts(analysis: Analysis, segments: list[range], time_base: Fraction, decimated: bool = False) -> list[Fraction | None]:
    """When, in seconds, the first frame each of ``segments`` writes is shown (for
    :func:`~vidrestore.io.writer.remux`); ``decimated``: at the film's rate (:func:`decimates`)."""
    if decimated:
        firsts = [next((analysis.film_pts[i] for i in s if analysis.film_pts[i] is not None), None) for s in segments]
        return [None if pts is None else pts * time_base / cadence.TICKS for pts in firsts]
    return [analysis.pts[s.start] * time_base if s.start < len(analysis.pts) and analysis.pts[s.start] is not None else None
            for s in segments]


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


def edge_fades(track: Track, shot: Shot, fade_frames: int) -> tuple[int, int]:
    """Frames over which a track's restoration ramps in and out: ``fade_frames`` where the face
    comes or goes within its shot (so the restored face does not pop in); none at a cut (the whole
    picture changes there, and the first frames of every shot came out half restored); to the
    end of a dissolve or fade that the face comes in with (or from its start, for one it goes
    out with), so the restored face fades with the picture."""
    head = shot.start + shot.fade_in - track.start
    tail = track.end - (shot.end - shot.fade_out)
    return (head if track.start == shot.start else max(fade_frames, head),
            tail if track.end == shot.end else max(fade_frames, tail))


def _fade(track: Track, frame_index: int, fades: tuple[int, int]) -> float:
    head, tail = fades
    return float(min(1.0, (frame_index - track.start + 1) / (head + 1), (track.end - frame_index) / (tail + 1)))


def pack_pieces(lengths: list[int], capacity: int) -> list[list[tuple[int, int, int]]]:
    """Fill forward passes of at most ``capacity`` frames with the tracks' frames, in track order.

    Returns, per pass, ``(track, start, stop)`` pieces; a track that does not fit continues at the
    start of the next pass (its temporal state carries over, as between windows)."""
    passes: list[list[tuple[int, int, int]]] = [[]]
    room = capacity
    for track, length in enumerate(lengths):
        start = 0
        while start < length:
            if room == 0:
                passes.append([])
                room = capacity
            stop = min(length, start + room)
            passes[-1].append((track, start, stop))
            room -= stop - start
            start = stop
    return [p for p in passes if p]


@dataclass
class Pasted:
    """A frame with faces pasted in: its RGB image, and the boxes outside which it is the decoded frame."""

    image: np.ndarray
    boxes: list[tuple[int, int, int, int]]


def _restore_window(window: list, tracks: list[Track], fades: dict[int, tuple[int, int]], restorer: Restorer,
                    contexts: dict[int, TrackContext], identity: Callable[[Track], torch.Tensor | None],
                    cfg: PipelineConfig, device: torch.device, masker: Masker | None,
                    pixel_aspect: tuple[float, float] = (1.0, 1.0), later_rows: int | None = 1) -> dict[tuple[int, int], Pasted]:
    """Restore every track present in ``window``; returns the frames that changed, by frame index
    and moment (0, or 1 for a frame's later field: see below). ``fades``: each track's ramps in
    and out (:func:`edge_fades`).

    The crops of all the window's tracks share forward passes of up to ``batch_size`` frames, so a
    scene with several small or short-lived faces costs the model fewer, fuller passes.

    Frames that carry their later field's moment (``Frame.second``: interlaced video whose fields
    are kept) are restored at the field rate: a track's crops are each frame's earlier moment, then
    its later one, whose landmarks lie halfway to the next frame's. The later moment's face goes
    into the rows of the later field, which start at row ``later_rows`` (1: top field first), or,
    with ``later_rows`` None (double rate), into the later field's own progressive frame."""
    first, last = window[0].index, window[-1].index
    active = [t for t in tracks if t.start <= last and t.end > first]
    if not active:
        return {}
    # integer views of the frames (uint8, or uint16 for deep sources): only the regions around
    # faces are ever converted to float
    tensors = {f.index: torch.from_numpy(f.image).permute(2, 0, 1).to(device) for f in window if f.image is not None}
    seconds = {f.index: torch.from_numpy(f.second).permute(2, 0, 1).to(device) for f in window if f.second is not None}
    # a keep_fields reader's faces go into the interlaced frame; they are found and cropped in the progressive one
    bases = {f.index: torch.from_numpy(f.fields).permute(2, 0, 1).to(device) for f in window if f.fields is not None} or tensors
    held = {f.index for f in window}  # a repeated film frame left out (--decimate) is not in the window
    moments = [[(i, m) for i in range(max(first, t.start), min(last + 1, t.end)) if i in held for m in ((0, 1) if i in seconds else (0,))]
               for t in active]
    marks = [np.stack([_landmarks_at(t, i, m) for i, m in mine]) for t, mine in zip(active, moments)]
    mats = [face_matrices(lm, cfg.face_size, pixel_aspect) for lm in marks]
    with glue_threads(device):
        crops = [torch.cat([crop_faces((seconds if m else tensors)[i], mat[j : j + 1], cfg.face_size) for j, (i, m) in enumerate(mine)])
                 for mine, mat in zip(moments, mats)]
    for track, track_crops in zip(active, crops):
        if track.track_id not in contexts:
            contexts[track.track_id] = restorer.start_track(track.track_id, track_crops, identity(track), track.person)
    restored: list[list[torch.Tensor]] = [[] for _ in active]
    for pieces in pack_pieces([len(mine) for mine in moments], cfg.batch_size):
        outs = restorer.restore_tracks([(crops[j][a:b], contexts[active[j].track_id]) for j, a, b in pieces])
        for (j, _, _), out in zip(pieces, outs):
            restored[j].append(out.to(device))
    pastes: dict[tuple[int, int], list[tuple[torch.Tensor, np.ndarray, float, torch.Tensor]]] = {}
    for track, mine, track_marks, track_crops, track_mats, parts in zip(active, moments, marks, crops, mats, restored):
        faces = torch.cat(parts)
        if cfg.aligned:  # the crop is the frame: all of it is replaced
            masks = torch.ones(len(mine), 1, cfg.face_size, cfg.face_size, device=device)
        else:
            masks = masker(faces) if masker is not None else face_mask(cfg.face_size, device).expand(len(mine), -1, -1, -1)
        with glue_threads(device):
            if cfg.colour_match:
                faces = match_colour(faces, track_crops, face_mask(cfg.face_size, device))
            if track.monochrome:
                faces = keep_tone(faces, track_crops)
        turned = frontal_weight(track_marks, cfg.profile_fade)
        for j, (i, m) in enumerate(mine):
            strength = cfg.strength_of(track) * _fade(track, i, fades[track.track_id]) * float(turned[j])
            pastes.setdefault((i, m), []).append((faces[j], track_mats[j], strength, masks[j]))
        if track.end <= last + 1:
            contexts.pop(track.track_id, None)
    out: dict[tuple[int, int], Pasted] = {}
    with glue_threads(device):
        for (i, m), items in sorted(pastes.items()):
            faces, mats_i, strength, masks = zip(*items)
            base = seconds[i] if m and later_rows is None else bases[i]
            pasted, boxes = paste_faces(base, torch.stack(faces), np.stack(mats_i), torch.tensor(strength, device=device),
                                        torch.stack(masks), padding="border" if cfg.aligned else "zeros")
            image = pasted.permute(1, 2, 0).cpu().numpy()
            if m == 0 or later_rows is None:
                out[i, m] = Pasted(image, boxes)
            else:
                out[i, 0].image[later_rows::2] = image[later_rows::2]
                out[i, 0].boxes.extend(boxes)
    return out


def _landmarks_at(track: Track, index: int, moment: int) -> np.ndarray:
    """``track``'s landmarks at frame ``index``'s earlier field (``moment`` 0), or at its later one
    (1): halfway to the next frame's (as they are at the track's last frame)."""
    here = track.landmarks[index - track.start]
    if moment == 0:
        return here
    return (here + track.landmarks[min(index + 1, track.end - 1) - track.start]) / 2


@contextlib.contextmanager
def glue_threads(device: torch.device) -> Iterator[None]:
    """Run the torch and OpenCV ops around the model (align, colour match, paste) on one CPU thread.
    Their images are small, and the workers woken for them spin afterwards on the cores that the
    decoder and x264 need. On 2 cores, one torch thread made the pass-through restore pass 1.2x
    faster (bench/pipeline.py); one OpenCV thread took the align/paste step of a 248-frame clip
    from 1.0-1.1 to 0.67-0.72 CPU seconds in the same wall time. The model keeps every thread."""
    if device.type != "cpu":
        yield
        return
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def _without(progress: Progress | None, skipped: list[range]) -> Progress | None:
    """``progress`` that counts only this run's frames, leaving out the segments an earlier run
    restored, so the rate and ETA are this run's."""
    if progress is None or not skipped:
        return progress
    left_out = sum(len(s) for s in skipped)

    def report(stage: str, done: int, total: int, faces: int) -> None:
        progress(stage, done - sum(len(s) for s in skipped if s.stop <= done), total - left_out, faces)

    return report


def _clean_segments(parts: list[Path], carries: list[Path], ledger: SegmentLedger | None, keep: bool) -> None:
    """Remove the segment files (and their carried track state) of a run that ended, but with
    ``keep`` (it was stopped, or could not write: :func:`~vidrestore.resume.keeps_segments`) those
    its ledger records as finished, for the next run."""
    finished = ledger.finished() if ledger and keep else {}
    if ledger and not finished:
        ledger.discard()
    for part, carry in zip(parts, carries):
        if part not in finished:
            part.unlink(missing_ok=True)
            carry.unlink(missing_ok=True)


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


def _preview_info(info):
    """Stream description for the side-by-side preview: display orientation, twice as wide."""
    width, height = info.display_size
    return dataclasses.replace(info, width=2 * width, height=height, rotation=0, field_order="progressive")


def restore_video(path: Path, video_out: Path, analysis: Analysis, restorer: Restorer, cfg: PipelineConfig,
                  device: torch.device, progress: Progress | None = None, preview: Path | None = None,
                  frames: range | None = None, masker: Masker | None = None, reuse: DecodedFrames | None = None,
                  contexts: dict[int, TrackContext] | None = None, target: Path | None = None) -> int:
    """Pass 2: restore and encode the video stream alone into ``video_out``; returns frames written.

    ``frames``: only this segment (from :func:`plan_segments`). With ``preview``, also encode a
    side-by-side (input | restored) video there. ``reuse``: the frames pass 1 kept, read instead of
    decoding the video again when they are the whole of it. ``contexts``: the restorer's state of
    the tracks that come into the segment from the one before it; on return it holds that of the
    tracks that go on past it. ``target``: the output ``video_out`` is a segment of (default
    ``video_out`` itself), whose type decides the encoder and whether frames are written upright."""
    info = played_at(probe(path), cfg)
    info = at_steady_rate(info, analysis.pts)
    cfg = dataclasses.replace(cfg, batch_size=window_frames(cfg, device, info))
    target = target or video_out
    encode = dataclasses.replace(cfg.encode, codec=check_encoder(cfg.encode, target, info).name)  # a sequence's segments are .mov files
    frames = frames if frames is not None else range(analysis.frames)
    tracks = [t for t in selected_tracks(analysis, cfg) if t.start < frames.stop and t.end > frames.start]
    cuts = {shot.start for shot in analysis.shots}
    fades = {t.track_id: edge_fades(t, analysis.shots[t.shot_index], cfg.fade_frames) for t in tracks}
    contexts = {} if contexts is None else contexts
    photos = {i: torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255 for i, crop in analysis.references.items()}
    faces = 0
    start_pts = analysis.pts[frames.start] if frames.start < len(analysis.pts) else None
    with contextlib.ExitStack() as stack:
        anchored = [t for t in tracks if t.track_id not in photos and t.track_id not in contexts] if restorer.uses_identity else []
        # a track's best frames may lie past the segment's end, where its state will be carried
        ahead = range(frames.start, max([frames.stop, *(t.end for t in anchored)]))
        best_frames = IdentityCrops(path, anchored, cfg.face_size, ahead, start_pts, analysis.deinterlace, reuse)
        stack.callback(best_frames.close)

        def identity(track: Track) -> torch.Tensor | None:
            return photos[track.track_id] if track.track_id in photos else best_frames(track)

        # A picture file carries no rotation that viewers read (a phone photo's EXIF tag is gone once
        # re-encoded), nor do AVI, MPEG-TS and others: a turned video is written upright there, from
        # the display-oriented images (a phone's video played sideways from an AVI).
        upright = info.rotation % 360 != 0 and (target.suffix.lower() in IMAGE_ENCODERS or not stores_rotation(target))
        faced = None if preview or upright else [range(t.start, t.end) for t in tracks]  # the preview shows every frame
        doubled, decimated, dropped = doubles(analysis, cfg), decimates(analysis, cfg), left_out(analysis, cfg)
        reader = stack.enter_context(VideoReader(path, start=frames.start, stop=frames.stop, start_pts=start_pts,
                                                 deinterlace=analysis.deinterlace, keep_depth=True, reuse=reuse,
                                                 images_for=faced, keep_fields=cfg.keep_fields, double_rate=doubled))
        timed = output_timing(info, analysis, cfg)
        coded = dataclasses.replace(timed, field_order=coded_field_order(analysis, info, cfg.keep_fields))
        if upright:
            coded = dataclasses.replace(coded, rotation=0, width=info.display_size[0], height=info.display_size[1])
        writer = stack.enter_context(VideoWriter(video_out, coded, encode))
        side = stack.enter_context(VideoWriter(preview, _preview_info(timed), cfg.encode)) if preview else None
        window: list = []
        later_rows = None if doubled else 0 if analysis.deinterlace is not None and analysis.deinterlace.parity == "bff" else 1

        def write(source: av.VideoFrame, pts: int | None, image: np.ndarray | None, shown: np.ndarray | None,
                  pasted: Pasted | None) -> None:
            """One output frame, and its side-by-side preview (``shown``, the progressive input,
            beside the output); none for a repeated film frame left out (``pts`` None)."""
            if pts is None:
                return
            if upright:
                writer.write(None, pts, pasted.image if pasted else image)
            else:
                writer.write(source, pts, *((pasted.image, pasted.boxes) if pasted else ()))
            if side is not None:
                side.write(None, pts, np.concatenate([shown, pasted.image if pasted else shown], 1))

        def flush() -> None:
            nonlocal faces
            raise_if_stopped()
            kept = [f for f in window if f.index not in dropped]  # a repeat is not written: not restored
            changed = _restore_window(kept, tracks, fades, restorer, contexts, identity, cfg, device, masker, info.pixel_aspect,
                                      later_rows) if kept else {}
            faces += sum(1 for f in kept for t in tracks if t.covers(f.index))
            for f in window:
                pts = analysis.film_pts[f.index] if decimated else 2 * f.pts if doubled else f.pts
                write(f.source, pts, f.image if f.fields is None else f.fields, f.image, changed.get((f.index, 0)))
                if f.second_source is not None:
                    write(f.second_source, f.second_source.pts, f.second, f.second, changed.get((f.index, 1)))
            if progress:
                progress("restore", window[-1].index + 1, analysis.frames, faces)
            window.clear()

        for frame in reader:
            if window and frame.index in cuts:
                flush()  # windows never straddle a cut, so segments restore exactly as one pass does
            window.append(frame)
            if len(window) >= cfg.batch_size:
                flush()
        if window:
            flush()
        return writer.frames_written


def people_of(tracks: list[Track]) -> list[dict]:
    """The report's people: each person's id, their tracks, and how many frames they are on screen."""
    people: dict[int, list[Track]] = defaultdict(list)
    for track in tracks:
        people[track.person].append(track)
    return [{"id": person, "tracks": [t.track_id for t in mine], "frames": sum(len(t) for t in mine)}
            for person, mine in sorted(people.items())]


def face_path(folder: Path, track: Track) -> Path:
    """Where :func:`write_faces` puts ``track``'s face: by person, then track, so one person's faces sort together."""
    return folder / f"person{track.person:04d}_track{track.track_id:04d}.jpg"


def write_faces(analysis: Analysis, folder: Path) -> None:
    """Each track's best face as pass 1 saw it (aligned, as a JPEG) into ``folder``, and
    ``people.jpg``, all of them in a row per person."""
    shown = [t for t in analysis.tracks if t.track_id in analysis.faces]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for track in shown:
            face_path(folder, track).write_bytes(analysis.faces[track.track_id])
        if shown:
            decoded = {t.track_id: cv2.imdecode(np.frombuffer(analysis.faces[t.track_id], np.uint8), cv2.IMREAD_COLOR) for t in shown}
            sheet = contact_sheet(decoded, {t.track_id: t.person for t in shown})  # BGR throughout: OpenCV writes it
            if not cv2.imwrite(str(folder / "people.jpg"), sheet, [cv2.IMWRITE_JPEG_QUALITY, 90]):
                raise OSError(f"OpenCV could not write {folder / 'people.jpg'}")
    except OSError as exc:
        raise OutputError(f"cannot write the faces into {folder}: {exc.strerror or exc}") from exc


def provenance(restorer_name: str) -> str:
    """The note a restored file carries in its comment tag, so archives can tell restored faces from original ones."""
    return f"faces restored by vidrestore {__version__} with {restorer_name}"


def create_masker(cfg: PipelineConfig, device: torch.device) -> Masker | None:
    """The parsing masker ``cfg.mask`` asks for; None means the feathered ellipse (or, with
    ``cfg.aligned``, the whole frame)."""
    if cfg.mask not in ("auto", "ellipse", "parsing"):
        raise UsageError(f"unknown mask {cfg.mask!r}; choose auto, ellipse or parsing")
    if cfg.mask == "ellipse" or cfg.aligned:
        return None
    masker = parsing_masker(cfg.parsing_weights or None, device)
    if masker is None and cfg.mask == "parsing":
        raise ModelError("--mask parsing needs ParseNet weights (parsing_parsenet.pth): give --parsing-weights, set "
                         "VIDRESTORE_WEIGHTS_PARSENET_512, or run `vidrestore models pull parsenet-512`")
    return masker


def mask_name(masker: Masker | None, cfg: PipelineConfig) -> str:
    if cfg.aligned:
        return "whole frame (--aligned)"
    return masker.name if masker is not None else "ellipse (feathered)"


def check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    if is_sequence(src):
        find_sequence(src)  # names the folder, the missing pictures or the empty match
    elif has_number_field(src) and not src.exists():
        raise InputError(f"cannot read the image sequence {src.name}: {unsupported_type(src)}")
    elif not src.exists():
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", str(src)):  # Path() folds the "//" of a URL
            raise InputError("the input is a URL: vidrestore reads local files; download it first")
        raise InputError(f"input not found: {src}")
    elif src.is_dir():
        held = sequences_in(src)
        hint = f"; it holds the image sequence {held[0]} (give that, quoted)" if held else ""
        raise InputError(f"input is a folder: {src}{hint}")
    if is_sequence(dst):
        _check_sequence_output(src, dst, overwrite)
    else:
        if dst.exists() and src.resolve() == dst.resolve():
            raise OutputError(f"output is the input file ({dst}); vidrestore never overwrites its input")
        if dst.exists() and not overwrite:
            raise OutputError(f"output exists: {dst} (use --overwrite to replace it)")
        if dst.is_dir():
            raise OutputError(f"output is a folder: {dst}")
    if not dst.parent.is_dir():
        raise OutputError(f"output folder does not exist: {dst.parent}")
    if not os.access(dst.parent, os.W_OK):
        raise OutputError(f"output folder is not writable: {dst.parent}")


def _check_sequence_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse an output sequence that has pictures already (unless ``overwrite``) or whose pictures
    would replace the input's."""
    existing = files_of(dst) if dst.parent.is_dir() else []
    inputs = {p.resolve() for p in (files_of(src) if is_sequence(src) else [src])}
    if any(p.resolve() in inputs for p in existing) or (is_sequence(src) and dst.parent.resolve() == src.parent.resolve()
                                                         and dst.name == src.name):
        raise OutputError(f"output sequence {dst} would replace pictures of the input; vidrestore never overwrites its input")
    if existing and not overwrite:
        raise OutputError(f"output exists: {len(existing)} pictures of {dst}, from {existing[0].name} "
                          "(use --overwrite to replace the sequence)")


def run(src: str | Path, dst: str | Path | None, cfg: PipelineConfig, restorer: Restorer, device: torch.device,
        overwrite: bool = False, dry_run: bool = False, progress: Progress | None = None,
        detector: FaceDetector | None = None, preview: str | Path | None = None, qa: bool = False,
        resume: str = "") -> Report:
    """Restore ``src`` into ``dst`` (or only analyse it with ``dry_run``); returns the report.

    ``preview``: also write a side-by-side input | restored video (video only) there; the video is
    then restored as one segment. ``qa``: then measure every restored track against the input
    (:func:`quality_check`). ``resume``: the fingerprint of the input and options
    (:meth:`~vidrestore.options.RestoreOptions.fingerprint_for`); with it, each finished segment
    is recorded beside ``dst``, an interruption or a failure to write (a full disk) keeps them, and
    the next run with the same fingerprint reuses them (:mod:`vidrestore.resume`)."""
    src = Path(src)
    if dst is None and not dry_run:
        raise UsageError("an output path is needed unless --dry-run is given")
    check_timing(cfg, src, dst)
    if cfg.faces_dir and Path(cfg.faces_dir).exists() and not Path(cfg.faces_dir).is_dir():
        raise OutputError(f"--faces {cfg.faces_dir}: that is a file; give a folder to write the faces into")
    if dst is not None:
        check_paths(src, Path(dst), overwrite)
        check_output(src, dst, cfg.encode, cfg.drop_streams, played_at(probe(src), cfg))
        if preview is not None:
            check_encoder(cfg.encode, preview)
            if is_sequence(preview):
                raise UsageError("--preview writes a video (.mp4, .mkv); give it a video file name, not a sequence")
    if cfg.face_size != restorer.face_size:
        cfg = dataclasses.replace(cfg, face_size=restorer.face_size)  # crops at the model's own size
    timings: dict[str, float] = {}
    notes: list[str] = []
    encoder = None
    t0 = time.perf_counter()
    detector = detector or create_detector(cfg.detector, device)
    masker = create_masker(cfg, device) if not dry_run else None
    decoded = DecodedFrames(cfg.decode_once_mib << 20 if not (dry_run or cfg.keep_fields or cfg.double_rate) else 0)  # kept frames are one a frame
    analysis = analyse(src, cfg, detector, progress, keep=decoded)
    if cfg.faces_dir:
        write_faces(analysis, Path(cfg.faces_dir))
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
        reused = {i for i, (part, frames) in enumerate(zip(parts, segments)) if part in kept and kept[part].frames == frames}
        if ledger and not reused and ledger.path.exists():
            ledger.discard()
            notes.append("the segments an earlier run left were not reused: they were made from another input, with other options "
                         "or another model, or have changed since")
        remove_leftovers(dst, keep=[p for i in reused for p in (parts[i], carries[i])])
        with contextlib.ExitStack() as stack:
            final_tmp = stack.enter_context(atomic_output(dst, number_offset(src)))
            preview_tmp = stack.enter_context(atomic_output(preview)) if preview else None
            if segments:
                notes.extend(video_notes(analysis, cfg, src, dst))
                encoder, master = encoding(src, dst, cfg)
                notes.extend(master)
                this_run = _without(progress, [segments[i] for i in reused])
                stopped = False
                try:
                    contexts: dict[int, TrackContext] = {}  # tracks going on from one segment into the next
                    for index, (part, frames) in enumerate(zip(parts, segments)):
                        if index in reused:
                            frames_out += kept[part].written
                            contexts = carried_in(dst, index + 1, device) if index + 1 not in reused else {}
                            continue
                        written = restore_video(src, part, analysis, restorer, cfg, device, this_run, preview_tmp, frames,
                                                masker, decoded, contexts, target=dst)
                        frames_out += written
                        carry = hand_on(contexts, dst, index, last=index + 1 == len(segments))
                        if ledger:
                            ledger.record(part, frames, written, carry)
                    timings["restore_encode"] = time.perf_counter() - t1
                    notes.extend(reused_note(len(reused), len(parts)) + restorer.notes)
                    t2 = time.perf_counter()
                    tick = played_at(probe(src), cfg).time_base
                    notes.extend(left_out_note(remux(parts, src, final_tmp, provenance(restorer.name),
                                                     segment_starts(analysis, segments, tick, decimates(analysis, cfg)), tick), dst))
                    timings["remux"] = time.perf_counter() - t2
                except BaseException as exc:
                    stopped = keeps_segments(exc)
                    raise
                finally:
                    _clean_segments(parts, carries, ledger, keep=stopped)
            else:
                notes.append(copy_note(analysis))
                notes.extend(left_out_note(remux(src, src, final_tmp), dst))
                if preview_tmp is not None:
                    remux(src, src, preview_tmp)
                frames_out = analysis.frames
                timings["remux"] = time.perf_counter() - t1
    decoded.clear()
    qa_rows = None
    if qa and restoring and dst is not None and not dry_run:
        t3 = time.perf_counter()
        qa_rows, alarms = quality_check(src, dst, analysis, restoring, cfg, progress)
        notes.extend(alarms)
        timings["qa"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    report = build_report(src, dst if not dry_run else None, analysis, cfg, restorer.name, mask_name(masker, cfg), frames_out,
                          timings, notes)
    return dataclasses.replace(report, qa=qa_rows, encoder=encoder)


def quality_check(src: Path, dst: Path, analysis: Analysis, tracks: list[Track], cfg: PipelineConfig,
                  progress: Progress | None = None) -> tuple[list[dict], list[str]]:
    """Per restored track: warping error, flicker and identity of the output and of the input
    (summaries only; `vidrestore eval video` gives the per-frame series and figures), and a note
    per track that flickers more than its input or drifts from the person."""
    if is_sequence(dst) and analysis.corrupt_packets:
        return [], ["no quality check: the output sequence has gaps where pictures of the input did not decode"]
    meters = measure_tracks(src, dst, tracks, cfg.face_size, deinterlace=analysis.deinterlace, progress=progress,
                            step=2 if doubles(analysis, cfg) else 1, left_out=left_out(analysis, cfg))
    encoder = DlibIdentityEncoder()
    rows = [{k: v for k, v in meter.finish(encoder).items() if k != "per_frame"} for meter in meters]
    return rows, qa_alarms(rows)


def build_report(src: Path, dst: Path | None, analysis: Analysis, cfg: PipelineConfig, restorer_name: str, mask: str,
                 frames_out: int, timings: dict[str, float], notes: list[str]) -> Report:
    info = played_at(probe(src), cfg)
    selected = {t.track_id for t in selected_tracks(analysis, cfg)}
    fps = float(info.average_rate) if info.average_rate else 0.0
    return Report(
        input=str(src), output=str(dst) if dst is not None else None,
        frames_in=analysis.frames, frames_out=frames_out,
        shots=[asdict(s) for s in analysis.shots],
        tracks=[{"id": t.track_id, "person": t.person, "shot": t.shot_index, "start": t.start, "end": t.end, "frames": len(t),
                 "detected_frames": int(t.detected.sum()), "median_face_px": t.median_face_px,
                 "start_s": t.start / fps if fps else None, "selected": t.track_id in selected,
                 "strength": cfg.strength_of(t), "reference": cfg.reference_of(t) or None,
                 "identity_frames": [] if cfg.reference_of(t) else identity_frames(t),
                 "profile_frames": int((frontal_weight(t.landmarks, cfg.profile_fade) < 1).sum()),
                 "monochrome": t.monochrome,
                 "face": str(face_path(Path(cfg.faces_dir), t)) if cfg.faces_dir and t.track_id in analysis.faces else None}
                for t in analysis.tracks],
        detector=analysis.detector, restorer=restorer_name, mask=mask, timings_s={k: round(v, 3) for k, v in timings.items()},
        people=people_of(analysis.tracks),
        corrupt_packets=analysis.corrupt_packets, damaged_s=[round(t, 3) for t in analysis.damaged_s], notes=[*decode_notes(analysis, info), *monochrome_note(analysis), *small_faces_note(analysis, cfg), *aligned_hint(analysis, cfg, info),
               *unrestored_videos_note(src), *notes])
