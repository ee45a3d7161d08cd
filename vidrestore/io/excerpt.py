"""A stretch of a video (``--start``/``--end``): which of its frames the readers yield, and the
times, in seconds, that the other streams are cut at.

Times count from the video's first frame, as a player's clock shows them. A frame belongs to the
excerpt when it is shown at or after the start and before the end; the output starts at its first
frame, at time 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from .probe import VideoInfo

_CLOCK = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Cut:
    """Where an excerpt lies on its input's timeline, in seconds as the container counts them: from
    ``start``, its first frame's time, which becomes the output's 0, to before ``end`` (None: to
    the end of the input)."""

    start: Fraction
    end: Fraction | None = None

    def holds(self, seconds: Fraction) -> bool:
        return seconds >= self.start and (self.end is None or seconds < self.end)

    def moved_to_zero(self) -> Cut:
        """The same stretch on the output's timeline, which starts at 0."""
        return Cut(Fraction(0), None if self.end is None else self.end - self.start)


def parse_time(text: str) -> Fraction:
    """A time as written on a clock or in seconds: 90, 90.5, 1:30, 01:02:03.250; ValueError otherwise."""
    found = _CLOCK.match(text.strip())
    if found is None:
        raise ValueError(text)
    hours, minutes, seconds = found.groups()
    if (minutes is not None and Fraction(seconds) >= 60) or (hours is not None and int(minutes) >= 60):
        raise ValueError(text)  # 1:75 is no clock's time
    return (int(hours or 0) * 60 + int(minutes or 0)) * 60 + Fraction(seconds)


def clock(seconds: Fraction | float) -> str:
    """``seconds`` as H:MM:SS.mmm (M:SS.mmm under an hour), as a report shows a time."""
    millis = round(float(seconds) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    head = f"{hours}:{minutes:02d}" if hours else f"{minutes}"
    return f"{head}:{rest / 1000:06.3f}"


@dataclass(frozen=True)
class Excerpt:
    start: Fraction = Fraction(0)  # seconds after the video's first frame
    end: Fraction | None = None  # None: to the end of the video
    # An image sequence's: how long each picture is played for. FFmpeg reads its pictures one
    # tick of 1/25 s each, whatever the scan's rate, so its times count pictures at this one.
    frame_time: Fraction | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise ValueError(f"an excerpt must end after it starts ({clock(self.start)} to {self.describe_end()})")

    def describe_end(self) -> str:
        return "the end" if self.end is None else clock(self.end)

    def describe(self) -> str:
        return f"{clock(self.start)} to {self.describe_end()}"

    def ticks(self, info: VideoInfo) -> tuple[Fraction, Fraction | None]:
        """The excerpt's bounds in the ticks of ``info``'s stream: its frames are those with
        ``lower <= pts < upper`` (no upper bound: None)."""
        first, tick = info.start_pts or 0, self.frame_time or info.time_base
        return first + self.start / tick, None if self.end is None else first + self.end / tick

    def seek_target(self, info: VideoInfo) -> int | None:
        """The timestamp to seek to before the excerpt's first frame (the keyframe before it is where
        decoding starts), or None when decoding from the start is as near."""
        lower = math.floor(self.ticks(info)[0])
        return lower if info.timestamps and lower > (info.start_pts or 0) else None

    def estimated_frames(self, info: VideoInfo) -> int:
        """About how many frames the excerpt holds (for progress and for refusing a picture output
        that would hold several); 0 when the video's length or rate is unknown and there is no end."""
        rate = 1 / self.frame_time if self.frame_time else info.average_rate
        if not rate:
            return 0
        ends = [e for e in (self.end, excerpt_length(info, self)) if e is not None]
        if not ends:
            return 0
        end = min(ends)
        return max(0, math.ceil((end - self.start) * rate))


def excerpt_length(info: VideoInfo, excerpt: Excerpt) -> Fraction | None:
    """How long the video of ``info`` lasts, in seconds on the clock of ``excerpt`` (a sequence's
    pictures at its ``frame_time`` each); None where unknown."""
    if excerpt.frame_time and info.frames:
        return info.frames * excerpt.frame_time
    return Fraction(info.duration_s) if info.duration_s else None
