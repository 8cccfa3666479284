"""Signals and what a stopped or killed run leaves behind: a hangup or quit cleans up and
exits 128 + N, a run under nohup ignores the hangup, and the next run sweeps what a
SIGKILLed run left.

Real processes, real signals: `python -m pixelprune_cli` started in the
background and stopped at a chosen point.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import badfiles as bad
from conftest import cli, finish, hidden_leftovers, manifest, read_arrow, run_process, slow_folder_of, start, wait_for

OPTIONS = ["--workers", 1, "--no-progress", "--table", "none"]


@pytest.fixture(scope="module")
def slow_folder(tmp_path_factory) -> Path:
    return slow_folder_of(tmp_path_factory.mktemp("slow"), 16, seed=2)


# ----------------------------------------------------------------- 2. SIGHUP and SIGQUIT stop a run like SIGTERM

@pytest.mark.parametrize("signum, code, words", [(signal.SIGHUP, 129, "SIGHUP"), (signal.SIGQUIT, 131, "SIGQUIT")],
                         ids=["SIGHUP", "SIGQUIT"])
def test_a_hangup_or_quit_cleans_up_says_so_in_one_line_and_exits_128_plus_n(slow_folder, tmp_path, signum, code, words):
    out = tmp_path / "out"
    out.mkdir()
    proc = start(["compress", slow_folder, "-o", out / "rows.arrow", *OPTIONS], tmp_path)
    wait_for(lambda: any(out.glob(".rows.arrow.partial-*")), proc, "the temporary file was made")
    proc.send_signal(signum)
    returned, _, stderr = finish(proc, tmp_path)
    assert returned == code, stderr
    assert stderr.strip().count("\n") == 0 and words in stderr and "nothing partial" in stderr, stderr
    assert list(out.iterdir()) == []  # no table, no error log, no temporary, no lock


def test_a_run_on_a_terminal_that_hangs_up_cleans_up_and_exits_129(slow_folder, tmp_path):
    """The real thing: a run with its progress bar on a terminal (a pty) whose other end closes.

    The kernel sends SIGHUP, and every later write to the terminal fails (EIO),
    the progress bar's last one during the cleanup included.
    """
    out = tmp_path / "rows.arrow"
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        os.execv(sys.executable, [sys.executable, "-m", "pixelprune_cli", "compress", str(slow_folder), "-o", str(out),
                                  "--workers", "1"])
    try:
        deadline = time.monotonic() + 60
        while not any(tmp_path.glob(".rows.arrow.partial-*")):
            assert time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0), "the run did not start"
            time.sleep(0.005)
        time.sleep(0.2)  # a progress line or two
    finally:
        os.close(terminal)  # the terminal goes away
    for _ in range(6000):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the run did not end after its terminal hung up")
    assert os.waitstatus_to_exitcode(status) == 129
    assert list(tmp_path.iterdir()) == []


def test_a_hangup_leaves_a_shard_folder_that_resume_finishes(slow_folder, tmp_path):
    out = tmp_path / "out"
    proc = start(["compress", slow_folder, "-o", f"{out}/", "--shard-size", 3, *OPTIONS], tmp_path)
    wait_for(lambda: (out / "manifest.json").exists() and len(manifest(out)["shards"]) >= 2, proc,
             "two shards were committed")
    proc.send_signal(signal.SIGHUP)
    assert finish(proc, tmp_path)[0] == 129
    assert hidden_leftovers(out) == [] and not manifest(out)["complete"]
    code, _, stderr = run_process(["compress", slow_folder, "-o", f"{out}/", "--shard-size", 3, "--resume", *OPTIONS],
                                  tmp_path)
    assert code == 0, stderr
    assert manifest(out)["complete"] and manifest(out)["images"] == 16


def test_a_run_started_under_nohup_ignores_the_hangup_and_finishes(slow_folder, tmp_path):
    """nohup sets SIGHUP to be ignored; pixelprune must not put a handler back over that."""
    out = tmp_path / "rows.arrow"
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does; a child inherits it across exec
    try:
        proc = start(["compress", slow_folder, "-o", out, *OPTIONS], tmp_path)
    finally:
        signal.signal(signal.SIGHUP, previous)
    wait_for(lambda: any(tmp_path.glob(".rows.arrow.partial-*")), proc, "the temporary file was made")
    proc.send_signal(signal.SIGHUP)
    code, _, stderr = finish(proc, tmp_path)
    assert code == 0, stderr
    assert out.exists() and hidden_leftovers(tmp_path) == []


# ----------------------------------------------------------------- 3. the next run sweeps what a SIGKILLed run left

def test_the_next_run_sweeps_what_a_sigkilled_run_left(slow_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = start(["compress", slow_folder, "-o", out / "rows.arrow", *OPTIONS], tmp_path)
    wait_for(lambda: len(list(out.glob(".rows.arrow*"))) == 3, proc, "its temporaries and lock were made")
    proc.kill()
    proc.wait()
    assert len(hidden_leftovers(out)) == 3
    code, _, stderr = run_process(["compress", slow_folder, "-o", out / "rows.arrow", *OPTIONS], tmp_path)
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["rows.arrow", "rows.arrow.errors.jsonl"]


@pytest.fixture
def pids():
    """PIDs of a process that has ended and of processes alive for the test, which it ends afterwards."""
    started: list[subprocess.Popen] = []

    def make(alive: bool) -> int:
        proc = subprocess.Popen(["sleep", "60" if alive else "0"])
        if alive:
            started.append(proc)
        else:
            proc.wait()
        return proc.pid

    yield make
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_partial_is_swept_unless_a_live_process_that_could_have_written_it_owns_it(tmp_path, pids):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(bad.png(seed=1))
    owner = pids(alive=True)  # started before its file was written: the run that writes it
    dead, reused = pids(alive=False), pids(alive=True)
    partials = {who: tmp_path / f".out.arrow.partial-{pid}" for who, pid in
                (("owner", owner), ("dead", dead), ("reused", reused))}
    for path in partials.values():
        path.write_bytes(b"half a table")
    hour_ago = time.time() - 3600  # written long before the process now holding that PID started
    os.utime(partials["reused"], (hour_ago, hour_ago))
    code, _, stderr = cli("compress", folder, "-o", tmp_path / "out.arrow")
    assert code == 0, stderr
    assert [p.name for p in partials.values() if p.exists()] == [partials["owner"].name]


@pytest.mark.parametrize("command", ["restore", "show"])
def test_restore_and_show_sweep_what_a_killed_run_of_theirs_left(tmp_path, pids, command):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(bad.png(seed=1))
    out = tmp_path / "rows.arrow"
    assert cli("compress", folder, "-o", out)[0] == 0
    target = tmp_path / "restored" if command == "restore" else tmp_path / "picture.png"
    left_in = target if command == "restore" else tmp_path
    left_in.mkdir(exist_ok=True)
    stale = left_in / f".{'a.png.png' if command == 'restore' else 'picture.png'}.partial-{pids(alive=False)}"
    stale.write_bytes(b"half a png")
    code, _, stderr = cli(command, out, "-o", target, "--overwrite")
    assert code == 0, stderr
    assert not stale.exists()


# ----------------------------------------------------------------- 13. the table and its error log change as a pair

KILLED_AFTER_TABLE_RENAME = """
import os, sys
from pixelprune_cli.cli import cli
table, rename = sys.argv.pop(1), os.replace
def rename_then_killed(source, target):
    rename(source, target)
    if str(target) == table:
        os._exit(137)  # as SIGKILL would, between the table's rename and the error log's
os.replace = rename_then_killed
sys.argv[0] = "pixelprune"
cli.main()
"""


def test_a_kill_inside_the_commit_never_leaves_a_table_beside_another_runs_error_log(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    (first / "broken.png").write_bytes(b"not an image")
    (first / "a.png").write_bytes(bad.png(seed=1))
    (second / "b.png").write_bytes(bad.png(seed=2))
    out = tmp_path / "out.arrow"
    assert cli("compress", first, "-o", out)[0] == 1
    assert "broken.png" in Path(f"{out}.errors.jsonl").read_text()
    proc = subprocess.run([sys.executable, "-c", KILLED_AFTER_TABLE_RENAME, str(out), "compress", str(second), "-o",
                           str(out), "--overwrite", "--table", "none"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr
    assert read_arrow(out).column("id").to_pylist() == ["b.png"]  # the new table is in place ...
    log = Path(f"{out}.errors.jsonl")
    assert not log.exists() or log.read_text() == ""  # ... and no error log that names another run's images
