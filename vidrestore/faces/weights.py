"""The weights the face stages' settings name, found without loading them (nor importing torch):
RetinaFace's for the detector, ParseNet's for the paste masks. The stages load what these find; the
command line refuses a missing one with them before any work, where it was told some 4 s later,
after torch's imports.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError, UsageError
from ..models import zoo
from .settings import DetectorConfig

MASKS = ("auto", "ellipse", "parsing")
PARSENET = "parsenet-512"  # the zoo entry of the face parser that draws the masks


def retinaface_weights(config: DetectorConfig) -> Path | None:
    """The RetinaFace checkpoint ``config`` gets (None: it gets dlib, or, asked for RetinaFace, an error)."""
    return zoo.locate(config.retinaface_model, config.weights) if config.backend in ("auto", "retinaface") else None


def detector_identity(config: DetectorConfig) -> str:
    """What tells the detector ``config`` gets from any other, without loading it: its backend, and
    RetinaFace's weights by their digest ("retinaface 3f5a..."; "dlib": its models come with dlib's
    package, whose version tells them)."""
    weights = retinaface_weights(config)
    return f"retinaface {zoo.weights_digest(str(weights))}" if weights is not None else \
        "retinaface, weights missing" if config.backend == "retinaface" else f"dlib {config.dlib_model}"


def checked_weights(config: DetectorConfig) -> Path | None:
    """:func:`retinaface_weights`, and the error where RetinaFace is asked for without them: what
    :func:`~.detect.create_detector` finds before it loads anything."""
    weights = retinaface_weights(config)
    if weights is None and config.backend == "retinaface":
        e = zoo.entry(config.retinaface_model)
        raise ModelError(f"RetinaFace weights not found: pass --detector-weights, set {e.env_var}, "
                         f"or run `vidrestore models pull {e.name}`")
    return weights


def parsing_weights(mask: str, weights: str, aligned: bool) -> Path | None:
    """The ParseNet checkpoint the paste masks are drawn with (``weights``: a path given, else the
    env var's, the cache's): None for the feathered ellipse (``mask`` ellipse; crops given
    ``aligned``, pasted whole; auto without weights); an error where ``mask`` parsing has none, or
    a path given is not there."""
    if mask not in MASKS:
        raise UsageError(f"unknown mask {mask!r}; choose auto, ellipse or parsing")
    if mask == "ellipse" or aligned:
        return None
    path = zoo.locate(PARSENET, weights or None)
    if path is None and mask == "parsing":
        raise ModelError("--mask parsing needs ParseNet weights (parsing_parsenet.pth): give --parsing-weights, set "
                         "VIDRESTORE_WEIGHTS_PARSENET_512, or run `vidrestore models pull parsenet-512`")
    return path
