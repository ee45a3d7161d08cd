"""A video piped into vidrestore ("-"): held beside the output while the run lasts, restored as the
same file named would be, refused with a message before any byte is read where the output is wrong."""

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import held_by_another_run, read_pts

from vidrestore.cli import main
from vidrestore.errors import InputError, OutputError
from vidrestore.io import piped
from vidrestore.io.paths import check_paths
from vidrestore.io.piped import spool_folder, spooled
from vidrestore.resume import remove_leftovers

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--model", "none", "--detector", "dlib", "--detect-every", "3", "--quiet"]


class _Unread(io.RawIOBase):
    """Standard input that fails the test if it is read."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        raise AssertionError("standard input was read")


class _Terminal(io.BytesIO):
    def isatty(self) -> bool:
        return True


def _pipe(monkeypatch, data: bytes | io.IOBase) -> None:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream))


def _times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [round(f.time, 3) for f in c.decode(video=0)]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_what_is_piped_in_is_held_whole_for_the_run_and_removed_after_it(tmp_path):
    data = np.random.default_rng(0).bytes(3 << 20 | 12345)  # more than one read
    output, told = tmp_path / "out.mkv", []
    with spooled(io.BytesIO(data), output, told.append) as spool:
        assert spool.path.read_bytes() == data and spool.digest == hashlib.sha256(data).hexdigest()
        assert spool.path.parent == spool_folder(output) and spool.path.name == "stdin"
    assert told == [1, 2, 3, 3] and not spool_folder(output).exists()
    with pytest.raises(KeyError), spooled(io.BytesIO(data), output) as spool:
        raise KeyError("the run failed")
    assert list(tmp_path.iterdir()) == []


def test_a_terminal_an_empty_pipe_and_a_full_disk_are_named(tmp_path, monkeypatch):
    output = tmp_path / "out.mkv"
    with pytest.raises(InputError, match="nothing is piped in"), spooled(_Terminal(b"x"), output):
        pass
    with pytest.raises(InputError, match=r"the input is '-' \(standard input\), but it is closed"), spooled(None, output):
        pass  # vidrestore - out.mkv <&- : Python's sys.stdin is None
    with pytest.raises(InputError, match=r"the input is .-. \(standard input\), but nothing came through it"), spooled(io.BytesIO(b""), output):
        pass

    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise OSError(5, "Input/output error")

    with pytest.raises(InputError, match=r"cannot read the video piped in, after 0 MiB \(Input/output error\)"), \
            spooled(Broken(), output):
        pass
    # a full disk (/dev/full)
    monkeypatch.setattr(piped, "open", lambda path, mode: open("/dev/full", mode), raising=False)  # noqa: SIM115 (the spool closes it)
    with pytest.raises(OutputError, match=r"cannot hold the video piped in beside the output, in .* "
                                          r"\(No space left on device\): both passes read it"), spooled(io.BytesIO(bytes(2 << 20)), output):
        pass
    monkeypatch.undo()
    (tmp_path / "out").write_bytes(b"a file where a folder should be")  # as root, a folder's mode would not stop it
    with pytest.raises(OutputError, match=r"cannot hold the video piped in beside the output, in .*out \(Not a directory\)"), \
            spooled(io.BytesIO(b"x"), tmp_path / "out" / "o.mkv"):
        pass
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]


def test_what_a_killed_run_held_is_removed_by_the_next_run_of_its_output(tmp_path):
    output, other = tmp_path / "out.mp4", tmp_path / "out.v2.mp4"
    for o in (output, other):
        spool_folder(o).mkdir()
        (spool_folder(o) / "stdin").write_bytes(b"held")
    assert remove_leftovers(output) == 1 and not spool_folder(output).exists() and spool_folder(other).exists()


def test_a_piped_video_is_restored_as_the_file_it_came_from(sample_clip, tmp_path, monkeypatch, capsys):
    named, piped = tmp_path / "named.mkv", tmp_path / "piped.mkv"
    options = [*FAST, "--codec", "ffv1", "--json", "-"]
    assert main([str(sample_clip), str(named), *options]) == 0
    capsys.readouterr()
    _pipe(monkeypatch, sample_clip.read_bytes())
    assert main(["-", str(piped), *options]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input"] == "-" and report["output"] == str(piped) and report["tracks"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["named.mkv", "piped.mkv"]  # nothing held is left
    assert read_pts(piped) == read_pts(named)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(piped), _frames(named), strict=True))
    with av.open(str(piped)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]


def test_the_analysis_of_a_video_piped_in_is_kept_for_the_next_run_of_the_same_bytes(sample_clip, tmp_path, monkeypatch, capsys):
    """Each run analysed what was piped in again, though the same bytes came (a restore after a
    dry run, or with another --crf): an hour of a film's pass 1 on a CPU. Other bytes are analysed."""
    kept = "the input was not analysed again"

    def notes(name, data, *options):
        _pipe(monkeypatch, data)
        assert main(["-", str(tmp_path / name), *FAST, "--detect-every", "5", "--json", "-", *options]) == 0
        return " ".join(json.loads(capsys.readouterr().out)["notes"])

    clip = sample_clip.read_bytes()
    assert kept not in notes("first.mkv", clip)
    assert kept in notes("again.mkv", clip, "--crf", "30")
    assert kept not in notes("reanalysed.mkv", clip, "--reanalyse")
    with av.open(str(sample_clip)) as c, av.open(str(tmp_path / "short.mkv"), "w") as out:  # other bytes
        stream = out.add_stream_from_template(c.streams.video[0])
        for packet in c.demux(c.streams.video[0]):
            if packet.dts is not None and packet.pts is not None and packet.pts < 12 * packet.duration:
                packet.stream = stream
                out.mux(packet)
    assert kept not in notes("other.mkv", (tmp_path / "short.mkv").read_bytes())
    assert main(["analyses"]) == 0
    digest = hashlib.sha256(clip).hexdigest()
    assert f"- (piped in, sha256 {digest[:16]}...)" in capsys.readouterr().out


def test_a_wrong_output_is_refused_before_a_byte_is_piped_in(sample_clip, tmp_path, monkeypatch, capsys):
    (tmp_path / "taken.mp4").write_bytes(b"x")
    for output, message in [(tmp_path / "taken.mp4", "output exists"), (tmp_path / "out.xyz", "no container is known"),
                            (tmp_path / "nowhere" / "o.mp4", "output folder does not exist"),
                            (tmp_path, "a video piped in has no name to give the output there"),
                            ("-", "the output cannot be '-' (standard output)")]:
        _pipe(monkeypatch, _Unread())
        assert main(["-", str(output), *FAST]) != 0
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.mp4"]


def test_an_error_names_the_video_piped_in_not_the_copy_held(tmp_path, monkeypatch, capsys):
    _pipe(monkeypatch, b"not a video " * 1000)
    assert main(["-", str(tmp_path / "out.mp4"), *FAST]) == InputError.exit_code
    err = capsys.readouterr().err
    assert err == "vidrestore: error: not a media file FFmpeg can read: the video piped in (Invalid data found when processing input)\n"
    assert list(tmp_path.iterdir()) == []


def test_a_stream_piped_from_another_program_is_restored_with_its_sound(sample_clip, tmp_path):
    """Through a real pipe, from MPEG-TS written as a program writes it to one (no index, no seeking)."""
    stream = tmp_path / "stream.ts"
    with av.open(str(sample_clip)) as src, av.open(str(stream), "w", format="mpegts") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.size:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    output = tmp_path / "out.mkv"
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "-", str(output), *FAST], input=stream.read_bytes(),
                          capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert _times(output) == _times(stream)
    with av.open(str(output)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv", "stream.ts"]


def test_a_batch_reads_files_and_says_which_command_takes_a_pipe(tmp_path):
    with pytest.raises(InputError, match=r"'-' \(standard input\) is read by `vidrestore - OUTPUT` alone"):
        check_paths(Path("-"), tmp_path / "out.mp4", overwrite=False)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=f"the pipe {fifo} is read by `vidrestore {fifo} OUTPUT` alone"):
        check_paths(fifo, tmp_path / "out.mp4", overwrite=False)


def test_a_named_pipe_or_a_shells_process_substitution_is_read_as_a_video_piped_in(sample_clip, tmp_path):
    """`vidrestore <(ffmpeg -i tape.dv -f matroska -) out.mkv` and a FIFO were refused: "input is not
    a file". Both passes read the video, so it is held as standard input's is."""
    output = tmp_path / "out.mp4"
    done = subprocess.run(["bash", "-c", f'"$0" "{ROOT / "cli.py"}" <(cat "{sample_clip}") "{output}" --json - ' + " ".join(FAST),
                           sys.executable], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["input"].startswith("/dev/fd/")
    assert _times(output) == _times(sample_clip)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["bash", "-c", f'exec 3>"{fifo}"; sleep 0.5'])  # opens it, writes nothing, closes it
    try:
        done = subprocess.run([sys.executable, str(ROOT / "cli.py"), str(fifo), str(tmp_path / "empty.mkv"), *FAST],
                              capture_output=True, text=True, timeout=300, check=False)
    finally:
        writer.wait()
    assert done.returncode == InputError.exit_code
    assert done.stderr == f"vidrestore: error: the input is the pipe {fifo}, but nothing came through it\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "out.mp4"]


def test_a_second_run_piping_into_the_same_output_is_refused_before_it_reads(sample_clip, tmp_path, monkeypatch, capsys):
    """It removed the copy the first run held, as a killed run's."""
    output = tmp_path / "out.mkv"
    spooling = contextlib.ExitStack()
    with held_by_another_run(output, lambda: spooling.enter_context(spooled(io.BytesIO(b"the first run's video"), output))):
        _pipe(monkeypatch, _Unread())
        assert main(["-", str(output), *FAST]) == OutputError.exit_code
        assert "another vidrestore run is writing" in capsys.readouterr().err
        assert (spool_folder(output) / "stdin").read_bytes() == b"the first run's video"
    spooling.close()
    _pipe(monkeypatch, sample_clip.read_bytes())  # the run itself holds the output it held while the video came in
    assert main(["-", str(output), *FAST]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]
