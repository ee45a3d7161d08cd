"""A photo's EXIF block (camera, date taken, exposure, GPS) carried into its restored picture.

FFmpeg's JPEG encoder writes no EXIF, and its PNG encoder writes the block only from an untouched
decoded frame, so a restored family photo lost the date that photo libraries sort it by. The
input's block is copied byte for byte into the written JPEG (an APP1 segment) or PNG (an eXIf
chunk), with its orientation set to "upright": the picture is written turned as it is shown.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from .sequence import is_sequence

_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112
_WRITES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}  # the output types a block is written into


def exif_of(picture: str | Path) -> bytes | None:
    """The EXIF block of the picture file ``picture`` (TIFF-structured, without its "Exif" header),
    read by Pillow, or None where it has none (a video, a sequence, a picture without one)."""
    from PIL import Image, UnidentifiedImageError

    if is_sequence(picture):
        return None
    try:
        with Image.open(picture) as image:
            block = image.info.get("exif")
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    if not block:
        return None
    return block.removeprefix(_HEADER)


def upright(block: bytes) -> bytes:
    """``block`` with its IFD0 orientation tag (if any) saying the picture is stored as shown."""
    if len(block) < 8 or block[:2] not in (b"II", b"MM"):
        return block
    order = "<" if block[:2] == b"II" else ">"
    (first,) = struct.unpack(order + "I", block[4:8])
    if first + 2 > len(block):
        return block
    (count,) = struct.unpack(order + "H", block[first : first + 2])
    for entry in range(first + 2, min(first + 2 + 12 * count, len(block) - 11), 12):
        tag, kind = struct.unpack(order + "HH", block[entry : entry + 4])
        if tag == _ORIENTATION and kind == 3:  # SHORT, its value held in the entry itself
            return block[: entry + 8] + struct.pack(order + "H", 1) + block[entry + 10 :]
    return block


def carry_exif(source: str | Path, written: Path, output: str | Path) -> list[str]:
    """Write the EXIF block of the picture ``source`` into ``written`` (the file that becomes
    ``output``) where its type holds one; a note for the report where it does not."""
    block = exif_of(source)
    if block is None or is_sequence(output):
        return []
    kind = _WRITES.get(Path(output).suffix.lower())
    if kind is None:
        return [(f"the photo's EXIF block (camera, date taken, exposure) is not written into the {Path(output).suffix} "
                 "output; write a .jpg or .png to keep it")]
    data = written.read_bytes()
    written.write_bytes(_into_jpeg(data, upright(block)) if kind == "JPEG" else _into_png(data, upright(block)))
    return []


def _into_jpeg(data: bytes, block: bytes) -> bytes:
    """``data`` (a JPEG) with ``block`` as an APP1 segment after its SOI and any APP0 (JFIF) segment,
    and without the EXIF segments it had."""
    segment = _HEADER + block
    if len(segment) + 2 > 0xFFFF:
        return data  # larger than one segment holds (a block with a large thumbnail): left out
    pos, kept = 2, [data[:2]]
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] in range(0xE0, 0xF0):  # APPn segments
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if not (data[pos + 1] == 0xE1 and data[pos + 4 : pos + 10] == _HEADER):
            kept.append(data[pos:end])
        pos = end
    app1 = b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment
    jfif = 2 if len(kept) > 1 and kept[1][1] == 0xE0 else 1
    return b"".join(kept[:jfif] + [app1] + kept[jfif:]) + data[pos:]


def _into_png(data: bytes, block: bytes) -> bytes:
    """``data`` (a PNG) with ``block`` as an eXIf chunk before its first IDAT, in place of any it had."""
    chunks, pos = [data[:8]], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if kind == b"IDAT" and not any(c[4:8] == b"eXIf" for c in chunks[1:]):
            chunks.append(struct.pack(">I", len(block)) + b"eXIf" + block + struct.pack(">I", zlib.crc32(b"eXIf" + block)))
        if kind != b"eXIf":
            chunks.append(data[pos:end])
        pos = end
    return b"".join(chunks) + data[pos:]
