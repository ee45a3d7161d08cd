"""What is refused of a run before any work: options its input or its output cannot take.

:func:`checked` needs no torch (nor any model), so the command line calls it as soon as it has
read the options: a mistyped ``--codec``, a ``--crf`` out of range or sound the output's
container cannot hold was told some 3 s later, once torch, kornia and scipy had loaded (a
video piped in is checked once it is in). :func:`~vidrestore.pipeline.driver.run` and a batch's
worker call it again on the file they read, which for a recording whose timestamps start over is a
copy timed on (:mod:`vidrestore.io.restarts`): such a recording states the length of its first
part alone, so the command line leaves an excerpt's end to that second check.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..io.encoders import check_encoder
from ..io.output import check_folder
from ..io.photo import opened_reference
from ..io.remux import check_output
from ..io.sequence import is_sequence
from .config import PipelineConfig
from .timing import check_timing, checked_as, in_seconds


def checked(src: Path, dst: str | Path | None, cfg: PipelineConfig, preview: str | Path | None = None,
            length_known: bool = True) -> PipelineConfig:
    """``cfg`` with a ``--start`` or ``--end`` timecode in seconds (:func:`~.timing.in_seconds`),
    once its timing options have been checked against ``src`` and ``dst`` (an excerpt against the
    length of ``src`` where ``length_known``), its faces folder, and ``dst`` and ``preview`` as
    ``cfg`` has them written."""
    cfg = in_seconds(cfg, src)
    check_timing(cfg, src, dst, length_known)
    for photo in sorted(cfg.photos):  # its header alone: whether it shows a face takes the detector, and is told later
        with opened_reference(photo):
            pass
    if cfg.faces_dir:
        check_folder(Path(cfg.faces_dir), "--faces", "the faces")
    if dst is not None:
        check_output(src, dst, cfg.encode, cfg.drop_streams, checked_as(src, cfg), cfg.audio_codec)
        if preview is not None:
            check_encoder(cfg.encode, preview)
            if is_sequence(preview):
                raise UsageError("--preview writes a video (.mp4, .mkv); give it a video file name, not a sequence")
    return cfg
