"""The run's report: shots, tracks, people and timings, and the notes that tell the user what was
done and what could not be; the quality check (``--qa``) and the faces written for ``--faces``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import __version__, cadence, jsonio
from ..anchor import identity_frames
from ..errors import OutputError
from ..eval.tracks import measure_tracks, qa_alarms
from ..faces.align import face_matrices, shrinks_by
from ..faces.identity import DlibIdentityEncoder
from ..faces.people import contact_sheet
from ..faces.pose import frontal_weight
from ..faces.settings import strength_for
from ..faces.types import Track
from ..io import VideoInfo, hdr10plus, probe
from ..io.encoders import alpha_note, check_encoder, describe_encoding, dolby_vision_note, icc_note, master_note
from ..io.linear import (
    CAMERA_LOGS,
    CINEON_BLACK,
    CINEON_WHITE,
    HDR_LIGHTS,
    LIGHT_WORDS,
    REFERENCE_WHITE_NITS,
    VIDEO_LIGHTS,
    Light,
)
from ..io.output import atomic_output
from ..io.photo import is_photo
from ..io.reader import doubles_rate, fields_have_own_moments
from ..io.remux import left_alone_notes, unrestored_videos_note
from ..io.sequence import find_sequence, is_sequence, numbered
from ..io.sidecar import sony_settings
from .analysis import Analysis, selected_tracks
from .config import PipelineConfig, Progress
from .segments import faceless_encoding
from .timing import (
    at_shared_times,
    decimates,
    doubles,
    excerpt_note,
    excerpt_shown,
    left_out,
    played_at,
    retiming,
    shared_times_note,
)


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
    light: str = "display"  # what the input's samples were read as standing for: display, linear, cineon, pq, hlg, slog3, slog3-sgamut3, slog2, vlog, logc3, logc4, applelog, clog3, clog2, clog or dlog (io.linear.Light)
    grain: float = 0.0  # how much of the noise the restored faces lacked against their frames was put back (--grain)
    keep_coarse: float = 0.0  # px of the frame: the faces kept the input's picture coarser than a Gaussian of this size (--keep-coarse)
    keep_detail: float = 0.0  # the share of the frame's detail finer than the crop that the faces kept (--keep-detail)
    # measured per track instead (each track's "keep_detail"); keep_detail is then that of tracks it could not measure
    measure_detail: bool = False
    # each person's strength from how damaged their faces are estimated to be (--strength auto; each
    # track's "strength", from its "quality_db"); strength then is that of tracks not estimated
    measure_strength: bool = False
    strength: float = 1.0
    # --start/--end: the times asked for and when the excerpt's first frame is shown in the input
    # (seconds); frames and tracks' start_s count from that frame, as the output does
    excerpt: dict | None = None

    def to_json(self) -> str:
        return jsonio.dumps(asdict(self), indent=2)


HYBRID_HINT_CYCLES = 3  # cycles of video in a row (half a second) that --decimate suggests --hybrid for


def deinterlace_note(analysis: Analysis, cfg: PipelineConfig, rotation: int = 0) -> list[str]:
    """What was done with the input's fields (``cfg.keep_fields``, ``cfg.double_rate``), and why."""
    fields = analysis.deinterlace
    if fields is None:
        asked = [flag for flag, on in (("--keep-fields", cfg.keep_fields), ("--double-rate", cfg.double_rate),
                                       ("--decimate", cfg.decimate)) if on]
        return [(f"{asked[0]} changed nothing: the video was not deinterlaced (it looks progressive, or --deinterlace off "
                 "kept its fields)")] if asked else []
    how = f"{fields.describe()} ({analysis.fields})"
    if cfg.keep_fields:
        rate = "a face for each field" if fields_have_own_moments(fields, rotation) else "a face for each frame"
        return [f"faces restored on frames {how}, {rate}, and pasted into the input's fields: the output keeps them, {fields.parity}"]
    if cfg.double_rate:
        return [f"{how}, a frame for each field (--double-rate): twice the input's frames, each with the face it showed"] \
            if doubles_rate(fields) else [(f"--double-rate changed nothing: {how} gives back the film's own frames, which have "
                                           "no fields of their own; the output keeps the input's rate")]
    if cfg.decimate:
        if decimates(analysis, cfg):
            video = len(analysis.video_cycles) if cfg.hybrid else 0
            kept = f"; in {video} cycles of 5 no frame repeated (video shot at the video rate), and they keep all their frames " \
                   "at their own times (--hybrid), so the frame rate varies" if video else ""
            run, first = (0, 0) if cfg.hybrid else cadence.longest_run(analysis.video_cycles)
            if run >= HYBRID_HINT_CYCLES:
                kept = f"; from frame {first}, {run} cycles of 5 in a row look like video shot at the video rate (no frame " \
                       "repeats), and each lost a real frame: --hybrid keeps such cycles whole"
            return [(f"{how}, decimated (--decimate): the {len(left_out(analysis, cfg))} frames that repeated a film frame were "
                     f"left out, and the film's own frames are timed at 4/5 of the input's rate{kept}")]
        why = "its fields are moments of their own, not film in pulldown" if not fields.match else \
            "its frames are not evenly spaced" if not analysis.film_pts else \
            "in every cycle of 5 each frame is a moment of its own (video shot at the video rate, which --hybrid keeps)"
        return [f"--decimate changed nothing: {how}; {why}, so no frame repeats a film frame"]
    doubling = ", --double-rate writes a frame for each field" if doubles_rate(fields) else ""
    return [(f"{how}; --keep-fields pastes the faces into the input's fields and keeps them{doubling}, --deinterlace off "
             "keeps the fields and restores faces on them")]


def decode_notes(analysis: Analysis, info: VideoInfo, done: str = "restored") -> list[str]:
    """What the decoder could not give as it was: damaged and corrupt packets, frames of another
    size. ``done``: what became of the frames that decoded ("restored", "analysed" by a dry run;
    "": nothing, the video copied or encoded as it was, as another note says)."""
    notes = []
    if analysis.damaged_s:
        at = ", ".join(f"{t:.2f} s" for t in analysis.damaged_s[:5]) + (", ..." if len(analysis.damaged_s) > 5 else "")
        packets = "1 packet" if len(analysis.damaged_s) == 1 else f"{len(analysis.damaged_s)} packets"
        notes.append(f"the file is damaged: {packets} flagged corrupt, at {at} from the start; "
                     "frames there may be missing or show blocks that restoration does not repair")
    if analysis.corrupt_packets:
        notes.append(f"{analysis.corrupt_packets} corrupt packets could not be decoded" + (f"; the frames that decoded were {done}" if done else ""))
    if analysis.corrupt_packets and is_sequence(info.path):
        notes.extend(undecoded_pictures_note(analysis, info.path))
    lead = undecodable_lead_s(analysis, info)
    if lead:
        notes.append(f"the picture starts {lead:.2f} s after the video stream does: its first packets cannot be decoded, as in a "
                     "recording cut from a longer one where there was no keyframe; the sound there is kept")
    if analysis.resized:
        notes.append(f"{analysis.resized} frames came in another size or pixel format than the stream's first; "
                     f"they were scaled to {info.width}x{info.height} {info.pix_fmt}")
    if analysis.boxed:
        notes.append(f"{analysis.boxed} frames of another shape than the stream's first (by their size and the pixel aspect "
                     "their headers state) were placed on black bars, their shape kept")
    return notes


def _light_said(analysis: Analysis, cfg: PipelineConfig, src: Path) -> str:
    """What said what the input's samples stand for: --light, its tags, a camera's settings file or DPX headers."""
    if cfg.light != "auto":
        return "as --light says"
    if analysis.light in HDR_LIGHTS:
        return "as its transfer tag says"
    if analysis.light in CAMERA_LOGS:
        settings = sony_settings(Path(src))
        return f"as its camera's settings file {settings.name if settings else ''} says"
    return "as their DPX headers say"


def light_note(analysis: Analysis, cfg: PipelineConfig, src: Path) -> list[str]:
    """How the faces of pictures that are not display-referred were shown to the detector and the model."""
    said = _light_said(analysis, cfg, src)
    if analysis.light in VIDEO_LIGHTS:
        white = f"its reference white, {REFERENCE_WHITE_NITS:.0f} cd/m2," if analysis.light in HDR_LIGHTS else "its scene light, a white card"
        return [(f"the video is {LIGHT_WORDS[analysis.light]}, {said}: faces were found and restored on an SDR view of it "
                 f"({white} near SDR white, light from three quarters of it up rolled off towards white, in Rec. 709's "
                 "primaries) and written back in its own light; highlights and colours the view cannot show, and every "
                 "sample away from the faces, are the source's")]
    if analysis.light is Light.CINEON:
        return [(f"the pictures hold printing density (Cineon log), {said}: faces were found and restored "
                 f"on an sRGB view of them (code {CINEON_BLACK} black, {CINEON_WHITE} white) and written back in printing "
                 "density; every other sample is the scan's own")]
    if analysis.light is Light.LINEAR:
        return [("the pictures hold linear light: faces were found and restored on an sRGB view of them (light above 1 "
                 "clipped there) and written back in linear light; every other sample is the source's own")]
    return []


def undecodable_lead_s(analysis: Analysis, info: VideoInfo) -> float:
    """Seconds from the video stream's first timestamp to its first decoded frame, when that is more
    than two frames: a recording cut at no keyframe (a TS clipped from a broadcast) starts with
    packets no decoder can use. 0 otherwise. For an excerpt, from its start."""
    first = next((p for p in analysis.pts if p is not None), None)
    if first is None or info.start_pts is None or not info.timestamps:
        return 0.0
    origin = analysis.excerpt.ticks(info)[0] if analysis.excerpt is not None else info.start_pts
    lead = float((first - origin) * info.time_base)
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
    return [(f"{len(lost)} pictures could not be decoded and were not restored ({names}); "
             "a sequence written from this one lacks their numbers")]


def monochrome_note(analysis: Analysis) -> list[str]:
    toned = [t for t in analysis.tracks if t.monochrome]
    if not toned:
        return []
    which = "every face track is" if len(toned) == len(analysis.tracks) else f"{len(toned)} of {len(analysis.tracks)} face tracks are"
    return [f"{which} in black-and-white or toned footage: the restored faces keep its tone"]


def not_faces_note(analysis: Analysis) -> list[str]:
    """Say that tracks were left out as no face, so that a face missing from the output is explained."""
    n = analysis.not_faces
    if not n:
        return []
    tracks = "face track" if n == 1 else "face tracks"
    return [(f"{n} {tracks} left out as no face: the detector was unsure of {'it' if n == 1 else 'them'} "
             "and a second look (dlib's CNN) found no face there")]


def small_faces_note(analysis: Analysis, cfg: PipelineConfig) -> list[str]:
    """Say that faces were seen but left alone for their size, or that faces as small as asked for
    are beyond the detector at the size it can work at: the user can act on either."""
    notes = []
    n = analysis.too_small
    if n:
        faces = "face track" if n == 1 else "face tracks"
        notes.append(f"{n} {faces} smaller than {cfg.tracker.min_face_size:g} px (median box side) left as they are; "
                     f"--min-face lowers the limit")
    beyond = analysis.smallest_findable > cfg.tracker.min_face_size * 1.05
    if beyond and analysis.detect_side < analysis.frame_side:
        notes.append(f"faces under about {analysis.smallest_findable:.0f} px cannot be found by this detector at the size it "
                     f"works at ({analysis.detect_side} px of the frame's {analysis.frame_side} on the longer side), though "
                     f"--min-face is {cfg.tracker.min_face_size:g}; a larger detector max_side in a --config file finds smaller ones "
                     "with dlib, more slowly, and RetinaFace finds smaller ones still")
    elif beyond and analysis.frame_side >= 2 * analysis.smallest_findable:
        # enlarged as far as the detector goes, in a frame large enough to hold faces it cannot find
        # (an SD video, --min-face lowered): dlib's limit, which RetinaFace is not held to
        other = ": RetinaFace finds faces down to about 10 px (--detector-weights)" if analysis.detector.startswith("dlib") else ""
        notes.append(f"faces under about {analysis.smallest_findable:.0f} px cannot be found by this detector in frames of "
                     f"{analysis.frame_side} px, worked on at {analysis.detect_side} px (as large as it goes), though --min-face is "
                     f"{cfg.tracker.min_face_size:g}{other}")
    return notes


LARGER_THAN_CROP = 1.5  # a face this many times the crop its damage is judged at, or more, is said to be larger than it


def crop_scale(tracks: list[Track], crop: int) -> float:
    """How many times a ``crop`` px face crop the faces of ``tracks`` are in the frame (median
    frame pixels a crop pixel spans)."""
    return float(np.median([shrinks_by(m) for t in tracks for m in face_matrices(t.landmarks, crop)]))


def strength_note(analysis: Analysis, cfg: PipelineConfig) -> list[str]:
    """Name the people whose faces the estimate of their damage restored at less than full
    strength (or not at all), so that a user who wants them redrawn knows how. A face much larger
    than the crop its damage is judged at is judged by what that damage leaves at the crop's
    size: a user who sees blur left on such a face is told why."""
    lowered: dict[int, tuple[float, float]] = {}  # person -> (estimate, strength)
    for t in analysis.tracks:
        strength = cfg.strength_of(t)
        if cfg.measure_strength and t.quality is not None and strength == min(cfg.strength, strength_for(t.quality)) < cfg.strength:
            lowered[t.person] = (t.quality, strength)
    if not lowered:
        return []
    crop = analysis.judged_at
    scales = {p: crop_scale([t for t in analysis.tracks if t.person == p], crop) if crop else 0.0 for p in lowered}
    said = "; ".join(f"person {p}: {q:.1f} dB from clean, strength {s:.2f}"
                     + (f", faces {scales[p]:.1f} times the crop" if scales[p] >= LARGER_THAN_CROP else "")
                     for p, (q, s) in sorted(lowered.items()))
    larger = (f"; damage is judged at a {crop} px crop: on a larger face, blur and noise finer than the crop do not count"
              if max(scales.values()) >= LARGER_THAN_CROP else "")
    return [(f"faces that look little damaged were restored less, or left as they are (--strength auto; {said}){larger}; "
             f"--strength 1 restores every face in full, --strength pPERSON=1 one person's")]


def aligned_hint(analysis: Analysis, cfg: PipelineConfig, info: VideoInfo) -> list[str]:
    """Point to --aligned when no face was found in square frames the size of face crops: detectors
    miss a face that fills the whole frame, as in the aligned test clips of face video benchmarks."""
    if analysis.tracks or analysis.too_small or cfg.aligned or info.width != info.height or info.width > 1024:
        return []
    return [("no face was found in these square frames: if they are aligned face crops (as the test clips of KEEP and VFHQ), "
             "--aligned restores each shot whole")]


def copy_note(analysis: Analysis, src: Path, encoded_because: str = "") -> str:
    """Why the video or picture ``src``, with nothing to restore, was copied as it is (or encoded
    unchanged: see :func:`faceless_encoding`)."""
    if analysis.tracks:
        why = "no track selected with a strength above 0"
    else:
        why = "no face large enough to restore" if analysis.too_small else "no face found"
    copied = "the picture was copied as it is" if is_photo(src) else "the video was copied without re-encoding"
    return f"{why}: " + (encoded_because or copied)


def video_notes(analysis: Analysis, cfg: PipelineConfig, src: Path, dst: Path) -> list[str]:
    """What the report says of an encoded video: how its fields were treated, or, with no track to
    restore, why it was encoded rather than copied."""
    if selected_tracks(analysis, cfg):
        return deinterlace_note(analysis, cfg, probe(src).rotation) + shared_times_note(analysis)
    return [copy_note(analysis, src, faceless_encoding(src, dst, retiming(analysis, cfg), analysis.excerpt, cfg.encode.codec,
                                                       at_shared_times(analysis.pts))), *shared_times_note(analysis)]


def encoding(src: Path, dst: Path, cfg: PipelineConfig) -> tuple[str, list[str]]:
    """How the video of ``dst`` is encoded from ``src`` (for the report), and notes on what the
    encoding loses: a master written as delivery video by codec auto
    (:func:`~vidrestore.io.encoders.master_note`), an alpha channel, a picture's ICC profile, Dolby
    Vision's or HDR10+'s dynamic metadata."""
    source = played_at(probe(src), cfg)
    codec = check_encoder(cfg.encode, dst, source)
    masters = master_note(source, codec.name, dst) if cfg.encode.codec == "auto" else []
    lost = alpha_note(source, codec, cfg.encode, dst) + icc_note(source, codec, dst) + dolby_vision_note(source) + \
        hdr10plus.dropped_note(source, codec.name)
    return describe_encoding(cfg.encode, dst, source), masters + lost


def people_of(tracks: list[Track]) -> list[dict]:
    """The report's people: each person's id, their tracks, and how many frames they are on screen."""
    people: dict[int, list[Track]] = defaultdict(list)
    for track in tracks:
        people[track.person].append(track)
    return [{"id": person, "tracks": [t.track_id for t in mine], "frames": sum(len(t) for t in mine)}
            for person, mine in sorted(people.items())]


FACE_NAME = re.compile(r"person\d{4,}_track\d{4,}\.jpg")  # as face_path names them


def face_path(folder: Path, track: Track) -> Path:
    """Where :func:`write_faces` puts ``track``'s face: by person, then track, so one person's faces sort together."""
    return folder / f"person{track.person:04d}_track{track.track_id:04d}.jpg"


def write_faces(analysis: Analysis, folder: Path, overwrite: bool) -> None:
    """Each track's best face as pass 1 saw it (aligned, as a JPEG) into ``folder``, and
    ``people.jpg``, all of them in a row per person. Faces an earlier run left there that this run
    does not write (of another video, or other options) are refused unless ``overwrite``, then
    removed: mixed with this run's, they were taken for its tracks (``--tracks`` picked from the folder)."""
    shown = [t for t in analysis.tracks if t.track_id in analysis.faces]
    written = {face_path(folder, t) for t in shown}
    earlier = sorted(p for p in folder.glob("person*_track*.jpg") if FACE_NAME.fullmatch(p.name) and p not in written)
    if earlier and not overwrite:
        more = f" and {len(earlier) - 1} more" if len(earlier) > 1 else ""
        raise OutputError(f"--faces {folder} holds faces this run does not write ({earlier[0].name}{more}), of an earlier "
                          "run on another video or with other options: use --overwrite to replace them, or name another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for track in shown:
            _write_whole(face_path(folder, track), analysis.faces[track.track_id])
        for stale in earlier:
            stale.unlink(missing_ok=True)
        if shown:
            decoded = {t.track_id: cv2.imdecode(np.frombuffer(analysis.faces[t.track_id], np.uint8), cv2.IMREAD_COLOR) for t in shown}
            sheet = contact_sheet(decoded, {t.track_id: t.person for t in shown})  # BGR throughout: OpenCV writes it
            # encoded here and written by Python: OpenCV's imwrite crashed the process on a folder
            # whose name is not UTF-8 (Latin-1, from an old archive)
            encoded, sheet_jpeg = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not encoded:
                raise OSError(f"OpenCV could not encode {folder / 'people.jpg'}")
            _write_whole(folder / "people.jpg", sheet_jpeg.tobytes())
    except OSError as exc:
        raise OutputError(f"cannot write the faces into {folder}: {exc.strerror or exc}") from exc


def _write_whole(path: Path, data: bytes) -> None:
    """``data`` into ``path``, named only once written whole: a full disk left half a JPEG under
    a face's name, which a later --tracks pick or a viewer took for the face."""
    with atomic_output(path) as temp:
        temp.write_bytes(data)


def provenance(restorer_name: str) -> str:
    """The note a restored file carries in its comment tag, so archives can tell restored faces from original ones."""
    return f"faces restored by vidrestore {__version__} with {restorer_name}"


def quality_check(src: Path, dst: Path, analysis: Analysis, tracks: list[Track], cfg: PipelineConfig,
                  progress: Progress | None = None) -> tuple[list[dict], list[str]]:
    """Per restored track: warping error, flicker and identity of the output and of the input
    (summaries only; `vidrestore eval video` gives the per-frame series and figures), and a note
    per track that flickers more than its input or drifts from the person."""
    if is_sequence(dst) and analysis.corrupt_packets:
        return [], ["no quality check: the output sequence has gaps where pictures of the input did not decode"]
    meters = measure_tracks(src, dst, tracks, cfg.face_size, deinterlace=analysis.deinterlace, progress=progress,
                            step=2 if doubles(analysis, cfg) else 1, left_out=left_out(analysis, cfg), light=analysis.light,
                            excerpt=analysis.excerpt)
    encoder = DlibIdentityEncoder()
    rows = [{k: v for k, v in meter.finish(encoder).items() if k != "per_frame"} for meter in meters]
    return rows, qa_alarms(rows)


# a restored face with under this share of its frame's noise, where the frame has at least NOISY
# 8-bit levels of it (at every scale together), looks pasted onto grainy footage
CLEANER, NOISY = 0.4, 2.0


def grain_note(noise: dict[int, list[tuple[float, float, float]]]) -> list[str]:
    """A note naming the tracks whose restored faces are much cleaner than their noisy frames (the
    median over each track's samples of :func:`~vidrestore.pipeline.restoring.face_noise`), with
    the remedy; none when there are none."""
    found = {}
    for track_id, samples in noise.items():
        if samples:
            before, after, _ = np.median(np.asarray(samples), 0)
            if before >= NOISY and after < CLEANER * before:
                found[track_id] = after / before
    if not found:
        return []
    share = f"{min(found.values()):.0%}" if len(found) == 1 else f"{min(found.values()):.0%}-{max(found.values()):.0%}"
    return [(f"the restored faces of track{'s' if len(found) > 1 else ''} {', '.join(map(str, sorted(found)))} kept {share} of the noise "
             "or grain of their frames: in grainy footage they can look pasted on, and --grain 1 puts the frames' grain back")]


# faces crops shrink this many times or more, in frames with under NOISY levels of noise, keep
# more of their own detail with a larger --keep-detail share (bench/detail.py)
DETAIL_SHRINK = 2.0


def detail_note(noise: dict[int, list[tuple[float, float, float]]], share: float) -> list[str]:
    """A note naming the tracks whose faces are much larger than the model's crop (the median over
    each track's samples of how many times the crop shrank them) in frames with little noise,
    where the faces kept only ``share`` (``keep_detail``, under 1) of the detail finer than the
    crop, with the remedy; none when there are none."""
    found = {}
    for track_id, samples in noise.items():
        if samples and share < 1:
            before, _, shrink = np.median(np.asarray(samples), 0)
            if shrink >= DETAIL_SHRINK and before < NOISY:
                found[track_id] = shrink
    if not found:
        return []
    times = f"{min(found.values()):.1f}" if len(found) == 1 else f"{min(found.values()):.1f}-{max(found.values()):.1f}"
    return [(f"the faces of track{'s' if len(found) > 1 else ''} {', '.join(map(str, sorted(found)))} are {times} times the "
             f"model's crop and their frames are clean: pasted back, the restored crop is enlarged and kept {share:.0%} of their "
             "fine detail, and --keep-detail 1 keeps all of it")]


PARSING_SHARE = 0.5  # face parsing over this share of pass 2's time is worth a note


def restoring_advice(noise: dict[int, list[tuple[float, float, float]]], parsing_s: float, restore_s: float,
                     cfg: PipelineConfig) -> list[str]:
    """The advice restoring gives: from the faces' noise before and after the paste
    (:func:`grain_note`, :func:`detail_note`), where the run did not settle it by an option, and
    from the seconds face parsing took of the ``restore_s`` of restoring (:func:`parsing_note`)."""
    return ((grain_note(noise) if not cfg.grain else []) + (detail_note(noise, cfg.keep_detail) if not cfg.measure_detail else [])
            + parsing_note(parsing_s, restore_s, cfg.parse_every))


def parsing_note(parsing_s: float, restore_s: float, every: int) -> list[str]:
    """A note when face parsing on every frame took most of pass 2 (``restore_s``), with the remedies."""
    if every > 1 or restore_s <= 0 or parsing_s < PARSING_SHARE * restore_s:
        return []
    return [(f"face parsing took {parsing_s:.0f} s of the {restore_s:.0f} s of restoring ({parsing_s / restore_s:.0%}): "
             "--parse-every 4 parses every 4th frame of a track and draws the masks between (about a third of the "
             "parsing), and --mask ellipse needs none")]


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
                 "monochrome": t.monochrome, "keep_detail": cfg.detail_of(t), "measured_detail": t.detail,
                 "quality_db": None if t.quality is None else round(t.quality, 2),
                 "face": str(face_path(Path(cfg.faces_dir), t)) if cfg.faces_dir and t.track_id in analysis.faces else None}
                for t in analysis.tracks],
        detector=analysis.detector, restorer=restorer_name, mask=mask, timings_s={k: round(v, 3) for k, v in timings.items()},
        people=people_of(analysis.tracks), light=analysis.light.value, grain=cfg.grain, keep_coarse=cfg.keep_coarse, keep_detail=cfg.keep_detail,
        measure_detail=cfg.measure_detail, measure_strength=cfg.measure_strength, strength=cfg.strength,
        excerpt=excerpt_shown(analysis, info), corrupt_packets=analysis.corrupt_packets, damaged_s=[round(t, 3) for t in analysis.damaged_s], notes=[*excerpt_note(analysis, info, dst), *decode_notes(analysis, info, "analysed" if dst is None else "restored" if selected else ""), *light_note(analysis, cfg, src), *monochrome_note(analysis), *small_faces_note(analysis, cfg), *not_faces_note(analysis), *strength_note(analysis, cfg), *aligned_hint(analysis, cfg, info),
               *unrestored_videos_note(src), *left_alone_notes(src), *notes])
