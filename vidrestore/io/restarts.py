"""Recordings whose timestamps start over: MPEG program and transport streams joined from several
(an HDV tape captured whole, whose clock starts again at each recording; a DVD's cells, VOB files
put end to end, TV captures or camcorder clips concatenated). A player
plays their parts in file order; a muxer refuses a timestamp that goes back, so such an input
failed after all its work. It is read from a copy whose later parts are timed on from where the
earlier ones end, as FFmpeg's command line times them.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import OutputError
from .containers import copy_of, stream_tags
from .probe import open_input
from .remux import left_alone, left_alone_notes
from .sequence import hidden_folder

# FFmpeg's demuxers that read such streams flag them so (AVFMT_TS_DISCONT): MPEG-TS and MPEG-PS
_DISCONTINUOUS = 0x200
# How far a sound or picture stream's decode times may jump on before it counts as starting over
# (FFmpeg's command line: its dts_delta_threshold), and how far one stream may lag the others
# before a step back of its own is taken for the whole recording's (a tenth of a second, as there).
# Any step back of a stream's own decode times starts it over. FFmpeg's command line takes one of
# under a tenth of a second for jitter (it drops such frames, or bumps their decode times); here
# that was a capture begun a frame before the one it was joined to ended, whose output the muxer
# refused after the work.
_BACK = Fraction(1, 10)
_ON = 10


@dataclass(frozen=True)
class Restart:
    at_s: float  # where the later part plays from, in seconds of the continuous timeline
    stated_s: float  # the time its first packet states


class _Timeline:
    """The shift, in seconds, that times each packet on from the ones before it, fed the packets in
    file order. Only sound and picture decide: subtitles and data come sparsely. A part starts
    where the latest of its streams ended, so that none of them goes back; a stream that jumps on
    alone (its picture lost for a while, its sound going on) keeps its gap."""

    def __init__(self, lift: Fraction = Fraction(0)) -> None:
        self.lift = lift  # how far every packet moves on so that none comes before 0 (:func:`_lift`)
        self.shift = lift
        self.restarts: list[Restart] = []
        self._last: dict[int, Fraction] = {}
        self._next: dict[int, Fraction] = {}

    def shift_of(self, packet: av.Packet) -> Fraction:
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is None or packet.stream.type not in ("audio", "video"):
            return self.shift
        index, time_base = packet.stream.index, packet.time_base
        stated = stamp * time_base
        time = stated + self.shift
        back = index in self._last and time < self._last[index]
        if back or (index in self._last and time - self._next[index] > _ON):
            moved = max(self._next.values()) - time
            if back or moved > _BACK or moved < -_ON:  # not a gap in one stream while another went on (a picture lost for a while)
                self.shift += moved
                time = stated + self.shift
                self.restarts.append(Restart(float(time), float(stated)))
        step = packet.duration * time_base if packet.duration else time - self._last.get(index, time)
        self._last[index], self._next[index] = time, time + step
        return self.shift


def _shifted(packet: av.Packet, shift: Fraction) -> av.Packet:
    ticks = round(shift / packet.time_base)
    if packet.pts is not None:
        packet.pts += ticks
    if packet.dts is not None:
        packet.dts += ticks
    return packet


def _lift(source: Path, packets: int = 64) -> Fraction:
    """How far the timestamps of ``source`` move on so that its first sound and picture packets
    come at 0 or later: FFmpeg unwraps a recording begun in the minute before the MPEG clock wraps
    (its 33 bits of 90 kHz, every 26.5 hours) to times before 0, and an .mp4 output's edit list
    then hid every frame before 0, though the report counted them written."""
    with open_input(source) as container:
        first = (p for p in container.demux() if p.stream.type in ("audio", "video") and (p.dts is not None or p.pts is not None))
        times = [(p.dts if p.dts is not None else p.pts) * p.time_base for p in itertools.islice(first, packets)]
    return max(Fraction(0), -min(times, default=Fraction(0)))


def may_start_over(source: Path) -> bool:
    """Whether the timestamps of ``source`` may start over: not in a container whose demuxer does
    not let them (MP4, Matroska: their times are stored, not counted by the stream)."""
    with open_input(source) as container:
        return bool(container.format.flags & _DISCONTINUOUS)


def _timeline(source: Path) -> _Timeline | None:
    """The timeline of ``source``, fed every packet; None where its timestamps cannot start over (:func:`may_start_over`)."""
    if not may_start_over(source):
        return None
    timeline = _Timeline(_lift(source))
    with open_input(source) as container:
        for packet in container.demux():
            timeline.shift_of(packet)
    return timeline


def restarts_in(source: Path) -> list[Restart]:
    """Where the timestamps of ``source`` start over (:func:`_timeline`)."""
    timeline = _timeline(source)
    return timeline.restarts if timeline is not None else []


def _continuous_copy(source: Path, copy: Path, lift: Fraction) -> None:
    """Write ``source``'s packets into ``copy``, in its container, lifted by ``lift`` and timed on across each restart."""
    with open_input(source) as container, av.open(str(copy), "w", format=container.format.name) as out:
        out.metadata.update(container.metadata)
        copies, left = {}, {s.index for s in left_alone(container)}  # no muxer takes them; remux leaves them out
        for stream in (s for s in container.streams if s.index not in left):
            copies[stream.index] = copy_of(out, stream)
            copies[stream.index].metadata.update(stream_tags(stream, out.format.name))
            copies[stream.index].disposition = stream.disposition
        timeline = _Timeline(lift)
        for packet in container.demux():
            shift = timeline.shift_of(packet)
            if packet.size and packet.stream.index in copies:
                packet.stream = copies[packet.stream.index]
                out.mux(_shifted(packet, shift))


def restart_note(timeline: _Timeline, source: Path) -> list[str]:
    lifted = [(f"the timestamps of {source.name} begin {float(timeline.lift):.2f} s before 0, as FFmpeg reads a recording "
               "begun just before the MPEG clock wraps (every 26.5 hours): it is timed from 0, as players show it; every frame "
               "and all the sound are kept")] if timeline.lift else []
    return lifted + (_restarts_note(timeline.restarts, source) if timeline.restarts else [])


def _restarts_note(restarts: list[Restart], source: Path) -> list[str]:
    where = ", ".join(f"{r.at_s:.2f} s" for r in restarts[:5]) + (", ..." if len(restarts) > 5 else "")
    return [(f"the timestamps of {source.name} start over {len(restarts)} time{'s' if len(restarts) > 1 else ''}, as in recordings "
            f"joined end to end (an HDV tape's, a DVD's cells, captures put together): each later part is timed on from where the one before it "
            f"ends, at {where}, as players play it; every frame and all the sound are kept")]


def timed_on_folder(output: Path | None) -> Path:
    """Where the copy of an input timed on goes (:func:`~vidrestore.io.sequence.hidden_folder`)."""
    return hidden_folder(output, "timed-on")


def timed_on(source: Path, folder: Path) -> tuple[Path, list[str]]:
    """The file to read for ``source``, and a note: ``source`` itself, or, where its timestamps
    start over or begin before 0, a copy timed from 0 and on across each restart, written into
    ``folder`` under the input's own name (so that every message names it as the user does)."""
    timeline = _timeline(source) if source.is_file() else None
    if timeline is None or not (timeline.restarts or timeline.lift):
        return source, []
    copy = folder / source.name
    try:
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted run's
        folder.mkdir()
        _continuous_copy(source, copy, timeline.lift)
    except (OSError, av.error.FFmpegError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise OutputError(f"cannot write the copy of {source.name} timed on across its restarts into {folder.parent} "
                          f"({getattr(exc, 'strerror', None) or exc})") from exc
    return copy, restart_note(timeline, source) + left_alone_notes(source)  # the copy has none of them to note


@contextlib.contextmanager
def played_in_order(source: Path, output: Path | None) -> Iterator[tuple[Path, list[str]]]:
    """:func:`timed_on` for one run, the copy removed afterwards whatever happens."""
    folder = timed_on_folder(output)
    try:
        yield timed_on(source, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
