"""Atomic files, tested directly: sealed (fsync) before published (rename), nothing left when sealing fails,
and what a dead run left (its process gone, or a zombie) swept by the next run.

These fault the system calls `atomic` makes instead of relying on a race or a
full disk: a recorder of the fsync/rename order, and an fsync that raises
ENOSPC as a full disk or a lost network mount does at the last moment.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pixelprune_cli.errors import OutputError
from pixelprune_cli.storage import atomic

from conftest import cli, hidden_leftovers, small_folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """The fsync and rename calls atomic makes, in order, each with whether the target existed at that moment."""
    seen: list[tuple[str, bool]] = []
    target = tmp_path / "out.bin"
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        seen.append(("fsync", target.exists()))
        real_fsync(fd)

    def replace(src, dst):
        seen.append(("rename", target.exists()))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    return target, seen


def test_a_file_is_sealed_before_it_is_published(calls):
    target, seen = calls
    atomic.write_file(target, lambda handle: handle.write(b"whole"))
    assert seen == [("fsync", False), ("rename", False)]  # on disk under its temporary name, then renamed
    assert target.read_bytes() == b"whole"


def test_replacing_a_file_seals_the_new_one_before_the_old_one_goes(calls):
    target, seen = calls
    target.write_bytes(b"old")
    atomic.write_file(target, lambda handle: handle.write(b"new"))
    assert [name for name, _ in seen] == ["fsync", "rename"]
    assert target.read_bytes() == b"new"


@pytest.mark.parametrize("failing", ["fsync", "flush"])
@pytest.mark.parametrize("old", [None, b"old"])
def test_a_sealing_failure_leaves_no_target_and_no_partial(monkeypatch, tmp_path, failing, old):
    target = tmp_path / "out.bin"
    if old is not None:
        target.write_bytes(old)

    def full_disk(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", full_disk)
        write = lambda handle: handle.write(b"new")  # noqa: E731
    else:
        def write(handle):  # buffered bytes whose flush fails at sealing time
            handle.write(b"new")
            monkeypatch.setattr(handle, "flush", full_disk)
    with pytest.raises(OutputError, match="No space left on device") as raised:
        atomic.write_file(target, write)
    assert str(target) in str(raised.value)
    assert leftovers(tmp_path) == ([] if old is None else ["out.bin"])  # no .out.bin.partial-PID
    if old is not None:
        assert target.read_bytes() == old  # the old file stays whole
    assert not atomic._HELD  # nothing left for an interrupt handler to release


@pytest.fixture
def zombie():
    """The pid of a process that has exited and is not reaped yet (state Z), as under a PID 1 that never reaps."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(600):  # wait for it to exit, without reaping it
            with open(f"/proc/{child.pid}/stat", "rb") as handle:
                if handle.read().rpartition(b")")[2].split()[0] == b"Z":
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the child process did not exit")
        yield child.pid
    finally:
        child.wait()


def test_a_zombie_runs_partial_file_and_lock_are_swept_by_the_next_run(tmp_path, zombie):
    folder = small_folder(tmp_path, 2)
    out = tmp_path / "out.arrow"
    partial = tmp_path / f".out.arrow.partial-{zombie}"
    partial.write_bytes(b"half a file")  # written after the zombie started, as its own would be
    (tmp_path / ".out.arrow.pixelprune-lock").write_text(f"pixelprune pid {zombie}\n")
    code, _, err = cli("compress", folder, "-o", out, "--no-progress")
    assert code == 0, err
    assert hidden_leftovers(tmp_path) == []
    assert os.path.exists(f"/proc/{zombie}")  # still a zombie: it was judged dead, not gone


def test_a_live_runs_partial_file_is_left_alone(tmp_path):
    folder = small_folder(tmp_path, 1)
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        partial = tmp_path / f".out.arrow.partial-{live.pid}"
        partial.write_bytes(b"being written")
        code, _, err = cli("compress", folder, "-o", tmp_path / "out.arrow", "--no-progress")
        assert code == 0, err
        assert partial.read_bytes() == b"being written"
    finally:
        live.communicate(b"")
