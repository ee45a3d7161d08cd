"""OpenEXR header attributes that FFmpeg's encoder does not write, carried into restored pictures.

A plate's header says more than its pixels: its primaries and white point (``chromaticities``, an
ACEScg plate's differ from Rec. 709's), its timecode, frame rate, camera and lens data, the
studio's own attributes. FFmpeg's OpenEXR encoder writes the channels, compression and windows
only, and its frame rate from the stream's, so a restored plate would be read downstream as
another colour space and lose what a conform is built on. :func:`copy_attributes` copies every
attribute but those that describe how the pixels are stored from each input picture into the
picture made from it (as :mod:`vidrestore.io.dpx` does for DPX time fields).

Single-part scan-line files only (what FFmpeg reads and writes); others are left as they are.
"""

from __future__ import annotations

import struct
from pathlib import Path

MAGIC = b"\x76\x2f\x31\x01"
_SINGLE_PART_SCANLINES = 0x1A00  # version bits of tiled, deep and multi-part files
# how the pixels are stored, and which program wrote them: the written file's own are kept
STRUCTURAL = {"channels", "compression", "dataWindow", "displayWindow", "lineOrder", "pixelAspectRatio",
              "screenWindowCenter", "screenWindowWidth", "tiles", "chunkCount", "type", "name", "version", "writer"}
# scan lines per chunk of each compression (NONE, RLE, ZIPS, ZIP, PIZ, PXR24, B44, B44A, DWAA, DWAB)
_LINES_PER_CHUNK = (1, 1, 1, 16, 32, 16, 32, 32, 32, 256)

Attribute = tuple[bytes, bytes, bytes]  # name, type, value


def read_header(data: bytes) -> tuple[list[Attribute], int] | None:
    """The attributes of a single-part scan-line OpenEXR file, and where its header ends (past the
    null byte that closes it); None for other files."""
    if data[:4] != MAGIC or struct.unpack_from("<I", data, 4)[0] & _SINGLE_PART_SCANLINES:
        return None
    attributes, at = [], 8
    try:
        while data[at] != 0:
            name_end = data.index(b"\0", at)
            type_end = data.index(b"\0", name_end + 1)
            size = struct.unpack_from("<i", data, type_end + 1)[0]
            value_at = type_end + 5
            attributes.append((data[at:name_end], data[name_end + 1:type_end], data[value_at:value_at + size]))
            at = value_at + size
    except (IndexError, ValueError, struct.error):
        return None  # a truncated header
    return attributes, at + 1


def _head(path: Path) -> bytes:
    """The start of ``path``, enough for its header (a plate's pictures run to tens of MB)."""
    with open(path, "rb") as f:
        data = f.read(1 << 20)
        return data + f.read() if read_header(data) is None else data


def attributes_of(path: Path) -> dict[str, bytes]:
    """The attributes of an OpenEXR file by name (their values as stored); empty for other files."""
    parsed = read_header(_head(path))
    return {name.decode(): value for name, _, value in parsed[0]} if parsed else {}


def channels_of(path: Path) -> list[str]:
    """The names of the channels an OpenEXR file holds (``chlist``: a name, then 16 bytes of
    sample type and sampling, each); none for other files."""
    value, names, at = attributes_of(path).get("channels", b""), [], 0
    while at < len(value) and value[at] != 0:
        end = value.index(b"\0", at)
        names.append(value[at:end].decode(errors="replace"))
        at = end + 17
    return names


COLOUR_CHANNELS = ("R", "G", "B", "A")  # what FFmpeg reads and writes


def chromaticities_of(path: Path) -> tuple[float, ...]:
    """The primaries and white point an OpenEXR file states (x, y of red, green, blue and white);
    () when it states none."""
    value = attributes_of(path).get("chromaticities", b"")
    return struct.unpack("<8f", value) if len(value) == 32 else ()


def _chunks(attributes: list[Attribute]) -> int:
    """How many entries the offset table after the header holds: a chunk of scan lines each."""
    found = {name: value for name, _, value in attributes}
    _, y_min, _, y_max = struct.unpack("<4i", found[b"dataWindow"])
    return -(-(y_max - y_min + 1) // _LINES_PER_CHUNK[found[b"compression"][0]])


def write_attributes(path: Path, attributes: list[Attribute]) -> bool:
    """Set ``attributes`` in ``path``'s header, each in place of the one of its name or after the
    others, moving the pixel data and re-pointing the offset table; False when ``path`` is not a
    single-part scan-line OpenEXR file."""
    data = path.read_bytes()
    parsed = read_header(data)
    if parsed is None:
        return False
    kept, end = parsed
    new = {a[0]: a for a in attributes}
    merged = [new.pop(a[0], a) for a in kept] + list(new.values())
    header = data[:8] + b"".join(name + b"\0" + kind + b"\0" + struct.pack("<i", len(value)) + value
                                 for name, kind, value in merged) + b"\0"
    if header != data[:end]:
        count = _chunks(kept)
        offsets = struct.unpack_from(f"<{count}Q", data, end)
        path.write_bytes(header + struct.pack(f"<{count}Q", *(o + len(header) - end for o in offsets)) + data[end + 8 * count:])
    return True


def copy_attributes(source: Path, target: Path, comment: str = "") -> bool:
    """Write every attribute of ``source``'s header that does not describe how pixels are stored
    into ``target``'s (:func:`write_attributes`), and ``comment`` after what its ``comments``
    attribute says (as a restored video's comment tag gets it); False when either is not a
    single-part scan-line OpenEXR file."""
    parsed = read_header(_head(source))
    if parsed is None:
        return False
    carried = [a for a in parsed[0] if a[0].decode(errors="replace") not in STRUCTURAL]
    if comment:
        earlier = next((value for name, _, value in carried if name == b"comments"), b"")
        carried.append((b"comments", b"string", b" | ".join([earlier, comment.encode()]) if earlier else comment.encode()))
    return write_attributes(target, carried)
