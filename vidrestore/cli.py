"""Command line: ``vidrestore IN OUT`` restores a video; subcommands for models, training, degradation.

Every ``VidrestoreError`` becomes one line on stderr and the exit code of its class.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from . import __version__, jsonio
from .errors import ConfigError, InputError, ModelError, OutputError, UsageError, VidrestoreError
from .statusline import StatusLine, eta_text, muted, printable
from .stopping import Stopped, raise_if_stopped, stops_cleanly_on_termination

if TYPE_CHECKING:
    import torch

    from .diffusion.settings import SamplerConfig
    from .options import RestoreOptions
    from .pipeline import PipelineConfig
    from .pipeline.report import Report

T = TypeVar("T")
_Config = TypeVar("_Config")

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: as a tool the signal ends
# --light's words (io.linear.Light's values), written out: importing it would import av and numpy before any argument is read
LIGHTS = "auto|display|linear|cineon|pq|hlg|slog3|slog3-sgamut3|slog2|vlog|logc3|logc4|applelog|clog3|clog2|clog|dlog"


def _device(name: str):
    from .models.precision import resolve_device

    return resolve_device(name)


def check_report_path(path: Path | None) -> None:
    """Refuse, before any work, a --json REPORT that could not be written when the work is done
    (None: no report; '-': stdout)."""
    if path is not None and str(path) != "-":
        check_writable(path, "--json", "the report")


def check_replaces_a_report(path: Path | None) -> None:
    """Refuse a --json REPORT that names a file holding no JSON report: a report is replaced each
    run, and so was a video named by a slip. (After :func:`check_written_apart`, which names the
    input or output it would be.)"""
    if path is not None and str(path) != "-" and path.is_file() and not _holds_json(path):
        raise OutputError(f"--json {path} is a file that holds no JSON report, which the report would replace; name another file")


def _holds_json(path: Path) -> bool:
    """Whether ``path`` is empty or starts as a JSON document does (a report of an earlier run)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
    except OSError:  # unreadable: writing it says what is wrong
        return True
    return not head or head[:1] in (b"{", b"[")


def check_writable(path: Path, option: str, what: str) -> None:
    """Refuse, before any work, a file (``what``, given as ``option``) that could not be written
    when the work is done: a pack's folder missing failed after all its faces were aligned."""
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name for {what}")
    if not path.parent.is_dir():
        raise OutputError(f"{option} {path}: its folder does not exist")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"{option} {path} cannot be written (permission denied)")


def check_written_apart(reads: dict[str, Path | None], writes: dict[str, Path | None]) -> None:
    """Refuse, before any work, a file the run writes (its report, preview, faces) under the name of
    a file it reads or writes: ``--json`` naming the input replaced the video with the report,
    ``--preview`` naming the output kept one of the two, and ``--faces`` naming it failed at the
    end with a traceback. Keys name each file for the message ("the input", "--json")."""
    seen = {_same_file_key(path): name for name, path in reads.items() if path is not None}
    for name, path in writes.items():
        if path is None or str(path) == "-":
            continue
        key = _same_file_key(path)
        if key in seen:
            raise UsageError(f"{name} {path} names {seen[key]}; give it a name of its own")
        seen[key] = f"the {name} file" if name.startswith("--") else name


def check_new(path: Path, overwrite: bool) -> None:
    """Refuse to replace the file ``path`` unless ``overwrite`` (a user's file of that name, or an
    earlier run's, was replaced without a word)."""
    if path.exists() and not overwrite:
        raise OutputError(f"output exists: {path} (use --overwrite to replace it)")


def _same_file_key(path: Path) -> Path:
    return Path(os.path.realpath(path))


def write_report(path: Path | None, text: str) -> None:
    """Write a JSON report to ``path``, or print it when ``path`` is None or '-' (stdout). A file is
    written whole, then named: a scheduler reading it as a run was killed found half a report. A
    path that is not a file (/dev/stdout, a named pipe) is written to as it is."""
    if path is None or str(path) == "-":
        print(text)
        return
    from .io.output import atomic_output

    try:
        if (path.exists() and not path.is_file()) or not path.parent.is_dir():  # the latter to fail naming why
            path.write_text(text + "\n")
            return
        with atomic_output(path) as temp:
            temp.write_text(text + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write the report {path} ({exc.strerror or exc})") from exc


class ProgressBar:
    """One line per stage on stderr: frames (or other ``unit``), faces, rate, ETA. Silent with --quiet.

    A stage first reports after its first batch of work, whose start it does not see, so the rate
    counts only what was done after that first report; until there is one, it shows "--"."""

    def __init__(self, quiet: bool, unit: str = "frames"):
        self.quiet, self.unit = quiet, unit
        self.stage, self.t0, self.done0, self.last = None, 0.0, 0, 0.0
        self.status = StatusLine()

    def __call__(self, stage: str, done: int, total: int, faces: int | None) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        if stage != self.stage:
            self.status.end()
            self.stage, self.t0, self.done0 = stage, now, done
        if now - self.last < 0.2 and done != total:
            return
        self.last = now
        self.status.show(f"{self.line(stage, done, total, faces, now)} ", now, settled=done == total)

    def line(self, stage: str, done: int, total: int, faces: int | None, now: float) -> str:
        elapsed = now - self.t0
        rate = (done - self.done0) / elapsed if elapsed > 0.5 and done > self.done0 else 0.0
        eta = eta_text(0 if total and done >= total else (total - done) / rate if total and rate else None)
        speed = f"{rate:5.1f}/s" if rate else "   --/s"
        counted = f"  faces {faces}" if faces is not None else ""
        return f"{stage:8s} {self.unit} {done}{f'/{total}' if total else ''}{counted}  {speed}  ETA {eta:>6s}"

    def close(self) -> None:
        self.status.end()


def _pixels(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a size in pixels, 0 or more, like 24; got {text!r}")
    return value


def _every(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of frames, 1 or more, like 2; got {text!r}")
    return value


def _local_path(text: str, role: str, error: type[VidrestoreError]) -> Path:
    """``text`` as a path; a file:// URL (copied from a browser or a file manager) as the local path
    it names. The ``role`` (input, output) a file on another machine would play is refused."""
    if text.lower().startswith("file://"):
        from urllib.parse import unquote_to_bytes, urlsplit

        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise error(f"the {role} {text} is a file on another machine ({parts.netloc}); vidrestore "
                        f"{'reads' if role == 'input' else 'writes'} local files")
        return Path(os.fsdecode(unquote_to_bytes(parts.path)))
    return Path(text)


def _input_path(text: str) -> Path:
    """The input as given, a file:// URL as the path it names (it was refused as a URL to download)."""
    return _local_path(text, "input", InputError)


def _written_here(text: str) -> str:
    """An output file or folder as given, a file:// URL as the path it names (a trailing slash
    kept); another URL is refused (it was written as a local folder named ``https:``)."""
    if text.lower().startswith("file://"):
        return os.fsdecode(_local_path(text, "output", OutputError)) + ("/" if text.endswith("/") else "")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]+://", text):
        raise OutputError(f"the output {text} is a URL: vidrestore writes local files; name one, and upload it from there")
    return text


def _output_folder(text: str) -> Path:
    return Path(_written_here(text))


def _output_path(text: str) -> Path:
    """The output as given (:func:`_written_here`); one written as a folder (a trailing slash) that
    does not exist is refused as such (the slash is lost in a Path, and the name was then taken for
    a file's without a type). Standard output ("-") is refused: an output is written whole, then named."""
    text = _written_here(text)
    if text == "-":
        raise OutputError("the output cannot be '-' (standard output): vidrestore writes its output whole before it "
                          "names it, so that no half-written file is ever left; name a file (out.mkv), and pipe it on from there")
    if text.endswith(("/", os.sep)) and not Path(text).is_dir():
        raise OutputError(f"output folder does not exist: {text} (create it, or name the output file)")
    return Path(text)


def _id_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ids separated by commas, like 0,3; got {text!r}") from None


Target = tuple[str, int] | None  # ("track", id), ("person", id), or None for every track


def _per_track(convert: Callable[[str], T], example: str) -> Callable[[str], tuple[Target, T]]:
    """A parser of "VALUE" (every track), "TRACK=VALUE" (one track) or "pPERSON=VALUE" (every
    track of one person) -> (target, value)."""
    def parse(text: str) -> tuple[Target, T]:
        key, sep, value = text.partition("=")
        key = key.strip()
        # a photo path may itself contain "="
        target = ("track", int(key)) if sep and key.isdigit() else \
            ("person", int(key[1:])) if sep and key[:1] in "pP" and key[1:].isdigit() else None
        try:
            return target, convert(value if target else text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {example}; got {text!r}") from None
    return parse


_PAIRS = {("strength", "track"): "track_strength", ("strength", "person"): "person_strength",
          ("reference", "track"): "track_references", ("reference", "person"): "person_references"}


def _apply_per_track(cfg: PipelineConfig, values: list | None, field: str) -> PipelineConfig:
    """``cfg`` with the values of a per-track option applied: without a target to ``field``, with
    one to that track's or person's pair (a later value for the same target wins)."""
    for target, value in values or []:
        if target is None:
            cfg = dataclasses.replace(cfg, **{field: value})
        else:
            pairs = _PAIRS[field, target[0]]
            kept = tuple((i, v) for i, v in getattr(cfg, pairs) if i != target[1])
            cfg = dataclasses.replace(cfg, **{pairs: (*kept, (target[1], value))})
    return cfg


def _strength(text: str) -> float | str:
    return "auto" if text == "auto" else float(text)


def _profile_fade(text: str) -> tuple[float, ...]:
    if text == "off":
        return ()
    try:
        full, zero = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FULL,ZERO like 0.7,1.4 or off, got {text!r}") from None
    return full, zero


def _detail_share(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1 or auto, got {text!r}") from None


def add_restore_options(p: argparse.ArgumentParser) -> None:
    """The options that decide how a video is restored: shared by the single-file and batch commands."""
    p.add_argument("--model", default="flipnet-small", help="zoo name, a .safetensors path, or 'none' (pass-through, for debugging)")
    p.add_argument("--restorer", dest="model", help=argparse.SUPPRESS)
    p.add_argument("--preset", default="fast", help="sampling preset: fast (default; best measured with flipnet-small), balanced, quality, or a YAML path")
    p.add_argument("--config", help="pipeline YAML (see configs/pipeline.yaml); flags below override it")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="precision of the networks' convolutions and matrix products (FLIPNET's and the face "
                   "parser's; auto: bf16 on CUDA and on CPUs that multiply in it, AMX or AVX-512 BF16, where FLIPNET ran 1.5 to 2.3 "
                   "times as fast as in fp32; fp32 on other CPUs; a stopped run continued elsewhere keeps its first precision)")
    p.add_argument("--batch-size", type=int, help="frames per restoration batch (bounds memory; default 16 on the CPU, "
                   "up to 64 on a GPU)")
    p.add_argument("--compile", nargs="?", const="inductor", default="", metavar="BACKEND",
                   help="torch.compile the network (default backend inductor). Compiling takes minutes; its gain was 4.5%% "
                        "on a 2-core CPU and is not yet measured on a GPU (docs/benchmarks.md)")
    p.add_argument("--face-size", type=int, choices=[128, 256, 512], help="aligned crop size (default: the model's)")
    p.add_argument("--detector", choices=["auto", "retinaface", "dlib"], help="face detector (auto: RetinaFace if its weights are found)")
    p.add_argument("--detector-weights", help="RetinaFace checkpoint (.pth); also VIDRESTORE_WEIGHTS_RETINAFACE_MOBILENET0_25")
    p.add_argument("--aligned", action="store_true", default=None,
                   help="the frames are already aligned face crops (as KEEP's and VFHQ's test clips): no detection, each shot restored whole")
    p.add_argument("--detect-every", type=int, help="run the detector every k frames (default 4); optical flow follows the faces in between")
    p.add_argument("--min-face", type=_pixels, metavar="PX",
                   help="leave alone faces whose median box side is under PX pixels (default 32): a tiny face "
                        "upscaled to the model's crop gets invented detail; the report counts them")
    p.add_argument("--mask", choices=["auto", "ellipse", "parsing"], help="paste mask (auto: face parsing when ParseNet weights are found)")
    p.add_argument("--parsing-weights", help="ParseNet checkpoint (facexlib's parsing_parsenet.pth); also VIDRESTORE_WEIGHTS_PARSENET_512")
    p.add_argument("--keep-detail", type=_detail_share, nargs="?", const=1.0, metavar="SHARE|auto",
                   help="keep SHARE (0-1; 1 when not given) of the frame's own detail finer than the model's crop: at 1, paste "
                        "what restoration changed instead of the restored crop (a face larger than the crop is otherwise the crop "
                        "enlarged); a share under 1 keeps less of a noisy frame's noise; 0: the restored crop as it is. Default "
                        "auto: each track's share is measured (how much of that detail the next frame shows again, which noise "
                        "does not), 0.25 where it cannot be; the more compression blocks show, the less is kept (at most 0.25 where they are strong)")
    p.add_argument("--keep-coarse", type=_pixels, metavar="PX",
                   help="restored faces keep the input's picture coarser than a Gaussian of PX pixels of the frame "
                        "(default 4; at least 2 px of a 128 px crop): restoration changes the finer detail, where "
                        "blur, noise and compression are, and not the face's shapes and shading. 0: the restored crop whole")
    p.add_argument("--parse-every", type=int, metavar="N",
                   help="with face parsing, parse every Nth frame of a track and draw the masks between (default 1: every frame; "
                        "ParseNet takes seconds a face on a CPU)")
    p.add_argument("--deinterlace", choices=["auto", "on", "ivtc", "off"],
                   help="interlaced input (auto: telecined film is field-matched, other interlaced video, declared or "
                        "found by idet, deinterlaced with bwdif; on: always bwdif; ivtc: always field matching; off: keep the fields)")
    p.add_argument("--keep-fields", action="store_true", default=None,
                   help="write deinterlaced input back interlaced: faces are restored at the field rate (twice the model's "
                        "work) and pasted into the input's own fields; the rest of every frame keeps both its fields (a broadcast master)")
    p.add_argument("--double-rate", action="store_true", default=None,
                   help="write deinterlaced input at the field rate: a progressive frame for each field (50p from 50i, "
                        "59.94p from 59.94i), each with the face it showed (twice the model's work); telecined film, "
                        "rebuilt whole by field matching, keeps its rate")
    p.add_argument("--decimate", action="store_true", default=None,
                   help="write telecined film at its own rate: of each 5 field-matched frames, the one that repeats a film "
                        "frame is left out (23.976 fps from 29.97, inverse telecine as FFmpeg's decimate does); other video keeps its rate")
    p.add_argument("--hybrid", action="store_true", default=None,
                   help="with --decimate, for film mixed with video shot at the video rate (titles, effects): a cycle of 5 "
                        "frames in which no frame repeats keeps all of them at their own times, and the frame rate varies; "
                        "video with fields is field-matched even where the stretches scanned look like video")
    p.add_argument("--tracks", type=_id_list, metavar="IDS", help="restore only these face tracks, e.g. 0,3 (ids from a --dry-run report)")
    p.add_argument("--faces", metavar="DIR", help="write each track's best face into DIR as person0000_track0003.jpg (numbered as the report's ids), and "
                   "people.jpg, a row per person, to tell who is who (with --dry-run, before choosing --tracks, --people, "
                   "--strength or --reference)")
    p.add_argument("--people", type=_id_list, metavar="IDS",
                   help="restore only the tracks of these people, in every shot, e.g. 0 (a track's 'person' in a --dry-run report); "
                        "with --tracks, those tracks too")
    p.add_argument("--strength", type=_per_track(_strength, "auto, a strength like 0.6, TRACK=STRENGTH like 3=0.4 or pPERSON=STRENGTH like p0=0.4"),
                   action="append", metavar="auto|[TRACK=|pPERSON=]S",
                   help="how much of the restored face replaces the original, 0-1 (default auto: each person's from how damaged "
                        "their faces look, full for damaged faces, none for clean ones); S for every track; TRACK=S for one track, "
                        "pPERSON=S for every track of a person (ids from --dry-run; a track's own wins); repeatable, "
                        "e.g. --strength 0.7 --strength p0=1 --strength 3=0.4")
    p.add_argument("--reference", type=_per_track(str, "PHOTO, TRACK=PHOTO or pPERSON=PHOTO"), action="append",
                   metavar="[TRACK=|pPERSON=]PHOTO",
                   help="a photo of the person: the track takes its identity from it instead of its own degraded frames; "
                        "TRACK=PHOTO for one track, pPERSON=PHOTO for every track of a person; repeatable")
    p.add_argument("--grain", type=float, metavar="G",
                   help="put back G (0-1) of the noise or film grain a restored face lacks against its frame, so that "
                        "it does not look pasted onto grainy footage (default 0: clean faces; 1: as much as the frame has)")
    p.add_argument("--profile-fade", type=_profile_fade, metavar="FULL,ZERO|off",
                   help="fade the restored face back to the original as the head turns: full strength up to turn ratio "
                        "FULL, none from ZERO (default 0.7,1.4: about 35 and 55 degrees of yaw); off pastes every pose")
    p.add_argument("--frame-rate", metavar="FPS",
                   help="the rate an image sequence's pictures are played at, e.g. 24 or 24000/1001 (default: the rate "
                        "DPX headers state, else 25 as FFmpeg): it times a video made from them, and --start and --end; a video "
                        "keeps its own timing")
    p.add_argument("--light", metavar=LIGHTS,
                   help="what the input's samples stand for (default auto: what its headers and tags say, or a Sony camera's settings file beside it, C0001M01.XML for C0001.MP4): cineon for a log film "
                        "scan (printing density) whose DPX headers do not say so, linear for linear-light RGB pictures, "
                        "pq or hlg for HDR video that is not tagged so, slog3 (Sony S-Log3, S-Gamut3.Cine; slog3-sgamut3 in S-Gamut3), slog2 (Sony "
                        "S-Log2, S-Gamut), vlog (Panasonic V-Log), logc3 (ARRI LogC3, EI 800), logc4 (ARRI LogC4), applelog "
                        "(Apple Log), clog3 (Canon Log 3, Cinema Gamut), clog2 (Canon Log 2, Cinema Gamut), clog (Canon Log, "
                        "Rec. 709) or dlog (DJI D-Log, D-Gamut) for a "
                        "camera's log video, display for pictures "
                        "encoded for an SDR screen; "
                        "the faces are restored on an SDR (sRGB) view and written back")
    p.add_argument("--start", metavar="TIME",
                   help="restore only from this time on (seconds or a clock's time from the video's first frame: 90, 1:30, "
                        "00:01:30.5; or a source timecode, 01:00:10:12, counted from the one the video states): the output is the excerpt alone, its sound and subtitles cut at the same times, "
                        "starting at 0; for trying settings on a short stretch of a long film")
    p.add_argument("--end", metavar="TIME", help="restore only up to this time (the frame shown at TIME is left out); see --start")
    p.add_argument("--drop-streams", action="store_true", default=None,
                   help="leave out the streams the output's container cannot hold (e.g. fonts in .mp4, PGS subtitles in "
                        ".webm) instead of stopping; the report names them (subtitles it holds in another format, SRT or "
                        "PGS in .mp4, are converted without it)")
    p.add_argument("--audio-codec", metavar="CODEC",
                   help="re-encode the sound the output's container cannot hold (AAC in .webm, Vorbis in .mp4) with "
                        "this encoder (aac, libopus, flac, pcm_s24le ...; auto: lossless sound as FLAC or PCM where the "
                        "container holds them, other sound with the container's own encoder, Opus for .webm, AAC for .mp4); "
                        "sound that fits is always copied as it is")
    p.add_argument("--segment-frames", type=int, metavar="N",
                   help="restore in segments of at least N frames (default 2000; 0: one segment), cut at shot changes "
                        "or inside long takes; a stopped or killed run keeps its finished segments and the same command "
                        "continues from them")
    p.add_argument("--codec", help="video encoder (libx264, libx265, libvpx-vp9, ffv1, prores_ks ...; default auto: libx264, "
                   "or what the output's container holds: libvpx-vp9 for .webm, png/mjpeg/tiff for a picture)")
    p.add_argument("--crf", type=int, help="quality for x264/x265 (lower is better)")
    p.add_argument("--x264-preset", dest="enc_preset", help="encoder speed preset (x264/x265)")
    p.add_argument("--pix-fmt", help="output pixel format (auto: the input's)")
    p.add_argument("--seed", type=int, help="sampling seed")
    p.add_argument("--no-temporal", action="store_true", help="no flow warping between frames (noise is still shared per track)")
    p.add_argument("--restore-every", type=_every, default=1, metavar="N",
                   help="run the model on every Nth frame of a track (and the last of each batch) and carry what it "
                        "changed to the frames between along optical flow: about N times less model time "
                        "(default 1: every frame; docs/benchmarks.md measures 2 and 4)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--json", type=Path, metavar="REPORT", help="write the JSON report here ('-' for stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--reanalyse", action="store_true",
                   help="analyse each video again rather than take the shots, faces and tracks an earlier run (or --dry-run) "
                        "of it kept with the same detection options (kept under $VIDRESTORE_CACHE, else $XDG_CACHE_HOME/vidrestore or ~/.cache/vidrestore)")


def build_restore_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vidrestore",
        description="Restore the faces in a video with FLIPNET. Audio, subtitles, timestamps and metadata are kept.",
        epilog="Other commands: vidrestore batch | vidrestore models {list,pull,verify,info} | vidrestore train {pack,run,export,quality} | "
               "vidrestore degrade | vidrestore eval {images,noref,video} | vidrestore sample | vidrestore analyses {list,clear}. "
               "Exit codes: 2 usage, 3 input, 4 output, 5 model, 6 config, 130 interrupted (Ctrl-C), 141 its output's reader gone "
               "(| head), 143 stopped by SIGTERM.")
    p.add_argument("input", type=_input_path, help="video, picture or image sequence to restore (a sequence as FFmpeg names one: "
                   "scan/r_%%06d.dpx, read from its lowest number), or - for a video piped in")
    p.add_argument("output", type=_output_path, nargs="?",
                   help="where to write the restored video (or picture, or sequence: out/r_%%06d.png, which keeps the "
                        "input sequence's numbers), or a folder to write it into under the input's name (not needed with --dry-run)")
    add_restore_options(p)
    p.add_argument("--preview", type=Path, metavar="PATH",
                   help="also write a side-by-side (input | restored) video here, with the input's sound and subtitles "
                        "(the video is then restored as one segment)")
    p.add_argument("--qa", action="store_true",
                   help="then measure each restored track against the input (warping error, flicker, identity; in the "
                        "--json report) and warn about tracks that flicker more or drift from the person's identity")
    p.add_argument("--dry-run", action="store_true", help="detect and track only; print the report")
    add_run_options(p)
    p.add_argument("--version", action="version", version=f"vidrestore {__version__}")
    return p


_FLAGS_NAMED_APART = {"enc_preset": "--x264-preset"}  # dests that are not the flag's name


@contextlib.contextmanager
def _named_as_flag(field: str, dest: str) -> Iterator[None]:
    """Turn the config's refusal of ``field``, set from the flag that stores ``dest``, into that
    flag's usage error (exit 2), named as it was typed: "--grain: expected a value from 0 to 1"
    where the command line said --grain 2, not "grain: ..." and the exit of a broken YAML file."""
    try:
        yield
    except ConfigError as exc:
        message = str(exc)
        if not message.startswith((f"{field}:", f"{field} of ")):
            raise  # two fields that exclude each other: the message names both flags
        flag = _FLAGS_NAMED_APART.get(dest, "--" + dest.replace("_", "-"))
        raise UsageError(flag + message.removeprefix(field)) from None


def _set_by_flags(config: _Config, args: argparse.Namespace, **dests: str) -> _Config:
    """``config`` with each field named set to the value of the flag that stores the ``dests``
    given for it, where the flag was given."""
    for field, dest in dests.items():
        value = getattr(args, dest)
        if value is not None:
            with _named_as_flag(field, dest):
                config = dataclasses.replace(config, **{field: value})
    return config


def pipeline_config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The ``PipelineConfig`` of parsed restore options (see :func:`add_restore_options`): its YAML
    file's, with the options given over it. Read without torch (:mod:`vidrestore.pipeline.checks`)."""
    from .config import CONFIG_DIR, load_yaml
    from .pipeline.config import PipelineConfig

    cfg = load_yaml(PipelineConfig, args.config or CONFIG_DIR / "pipeline.yaml")
    det = cfg.detector
    if args.detector:
        det = dataclasses.replace(det, backend=args.detector)
    if args.detector_weights:
        det = dataclasses.replace(det, weights=str(args.detector_weights))
    cfg = dataclasses.replace(cfg, detector=det,
                              tracker=_set_by_flags(cfg.tracker, args, detect_every="detect_every", min_face_size="min_face"),
                              encode=_set_by_flags(cfg.encode, args, codec="codec", crf="crf", preset="enc_preset", pix_fmt="pix_fmt"))
    cfg = _set_by_flags(cfg, args, batch_size="batch_size", face_size="face_size", segment_frames="segment_frames", mask="mask",
                        parsing_weights="parsing_weights", parse_every="parse_every", only_tracks="tracks", only_people="people",
                        deinterlace="deinterlace", profile_fade="profile_fade", grain="grain", keep_coarse="keep_coarse",
                        drop_streams="drop_streams", keep_fields="keep_fields", double_rate="double_rate", decimate="decimate",
                        hybrid="hybrid", faces_dir="faces", aligned="aligned", frame_rate="frame_rate", light="light",
                        start="start", end="end", audio_codec="audio_codec")
    if args.keep_detail is not None:  # a share given is used as given; auto measures each track's
        with _named_as_flag("keep_detail", "keep_detail"):
            cfg = dataclasses.replace(cfg, measure_detail=args.keep_detail == "auto",
                                      **({} if args.keep_detail == "auto" else {"keep_detail": args.keep_detail}))
    strengths = args.strength or []
    if any(value == "auto" for target, value in strengths if target is not None):
        raise UsageError("--strength auto is for every track at once; give one track or person a number (3=0.4, p0=1)")
    everyone = [value for target, value in strengths if target is None]
    if everyone:  # the last strength for every track decides: auto turns the estimate on, a number off
        cfg = dataclasses.replace(cfg, measure_strength=everyone[-1] == "auto")
    with _named_as_flag("strength", "strength"):
        cfg = _apply_per_track(cfg, [(target, value) for target, value in strengths if value != "auto"], "strength")
    return _apply_per_track(cfg, args.reference, "reference")


def sampler_config_from_args(args: argparse.Namespace) -> SamplerConfig:
    """The sampling preset of parsed restore options, with their ``--seed``. Read without torch."""
    from .config import resolve_config
    from .diffusion.settings import SamplerConfig

    sampler = resolve_config(SamplerConfig, "presets", args.preset)
    return sampler if args.seed is None else dataclasses.replace(sampler, seed=args.seed)


def options_from_args(args: argparse.Namespace) -> RestoreOptions:
    """``RestoreOptions`` from parsed restore options (see :func:`add_restore_options`)."""
    from .options import RestoreOptions

    return RestoreOptions(pipeline_config_from_args(args), sampler_config_from_args(args), str(args.model), args.dtype,
                          temporal=not args.no_temporal, compile=args.compile, restore_every=args.restore_every)


def cmd_restore(argv: list[str]) -> int:
    args = build_restore_parser().parse_args(argv)
    check_report_path(args.json)
    if args.output is None and not args.dry_run:
        raise UsageError("give an output path, or --dry-run to only detect and track")
    if args.output is not None and args.output.is_dir():  # as cp does
        from .io.piped import is_piped

        if is_piped(args.input):  # standard input or a pipe
            raise UsageError(f"{args.output} is a folder, and a video piped in has no name to give the output there: name the output file")
        args.output = args.output / args.input.name
    check_written_apart({"the input": args.input, "the output": args.output},
                        {"--preview": args.preview, "--json": args.json, "--faces": Path(args.faces) if args.faces else None})
    check_replaces_a_report(args.json)
    try:
        _check_before_loading(args)
        device = _device(args.device)
        options = options_from_args(args)
        report = _restored(args, options, device)
    except (KeyboardInterrupt, VidrestoreError) as exc:
        if args.json is not None:  # a scheduler reading reports learns why there is no output
            line, code = ending(exc)
            with contextlib.suppress(VidrestoreError):  # the run's own error is the one to report
                write_report(args.json, jsonio.dumps({"input": str(args.input), "output": str(args.output) if args.output else None,
                                                      "status": "stopped" if isinstance(exc, KeyboardInterrupt) else "failed",
                                                      "error": line.removeprefix("error: "), "exit_code": code}, indent=2))
        raise
    text = report.to_json()
    if args.json is not None:
        write_report(args.json, text)
    if not args.quiet:
        print(printable(_run_summary(report, args)), file=sys.stderr)
        for row in report.qa or []:
            print(qa_line(row), file=sys.stderr)
        for note in report.notes:
            print(printable(f"note: {note}"), file=sys.stderr)
        if args.dry_run and args.json is None:
            print(text)
    return 0


def _check_before_loading(args: argparse.Namespace) -> None:
    """Refuse before torch is imported what needs no torch to refuse: a missing input, one that is
    no video, an output that cannot be written, options the input or the output cannot take (an
    encoder FFmpeg lacks, a --crf it refuses, sound the container cannot hold:
    :func:`~vidrestore.pipeline.checks.checked`), a sampling preset, a model or weights not found.
    Each took 3 to 5 s to be told, after every import. A video piped in is there once the pipe is read: until then,
    only the outputs' encoders are checked. The probe is kept for the run."""
    from .faces.weights import checked_weights, parsing_weights
    from .io.encoders import check_encoder
    from .io.paths import check_input, check_output_path
    from .io.piped import is_piped
    from .io.probe import probe
    from .io.restarts import may_start_over
    from .pipeline.checks import checked

    piped = is_piped(args.input)
    if not piped:
        check_input(args.input)
        probe(args.input)
    outputs = [output for output in (args.output, args.preview) if output is not None]
    for output in outputs:
        check_output_path(args.input, output, args.overwrite)
    cfg = pipeline_config_from_args(args)
    sampler_config_from_args(args)
    check_model(str(args.model))
    checked_weights(cfg.detector)
    if not args.dry_run:  # which draws no mask
        parsing_weights(cfg.mask, cfg.parsing_weights, cfg.aligned)
    if piped:  # a wrong name is told before a whole video has come through the pipe
        for output in outputs:
            check_encoder(cfg.encode, output)
    else:
        checked(args.input, args.output, cfg, args.preview, length_known=not may_start_over(args.input))


def check_model(name: str) -> None:
    """Refuse a model that is not found, or a file that is no FLIPNET checkpoint, from its header
    alone (no torch, no network: :func:`~vidrestore.models.flipnet_config.flipnet_checkpoint`)."""
    from .models.flipnet_config import flipnet_checkpoint

    if name != "none":
        flipnet_checkpoint(name)


def _restored(args: argparse.Namespace, options: RestoreOptions, device: torch.device) -> Report:
    """Run the restore command's work; a stop or a failure to write that keeps finished segments says so."""
    from .options import build_restorer, pinned_precision
    from .pipeline import run
    from .pipeline.analysis_store import AnalysisStore
    from .resume import SegmentLedger

    ledger = None
    bar = ProgressBar(args.quiet)
    try:
        with _read_once(args) as (source, digest):
            fingerprint = options.fingerprint_for(source, f"piped:{digest}" if digest else None)
            ledger = SegmentLedger(args.output, fingerprint) if args.output is not None else None
            restorer = functools.partial(build_restorer, pinned_precision(options, device, ledger), device, dry_run=args.dry_run)
            # what was piped in is named by its digest: the next run holds another copy
            analyses = AnalysisStore.default(read=not args.reanalyse, piped=digest or "")
            report = run(source, args.output, options.pipeline, restorer, device, overwrite=args.overwrite,
                         dry_run=args.dry_run, progress=bar, preview=args.preview, qa=args.qa, resume=fingerprint,
                         analyses=analyses)
            return dataclasses.replace(report, input=str(args.input))
    except (KeyboardInterrupt, OutputError) as exc:
        kept = len(ledger.finished()) if ledger is not None else 0
        if kept:
            exc.add_note(f"{kept} finished segment{' was' if kept == 1 else 's were'} kept beside the output: "
                         f"the same command continues from {'it' if kept == 1 else 'them'}")
        raise
    finally:
        bar.close()


@contextlib.contextmanager
def _read_once(args: argparse.Namespace) -> Iterator[tuple[Path, str | None]]:
    """The file to read as the input, and what tells its content where its name cannot: the input
    itself and None; or, for a video piped in ("-", or a named pipe), a copy held while the run
    lasts and its SHA-256 (:mod:`~vidrestore.io.piped`)."""
    from .io.piped import is_piped, pipe_name, spooled

    if not is_piped(args.input):
        yield args.input, None
        return
    from .io.output import writing

    bar = ProgressBar(args.quiet, unit="MiB")
    held = args.output if not args.dry_run else None  # a dry run's copy goes to the temporary folder
    try:
        # held from here: another run piping into the same output would remove this one's copy
        with writing(held) if held is not None else contextlib.nullcontext(), _pipe_of(args.input) as stream, \
                spooled(stream, held, lambda mib: bar("piped in", mib, 0, None), pipe_name(args.input)) as spool:
            bar.close()
            try:
                yield spool.path, spool.digest
            except VidrestoreError as exc:  # it names the video as the user gave it, not the copy read
                for copy in {str(spool.path), str(spool.path.resolve())}:
                    exc.args = tuple(a.replace(copy, "the video piped in") if isinstance(a, str) else a for a in exc.args)
                raise
    finally:
        bar.close()


@contextlib.contextmanager
def _pipe_of(source: Path) -> Iterator[BinaryIO | None]:
    """The stream the pipe ``source`` names: standard input's for "-" (None where it is closed), or
    the named pipe opened (it waits there for a writer, as any reader of a FIFO does)."""
    if str(source) == "-":
        yield sys.stdin.buffer if sys.stdin is not None else None
        return
    try:
        stream = open(source, "rb")  # noqa: SIM115 - closed below, after the spool read it
    except OSError as exc:
        raise InputError(f"cannot read the pipe {source} ({exc.strerror or exc})") from exc
    with stream:
        yield stream


def _run_summary(report: Report, args: argparse.Namespace) -> str:
    """The line a run ends with; a photo's in a photo's words (it was "1 frame, 1 shot, 1 face
    track ... video mjpeg")."""
    from .io.photo import is_photo

    if is_photo(report.input):
        what, written = f"{_counted(len(report.tracks), 'face')}{_of_people(report.tracks)}", "picture"
    else:
        what = (f"{_counted(report.frames_in, 'frame')}, {_counted(len(report.shots), 'shot')}, "
                f"{_counted(len(report.tracks), 'face track')}{_of_people(report.tracks)}")
        written = "video"
    summary = (f"{what}; detector {report.detector}; restorer {report.restorer}; mask {report.mask}; "
               f"{written} {report.encoder or 'copied'}; {report.timings_s['total']:.1f}s")
    return summary if args.dry_run or args.output is None else f"wrote {report.output}: {summary}"


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _of_people(tracks: list[dict]) -> str:
    """" of 2 people" where some tracks show one person; nothing where each shows another."""
    people = len({t["person"] for t in tracks})
    return "" if people == len(tracks) else f" of {people} {'person' if people == 1 else 'people'}"


def qa_line(row: dict) -> str:
    """One track's --qa figures, restored against input ("n/a" where undefined: one frame has no step)."""
    before, after = row["input"], row["restored"]

    def value(v: float | None, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)
    return (f"qa: track {row['id']} ({_counted(row['frames_evaluated'], 'frame')}): warping error {value(after['warping_error'], '.4f')} "
            f"(input {value(before['warping_error'], '.4f')}), flicker ratio {value(row['flicker_ratio'], '.2f')}, lowest identity "
            f"cosine to the input {value(after['identity_to_input_min'], '.3f')} (input's own {value(before['identity_to_input_min'], '.3f')})")


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def build_batch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vidrestore batch",
        description="Restore many videos (or pictures) into one folder, the subfolders of a folder given kept below it. Re-running the same command resumes: finished items are skipped, "
                    "failed ones retried. State: OUT/vidrestore-batch.sqlite.",
        epilog="Manifests (.csv with a header, or .json list): 'input', optional 'output' (relative to --out) and any "
               "option below by name, e.g. input,preset,seed. Exit codes: 0 all done, 1 some items failed, 2 usage, 130 interrupted (Ctrl-C), 143 stopped by SIGTERM.")
    p.add_argument("inputs", nargs="+", type=lambda text: str(_input_path(text)),
                   help="videos, pictures, image sequences, folders (searched for all three), globs ('clips/**/*.mov') "
                        "or manifests (.csv/.json)")
    p.add_argument("--out", type=_output_folder, required=True, help="output folder (created if missing)")
    p.add_argument("--retries", type=int, default=2, help="retry a failed item up to this many times, across re-runs (default 2)")
    p.add_argument("--ray", action="store_true", help="run on Ray (a local Ray instance unless --ray-address is given)")
    p.add_argument("--ray-address", help="join a Ray cluster: auto or HOST:PORT (implies --ray)")
    p.add_argument("--workers", type=int, help="restorer workers under Ray (default: one per GPU, 1 without GPUs)")
    p.add_argument("--qa", action="store_true",
                   help="measure each item's restored tracks against its input once written (in the --json report) and "
                        "list tracks that flicker more or drift from the person's identity; items skipped as done are not measured")
    p.add_argument("--previews", type=_output_folder, metavar="DIR",
                   help="also write each item's side-by-side (input | restored) video into DIR, at its output's place below "
                        "--out; each item is then restored as one segment (no image sequence has one)")
    add_restore_options(p)
    add_run_options(p)
    return p


def _item_parser(args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of an item's own options (a manifest's columns), the batch's as its defaults."""
    parser = _RaisingParser(add_help=False)
    add_restore_options(parser)
    parser.set_defaults(**{k: v for k, v in vars(args).items() if k != "inputs"})
    return parser


def check_batch_options(args: argparse.Namespace) -> None:
    """Refuse, before any item, the batch's own options that every item would fail on: a config,
    model, detector or parsing weights not found, a reference photo that cannot be read or shows no face, an encoder FFmpeg
    does not have or settings it does not take. Each item failed
    on them, its attempt counted, so that after two runs with a typo the batch gave up on them all.
    The configs, the model, the weights, the encoder and whether the photos can be read are checked
    before torch is imported (:func:`_check_before_loading`)."""
    from .faces.weights import checked_weights, parsing_weights
    from .io.encoders import check_encoder
    from .io.photo import opened_reference

    item_args = _item_parser(args).parse_args([])
    cfg = pipeline_config_from_args(item_args)
    sampler_config_from_args(item_args)
    check_model(str(item_args.model))  # found and its header read, not loaded
    checked_weights(cfg.detector)
    parsing_weights(cfg.mask, cfg.parsing_weights, cfg.aligned)
    if cfg.encode.codec != "auto":  # auto's encoder, and what it takes, is each output's own
        check_encoder(cfg.encode)
    for photo in sorted(cfg.photos):
        with opened_reference(photo):
            pass
    import torch

    from .faces.detect import create_detector
    from .pipeline.analysis import reference_crop

    if cfg.photos:  # each read, and a face found in it, as each item does
        detector = create_detector(cfg.detector, torch.device("cpu"))
        for photo in sorted(cfg.photos):
            reference_crop(photo, detector, cfg.face_size)


def _batch_items(args: argparse.Namespace, pairs: list, state, max_attempts: int):
    """(items to run, report rows of items skipped or refused before running), of the inputs and
    their outputs ``pairs``."""
    from .batch.runner import one_line
    from .batch.worker import Item
    from .io.sequence import exists

    item_parser = _item_parser(args)
    todo, skipped = [], []
    for spec, out in pairs:
        try:
            options = options_from_args(item_parser.parse_args(list(spec.flags)))
        except VidrestoreError as exc:
            skipped.append({"input": str(spec.input), "output": str(out), "status": "failed", "error": one_line(exc)})
            continue
        fingerprint = options.fingerprint_for(spec.input)
        if options.pipeline.faces_dir:  # each item's faces in a folder of their own, at its output's place
            faces = str(Path(options.pipeline.faces_dir) / _below(out, args.out))
            options = dataclasses.replace(options, pipeline=dataclasses.replace(options.pipeline, faces_dir=faces))
        row = state.get(out)
        if row and row.status == "done" and row.fingerprint == fingerprint and exists(out):
            skipped.append({**_item_report(row, spec.input, out), "skipped": True})
            continue
        if exists(out) and row is None and not args.overwrite:
            skipped.append({"input": str(spec.input), "output": str(out), "status": "failed",
                            "error": f"output exists and is not from this batch: {out} (use --overwrite to replace it)"})
            continue
        row = state.register(out, spec.input, fingerprint, options.model)
        if row.status == "failed" and row.attempts >= max_attempts:
            skipped.append({"input": str(spec.input), "output": str(out), "status": "failed", "skipped": True,
                            "error": f"{row.error} (gave up after {row.attempts} attempts)"})
            continue
        try:
            out.parent.mkdir(parents=True, exist_ok=True)  # an image sequence's own folder, a manifest's subfolder
        except OSError as exc:
            skipped.append({"input": str(spec.input), "output": str(out), "status": "failed",
                            "error": f"cannot create output folder {out.parent} ({exc.strerror})"})
            continue
        preview = _preview_of(out, args)
        try:
            if preview is not None:
                preview.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            skipped.append({"input": str(spec.input), "output": str(out), "status": "failed",
                            "error": f"cannot create preview folder {preview.parent} ({exc.strerror})"})
            continue
        todo.append(Item(spec.input, out, options, fingerprint, qa=args.qa, reanalyse=args.reanalyse, preview=preview))
    return todo, skipped


def _below(output: Path, out_dir: Path) -> Path:
    """Where ``output`` lies below the batch's output folder (a manifest's output elsewhere: its name)."""
    return output.relative_to(out_dir) if output.is_relative_to(out_dir) else Path(output.name)


def _preview_of(output: Path, args: argparse.Namespace) -> Path | None:
    """Where ``--previews`` puts the side-by-side of the item written to ``output``: at its place
    below ``--out``; none without the option, or for an image sequence."""
    from .io.sequence import is_sequence

    return args.previews / _below(output, args.out) if args.previews and not is_sequence(output) else None


def cmd_batch(argv: list[str]) -> int:
    args = build_batch_parser().parse_args(argv)
    from .batch.items import assign_outputs, expand_inputs
    from .batch.state import STATE_NAME, JobState, recorded_outputs
    from .io import probe
    from .io.output import check_folder

    if args.retries < 0:
        raise UsageError("--retries must be 0 or more")
    if args.workers is not None and args.workers < 1:  # Ray was asked for no worker, or a negative count
        raise UsageError(f"--workers {args.workers}: expected 1 or more")
    if args.workers is not None and not (args.ray or args.ray_address):  # it was ignored: one process restored the items
        raise UsageError(f"--workers {args.workers} sets how many Ray workers restore at once: add --ray (or --ray-address); "
                         "without Ray one process restores the items one after another")
    check_report_path(args.json)
    if args.faces:
        check_folder(Path(args.faces), "--faces", "the faces")
    if args.previews:
        check_folder(args.previews, "--previews", "the previews")
        if args.previews.resolve() == args.out.resolve():
            raise UsageError(f"--previews {args.previews} is --out: each item's preview would replace its output; give another folder")
    check_batch_options(args)
    if not (args.ray or args.ray_address):  # Ray's workers find their own devices
        _device(args.device)
    from .batch.runner import BatchProgress, InProcessExecutor, RayExecutor, run_batch
    # before --out is made, its state file in it
    options = {flag for flag in _item_parser(args)._option_string_actions if flag.startswith("--")}
    written = [Path(folder) for folder in (args.faces, args.previews) if folder]
    pairs = assign_outputs(expand_inputs(args.inputs, args.out, written, options), args.out,
                           recorded_outputs(args.out))
    previews = {f"the preview of {out.name}": _preview_of(out, args) for _, out in pairs}
    check_written_apart({"the batch's state": args.out / STATE_NAME,
                         **{f"the {role} {path}": path for spec, out in pairs for role, path in (("input", spec.input), ("output", out))}},
                        {"--json": args.json, **previews})
    check_replaces_a_report(args.json)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {args.out} ({exc.strerror})") from exc
    max_attempts = args.retries + 1
    with JobState(args.out) as state:
        todo, skipped = _batch_items(args, pairs, state, max_attempts)
        frames = 0
        for item in todo:
            try:
                frames += probe(item.input).estimated_frames
            except VidrestoreError:
                pass  # the item fails with this reason when it runs
        progress = BatchProgress(len(todo), frames, args.quiet)
        executor = (RayExecutor(args.ray_address, args.workers, args.device) if args.ray or args.ray_address
                    else InProcessExecutor(args.device, progress))
        try:
            run_batch(todo, state, executor, max_attempts, progress)
        finally:
            executor.close()
        rows = {r.output: r for r in state.rows()}
        report = [_item_report(rows.get(str(item.output)), item.input, item.output) for item in todo] + skipped
    if args.json is not None:
        write_report(args.json, jsonio.dumps({"items": report, "totals": _totals(report)}, indent=2))
    if not args.quiet:
        _print_summary(report, args.out)
    return 0 if all(r["status"] == "done" for r in report) else 1


def _item_report(row, input: Path, output: Path) -> dict:
    if row is None:
        return {"input": str(input), "output": str(output), "status": "failed", "error": "no record"}
    rep = {"input": row.input, "output": row.output, "status": row.status, "attempts": row.attempts,
           "frames": row.frames, "faces": row.faces, "tracks": row.tracks, "seconds": row.seconds, "error": row.error,
           "model": row.model}
    if row.report:
        rep["report"] = json.loads(row.report)
    return rep


def _totals(report: list[dict]) -> dict:
    return {"items": len(report), "done": sum(r["status"] == "done" for r in report),
            "failed": sum(r["status"] == "failed" for r in report), "skipped": sum(bool(r.get("skipped")) for r in report),
            "frames": sum(r.get("frames") or 0 for r in report), "seconds": round(sum(r.get("seconds") or 0 for r in report), 2)}


def _print_summary(report: list[dict], out_dir: Path) -> None:
    """The batch's table, an item named by its output's place below ``out_dir`` (the input's
    name alone told 1970s/scan000.jpg from 1980s/scan000.jpg by neither)."""
    print(f"{'status':8s} {'frames':>7s} {'faces':>6s} {'time s':>7s}  item", file=sys.stderr)
    for r in report:
        status = r["status"] + ("*" if r.get("skipped") else "")
        seconds = f"{r['seconds']:.1f}" if r.get("seconds") is not None else "-"
        item = _below(Path(r["output"]), out_dir).as_posix()
        line = f"{status:8s} {r.get('frames') or '-':>7} {r.get('faces') or '-':>6} {seconds:>7s}  {item}"
        if r["status"] == "failed" and r.get("error"):
            line += f"  ({r['error']})"
        print(printable(line), file=sys.stderr)
        for note in (r.get("report") or {}).get("notes", []):
            if note.startswith("qa:"):
                print(printable(f"         {note}"), file=sys.stderr)
    t = _totals(report)
    print(f"{t['done']} done ({t['skipped']} skipped as already done or given up), {t['failed']} failed, "
          f"{t['frames']} frames", file=sys.stderr)


def cmd_analyses(argv: list[str]) -> int:
    from datetime import datetime

    from .pipeline.analysis_store import AnalysisStore

    p = argparse.ArgumentParser(prog="vidrestore analyses",
                                description="List or remove the analyses (shots, faces, tracks) that runs keep for the next run of "
                                            "the same input (in $VIDRESTORE_CACHE, else $XDG_CACHE_HOME/vidrestore or ~/.cache/vidrestore).")
    p.add_argument("action", nargs="?", choices=["list", "clear"], default="list")
    args = p.parse_args(argv)
    store = AnalysisStore.default()
    if args.action == "clear":
        removed, size = store.clear()
        print(f"removed {_counted(removed, 'file')} ({size / 1e6:.1f} MB) from {store.folder}")
        return 0
    kept = store.kept()
    for entry in kept:
        used = datetime.fromtimestamp(entry.used).strftime("%Y-%m-%d %H:%M")
        print(f"{entry.input}  {_counted(entry.frames, 'frame')}, {_counted(entry.tracks, 'face track')}  "
              f"{entry.size / 1e3:.0f} KB  used {used}")
    print(f"{len(kept)} {'analysis' if len(kept) == 1 else 'analyses'}, {sum(e.size for e in kept) / 1e6:.1f} MB, in {store.folder} "
          f"(the least recently used are removed past {store.cap_bytes / 1e6:.0f} MB)")
    return 0


def cmd_models(argv: list[str]) -> int:
    from .models import zoo

    p = argparse.ArgumentParser(prog="vidrestore models", description="List, fetch and check model weights.")
    p.add_argument("action", choices=["list", "pull", "verify", "info"])
    p.add_argument("name", nargs="?", help="a model of `vidrestore models list` (verify without one: every model found here); "
                                           "info also takes a .safetensors file, such as one `vidrestore train export` wrote")
    args = p.parse_args(argv)
    if args.action == "list":
        for e in zoo.entries().values():
            where = zoo.locate(e.name)
            state = "not supported" if not e.supported else (f"found: {where}" if where else "not downloaded")
            print(f"{e.name:30s} {e.kind:9s} {state}")
        return 0
    if args.action == "verify" and not args.name:  # every model found here
        failed = []
        for name in (e.name for e in zoo.entries().values() if e.supported and zoo.locate(e.name)):
            try:
                print(f"{name}: OK ({zoo.verify(name)})")
            except ModelError as exc:
                print(f"{name}: FAILED ({exc})")
                failed.append(name)
        if failed:
            raise ModelError(f"{', '.join(failed)} did not match {'its' if len(failed) == 1 else 'their'} recorded sha256")
        return 0
    if not args.name:
        raise UsageError(f"`vidrestore models {args.action}` needs a model name")
    if args.action == "info":
        named_file = args.name.endswith(".safetensors") or Path(args.name).is_file()
        print(json.dumps(zoo.file_info(args.name) if named_file else dataclasses.asdict(zoo.entry(args.name)), indent=2))
        return 0
    if args.action == "pull":
        e = zoo.entry(args.name)
        if not e.supported:
            raise UsageError(f"{e.name} is listed for reference but not supported: {e.note}")
        path = zoo.pull(args.name)
        print(f"{args.name}: {path} (sha256 {zoo.sha256_of(path)})")
        return 0
    path = zoo.verify(args.name)
    print(f"{args.name}: OK ({path})")
    return 0


def cmd_train(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="vidrestore train", description="Pack face data, or train FLIPNET or the face quality estimator.")
    sub = p.add_subparsers(dest="action", required=True)
    pk = sub.add_parser("pack", help="align faces from folders and pack them into one .npz")
    pk.add_argument("sources", nargs="+", help="folders of images, or packs (.npz) to merge or re-encode")
    pk.add_argument("--out", required=True)
    pk.add_argument("--face-size", type=int, default=128)
    pk.add_argument("--limit", type=int, default=0)
    pk.add_argument("--aligned", action="store_true", help="images are already aligned crops: only resize")
    pk.add_argument("--quality", type=int, default=0, metavar="Q",
                    help="store the faces as WebP at quality Q (1-100; 88: 13x smaller, 39 dB); 0 (default): uncompressed")
    pk.add_argument("--quiet", action="store_true", help="no progress line")
    pk.add_argument("--overwrite", action="store_true", help="replace an existing pack (never one of the sources)")
    ex = sub.add_parser("export", help="write a run's EMA weights as a shippable fp16 safetensors file")
    ex.add_argument("run_dir", type=Path)
    ex.add_argument("--out", type=_output_folder, required=True)
    ex.add_argument("--overwrite", action="store_true", help="replace an existing file")
    rn = sub.add_parser("run", help="train (resumes from the run folder's checkpoint)")
    rn.add_argument("--config", required=True, help="configs/train/<name>.yaml or a built-in name")
    rn.add_argument("--device", default="auto")
    rn.add_argument("--steps", type=int, help="override the config's total steps")
    rn.add_argument("--time-limit", type=float, metavar="MINUTES",
                    help="stop after this many minutes at a step boundary, validated and checkpointed; run again to resume")
    rn.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override any config field, e.g. --set decay_from_step=4100 (repeatable)")
    qu = sub.add_parser("quality", help="train FaceQualityNet, which sets each track's strength (--strength auto)")
    qu.add_argument("--config", default="face-quality", help="configs/train/<name>.yaml or a built-in name")
    qu.add_argument("--time-limit", type=float, metavar="MINUTES", help="stop after this many minutes, saving what was learnt")
    qu.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config field (repeatable)")
    args = p.parse_args(argv)
    if getattr(args, "time_limit", None) is not None and not args.time_limit > 0:  # -1 stopped after one step
        raise UsageError(f"--time-limit {args.time_limit}: expected more than 0 minutes")
    if args.action == "quality":
        from .config import resolve_config, with_overrides
        from .train.quality import QualityTrainConfig, train_quality

        cfg = with_overrides(resolve_config(QualityTrainConfig, "train", args.config), args.set)
        limit = None if args.time_limit is None else args.time_limit * 60
        scores = train_quality(cfg, on_log=lambda row: print(json.dumps(row), flush=True), time_limit=limit)
        print(f"saved {cfg.out}: held-out error {scores['val_mae_db']:.2f} dB, untouched faces {scores['clean_mae_db']:.2f} dB")
        return 0
    if args.action == "pack":
        from .train.data import pack_faces

        bar = ProgressBar(args.quiet, unit="images")
        if not 0 <= args.quality <= 100:
            raise UsageError(f"--quality {args.quality}: use 1-100, or 0 for uncompressed faces")
        missing = [s for s in args.sources if not Path(s).exists()]
        if missing:  # it packed "0 faces from nothing"
            raise InputError(f"not found: {missing[0]}")
        if Path(args.out).suffix != ".npz":  # numpy would add it, and the message named another file
            raise UsageError(f"--out {args.out}: a pack is an .npz file; name it so")
        # merging into a source replaced it, and an earlier pack was replaced without a word
        check_written_apart({f"the pack {s} given": Path(s) for s in args.sources if Path(s).is_file()}, {"--out": Path(args.out)})
        check_new(Path(args.out), args.overwrite)
        check_writable(Path(args.out), "--out", "the pack")
        stats = pack_faces(args.sources, args.out, args.face_size, args.limit, args.aligned, quality=args.quality, progress=bar)
        bar.close()
        found = [f"{_counted(stats.seen, 'image')} ({stats.unreadable} unreadable, {stats.no_face} without a face)"] if stats.seen else []
        found += ["packs"] if any(str(s).endswith(".npz") for s in args.sources) else []
        if not stats.packed:  # a pack of no faces trains nothing
            raise InputError(f"no face to pack: found {' and '.join(found) or 'no pictures'} in {', '.join(map(str, args.sources))}")
        print(f"packed {stats.packed} faces from {' and '.join(found) or 'nothing'} into {args.out}")
        return 0
    if args.action == "export":
        import torch

        from .models.flipnet import load_flipnet, read_metadata, save_flipnet

        ema = args.run_dir / "checkpoint" / "ema.safetensors"
        if not ema.is_file():
            raise InputError(f"{args.run_dir} holds no trained weights ({ema} not found): give the folder of a `train run`")
        check_written_apart({"the run's weights": ema}, {"--out": args.out})
        check_new(args.out, args.overwrite)
        step = read_metadata(ema).get("step", "?")
        save_flipnet(load_flipnet(ema), args.out, dtype=torch.float16, metadata={"step": step, "source": "EMA"})
        print(f"exported {ema} (step {step}) to {args.out}")
        return 0
    from .config import with_overrides
    from .train.trainer import Trainer, load_train_config

    cfg = _set_by_flags(with_overrides(load_train_config(args.config), args.set), args, steps="steps")  # 0 was taken for the config's own
    trainer = Trainer(cfg, _device(args.device))
    limit = None if args.time_limit is None else args.time_limit * 60
    trainer.run(on_log=lambda row: print(json.dumps(row), flush=True), time_limit=limit)
    return 0


def cmd_degrade(argv: list[str]) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from .config import resolve_config
    from .degrade import DegradationConfig, degrade, sample_params
    from .io.output import atomic_output
    from .train.data import read_rgb

    p = argparse.ArgumentParser(prog="vidrestore degrade", description="Degrade face images: synthetic chain, or FLIPNET degradation mode (--model).")
    p.add_argument("inputs", nargs="+", help="images or folders")
    p.add_argument("--out", required=True, type=_output_folder, help="output folder")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--synthetic", default="default", help="degradation config name or YAML path")
    how.add_argument("--model", help="a FLIPNET checkpoint or zoo name: use its degradation mode instead of the synthetic model")
    p.add_argument("--preset", default="balanced", help="sampling preset for --model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace degraded pictures of an earlier run in --out")
    args = p.parse_args(argv)
    cfg = resolve_config(DegradationConfig, "degradations", args.synthetic)
    learned = None
    if args.model:
        from .diffusion.sampler import SamplerConfig
        from .models.flipnet import DEGRADE, load_flipnet
        from .models.zoo import resolve_weights
        from .train.trainer import sample_faces

        model = load_flipnet(resolve_weights(args.model))
        sampler = dataclasses.replace(resolve_config(SamplerConfig, "presets", args.preset), seed=args.seed)

        def learned(x: torch.Tensor) -> torch.Tensor:
            size = model.config.image_size
            small = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
            return sample_faces(model, small, None, sampler, DEGRADE)
    missing = [i for i in args.inputs if not Path(i).exists()]
    if missing:
        raise InputError(f"input not found: {missing[0]}")
    if args.out.exists() and not args.out.is_dir():
        raise OutputError(f"--out {args.out} is a file; give a folder for the degraded pictures")
    pairs = _degraded_names([Path(i) for i in args.inputs], args.out)
    if not pairs:  # it wrote 0 images and said nothing more
        raise InputError(f"no pictures in {', '.join(args.inputs)}")
    existing = [target for _, target in pairs if target.exists()]
    if existing and not args.overwrite:  # a run with another seed replaced the last one's pictures
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise OutputError(f"output exists: {existing[0]}{more} (use --overwrite to replace them)")
    gen = torch.Generator().manual_seed(args.seed)
    written = 0
    for source, target in pairs:
        img = read_rgb(source)
        if img is None:
            print(f"skipped unreadable {source}", file=sys.stderr)
            continue
        written += 1
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        y = learned(x) if learned else degrade(x, sample_params(cfg, 1, gen), gen)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target) as tmp:
            Image.fromarray((y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(tmp, format="PNG")
    if not written:
        raise InputError(f"no file given could be read as a picture ({len(pairs)} tried)")
    print(f"wrote {_counted(written, 'degraded picture')} to {args.out}")
    return 0


def _degraded_names(inputs: list[Path], out: Path) -> list[tuple[Path, Path]]:
    """Each picture given in ``inputs`` (files, and the pictures in folders) with the PNG under ``out`` it is degraded into: a file's by its name, a folder's by its path
    in the folder (a.jpg in two folders overwrote one with the other). An ``out`` inside a folder
    given holds an earlier run's pictures, not inputs. Refused where two would be written under one
    name, or where one would replace an input (``--out`` the input folder degraded the user's
    pictures in place)."""
    from .train.data import list_images

    home = out.resolve()
    pairs = [(f, out / f"{f.stem}.png") for f in inputs if f.is_file()]
    for folder in (i for i in inputs if i.is_dir()):
        inside = home != folder.resolve() and home.is_relative_to(folder.resolve())
        pairs += [(f, out / f.relative_to(folder).with_suffix(".png")) for f in list_images([folder])
                  if not (inside and f.resolve().is_relative_to(home))]
    sources = {source.resolve(): source for source, _ in pairs}
    named: dict[Path, Path] = {}
    for source, target in pairs:
        if target.resolve() in sources:
            raise OutputError(f"--out {out} holds the pictures given: {sources[target.resolve()]} would be replaced by a "
                              "degraded picture; give another folder")
        if named.setdefault(target.resolve(), source) != source:
            raise UsageError(f"{named[target.resolve()]} and {source} would both be degraded into {target}; "
                             "degrade them in separate runs, or rename one")
    return pairs


def cmd_sample(argv: list[str]) -> int:
    from .io.output import atomic_output
    from .sample import SAMPLE_TYPES, make_sample

    p = argparse.ArgumentParser(prog="vidrestore sample", description="Write the generated sample clip (degraded face, with audio).")
    p.add_argument("output", type=Path)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    args = p.parse_args(argv)
    if args.frames < 1:
        raise UsageError(f"--frames {args.frames}: the clip needs 1 frame or more")
    check_new(args.output, args.overwrite)  # it replaced any file, a video of the user's too
    if args.output.suffix.lower() not in SAMPLE_TYPES:  # what holds its H.264 and AAC
        raise UsageError(f"the sample clip is H.264 video with AAC sound: name it {', '.join(SAMPLE_TYPES[:-1])} or {SAMPLE_TYPES[-1]}, "
                         f"not {args.output.name}")
    with atomic_output(args.output) as written:
        make_sample(written, frames=args.frames)
    print(args.output)
    return 0


def cmd_eval(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="vidrestore eval", description="Measure restorations: paired images, images without reference, or a video against its input.")
    sub = p.add_subparsers(dest="kind", required=True)
    im = sub.add_parser("images", help="PSNR, SSIM, identity cosine, landmark distance and NIQE of restored images against references (same file stems)")
    im.add_argument("restored", type=Path)
    im.add_argument("reference", type=Path)
    nr = sub.add_parser("noref", help="NIQE of images without ground truth (real LQ faces, or their restorations)")
    nr.add_argument("folder", type=Path)
    nr.add_argument("--baseline", type=Path, help="folder of the inputs (same file stems): their NIQE is reported beside")
    vd = sub.add_parser("video", help="per-track warping error, flicker and identity stability, and frame NIQE, input and restored")
    vd.add_argument("input", type=Path)
    vd.add_argument("restored", type=Path)
    vd.add_argument("--figures", "--sheets", dest="figures", type=Path,
                    help="folder for per-track contact sheets (input, restored, difference) and per-frame metric plots")
    vd.add_argument("--light", metavar=LIGHTS,
                    help="what both videos' samples stand for, as the restore command's --light (default auto: what the input's headers, tags or Sony settings file say)")
    vd.add_argument("--start", metavar="TIME", help="the restored video is an excerpt from this time of the input (as restored with --start)")
    vd.add_argument("--end", metavar="TIME", help="... to this time (as restored with --end)")
    for sp in (im, vd):
        sp.add_argument("--detector", choices=["auto", "retinaface", "dlib"])
        sp.add_argument("--detector-weights")
    for sp in (im, nr, vd):
        sp.add_argument("--json", type=Path, help="write the report here (default, or '-': stdout)")
    args = p.parse_args(argv)
    check_report_path(args.json)
    check_written_apart({f"the {name}": path for name in ("input", "restored", "reference", "folder", "baseline")
                         if isinstance(path := getattr(args, name, None), Path)},
                        {"--json": args.json, "--figures": getattr(args, "figures", None)})
    check_replaces_a_report(args.json)
    from .eval.report import eval_images, eval_noref, eval_video

    if args.kind == "noref":
        report = eval_noref(args.folder, args.baseline)
    else:
        import torch

        from .config import CONFIG_DIR, load_yaml
        from .faces.detect import create_detector
        from .pipeline import PipelineConfig

        cfg = load_yaml(PipelineConfig, CONFIG_DIR / "pipeline.yaml")
        cfg = dataclasses.replace(cfg, **{k: v for k in ("light", "start", "end") if (v := getattr(args, k, None))})
        det = dataclasses.replace(cfg.detector, **{k: v for k, v in (("backend", args.detector), ("weights", args.detector_weights)) if v})
        detector = create_detector(det, torch.device("cpu"))
        report = (eval_images(args.restored, args.reference, detector) if args.kind == "images"
                  else eval_video(args.input, args.restored, cfg, detector, args.figures))
    write_report(args.json, jsonio.dumps(report, indent=2))  # '-' is stdout, as for the other commands (it wrote a file named '-')
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    open_standard_streams()
    # SVT-AV1 (--codec libsvtav1) logs its settings banner at its default level, over the progress
    # line; errors only, unless the user asks for more
    os.environ.setdefault("SVT_LOG", "1")
    commands = {"batch": cmd_batch, "analyses": cmd_analyses, "models": cmd_models, "train": cmd_train, "degrade": cmd_degrade, "sample": cmd_sample, "eval": cmd_eval}
    try:
        check_none_empty(argv)
        with stops_cleanly_on_termination():
            code = commands[argv[0]](argv[1:]) if argv and argv[0] in commands else cmd_restore(argv)
            raise_if_stopped()  # a signal whose exception was lost still ends the run as stopped
            return code
    except (VidrestoreError, KeyboardInterrupt) as exc:
        line, code = ending(exc)
        print(f"vidrestore: {printable(line)}", file=sys.stderr)
        return code
    except BrokenPipeError:  # the reader of what it prints went (vidrestore analyses | head -1), as for any tool
        muted(sys.stdout)
        muted(sys.stderr)
        return EXIT_BROKEN_PIPE


def check_none_empty(argv: list[str]) -> None:
    """Refuse an empty argument by where it stands: an unset variable in a batch script
    (``vidrestore "$IN" "$OUT"``, ``--config "$CFG"``) was taken for the folder "." ("output is the
    input file", "input is a folder: .") or left the option out without a word, so that the run
    went on with the defaults."""
    for position, arg in enumerate(argv):
        if arg.startswith("--") and arg.endswith("="):
            named = f"{arg[:-1]} is given an empty value"
        elif arg:
            continue
        elif position and argv[position - 1].startswith("--"):
            named = f"the argument after {argv[position - 1]} is empty"
        else:
            named = f"argument {position + 1} is empty"
        raise UsageError(f"{named} (an unset shell variable?); give it a value, or leave it out")


def open_standard_streams() -> None:
    """Give a closed standard input, output or error (``2>&-``, some daemons), or an output or error
    that cannot be written (a launcher's script left open for reading under its number), the null
    device. Closed, its number went to the first file the run opened (the output's lock, a segment),
    and what FFmpeg and x264 log to it was written there; and progress failed on a missing or
    unwritable sys.stderr, so that the run ended with no output and no word why."""
    for fd in (0, 1, 2):
        try:
            writable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # closed: this takes the lowest number free, its own
            continue
        if fd and not writable:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the process's life)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the process's life)
    # a file name that is not UTF-8 (Latin-1, from an old archive) is printed with escapes, as
    # Python's own standard error prints it: on standard output it failed the batch's table and listings
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):  # a stream a caller put there may not take it
            stream.reconfigure(errors="backslashreplace")


def ending(exc: VidrestoreError | KeyboardInterrupt) -> tuple[str, int]:
    """The line (without the program's name) and the exit code a command that raised ``exc`` ends with."""
    notes = getattr(exc, "__notes__", [])
    if isinstance(exc, VidrestoreError):
        return "; ".join([f"error: {exc}", *notes]), exc.exit_code
    what = f"stopped by {exc.name}" if isinstance(exc, Stopped) else "interrupted"
    return "; ".join([what, "no partial output was left", *notes]), 128 + exc.signum if isinstance(exc, Stopped) else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
