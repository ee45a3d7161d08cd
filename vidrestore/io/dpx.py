"""The time a DPX picture states (SMPTE 268M): the film header's frame rate and the television
header's SMPTE timecode, user bits and frame rate.

FFmpeg's DPX decoder reads them (:func:`~vidrestore.io.probe.probe` takes the rate and the first
timecode from it), but its encoder writes a 1664-byte header that ends before either, so a scan
restored into DPX pictures would lose the timecode that a conform or an edit list is built on.
:func:`copy_time_fields` copies them over from each input picture to the picture made from it
(:func:`~vidrestore.io.headers.carry_headers`).
"""

from __future__ import annotations

import struct
from pathlib import Path

HEADER = 2048  # the generic (768 + 640 + 256 bytes) and industry (256 + 256) headers in full
FIELDS = (1724, 1920, 1924, 1940)  # film frame rate (float), television timecode, user bits, frame rate: 4 bytes each
_IMAGE_OFFSET, _FILE_SIZE, _ELEMENTS, _ELEMENT_OFFSET = 4, 16, 770, 808  # where an extended header is re-pointed
_MAGIC = {b"SDPX": ">", b"XPDS": "<"}


def copy_time_fields(source: Path, target: Path) -> bool:
    """Copy ``source``'s time fields into ``target``'s header (extended to 2048 bytes when shorter),
    converting byte order where the two differ; False when either is not a one-element DPX picture
    or ``source``'s header ends before its television header."""
    with open(source, "rb") as f:
        head = f.read(HEADER)
    data = target.read_bytes()
    src_order, dst_order = _MAGIC.get(head[:4]), _MAGIC.get(data[:4])
    if src_order is None or dst_order is None or min(len(head), _u32(head, src_order, _IMAGE_OFFSET)) < max(FIELDS) + 4:
        return False  # not DPX, or a header (or a file: a damaged scan) that ends before the television header
    offset = _u32(data, dst_order, _IMAGE_OFFSET)
    if struct.unpack_from(dst_order + "H", data, _ELEMENTS)[0] != 1:
        return False
    header = bytearray(data[:offset])
    if offset < HEADER:  # FFmpeg's header: the rest is undefined, which DPX writes as all ones
        header += b"\xff" * (HEADER - offset)
        for at, value in [(_IMAGE_OFFSET, HEADER), (_FILE_SIZE, HEADER + len(data) - offset), (_ELEMENT_OFFSET, HEADER)]:
            struct.pack_into(dst_order + "I", header, at, value)
    for at in FIELDS:
        struct.pack_into(dst_order + "I", header, at, _u32(head, src_order, at))
    target.write_bytes(bytes(header) + data[offset:])
    return True


def _u32(data: bytes, order: str, at: int) -> int:
    return struct.unpack_from(order + "I", data, at)[0]
