"""Track languages as each container can state them.

ISO 639-2 names 20 languages twice, by a bibliographic code (Matroska's usual "fre", "ger") and a
terminological one (MP4's "fra", "deu"). FFmpeg's QuickTime muxer states a track's language as a
Macintosh language code, from a table that holds one of the two, and some codes of its own ("sve"
for Swedish): a French or German track copied from a .mkv into a .mov lost its language, and a
Swedish one read from a .mov was written into a .mkv or .mp4 as "sve", which players do not know.
"""

from __future__ import annotations

# The codes FFmpeg's QuickTime muxer finds a Macintosh language code for (read back, code by code,
# from a .mov whose media header was given each of them).
QUICKTIME_LANGUAGES = frozenset({
    "eng", "fra", "ger", "ita", "dut", "sve", "spa", "dan", "por", "nor", "heb", "jpn", "ara", "fin", "gre",
    "ice", "mlt", "tur", "hr ", "chi", "urd", "hin", "tha", "kor", "lit", "pol", "hun", "est", "lav", "smi",
    "fo ", "per", "rus", "iri", "alb", "ron", "ces", "slk", "slv", "yid", "sr ", "mac", "bul", "ukr", "bel",
    "uzb", "kaz", "aze", "arm", "geo", "mol", "kir", "tgk", "tuk", "mon", "pus", "kur", "kas", "snd", "tib",
    "nep", "san", "mar", "ben", "asm", "guj", "pa ", "ori", "mal", "kan", "tam", "tel", "sin", "bur", "khm",
    "lao", "vie", "ind", "tgl", "may", "amh", "tir", "orm", "som", "swa", "kin", "run", "nya", "mlg", "epo",
    "wel", "baq", "cat", "lat", "que", "grn", "aym", "tat", "uig", "dzo", "jav",
})

_BIBLIOGRAPHIC_TERMINOLOGICAL = {
    "alb": "sqi", "arm": "hye", "baq": "eus", "bur": "mya", "chi": "zho", "cze": "ces", "dut": "nld",
    "fre": "fra", "geo": "kat", "ger": "deu", "gre": "ell", "ice": "isl", "mac": "mkd", "mao": "mri",
    "may": "msa", "per": "fas", "rum": "ron", "slo": "slk", "tib": "bod", "wel": "cym",
}

# QuickTime's codes that are no ISO 639-2 code, and the ISO code of their language.
_QUICKTIME_OWN = {"sve": "swe", "hr ": "hrv", "sr ": "srp", "fo ": "fao", "pa ": "pan", "iri": "gle"}

_SAME_LANGUAGE = [{b, t} for b, t in _BIBLIOGRAPHIC_TERMINOLOGICAL.items()] + [{q, iso} for q, iso in _QUICKTIME_OWN.items()]


def _names(code: str) -> list[str]:
    """``code`` and every other code of its language, ``code`` first."""
    return [code, *(other for same in _SAME_LANGUAGE if code in same for other in sorted(same - {code}))]


def language_in(code: str, muxer: str) -> str | None:
    """The code a ``muxer`` (FFmpeg's name) states the language ``code`` by, None where it has
    none for it (QuickTime has Macintosh codes for about a hundred languages). Out of QuickTime's
    own codes, other muxers are given the language's ISO 639-2 code."""
    if muxer == "mov":
        return next((name for name in _names(code.lower()) if name in QUICKTIME_LANGUAGES), None)
    return _QUICKTIME_OWN.get(code, code)
