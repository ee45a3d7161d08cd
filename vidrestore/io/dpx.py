"""What a DPX picture's header states (SMPTE 268M) that FFmpeg's DPX encoder does not write: what
its samples stand for (the first image element's transfer characteristic and colorimetric codes:
printing density, for a film scan in Cineon log) and its time (the film header's frame rate and the
television header's SMPTE timecode, user bits and frame rate).

FFmpeg's DPX decoder reads the time (:func:`~vidrestore.io.probe.probe` takes the rate and the first
timecode from it) but not printing density (:func:`says_printing_density` does), and its encoder
writes a 1664-byte header that ends before the time, with a transfer characteristic of its own
("unspecified video" unless the stream is tagged Rec. 709 or linear). So a scan restored into DPX
pictures would lose the timecode that a conform or an edit list is built on, and a log scan would
be read as video afterwards. :func:`copy_header_fields` copies them over from each input picture to
the picture made from it (:func:`~vidrestore.io.headers.carry_headers`).
"""

from __future__ import annotations

import struct
from pathlib import Path

HEADER = 2048  # the generic (768 + 640 + 256 bytes) and industry (256 + 256) headers in full
FIELDS = (1724, 1920, 1924, 1940)  # film frame rate (float), television timecode, user bits, frame rate: 4 bytes each
TRANSFER, COLORIMETRIC = 801, 802  # the first image element's codes for what its samples stand for: 1 byte each
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
    """Copy into ``target``'s header what ``source``'s states and ``target``'s does not: the transfer
    characteristic and colorimetric codes, and the time fields (extending ``target``'s header to
    2048 bytes when shorter, converting byte order where the two differ). False, with nothing
    written, when either is not a DPX picture (``target`` of one image element) or there is nothing
    to copy: ``source``'s codes are undefined or ``target``'s already, and its header (or file: a
    damaged scan) ends before its television header."""
    with open(source, "rb") as f:
        head = f.read(HEADER)
    data = target.read_bytes()
    src_order, dst_order = _MAGIC.get(head[:4]), _MAGIC.get(data[:4])
    if src_order is None or dst_order is None or len(head) < 8 or len(data) < _ELEMENT_OFFSET + 4:
        return False
    if struct.unpack_from(dst_order + "H", data, _ELEMENTS)[0] != 1:
        return False
    stated = min(len(head), _u32(head, src_order, _IMAGE_OFFSET))  # how much of a header there is
    codes = [at for at in (TRANSFER, COLORIMETRIC) if stated > at and head[at] not in (UNDEFINED, data[at])]
    times = stated >= max(FIELDS) + 4
    if not codes and not times:
        return False
    offset = _u32(data, dst_order, _IMAGE_OFFSET)
    header = bytearray(data[:offset])
    if times and offset < HEADER:  # FFmpeg's header: the rest is undefined, which DPX writes as all ones
        header += b"\xff" * (HEADER - offset)
        for at, value in [(_IMAGE_OFFSET, HEADER), (_FILE_SIZE, HEADER + len(data) - offset), (_ELEMENT_OFFSET, HEADER)]:
            struct.pack_into(dst_order + "I", header, at, value)
    for at in codes:
        header[at] = head[at]
    for at in FIELDS if times else ():
        struct.pack_into(dst_order + "I", header, at, _u32(head, src_order, at))
    target.write_bytes(bytes(header) + data[offset:])
    return True


def _u32(data: bytes, order: str, at: int) -> int:
    return struct.unpack_from(order + "I", data, at)[0]
