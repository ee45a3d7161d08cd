import re

import pytest

from vidrestore.cli import main
from vidrestore.config import with_overrides
from vidrestore.errors import ConfigError
from vidrestore.train.trainer import load_train_config


def test_overrides_are_typed_like_the_config():
    cfg = with_overrides(load_train_config("tiny"), ["lr=1e-4", "decay_from_step=300", "extra_packs=[a.npz, b.npz]",
                                                     "sampler={start_step: 100, steps: 2}"])
    assert cfg.lr == 1e-4 and isinstance(cfg.lr, float)
    assert cfg.decay_from_step == 300 and cfg.extra_packs == ["a.npz", "b.npz"]
    assert (cfg.sampler.start_step, cfg.sampler.steps) == (100, 2)
    assert cfg.model == load_train_config("tiny").model  # fields not named keep the file's values


@pytest.mark.parametrize("text, message", [("lrx=1", "unknown keys \\['lrx'\\]"), ("steps=many", "expected int"),
                                           ("steps", "expected KEY=VALUE"), ("lr=[1", "not valid YAML")])
def test_a_bad_override_names_the_problem(text, message):
    with pytest.raises(ConfigError, match=message):
        with_overrides(load_train_config("tiny"), [text])


def test_train_run_reports_a_bad_override_on_one_line(capsys):
    assert main(["train", "run", "--config", "tiny", "--set", "warmup=5"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidrestore: error:") and "warmup" in err and "\n" not in err


def test_a_config_that_is_not_yaml_says_where(tmp_path):
    """It said only "not valid YAML (ParserError)": the line, column and problem are named."""
    path = tmp_path / "p.yaml"
    path.write_text("model: tiny\nlr: [1e-4\n  steps: {\n")
    with pytest.raises(ConfigError, match=r"p.yaml: not valid YAML at line 3, column 8: expected ',' or '\]', but got ':'$"):
        load_train_config(path)


def test_exponent_floats_in_yaml_are_numbers(tmp_path):
    """PyYAML reads `lr: 1e-4` as a string; a float field must still get the number, and a word an error."""
    path = tmp_path / "t.yaml"
    path.write_text("model: tiny\nlr: 1e-4\n")
    assert load_train_config(path).lr == 1e-4
    path.write_text("model: tiny\nlr: fast\n")
    with pytest.raises(ConfigError, match="expected a number"):
        load_train_config(path)


def test_pairs_in_yaml_take_one_type_per_place_and_strengths_are_checked():
    import numpy as np

    from vidrestore.config import from_dict
    from vidrestore.faces.types import Track
    from vidrestore.pipeline import PipelineConfig

    def track(track_id, person):
        return Track(track_id, 0, np.arange(1), np.zeros((1, 4)), np.zeros((1, 5, 2)), np.ones(1), person=person)

    cfg = from_dict(PipelineConfig, {"track_strength": [[3, 0.4], [1, 1]], "person_strength": [[1, 0.5], [3, 0.2]]})
    assert cfg.track_strength == ((3, 0.4), (1, 1.0)) and cfg.strength_of(track(3, 3)) == 0.4
    # a track's own strength, else its person's, else everyone's
    assert [cfg.strength_of(track(i, p)) for i, p in [(2, 2), (4, 1), (1, 1), (5, 3)]] == [1.0, 0.5, 1.0, 0.2]
    with pytest.raises(ConfigError, match="expected 2 items"):
        from_dict(PipelineConfig, {"track_strength": [[3]]})
    with pytest.raises(ConfigError, match="strength of track 3: expected a value from 0 to 1"):
        from_dict(PipelineConfig, {"track_strength": [[3, 2]]})
    with pytest.raises(ConfigError, match="strength of person 0: expected a value from 0 to 1"):
        from_dict(PipelineConfig, {"person_strength": [[0, -1]]})
    with pytest.raises(ConfigError, match="grain: expected a value from 0 to 1"):
        from_dict(PipelineConfig, {"grain": 1.5})


def test_not_a_number_is_no_setting(tmp_path):
    """`keep_coarse: .nan` or a tracker's `min_face_size: .nan` passed every check (NaN is not less
    than the least value) and was taken without a word."""
    from vidrestore.config import resolve_config
    from vidrestore.faces.track import TrackerConfig
    from vidrestore.pipeline import PipelineConfig

    config = tmp_path / "c.yaml"
    for text, where in [("keep_coarse: .nan", "keep_coarse"), ("tracker: {min_face_size: nan}", "tracker.min_face_size")]:
        config.write_text(text + "\n")
        with pytest.raises(ConfigError, match=f"c.yaml.{where}: expected a number, got '?nan'?$"):
            resolve_config(PipelineConfig, "pipeline", config)
    with pytest.raises(ConfigError, match="min_face_size: expected 0 or more, got nan"):
        TrackerConfig(min_face_size=float("nan"))


def test_times_and_rates_written_as_numbers_or_on_a_clock_are_read_as_written(tmp_path):
    """`start: 90` and `frame_rate: 24` were refused ("expected str, got 24"), and YAML 1.1 read
    `start: 1:00:10:12`, a timecode, as the base-60 number 216612."""
    from vidrestore.config import resolve_config, with_overrides
    from vidrestore.pipeline import PipelineConfig

    config = tmp_path / "c.yaml"
    config.write_text("start: 90\nend: 1:30.5\nframe_rate: 23.976\nfaces_dir: 2024\n")
    cfg = resolve_config(PipelineConfig, "pipeline", config)
    assert (cfg.start, cfg.end, cfg.frame_rate, cfg.faces_dir) == ("90", "1:30.5", "23.976", "2024")
    assert cfg.excerpt.start == 90 and float(cfg.excerpt.end) == 90.5
    config.write_text("start: 1:00:10:12\n")
    assert resolve_config(PipelineConfig, "pipeline", config).start == "1:00:10:12"
    assert with_overrides(cfg, ["start=1:30", "face_size=256"]).start == "1:30"
    with pytest.raises(ConfigError, match="c.yaml.colour_match: expected bool, got 1"):
        config.write_text("colour_match: 1\n")
        resolve_config(PipelineConfig, "pipeline", config)


@pytest.mark.parametrize("text, message", [
    ("detector: {min_score: 2}", "detector: min_score: expected a value from 0 to 1, got 2.0"),
    ("detector: {nms_iou: -0.1}", "detector: nms_iou: expected a value from 0 to 1, got -0.1"),
    ("detector: {max_side: 0}", "detector: max_side: expected 64 or more, got 0"),
    ("detector: {dlib_model: cnnn}", "detector: dlib_model: expected one of hog, cnn, got 'cnnn'"),
    ("detector: {backend: mtcnn}", "detector: backend: expected one of auto, retinaface, dlib, got 'mtcnn'"),
    ("tracker: {iou_threshold: 2}", "tracker: iou_threshold: expected a value from 0 to 1, got 2.0"),
    ("tracker: {landmark_weight: -1}", "tracker: landmark_weight: expected 0 or more, got -1.0"),
])
def test_a_detector_or_tracker_value_that_cannot_work_is_named_with_its_file_as_it_is_read(tmp_path, text, message):
    """max_side 0 failed in OpenCV's resize with a traceback after the model was loaded; a score
    above 1, an unknown dlib model or an IoU no boxes reach found no face or ran HOG, without a word."""
    from vidrestore.config import resolve_config
    from vidrestore.pipeline import PipelineConfig

    config = tmp_path / "c.yaml"
    config.write_text(text + "\n")
    with pytest.raises(ConfigError, match=f"^{config}.{re.escape(message)}$"):
        resolve_config(PipelineConfig, "pipeline", config)


def test_an_estimated_strength_yields_to_a_tracks_or_persons_own_and_to_everyones_as_a_ceiling():
    import dataclasses

    import numpy as np

    from vidrestore.config import from_dict
    from vidrestore.faces.settings import DAMAGED_DB, UNDAMAGED_DB
    from vidrestore.faces.types import Track
    from vidrestore.pipeline import PipelineConfig

    def track(track_id, quality):
        return Track(track_id, 0, np.arange(1), np.zeros((1, 4)), np.zeros((1, 5, 2)), np.ones(1), person=track_id, quality=quality)

    between = (DAMAGED_DB + UNDAMAGED_DB) / 2
    cfg = from_dict(PipelineConfig, {"track_strength": [[3, 0.9]], "person_strength": [[4, 0.8]]})
    assert cfg.measure_strength  # the default
    estimated = [cfg.strength_of(track(i, q)) for i, q in [(0, DAMAGED_DB - 5), (1, UNDAMAGED_DB + 5), (2, between), (5, None)]]
    assert estimated == pytest.approx([1.0, 0.0, 0.5, 1.0])  # damaged, clean, half-way; not estimated: everyone's
    assert [cfg.strength_of(track(i, UNDAMAGED_DB + 5)) for i in (3, 4)] == [0.9, 0.8]  # named strengths win over a clean face
    capped = dataclasses.replace(cfg, strength=0.7)
    assert [capped.strength_of(track(i, q)) for i, q in [(0, DAMAGED_DB - 5), (2, between), (5, None)]] == pytest.approx([0.7, 0.5, 0.7])
    off = dataclasses.replace(cfg, measure_strength=False)
    assert [off.strength_of(track(i, q)) for i, q in [(0, DAMAGED_DB - 5), (1, UNDAMAGED_DB + 5)]] == [1.0, 1.0]


@pytest.mark.parametrize("text, message", [
    ("steps: -3", "steps: expected 1 or more, got -3"),
    ("start_step: 0", "start_step: expected 1 or more"),
    ("steps: 500", r"steps: expected at most start_step \(400\)"),
    ("scheduler: euler", "scheduler: expected one of ddim, dpmsolver\\+\\+, got 'euler'"),
    ("eta: -1", "eta: expected 0 or more"),
    ("reanchor_invalid: 2", "reanchor_invalid: expected a value from 0 to 1"),
    ("warp_schedule: [[0.5, 1], [0.2, 0]]", "warp_schedule: expected \\[fraction, weight\\] pairs"),
    ("warp_schedule: [[0.5]]", "warp_schedule: expected"),
])
def test_a_presets_bad_value_is_named_with_its_file_as_it_is_read(tmp_path, text, message):
    """"steps: -3" in a preset failed deep in the first window's sampling, after pass 1, with a
    traceback."""
    from vidrestore.config import resolve_config
    from vidrestore.diffusion.sampler import SamplerConfig

    preset = tmp_path / "p.yaml"
    preset.write_text(text + "\n")
    with pytest.raises(ConfigError, match=f"^{preset}: {message}"):
        resolve_config(SamplerConfig, "presets", preset)


def test_a_chain_past_the_models_timesteps_is_refused_before_any_work(sample_clip, tiny_model, tmp_path, capsys):
    from vidrestore.config import resolve_config
    from vidrestore.diffusion.sampler import SamplerConfig

    for name in ("fast", "balanced", "quality"):  # the shipped presets pass
        resolve_config(SamplerConfig, "presets", name)
    preset = tmp_path / "p.yaml"
    preset.write_text("start_step: 1000\n")
    assert main([str(sample_clip), str(tmp_path / "out.mp4"), "--model", str(tiny_model), "--preset", str(preset), "--quiet"]) == 6
    assert capsys.readouterr().err == "vidrestore: error: start_step: expected less than the model's 1000 training timesteps, got 1000\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]
