"""What a restored photo carries besides its pixels: the input's EXIF block (camera, date taken,
exposure, GPS) and a comment saying its faces were restored.

FFmpeg's JPEG encoder writes no EXIF, and its PNG encoder writes the block only from an untouched
decoded frame, so a restored family photo lost the date that photo libraries sort it by. The
input's block is copied byte for byte into the written JPEG (an APP1 segment) or PNG (an eXIf
chunk), with its orientation set to "upright": the picture is written turned as it is shown. The
comment goes where viewers and archives read one (a JPEG's COM segment, a PNG's tEXt "Comment"),
as a restored video's goes into its comment tag; FFmpeg's picture muxer writes no tags.
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


def carry_photo_tags(source: str | Path, written: Path, output: str | Path, comment: str) -> list[str]:
    """Write the EXIF block of the picture ``source`` and ``comment`` into ``written`` (the file that
    becomes the picture ``output``) where its type holds them; a note for the report where the
    block is lost."""
    if is_sequence(output):
        return []
    block = exif_of(source)
    kind = _WRITES.get(Path(output).suffix.lower())
    if kind is None:
        return [] if block is None else [(f"the photo's EXIF block (camera, date taken, exposure) is not written into the "
                                          f"{Path(output).suffix} output; write a .jpg or .png to keep it")]
    block = upright(block) if block is not None else None
    data = written.read_bytes()
    written.write_bytes(_into_jpeg(data, block, comment) if kind == "JPEG" else _into_png(data, block, comment))
    return []


def _into_jpeg(data: bytes, block: bytes | None, comment: str = "") -> bytes:
    """``data`` (a JPEG) with ``block`` as an APP1 segment after its SOI and any APP0 (JFIF) segment,
    in place of the EXIF segments it had, and ``comment`` in a COM segment after its APPn segments,
    in place of the encoder's signature ("Lavc62...", the comment viewers would show)."""
    pos, kept = 2, [data[:2]]
    while pos + 4 <= len(data) and data[pos] == 0xFF and (data[pos + 1] in range(0xE0, 0xF0) or data[pos + 1] == 0xFE):
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        replaced = (block is not None and data[pos + 1] == 0xE1 and data[pos + 4 : pos + 10] == _HEADER) or \
            (comment and data[pos + 1] == 0xFE)
        if not replaced:
            kept.append(data[pos:end])
        pos = end
    jfif = 2 if len(kept) > 1 and kept[1][1] == 0xE0 else 1
    added = [_segment(0xE1, _HEADER + block)] if block is not None else []
    noted = [_segment(0xFE, comment.encode())] if comment else []
    return b"".join(kept[:jfif] + added + kept[jfif:] + noted) + data[pos:]


def _segment(marker: int, payload: bytes) -> bytes:
    """A JPEG marker segment; a payload larger than one segment holds (an EXIF block with a large
    thumbnail) is left out."""
    return b"" if len(payload) + 2 > 0xFFFF else bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _into_png(data: bytes, block: bytes | None, comment: str = "") -> bytes:
    """``data`` (a PNG) with ``block`` as an eXIf chunk before its first IDAT, in place of any it
    had, and ``comment`` as a tEXt chunk keyed "Comment"."""
    added = ([_chunk(b"eXIf", block)] if block is not None else []) + \
        ([_chunk(b"tEXt", b"Comment\0" + comment.encode("latin-1", "replace"))] if comment else [])
    chunks, pos = [data[:8]], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if kind == b"IDAT":
            chunks, added = chunks + added, []
        if kind != b"eXIf" or block is None:
            chunks.append(data[pos:end])
        pos = end
    return b"".join(chunks) + data[pos:]


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
