import os
import subprocess
import sys

import pytest

from controlbreast.outputs import atomic_folder


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_build_folder_carries_the_owner_pid_and_replaces_the_destination(tmp_path):
    destination = tmp_path / "prepared"
    with atomic_folder(destination) as build:
        assert build.parent == tmp_path
        assert build.name.startswith(f".prepared.build-{os.getpid()}-")
        (build / "a.txt").write_text("new")
    assert (destination / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_failed_build_vanishes_and_keeps_the_previous_output(tmp_path):
    destination = tmp_path / "prepared"
    destination.mkdir()
    (destination / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(destination) as build:
        (build / "half.txt").write_text("half")
        raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
    assert (destination / "old.txt").read_text() == "old"


def test_stale_builds_of_dead_runs_are_removed_and_others_kept(tmp_path, capsys):
    destination = tmp_path / "prepared"
    stale = tmp_path / f".prepared.build-{dead_pid()}-abc123"
    live = tmp_path / f".prepared.build-{os.getppid()}-def456"  # a concurrent run still alive
    other = tmp_path / f".synthetic.build-{dead_pid()}-xyz"     # another destination's
    for folder in (stale, live, other):
        (folder / "images").mkdir(parents=True)
    with atomic_folder(destination):
        assert not stale.exists() and live.is_dir() and other.is_dir()
    message = capsys.readouterr().err
    assert message.startswith("removed 1 half-written build folder(s) of a dead run: ")
    assert str(stale) in message
