"""What a camera's file beside a clip says of the clip's light.

Sony's cameras tag their log video BT.709, like any other, but write beside each clip (C0001.MP4,
or an MXF) an XML file of its settings (C0001M01.XML, Sony's "non-real-time metadata"), whose
items ``CaptureGammaEquation`` and ``CaptureColorPrimaries`` name the curve and the gamut it was
recorded in. Read there, S-Log3 and S-Log2 need no ``--light``.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

from .linear import Light

# a settings file is some kilobytes; anything far larger is not one, and is not read
_LARGEST = 1 << 20

# Sony's words for its log curves, each in the gamut its cameras record it in unless the settings
# say S-Gamut3, the wider one they offer beside S-Gamut3.Cine for S-Log3 (whose curve Sony also
# names "s-log3-cine"). Other curves (rec709, s-cinetone, the hlg family, which is tagged in the
# stream) are display, or said by the tags.
_SONY_CURVES = {"s-log3-cine": Light.SLOG3, "s-log3": Light.SLOG3, "s-log2": Light.SLOG2}
_IN_S_GAMUT3 = {Light.SLOG3: Light.SLOG3_SGAMUT3}


def sony_settings(clip: Path) -> Path | None:
    """The settings file a Sony camera wrote beside ``clip``, or None."""
    for suffix in (".XML", ".xml"):
        candidate = clip.with_name(f"{clip.stem}M01{suffix}")
        if candidate.is_file():
            return candidate
    return None


def sidecar_light(clip: Path) -> Light | None:
    """The camera log that the settings file beside ``clip`` says it was recorded in, or None: no
    such file, one that cannot be read, or a curve that is not a known log."""
    settings = sony_settings(clip)
    if settings is None or settings.stat().st_size > _LARGEST:
        return None
    try:
        root = ElementTree.fromstring(settings.read_bytes())
    except (ElementTree.ParseError, OSError):
        return None
    items = {item.get("name"): (item.get("value") or "").strip().lower()
             for item in root.iter() if item.tag.rpartition("}")[2] == "Item"}
    curve, gamut = items.get("CaptureGammaEquation", ""), items.get("CaptureColorPrimaries", "")
    light = _SONY_CURVES.get(curve)
    return _IN_S_GAMUT3.get(light, light) if gamut == "s-gamut3" else light
