import dataclasses
import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import (
    Negative,
    aligned_clip,
    astronaut_frame,
    captioned_clip,
    captions,
    make_clip,
    paste_strength,
    shared_file,
    telecine_clip,
    weave_clip,
)
from hypothesis import given
from hypothesis import strategies as st

from vidrestore.errors import ConfigError, UsageError
from vidrestore.eval.tracks import measure_tracks, output_cadence
from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.faces.track import TrackerConfig
from vidrestore.io import VideoReader, probe
from vidrestore.io.reader import FieldFilter
from vidrestore.pipeline import PipelineConfig, analyse, run
from vidrestore.pipeline.restoring import pack_pieces
from vidrestore.pipeline.timing import choose_deinterlace
from vidrestore.restore import PassThroughRestorer


def test_tracks_split_at_a_cut_and_the_new_shot_is_detected_on_its_first_frame(sample_clip, tmp_path):
    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r][:14]
    # Second shot: the same face darker and in swapped colour channels (another histogram, still a face).
    # It starts at frame 14, off the every-4th-frame schedule of the first shot.
    images = frames + [np.ascontiguousarray(f[..., ::-1] // 3) for f in frames]
    h, w = images[0].shape[:2]
    clip = make_clip(tmp_path / "cut.mp4", [i * 40 for i in range(len(images))], size=(h, w), images=images)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    analysis = analyse(clip, PipelineConfig(tracker=TrackerConfig(detect_every=4)), det, detect_batch=3)
    assert [(s.start, s.end) for s in analysis.shots] == [(0, 14), (14, 28)]
    for t in analysis.tracks:  # no track crosses the cut
        shot = analysis.shots[t.shot_index]
        assert shot.start <= t.start and t.end <= shot.end
    assert sorted({t.shot_index for t in analysis.tracks}) == [0, 1]
    second = next(t for t in analysis.tracks if t.shot_index == 1)
    assert second.start == 14 and second.detected[0]  # not 16, the next frame on the old schedule
    assert all(len(t) >= 8 for t in analysis.tracks), [(t.start, t.end, int(t.detected.sum())) for t in analysis.tracks]


def test_the_last_frame_of_every_shot_is_detected_so_faces_are_restored_to_its_end(sample_clip, tmp_path):
    """Between detections the faces are followed by optical flow, which lost the sample clip's face
    after frame 21 of 24: its last two frames came out unrestored, a pop at the end of the video
    (or just before a cut). The last frame of each shot is detected now."""
    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r]
    # a second shot of 10 frames, which ends on a face the detector finds for sure (the sample's
    # 14th frame, which it used to end on, sits at HOG's threshold once dimmed and coded)
    images = frames + [np.ascontiguousarray(f[..., ::-1] // 3) for f in frames[:10]]
    h, w = images[0].shape[:2]
    clip = make_clip(tmp_path / "two.mp4", [i * 40 for i in range(len(images))], size=(h, w), images=images)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    analysis = analyse(clip, PipelineConfig(tracker=TrackerConfig(detect_every=4)), det)
    assert [(s.start, s.end) for s in analysis.shots] == [(0, 24), (24, 34)]
    for index, shot in enumerate(analysis.shots):
        (track,) = [t for t in analysis.tracks if t.shot_index == index]
        assert (track.start, track.end) == (shot.start, shot.end) and track.detected[0] and track.detected[-1]


def test_a_face_that_shrinks_under_the_detectors_limit_stays_one_track_to_the_end(sample_clip, tmp_path):
    """The sample's face shrinks to 0.4 of its size over 16 frames and stays so: dlib's HOG loses
    it at the frame's scale from about half its size on, and its track was closed there, the rest
    left unrestored. The detector looks again, enlarged, where the flow has it, and finds it."""
    import cv2

    with VideoReader(sample_clip) as r:
        first = next(iter(r)).image
    images = []
    for f in range(32):
        scale = 1.0 - 0.6 * min(f, 16) / 16
        small = cv2.resize(first, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = np.full_like(first, 128)
        y, x = (first.shape[0] - small.shape[0]) // 2, (first.shape[1] - small.shape[1]) // 2
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        images.append(canvas)
    h, w = images[0].shape[:2]
    clip = make_clip(tmp_path / "shrinking.mp4", [i * 40 for i in range(len(images))], size=(h, w), images=images)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    analysis = analyse(clip, PipelineConfig(tracker=TrackerConfig(detect_every=4)), det)
    (track,) = analysis.tracks
    assert (track.start, track.end) == (0, 32)
    assert track.detected[28] and track.detected[31]
    assert 36 < track.boxes[-1][2] - track.boxes[-1][0] < 50  # the face's box, at 0.4 of its 104 px


def test_a_camera_flash_neither_splits_a_track_nor_gives_it_its_identity(sample_clip, tmp_path):
    """A press photographer's flash burns out one frame: it was taken for a cut, which split the
    track (a new identity and noise field, so the restored face changed there). The frame is
    marked unsteady, which keeps it out of the identity (tests/test_anchor.py)."""
    from vidrestore.anchor import identity_frames

    with VideoReader(sample_clip) as r:
        images = [f.image for f in r]
    images[12] = np.clip(images[12].astype(int) + 90, 0, 255).astype(np.uint8)
    h, w = images[0].shape[:2]
    clip = make_clip(tmp_path / "flash.mp4", [i * 40 for i in range(len(images))], size=(h, w), images=images)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    analysis = analyse(clip, PipelineConfig(), det)
    assert [(s.start, s.end) for s in analysis.shots] == [(0, 24)]
    (track,) = analysis.tracks
    assert track.start == 0 and track.end > 16 and not track.steady[12]
    assert 12 not in identity_frames(track)


def test_detection_on_downscaled_frames_lands_on_full_size_pixels(sample_clip):
    def landmarks(max_side):
        det = create_detector(DetectorConfig(backend="dlib", max_side=max_side), torch.device("cpu"))
        assert det.input_side == max_side
        tracks = analyse(sample_clip, PipelineConfig(tracker=TrackerConfig(detect_every=1)), det).tracks
        assert len(tracks) == 1
        return tracks[0].landmarks

    with VideoReader(sample_clip) as r:
        side = max(next(iter(r)).image.shape[:2])
    full, small = landmarks(side), landmarks(int(side * 0.7))
    assert np.abs(full - small).mean() < 2.0  # same face, same pixels; a missing rescale would be off by ~30%


@given(st.lists(st.integers(0, 40), max_size=6), st.integers(1, 20))
def test_packed_passes_hold_every_frame_once_in_order_within_capacity(lengths, capacity):
    passes = pack_pieces(lengths, capacity)
    assert all(0 < sum(b - a for _, a, b in p) <= capacity for p in passes)
    assert all(len({t for t, _, _ in p}) == len(p) for p in passes)  # one piece per track in a pass
    assert len(passes) == -(-sum(lengths) // capacity)  # no pass is left part-empty but the last
    for track, length in enumerate(lengths):
        pieces = [(a, b) for p in passes for t, a, b in p if t == track]
        assert [f for a, b in pieces for f in range(a, b)] == list(range(length))


def test_faces_sharing_forward_passes_paste_as_when_restored_in_one_pass(two_face_clip, tiny_model, tmp_path):
    """Two faces, one leaving mid-window: small passes pack pieces of both tracks together and split
    a track between passes; the video must come out as when each track is restored whole. (The
    temporal recurrence carries across passes, so where a track is cut does not change its result.)"""
    import av

    from vidrestore.diffusion.sampler import SamplerConfig
    from vidrestore.io import EncodeOptions
    from vidrestore.restore import load_restorer

    clip = two_face_clip
    class Recording:
        """The real restorer, noting the pieces of each call."""

        def __init__(self):
            self.inner = load_restorer(str(tiny_model), SamplerConfig(start_step=200, steps=2), torch.device("cpu"),
                                       torch.float32, None, 32)
            self.name, self.face_size, self.calls = "tiny", self.inner.face_size, []
            self.uses_identity, self.notes, self.dtype = self.inner.uses_identity, self.inner.notes, self.inner.dtype

        def start_track(self, track_id, crops, reference=None, person=None):
            return self.inner.start_track(track_id, crops, reference, person)

        def restore_tracks(self, pieces):
            self.calls.append([len(c) for c, _ in pieces])
            return self.inner.restore_tracks(pieces)

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    outputs, calls = {}, {}
    for batch in (6, 64):
        restorer = Recording()
        cfg = PipelineConfig(batch_size=batch, encode=EncodeOptions(codec="ffv1"), tracker=TrackerConfig(detect_every=1))
        report = run(clip, tmp_path / f"out{batch}.mkv", cfg, restorer, torch.device("cpu"), detector=det)
        assert [(t["start"], t["end"]) for t in report.tracks] == [(0, 9), (3, 18)]
        with av.open(str(tmp_path / f"out{batch}.mkv")) as c:
            outputs[batch] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int)
        calls[batch] = restorer.calls
    assert calls == {6: [[6], [3], [3, 3], [3], [6]], 64: [[9, 15]]}
    # the passes add up in another order, so a value may round the other way: one of 18.6 million
    # came out 4 levels apart once; a piece pasted into the wrong frame or track moves thousands
    gap = np.abs(outputs[6] - outputs[64])
    worst = gap.max(axis=(1, 2, 3))
    assert (gap > 2).sum() <= 10 and worst.max() <= 8, f"largest difference per frame: {worst.tolist()}"
    with VideoReader(clip) as r:
        source = np.stack([f.image for f in r]).astype(int)
    # the faces were restored, not copied (away from them the output is the source, bit for bit)
    assert (np.abs(outputs[6] - source).max(axis=3) > 8).mean() > 0.01


@pytest.mark.parametrize("link", [True, False])
def test_a_person_cut_back_to_is_restored_as_they_were(sample_clip, tiny_model, tmp_path, link):
    """Shot, other shot, the first shot again: the person is found again after the cut back and
    draws the same noise, so the same frames come out the same (each track drew its own noise, and
    the face changed its look at every cut back to it). Linking off keeps that old behaviour."""
    import av

    from vidrestore.diffusion.sampler import SamplerConfig
    from vidrestore.faces.people import PeopleConfig
    from vidrestore.io import EncodeOptions
    from vidrestore.restore import load_restorer

    with VideoReader(sample_clip) as r:
        shot = [f.image for f in r][:16]
    images = shot + [np.ascontiguousarray(f[..., ::-1] // 3) for f in shot] + shot
    clip = make_clip(tmp_path / "back.mp4", [i * 40 for i in range(48)], size=images[0].shape[:2], images=images,
                     pix_fmt="yuv444p", x264_params="qp=0")  # lossless: the two takes decode alike
    restorer = load_restorer(str(tiny_model), SamplerConfig(start_step=200, steps=2), torch.device("cpu"), torch.float32, None, 32)
    cfg = PipelineConfig(encode=EncodeOptions(codec="ffv1"), people=PeopleConfig(link=link))
    report = run(clip, tmp_path / "out.mkv", cfg, restorer, torch.device("cpu"),
                 detector=create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")))
    first, _, again = report.tracks
    assert (first["start"], again["start"]) == (0, 32)
    assert (again["person"] == first["id"]) == link
    with av.open(str(tmp_path / "out.mkv")) as c:
        out = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int)
    with VideoReader(clip) as r:
        source = np.stack([f.image for f in r]).astype(int)
    assert np.array_equal(source[:16], source[32:])
    assert (np.abs(out[:16] - source[:16]).max(axis=3) > 8).mean() > 0.01  # restored, not copied
    assert np.array_equal(out[:16], out[32:]) == link


def test_a_window_is_chosen_by_device_and_frame_size_unless_given(sample_clip):
    """16 frames on the CPU; on a GPU, whose passes run fuller, 64, or fewer where 64 full-size
    frames would hold more than 2 GiB (a 16-bit 4K master); always a divisor of 64, where
    segments may split a shot. A size given is kept."""
    import dataclasses

    from vidrestore.pipeline.segments import window_frames

    def info(width, height, pix_fmt):
        return dataclasses.replace(probe(sample_clip), width=width, height=height, pix_fmt=pix_fmt)

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert window_frames(PipelineConfig(), cpu, info(3840, 2160, "yuv420p")) == 16
    assert window_frames(PipelineConfig(), gpu, info(1920, 1080, "yuv420p")) == 64
    assert window_frames(PipelineConfig(), gpu, info(3840, 2160, "yuv422p10le")) == 32
    assert window_frames(PipelineConfig(), gpu, info(7680, 4320, "yuv444p12le")) == 16
    assert window_frames(PipelineConfig(batch_size=7), gpu, info(1920, 1080, "yuv420p")) == 7


@pytest.mark.parametrize("link, faces", [(False, False), (True, False), (False, True)])
def test_dlibs_face_encoder_is_loaded_only_to_link_people_or_write_faces(sample_clip, tmp_path, monkeypatch, link, faces):
    """Portraits serve people linking and --faces alone; without them pass 1 does not load dlib's
    descriptor model (30 MB read, and a machine that lacks it can still run)."""
    import vidrestore.pipeline.analysis as pass_one
    from vidrestore.faces.people import PeopleConfig

    def no_encoder():
        raise LookupError("dlib's face encoder was asked for")

    monkeypatch.setattr(pass_one, "DlibIdentityEncoder", no_encoder)
    cfg = PipelineConfig(people=PeopleConfig(link=link), faces_dir=str(tmp_path / "faces") if faces else "")
    detector = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    if link or faces:
        with pytest.raises(LookupError):
            analyse(sample_clip, cfg, detector)
    else:
        assert analyse(sample_clip, cfg, detector).tracks


def test_a_short_video_is_decoded_once_and_restored_as_when_decoded_in_each_pass(interlaced_clip, tiny_model, tmp_path,
                                                                                monkeypatch):
    """Pass 1 keeps the frames of a video that fits ``decode_once_mib``; pass 2 and the identity
    reader take them instead of decoding (here through the deinterlacer) again."""
    import av

    from vidrestore.diffusion.sampler import SamplerConfig
    from vidrestore.io import EncodeOptions
    from vidrestore.io.reader import VideoReader as Reader
    from vidrestore.restore import load_restorer

    decodes = []
    real_decode = Reader._decode
    monkeypatch.setattr(Reader, "_decode", lambda self: decodes.append(self.path) or real_decode(self))

    class Anchored:
        """The real restorer, asking for identity crops and noting them."""

        def __init__(self):
            self.inner = load_restorer(str(tiny_model), SamplerConfig(start_step=200, steps=2), torch.device("cpu"),
                                       torch.float32, None, 32)
            self.name, self.face_size, self.uses_identity, self.references = "tiny", self.inner.face_size, True, {}
            self.notes, self.dtype = self.inner.notes, self.inner.dtype

        def start_track(self, track_id, crops, reference=None, person=None):
            self.references[track_id] = reference
            return self.inner.start_track(track_id, crops, reference, person)

        def restore_tracks(self, pieces):
            return self.inner.restore_tracks(pieces)

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    outputs, counts, references = {}, {}, {}
    for mib in (0, 64):
        decodes.clear()
        restorer = Anchored()
        cfg = PipelineConfig(decode_once_mib=mib, encode=EncodeOptions(codec="ffv1"))
        report = run(interlaced_clip, tmp_path / f"out{mib}.mkv", cfg, restorer, torch.device("cpu"), detector=det)
        assert report.tracks and report.frames_out == 24
        counts[mib], references[mib] = len(decodes), restorer.references
        with av.open(str(tmp_path / f"out{mib}.mkv")) as c:
            outputs[mib] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert counts == {0: 3, 64: 1}  # pass 1, pass 2 and the identity frames; or pass 1 alone
    assert np.array_equal(outputs[0], outputs[64])
    assert references[0].keys() == references[64].keys()
    assert all(references[0][k] is not None and torch.equal(references[0][k], references[64][k]) for k in references[0])


@pytest.mark.parametrize("mode, clip, expected", [
    ("auto", "declared", "tff"), ("off", "declared", ""), ("auto", "declared bb", "bff"), ("auto", "tff", "tff"), ("auto", "bff", "bff"),
    ("off", "bff", ""), ("auto", "progressive", ""), ("on", "progressive", "tff"), ("auto", "telecined", "tff matched"),
    ("on", "telecined", "tff"), ("off", "telecined", ""), ("ivtc", "progressive", "tff matched"),
    ("auto", "declared telecined", "tff matched")])
def test_deinterlacing_follows_the_mode_the_declared_fields_and_what_the_scan_finds(sample_clip, interlaced_clip, telecined_clip,
                                                                                  tmp_path, mode, clip, expected):
    """Undeclared fields (a woven clip flagged progressive) are found by idet, with their order;
    telecined film (flagged progressive here) by field matching."""
    path = {"declared": interlaced_clip, "progressive": sample_clip, "telecined": telecined_clip}.get(clip)
    if clip == "declared telecined":  # a DVD's hard telecine: the fields are declared, and field matching still wins
        path = telecine_clip(tmp_path / "dvd.mp4", sample_clip, declare=True)
        assert probe(path).interlaced
    elif path is None:
        declare = clip.startswith("declared")
        path = weave_clip(tmp_path / "woven.mp4", sample_clip, top_first=clip == "tff", declare=declare)
        assert probe(path).interlaced == declare
    fields, why = choose_deinterlace(PipelineConfig(deinterlace=mode), path, probe(path))
    parity, _, matched = expected.partition(" ")
    assert fields == (FieldFilter(parity, match=bool(matched)) if parity else None) and bool(why) == bool(expected)
    with pytest.raises(ConfigError, match="auto, on, ivtc, off"):
        choose_deinterlace(PipelineConfig(deinterlace="yes"), path, probe(path))


def test_a_hybrid_transfer_that_opens_with_video_is_field_matched_when_said_to_be_hybrid(sample_clip, tmp_path):
    """70 frames of video, then 48 film frames in pulldown: the field scan reads the video and
    takes it all for video (bwdif), so plain --decimate has nothing to decimate. With --hybrid it
    is field-matched all the same: the film's cycles lose their repeats, the video's stay whole.
    Progressive video is left as it is."""
    from conftest import ntsc_clip, woven_frames

    from vidrestore import cadence
    from vidrestore.pipeline.timing import left_out
    from vidrestore.sample import make_sample

    with VideoReader(make_sample(tmp_path / "sample.mp4", frames=118, size=(120, 160))) as r:
        moving = [np.ascontiguousarray(np.roll(f.image, 3 * i, axis=1)) for i, f in enumerate(r)]
    clip = ntsc_clip(tmp_path / "video_first.mp4", woven_frames(moving[:70]) + cadence.pulled_down(moving[70:]))
    plain, hybrid = PipelineConfig(decimate=True), PipelineConfig(decimate=True, hybrid=True)
    assert choose_deinterlace(plain, clip, probe(clip))[0] == FieldFilter("tff")
    fields, why = choose_deinterlace(hybrid, clip, probe(clip))
    assert fields == FieldFilter("tff", match=True) and why.startswith("--hybrid; field matching rebuilt 0")
    assert choose_deinterlace(hybrid, sample_clip, probe(sample_clip)) == (None, "")
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    analysis = analyse(clip, hybrid, det)
    assert analysis.video_cycles == frozenset(range(0, 70, 5)) and sorted(left_out(analysis, hybrid)) == list(range(72, 130, 5))


def test_faces_turned_past_the_profile_fade_keep_their_original_pixels(sample_clip, tiny_model, tmp_path):
    """The same run twice, into lossless RGB: with the default fade the faces are restored; with a
    fade that counts every pose as profile, nothing is pasted and every pixel comes out as it went in."""
    import av

    from vidrestore.diffusion.sampler import SamplerConfig
    from vidrestore.io import EncodeOptions
    from vidrestore.restore import load_restorer

    restorer = load_restorer(str(tiny_model), SamplerConfig(start_step=200, steps=2), torch.device("cpu"), torch.float32, None, 32)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    with VideoReader(sample_clip) as r:
        source = np.stack([f.image for f in r]).astype(int)
    change, profile_frames = {}, {}
    for name, fade in (("default", PipelineConfig().profile_fade), ("all profile", (0.0, 1e-9))):
        cfg = PipelineConfig(profile_fade=fade, keep_coarse=0.0, encode=EncodeOptions(codec="ffv1", pix_fmt="bgr0"))
        out = tmp_path / f"{name}.mkv"
        report = run(sample_clip, out, cfg, restorer, torch.device("cpu"), detector=det)
        with av.open(str(out)) as c:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int)
        change[name] = np.abs(frames - source).mean()
        profile_frames[name] = [(t["profile_frames"], t["frames"]) for t in report.tracks]
    assert change["default"] > 1 and change["all profile"] == 0, change
    assert all(p == 0 for p, _ in profile_frames["default"]) and all(p == n for p, n in profile_frames["all profile"])


@pytest.mark.parametrize("fade", [(1.4, 0.7), (0.7,), (-0.1, 1.0)])
def test_a_profile_fade_must_be_two_increasing_turn_ratios(fade):
    with pytest.raises(ConfigError, match="profile_fade"):
        PipelineConfig(profile_fade=fade)


def test_a_track_takes_its_identity_from_its_best_frames_when_the_restorer_uses_one(sample_clip, tmp_path):
    from vidrestore.anchor import identity_frames

    class Spy(PassThroughRestorer):
        def __init__(self, uses_identity):
            super().__init__(64)
            self.uses_identity, self.references = uses_identity, {}

        def start_track(self, track_id, first_crops, reference=None, person=None):
            self.references[track_id] = reference
            return super().start_track(track_id, first_crops, reference, person)

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    for uses in (True, False):
        spy = Spy(uses)
        report = run(sample_clip, tmp_path / f"{uses}.mp4", PipelineConfig(face_size=64), spy, torch.device("cpu"), detector=det)
        (track,) = report.tracks
        reference = spy.references[track["id"]]
        if uses:
            assert reference.shape == (len(track["identity_frames"]), 3, 64, 64) and len(track["identity_frames"]) == 8
        else:
            assert reference is None  # nothing read for a restorer without identity
    assert track["identity_frames"] == identity_frames(analyse(sample_clip, PipelineConfig(), det).tracks[0])


@pytest.mark.parametrize("transition", ["cut", "dissolve"])
def test_a_face_is_restored_in_full_from_a_cut_and_fades_in_after_a_dissolve(sample_clip, tmp_path, transition):
    """At a cut the whole picture changes, so the face that comes with it is restored in full from
    its first frame (it faded in over 3 frames, as a face coming into a shot does, so every shot
    began half restored). Across a dissolve between two pictures the boundary is in its middle:
    no track holds both, and the face found as the picture settles fades in."""
    import av

    from vidrestore.io import EncodeOptions

    with VideoReader(sample_clip) as r:
        a = [f.image for f in r]
    w = a[0].shape[1]
    b = [np.ascontiguousarray(np.roll(f[..., ::-1] // 3, w // 3, 1)) for f in a]  # another picture, still a face
    if transition == "cut":
        images = a[:14] + b[:14]
    else:
        images = a[:12] + [(a[12 + i] * (1 - t) + b[i] * t).round().astype(np.uint8)
                           for i, t in enumerate(np.arange(1, 9) / 9)] + b[8:]
    h, w = images[0].shape[:2]
    clip = make_clip(tmp_path / "two.mp4", [i * 40 for i in range(len(images))], size=(h, w), images=images)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    cfg = PipelineConfig(face_size=64, colour_match=False, keep_coarse=0.0, encode=EncodeOptions(codec="ffv1", pix_fmt="bgr0"))
    analysis = analyse(clip, cfg, det)
    first, second = analysis.shots
    assert (first.end, first.fade_out, second.fade_in) == ((14, 0, 0) if transition == "cut" else (16, 4, 4))
    assert all(analysis.shots[t.shot_index].start <= t.start and t.end <= analysis.shots[t.shot_index].end
               for t in analysis.tracks)
    out = tmp_path / "out.mkv"
    run(clip, out, cfg, Negative(64), torch.device("cpu"), detector=det)
    with av.open(str(out)) as c:
        restored = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    track = next(t for t in analysis.tracks if t.shot_index == 1)
    strength = [paste_strength(images[i], restored[i], track.landmarks_at(i)) for i in range(track.start, track.start + 5)]
    if transition == "cut":
        assert track.start == second.start and min(strength) > 0.9, strength
    else:  # found as the dissolve ends, it fades in over the 3 frames a face coming into a shot does
        assert track.start == second.start + second.fade_in
        assert np.allclose(strength, [0.25, 0.5, 0.75, 1, 1], atol=0.1), strength


@pytest.mark.parametrize("start, end, expected", [
    (10, 40, (0, 0)),  # the whole shot, between two cuts: full strength throughout
    (14, 30, (3, 3)),  # comes and goes within the shot
    (50, 70, (4, 5)),  # the whole shot between two dissolves: ramps over the dissolves' frames
    (52, 65, (3, 3)),  # found in a dissolve, gone before the next: fades as a face coming or going does
    (52, 70, (3, 5)),
    (50, 68, (4, 3)),
])
def test_restoration_ramps_where_a_face_comes_or_goes_and_with_a_dissolve_not_at_a_cut(start, end, expected):
    from vidrestore.faces.types import Track
    from vidrestore.pipeline.restoring import edge_fades
    from vidrestore.shots import Shot

    shot = Shot(10, 40) if start < 40 else Shot(50, 70, fade_in=4, fade_out=5)
    n = end - start
    track = Track(0, 0, np.arange(start, end), np.zeros((n, 4)), np.zeros((n, 5, 2)), np.ones(n))
    assert edge_fades(track, shot, fade_frames=3) == expected


def test_the_preview_shows_the_input_beside_the_restored_frames(sample_clip, tmp_path):
    """Left half: the input as decoded; right half: the output. Pasting once wrote into the decoded
    frame itself, so both halves showed the restored face."""
    import av


    def frames(path):
        with av.open(str(path)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int)

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    out, side = tmp_path / "out.mp4", tmp_path / "side.mp4"
    cfg = PipelineConfig(face_size=64, colour_match=False, keep_coarse=0.0)
    report = run(sample_clip, out, cfg, Negative(64), torch.device("cpu"), detector=det, preview=side)
    assert "every face came out as its negative" in report.notes
    source, restored, preview = frames(sample_clip), frames(out), frames(side)
    width = source.shape[2]
    assert np.abs(restored - source).mean() > 5  # the faces changed
    assert np.abs(preview[:, :, :width] - source).mean() < 2  # ...but not on the input side
    assert np.abs(preview[:, :, width:] - restored).mean() < 2


def test_closed_captions_survive_on_the_frames_whose_faces_were_restored(sample_clip, tmp_path):
    """A broadcast capture (MPEG-TS, captions in the H.264 SEI) restored to .mp4: every frame keeps
    its own captions, those with a face pasted in too."""
    src = captioned_clip(tmp_path / "news.ts", sample_clip)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    out = tmp_path / "out.mp4"
    report = run(src, out, PipelineConfig(face_size=64), Negative(64), torch.device("cpu"), detector=det)
    assert report.frames_out == 24 and sum(t["frames"] for t in report.tracks) >= 20  # faces were pasted
    assert captions(out) == captions(src)


def test_frames_without_a_face_are_not_converted_and_the_output_is_the_same(sample_clip, tmp_path, monkeypatch):
    """Pass 2 converts to RGB only the frames a track covers; the others go to the encoder as decoded.
    A run with --preview (which needs every frame's pixels) gives the same output bit for bit."""
    import av

    from vidrestore.io import EncodeOptions, reader
    from vidrestore.pipeline import restore_video

    with VideoReader(sample_clip) as r:
        faces = [f.image for f in r][:12]
    blank = np.full_like(faces[0], 90)
    images = [blank] * 6 + faces + [blank] * 6
    h, w = images[0].shape[:2]
    clip = make_clip(tmp_path / "gaps.mp4", [i * 40 for i in range(len(images))], size=(h, w), images=images)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    cfg = PipelineConfig(face_size=64, encode=EncodeOptions(codec="ffv1"))
    analysis = analyse(clip, cfg, det)
    covered = {i for t in analysis.tracks for i in range(t.start, t.end)}
    assert covered and covered <= set(range(6, 18))
    converted = []

    def counting(frame, *args, **kwargs):
        converted.append(frame.pts)
        return to_rgb(frame, *args, **kwargs)

    to_rgb = reader.frame_to_rgb
    monkeypatch.setattr(reader, "frame_to_rgb", counting)
    outputs = []
    for preview in (None, tmp_path / "side.mkv"):
        converted.clear()
        out = tmp_path / f"out{preview is not None}.mkv"
        assert restore_video(clip, out, analysis, Negative(64), cfg, torch.device("cpu"), preview=preview) == 24
        assert len(converted) == (24 if preview else len(covered))
        with av.open(str(out)) as c:
            outputs.append([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert all(np.array_equal(a, b) for a, b in zip(*outputs)) and len(outputs[0]) == 24


@pytest.mark.parametrize("mode, codec, suffix, order", [
    ("off", "libx264", ".mp4", "tt"), ("off", "ffv1", ".mkv", "tt"), ("off", "prores_ks", ".mov", "tt"), ("off", "mpeg2video", ".mkv", "tt"), ("off", "mpeg4", ".avi", "unknown"),
    ("auto", "libx264", ".mp4", "progressive"), ("auto", "ffv1", ".mkv", "progressive"), ("auto", "prores_ks", ".mov", "progressive"),
    ("auto", "mpeg2video", ".mkv", "progressive")])
def test_fields_kept_with_deinterlace_off_stay_interlaced_in_their_order(interlaced_clip, tmp_path, mode, codec, suffix, order):
    """--deinterlace off keeps the fields; x264 used to code them as progressive frames flagged
    progressive, so players no longer deinterlaced them, and so did MPEG-2 and MPEG-4 (AVI states
    no field order: its frames say they are interlaced). Deinterlaced output is progressive."""
    import av

    from vidrestore.io import EncodeOptions

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    cfg = PipelineConfig(face_size=64, deinterlace=mode, encode=EncodeOptions(codec=codec, preset="ultrafast"))
    out = tmp_path / f"out{suffix}"
    report = run(interlaced_clip, out, cfg, Negative(64), torch.device("cpu"), detector=det)
    assert report.tracks and report.frames_out == 24
    assert probe(out).field_order == order
    with av.open(str(out)) as c:
        assert all(f.interlaced_frame == (order != "progressive") for f in c.decode(video=0))


def test_kept_fields_take_the_restored_faces_and_keep_the_rest_field_for_field(interlaced_clip, sample_clip, tmp_path):
    """--keep-fields: faces found and restored on deinterlaced frames are pasted into the input's own
    fields, so the picture around them keeps both fields of every frame (deinterlacing the whole
    frame halved a 50i broadcast's motions to 25 a second everywhere), coded in the input's order."""
    from vidrestore.io import EncodeOptions

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    with VideoReader(interlaced_clip) as r:
        source = np.stack([f.image for f in r]).astype(int)
    far = np.ones(source.shape[:3], bool)  # away from the faces: their boxes grown by half their size
    for track in analyse(interlaced_clip, PipelineConfig(), det).tracks:
        for i, (x0, y0, x1, y1) in zip(track.frames, track.boxes):
            gx, gy = (x1 - x0) / 2, (y1 - y0) / 2
            far[i, max(0, int(y0 - gy)):int(y1 + gy), max(0, int(x0 - gx)):int(x1 + gx)] = False
    outputs = {}
    for keep in (True, False):
        out = tmp_path / f"out{keep}.mkv"
        cfg = PipelineConfig(face_size=64, keep_fields=keep, keep_coarse=0.0, encode=EncodeOptions(codec="ffv1"))
        report = run(interlaced_clip, out, cfg, Negative(64), torch.device("cpu"), detector=det)
        with VideoReader(out) as r:
            outputs[keep] = np.stack([f.image for f in r]).astype(int)
        assert probe(out).interlaced == keep and report.frames_out == 24
        assert not keep or probe(out).field_order == "tt"
        assert any("pasted into the input's fields" in n for n in report.notes) == keep
    kept = outputs[True]
    assert far.mean() > 0.5 and np.array_equal(kept[far], source[far])  # both fields, bit for bit
    assert np.abs(outputs[False][far] - source[far]).mean() > 1  # deinterlaced: every other line was remade
    assert (np.abs(kept - source).max(axis=3)[~far] > 60).mean() > 0.05  # the faces were pasted in
    # on progressive input there are no fields to keep, and the report says so
    progressive = run(sample_clip, tmp_path / "progressive.mkv", PipelineConfig(face_size=64, keep_fields=True,
                      encode=EncodeOptions(codec="ffv1")), Negative(64), torch.device("cpu"), detector=det)
    assert any(n.startswith("--keep-fields changed nothing") for n in progressive.notes)


@pytest.mark.parametrize("top_first", [True, False], ids=["tff", "bff"])
def test_each_kept_field_gets_the_face_it_showed(sample_clip, tmp_path, top_first):
    """--keep-fields restores a face at the field rate: the later field's rows get the face of the
    later moment. Pasted back unchanged (pass-through), the face's rows of both fields are then the
    input's; with one moment a frame, the later field's rows showed the earlier field's face."""
    from vidrestore.io import EncodeOptions

    clip = weave_clip(tmp_path / "woven.mp4", sample_clip, top_first=top_first)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    with VideoReader(clip) as r:
        source = np.stack([f.image for f in r]).astype(int)
    faces = np.zeros(source.shape[:3], bool)
    for track in analyse(clip, PipelineConfig(), det).tracks:
        for i, (x0, y0, x1, y1) in zip(track.frames, track.boxes):
            faces[i, int(y0):int(y1), int(x0):int(x1)] = True
    later = np.zeros_like(faces)
    later[:, 1 if top_first else 0::2] = True
    out = tmp_path / "out.mkv"
    cfg = PipelineConfig(face_size=128, keep_fields=True, encode=EncodeOptions(codec="ffv1"))
    report = run(clip, out, cfg, PassThroughRestorer(128), torch.device("cpu"), detector=det)
    assert report.frames_out == 24 and any(", a face for each field, and pasted into the input's fields" in n for n in report.notes)
    with VideoReader(out) as r:
        error = np.abs(np.stack([f.image for f in r]).astype(int) - source).mean(axis=3)
    assert faces.mean() > 0.03
    assert error[faces & later].mean() < 4 and error[faces & ~later].mean() < 4  # the crop and paste round trip alone


def _grown_boxes(clip, shape, growth: float) -> np.ndarray:
    """Per frame, where the faces pass 1 finds in ``clip`` are: their boxes grown by ``growth`` of their size on each side."""
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    inside = np.zeros(shape, bool)
    for track in analyse(clip, PipelineConfig(), det).tracks:
        for i, (x0, y0, x1, y1) in zip(track.frames, track.boxes):
            gx, gy = (x1 - x0) * growth, (y1 - y0) * growth
            inside[i, max(0, int(y0 - gy)):int(y1 + gy), max(0, int(x0 - gx)):int(x1 + gx)] = True
    return inside


@pytest.mark.parametrize("top_first", [True, False], ids=["tff", "bff"])
def test_double_rate_writes_a_frame_for_each_field_with_the_face_it_showed(sample_clip, tmp_path, top_first):
    """--double-rate: 50p from 50i. Each field becomes a progressive frame of its own (bwdif's),
    timed halfway between the input's frames, and the face pasted into it is the one restored from
    its own moment: pasted back unchanged (pass-through), the faces of every output frame are its
    moment's, far from the other moment's, and away from them every frame is bwdif's, bit for bit."""
    from vidrestore.io import EncodeOptions

    clip = weave_clip(tmp_path / "woven.mp4", sample_clip, top_first=top_first)
    fields = FieldFilter("tff" if top_first else "bff")
    with VideoReader(clip, deinterlace=fields, double_rate=True) as r:
        frames = list(r)
    moments = np.stack([image for f in frames for image in (f.image, f.second)]).astype(int)
    base = probe(clip).time_base
    times = [t for f in frames for t in (f.pts * base, f.second_source.pts * base / 2)]
    faces, far = _grown_boxes(clip, (24, *moments.shape[1:3]), 0).repeat(2, 0), ~_grown_boxes(clip, (24, *moments.shape[1:3]), 0.5).repeat(2, 0)
    out = tmp_path / "out.mkv"
    cfg = PipelineConfig(face_size=128, double_rate=True, encode=EncodeOptions(codec="ffv1"))
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    side = None if top_first else tmp_path / "side.mkv"  # a preview converts every frame: the tff run leaves faceless ones be
    report = run(clip, out, cfg, PassThroughRestorer(128), torch.device("cpu"), detector=det, qa=True, preview=side)
    assert (report.frames_in, report.frames_out) == (24, 48)
    assert any(", a frame for each field (--double-rate)" in n for n in report.notes)
    assert report.qa and report.qa[0]["frames_evaluated"] == report.tracks[0]["frames"]  # measured at the input's moments
    info = probe(out)
    assert info.average_rate == 2 * probe(clip).average_rate and info.field_order == "progressive"
    with av.open(str(out)) as c:
        shown = [f.time for f in c.decode(video=0)]
    assert len(shown) == 48 and max(abs(float(a - shown[0] - (b - times[0]))) for a, b in zip(shown, times)) <= 0.001  # Matroska's ms
    with VideoReader(out) as r:
        error = np.abs(np.stack([f.image for f in r]).astype(int) - moments).mean(axis=3)
    assert faces.mean() > 0.03 and far.mean() > 0.5
    assert error[0::2][faces[0::2]].mean() < 4 and error[1::2][faces[1::2]].mean() < 4  # the crop and paste round trip alone
    assert np.abs(moments[1::2] - moments[0::2]).mean(axis=3)[faces[0::2]].mean() > 8  # the other moment's face would not pass
    assert error[far].max() == 0
    if side is not None:  # the preview runs at the output's rate: each moment beside its restored frame
        with VideoReader(side) as r:
            shown = np.stack([f.image for f in r]).astype(int)
        width = moments.shape[2]
        assert len(shown) == 48 and np.abs(shown[:, :, :width] - moments).mean() < 3  # 4:2:0 chroma
        assert np.abs(shown[:, :, width:] - np.stack([f.image for f in VideoReader(out)])).mean() < 3
    # QA pairs each input frame with the output frame of its moment, not with the one of its number
    assert output_cadence(out, 24, fields, frozenset()) == (2, frozenset())  # as `vidrestore eval video` finds it
    (meter,) = measure_tracks(clip, out, analyse(clip, PipelineConfig(), det).tracks, 128, deinterlace=fields, step=2)
    before, after = meter.sheet()
    assert np.abs(before.astype(int) - after).mean() < 4


def test_double_rate_and_decimate_retime_faceless_video_and_say_when_they_do_not_apply(telecined_clip, sample_clip, tmp_path):
    """A frame for each field whether or not there is a face (the user asked for 50p); telecined
    film, whose frames field matching puts back whole, and progressive video have no fields to
    double, and the report says so. Likewise, faceless film loses its repeated frames, and video
    whose fields are moments of their own has none to lose."""
    from vidrestore.io import EncodeOptions

    cfg = PipelineConfig(face_size=64, double_rate=True, encode=EncodeOptions(codec="ffv1"))
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    bars = [np.full((64, 96, 3), 40, np.uint8) for _ in range(8)]
    for i, image in enumerate(bars):
        image[:, 10 * i : 10 * i + 8] = 220  # a bar moving right: fields of their own, nothing for field matching to rebuild
    blank = make_clip(tmp_path / "blank.mp4", [i * 40 for i in range(8)], size=(64, 96), images=bars)
    faceless = run(weave_clip(tmp_path / "woven.mp4", blank), tmp_path / "faceless.mkv", cfg, Negative(64), torch.device("cpu"), detector=det)
    assert not faceless.tracks and faceless.frames_out == 16 and probe(tmp_path / "faceless.mkv").average_rate == 50
    assert any("the video was deinterlaced into a frame for each field (--double-rate)" in n for n in faceless.notes)
    film = run(telecined_clip, tmp_path / "film.mkv", cfg, Negative(64), torch.device("cpu"), detector=det)
    assert film.frames_out == film.frames_in == 30 and any(n.startswith("--double-rate changed nothing: fields matched") for n in film.notes)
    progressive = run(sample_clip, tmp_path / "progressive.mkv", cfg, Negative(64), torch.device("cpu"), detector=det)
    assert progressive.frames_out == 24 and any(n.startswith("--double-rate changed nothing: the video was not deinterlaced")
                                                for n in progressive.notes)
    # --decimate, the other way round: faceless film is encoded at its rate, video keeps its fields' moments
    decimate = PipelineConfig(face_size=64, decimate=True, encode=EncodeOptions(codec="ffv1"))
    film = run(telecine_clip(tmp_path / "film.mp4", blank), tmp_path / "film_out.mkv", decimate, Negative(64), torch.device("cpu"), detector=det)
    assert not film.tracks and film.frames_in == 10 and film.frames_out == 8
    assert any("the video was decimated to the film's own frames (--decimate)" in n for n in film.notes)
    video = run(weave_clip(tmp_path / "faces.mp4", sample_clip), tmp_path / "video.mkv", decimate, Negative(64), torch.device("cpu"), detector=det)
    assert video.frames_out == 24 and any(n.startswith("--decimate changed nothing: deinterlaced with bwdif") and "moments of their own" in n
                                          for n in video.notes)


def test_double_rate_and_decimate_refuse_what_they_cannot_write(interlaced_clip, tmp_path):
    from vidrestore.io import EncodeOptions

    with pytest.raises(ConfigError, match=r"double_rate \(--double-rate\) and keep_fields \(--keep-fields\) exclude each other"):
        PipelineConfig(double_rate=True, keep_fields=True)
    with pytest.raises(ConfigError, match="deinterlace off keeps the fields"):
        PipelineConfig(double_rate=True, deinterlace="off")
    for other in ("double_rate", "keep_fields"):
        with pytest.raises(ConfigError, match=r"decimate \(--decimate\) leaves out .* cannot be combined"):
            PipelineConfig(decimate=True, **{other: True})
    with pytest.raises(ConfigError, match=r"hybrid \(--hybrid\) keeps the video cycles .* it needs decimate"):
        PipelineConfig(hybrid=True)
    for flag in ("double_rate", "decimate"):
        with pytest.raises(UsageError, match=f"--{flag.replace('_', '-')} writes a video"):
            run(interlaced_clip, tmp_path / "out_%06d.png", PipelineConfig(**{flag: True}), PassThroughRestorer(64), torch.device("cpu"))
    for name, codec, held in [("out.avi", "auto", r"\.avi files count frames at one rate"),
                              ("out.ts", "mpeg2video", "mpeg2video codes frames at one of a few rates")]:
        with pytest.raises(UsageError, match=f"--hybrid writes video whose frame rate varies, and {held}: write .mkv"):
            run(interlaced_clip, tmp_path / name, PipelineConfig(decimate=True, hybrid=True, encode=EncodeOptions(codec=codec)),
                PassThroughRestorer(64), torch.device("cpu"))
    assert not list(tmp_path.iterdir())


def frame_errors(video: Path, pictures: list[np.ndarray]) -> np.ndarray:
    """Mean absolute error of each frame of ``video`` (rows) against each of ``pictures`` (columns),
    on every 4th pixel of every 4th row: a whole-size comparison of every pair took gigabytes."""
    with VideoReader(video) as r:
        frames = np.stack([f.image[::4, ::4] for f in r]).astype(np.float32)
    return np.abs(frames[:, None] - np.stack(pictures)[None, :, ::4, ::4]).mean(axis=(2, 3, 4))


def test_decimate_writes_each_film_frame_once_at_the_films_rate(telecined_clip, sample_clip, tmp_path):
    """--decimate: telecined film comes out as its own 24 frames a second. Of each 5 field-matched
    frames, the one that repeats a film frame is left out (and not restored), and the 4 others
    are timed evenly over the 5's time, so the video lasts as long as the sound."""
    from conftest import film_frames

    from vidrestore.io import EncodeOptions

    film = film_frames(sample_clip)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    restorer = PassThroughRestorer(128)
    seen = []
    original = restorer.restore_tracks
    restorer.restore_tracks = lambda pieces: seen.append(sum(len(crops) for crops, _ in pieces)) or original(pieces)
    out = tmp_path / "film.mkv"
    cfg = PipelineConfig(face_size=128, decimate=True, encode=EncodeOptions(codec="ffv1"))
    report = run(telecined_clip, out, cfg, restorer, torch.device("cpu"), detector=det, qa=True)
    assert (report.frames_in, report.frames_out) == (30, 24)
    assert any(", decimated (--decimate): the 6 frames that repeated a film frame were left out" in n for n in report.notes)
    assert sum(seen) == sum(t["frames"] for t in report.tracks) * 4 // 5  # the repeats were not restored
    assert probe(out).average_rate == Fraction(24000, 1001)
    with av.open(str(out)) as c, av.open(str(telecined_clip)) as i:
        shown, before = [f.time for f in c.decode(video=0)], [f.time for f in i.decode(video=0)]
        assert [s.type for s in c.streams] == ["video", "audio"]
    assert max(abs(b - a - 1001 / 24000) for a, b in itertools.pairwise(shown)) <= 0.001  # Matroska's ms
    # the film ends when the video did: in step with the sound, which is copied as it was
    assert abs((shown[-1] - shown[0] + 1001 / 24000) - (before[-1] - before[0] + 1001 / 30000)) <= 0.001
    errors = frame_errors(out, film)  # each output frame against each film frame
    assert list(errors.argmin(axis=1)) == list(range(24)) and errors.min(axis=1).max() < 2  # every film frame once, in order
    (row,) = report.qa
    analysis = analyse(telecined_clip, PipelineConfig(), det)
    assert row["frames_evaluated"] == sum(1 for i in analysis.tracks[0].frames if i not in analysis.repeats)
    assert output_cadence(out, 30, analysis.deinterlace, analysis.repeats) == (1, analysis.repeats)  # as `eval video` finds it
    assert output_cadence(telecined_clip, 30, analysis.deinterlace, analysis.repeats) == (1, frozenset())
    (meter,) = measure_tracks(telecined_clip, out, analysis.tracks, 128, deinterlace=analysis.deinterlace, left_out=analysis.repeats)
    before, after = meter.sheet()
    assert np.abs(before.astype(int) - after).mean() < 4  # each input frame met the output frame made from it


def test_hybrid_decimation_keeps_the_video_cycles_of_a_hybrid_transfer(tmp_path):
    """--decimate --hybrid: a transfer of 48 film frames in 3:2 pulldown (60 frames) followed by 20
    frames of video whose every field is a moment of its own. The 12 film cycles lose their
    repeats and are timed at the film's rate; the 4 video cycles keep all their frames at their
    own times, so the output's rate varies. Plain --decimate leaves a real frame out of each."""
    from conftest import hybrid_transfer

    from vidrestore.io import EncodeOptions

    clip, moving = hybrid_transfer(tmp_path)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    tick = 1001 / 30000
    cfg = PipelineConfig(face_size=64, decimate=True, hybrid=True, encode=EncodeOptions(codec="ffv1"))
    out = tmp_path / "hybrid.mkv"
    report = run(clip, out, cfg, PassThroughRestorer(64), torch.device("cpu"), detector=det, qa=True)
    assert report.tracks and (report.frames_in, report.frames_out) == (80, 68)
    assert any(", decimated (--decimate): the 12 frames that repeated a film frame were left out" in n and
               "in 4 cycles of 5 no frame repeated (video shot at the video rate)" in n and "the frame rate varies" in n
               for n in report.notes)
    with av.open(str(out)) as c:
        shown = [f.time for f in c.decode(video=0)]
    shown = [t - shown[0] for t in shown]  # Matroska moves the video on by the AAC priming the audio starts with
    expected = [k * 1001 / 24000 for k in range(48)] + [(60 + j) * tick for j in range(20)]
    assert max(abs(a - b) for a, b in zip(shown, expected)) <= 0.0011  # Matroska's ms
    assert list(frame_errors(out, moving).argmin(axis=1)) == list(range(68))  # every film frame once, then every video frame
    analysis = analyse(clip, cfg, det)
    assert output_cadence(out, 80, analysis.deinterlace, analysis.repeats, analysis.video_cycles) == \
        (1, frozenset(i for i in analysis.repeats if i < 60))  # as `eval video` finds it
    (row,) = report.qa  # QA met each input frame with the output frame made from it
    assert row["frames_evaluated"] == sum(1 for i in analysis.tracks[0].frames if i >= 60 or i not in analysis.repeats)
    plain = run(clip, tmp_path / "plain.mkv", dataclasses.replace(cfg, hybrid=False), PassThroughRestorer(64),
                torch.device("cpu"), detector=det)
    assert plain.frames_out == 64 and probe(tmp_path / "plain.mkv").average_rate == Fraction(24000, 1001)
    assert any("; from frame 60, 4 cycles of 5 in a row look like video shot at the video rate" in n and "--hybrid keeps" in n
               for n in plain.notes)


def test_hybrid_decimation_of_video_alone_changes_nothing(telecined_clip):
    """Field-matched video in which every cycle is video: --hybrid leaves nothing out, so
    nothing is retimed, and the report says why."""
    from vidrestore.pipeline import Analysis
    from vidrestore.pipeline.report import deinterlace_note
    from vidrestore.pipeline.timing import decimates, left_out, output_timing

    analysis = Analysis(10, [], [], "", pts=[1001 * i for i in range(10)], deinterlace=FieldFilter("tff", match=True),
                        repeats=frozenset({2, 7}), video_cycles=frozenset({0, 5}), film_pts=[4004 * i for i in range(10)])
    cfg = PipelineConfig(decimate=True, hybrid=True)
    assert not decimates(analysis, cfg) and left_out(analysis, cfg) == frozenset()
    info = probe(telecined_clip)
    assert output_timing(info, analysis, cfg) == info
    (note,) = deinterlace_note(analysis, cfg)
    assert note.startswith("--decimate changed nothing") and "in every cycle of 5 each frame is a moment of its own" in note
    assert decimates(analysis, dataclasses.replace(cfg, hybrid=False))  # plain --decimate leaves a frame out of each


def test_evenly_spaced_frames_run_at_their_rate_in_avi_and_mpeg2_whatever_the_input_states(telecined_clip, tmp_path):
    """The telecined clip's .mp4 states 29.77 fps (its stream duration counts a long last frame),
    but its frames are 1001/30000 s apart. AVI, which stores a rate and no timestamps, came out
    at 600 fps with empty frames between; it now runs at the frames' own 29.97. MPEG-2, which
    codes one of a few rates, refused 29.77; it now codes the nearest of its own."""
    from vidrestore.io import EncodeOptions

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    assert probe(telecined_clip).average_rate != Fraction(30000, 1001)
    out = tmp_path / "out.avi"
    run(telecined_clip, out, PipelineConfig(face_size=64, deinterlace="off"), Negative(64), torch.device("cpu"), detector=det)
    with av.open(str(out)) as c, av.open(str(telecined_clip)) as i:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)
        shown, before = [f.time for f in c.decode(video=0)], [f.time for f in i.decode(video=0)]
    assert len(shown) == len(before) == 30 and max(abs(a - b) for a, b in zip(shown, before)) < 0.001
    # MPEG-2 codes one of a few rates; it refused the stated 29.77 and now codes the nearest, 29.97
    ts = tmp_path / "out.ts"
    run(telecined_clip, ts, PipelineConfig(face_size=64, deinterlace="off", encode=EncodeOptions(codec="mpeg2video")), Negative(64),
        torch.device("cpu"), detector=det)
    with av.open(str(ts)) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001) and c.streams.video[0].codec_context.name == "mpeg2video"
        assert sum(1 for _ in c.decode(video=0)) == 30


def test_an_mpeg_ts_becomes_an_avi_with_its_frames_at_their_times(sample_clip, tmp_path):
    """MPEG-TS counts time in 1/90000 s, which AVI's encoders refused (the check before any work
    failed), and the sample's frames start 83 ms in, where x264's reordering put them. The frames
    after the first came 2 frames late, and the first came at 0 (AVI's muxer writes a first frame
    first whatever its time); each keeps its time now. MJPEG, which FFmpeg's encoder writes in
    full range only, refused the clip's limited-range frames."""
    from vidrestore.io import EncodeOptions

    ts = tmp_path / "in.ts"
    with av.open(str(sample_clip)) as i, av.open(str(ts), "w") as o:
        copy = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(video=0):
            if packet.dts is not None:
                packet.stream = copy
                o.mux(packet)
    with av.open(str(ts)) as c:
        shown = [f.time for f in c.decode(video=0)]
        assert c.streams.video[0].time_base == Fraction(1, 90000) and shown[0] > 0.04
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    for codec in ("auto", "mjpeg"):
        out = tmp_path / f"{codec}.avi"
        report = run(ts, out, PipelineConfig(face_size=64, encode=EncodeOptions(codec=codec)), Negative(64), torch.device("cpu"), detector=det)
        with av.open(str(out)) as c:
            times = [f.time for f in c.decode(video=0)]
        assert report.tracks and report.encoder.startswith("mpeg4" if codec == "auto" else "mjpeg")
        assert len(times) == len(shown) == 24
        assert max(abs(a - b) for a, b in zip(times, shown, strict=True)) < 0.001


def test_a_dolby_vision_input_says_what_a_re_encode_loses(sample_clip, tmp_path):
    """Re-encoded, Dolby Vision video keeps its base layer only: the report says that its dynamic
    metadata is gone. A video with no face is copied, and keeps its Dolby Vision sample entry."""
    from conftest import dolby_vision_tagged

    from vidrestore.io import EncodeOptions
    from vidrestore.pipeline.report import encoding

    clip = dolby_vision_tagged(tmp_path / "dv.mp4", sample_clip)
    assert probe(clip).dolby_vision and not probe(sample_clip).dolby_vision
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    report = run(clip, tmp_path / "out.mkv", PipelineConfig(face_size=64, encode=EncodeOptions(codec="ffv1")), Negative(64),
                 torch.device("cpu"), detector=det)
    assert report.tracks and any(n.startswith("the input is Dolby Vision: its dynamic metadata (RPU) is not carried") for n in report.notes)
    assert not any("Dolby Vision" in n for n in encoding(sample_clip, tmp_path / "plain.mp4", PipelineConfig())[1])
    faceless = run(clip, tmp_path / "copy.mp4", PipelineConfig(face_size=64, strength=0.0), Negative(64), torch.device("cpu"),
                   detector=det)
    assert not any("Dolby Vision" in n for n in faceless.notes)
    with av.open(str(tmp_path / "copy.mp4")) as c:
        assert c.streams.video[0].codec_context.codec_tag == "dvh1"


def test_aligned_crops_are_restored_whole_to_their_edges(sample_clip, tmp_path):
    """--aligned on 256 px crops with a 128 px restorer: one track per shot, nothing detected; the
    frame goes down to the crop and back, and its edge comes back as it was: the frame's outer
    pixels sample just outside the crop, where its edge is repeated, not faded into black."""
    from vidrestore.io.encoders import EncodeOptions

    clip = aligned_clip(sample_clip, tmp_path / "aligned.mp4", 256)
    cfg = PipelineConfig(aligned=True, encode=EncodeOptions(codec="ffv1"))
    out = tmp_path / "out.mkv"
    report = run(clip, out, cfg, PassThroughRestorer(128), torch.device("cpu"))
    assert "aligned" in report.detector and "aligned" in report.mask
    assert [(t["start"], t["end"]) for t in report.tracks] == [(0, report.frames_in)]
    with VideoReader(clip) as a, VideoReader(out) as b:
        pairs = [(x.image.astype(int), y.image.astype(int)) for x, y in zip(a, b, strict=True)]
    ring = np.ones((256, 256), bool)
    ring[1:-1, 1:-1] = False
    assert max(np.abs(x - y)[ring].mean() for x, y in pairs) < 5  # padded with zeros: about 20 levels darker
    assert max(np.abs(x - y)[~ring].mean() for x, y in pairs) < 3


def test_aligned_needs_square_frames(sample_clip):
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    with pytest.raises(UsageError, match="--aligned expects square frames of aligned face crops; this video is 480x360"):
        analyse(sample_clip, PipelineConfig(aligned=True), det)


def test_square_frames_with_no_face_found_point_to_aligned(tmp_path):
    rng = np.random.default_rng(3)
    images = [rng.integers(90, 110, (64, 64, 3), dtype=np.uint8) for _ in range(6)]
    clip = make_clip(tmp_path / "square.mp4", [i * 40 for i in range(6)], size=(64, 64), images=images)
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    report = run(clip, None, PipelineConfig(), PassThroughRestorer(128), torch.device("cpu"), dry_run=True, detector=det)
    assert any("--aligned restores each shot whole" in n for n in report.notes)
    aligned = run(clip, None, PipelineConfig(aligned=True), PassThroughRestorer(128), torch.device("cpu"), dry_run=True, detector=det)
    assert not any("--aligned" in n for n in aligned.notes) and len(aligned.tracks) == 1


def test_the_report_says_when_faces_as_small_as_asked_for_are_beyond_the_detector(sample_clip, tmp_path):
    from vidrestore.pipeline.report import small_faces_note

    wide = make_clip(tmp_path / "wide.mp4", [0, 40, 80], size=(1080, 1920))
    det = create_detector(DetectorConfig(backend="dlib", max_side=960), torch.device("cpu"))
    cfg = PipelineConfig()
    analysis = analyse(wide, cfg, det)
    assert analysis.detect_side == 960 and analysis.smallest_findable == pytest.approx(130)
    (note,) = small_faces_note(analysis, cfg)
    assert note.startswith("faces under about 130 px cannot be found by this detector") and "(960 px of the frame's 1920" in note
    assert "on frames of 960 px" in analysis.detector
    # an SD frame, enlarged for the default --min-face: no word; enlarged as far as dlib goes (3
    # times) for --min-face 16, still short of it: said, and RetinaFace named
    small = make_clip(tmp_path / "close.mp4", [0, 40, 80], size=(360, 480))
    close = analyse(small, cfg, det)
    assert close.smallest_findable == pytest.approx(32.5) and close.detect_side == 960 and small_faces_note(close, cfg) == []
    tiny_faces = dataclasses.replace(cfg, tracker=dataclasses.replace(cfg.tracker, min_face_size=16))
    dlib = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    closer = analyse(small, tiny_faces, dlib)
    (note,) = small_faces_note(closer, tiny_faces)
    assert closer.smallest_findable == pytest.approx(65 / 3) and closer.detect_side == 1440
    assert note.startswith("faces under about 22 px cannot be found by this detector in frames of 480 px, worked on at 1440 px")
    assert note.endswith("--min-face is 16: RetinaFace finds faces down to about 10 px (--detector-weights)")
    found = analyse(sample_clip, tiny_faces, dlib)  # with a face found: the same word
    assert found.tracks and small_faces_note(found, tiny_faces) == [note]


def _shrunk_sample(sample_clip, path, scale: float, grey: bool = False):
    """The sample's frames shrunk by ``scale`` into grey 480x360 ones (made grey themselves with ``grey``)."""
    import cv2

    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        images = [f.image for f in r]
    canvases = []
    for image in images:
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = np.full_like(image, 128)
        canvas[100:100 + small.shape[0], 200:200 + small.shape[1]] = small
        canvases.append(np.repeat(cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)[..., None], 3, 2) if grey else canvas)
    return make_clip(path, [i * 40 for i in range(len(images))], size=images[0].shape[:2], images=canvases)


def test_a_small_face_in_an_sd_video_is_tracked_from_first_frame_to_last_with_the_defaults(sample_clip, tmp_path):
    """The sample's face shrunk to a box of about 40 px in its 480x360 frames: dlib, which finds
    faces of about 65 px at a frame's own size, found no face and the video came back copied ("0
    face tracks"); it now works on the frames enlarged for the default --min-face 32."""
    clip = _shrunk_sample(sample_clip, tmp_path / "small.mp4", 0.4)
    analysis = analyse(clip, PipelineConfig(), create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")))
    (track,) = analysis.tracks
    assert (track.start, track.end) == (0, analysis.frames) and 32 < track.median_face_px < 50
    assert analysis.detect_side == 975 and "on frames of 975 px" in analysis.detector


def test_a_colour_face_in_a_mostly_grey_picture_keeps_its_colour(sample_clip, tmp_path):
    """The sample on a fifth of a grey picture: the shot's pictures are taken for black and white
    (a coloured part of under about a tenth is left out, as a channel's logo is), and its track
    was too, so the restored face was made grey, its lips with it. Its face is clearly colour; the
    same made grey is still monochrome."""
    detector = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    colour = analyse(_shrunk_sample(sample_clip, tmp_path / "colour.mp4", 0.45), PipelineConfig(), detector)
    grey = analyse(_shrunk_sample(sample_clip, tmp_path / "grey.mp4", 0.45, grey=True), PipelineConfig(), detector)
    assert [s.monochrome for s in colour.shots] == [True] and [t.monochrome for t in colour.tracks] == [False]
    assert [s.monochrome for s in grey.shots] == [True] and [t.monochrome for t in grey.tracks] == [True]


def test_a_face_in_a_fast_pan_stays_one_track(sample_clip, tmp_path):
    """The sample's first frame, its face shrunk to about 60 px, swinging across a still 640 px
    ground at up to 85 px a frame: the flow lost the face between detections and its track was cut
    into pieces too short to keep (frames left unrestored); it is now one track, the frames
    between detections placed where the face is."""
    import cv2

    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as r:
        face = cv2.resize(next(iter(r)).image, None, fx=0.55, fy=0.55, interpolation=cv2.INTER_AREA)
    ground = cv2.GaussianBlur(np.random.default_rng(3).integers(40, 200, (360, 640, 3), dtype=np.uint8), (0, 0), 4)
    xs = [round(180 + 170 * np.sin(t * 0.5)) for t in range(40)]  # up to 85 px a frame
    images = []
    for x in xs:
        image = ground.copy()
        image[80:80 + face.shape[0], x:x + face.shape[1]] = face
        images.append(image)
    clip = make_clip(tmp_path / "pan.mp4", [i * 40 for i in range(len(images))], size=(360, 640), images=images)
    analysis = analyse(clip, PipelineConfig(), create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")))
    (track,) = analysis.tracks
    assert (track.start, track.end) == (0, len(images))
    offset = track.boxes[:, 0] - np.array(xs)
    assert np.abs(offset - np.median(offset[track.detected])).max() < 6


def test_faces_of_an_anamorphic_video_reach_the_restorer_in_proportion(sample_clip, tmp_path):
    """The sample squeezed to two thirds of its width and stored with a 3:2 pixel aspect, as
    anamorphic DV and DVD are: the crops the restorer gets, and its identity crops, are the
    square-pixel video's."""
    import dataclasses

    import cv2

    from vidrestore.io import EncodeOptions, VideoWriter

    info = probe(sample_clip)
    width = info.width * 2 // 3 // 2 * 2
    anamorphic = tmp_path / "anamorphic.mp4"
    squeezed = dataclasses.replace(info, width=width, sample_aspect_ratio=Fraction(info.width, width))
    with VideoReader(sample_clip) as r, VideoWriter(anamorphic, squeezed, EncodeOptions(crf=10)) as w:
        for f in r:
            w.write(None, f.pts, cv2.resize(f.image, (width, info.height), interpolation=cv2.INTER_AREA))
    assert probe(anamorphic).sample_aspect_ratio == Fraction(info.width, width)

    class Spy(PassThroughRestorer):
        uses_identity = True

        def start_track(self, track_id, first_crops, reference=None, person=None):
            self.first, self.reference = first_crops, reference
            return super().start_track(track_id, first_crops, reference, person)

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    spies = {}
    for name, clip in (("square", sample_clip), ("anamorphic", anamorphic)):
        spies[name] = Spy(64)
        run(clip, tmp_path / f"{name}-restored.mp4", PipelineConfig(face_size=64), spies[name], torch.device("cpu"), detector=det)
    square, stretched = spies["square"], spies["anamorphic"]
    assert (stretched.first - square.first).abs().mean() < 0.04  # measured 0.020; 0.128 before the pixel aspect was used
    assert (stretched.reference - square.reference).abs().mean() < 0.04


def test_a_toned_shot_keeps_its_tone_and_a_colour_shot_its_colours(sample_clip, tiny_model, tmp_path):
    """A colour shot, then a sepia one with a channel's red logo in its corner (2% of the picture:
    the shot was taken for colour before its core counted): the sepia shot's faces come out sepia
    whatever colours the (untrained) model gives them; the colour shot's keep the model's colours."""
    from vidrestore.diffusion.sampler import SamplerConfig
    from vidrestore.faces.tone import LUMA, tone_spread
    from vidrestore.io import EncodeOptions
    from vidrestore.restore import load_restorer

    with VideoReader(sample_clip) as r:
        shot = [f.image for f in r][:14]
    weights = np.asarray(LUMA, np.float32)
    # another shot (channels swapped and dimmed: a cut), toned sepia
    sepia = [(np.ascontiguousarray(f[..., ::-1] // 2).astype(np.float32) @ weights)[..., None] * np.array([1.0, 0.82, 0.6]) + [14, 9, 4]
             for f in shot]
    logo = np.zeros(shot[0].shape[:2], bool)
    logo[8:68, 8:68] = True
    images = shot + [np.where(logo[..., None], [220, 20, 20], np.clip(s + 0.5, 0, 255)).astype(np.uint8) for s in sepia]
    clip = make_clip(tmp_path / "toned.mp4", [i * 40 for i in range(len(images))], size=images[0].shape[:2], images=images,
                     pix_fmt="yuv444p", x264_params="qp=0")
    restorer = load_restorer(str(tiny_model), SamplerConfig(start_step=200, steps=2), torch.device("cpu"), torch.float32, None, 32)
    report = run(clip, tmp_path / "out.mkv", PipelineConfig(encode=EncodeOptions(codec="ffv1")), restorer, torch.device("cpu"),
                 detector=create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")))
    assert [(s["start"], s["end"], s["monochrome"]) for s in report.shots] == [(0, 14, False), (14, 28, True)]
    assert sorted((t["shot"], t["monochrome"]) for t in report.tracks) == [(0, False), (1, True)]
    assert any("1 of 2 face tracks are in black-and-white or toned footage" in n for n in report.notes)
    with av.open(str(tmp_path / "out.mkv")) as c:
        out = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
    with VideoReader(clip) as r:
        source = [f.image.astype(np.float32) for f in r]
    for before, after in zip(source[14:], out[14:]):
        changed = np.abs(after @ weights - before @ weights) > 2
        assert changed.mean() > 0.02  # restored
        # each changed pixel's chroma is the input's at the same luma
        sepia_pixels = before[~logo]
        known = sepia_pixels @ weights
        order = np.argsort(known)
        luma = after[changed] @ weights
        nearest = order[np.clip(np.searchsorted(known[order], luma), 0, len(order) - 1)]
        off = np.abs((after[changed] - luma[:, None]) - (sepia_pixels[nearest] - known[nearest, None])).max(1)
        assert np.percentile(off, 99) < 4, np.percentile(off, 99)
    assert min(tone_spread(np.clip(f, 0, 255).astype(np.uint8)) for f in out[:14]) > 1.5


@pytest.mark.parametrize("backend", ["dlib", "retinaface"])
def test_grey_faces_keep_their_tone_in_a_black_and_white_shot_with_a_wide_coloured_border(backend, sample_clip, tiny_model, tmp_path, request):
    """A grey shot inside a coloured border that fills a quarter of the picture: too much colour
    for the shot to be taken for black-and-white, but the face is grey, so its track keeps its
    tone: what the (untrained) model restores comes out grey. RetinaFace, shown the frames as
    they are, found no face in them; it is shown their grey part skin-toned as well."""
    from vidrestore.diffusion.sampler import SamplerConfig
    from vidrestore.faces.tone import LUMA, MONOCHROME_LEVELS, tone_spread
    from vidrestore.io import EncodeOptions
    from vidrestore.restore import load_restorer

    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r][:12]
    weights = np.asarray(LUMA, np.float32)
    height, width = frames[0].shape[:2]
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    border = (np.concatenate([ramp, 1 - ramp, 0.5 + 0 * ramp], -1) * 220 + 20).repeat(60, 1)  # a coloured gradient, 60 px wide
    images = []
    for frame in frames:
        grey = np.repeat((frame.astype(np.float32) @ weights)[..., None], 3, -1)
        grey[:, :60], grey[:, -60:] = border, border[:, ::-1]
        images.append(np.clip(grey.round(), 0, 255).astype(np.uint8))
    assert tone_spread(images[0]) > MONOCHROME_LEVELS  # the picture: colour
    clip = make_clip(tmp_path / "bordered.mp4", [i * 40 for i in range(len(images))], size=(height, width), images=images,
                     pix_fmt="yuv444p", x264_params="qp=0")
    detector_weights = str(shared_file(request.getfixturevalue("shared_data"), "weights/retinaface_mobilenet0.25_Final.pth")) \
        if backend == "retinaface" else ""
    restorer = load_restorer(str(tiny_model), SamplerConfig(start_step=200, steps=2), torch.device("cpu"), torch.float32, None, 32)
    report = run(clip, tmp_path / "out.mkv", PipelineConfig(encode=EncodeOptions(codec="ffv1")), restorer, torch.device("cpu"),
                 detector=create_detector(DetectorConfig(backend=backend, weights=detector_weights), torch.device("cpu")))
    assert [s["monochrome"] for s in report.shots] == [False] and [t["monochrome"] for t in report.tracks] == [True]
    assert report.tracks[0]["frames"] == len(images)
    with av.open(str(tmp_path / "out.mkv")) as c:
        out = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
    for before, after in zip(images, out):
        face = slice(60, None), slice(60, -60)  # the picture inside the border
        changed = np.abs(after[face] @ weights - before[face].astype(np.float32) @ weights) > 2
        assert changed.mean() > 0.01  # restored
        chroma = np.abs(after[face][changed] - (after[face][changed] @ weights)[:, None]).max(1)
        assert np.percentile(chroma, 99) < 4, np.percentile(chroma, 99)  # and grey


def test_pass_2_spread_over_glue_threads_writes_the_same_frames(sample_clip, tmp_path):
    """On a many-core machine the crops and pastes of a window run on a few threads
    (``glue_threads``, by default ``glue_workers``); the frames written are those of the
    one-thread run, bit for bit."""
    import threading

    from vidrestore.io import EncodeOptions

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    outputs = {}
    for workers in (1, 3):
        cfg = PipelineConfig(face_size=64, encode=EncodeOptions(codec="ffv1"), glue_threads=workers)
        run(sample_clip, tmp_path / f"out{workers}.mkv", cfg, Negative(64), torch.device("cpu"), detector=det)
        with VideoReader(tmp_path / f"out{workers}.mkv") as r:
            outputs[workers] = np.stack([f.image for f in r])
    assert any(t.name.startswith("vidrestore-glue") for t in threading.enumerate())
    with VideoReader(sample_clip) as r:
        source = np.stack([f.image for f in r])
    assert np.abs(outputs[1].astype(int) - source).max() > 100  # the negative faces are in
    np.testing.assert_array_equal(outputs[3], outputs[1])


def test_faces_are_cropped_and_pasted_on_the_cpu_beside_a_gpu_model_unless_the_config_says_its_device():
    """glue_device: the CPU by default (only the crops travel to the model's device; measured faster
    on an H100 beside 16 cores), the model's device on request; anything else is refused. The
    CUDA run of both is tests/test_cuda.py's (a device object needs no GPU)."""
    from vidrestore.config import CONFIG_DIR, load_yaml
    from vidrestore.pipeline.restoring import glue_on

    cuda = torch.device("cuda", 0)
    assert load_yaml(PipelineConfig, CONFIG_DIR / "pipeline.yaml").glue_device == "cpu"
    assert glue_on(PipelineConfig(), cuda) == torch.device("cpu")
    assert glue_on(PipelineConfig(glue_device="model"), cuda) == cuda
    assert glue_on(PipelineConfig(glue_device="model"), torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ConfigError, match="glue_device: expected one of cpu, model, got 'gpu'"):
        PipelineConfig(glue_device="gpu")

class Denoiser(PassThroughRestorer):
    """What restoration does to a noisy face: each comes out smooth."""

    def restore_tracks(self, pieces):
        import kornia

        return [kornia.filters.gaussian_blur2d(crops, (9, 9), (2.5, 2.5)) for crops, _ in pieces]


def test_grain_gives_a_restored_face_the_noise_of_its_frame(sample_clip, tmp_path, monkeypatch):
    """Noisy footage (6 levels of luma noise) whose faces come out clean: with --grain 1 the
    restored faces have their frames' noise again (between the eyes and the mouth), and it changes
    from frame to frame as the frame's does; without, they keep almost none."""
    from vidrestore.faces.paste import noise_level
    from vidrestore.io import EncodeOptions

    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r][:8]
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 6, f.shape[:2])[..., None], 0, 255).round().astype(np.uint8) for f in frames]
    height, width = frames[0].shape[:2]
    clip = make_clip(tmp_path / "noisy.mp4", [i * 40 for i in range(len(noisy))], size=(height, width), images=noisy,
                     pix_fmt="yuv444p", x264_params="qp=0")
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    (track,) = analyse(clip, PipelineConfig(), det).tracks

    def face_noise(path: Path) -> list[float]:
        """The luma noise between the eyes and the mouth of each frame."""
        with av.open(str(path)) as c:
            images = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
        levels = []
        for i, image in enumerate(images):
            (x0, y0), (x1, y1) = track.landmarks[i].min(0).astype(int), track.landmarks[i].max(0).astype(int)
            where = torch.zeros(image.shape[:2], dtype=torch.bool)
            where[y0:y1, x0:x1] = True
            levels.append(noise_level(torch.from_numpy(image @ np.array([0.299, 0.587, 0.114], np.float32)), where))
        return levels

    outputs = {}
    for grain in (0.0, 1.0):
        outputs[grain] = tmp_path / f"grain{grain}.mkv"
        report = run(clip, outputs[grain], PipelineConfig(grain=grain, encode=EncodeOptions(codec="ffv1")), Denoiser(128),
                     torch.device("cpu"), detector=det)
        assert report.grain == grain
        assert any("--grain 1 puts the frames' grain back" in note for note in report.notes) == (grain == 0)
    # a batch's item said nothing of it: its segments are restored apart from where the report is made
    import json

    from vidrestore.cli import main

    monkeypatch.setattr("vidrestore.batch.worker.build_restorer", lambda options, device: Denoiser(128))

    assert main(["batch", str(clip), "--out", str(tmp_path / "batch"), "--detector", "dlib", "--quiet", "--json",
                 str(tmp_path / "batch.json")]) == 0
    (item,) = json.loads((tmp_path / "batch.json").read_text())["items"]
    assert any("--grain 1 puts the frames' grain back" in note for note in item["report"]["notes"])
    source, clean, grained = face_noise(clip), face_noise(outputs[0.0]), face_noise(outputs[1.0])
    assert np.median(source) == pytest.approx(6, rel=0.15)
    assert max(clean) < 2.5
    assert np.median(grained) == pytest.approx(np.median(source), rel=0.2)
    with av.open(str(outputs[1.0])) as c:
        whole = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    (x0, y0), (x1, y1) = track.landmarks[0].min(0).astype(int), track.landmarks[0].max(0).astype(int)
    assert not np.array_equal(whole[0][y0:y1, x0:x1], whole[1][y0:y1, x0:x1])  # fresh grain each frame
    # in segments (as a stopped run resumes), each frame's grain is the same
    run(clip, tmp_path / "segments.mkv", PipelineConfig(grain=1.0, batch_size=2, segment_frames=4, encode=EncodeOptions(codec="ffv1")),
        Denoiser(128), torch.device("cpu"), detector=det)
    with av.open(str(tmp_path / "segments.mkv")) as c:
        assert all(np.array_equal(a, f.to_ndarray(format="rgb24")) for a, f in zip(whole, c.decode(video=0), strict=True))


def test_grain_on_a_monochrome_track_is_luma_alone(sample_clip, tmp_path):
    """A black-and-white clip with noise in each channel (a scan's chroma noise): its track is
    monochrome, so the restored face keeps its tone curve and takes back luma grain alone: its
    colour differences stay as clean as the denoised face's, though the frame's are noisy."""
    from vidrestore.faces.paste import noise_level
    from vidrestore.io import EncodeOptions

    with VideoReader(sample_clip) as r:
        frames = [f.image for f in r][:8]
    rng = np.random.default_rng(0)
    grey = [np.repeat((f.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, 2) for f in frames]
    noisy = [np.clip(g + rng.normal(0, 4, g.shape), 0, 255).round().astype(np.uint8) for g in grey]
    height, width = frames[0].shape[:2]
    clip = make_clip(tmp_path / "grey.mp4", [i * 40 for i in range(len(noisy))], size=(height, width), images=noisy,
                     pix_fmt="yuv444p", x264_params="qp=0")
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    report = run(clip, tmp_path / "out.mkv", PipelineConfig(grain=1.0, encode=EncodeOptions(codec="ffv1")), Denoiser(128),
                 torch.device("cpu"), detector=det)
    assert [t["monochrome"] for t in report.tracks] == [True]
    (track,) = analyse(clip, PipelineConfig(), det).tracks

    def chroma_noise(path: Path) -> float:
        """The median over frames of the R - Y noise between the eyes and the mouth."""
        with av.open(str(path)) as c:
            images = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
        levels = []
        for i, image in enumerate(images):
            (x0, y0), (x1, y1) = track.landmarks[i].min(0).astype(int), track.landmarks[i].max(0).astype(int)
            where = torch.zeros(image.shape[:2], dtype=torch.bool)
            where[y0:y1, x0:x1] = True
            levels.append(noise_level(torch.from_numpy(image[..., 0] - image @ np.array([0.299, 0.587, 0.114], np.float32)), where))
        return float(np.median(levels))
    assert chroma_noise(clip) > 2.5 and chroma_noise(tmp_path / "out.mkv") < 0.5


def test_face_noise_is_measured_in_8_bit_levels_whatever_the_depth():
    """A frame with 6 levels of white noise, before, and a clean face pasted, after: about 6.9
    levels at the pixels, halves and quarters together (6, 3, 1.5) before and none after, between
    the landmarks; a 16-bit frame of the same pictures measures the same."""
    from vidrestore.pipeline.restoring import face_noise

    ys, xs = np.mgrid[0:200, 0:240].astype(np.float32)
    clean = np.repeat((60 + 0.4 * xs + 0.2 * ys)[..., None], 3, 2)
    noisy = clean + np.random.default_rng(0).normal(0, 6, clean.shape[:2])[..., None]
    landmarks = np.array([[40.0, 30.0], [200.0, 30.0], [120.0, 100.0], [50.0, 170.0], [190.0, 170.0]])
    eight = face_noise(noisy.round().astype(np.uint8), clean.round().astype(np.uint8), landmarks)
    sixteen = face_noise((noisy * 257).round().astype(np.uint16), (clean * 257).round().astype(np.uint16), landmarks)
    assert eight[0] == pytest.approx(6 * np.sqrt(1 + 1 / 4 + 1 / 16), rel=0.1) and eight[1] < 0.5
    assert sixteen == pytest.approx(eight, rel=0.05, abs=0.3)  # (8-bit rounding alone makes a little)


def test_keep_detail_pastes_what_restoration_changed_and_keeps_the_frames_finer_detail(sample_clip, tmp_path):
    """With a crop smaller than the faces, pasting the crop back enlarges it: even a restorer that
    changes nothing blurs the faces. ``keep_detail`` pastes what restoration changed, so that
    restorer leaves the video as it was (but for the YUV round trip of the pasted boxes), and a
    restorer that does change the face (the Denoiser) still changes it."""
    from vidrestore.io import EncodeOptions

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    with VideoReader(sample_clip) as r:
        source = np.stack([f.image for f in r]).astype(int)

    def restored(restorer: PassThroughRestorer, keep: float) -> np.ndarray:
        cfg = PipelineConfig(face_size=32, encode=EncodeOptions(codec="ffv1"), keep_detail=keep, measure_detail=False, colour_match=False,
                             keep_coarse=0.0)  # the Denoiser's change, 2.5 px of a 32 px crop, is coarse in the frame
        out = tmp_path / f"{type(restorer).__name__}{keep}.mkv"
        report = run(sample_clip, out, cfg, restorer, torch.device("cpu"), detector=det)
        assert report.keep_detail == keep
        advised = [note for note in report.notes if "--keep-detail 1 keeps all of it" in note]
        assert len(advised) == (0 if keep == 1 else 1)  # faces many times the crop, in clean frames
        with VideoReader(out) as r:
            return np.stack([f.image for f in r]).astype(int)

    enlarged, kept = restored(PassThroughRestorer(32), 0.0), restored(PassThroughRestorer(32), 1.0)
    assert np.abs(enlarged - source).max() > 40  # the faces' detail, lost to the 32 px crop
    assert np.abs(kept - source).max() <= 6  # the conversion of the pasted boxes back to YUV alone (4 when written)
    assert np.abs(kept - source).mean() < 0.6 * np.abs(enlarged - source).mean()
    half = restored(PassThroughRestorer(32), 0.5)  # half of what the enlarged crop lost, to the rounding
    assert abs(np.abs(half - source).mean() - np.abs(enlarged - source).mean() / 2) < 0.15 * np.abs(enlarged - source).mean()
    smoothed = restored(Denoiser(32), 1.0)
    assert np.abs(smoothed - source).max() > 20 and np.abs(smoothed - source).mean() > 4 * np.abs(kept - source).mean()


class Relighter(PassThroughRestorer):
    """A restorer that re-lights each face: light falling across it, as coarse as shading is."""

    def restore_tracks(self, pieces):
        return [(crops + torch.linspace(-0.15, 0.15, self.face_size)).clamp(0, 1) for crops, _ in pieces]


def test_a_restorer_that_relights_faces_leaves_them_as_lit_as_the_input_when_the_coarse_picture_is_kept(sample_clip, tmp_path):
    """With the frame's detail kept (keep_detail 1), a pass-through restorer leaves the video as it
    was; one that re-lights the faces changes their light, unless their picture coarser than 4
    pixels of the frame is kept (the default): then they are as the pass-through left them."""
    from vidrestore.io import EncodeOptions

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    with VideoReader(sample_clip) as r:
        source = np.stack([f.image for f in r]).astype(int)

    def restored(restorer: PassThroughRestorer, coarse: float) -> np.ndarray:
        cfg = PipelineConfig(face_size=32, encode=EncodeOptions(codec="ffv1"), keep_detail=1.0, measure_detail=False, keep_coarse=coarse)
        out = tmp_path / f"{type(restorer).__name__}{coarse}.mkv"
        assert run(sample_clip, out, cfg, restorer, torch.device("cpu"), detector=det).keep_coarse == coarse
        with VideoReader(out) as r:
            return np.stack([f.image for f in r]).astype(int)

    relit, kept = restored(Relighter(32), 0.0), restored(Relighter(32), 4.0)
    plain = restored(PassThroughRestorer(32), 4.0)
    assert np.abs(relit - source).max() > 15  # measured 21: the light, under the paste mask and colour matching
    assert np.abs(plain - source).max() <= 6  # the conversion of the pasted boxes back to YUV alone (4 when written)
    assert np.abs(kept - plain).max() <= 4 and np.abs(kept - plain).mean() < 0.05  # as the pass-through left it
    assert np.abs(relit - source).mean() > 2.5 * np.abs(kept - source).mean()  # measured 0.87 against 0.27


@pytest.mark.parametrize("aligned", [False, True], ids=["found", "aligned"])
def test_each_tracks_share_of_detail_is_measured_and_fresh_noise_lowers_it(sample_clip, tmp_path, aligned):
    """With ``measure_detail`` each track's share is what pass 1 measured (faces.detail) and the
    report says so, for faces found in the frame and for frames that are aligned crops
    (``--aligned``, 128 px crops of a 32 px model); the same clip with noise drawn anew in each
    frame measures a smaller share, and a share given with the option off is used as given."""
    from vidrestore.io import EncodeOptions

    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    clean = aligned_clip(sample_clip, tmp_path / "aligned.mp4", 128) if aligned else sample_clip
    rng = np.random.default_rng(0)
    noisy = tmp_path / "noisy.mkv"
    with VideoReader(clean) as r, av.open(str(noisy), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = r.info.width, r.info.height, "bgr0"
        for f in r:
            image = np.clip(f.image + rng.normal(0, 12, f.image.shape), 0, 255).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    cfg = PipelineConfig(face_size=32, aligned=aligned, encode=EncodeOptions(codec="ffv1"))
    shares = {}
    for clip in (clean, noisy):
        report = run(clip, tmp_path / f"{clip.stem}_out.mkv", cfg, PassThroughRestorer(32), torch.device("cpu"), detector=det)
        (track,) = report.tracks
        assert report.measure_detail and track["measured_detail"] is not None and track["keep_detail"] == track["measured_detail"]
        assert not any("--keep-detail 1" in note for note in report.notes)  # the advice is for a share set by hand
        shares[clip] = track["keep_detail"]
    assert 0 <= shares[noisy] < shares[clean] - 0.2 and shares[clean] <= 1
    fixed = run(clean, tmp_path / "fixed.mkv", dataclasses.replace(cfg, measure_detail=False, keep_detail=0.4),
                PassThroughRestorer(32), torch.device("cpu"), detector=det)
    assert not fixed.measure_detail and fixed.tracks[0]["keep_detail"] == 0.4


def test_detail_note_names_clean_faces_much_larger_than_the_crop():
    from vidrestore.pipeline.report import detail_note

    samples = {0: [(0.5, 0.4, 2.5)] * 3, 1: [(0.5, 0.4, 1.2)] * 3, 2: [(6.0, 0.4, 3.0)] * 3, 3: [(1.0, 0.9, 2.1), (1.2, 0.9, 2.3)]}
    notes = detail_note(samples, 0.25)  # track 1 is about the crop's size, track 2's frames are noisy
    assert len(notes) == 1 and notes[0].startswith("the faces of tracks 0, 3 are 2.2-2.5 times the model's crop")
    assert "kept 25% of their fine detail, and --keep-detail 1 keeps all of it" in notes[0]
    assert detail_note({1: samples[1]}, 0.0) == [] and detail_note({}, 0.0) == []
    assert detail_note(samples, 1.0) == []  # all of it kept already


def test_an_input_that_grows_while_it_is_read_is_refused_and_nothing_written(sample_clip, tmp_path, monkeypatch, capsys):
    """A recording still being written (or a file still being copied in) was read to one end by pass
    1 and to another by pass 2 and the remux of its sound, and the output named as complete."""
    import json
    import shutil

    from vidrestore.cli import main
    from vidrestore.pipeline import driver

    clip = Path(shutil.copy(sample_clip, tmp_path / "rec.mkv"))
    restore = driver.restore_video

    def growing(src, *args, **kwargs):
        with open(src, "ab") as f:
            f.write(b"\0" * 64)  # what the recorder adds meanwhile
        return restore(src, *args, **kwargs)

    for module in ("vidrestore.pipeline.driver", "vidrestore.batch.worker"):
        monkeypatch.setattr(f"{module}.restore_video", growing)
    said = f"{clip} changed while it was read (is it still being recorded or copied?): nothing was written"
    assert main([str(clip), str(tmp_path / "out.mkv"), "--model", "none", "--detector", "dlib", "--quiet"]) == 3
    err = capsys.readouterr().err
    assert err.strip() == f"vidrestore: error: {said}; run again once it is complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.mkv"]
    report = tmp_path / "b.json"
    assert main(["batch", str(clip), "--out", str(tmp_path / "b"), "--model", "none", "--detector", "dlib", "--quiet", "--retries", "0",
                 "--json", str(report)]) == 1
    (item,) = json.loads(report.read_text())["items"]
    assert item["status"] == "failed" and item["error"].startswith(said)
    assert not (tmp_path / "b" / "rec.mkv").exists()
    monkeypatch.setattr("vidrestore.pipeline.driver.restore_video", restore)  # complete now
    assert main([str(clip), str(tmp_path / "out.mkv"), "--model", "none", "--detector", "dlib", "--quiet"]) == 0


def test_tracks_of_things_the_detector_took_for_faces_are_left_out_and_said_to_be(tmp_path, monkeypatch):
    """dlib's HOG tracked the astronaut's mission patch and name tag as faces in her photograph at
    1080p, frame after frame, and a restoring run painted faces there. A track of faces HOG is unsure
    of is a face only where dlib's CNN finds one at up to 3 of them; hers needs no second look."""
    from vidrestore.faces.detect import DlibDetector
    from vidrestore.faces.track import CONFIRM_TRIES

    looks = []
    confirms = DlibDetector.confirms
    monkeypatch.setattr(DlibDetector, "confirms", lambda self, image, box: looks.append(box) or confirms(self, image, box))
    clip = make_clip(tmp_path / "astronaut.mp4", list(range(0, 320, 40)), size=(1080, 1920),
                     images=[astronaut_frame(6 * i) for i in range(8)])
    det = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    analysis = analyse(clip, PipelineConfig(tracker=TrackerConfig(detect_every=1)), det)
    assert [(t.start, t.end) for t in analysis.tracks] == [(0, 8)] and analysis.tracks[0].boxes[:, 3].max() < 400
    assert analysis.not_faces >= 1 and 0 < len(looks) <= CONFIRM_TRIES * analysis.not_faces
    report = run(clip, tmp_path / "out.mp4", PipelineConfig(tracker=TrackerConfig(detect_every=1)), PassThroughRestorer(128),
                 torch.device("cpu"), dry_run=True, detector=det)
    assert f"{analysis.not_faces} face track" in " ".join(report.notes)
