"""Orchestration: decode -> shots -> detect/track -> align -> restore -> paste -> encode -> remux.

Two streaming passes over the input keep memory bounded whatever the video's length:

1. *analyse*: decode, cut shots, detect faces (every k-th frame), track them; only boxes,
   landmarks and frame timestamps are kept, never frames, unless the whole video fits in
   ``decode_once_mib`` (then pass 2 takes pass 1's decoded frames instead of decoding again).
2. *restore*: decode again in windows of ``batch_size`` frames that never cross a cut; for each
   track in a window, align its crops, restore them as one temporal batch (state carried to the
   next window), paste them back, and encode. Frames with no face are not even converted to RGB:
   they go to the encoder as decoded.

Pass 2 may be split into *segments* (``segment_frames``). No track crosses a cut and restore
windows restart at every cut, so a segment of whole shots restored on its own (another process,
another machine) gives exactly the frames a single pass gives. The single-file command may also
split a long shot at a window boundary; its tracks' state then goes to the next segment in a file. Segments are encoded separately,
their packets joined into one stream, and the input's audio, subtitle and data streams remuxed
beside it, into a temp file that is renamed onto the output only when everything succeeded.
A run that is stopped keeps its finished segments, and the next run with the same input and
options restores only the others (:mod:`vidrestore.resume`).
"""

import importlib

# Each name is imported from its stage when first asked for: the command line reads
# ``PipelineConfig`` (vidrestore.pipeline.config) and checks a run's output before torch is loaded
_HOMES = {"Analysis": "analysis", "analyse": "analysis", "PipelineConfig": "config", "Progress": "config", "run": "driver",
          "Report": "report", "restore_video": "restoring"}

__all__ = ["Analysis", "PipelineConfig", "Progress", "Report", "analyse", "restore_video", "run"]


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
