"""Pass 2: read the frames again (or take pass 1's), and window by window align each track's crops,
restore them, paste them back and encode the frames; frames with no face go to the encoder as
they were decoded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from ..anchor import IdentityCrops
from ..faces.align import crop_faces, face_matrices, sampled_region, shrinks_by
from ..faces.parsing import ParsingMasker as Masker
from ..faces.parsing import sparse_masks
from ..faces.paste import (
    Tint,
    coarse_sigmas,
    face_mask,
    keep_coarse,
    luma_of,
    match_colour,
    noise_levels,
    paste_faces,
    scaled_masks,
    tone_slopes,
)
from ..faces.pose import frontal_weight
from ..faces.tone import LUMA, keep_tone
from ..faces.types import Track
from ..io import VideoInfo, VideoReader, VideoWriter, probe
from ..io.containers import stores_rotation
from ..io.encoders import check_encoder
from ..io.linear import VIDEO_LIGHTS, displayed
from ..io.patch import Box, over_checks
from ..io.reader import DecodedFrames
from ..io.sequence import IMAGE_ENCODERS
from ..restore import Restorer, TrackContext
from ..shots import Shot
from ..stopping import raise_if_stopped
from .analysis import Analysis, selected_tracks
from .config import PipelineConfig, Progress
from .segments import window_frames
from .timing import at_steady_rate, coded_field_order, decimates, doubles, left_out, output_timing, played_at


def edge_fades(track: Track, shot: Shot, fade_frames: int) -> tuple[int, int]:
    """Frames over which a track's restoration ramps in and out: ``fade_frames`` where the face
    comes or goes within its shot (so the restored face does not pop in); none at a cut (the whole
    picture changes there, and the first frames of every shot came out half restored); to the
    end of a dissolve or fade that the face comes in with (or from its start, for one it goes
    out with), so the restored face fades with the picture."""
    head = shot.start + shot.fade_in - track.start
    tail = track.end - (shot.end - shot.fade_out)
    return (head if track.start == shot.start else max(fade_frames, head),
            tail if track.end == shot.end else max(fade_frames, tail))


def _fade(track: Track, frame_index: int, fades: tuple[int, int]) -> float:
    head, tail = fades
    return float(min(1.0, (frame_index - track.start + 1) / (head + 1), (track.end - frame_index) / (tail + 1)))


def pack_pieces(lengths: list[int], capacity: int) -> list[list[tuple[int, int, int]]]:
    """Fill forward passes of at most ``capacity`` frames with the tracks' frames, in track order.

    Returns, per pass, ``(track, start, stop)`` pieces; a track that does not fit continues at the
    start of the next pass (its temporal state carries over, as between windows)."""
    passes: list[list[tuple[int, int, int]]] = [[]]
    room = capacity
    for track, length in enumerate(lengths):
        start = 0
        while start < length:
            if room == 0:
                passes.append([])
                room = capacity
            stop = min(length, start + room)
            passes[-1].append((track, start, stop))
            room -= stop - start
            start = stop
    return [p for p in passes if p]


@dataclass
class Pasted:
    """A frame with faces pasted in: its RGB image, and the boxes outside which it is the decoded frame."""

    image: np.ndarray
    boxes: list[tuple[int, int, int, int]]


NOISE_CHECK_EVERY = 24  # frames of a track between two whose face's noise after the paste is compared with before


def parse_keys(track: Track, moments: list[tuple[int, int]], every: int) -> list[int]:
    """Which of a track's ``moments`` in a window (frame, field moment) are parsed for their paste
    masks: the earlier moment of every ``every``th frame of the track, and the window's first and
    last (:func:`~vidrestore.faces.parsing.sparse_masks` draws the others between)."""
    return sorted({0, len(moments) - 1} | {j for j, (i, m) in enumerate(moments) if m == 0 and (i - track.start) % every == 0})


def restore_window(window: list, tracks: list[Track], fades: dict[int, tuple[int, int]], restorer: Restorer,
                    contexts: dict[int, TrackContext], identity: Callable[[Track], torch.Tensor | None],
                    cfg: PipelineConfig, device: torch.device, masker: Masker | None,
                    pixel_aspect: tuple[float, float] = (1.0, 1.0), later_rows: int | None = 1,
                    noise: dict[int, list[tuple[float, float, float]]] | None = None, in_place: bool = False) -> dict[tuple[int, int], Pasted]:
    """Restore every track present in ``window``; returns the frames that changed, by frame index
    and moment (0, or 1 for a frame's later field: see below). ``fades``: each track's ramps in
    and out (:func:`edge_fades`). ``device``: where the crops are cut and pasted (:func:`glue_on`),
    which need not be the restorer's.

    The crops of all the window's tracks share forward passes of up to ``batch_size`` frames, so a
    scene with several small or short-lived faces costs the model fewer, fuller passes.

    Frames that carry their later field's moment (``Frame.second``: interlaced video whose fields
    are kept) are restored at the field rate: a track's crops are each frame's earlier moment, then
    its later one, whose landmarks lie halfway to the next frame's. The later moment's face goes
    into the rows of the later field, which start at row ``later_rows`` (1: top field first), or,
    with ``later_rows`` None (double rate), into the later field's own progressive frame.

    ``noise``: where to add, by track id, the noise of its face before and after the paste
    (:func:`face_noise`) in every :data:`NOISE_CHECK_EVERY` th frame of it, and how many times
    the crop shrank the face there.

    ``in_place``: the faces are pasted into the window's own images (on the CPU), which the caller
    no longer needs as they were (no preview shows them), instead of into copies; a frame whose
    later field's face goes into its rows (``later_rows`` with ``Frame.second``) is still copied,
    since both moments are pasted from the frame as it was."""
    first, last = window[0].index, window[-1].index
    active = [t for t in tracks if t.start <= last and t.end > first]
    if not active:
        return {}
    # integer views of the frames (uint8, or uint16 for deep sources): only the regions around
    # faces are ever converted to float
    tensors = {f.index: torch.from_numpy(f.image).permute(2, 0, 1).to(device) for f in window if f.image is not None}
    seconds = {f.index: torch.from_numpy(f.second).permute(2, 0, 1).to(device) for f in window if f.second is not None}
    # a keep_fields reader's faces go into the interlaced frame; they are found and cropped in the progressive one
    bases = {f.index: torch.from_numpy(f.fields).permute(2, 0, 1).to(device) for f in window if f.fields is not None} or tensors
    in_place = in_place and not (seconds and later_rows is not None)
    held = {f.index for f in window}  # a repeated film frame left out (--decimate) is not in the window
    moments = [[(i, m) for i in range(max(first, t.start), min(last + 1, t.end)) if i in held for m in ((0, 1) if i in seconds else (0,))]
               for t in active]
    marks = [np.stack([_landmarks_at(t, i, m) for i, m in mine]) for t, mine in zip(active, moments)]
    mats = [face_matrices(lm, cfg.face_size, pixel_aspect) for lm in marks]

    def crop(i: int, m: int, matrix: np.ndarray) -> torch.Tensor:
        return crop_faces((seconds if m else tensors)[i], matrix[None], cfg.face_size)

    with glue_threads(device, cfg.glue_threads) as glue:
        crops = [torch.cat(glue(crop, [(i, m, mat[j]) for j, (i, m) in enumerate(mine)])) for mine, mat in zip(moments, mats)]
    for track, track_crops in zip(active, crops):
        if track.track_id not in contexts:
            contexts[track.track_id] = restorer.start_track(track.track_id, track_crops, identity(track), track.person)
    restored: list[list[torch.Tensor]] = [[] for _ in active]
    for pieces in pack_pieces([len(mine) for mine in moments], cfg.batch_size):
        outs = restorer.restore_tracks([(crops[j][a:b], contexts[active[j].track_id]) for j, a, b in pieces])
        for (j, _, _), out in zip(pieces, outs):
            restored[j].append(out.to(device))
    pastes: dict[tuple[int, int], list[tuple[torch.Tensor, np.ndarray, float, torch.Tensor, tuple[int, Tint], float]]] = {}
    for track, mine, track_marks, track_crops, track_mats, parts in zip(active, moments, marks, crops, mats, restored):
        faces = torch.cat(parts)
        if cfg.aligned:  # the crop is the frame: all of it is replaced
            masks = torch.ones(len(mine), 1, cfg.face_size, cfg.face_size, device=device)
        else:
            masks = sparse_masks(masker, faces, parse_keys(track, mine, cfg.parse_every)) if masker is not None \
                else face_mask(cfg.face_size, device).expand(len(mine), -1, -1, -1)
        with glue_threads(device, cfg.glue_threads):
            if cfg.colour_match:
                faces = match_colour(faces, track_crops, face_mask(cfg.face_size, device))
            if cfg.keep_coarse:
                faces = keep_coarse(faces, track_crops, coarse_sigmas(track_mats, cfg.keep_coarse, cfg.face_size))
            if track.monochrome:
                faces = keep_tone(faces, track_crops)
            # a monochrome face keeps the frame's luma detail alone, on its tone (paste_faces(grains=...))
            tints = tone_slopes(track_crops, face_mask(cfg.face_size, device)) if track.monochrome else None
            if share := cfg.detail_of(track):  # the frame's share of detail is added back in the paste (paste_faces(detail=...))
                faces = faces - share * (tints[:, :, None, None] * luma_of(track_crops)[:, None] if tints is not None else track_crops)
        turned = frontal_weight(track_marks, cfg.profile_fade)
        for j, (i, m) in enumerate(mine):
            strength = cfg.strength_of(track) * _fade(track, i, fades[track.track_id]) * float(turned[j])
            grain = (grain_seed(i, m, track.track_id), None if tints is None else tuple(tints[j].tolist()))
            pastes.setdefault((i, m), []).append((faces[j], track_mats[j], strength, masks[j], grain, share))
        if track.end <= last + 1:
            contexts.pop(track.track_id, None)
    def paste(i: int, m: int) -> Pasted:
        faces, mats_i, strength, masks, grains, shares = zip(*pastes[i, m])
        base = seconds[i] if m and later_rows is None else bases[i]
        pasted, boxes = paste_faces(base, torch.stack(faces), np.stack(mats_i), torch.tensor(strength, device=device),
                                    torch.stack(masks), padding="border" if cfg.aligned else "zeros", grain=cfg.grain, grains=grains,
                                    detail=shares, in_place=in_place)
        return Pasted(pasted.permute(1, 2, 0).cpu().numpy(), boxes)

    out: dict[tuple[int, int], Pasted] = {}
    moments_pasted = sorted(pastes)
    checked = [(track.track_id, i, track_marks[j], track_mats[j]) for track, mine, track_marks, track_mats in zip(active, moments, marks, mats)
               for j, (i, m) in enumerate(mine) if m == 0 and (i - track.start) % NOISE_CHECK_EVERY == 0] if noise is not None else []
    before = {i: bases[i].permute(1, 2, 0).cpu().numpy().copy() for _, i, _, _ in checked}  # as they were, for face_noise
    with glue_threads(device, cfg.glue_threads) as glue:
        for (i, m), pasted in zip(moments_pasted, glue(paste, moments_pasted)):
            if m == 0 or later_rows is None:
                out[i, m] = pasted
            else:
                out[i, 0].image[later_rows::2] = pasted.image[later_rows::2]
                out[i, 0].boxes.extend(pasted.boxes)
    for track_id, i, landmarks, matrix in checked:
        noise[track_id].append((*face_noise(before[i], out[i, 0].image, landmarks), shrinks_by(matrix)))
    return out


def face_noise(before: np.ndarray, after: np.ndarray, landmarks: np.ndarray) -> tuple[float, float]:
    """The luma noise (at every scale of :func:`~vidrestore.faces.paste.noise_levels` together, in
    8-bit levels) of a frame before and after its face was pasted (H, W, 3 images, integer or in [0, 1]),
    between the eyes and the mouth (the box of the face's five ``landmarks``): in the frame's
    pixels, as the eye sees it beside the frame's own noise. (Compared in the crops instead, a
    model's face kept 60% of a noisy input's noise where in the frame it kept 7%: enlarged into
    the frame, what it kept is coarser than the frame's noise.)"""
    (x0, y0), (x1, y1) = np.maximum(np.floor(landmarks.min(0)), 0).astype(int), np.ceil(landmarks.max(0)).astype(int)
    masks = scaled_masks(torch.ones(max(0, min(y1, before.shape[0]) - y0), max(0, min(x1, before.shape[1]) - x0), dtype=torch.bool))

    def level(image: np.ndarray) -> float:
        to_8_bits = 255 / (np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0)
        luma = torch.from_numpy(image[y0:y1, x0:x1].astype(np.float32) @ np.asarray(LUMA, np.float32) * to_8_bits)
        return float(np.sqrt((noise_levels(luma, masks) ** 2).sum()))
    return level(before), level(after)


def grain_seed(index: int, moment: int, track_id: int) -> int:
    """The seed of the grain put on ``track_id``'s face in frame ``index`` (``moment`` 1: its later
    field): the same in every run, resumed or not, and another in each frame."""
    return int(np.random.SeedSequence([index, moment, track_id]).generate_state(1)[0])


def _landmarks_at(track: Track, index: int, moment: int) -> np.ndarray:
    """``track``'s landmarks at frame ``index``'s earlier field (``moment`` 0), or at its later one
    (1): halfway to the next frame's (as they are at the track's last frame)."""
    here = track.landmarks[index - track.start]
    if moment == 0:
        return here
    return (here + track.landmarks[min(index + 1, track.end - 1) - track.start]) / 2


def regions_read(tracks: list[Track], info: VideoInfo, face_size: int, later_fields: bool) -> Callable[[int], list[Box]]:
    """The boxes of frame ``index`` (display pixels) that :func:`restore_window` reads and pastes
    into: where each track's crop samples it (and the crop of its later field, with
    ``later_fields``). Only they need HDR or log video's view, which costs the most of a frame."""
    height, width = (info.width, info.height) if (info.rotation // 90) % 2 else (info.height, info.width)
    moments = (0, 1) if later_fields else (0,)

    def boxes(index: int) -> list[Box]:
        return [sampled_region(face_matrices(_landmarks_at(t, index, m)[None], face_size, info.pixel_aspect), face_size, height, width)
                for t in tracks if t.covers(index) for m in moments]
    return boxes


def glue_on(cfg: PipelineConfig, device: torch.device) -> torch.device:
    """Where :func:`restore_window` crops and pastes the faces of a model on ``device``: the CPU
    unless ``cfg.glue_device`` says the model's device (the restorer and the masker move the crops
    to theirs and back)."""
    return device if cfg.glue_device == "model" else torch.device("cpu")


Glue = Callable[[Callable[..., object], list[tuple]], list]  # runs a function on each argument tuple, results in order


def glue_workers() -> int:
    """Threads for the per-frame work around the model on the CPU: none besides the caller on a
    small machine, where x264 and the decoder need the other cores; one for every four cores
    above that, up to four. On 16 cores pass 2 was bound by its one thread warping and blending
    (bench/pipeline.py --profile)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores // 4))


@functools.cache
def _glue_pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="vidrestore-glue", initializer=torch.set_num_threads, initargs=(1,))


@contextlib.contextmanager
def glue_threads(device: torch.device, workers: int = 0) -> Iterator[Glue]:
    """Run the torch and OpenCV ops around the model (align, colour match, paste) on one CPU thread
    each, and yield a ``glue(function, arguments)`` that spreads per-frame calls over ``workers``
    threads (0: :func:`glue_workers`). Their images are small, and the workers woken for
    them spin afterwards on the cores that the decoder and x264 need. On 2 cores, one torch thread
    made the pass-through restore pass 1.2x faster (bench/pipeline.py); one OpenCV thread took the
    align/paste step of a 248-frame clip from 1.0-1.1 to 0.67-0.72 CPU seconds in the same wall
    time. The model keeps every thread; on a GPU the calls run in order on the caller's thread."""
    if device.type != "cpu":
        yield _in_order
        return
    workers = workers or glue_workers()
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        if workers > 1:
            pool = _glue_pool(workers)
            yield lambda function, arguments: list(pool.map(lambda a: function(*a), arguments))
        else:
            yield _in_order
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def _in_order(function: Callable[..., object], arguments: list[tuple]) -> list:
    return [function(*a) for a in arguments]


def _preview_info(info: VideoInfo) -> VideoInfo:
    """Stream description for the side-by-side preview: display orientation, twice as wide, of
    display-referred images (a plate's are sRGB-encoded)."""
    width, height = info.display_size
    return dataclasses.replace(displayed(info), width=2 * width, height=height, rotation=0, field_order="progressive")


def restore_video(path: Path, video_out: Path, analysis: Analysis, restorer: Restorer, cfg: PipelineConfig,
                  device: torch.device, progress: Progress | None = None, preview: Path | None = None,
                  frames: range | None = None, masker: Masker | None = None, reuse: DecodedFrames | None = None,
                  contexts: dict[int, TrackContext] | None = None, target: Path | None = None,
                  noise: dict[int, list[tuple[float, float, float]]] | None = None) -> int:
    """Pass 2: restore and encode the video stream alone into ``video_out``; returns frames written.

    ``frames``: only this segment (from :func:`plan_segments`). With ``preview``, also encode a
    side-by-side (input | restored) video alone there, at the output's times. ``reuse``: the
    frames pass 1 kept, read instead of decoding the video again when they are the whole of it. ``contexts``: the restorer's state of
    the tracks that come into the segment from the one before it; on return it holds that of the
    tracks that go on past it. ``target``: the output ``video_out`` is a segment of (default
    ``video_out`` itself), whose type decides the encoder and whether frames are written upright.
    ``noise``: where to add each track's samples of input and restored noise (:func:`restore_window`)."""
    info = played_at(probe(path), cfg).read_as(analysis.light)
    info = at_steady_rate(info, analysis.pts)
    cfg = dataclasses.replace(cfg, batch_size=window_frames(cfg, device, info))
    target = target or video_out
    encode = dataclasses.replace(cfg.encode, codec=check_encoder(cfg.encode, target, info).name)  # a sequence's segments are .mov files
    frames = frames if frames is not None else range(analysis.frames)
    tracks = [t for t in selected_tracks(analysis, cfg) if t.start < frames.stop and t.end > frames.start]
    cuts = {shot.start for shot in analysis.shots}
    fades = {t.track_id: edge_fades(t, analysis.shots[t.shot_index], cfg.fade_frames) for t in tracks}
    contexts = {} if contexts is None else contexts
    photos = {i: torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255 for i, crop in analysis.references.items()}
    faces = 0
    start_pts = analysis.pts[frames.start] if frames.start < len(analysis.pts) else None
    with contextlib.ExitStack() as stack:
        anchored = [t for t in tracks if t.track_id not in photos and t.track_id not in contexts] if restorer.uses_identity else []
        # a track's best frames may lie past the segment's end, where its state will be carried
        ahead = range(frames.start, max([frames.stop, *(t.end for t in anchored)]))
        best_frames = IdentityCrops(path, anchored, cfg.face_size, ahead, start_pts, analysis.deinterlace, reuse, analysis.light,
                                    analysis.excerpt)
        stack.callback(best_frames.close)

        def identity(track: Track) -> torch.Tensor | None:
            return photos[track.track_id] if track.track_id in photos else best_frames(track)

        # A picture file carries no rotation that viewers read (a phone photo's EXIF tag is gone once
        # re-encoded), nor do AVI, MPEG-TS and others: a turned video is written upright there, from
        # the display-oriented images (a phone's video played sideways from an AVI).
        upright = info.rotation % 360 != 0 and (target.suffix.lower() in IMAGE_ENCODERS or not stores_rotation(target))
        faced = None if preview or upright else [range(t.start, t.end) for t in tracks]  # the preview shows every frame
        doubled, decimated, dropped = doubles(analysis, cfg), decimates(analysis, cfg), left_out(analysis, cfg)
        # the view of HDR or log video is made only where the faces are read, unless all of it is shown
        viewed = regions_read(tracks, info, cfg.face_size, cfg.keep_fields or doubled) \
            if info.light in VIDEO_LIGHTS and faced is not None and not cfg.aligned else None
        reader = stack.enter_context(VideoReader(path, start=frames.start, stop=frames.stop, start_pts=start_pts,
                                                 deinterlace=analysis.deinterlace, keep_depth=True, reuse=reuse,
                                                 images_for=faced, keep_fields=cfg.keep_fields, double_rate=doubled,
                                                 light=analysis.light, view_regions=viewed, excerpt=analysis.excerpt))
        timed = output_timing(info, analysis, cfg)
        coded = dataclasses.replace(timed, field_order=coded_field_order(analysis, info, cfg.keep_fields))
        if upright:
            coded = dataclasses.replace(coded, rotation=0, width=info.display_size[0], height=info.display_size[1])
        writer = stack.enter_context(VideoWriter(video_out, coded, encode, upright_from=info.rotation if upright else 0))
        side = stack.enter_context(VideoWriter(preview, _preview_info(timed), cfg.encode)) if preview else None
        window: list = []
        later_rows = None if doubled else 0 if analysis.deinterlace is not None and analysis.deinterlace.parity == "bff" else 1

        def write(source: av.VideoFrame, pts: int | None, image: np.ndarray | None, shown: np.ndarray | None,
                  pasted: Pasted | None) -> None:
            """One output frame, and its side-by-side preview (``shown``, the progressive input,
            beside the output); none for a repeated film frame left out (``pts`` None)."""
            if pts is None:
                return
            # written upright, every frame is new: one without faces is its image, unchanged anywhere
            writer.write(source, pts, *((pasted.image, pasted.boxes) if pasted else (image, []) if upright else ()))
            if side is not None:  # at the output's times, and joined with the input's other streams as it is
                pair = [shown, pasted.image if pasted else shown]
                side.write(None, pts, np.concatenate([over_checks(i, source, info.rotation) for i in pair] if info.transparent else pair, 1))

        def flush() -> None:
            nonlocal faces
            raise_if_stopped()
            kept = [f for f in window if f.index not in dropped]  # a repeat is not written: not restored
            changed = restore_window(kept, tracks, fades, restorer, contexts, identity, cfg, glue_on(cfg, device), masker,
                                      info.pixel_aspect, later_rows, noise, in_place=side is None) if kept else {}
            faces += sum(1 for f in kept for t in tracks if t.covers(f.index))
            for f in window:
                pts = analysis.film_pts[f.index] if decimated else 2 * f.pts if doubled else f.pts
                write(f.source, pts, f.image if f.fields is None else f.fields, f.image, changed.get((f.index, 0)))
                if f.second_source is not None:
                    write(f.second_source, f.second_source.pts, f.second, f.second, changed.get((f.index, 1)))
            if progress:
                progress("restore", window[-1].index + 1, analysis.frames, faces)
            window.clear()

        for frame in reader:
            if window and frame.index in cuts:
                flush()  # windows never straddle a cut, so segments restore exactly as one pass does
            window.append(frame)
            if len(window) >= cfg.batch_size:
                flush()
        if window:
            flush()
        return writer.frames_written
