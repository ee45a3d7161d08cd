import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from vidrestore import cadence


@given(st.integers(1, 8), st.integers(0, 4), st.data())
def test_the_repeat_of_each_cycle_is_the_frame_that_changed_least(cycles, tail, data):
    """One frame of each full cycle of 5 barely changed (a repeated film frame); every other frame
    changed. A last, shorter cycle has no repeat."""
    changes = data.draw(st.lists(st.floats(2.0, 50.0), min_size=5 * cycles + tail, max_size=5 * cycles + tail))
    repeats = {5 * c + data.draw(st.integers(0, 4)) for c in range(cycles)}
    for i in repeats:
        changes[i] = 0.3
    changes[0] = float("inf") if 0 not in repeats else changes[0]
    assert cadence.repeated_frames(changes) == frozenset(repeats)


@given(st.integers(1, 6), st.integers(0, 4), st.integers(1, 3000), st.integers(0, 10_000), st.data())
def test_film_timing_spreads_each_cycles_four_frames_evenly_over_its_time(cycles, tail, step, start, data):
    """The 4 frames a cycle keeps are 5/4 of a frame apart (in ticks 4 times finer), from the
    time the cycle's first frame had; a cycle without a repeat keeps its frames' times."""
    count = 5 * cycles + tail
    pts = [start + i * step for i in range(count)]
    repeats = frozenset(5 * c + data.draw(st.integers(0, 4)) for c in range(cycles))
    timing = cadence.film_timing(pts, repeats, step)
    assert [i for i, t in enumerate(timing) if t is None] == sorted(repeats)
    kept = [t for t in timing if t is not None]
    assert kept == [4 * start + 5 * step * k for k in range(4 * cycles)] + [4 * pts[i] for i in range(5 * cycles, count)]
    assert all(b > a for a, b in itertools.pairwise(kept))


@given(st.lists(st.sampled_from(["film", "still", "video"]), min_size=1, max_size=8), st.integers(0, 4), st.integers(0, 4), st.data())
def test_video_cycles_are_those_in_which_no_frame_repeats(kinds, place, tail, data):
    """In a hybrid transfer, a film cycle has one frame that changed under half as much as the
    others of its cycle mostly do, at the same place as in the film cycle before or after it; a
    still cycle, nothing that moved enough to see. A cycle of video changes in every frame: it is
    kept whole, and its least changed frame is not left out. A lone film cycle between others
    proves no steady place: it is kept whole too, unless its repeat changed too little to see."""
    changes, clean = [], set()  # clean: film cycles whose repeat changed too little to see
    for c, kind in enumerate(kinds):
        if kind == "video":
            low = data.draw(st.floats(0.6, 20.0))
            cycle = data.draw(st.lists(st.floats(low, 1.8 * low), min_size=5, max_size=5))
        else:
            cycle = data.draw(st.lists(st.floats(0.0, 0.5) if kind == "still" else st.floats(2.0, 50.0), min_size=5, max_size=5))
            if kind == "film":
                cycle[place] = data.draw(st.floats(0.0, 0.45 * min(cycle)))
                clean |= {c} if cycle[place] <= cadence.STILL else set()
        changes += cycle
    changes += data.draw(st.lists(st.floats(0.0, 50.0), min_size=tail, max_size=tail))
    film = clean | {c for c, kind in enumerate(kinds) if kind == "film" and "film" in kinds[max(0, c - 1) : c] + kinds[c + 1 : c + 2]}
    video = cadence.video_cycles(changes)
    assert video == {5 * c for c, kind in enumerate(kinds) if kind == "video" or (kind == "film" and c not in film)}
    repeats = cadence.repeated_frames(changes)
    assert cadence.in_film_cycles(repeats, video) == {i for i in repeats if i // 5 in film or kinds[i // 5] == "still"}


def test_a_frame_that_changed_least_by_chance_is_no_repeat():
    """Video whose least changed frame stands out in one cycle, at another place than the
    film's repeats before it: the cycle is kept whole."""
    film = [5.0, 5.0, 0.2, 5.0, 5.0] * 2
    assert cadence.video_cycles(film + [4.0, 1.5, 4.0, 4.0, 4.0]) == {10}
    assert cadence.video_cycles(film + [4.0, 4.0, 1.5, 4.0, 4.0]) == frozenset()  # where the film repeats: taken for film


@given(st.sets(st.integers(0, 30)))
def test_the_longest_run_of_cycles(cycles):
    starts = frozenset(5 * c for c in cycles)
    length, first = cadence.longest_run(starts)
    assert all(first + 5 * k in starts for k in range(length)) and first + 5 * length not in starts
    assert not any(all(5 * (c + k) in starts for k in range(length + 1)) for c in cycles)  # none longer
    assert (length == 0) == (not cycles)


def test_frame_step_is_the_common_step_or_none():
    assert cadence.frame_step([0, 1001, 2002, 3003]) == 1001
    assert cadence.frame_step([0, 33, 67, 100, 133]) == 33  # Matroska's milliseconds at 29.97 fps: within a tick
    assert cadence.frame_step([0, 40, 80, 150]) is None  # variable frame rate
    assert cadence.frame_step([0, None, 80]) is None and cadence.frame_step([5]) is None


def test_a_thumbnail_change_measures_how_much_a_frame_moved():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    same, other = cadence.thumbnail(image), cadence.thumbnail(np.roll(image, 8, axis=1))
    assert cadence.change(None, same) == float("inf")
    assert cadence.change(same, cadence.thumbnail(image.copy())) == 0 < cadence.change(same, other)
