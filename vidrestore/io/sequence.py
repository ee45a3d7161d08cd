"""Image sequences: a film scan, a VFX plate or a render as numbered pictures (``f_086400.dpx`` ...).

A sequence is named as FFmpeg names one: the file name with ``%d`` or ``%06d`` where the frame
number goes (``scan/f_%06d.dpx``). It is read through FFmpeg's image2 demuxer from its lowest
number, wherever that starts (scans are often numbered from a timecode, 86400 for one hour at 24
fps, which FFmpeg's own search from 0 to 4 does not find), and written through its image2 muxer.
Its frames are timed at ``DEFAULT_RATE`` per second, FFmpeg's default: pictures store no time.

A sequence written by vidrestore goes into a hidden folder beside its target first; only when every
picture is written are they renamed into place. Made from a sequence, each picture keeps its
input's number (so an edit list or a conform still fits); made from a video, they are numbered
from 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import InputError

# A picture, or a sequence of them, is written by the encoder of its file type (FFmpeg's image2
# muxer would take any, MPEG-4 into a .jpg included).
IMAGE_ENCODERS = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp",
                  ".dpx": "dpx", ".exr": "exr", ".webp": "libwebp"}
# Where the segments of an output sequence are encoded (hidden, beside it): QuickTime holds the
# pictures of every type above but BMP, which no container of FFmpeg's takes.
SEGMENT_SUFFIX = ".mov"
DEFAULT_RATE = Fraction(25)
_NUMBER_FIELD = re.compile(r"%(\d*)d")  # as FFmpeg reads it: %d, %06d, and %6d for %06d


def is_sequence(path: str | Path) -> bool:
    """Whether ``path`` names an image sequence: one ``%d``/``%0Nd`` number field in the file name
    (no other ``%``) and a picture type's suffix."""
    return has_number_field(path) and Path(path).suffix.lower() in IMAGE_ENCODERS


def has_number_field(path: str | Path) -> bool:
    """Whether ``path``'s file name holds one ``%d``/``%0Nd`` number field, as a sequence's does (of any type)."""
    name = Path(path).name
    return len(_NUMBER_FIELD.findall(name)) == 1 and name.count("%") == 1


def unsupported_type(path: str | Path) -> str:
    """Why vidrestore cannot take a sequence or picture file of ``path``'s type, for a one-line error."""
    known = ", ".join(sorted({s.lstrip(".").upper().replace("JPEG", "JPG").replace("TIFF", "TIF") for s in IMAGE_ENCODERS}))
    return f"vidrestore does not take {Path(path).suffix or 'extension-less'} pictures; it takes {known}"


def numbered(pattern: Path, number: int) -> Path:
    """The file of frame ``number`` (FFmpeg's formatting: ``%04d`` of 12345 is ``12345``)."""
    return pattern.with_name(_NUMBER_FIELD.sub(lambda m: f"{number:0{int(m.group(1) or 0)}d}", pattern.name))


def numbers_in(pattern: Path) -> list[int]:
    """The frame numbers of the files in ``pattern``'s folder that it names, in order."""
    head, tail = _NUMBER_FIELD.split(pattern.name, maxsplit=1)[::2]
    name = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail))
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(pattern.parent if str(pattern.parent) else "."):
            match = name.fullmatch(entry.name)
            if match and numbered(pattern, int(match.group(1))).name == entry.name and entry.is_file():
                found.append(int(match.group(1)))
    return sorted(found)


@dataclass(frozen=True)
class ImageSequence:
    pattern: Path
    first: int
    count: int

    @property
    def numbers(self) -> range:
        return range(self.first, self.first + self.count)


def find_sequence(pattern: str | Path) -> ImageSequence:
    """The sequence ``pattern`` names; ``InputError`` when no file matches or frames are missing
    between its first and last (FFmpeg would stop at the gap without a word)."""
    pattern = Path(pattern)
    if not pattern.parent.is_dir():
        raise InputError(f"input not found: {pattern.parent} (the folder of the image sequence {pattern.name})")
    numbers = numbers_in(pattern)
    if not numbers:
        raise InputError(f"no picture matches the image sequence {pattern} (the frame number goes where "
                         f"{_NUMBER_FIELD.search(pattern.name).group(0)} is)")
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"the image sequence {pattern.name} lacks {numbered(pattern, missing[0]).name}{more} between "
                         f"{numbered(pattern, numbers[0]).name} and {numbered(pattern, numbers[-1]).name}; "
                         "fill the gap, or restore the parts on either side of it apart")
    return ImageSequence(pattern, numbers[0], len(numbers))


def open_sequence(pattern: str | Path) -> av.container.InputContainer:
    """Open the sequence ``pattern`` names from its first frame, timed at ``DEFAULT_RATE``."""
    sequence = find_sequence(pattern)
    return av.open(str(pattern), "r", format="image2",
                   options={"start_number": str(sequence.first), "start_number_range": "1",
                            "framerate": str(DEFAULT_RATE)})


def source_stamp(source: Path) -> str:
    """What changes when the input file, or any picture of an input sequence, changes: size and
    modification time (of every picture, summed and latest), with a sequence's numbers."""
    if is_sequence(source):
        with contextlib.suppress(InputError, OSError):
            sequence = find_sequence(source)
            stats = [numbered(source, n).stat() for n in sequence.numbers]
            return f"{sequence.first}+{sequence.count}:{sum(s.st_size for s in stats)}:{max(s.st_mtime_ns for s in stats)}"
    elif source.is_file():
        stat = source.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    return "missing"


def check_unchanged(source: Path, stamp: str) -> None:
    """Refuse to go on with ``source`` when it is no longer what it was when its :func:`source_stamp`
    was ``stamp``: a file still being recorded or copied in, whose frames pass 1 and pass 2 (and
    the remux of its sound) would read to different ends."""
    if source_stamp(source) != stamp:
        raise InputError(f"{shown(source)} changed while it was read (is it still being recorded or copied?): nothing was "
                         "written; run again once it is complete")


def number_offset(source: str | Path) -> int:
    """What to add to the numbers FFmpeg's image2 muxer gives the pictures of an output sequence
    made from ``source`` (see :func:`~vidrestore.io.remux.remux`) for their final numbers. From a
    sequence, each picture is named by its frame's timestamp, one tick a frame from 0, and goes
    back to its input's number (a picture that did not decode leaves its number out); from a
    video, they are numbered from 1, as FFmpeg does."""
    return find_sequence(source).first if is_sequence(source) else 0


def files_of(pattern: Path) -> list[Path]:
    """The files ``pattern`` names that exist, in frame order."""
    return [numbered(pattern, n) for n in numbers_in(pattern)]


_NUMBERED_NAME = re.compile(r"(.*?)(\d+)(\.[A-Za-z0-9]+)")


def sequences_in(folder: Path, suffixes: Collection[str] = tuple(IMAGE_ENCODERS)) -> list[Path]:
    """The image sequences among the files of ``folder`` (not of its subfolders), as patterns:
    two or more pictures of a type in ``suffixes`` whose names differ only in the number before the
    suffix. Zero-padded numbers give ``%0Nd`` (N their length), others ``%d``."""
    groups: dict[tuple[str, str], list[str]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _NUMBERED_NAME.fullmatch(entry.name)
            if match and match.group(3).lower() in suffixes and entry.is_file():
                head, digits, suffix = match.groups()
                groups.setdefault((head, suffix), []).append(digits)
    found = []
    for (head, suffix), numbers in sorted(groups.items()):
        padded = sorted({len(d) for d in numbers if len(d) > 1 and d.startswith("0")})
        field = f"%0{padded[0]}d" if padded else "%d"
        pattern = Path(folder) / f"{head}{field}{suffix}"
        if is_sequence(pattern) and len(numbers_in(pattern)) >= 2:
            found.append(pattern)
    return found


def exists(path: Path) -> bool:
    """Whether ``path`` exists; for an image sequence, whether any of its pictures does."""
    return bool(numbers_in(path)) if is_sequence(path) else path.exists()


NAME_MAX = 255  # bytes in a file's name (ext4, XFS, APFS, NTFS's 255 UTF-16 units hold at least as many)
HIDDEN_ADDED = 40  # the most a hidden file's name adds to the stem and the output's suffix (".k2x9qz_a.part", ".seg0000.part" + ".mov")


def hidden_below(path: Path, folder: Path) -> bool:
    """Whether ``path``, found under ``folder``, is hidden there (a dot file, or in a dot folder):
    such as the ``._clip.mov`` of its metadata that macOS leaves beside each file on a shared
    drive, or a run's temporary files; not an input of a folder's search."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def hidden_stem(output: Path) -> str:
    """The stem of the hidden files a run keeps beside ``output`` (temp file, segments, ledger): its
    own, less the ``%`` of a sequence's number field, so that no tool reads them as a pattern. An
    output whose name is near the longest a file's may be keeps a shorter one (its start and a
    hash of the rest), so that the names made from it are not too long: the folder was said to be
    unwritable."""
    stem = output.stem.replace("%", "")
    # counted in the bytes the file system stores: a name that is not UTF-8 (Latin-1, from an old
    # archive) failed to encode
    room = NAME_MAX - HIDDEN_ADDED - len(os.fsencode(output.suffix))
    if len(os.fsencode(stem)) <= room:
        return stem
    digest = hashlib.sha256(os.fsencode(stem)).hexdigest()[:8]
    return f"{os.fsencode(stem)[:room - 9].decode(errors='ignore')}~{digest}"


def shown(path: str | Path) -> str:
    """``path`` as text that any file or library takes (UTF-8): the bytes of a name that is not
    UTF-8 (Latin-1, from an old archive), which Python holds as lone surrogates, as \\xe9 escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def hidden_folder(output: Path | None, purpose: str) -> Path:
    """A hidden folder for what a run needs to hold while it runs (``purpose``: "timed-on", "stdin"):
    beside ``output``, which has room for the output anyway; a dry run's, with no output, in the
    system's temporary folder."""
    if output is None:
        return Path(tempfile.gettempdir()) / f".vidrestore.{os.getpid()}.{purpose}"
    return output.parent / f".{hidden_stem(output)}.{purpose}{output.suffix}"


def remove_others(target: Path, kept: Collection[int]) -> None:
    """Remove the pictures of the sequence ``target`` whose numbers are not in ``kept``."""
    for number in numbers_in(target):
        if number not in kept:
            numbered(target, number).unlink(missing_ok=True)
