"""What a run is asked to do: :class:`PipelineConfig` (configs/pipeline.yaml, overridden by the
command line's flags), and the type of the progress callback the stages report to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av

from ..config import check_minimums, check_shares
from ..errors import ConfigError, UsageError
from ..faces.settings import DetectorConfig, PeopleConfig, TrackerConfig, strength_for
from ..faces.types import Track
from ..io import EncodeOptions, VideoInfo
from ..io.excerpt import Excerpt, parse_time
from ..io.linear import VIDEO_LIGHTS, Light, is_linear
from ..io.sequence import DEFAULT_RATE
from ..io.timecode import is_timecode
from ..shots import ShotConfig

LIGHTS = ("auto", *(light.value for light in Light))
GLUE_DEVICES = ("cpu", "model")

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
    # A restored face keeps the input's picture coarser than a Gaussian of this many frame pixels,
    # and at least 2 px of a 128 px crop (faces.paste.keep_coarse, coarse_sigmas): restoration
    # changes the finer detail, where blur, noise and compression are. 0: the restored crop is
    # taken whole (--keep-coarse PX).
    keep_coarse: float = 4.0
    # The share (0 to 1) of the frame's own detail finer than the model's crop that a pasted face
    # keeps (faces.paste.paste_faces(detail=...)): at 1 what restoration changed is added to the frame,
    # at 0 the restored crop is pasted as it is, enlarged (--keep-detail [SHARE|auto]).
    keep_detail: float = 0.25
    # Each track's share is measured instead (faces.detail: how much of that detail is still there
    # in the next frame, where noise is not); keep_detail is the share of tracks it cannot measure
    # (faces the crop hardly shrinks, faces the flow does not follow), and the most a face keeps
    # whose compression blocks are strong (faces.detail.block_cap). --keep-detail SHARE turns it off.
    measure_detail: bool = True
    fade_frames: int = 3  # restoration strength ramps in/out over this many frames where a face comes or goes within a shot
    segment_frames: int = 2000  # split pass 2 at cuts into segments of at least this many frames (0: one segment); a stopped run resumes at the first unfinished one
    # A video whose decoded frames fit in this many MiB is decoded once: pass 1 keeps its frames
    # for pass 2. Longer ones are decoded in each pass, so memory stays bounded (0: always twice).
    decode_once_mib: int = 256
    # Threads for the per-frame work around the model on the CPU (aligning crops, pasting them
    # back), each with one torch and one OpenCV thread; 0: by the machine's cores (glue_workers).
    glue_threads: int = 0
    # Where faces are cropped and pasted when the model runs on a GPU: cpu (on glue_threads, only
    # the crops travel to the GPU and back) or model (kornia's warps on the GPU, in order, the
    # whole frames uploaded). On an H100 with 16 host cores, the pass-through pipeline on CUDA
    # restored and encoded a 248-frame 388x512 clip in 1.18 s with the glue on the CPU and in 1.54 s
    # with it on the GPU (bench/pipeline.py --glue-device; docs/benchmarks.md, session 45).
    glue_device: str = "cpu"
    # Streams the output's container cannot hold (fonts in .mp4, PGS subtitles in .webm) stop the
    # run before any work unless this is set; then they are left out, and the report says which.
    # Subtitles it holds in another format (SRT or PGS in .mp4) are converted either way.
    drop_streams: bool = False
    # Sound those containers cannot hold (AAC in .webm, Vorbis in .mp4) is re-encoded with this
    # encoder instead (aac, libopus, flac, pcm_s24le...; "auto": the container's own, as FFmpeg
    # picks it); "": it is refused, or left out with drop_streams. Sound that fits is always copied.
    audio_codec: str = ""
    mask: str = "auto"  # paste mask: ellipse | parsing (ParseNet weights needed) | auto (parsing when weights are found)
    parsing_weights: str = ""  # ParseNet checkpoint; also VIDRESTORE_WEIGHTS_PARSENET_512 or the cache
    # Face parsing on every Nth frame of a track, the masks drawn between (faces.parsing.sparse_masks):
    # ParseNet takes about 3 s a face at 512 px on 2 CPU cores, several times what the model takes.
    parse_every: int = 1
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
    # Each person's strength from how damaged their faces are (faces.quality: full for damaged
    # faces, none for clean ones, FaceQualityNet's estimate between); strength is that of tracks
    # it cannot estimate, and what an estimate's strength is at most. --strength S turns it off.
    measure_strength: bool = True
    track_strength: tuple[tuple[int, float], ...] = ()
    person_strength: tuple[tuple[int, float], ...] = ()
    # Identity anchoring: a photo of the person (any size; its largest face is used) gives a track
    # its identity embedding instead of the track's own degraded frames; per track as (id, path),
    # per person as (person id, path).
    reference: str = ""
    track_references: tuple[tuple[int, str], ...] = ()
    person_references: tuple[tuple[int, str], ...] = ()
    # How much of the noise (film grain, sensor noise) a restored face lacks against its frame is
    # put back as it is pasted: 0 none (a clean face), 1 as much as the frame has there (faces.paste.grain_for).
    grain: float = 0.0
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
    # What the input's samples stand for (io.linear.Light): "auto", what its pictures' headers and tags
    # say; "display", "linear", "cineon" (printing density), "pq" or "hlg" (HDR video), "slog3",
    # "slog3-sgamut3", "slog2", "vlog", "logc3", "logc4", "applelog", "clog3", "clog2", "clog" or "dlog" (a camera's log video, which no tag names), whatever they say: a log scan whose DPX
    # headers say "user-defined" or nothing is "cineon".
    light: str = "auto"
    # A folder to write each track's best face to (as pass 1 saw it, aligned), named by person and
    # track, to tell who is who before choosing --tracks, --people, --strength or --reference.
    faces_dir: str = ""
    # Restore only an excerpt of the video: the frames shown from start to end, as times from its
    # first frame (90, 1:30 or 00:01:30.5) or as timecodes (01:00:10:12, counted from the one the
    # video states; pipeline.timing.in_seconds); "": from the first frame, to the last. The output
    # holds that excerpt alone, its sound and subtitles cut at the same times, and starts at 0.
    start: str = ""
    end: str = ""
    shots: ShotConfig = field(default_factory=ShotConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    people: PeopleConfig = field(default_factory=PeopleConfig)
    encode: EncodeOptions = field(default_factory=EncodeOptions)

    def __post_init__(self) -> None:
        check_minimums(self, batch_size=0, face_size=16, fade_frames=0, segment_frames=0, decode_once_mib=0, glue_threads=0, parse_every=1,
                       keep_coarse=0.0)
        check_shares(self, "strength", "grain", "keep_detail")
        for what, value in [*((f"strength of track {i}", v) for i, v in self.track_strength),
                            *((f"strength of person {i}", v) for i, v in self.person_strength)]:
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{what}: expected a value from 0 to 1, got {value}")
        if self.profile_fade and not (len(self.profile_fade) == 2 and 0 <= self.profile_fade[0] < self.profile_fade[1]):
            raise ConfigError(f"profile_fade: expected two turn ratios FULL < ZERO (e.g. 0.7, 1.4) or none, "
                              f"got {list(self.profile_fade)}")
        frames_per_second(self.frame_rate)  # a bad rate fails before any work
        if not any(is_timecode(text) for text in (self.start, self.end)):  # a timecode is read with the video
            _ = self.excerpt  # and so does a bad time
        if self.glue_device not in GLUE_DEVICES:
            raise ConfigError(f"glue_device: expected one of {', '.join(GLUE_DEVICES)}, got {self.glue_device!r}")
        if self.light not in LIGHTS:
            raise ConfigError(f"light: expected one of {', '.join(LIGHTS)}, got {self.light!r}")
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
    def excerpt(self) -> Excerpt | None:
        """The stretch of the video to restore (start, end), or None for all of it. A timecode must
        have been turned into seconds first (:func:`~vidrestore.pipeline.timing.in_seconds`)."""
        if not (self.start or self.end):
            return None
        times = []
        for what, text in (("start", self.start), ("end", self.end)):
            try:
                times.append(parse_time(text) if text else None)
            except ValueError:
                raise ConfigError(f"{what}: expected a time from the video's first frame, in seconds or on a clock "
                                  f"(90, 90.5, 1:30, 00:01:30.5), or a timecode (01:00:10:12), got {text!r}") from None
        try:
            return Excerpt(times[0] or Fraction(0), times[1])
        except ValueError as exc:
            raise ConfigError(f"start and end (--start, --end): {exc}") from None

    def light_of(self, info: VideoInfo) -> Light:
        """What the samples of the input ``info`` describes stand for: as this config says, else as
        the input does. Float samples are linear light whatever is said; YUV video is display-referred,
        HDR or a camera's log, and only RGB pictures take linear light or printing density."""
        if self.light == "auto" or Light(self.light) is info.light:
            return info.light
        wanted = Light(self.light)
        video = (Light.DISPLAY, *sorted(VIDEO_LIGHTS, key=lambda light: light.value))
        if is_linear(info.pix_fmt) or (wanted not in video and not av.VideoFormat(info.pix_fmt).is_rgb):
            kind = "an OpenEXR plate's or a float TIFF's float samples are linear light" if is_linear(info.pix_fmt) else \
                f"this input is {info.pix_fmt} (YUV), not RGB: it takes {' or '.join(light.value for light in video)}"
            raise UsageError(f"--light {self.light} is for RGB pictures (DPX, TIFF, PNG) whose headers do not say what "
                             f"their samples stand for; {kind}")
        return wanted

    @property
    def sequence_rate(self) -> Fraction:
        return frames_per_second(self.frame_rate)

    def detail_of(self, track: Track) -> float:
        """The share of the frame's detail finer than the crop that ``track``'s faces keep."""
        return track.detail if self.measure_detail and track.detail is not None else self.keep_detail

    def strength_of(self, track: Track) -> float:
        """The track's own strength, else its person's, else the one its estimated damage calls for
        (no more than everyone's), else everyone's."""
        measured = self.strength if not self.measure_strength or track.quality is None else \
            min(self.strength, strength_for(track.quality))
        return dict(self.track_strength).get(track.track_id, dict(self.person_strength).get(track.person, measured))

    def reference_of(self, track: Track) -> str:
        """The track's own reference photo, else its person's, else everyone's ("" for none)."""
        return dict(self.track_references).get(track.track_id, dict(self.person_references).get(track.person, self.reference))

    @property
    def photos(self) -> set[str]:
        """Every reference photo named."""
        return {self.reference, *(path for _, path in (*self.track_references, *self.person_references))} - {""}
