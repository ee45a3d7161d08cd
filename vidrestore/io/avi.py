"""Stream headers of an AVI file that FFmpeg's AVI muxer writes from a codec parameter PyAV gives
no way to set, corrected once the muxer has closed the file (as :mod:`vidrestore.io.dpx`
corrects a DPX picture's header).

AVI times sound in one of two ways, which a stream header's sample size says: in bytes (PCM,
ADPCM: a chunk holds any number of whole blocks) or in chunks (0: each chunk holds one frame of a
fixed number of samples: MP3, AC-3, AAC). FFmpeg's muxer writes the codec's block align there,
which is 0 for sound from an encoder, but which FFmpeg's demuxers read from a WAVE header, as
AVI, ASF and WAV state one. A copy of an AVI's or a WMV's MP3 into AVI so came out timed in bytes:
read back, its 117 frames took 0.55 s of a 3 s clip, and players drift or stall. FFmpeg's own
command line clears the block align of copied MP3 and AC-3 for this; PyAV cannot, so the header
is put right afterwards.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import av

from .probe import codec_name

# Sound coded in frames of a fixed number of samples, which FFmpeg's AVI muxer writes one to a chunk
FRAMED_SOUND = frozenset({"mp1", "mp2", "mp3", "aac", "ac3"})

_STRH_RATE, _STRH_LENGTH, _STRH_SAMPLE_SIZE = 20, 32, 44  # where a stream header keeps its scale and rate, length, sample size
_WAVE_FORMAT = struct.Struct("<4xIIH")  # a WAVE header's samples a second, bytes a second and block align
_WAVE_PER_SECOND = 8  # where it keeps its bytes a second
_SUPER_INDEX = struct.Struct("<HBBI4s12x")  # an OpenDML super index: longs per entry, types, entries, chunk id
_SUPER_ENTRY = struct.Struct("<QII")  # one entry: where a standard index is, its size, its duration
_STANDARD_INDEX = struct.Struct("<4sIHBBI")  # ix##, its size, longs per entry, types, entries (chunks)


def in_frames(stream: av.stream.Stream) -> bool:
    """Whether ``stream`` is sound of :data:`FRAMED_SOUND`, which AVI counts in chunks."""
    return stream.type == "audio" and codec_name(stream) in FRAMED_SOUND


def _chunks(file: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """The chunks of a RIFF list from ``start`` to ``end``: (id, where its data starts, where it
    ends); a LIST's id is its list type."""
    at = start
    while at + 8 <= end:
        ident, size = _read_at(file, at, "<4sI")
        if ident == b"LIST":
            yield _read_at(file, at + 8, "<4s")[0], at + 12, at + 8 + size
        else:
            yield ident, at + 8, at + 8 + size
        at += 8 + size + (size & 1)


def count_in_frames(file: BinaryIO, counts: Mapping[int, int]) -> None:
    """State each sound stream of the AVI ``file`` (open to read and write) given in ``counts``
    (stream index: chunks written) as counted in chunks, where the muxer stated it in bytes: its
    stream header's sample size 0 and its length in chunks, and, in a file large enough for
    OpenDML indexes, each standard index's duration in its chunks."""
    headers = _stream_headers(file)
    for index, chunks in counts.items():
        parts = headers[index]
        if not _timed_in_bytes_by_frames(file, parts[b"strh"], parts[b"strf"]):
            continue
        _write_at(file, parts[b"strh"] + _STRH_SAMPLE_SIZE, 0)
        _write_at(file, parts[b"strh"] + _STRH_LENGTH, chunks)
        if b"indx" in parts:
            _count_super_index(file, parts[b"indx"])


def _timed_in_bytes_by_frames(file: BinaryIO, strh: int, strf: int) -> bool:
    """Whether the stream whose header is at ``strh`` and format at ``strf`` is counted in bytes
    while its scale and rate are one frame's duration (which the muxer takes from the codec where
    it knows one; else they are the block align over the bytes a second)."""
    scale, rate = _read_at(file, strh + _STRH_RATE, "<II")
    sample_size = _read_at(file, strh + _STRH_SAMPLE_SIZE, "<I")[0]
    _, per_second, block_align = _read_at(file, strf, _WAVE_FORMAT)
    return sample_size != 0 and scale * per_second != rate * block_align


def block_coded(stream: av.stream.Stream) -> bool:
    """Whether ``stream`` is sound coded in blocks of a fixed number of samples that AVI times in
    bytes (ADPCM), whose copy :func:`time_by_blocks` times."""
    return stream.type == "audio" and codec_name(stream).startswith("adpcm_")


def first_packet(source: str | Path, index: int) -> tuple[int, int] | None:
    """The bytes and the samples of the first packet of stream ``index`` of ``source``, or None
    where none decodes."""
    with contextlib.suppress(av.error.FFmpegError, ValueError), av.open(str(source)) as container:
        stream = container.streams[index]
        for packet in container.demux(stream):
            if packet.size:
                return packet.size, sum(frame.samples for frame in stream.codec_context.decode(packet))
    return None


def time_by_blocks(file: BinaryIO, first_packets: Mapping[int, tuple[int, int] | None]) -> None:
    """State each block-coded sound stream of the AVI ``file`` (open to read and write) given in
    ``first_packets`` (stream index: the bytes and samples of its first packet, whole blocks) as
    timed by its blocks: its stream header's scale the samples of a block and its rate the sample
    rate, as FFmpeg's muxer states them when an encoder tells it a block's samples. A copy's
    parameters do not, and the muxer stated the bytes a second FFmpeg estimated where the input
    states none (as its own muxer writes ADPCM): 4 bits a sample, without the blocks' headers, so
    the copy played 0.3% (IMA) to 0.6% (Microsoft's ADPCM) slow."""
    headers = _stream_headers(file)
    for index, packet in first_packets.items():
        parts = headers[index]
        sample_rate, _, block_align = _read_at(file, parts[b"strf"], _WAVE_FORMAT)
        sample_size = _read_at(file, parts[b"strh"] + _STRH_SAMPLE_SIZE, "<I")[0]
        if packet is None or not block_align or sample_size != block_align or packet[0] % block_align:
            continue
        size, samples = packet
        if samples * block_align % size:  # not a whole number of samples a block: leave it as written
            continue
        per_block = samples * block_align // size
        _write_at(file, parts[b"strh"] + _STRH_RATE, per_block)
        _write_at(file, parts[b"strh"] + _STRH_RATE + 4, sample_rate)
        _write_at(file, parts[b"strf"] + _WAVE_PER_SECOND, round(sample_rate * block_align / per_block))


def _stream_headers(file: BinaryIO) -> list[dict[bytes, int]]:
    """Where each stream's header chunks (strh, strf, indx) start in the AVI ``file``, by stream."""
    size = file.seek(0, io.SEEK_END)
    header = next(((at, end) for ident, at, end in _chunks(file, 12, size) if ident == b"hdrl"), None)
    if header is None:
        return []
    lists = [(at, end) for ident, at, end in _chunks(file, *header) if ident == b"strl"]
    return [{ident: at for ident, at, _ in _chunks(file, *bounds)} for bounds in lists]


def _count_super_index(file: BinaryIO, at: int) -> None:
    """Give each entry of the OpenDML super index at ``at`` the number of chunks its standard
    index lists as its duration (the muxer gave bytes over the block align)."""
    entries = _read_at(file, at, _SUPER_INDEX)[3]
    for n in range(entries):
        entry = at + _SUPER_INDEX.size + n * _SUPER_ENTRY.size
        where = _read_at(file, entry, _SUPER_ENTRY)[0]
        _write_at(file, entry + 12, _read_at(file, where, _STANDARD_INDEX)[-1])


def _read_at(file: BinaryIO, at: int, layout: str | struct.Struct) -> tuple:
    layout = struct.Struct(layout) if isinstance(layout, str) else layout
    file.seek(at)
    return layout.unpack(file.read(layout.size))


def _write_at(file: BinaryIO, at: int, value: int) -> None:
    file.seek(at)
    file.write(struct.pack("<I", value))
