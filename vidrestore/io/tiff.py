"""Which TIFF files FFmpeg's TIFF decoder reads as they are, told from the fields of their first IFD.

The decoder reads a file's compression and bits a sample, but not its sample format (tag 339):
signed samples came out as unsigned ones (a negative sample turned bright), half floats as
integers and 32-bit integer RGB as floats (NaNs), and a face found in such a picture would be
restored on nonsense. Other layouts it refuses, and a float TIFF in grey or in doubles was called
"truncated or corrupt". Float RGB in 32 bits it reads (linear light, :mod:`.linear`); float RGBA
too, but FFmpeg's scaler converts it to nothing else.
Pillow opens none of these, so the fields are read here.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from pathlib import Path

from ..errors import InputError

COMPRESSION, BITS, CHANNELS, SAMPLE_FORMAT = 259, 258, 277, 339
_UNSIGNED, _SIGNED, _FLOAT, _VOID = 1, 2, 3, 4  # sample formats; "void" samples are read as unsigned ones
_VALUE_TYPES = {3: "H", 4: "I"}  # SHORT and LONG: the types of the fields read here
_MOST_VALUES = 16  # a field of more values is not one of these

# Compressions (tag 259) FFmpeg's TIFF decoder reads: none, CCITT (RLE, fax 3 and 4), LZW, Deflate
# (both codes), PackBits. Of the others, JPEG decoded as a black picture without a word (a
# face-less "conversion" wrote it), and LZMA and Zstandard were taken for a truncated file.
_READ_COMPRESSIONS = frozenset({1, 2, 3, 4, 5, 8, 32946, 32773})
_COMPRESSION_NAMES = {6: "old-style JPEG", 7: "JPEG", 34925: "LZMA", 50000: "Zstandard", 50001: "WebP", 50002: "JPEG XL",
                      32809: "ThunderScan", 34676: "SGI LogLuv", 34677: "SGI LogL"}


def tiff_fields(path: Path, tags: Collection[int]) -> dict[int, tuple[int, ...]]:
    """The values of those of ``tags`` that are SHORT or LONG fields of the first IFD of the
    classic TIFF file ``path``; {} for a file that is not one or is cut short."""
    try:
        with path.open("rb") as file:
            head = file.read(8)
            if head[:4] not in (b"II*\0", b"MM\0*"):
                return {}
            order = "<" if head[:1] == b"I" else ">"
            file.seek(struct.unpack(order + "I", head[4:8])[0])
            (count,) = struct.unpack(order + "H", file.read(2))
            entries = file.read(12 * count)
            if len(entries) < 12 * count:
                return {}
            fields = {}
            for at in range(0, len(entries), 12):
                tag, kind, values = struct.unpack(order + "HHI", entries[at : at + 8])
                if tag not in tags or kind not in _VALUE_TYPES or not 0 < values <= _MOST_VALUES:
                    continue
                layout = order + _VALUE_TYPES[kind] * values
                size = struct.calcsize(layout)
                if size <= 4:
                    raw = entries[at + 8 : at + 8 + size]
                else:  # the values lie at the offset the entry holds
                    file.seek(struct.unpack(order + "I", entries[at + 8 : at + 12])[0])
                    raw = file.read(size)
                fields[tag] = struct.unpack(layout, raw)
            return fields
    except (OSError, struct.error):
        return {}


def check_tiff(picture: Path) -> None:
    """Refuse the TIFF file ``picture`` (a sequence's first) where FFmpeg's decoder would misread
    or refuse its compression or samples, naming what it holds and the way out."""
    fields = tiff_fields(picture, (COMPRESSION, BITS, CHANNELS, SAMPLE_FORMAT))
    compression = fields.get(COMPRESSION, (1,))[0]
    if compression not in _READ_COMPRESSIONS:
        kind = _COMPRESSION_NAMES.get(compression, f"compression {compression}")
        raise InputError(f"cannot read {picture.name}: it is {kind}-compressed TIFF, which FFmpeg's TIFF decoder "
                         f"{'reads as a black picture' if compression in (6, 7) else 'does not read'}; "
                         "save it uncompressed or with LZW or ZIP compression")
    unread = _unread_samples(fields.get(SAMPLE_FORMAT, (_UNSIGNED,))[0], fields.get(BITS, (1,))[0], fields.get(CHANNELS, (1,))[0])
    if unread:
        raise InputError(f"cannot read {picture.name}: its samples are {unread}; save it with 8- or 16-bit "
                         "unsigned samples, or as 32-bit float RGB or OpenEXR for linear light")


def _unread_samples(sample_format: int, bits: int, channels: int) -> str:
    """What FFmpeg's TIFF decoder does wrong with samples of ``sample_format`` and ``bits`` in
    ``channels`` channels, in words; "" where it reads them as they are."""
    if sample_format == _SIGNED:
        return f"{bits}-bit signed integers, which FFmpeg's TIFF decoder reads as unsigned ones (negative samples turn bright)"
    if sample_format == _FLOAT and bits == 16:
        return "16-bit (half) floats, which FFmpeg's TIFF decoder reads as integers"
    if sample_format == _FLOAT and bits == 32 and channels == 4:
        return "32-bit float RGBA, which the FFmpeg in PyAV cannot convert (its scaler takes float RGB only)"
    if sample_format == _FLOAT and (bits != 32 or channels != 3):
        return (f"{bits}-bit floats in {channels} channel{'s' * (channels != 1)}, which FFmpeg's TIFF decoder does not read "
                "(it reads 32-bit float RGB)")
    if sample_format in (_UNSIGNED, _VOID) and bits > 16:
        return f"{bits}-bit integers, which FFmpeg's TIFF decoder does not read as such"
    return ""
