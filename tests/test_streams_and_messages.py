"""What a user reads when something is off: closed standard streams, odd terminals, ambiguous inputs.

Each test starts from a case where pixelprune used to raise a traceback, say
something misleading or decide silently, and checks the one line (or the
choice) a user now gets.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLES, read_arrow

CHART = SAMPLES / "chart.png"


def run_with(redirect: str, args: list, cwd: Path, stdin=subprocess.DEVNULL) -> tuple[int, str]:
    """(exit code, stderr) of `python -m pixelprune_cli ARGS` started by a shell with `redirect` (`>&-`, `<&-`)."""
    script = f'exec "$@" {redirect}'
    proc = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "pixelprune_cli", *map(str, args)],
                          cwd=cwd, stdin=stdin, capture_output=True, timeout=120)
    stderr = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    return proc.returncode, stderr


# ---------------------------------------------------------------- closed standard streams (cron, systemd, nohup)

@pytest.mark.parametrize("redirect", [">&-", "2>&-", "<&- >&- 2>&-"])
@pytest.mark.parametrize("report", [[], ["--json"]])
def test_a_closed_stream_loses_no_output_and_raises_nothing(tmp_path, redirect, report):
    code, stderr = run_with(redirect, ["compress", CHART, "-o", tmp_path / "out.arrow", *report], tmp_path)
    assert code == 0, stderr
    assert read_arrow(tmp_path / "out.arrow").column("id").to_pylist() == ["chart.png"]
    assert {p.name for p in tmp_path.iterdir()} == {"out.arrow", "out.arrow.errors.jsonl"}  # nothing written by fd


def test_a_stream_to_a_closed_stdout_is_refused_before_anything_is_written(tmp_path):
    code, stderr = run_with(">&-", ["compress", CHART, "-o", "-"], tmp_path)
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "standard output" in stderr and "closed" in stderr, stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["stats", "-"], ["restore", "-", "-o", "restored"], ["show", "-", "-o", "x.png"]])
def test_reading_a_closed_stdin_is_a_one_line_usage_error(tmp_path, command):
    code, stderr = run_with("<&-", command, tmp_path)
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "standard input is closed" in stderr, stderr
