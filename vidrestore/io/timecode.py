"""SMPTE timecodes (HH:MM:SS:FF, ";" before FF when drop-frame): counted in frames, at another
rate, later by some frames, or as the time from a video's first frame (``--start 01:00:10:00``).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_TIMECODE = re.compile(r"^\d{1,2}:\d{2}:\d{2}[:;.]\d{2}$")


def is_timecode(text: str) -> bool:
    """Whether ``text`` is written as a timecode (four fields), not as a time (at most three)."""
    return bool(_TIMECODE.match(text.strip()))


def seconds_after(timecode: str, first: str, rate: Fraction) -> Fraction:
    """How long after the frame at timecode ``first`` (a video's first frame) the frame at
    ``timecode`` is shown, at ``rate``; ValueError for a timecode before ``first`` or a frame
    field the rate does not count to."""
    if not fits_rate(timecode, rate):
        raise ValueError(f"frame {timecode[-2:]} does not exist at {float(rate):g} fps")
    frames = frame_number(timecode.strip(), rate) - frame_number(first, rate)
    if frames < 0:
        raise ValueError(f"before the first frame, at timecode {first}")
    return frames / rate


def fits_rate(timecode: str, rate: Fraction | None) -> bool:
    """Whether ``timecode``'s frame field counts within ``rate`` (frame 24 does not exist at 24 fps,
    and QuickTime's muxer would fail on it at the very end of a run)."""
    frames = timecode.replace(";", ":").rsplit(":", 1)[-1]
    return bool(rate) and frames.isdigit() and int(frames) < math.ceil(rate)


def timecode_at(timecode: str, rate: Fraction | None, new_rate: Fraction | None) -> str:
    """``timecode`` (HH:MM:SS:FF, ";" before FF when drop-frame) counted at ``new_rate``. A whole
    multiple of ``rate`` counts the same moments in finer frames: 50p made from 50i counts 50 a
    second, so frame 12 at 25 is frame 24 there. Film decimated from video (24000/1001 from
    30000/1001) counts its frames from the same start: the video's frame number (drop-frame
    timecodes skip numbers, not frames) times 4/5, in non-drop-frame timecode at 24 a second.
    Equal rates, or none, leave it as it is."""
    if not (rate and new_rate) or new_rate == rate or frame_number(timecode, rate) is None:
        return timecode
    if new_rate % rate == 0:
        head, sep, frames = timecode[:-3], timecode[-3], timecode[-2:]
        return f"{head}{sep}{int(frames) * int(new_rate / rate):02d}"
    return timecode_of(frame_number(timecode, rate) * new_rate // rate, round(new_rate), drop=False)


def timecode_after(timecode: str, frames: int, rate: Fraction | None) -> str:
    """``timecode`` ``frames`` frames later at ``rate`` (an excerpt's first frame's), in its own
    kind: drop-frame stays drop-frame. Unchanged when it cannot be read or the rate is unknown."""
    number = frame_number(timecode, rate) if rate else None
    if number is None or frames <= 0:
        return timecode
    return timecode_of(number + frames, round(rate), drop=";" in timecode)


def frame_number(timecode: str, rate: Fraction) -> int | None:
    """How many frames from 00:00:00:00 ``timecode`` counts at ``rate`` (None: not a timecode)."""
    parts = timecode.replace(";", ":").replace(".", ":").split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    nominal = round(rate)
    hours, minutes, seconds, frames = map(int, parts)
    count = ((hours * 60 + minutes) * 60 + seconds) * nominal + frames
    if ";" in timecode:  # drop-frame: two numbers (four at 60) skipped each minute but every tenth
        total_minutes = hours * 60 + minutes
        count -= (nominal // 15) * (total_minutes - total_minutes // 10)
    return count


def timecode_of(count: int, nominal: int, drop: bool) -> str:
    """Frame ``count`` from 00:00:00:00 as a timecode counting ``nominal`` frames a second; with
    ``drop``, in drop-frame numbers (the numbers it skips are added back)."""
    if drop:
        skipped = nominal // 15
        per_minute, per_ten = nominal * 60 - skipped, nominal * 600 - 9 * skipped
        tens, rest = divmod(count, per_ten)
        count += 9 * skipped * tens + (skipped * ((rest - skipped) // per_minute) if rest > skipped else 0)
    frames, seconds = count % nominal, count // nominal
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{';' if drop else ':'}{frames:02d}"
