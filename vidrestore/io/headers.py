"""What a picture's header says that FFmpeg's encoders do not write, carried from each input
picture into the picture made from it: a DPX scan's time, film, source and transfer fields
(:mod:`vidrestore.io.dpx`) and an OpenEXR plate's attributes (:mod:`vidrestore.io.exr`)."""

from __future__ import annotations

from pathlib import Path

from .dpx import copy_header_fields
from .exr import copy_attributes
from .sequence import find_sequence, is_sequence, numbered, numbers_in


def carry_headers(source: Path, written: Path, comment: str = "") -> None:
    """Give each picture of ``written`` the header fields of the picture of ``source`` it was made
    from: a sequence's pictures are numbered from 0 by their frame's timestamp (see
    :func:`~vidrestore.io.sequence.number_offset`), one picture from one picture. OpenEXR
    pictures also get ``comment``, added to their comments as a restored video's comment tag gets
    it. DPX and OpenEXR only, made from their own type."""
    suffix = written.suffix.lower()
    if suffix not in (".dpx", ".exr") or source.suffix.lower() != suffix or is_sequence(source) != is_sequence(written):
        return
    if is_sequence(written):
        first = find_sequence(source).first
        pairs = [(numbered(source, first + n), numbered(written, n)) for n in numbers_in(written)]
    else:
        pairs = [(source, written)]
    for made_from, picture in pairs:
        if suffix == ".dpx":
            copy_header_fields(made_from, picture)
        else:
            copy_attributes(made_from, picture, comment)
