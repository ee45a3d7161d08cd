"""Which tracks show the same person: portraits from pass 1's detections, and the linking rule."""

import numpy as np
import pytest
import torch
from conftest import make_clip, shared_file
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.faces.identity import DlibIdentityEncoder
from vidrestore.faces.people import PeopleConfig, Portraits, contact_sheet, link_people
from vidrestore.faces.pose import portrait_score
from vidrestore.faces.types import Track
from vidrestore.io import VideoReader
from vidrestore.pipeline import PipelineConfig, analyse


def _track(track_id: int, start: int, end: int) -> Track:
    n = end - start
    return Track(track_id, 0, np.arange(start, end), np.zeros((n, 4)), np.zeros((n, 5, 2)), np.ones(n))


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=128)
    return v / np.linalg.norm(v)


def test_a_face_that_comes_back_joins_its_person_and_another_face_starts_one():
    rng = np.random.default_rng(0)
    anna, ben = _unit(rng), _unit(rng)
    tracks = [_track(0, 0, 30), _track(4, 40, 60), _track(7, 70, 90), _track(9, 95, 99)]
    near_anna = anna + 0.3 * _unit(rng) / np.sqrt(2)  # about 0.3 away
    person = link_people(tracks, {0: anna, 4: ben, 7: near_anna}, max_distance=0.5)
    assert person == {0: 0, 4: 4, 7: 0, 9: 9}  # 9 has no descriptor: a person of its own


def test_faces_on_screen_together_are_never_one_person():
    rng = np.random.default_rng(1)
    twin = _unit(rng)
    tracks = [_track(0, 0, 30), _track(1, 29, 50), _track(2, 60, 80)]
    # 1 shares frame 29 with 0: two people, however alike; 2 overlaps neither and joins the first
    assert link_people(tracks, {0: twin, 1: twin, 2: twin}, max_distance=0.5) == {0: 0, 1: 1, 2: 0}


def test_a_track_joins_the_nearest_person_in_reach_and_a_persons_tracks_all_count():
    e0, e1 = np.eye(128)[:2]
    tracks = [_track(0, 0, 10), _track(1, 20, 30), _track(2, 40, 50)]
    a, b, c = e0, e0 + 1.0 * e1, e0 + 0.55 * e1  # c: 0.55 from a, 0.45 from b
    assert link_people(tracks, {0: a, 1: b, 2: c}, max_distance=0.6) == {0: 0, 1: 1, 2: 1}  # the nearer, not the first
    assert link_people(tracks, {0: a, 1: b, 2: c}, max_distance=0.4) == {0: 0, 1: 1, 2: 2}
    # a person is where all their tracks are: 0.8 from the first track, 0.55 from the mean of two
    assert link_people(tracks, {0: e0, 1: e0 + 0.5 * e1, 2: e0 + 0.8 * e1}, max_distance=0.6) == {0: 0, 1: 0, 2: 0}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 60), st.integers(0, 3)), min_size=1, max_size=25),
       st.floats(0.0, 1.5))
def test_linked_tracks_never_share_a_frame_and_each_person_is_named_after_its_first_track(spans, max_distance):
    rng = np.random.default_rng(len(spans))
    faces = [_unit(rng) for _ in range(4)]
    tracks = [_track(i, start, start + length) for i, (start, length, _) in enumerate(spans)]
    descriptors = {i: faces[who] + 0.05 * rng.normal(size=128) for i, (_, _, who) in enumerate(spans)}
    person = link_people(tracks, descriptors, max_distance)
    assert set(person) == {t.track_id for t in tracks}
    for t in tracks:
        same = [u for u in tracks if person[u.track_id] == person[t.track_id]]
        first = min(same, key=lambda u: (u.start, u.track_id))
        assert person[t.track_id] == first.track_id
        assert all(u is t or u.end <= t.start or t.end <= u.start for u in same)
    if max_distance == 0.0:
        assert person == {t.track_id: t.track_id for t in tracks}


def test_portraits_keep_each_tracks_best_faces_and_describe_them_once_it_ends(sample_clip):
    detector = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    encoder = DlibIdentityEncoder()
    with VideoReader(sample_clip) as reader:
        frames = [f.image for f in reader]
    faces = [(image, found[0]) for image in frames for found in [detector.detect([image])[0]] if found][:8]
    assert len(faces) == 8
    images, found = zip(*faces)
    portraits = Portraits(PeopleConfig(portraits=3), encoder)
    for image, detection in zip(images, found):
        portraits.offer(image, (1.0, 1.0), [(5, detection)])
        portraits.settle({5})
    assert portraits.descriptors == {}  # still open: its best faces may be yet to come
    portraits.settle(set())
    best = sorted(range(len(found)), key=lambda i: -float(portrait_score(np.float64(found[i].size), found[i].landmarks)))[:3]
    expected = Portraits(PeopleConfig(portraits=3), encoder)
    crops = np.stack([expected.crop(images[i], found[i].landmarks) for i in best])
    assert np.allclose(portraits.descriptors[5], encoder.embed(crops).mean(0), atol=1e-5)
    assert portraits._best == {}  # the crops were let go


def test_a_face_hidden_longer_than_the_tracker_bridges_comes_back_as_the_same_person(tmp_path):
    from vidrestore.sample import make_sample

    with VideoReader(make_sample(tmp_path / "s.mp4", frames=48)) as reader:
        images = [f.image.copy() for f in reader]
    for image in images[16:32]:  # 16 frames (the tracker bridges 10): the wall behind covers the face
        image[0:160, 120:270] = image[200:360, 320:470]
    clip = make_clip(tmp_path / "hidden.mp4", [i * 40 for i in range(48)], size=images[0].shape[:2], images=images)
    detector = create_detector(DetectorConfig(backend="dlib"), torch.device("cpu"))
    analysis = analyse(clip, PipelineConfig(), detector)
    assert len(analysis.shots) == 1 and len(analysis.tracks) == 2
    assert [t.person for t in analysis.tracks] == [analysis.tracks[0].track_id] * 2
    unlinked = analyse(clip, PipelineConfig(people=PeopleConfig(link=False)), detector)
    assert [t.person for t in unlinked.tracks] == [t.track_id for t in unlinked.tracks]


@pytest.mark.slow
def test_two_real_people_are_told_apart_and_each_is_found_again_after_a_cut(shared_data, tmp_path):
    """keep_real_1 and keep_real_2 (two people) cut together as 1, 2, 1, 2 at 20 frames a shot."""
    clips = []
    for name in ("keep_real_1", "keep_real_2"):
        with VideoReader(shared_file(shared_data, f"videos/{name}.mp4")) as reader:
            clips.append([f.image for _, f in zip(range(40), reader)])
    h, w = min(c[0].shape[0] for c in clips), min(c[0].shape[1] for c in clips)
    images = [image[:h, :w] for part in (clips[0][:20], clips[1][:20], clips[0][20:], clips[1][20:]) for image in part]
    clip = make_clip(tmp_path / "cut.mp4", [i * 50 for i in range(len(images))], size=(h, w), images=images)
    analysis = analyse(clip, PipelineConfig(), create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")))
    assert [(t.start, t.end) for t in analysis.tracks] == [(0, 20), (20, 40), (40, 60), (60, 80)]
    ids = [t.track_id for t in analysis.tracks]
    assert [t.person for t in analysis.tracks] == [ids[0], ids[1], ids[0], ids[1]]


def test_the_contact_sheet_gives_each_person_a_row_of_their_tracks_faces():
    rng = np.random.default_rng(3)
    faces = {t: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for t in [*range(10), 12]}
    person_of = {t: 0 for t in range(10)} | {12: 12}
    sheet = contact_sheet(faces, person_of, per_row=4)
    assert sheet.shape == (4 * 32, 5 * 32, 3)  # person 0: 10 faces in rows of 4 (3 rows); person 12: one row
    for track, (row, col) in {0: (0, 1), 3: (0, 4), 4: (1, 1), 9: (2, 2), 12: (3, 1)}.items():
        cell = sheet[row * 32:row * 32 + 14, col * 32:(col + 1) * 32]  # above the strip with the track id
        assert np.array_equal(cell, faces[track][:14])
    assert not sheet[32:64, :32].any() and sheet[:32, :32].any()  # the person's label on their first row only
