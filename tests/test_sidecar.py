"""A Sony camera's settings file beside a clip says its log curve and gamut (io.sidecar)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import graded_clip

from vidrestore.cli import main
from vidrestore.io import VideoReader, probe
from vidrestore.io.linear import S_GAMUT, S_GAMUT3_CINE, Light
from vidrestore.io.sidecar import sidecar_light, sony_settings


def _settings(curve: str | None, gamut: str | None) -> str:
    """A settings file as Sony's cameras write it (non-real-time metadata), with the items named."""
    items = "".join(f'<Item name="{name}" value="{value}"/>' for name, value in
                    (("CaptureGammaEquation", curve), ("CaptureColorPrimaries", gamut), ("CodingEquations", "rec709")) if value)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<NonRealTimeMeta xmlns="urn:schemas-professionalDisc:nonRealTimeMeta:ver.2.20">'
            '<Duration value="8"/><Device manufacturer="Sony" modelName="ILME-FX3"/><AcquisitionRecord>'
            f'<Group name="CameraUnitMetadataSet">{items}</Group></AcquisitionRecord></NonRealTimeMeta>')


@pytest.mark.parametrize("curve, gamut, light", [("s-log3-cine", "s-gamut3-cine", Light.SLOG3), ("s-log3", "s-gamut3-cine", Light.SLOG3),
                                                 ("s-log3", "s-gamut3", Light.SLOG3_SGAMUT3), ("s-log2", "s-gamut", Light.SLOG2),
                                                 ("S-Log3-Cine", None, Light.SLOG3), ("s-log2", "s-gamut3-cine", Light.SLOG2),
                                                 ("rec709", "rec709", None), ("s-cinetone", "s-gamut3-cine", None), ("hlg3", "rec2020", None),
                                                 (None, "s-gamut3", None)])
def test_the_settings_file_names_the_curve_and_gamut(tmp_path, curve, gamut, light):
    """Sony's words for S-Log3 in S-Gamut3.Cine or S-Gamut3 and S-Log2 in S-Gamut; a log without its
    gamut (or in another) is taken in its usual one; other curves are no log."""
    clip = tmp_path / "C0001.MP4"
    clip.write_bytes(b"")
    (tmp_path / "C0001M01.XML").write_text(_settings(curve, gamut))
    assert sidecar_light(clip) is light


def test_no_settings_file_or_an_unreadable_one_says_nothing(tmp_path):
    clip = tmp_path / "C0002.MP4"
    clip.write_bytes(b"")
    assert sony_settings(clip) is None and sidecar_light(clip) is None
    (tmp_path / "C0002M01.xml").write_text(_settings("s-log3", None)[:-20])  # cut short
    assert sony_settings(clip) == tmp_path / "C0002M01.xml" and sidecar_light(clip) is None
    (tmp_path / "C0002M01.xml").write_text(_settings("s-log3", None))
    assert sidecar_light(clip) is Light.SLOG3


def test_a_sony_clip_beside_its_settings_file_is_read_as_its_log_without_light(tmp_path, sample_clip):
    """No tag says a clip is S-Log3 (the camera tags it BT.709): its settings file does. The probe
    reads the clip as S-Log3 in its gamut, a run restores it on the view as --light slog3 does, to
    the sample, and its report says what said so; --light display still reads its codes."""
    clip = graded_clip(tmp_path / "C0001.mkv", sample_clip, Light.SLOG3)
    assert probe(clip).light is Light.DISPLAY
    (tmp_path / "C0001M01.XML").write_text(_settings("s-log3-cine", "s-gamut3-cine"))
    info = probe(clip)
    assert info.light is Light.SLOG3 and info.chromaticities == S_GAMUT3_CINE and info.color.transfer == 1
    (tmp_path / "C0001M01.XML").write_text(_settings("s-log3", "s-gamut3"))
    assert probe(clip).chromaticities == S_GAMUT
    (tmp_path / "C0001M01.XML").write_text(_settings("s-log3-cine", "s-gamut3-cine"))
    options = ["--model", "none", "--detector", "dlib", "--strength", "1", "--quiet"]
    reports = {}
    for name, light in (("auto", []), ("said", ["--light", "slog3"]), ("codes", ["--light", "display"])):
        assert main([str(clip), str(tmp_path / f"{name}.mkv"), *options, "--json", str(tmp_path / f"{name}.json"), *light]) == 0
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert [reports[name]["light"] for name in ("auto", "said", "codes")] == ["slog3", "slog3", "display"]
    assert any(note.startswith("the video is Sony S-Log3 (S-Gamut3.Cine), as its camera's settings file C0001M01.XML says")
               for note in reports["auto"]["notes"])
    with VideoReader(tmp_path / "auto.mkv", keep_depth=True) as auto, VideoReader(tmp_path / "said.mkv", keep_depth=True) as said:
        assert all(np.array_equal(a.image, b.image) for a, b in zip(auto, said, strict=True))
