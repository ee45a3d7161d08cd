"""What a restored photo carries besides its pixels: the input's EXIF block (camera, date taken,
exposure, GPS) and a comment saying its faces were restored.

FFmpeg's JPEG encoder writes no EXIF, and its PNG encoder writes the block only from an untouched
decoded frame, so a restored family photo lost the date that photo libraries sort it by. The
input's block is copied byte for byte into the written JPEG (an APP1 segment) or PNG (an eXIf
chunk), with its orientation set to "upright": the picture is written turned as it is shown. The
comment goes where viewers and archives read one (a JPEG's COM segment, a PNG's tEXt "Comment"),
as a restored video's goes into its comment tag; FFmpeg's picture muxer writes no tags.

Photos of HEIF's family (AVIF, HEIC) are read by FFmpeg's MOV demuxer; one made of tiles (a
phone's HEIC), which PyAV would give tile by tile, is told by its header (:func:`heif_primary_type`).

A grey photo written as a JPEG is written grey (one component): FFmpeg's JPEG encoder takes no
grey pixel format, so its picture of neutral chroma is coded again from its luma alone, with the
quantisation table FFmpeg chose (levels within 2 of its, a smaller file).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .sequence import files_of, is_sequence

if TYPE_CHECKING:
    from PIL import Image

_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112
_WRITES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}  # the types written into


def displayed_rgb(image: Image.Image) -> np.ndarray:
    """``image`` as 8-bit RGB (H, W, 3), turned as its EXIF orientation says it is shown (a phone's
    photos are stored turned). Pillow's own conversion of 16-bit grey (a scan's "I;16" PNG or TIFF)
    kept the low byte's range, every level above 255 white: no face was found in such a photo."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I"):  # 16-bit grey; a 32-bit one is taken to hold 16-bit codes too
        grey = np.clip(np.asarray(image, np.float64) / 257, 0, 255)
    elif image.mode == "F":  # float grey: from 0 to 1, or levels to 255 where it goes past 1 (as Pillow makes it)
        values = np.nan_to_num(np.asarray(image, np.float64))
        grey = np.clip(values * (255 if np.nanmax(values, initial=0) <= 1 else 1), 0, 255)
    else:
        return np.array(image.convert("RGB"))  # writable, so torch.from_numpy may share it
    return np.repeat(np.rint(grey).astype(np.uint8)[..., None], 3, axis=2)


@contextmanager
def opened_reference(photo: str | Path) -> Iterator[Image.Image]:
    """A reference photo (``--reference``) opened by Pillow, its header read; a file that is not
    there or not a picture (here or while it is read in the ``with`` block) raises ``UsageError``
    naming it. Needs no torch, so the command line opens it before torch loads."""
    from PIL import Image

    from ..errors import UsageError

    try:
        with Image.open(photo) as image:
            yield image
    except (OSError, ValueError) as exc:  # Pillow's "cannot identify image file" is an OSError with no errno
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a picture Pillow reads (JPEG, PNG, TIFF, WebP...)"
        raise UsageError(f"cannot read the reference photo {photo}: {why}") from exc


def read_reference(photo: str | Path) -> np.ndarray:
    """A reference photo as :func:`displayed_rgb` gives it (:func:`opened_reference`'s errors)."""
    with opened_reference(photo) as image:
        return displayed_rgb(image)


def photo_tags(picture: str | Path) -> tuple[bytes | None, bytes | None]:
    """The EXIF block (TIFF-structured, without its "Exif" header) and the ICC profile of the
    picture file ``picture``, read by Pillow; None for each it lacks (and for a video or a sequence)."""
    from PIL import Image, UnidentifiedImageError

    if is_sequence(picture):
        return None, None
    try:
        with Image.open(picture) as image:
            block, profile = image.info.get("exif"), image.info.get("icc_profile")
    except (OSError, UnidentifiedImageError, ValueError):
        return None, None
    return (block.removeprefix(_HEADER) if block else None), profile or None


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


# Still pictures of HEIF's family (AVIF, a phone's HEIC), which FFmpeg reads through its MOV demuxer
HEIF_SUFFIXES = {".avif", ".heic", ".heif"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"avif", b"avis"}


def is_photo(path: str | Path) -> bool:
    """Whether ``path`` names one still picture: a file FFmpeg writes with its image2 muxer (JPEG,
    PNG, TIFF...), or one of HEIF's family."""
    from .containers import is_picture_name

    path = Path(path)
    return not is_sequence(path) and (is_picture_name(path) or path.suffix.lower() in HEIF_SUFFIXES)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The ISO base media boxes in ``data[start:end]``: (type, where its body starts, where it ends)."""
    found, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        head = 8
        if size == 1 and pos + 16 <= end:
            size, head = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < head:
            break
        found.append((kind, pos + head, min(pos + size, end)))
        pos += size
    return found


def heif_primary_type(path: str | Path) -> bytes | None:
    """The item type of the primary picture of the HEIF file ``path`` (b"hvc1", b"av01", or b"grid"
    for one made of tiles, as a phone's HEIC is); None for a file that is no HEIF picture, or whose
    header is not read here."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            top = _boxes(head, 0, len(head))
            if not top or top[0][0] != b"ftyp":
                return None
            _, start, end = top[0]
            if not {head[start : start + 4], *(head[i : i + 4] for i in range(start + 8, end - 3, 4))} & _HEIF_BRANDS:
                return None
            head += f.read(1 << 20)  # the header precedes the pictures' data
    except OSError:
        return None
    try:
        return _primary_item_type(head)
    except (struct.error, IndexError):  # a header cut short or damaged: the decoder says what it can read
        return None


def _primary_item_type(head: bytes) -> bytes | None:
    meta = next(((start, end) for kind, start, end in _boxes(head, 0, len(head)) if kind == b"meta"), None)
    inside = {kind: (start, end) for kind, start, end in _boxes(head, meta[0] + 4, meta[1])} if meta else {}  # a full box
    if b"pitm" not in inside or b"iinf" not in inside:
        return None
    at, _ = inside[b"pitm"]
    primary = struct.unpack(">H", head[at + 4 : at + 6])[0] if head[at] == 0 else struct.unpack(">I", head[at + 4 : at + 8])[0]
    start, end = inside[b"iinf"]
    for kind, at, _ in _boxes(head, start + 4 + (2 if head[start] == 0 else 4), end):
        if kind == b"infe" and head[at] in (2, 3):  # the versions that name an item type
            wide = head[at] == 3
            item = struct.unpack(">I" if wide else ">H", head[at + 4 : at + (8 if wide else 6)])[0]
            if item == primary:
                type_at = at + (10 if wide else 8)
                return head[type_at : type_at + 4]
    return None


def writes_grey_jpeg(source_pix_fmt: str, output: str | Path) -> bool:
    """Whether the picture (or each of the sequence) ``output`` is a JPEG written grey, as its
    source of ``source_pix_fmt`` is (:func:`carry_photo_tags`)."""
    import av

    grey = source_pix_fmt != "pal8" and all(c.is_luma or c.is_alpha for c in av.VideoFormat(source_pix_fmt).components)
    return grey and _WRITES.get(Path(output).suffix.lower()) == "JPEG"


def carry_photo_tags(source: str | Path, written: Path, output: str | Path, comment: str) -> list[str]:
    """Write the EXIF block of the picture ``source`` and ``comment`` into ``written`` (the file that
    becomes the picture ``output``) where its type holds them, and its ICC profile where FFmpeg's
    encoder writes none (TIFF, WebP; its PNG and JPEG encoders write the frame's); a note for the
    report where the block is lost. A grey ``source`` written as a JPEG is written grey (:func:`writes_grey_jpeg`)."""
    from .probe import probe

    kind = _WRITES.get(Path(output).suffix.lower())
    if kind == "JPEG" and writes_grey_jpeg(probe(source).pix_fmt, output):  # a video's output is not probed for it
        for picture in files_of(written) if is_sequence(written) else [written]:
            picture.write_bytes(_grey_jpeg(picture.read_bytes()))
    if is_sequence(output):
        return []
    block, profile = photo_tags(source)
    lost = [] if block is None or kind in ("JPEG", "PNG", "WEBP") else [
        (f"the photo's EXIF block (camera, date taken, exposure) is not written into the {Path(output).suffix} output; "
         "write a .jpg, .png or .webp to keep it")]
    if kind is None:
        return lost
    block = upright(block) if block is not None else None
    data = written.read_bytes()
    written.write_bytes(_into_jpeg(data, block, comment) if kind == "JPEG" else
                        _into_png(data, block, comment) if kind == "PNG" else
                        _into_webp(data, block, profile) if kind == "WEBP" else _into_tiff(data, profile, comment))
    return lost


def _grey_jpeg(data: bytes) -> bytes:
    """``data`` (a JPEG of neutral chroma) coded again from its luma alone, decoded as it is coded
    (Pillow's draft mode) and quantised by its own luma table, keeping its ICC profile."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        luma_table, profile = image.quantization[0], image.info.get("icc_profile")
        image.draft("L", image.size)
        luma = image.convert("L")
    out = io.BytesIO()
    luma.save(out, "JPEG", qtables=[luma_table], **({"icc_profile": profile} if profile else {}))
    return out.getvalue()


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


_TIFF_ENTRY = {"<": "<HHII", ">": ">HHII"}
_ICC_TAG, _DESCRIPTION_TAG = 34675, 270


def _into_tiff(data: bytes, profile: bytes | None, comment: str) -> bytes:
    """``data`` (a TIFF) with ``profile`` as its ICC tag and ``comment`` as its ImageDescription,
    in place of any it had: the first IFD is written again at the end of the file with them, and
    their values after it (the IFD's other entries keep their values, which lie where they were)."""
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return data
    order = "<" if data[:2] == b"II" else ">"
    (first,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[first : first + 2])
    entries = {struct.unpack(order + "H", data[e : e + 2])[0]: data[e : e + 12] for e in range(first + 2, first + 2 + 12 * count, 12)}
    (following,) = struct.unpack(order + "I", data[first + 2 + 12 * count : first + 6 + 12 * count])
    values = {tag: value for tag, value in ((_ICC_TAG, profile), (_DESCRIPTION_TAG, comment.encode() + b"\0" if comment else None))
              if value is not None}
    size = 2 + 12 * len(entries.keys() | values.keys()) + 4
    start = len(data) + len(data) % 2  # an IFD begins on a word boundary
    out, at = bytearray(data + b"\0" * (start - len(data))), start + size + size % 2
    blobs = bytearray()
    for tag, value in values.items():
        kind = 7 if tag == _ICC_TAG else 2  # UNDEFINED bytes, ASCII
        entries[tag] = struct.pack(_TIFF_ENTRY[order], tag, kind, len(value), at + len(blobs)) if len(value) > 4 else \
            struct.pack(order + "HHI", tag, kind, len(value)) + value.ljust(4, b"\0")
        blobs += value + b"\0" * (len(value) % 2)
    out += struct.pack(order + "H", len(entries)) + b"".join(entries[tag] for tag in sorted(entries))
    out += struct.pack(order + "I", following) + b"\0" * (size % 2) + blobs
    out[4:8] = struct.pack(order + "I", start)
    return bytes(out)


def _into_webp(data: bytes, block: bytes | None, profile: bytes | None) -> bytes:
    """``data`` (a WebP) in WebP's extended format, with ``profile`` as its ICCP chunk and ``block``
    as its EXIF chunk, in place of any it had (WebP has no comment chunk; XMP would be one)."""
    import io

    from PIL import Image

    if block is None and profile is None or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return data
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + size % 2
    extended = dict(chunks).get(b"VP8X")
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    flags = (extended[0] if extended else 0x10 * any(k == b"ALPH" for k, _ in chunks)) & ~0x28
    flags |= (0x20 if profile is not None else 0) | (0x08 if block is not None else 0)  # ICC, EXIF
    header = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    image_chunks = [(k, v) for k, v in chunks if k not in (b"VP8X", b"ICCP", b"EXIF")]
    ordered = [(b"VP8X", header), *([(b"ICCP", profile)] if profile is not None else []), *image_chunks,
               *([(b"EXIF", block)] if block is not None else [])]
    body = b"".join(k + struct.pack("<I", len(v)) + v + b"\0" * (len(v) % 2) for k, v in ordered)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body
