"""What a DPX picture's header states (SMPTE 268M) that FFmpeg's DPX encoder does not write: what
its samples stand for (the first image element's transfer characteristic and colorimetric codes:
printing density, for a film scan in Cineon log), where the picture came from (the orientation
header: original size and offsets, source file, input device), the film it was scanned from (the
film header: the edge code, i.e. manufacturer, film type, perforation offset, prefix and count;
format, frame position, sequence length, held count, frame rate, shutter angle, frame
identification, slate) and its time (the television header: SMPTE timecode, user bits, field and
signal information, frame rate), and the project and copyright it belongs to.

FFmpeg's DPX decoder reads the time (:func:`~vidrestore.io.probe.probe` takes the rate and the first
timecode from it) but not printing density (:func:`says_printing_density` does), and its encoder
writes a 1664-byte header that ends before the film and television headers, with a transfer
characteristic of its own ("unspecified video" unless the stream is tagged Rec. 709 or linear).
So a scan restored into DPX pictures would lose the edge codes and the timecode that a conform or
an edit list is built on, and a log scan would be read as video afterwards.
:func:`copy_header_fields` copies them over from each input picture to the picture made from it
(:func:`~vidrestore.io.headers.carry_headers`).
"""

from __future__ import annotations

import struct
from pathlib import Path

HEADER = 2048  # the generic (768 + 640 + 256 bytes) and industry (256 + 256) headers in full
TRANSFER, COLORIMETRIC = 801, 802  # the first image element's codes for what its samples stand for: 1 byte each
# The fields carried, as (offset, items, bytes an item): numbers of 2 or 4 bytes are converted
# between byte orders, text and single bytes are copied as they are.
CARRIED = (
    (260, 400, 1),  # project name, copyright
    (TRANSFER, 1, 1), (COLORIMETRIC, 1, 1),
    (1408, 6, 4),  # orientation: x, y offset; x, y centre (float); original width, height
    (1432, 188, 1),  # source file name, its creation time, input device name and serial number
    (1620, 4, 2), (1628, 2, 4),  # border validity; pixel aspect ratio
    (1664, 48, 1),  # film: edge code (manufacturer, film type, perforation offset, prefix, count), format
    (1712, 3, 4), (1724, 2, 4),  # frame position, sequence length, held count; frame rate, shutter angle (float)
    (1732, 132, 1),  # frame identification, slate information
    (1920, 2, 4), (1928, 4, 1),  # television: timecode, user bits; interlace, field number, video signal, padding
    (1932, 10, 4),  # sampling rates, frame rate, time offset, gamma, black level and gain, break point, white level, integration time (float)
)
PRINTING_DENSITY, LOGARITHMIC = 1, 3  # transfer characteristics of a log scan; scanners write the first
UNDEFINED = 0xFF  # DPX writes an undefined field as all ones
_IMAGE_OFFSET, _FILE_SIZE, _ELEMENTS, _ELEMENT_OFFSET = 4, 16, 770, 808  # where an extended header is re-pointed
_MAGIC = {b"SDPX": ">", b"XPDS": "<"}


def says_printing_density(path: Path) -> bool:
    """Whether the DPX picture ``path`` says its first image element holds printing density (or log) codes."""
    try:
        with open(path, "rb") as f:
            head = f.read(TRANSFER + 1)
    except OSError:
        return False
    return head[:4] in _MAGIC and len(head) > TRANSFER and head[TRANSFER] in (PRINTING_DENSITY, LOGARITHMIC)


def copy_header_fields(source: Path, target: Path) -> bool:
    """Copy into ``target``'s header each of the :data:`CARRIED` fields that ``source``'s states and
    ``target``'s does not state alike, converting byte order where the two differ, and extending
    ``target``'s header to 2048 bytes where a field lies past its end (FFmpeg's ends at 1664).
    A field is stated when it is not undefined: all ones, or for text all zeros too. A header (or
    a file: a damaged scan) that ends early states only what it holds. False, with nothing
    written, when either is not a DPX picture (``target`` of one image element) or there is nothing to copy."""
    with open(source, "rb") as f:
        head = f.read(HEADER)
    data = target.read_bytes()
    src_order, dst_order = _MAGIC.get(head[:4]), _MAGIC.get(data[:4])
    if src_order is None or dst_order is None or len(head) < 8 or len(data) < _ELEMENT_OFFSET + 4:
        return False
    if struct.unpack_from(dst_order + "H", data, _ELEMENTS)[0] != 1:
        return False
    stated = min(len(head), _u32(head, src_order, _IMAGE_OFFSET))  # how much of a header there is
    offset = _u32(data, dst_order, _IMAGE_OFFSET)
    fields = {at: value for at, items, size in CARRIED if at + items * size <= stated
              and (value := _in_order(head[at:at + items * size], size, src_order != dst_order)) != data[at:at + len(value)]
              and not _undefined(value, size)}
    if not fields:
        return False
    header = bytearray(data[:offset])
    if offset < max(at + len(value) for at, value in fields.items()):  # DPX writes the undefined rest as all ones
        header += b"\xff" * (HEADER - offset)
        for at, value in [(_IMAGE_OFFSET, HEADER), (_FILE_SIZE, HEADER + len(data) - offset), (_ELEMENT_OFFSET, HEADER)]:
            struct.pack_into(dst_order + "I", header, at, value)
    for at, value in fields.items():
        header[at:at + len(value)] = value
    target.write_bytes(bytes(header) + data[offset:])
    return True


def _in_order(field: bytes, size: int, swap: bool) -> bytes:
    """``field``'s items of ``size`` bytes, each reversed with ``swap`` (into the other byte order)."""
    if not swap or size == 1:
        return field
    return b"".join(field[i:i + size][::-1] for i in range(0, len(field), size))


def _undefined(field: bytes, size: int) -> bool:
    return all(b == UNDEFINED for b in field) or (size == 1 and len(field) > 1 and not any(field))


def _u32(data: bytes, order: str, at: int) -> int:
    return struct.unpack_from(order + "I", data, at)[0]
