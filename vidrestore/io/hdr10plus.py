"""HDR10+ dynamic metadata (SMPTE ST 2094-40) carried from an HEVC or AV1 input into its
re-encoded HEVC or AV1 video.

HDR10+ video (Samsung's phones record it, streaming services master in it) holds, with each
frame, ITU-T T.35 user data: the picture's own brightness statistics and the curve that maps it
onto a dimmer display; HEVC carries it in a prefix SEI message, AV1 in a metadata OBU. FFmpeg's
x265 and SVT-AV1 wrappers here write none, so a restored HDR10+ video played as plain HDR10,
with the static tone mapping that HDR10+ exists to replace. The payloads are read from the
input's packets (their bytes as the camera wrote them, not FFmpeg's parsed form, which PyAV
cannot write back) and put into the output's packets of the same presentation time.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import av

from .probe import VideoInfo, open_input

PREFIX_SEI = 39  # HEVC nal_unit_type
_T35 = 4  # SEI payloadType user_data_registered_itu_t_t35; AV1 metadata_type ITUT_T35
_OBU_METADATA = 5
_OBU_PICTURE = frozenset({3, 4, 6, 7})  # frame header, tile group, frame, redundant frame header
# country (United States), provider (Samsung), provider-oriented code, application identifier 4
HDR10_PLUS_PREFIX = bytes([0xB5, 0x00, 0x3C, 0x00, 0x01, 0x04])
READ_FROM = frozenset({"hevc", "av1"})  # the codecs whose packets the payloads are read from
WRITTEN_BY = {"libx265": "hevc", "libsvtav1": "av1", "libaom-av1": "av1"}  # the encoders they are written for


def carried(source: VideoInfo, encoder: str) -> bool:
    """Whether ``source``'s HDR10+ metadata reaches video that ``encoder`` writes: HEVC or AV1,
    from HEVC or AV1 input with timestamps, by which the frames are matched."""
    return source.hdr10_plus and source.codec in READ_FROM and source.timestamps and encoder in WRITTEN_BY


def dropped_note(source: VideoInfo, encoder: str) -> list[str]:
    """A note when ``source`` is HDR10+ and its re-encoded video, written by ``encoder``, is not."""
    if not source.hdr10_plus or carried(source, encoder):
        return []
    why = (f"vidrestore reads it from HEVC and AV1 video only, not {source.codec}" if source.codec not in READ_FROM else
           "a raw stream has no timestamps to match its frames by; remux it into an .mp4 or .mkv first"
           if not source.timestamps else f"{encoder} does not write it; --codec libx265 or libsvtav1 keeps it")
    return [(f"the input is HDR10+: its dynamic metadata (SMPTE ST 2094-40) is not carried into the re-encoded video ({why}), "
             "which players tone-map by its HDR10 static metadata alone")]


def payloads_in(data: bytes, codec: str, length_size: int | None) -> list[bytes]:
    """The HDR10+ payloads in one packet of ``codec`` (hevc: NAL units framed as ``length_size``
    says, see :func:`nal_units`; av1: OBUs)."""
    if codec == "hevc":
        return [p for _, unit in nal_units(data, length_size) for p in hdr10_plus_payloads_of(unit)]
    return [body[1:-1] for _, kind, body in obus(data)  # metadata_type 4 (one byte), the payload, trailing bits 0x80
            if kind == _OBU_METADATA and body[:1] == bytes([_T35]) and body[1:].startswith(HDR10_PLUS_PREFIX)]


def with_payload(data: bytes, payload: bytes, codec: str, length_size: int | None) -> bytes:
    """``data`` (one packet of ``codec``) carrying ``payload`` where a decoder looks for it:
    before its first picture slice (HEVC) or frame (AV1)."""
    if codec == "hevc":
        return with_sei(data, sei_nal(payload), length_size)
    body = bytes([_T35]) + payload + b"\x80"
    unit = bytes([_OBU_METADATA << 3 | 2]) + _leb128(len(body)) + body  # has_size_field set
    first = next((offset for offset, kind, _ in obus(data) if kind in _OBU_PICTURE), len(data))
    return data[:first] + unit + data[first:]


def obus(data: bytes) -> list[tuple[int, int, bytes]]:
    """The OBUs of one AV1 packet (low-overhead format, as MP4, Matroska and encoders carry it):
    each one's offset, type and payload."""
    found, pos = [], 0
    while pos < len(data):
        header = data[pos]
        start = pos + 1 + (header >> 2 & 1)  # an extension byte follows where its flag is set
        size, start = _read_leb128(data, start) if header >> 1 & 1 else (len(data) - start, start)
        found.append((pos, header >> 3 & 15, data[start : start + size]))
        pos = start + size
    return found


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append(value & 0x7F | (0x80 if value >> 7 else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < len(data):
        byte = data[pos]
        value, pos, shift = value | (byte & 0x7F) << shift, pos + 1, shift + 7
        if not byte & 0x80:
            break
    return value, pos


def sei_nal(payload: bytes) -> bytes:
    """A prefix SEI NAL unit (its two-byte header and escaped RBSP, no start code) holding one
    T.35 message with ``payload``."""
    rbsp = _sei_number(_T35) + _sei_number(len(payload)) + payload + b"\x80"  # rbsp_trailing_bits
    return bytes([PREFIX_SEI << 1, 1]) + escape(rbsp)


def hdr10_plus_payloads_of(nal: bytes) -> list[bytes]:
    """The HDR10+ T.35 payloads in the SEI NAL unit ``nal`` (header included, escaped)."""
    if len(nal) < 3 or (nal[0] >> 1) & 0x3F != PREFIX_SEI:
        return []
    rbsp, found, pos = unescape(nal[2:]), [], 0
    while pos < len(rbsp) and rbsp[pos:] != b"\x80":
        kind, pos = _read_sei_number(rbsp, pos)
        size, pos = _read_sei_number(rbsp, pos)
        if pos + size > len(rbsp):
            break  # a damaged message: what was read before it stands
        payload = rbsp[pos : pos + size]
        if kind == _T35 and payload.startswith(HDR10_PLUS_PREFIX):
            found.append(payload)
        pos += size
    return found


def nal_units(data: bytes, length_size: int | None) -> list[tuple[int, bytes]]:
    """The NAL units of one packet, each with the offset of its start code or length field:
    Annex B when ``length_size`` is None, else each unit preceded by its length in that many bytes
    (MP4's and Matroska's hvcC layout)."""
    if length_size is None:
        return _annex_b_units(data)
    units, pos = [], 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        units.append((pos, data[pos + length_size : pos + length_size + size]))
        pos += length_size + size
    return units


def with_sei(data: bytes, nal: bytes, length_size: int | None) -> bytes:
    """``data`` (one access unit) with ``nal`` put before its first picture slice, where a prefix SEI goes."""
    vcl = next((offset for offset, unit in nal_units(data, length_size) if unit and (unit[0] >> 1) & 0x3F < 32), len(data))
    framed = (b"\x00\x00\x00\x01" if length_size is None else len(nal).to_bytes(length_size, "big")) + nal
    return data[:vcl] + framed + data[vcl:]


def length_size(stream: av.stream.Stream) -> int | None:
    """How many bytes count each NAL unit's length in ``stream``'s packets (from its hvcC
    configuration record), or None where they are Annex B (MPEG-TS, a raw .hevc, x265's own output)."""
    extra = stream.codec_context.extradata or b""
    return (extra[21] & 3) + 1 if len(extra) > 22 and extra[0] == 1 else None


def hdr10_plus_payloads(path: str | Path) -> dict[int, bytes]:
    """The HDR10+ payload of each frame of ``path``'s HEVC or AV1 video that has one, by the frame's
    presentation time (in its stream's time base). Read from the packets alone, without decoding;
    kept for the file as it is, since each segment of a long run asks again."""
    stat = os.stat(path)
    return _payloads(str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _payloads(path: str, *identity: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    with open_input(path) as container:
        stream = container.streams.video[0]
        codec, size = stream.codec_context.codec.canonical_name, length_size(stream)
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                payloads = payloads_in(bytes(packet), codec, size)
                if payloads:
                    found[packet.pts] = payloads[0]
    return found


def _annex_b_units(data: bytes) -> list[tuple[int, bytes]]:
    starts, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0:
        starts.append(pos)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    units = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(data)
        if k + 1 < len(starts) and data[end - 1] == 0:
            end -= 1  # a four-byte start code's leading zero belongs to the next unit
        units.append((start - 1 if start and data[start - 1] == 0 else start, data[start + 3 : end]))
    return units


def _sei_number(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes([value % 255])


def _read_sei_number(rbsp: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while pos < len(rbsp) and rbsp[pos] == 0xFF:
        value, pos = value + 255, pos + 1
    return (value + rbsp[pos], pos + 1) if pos < len(rbsp) else (value, pos)


def escape(rbsp: bytes) -> bytes:
    """Emulation prevention (H.264's and HEVC's): no start code may appear inside a NAL unit, so 00 00
    followed by 00-03 gets a 03 between."""
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def unescape(escaped: bytes) -> bytes:
    """A NAL unit's payload without its emulation prevention bytes (see :func:`escape`)."""
    out, zeros = bytearray(), 0
    for byte in escaped:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)
