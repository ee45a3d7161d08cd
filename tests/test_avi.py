"""AVI sound copied in frames, or in blocks, is read back at its frames' and blocks' times (vidrestore.io.avi)."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import make_clip

from vidrestore.io.avi import count_in_frames
from vidrestore.io.remux import remux


def _sound_clip(path: Path, codec: str, rate: int, layout: str, frames: int = 30) -> Path:
    """``frames`` of 25 fps MPEG-4 video (no reordered frames, which AVI cannot time) and a tone
    encoded with ``codec``, in the container ``path`` names."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream(codec, rate=rate, layout=layout)
        sound.codec_context.options = {"strict": "experimental"}  # FFmpeg's own Vorbis encoder
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        step = sound.codec_context.frame_size or 1024
        channels = len(sound.layout.channels)
        for start in range(0, rate * frames // 25, step):
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(start, start + step) / rate)
            part = av.AudioFrame.from_ndarray(np.tile(tone.astype(np.float32), (channels, 1)), format="fltp", layout=layout)
            part.sample_rate, part.pts = rate, start
            out.mux(sound.encode(part))
        out.mux(sound.encode(None))
    return path


def _sound_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None]


@pytest.mark.parametrize(("codec", "rate", "layout", "suffix"), [
    ("libmp3lame", 22050, "mono", ".avi"),  # a DivX rip's or a camera's MP3: 576 samples a frame
    ("ac3", 48000, "stereo", ".avi"),
    ("aac", 44100, "stereo", ".avi"),
    ("mp2", 44100, "stereo", ".avi"),
    ("libmp3lame", 22050, "mono", ".wmv"),  # ASF states a WAVE header too
    ("pcm_s16le", 48000, "stereo", ".avi"),  # counted in bytes, and stays so
    # in bytes, in blocks of 2041 and 1012 samples, from a file that states 0 bytes a second, as
    # FFmpeg's muxer writes ADPCM: timed from FFmpeg's estimate of it, they played 0.3% and 0.6% slow
    ("adpcm_ima_wav", 22050, "mono", ".avi"),
    ("adpcm_ms", 22050, "stereo", ".avi"),
])
def test_sound_copied_into_avi_keeps_its_times(tmp_path: Path, codec: str, rate: int, layout: str, suffix: str) -> None:
    source = _sound_clip(tmp_path / f"in{suffix}", codec, rate, layout)
    remux(source, source, tmp_path / "out.avi")
    given, written = _sound_times(source), _sound_times(tmp_path / "out.avi")
    assert len(written) == len(given)
    # ASF states milliseconds; MP3 read back from AVI took 0.55 s of its 1.2 s, several frames at one time
    assert np.abs(np.array(written) - np.array(given)).max() < 0.002


def test_sound_in_frames_is_counted_in_an_opendml_files_indexes(tmp_path: Path) -> None:
    """Past 1 GB an AVI grows OpenDML indexes, whose durations FFmpeg states in bytes too."""
    if shutil.disk_usage(tmp_path).free < 4 << 30:
        pytest.skip("needs 4 GiB of free disk for an AVI past 1 GiB")
    source = _sound_clip(tmp_path / "in.avi", "libmp3lame", 22050, "mono")
    with av.open(str(source)) as container:
        sound = container.streams.audio[0]
        frames = [bytes(p) for p in container.demux(sound) if p.size]
        big = tmp_path / "big.avi"
        with av.open(str(big), "w") as out:
            video = out.add_stream("rawvideo", rate=25)
            video.width, video.height, video.pix_fmt = 1024, 1024, "gray"
            copy = out.add_stream_from_template(sound)
            picture, written = bytes(1024 * 1024), 0
            for n in range(1100):  # 1.15 GB of pictures
                _mux(out, picture, video, n, Fraction(1, 25))
                while written * 576 < (n + 1) * 22050 // 25:
                    _mux(out, frames[written % len(frames)], copy, written, Fraction(576, 22050))
                    written += 1
    with open(big, "r+b") as file:
        count_in_frames(file, {1: written})
    times = _sound_times(big)
    assert len(times) == written
    assert times[-1] == pytest.approx((written - 1) * 576 / 22050)
    assert sum(_super_index_durations(big, b"01wb")) == written


def _super_index_durations(path: Path, chunk_id: bytes) -> list[int]:
    """The durations the OpenDML super index of the stream of ``chunk_id`` gives its parts."""
    head = path.read_bytes()[:65536]
    at = head.index(b"indx")
    while head[at + 16:at + 20] != chunk_id:
        at = head.index(b"indx", at + 1)
    entries = int.from_bytes(head[at + 12:at + 16], "little")
    return [int.from_bytes(head[at + 32 + 16 * n + 12:at + 32 + 16 * n + 16], "little") for n in range(entries)]


def _mux(out: av.container.OutputContainer, data: bytes, stream: av.stream.Stream, n: int, tick: Fraction) -> None:
    packet = av.Packet(data)
    packet.stream, packet.pts, packet.dts, packet.time_base = stream, n, n, tick
    out.mux(packet)


@pytest.mark.parametrize("segment_frames", ["0", "8"])
def test_a_video_whose_first_frame_is_shown_late_keeps_every_frames_time_in_avi(sample_clip, tmp_path, segment_frames):
    """AVI's muxer writes a file's first frame first whatever its time: an Xvid AVI whose encoder's
    delay showed its first frame a frame in came back with that frame at 0, 40 ms early, and
    each later segment's first frame at 0 too."""
    from vidrestore.cli import main
    from vidrestore.io import VideoReader

    with VideoReader(sample_clip) as reader:
        images = [frame.image for frame in reader]
    late = make_clip(tmp_path / "late.mkv", [40 * (n + 1) for n in range(len(images))], size=images[0].shape[:2], images=images)
    out = tmp_path / "out.avi"
    assert main([str(late), str(out), "--model", "none", "--strength", "1", "--segment-frames", segment_frames, "--quiet"]) == 0
    with av.open(str(late)) as given, av.open(str(out)) as written:
        assert written.streams.video[0].codec_context.name == "mpeg4"  # restored, not copied
        assert [f.time for f in written.decode(video=0)] == pytest.approx([f.time for f in given.decode(video=0)])


@pytest.mark.parametrize(("codec", "layout", "suffix", "encoder"), [
    ("vorbis", "stereo", ".mkv", "libmp3lame"),  # an old Matroska file's
    ("eac3", "5.1", ".mp4", "ac3"),  # a film's: MP3, .avi's own, takes two channels at most
])
def test_sound_avi_cannot_time_is_refused_or_re_encoded(tmp_path, codec, layout, suffix, encoder):
    """AVI times sound it knows no frame size for in bytes over a rate it guesses: Vorbis and E-AC-3
    copied into .avi read back as 0.03 s and 0.2 s of their 1.2 s. Such sound is now held to be
    one that .avi cannot hold: refused, or re-encoded with --audio-codec auto."""
    from vidrestore.errors import OutputError
    from vidrestore.io.remux import carried_notes, check_streams

    source, out = _sound_clip(tmp_path / f"in{suffix}", codec, 48000, layout), tmp_path / "out.avi"
    with pytest.raises(OutputError, match=rf"\.avi files cannot hold audio stream 1 \({codec}\)"):
        check_streams(source, out, drop=False)
    assert remux(source, source, out, sound="auto") == []
    assert carried_notes(source, out, "auto") == [f"re-encoded with {encoder}, as .avi files cannot hold them: audio stream 1 ({codec})"]
    given, written = _sound_times(source), _sound_times(out)
    assert written[-1] - written[0] == pytest.approx(given[-1] - given[0], abs=0.06)
