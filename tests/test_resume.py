"""Interrupted runs: outputs are atomic, shard folders resumable, nothing lost.

Kills and signals go to a real `python -m pixelprune_cli` process; quick
checks of refusals run in-process through click's CliRunner. "Untouched"
means every file beside the output has the same bytes and mtime as before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelprune_cli.inputs import parquet_source

import badfiles as bad
from conftest import (
    cli,
    finish,
    manifest,
    one_line_error,
    read_arrow,
    shard_rows,
    small_folder,
    snapshot,
    start,
    wait_for,
)
from conftest import run_process as run

SLOW_SIDE = 1024  # decoding, resizing and coding one takes ~25 ms: a run lasts long enough to interrupt
SLOW_IMAGES = 40
BAD_IN_SLOW = {"img_002_bad.png": b"", "img_031_bad.png": bad.png()[:600]}  # one early, one late shard


# ----------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def slow_folder(tmp_path_factory) -> Path:
    """40 large, mostly flat images (quick to write, slow enough to code) and two bad ones."""
    folder = tmp_path_factory.mktemp("slow") / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(SLOW_IMAGES):
        img = np.full((SLOW_SIDE, SLOW_SIDE, 3), 180, dtype=np.uint8)
        y = (k * 37) % (SLOW_SIDE - 64)
        img[y:y + 64, :384] = rng.integers(0, 256, size=(64, 384, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"img_{k:03d}.png", compress_level=1)
    for name, data in BAD_IN_SLOW.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def many_folder(tmp_path_factory) -> Path:
    """300 small images: a single-file run flushes its first 64-row batch well before it ends."""
    folder = tmp_path_factory.mktemp("many") / "in"
    folder.mkdir()
    for k in range(300):
        (folder / f"s_{k:03d}.png").write_bytes(bad.png(seed=k))
    return folder


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.partial-*"))


# ----------------------------------------------------------------- (a) SIGKILL, then --resume

def test_killed_sharded_run_resumes_to_the_rows_of_an_uninterrupted_run(slow_folder, tmp_path):
    images_in = SLOW_IMAGES + len(BAD_IN_SLOW)
    options = ["--shard-size", 5, "--workers", 1, "--no-progress"]
    out = tmp_path / "out"

    proc = start(["compress", slow_folder, "-o", f"{out}/", *options], tmp_path)
    wait_for(lambda: (out / "manifest.json").exists() and len(manifest(out)["shards"]) >= 1, proc,
             "the first shard was committed")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    # What a killed run leaves: committed shards, listed and whole; nothing partial under a final name.
    state = manifest(out)
    assert state["complete"] is False
    listed = {s["file"]: s for s in state["shards"]}
    present = sorted(p.name for p in out.glob("part-*.arrow"))
    assert 1 <= len(present) < -(-images_in // 5)
    assert set(present) == set(listed), (present, listed)
    for name in present:
        table = read_arrow(out / name)
        assert table.num_rows == listed[name]["written"]
        errors = (out / listed[name]["errors"]).read_text().splitlines()
        assert table.num_rows + len(errors) == listed[name]["images"] == 5
    assert not (out / "errors.jsonl").exists()

    code, stdout, stderr = run(["compress", slow_folder, "-o", f"{out}/", *options, "--resume", "--json"], tmp_path)
    assert code == 1, stderr  # the late bad image failed in this run
    summary = json.loads(stdout)
    assert summary["resumed_shards"] == len(present)
    assert summary["images"] == images_in - 5 * len(present)

    full = tmp_path / "full"
    code, _, stderr = run(["compress", slow_folder, "-o", f"{full}/", *options], tmp_path)
    assert code == 1, stderr

    resumed, single = shard_rows(out), shard_rows(full)
    assert resumed.column_names == single.column_names and "pixels" in resumed.column_names
    assert resumed.equals(single)
    assert resumed.num_rows == SLOW_IMAGES
    assert (out / "errors.jsonl").read_text() == (full / "errors.jsonl").read_text()
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(e["id"] for e in errors) == sorted(BAD_IN_SLOW)
    assert resumed.num_rows + len(errors) == images_in  # the invariant, over the whole resumed output
    done = manifest(out)
    assert done["complete"] is True
    assert (done["images"], done["written"], done["failed"]) == (images_in, SLOW_IMAGES, len(BAD_IN_SLOW))
    assert temporaries(out) == [] and temporaries(full) == []


# ----------------------------------------------------------------- (b) resume with another config

@pytest.fixture
def interrupted(tmp_path) -> tuple[Path, Path]:
    """A shard folder left incomplete: --fail-fast stopped at the bad image in the second shard."""
    folder = small_folder(tmp_path, 6, bad_at=3)
    out = tmp_path / "out"
    code, _, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--fail-fast", "--workers", 1)
    assert code == 1, stderr
    state = manifest(out)
    assert state["complete"] is False and [s["index"] for s in state["shards"]] == [0]
    return folder, out


@pytest.mark.parametrize("change, named", [
    (["--tau", "0.05"], "tau 0.0 (not 0.05)"), (["--preset", "qwen2-vl"], "preset qwen3-vl (not qwen2-vl)"),
    (["--method", "raster"], "method pred_2d (not raster)"), (["--metric", "mae"], "metric max (not mae)"),
    (["--backend", "torchvision"], "backend pil (not torchvision)"),
    (["--shard-size", "3"], "shard_size differ"), (["--shard-format", "parquet"], "format differ")],
    ids=lambda c: c[0].strip("-") if isinstance(c, list) else None)
def test_resume_with_a_different_config_is_refused_naming_the_setting_and_touches_nothing(interrupted, change, named):
    if change[0] == "--backend":
        pytest.importorskip("torchvision", reason="--backend torchvision needs the torchvision extra")
    folder, out = interrupted
    before = snapshot(out)
    code, _stdout, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, *change, "--resume")
    assert code == 2
    one_line_error(stderr, "different configuration", named, "--overwrite")
    assert snapshot(out) == before


def test_resume_with_the_same_config_finishes_the_interrupted_folder(interrupted):
    folder, out = interrupted
    (folder / "img_003.png").write_bytes(bad.png(seed=3))  # the bad image is fixed
    first = snapshot(out)["part-00000.arrow"]
    code, stdout, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--resume", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["images"] == 4  # shard 0 was not redone ...
    assert snapshot(out)["part-00000.arrow"] == first  # ... nor rewritten
    assert shard_rows(out).column("id").to_pylist() == [f"img_{k:03d}.png" for k in range(6)]
    assert manifest(out)["complete"] is True and temporaries(out) == []


def test_resuming_a_complete_folder_says_there_is_nothing_to_do(tmp_path):
    folder = small_folder(tmp_path, 3)
    out = tmp_path / "out"
    code, _, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--no-progress")
    assert code == 0 and stderr.strip().splitlines()[-1].startswith("wrote 3 rows"), stderr
    shards = {name: data for name, (data, _) in snapshot(out).items() if name.startswith("part-")}
    code, _, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--no-progress", "--resume")
    assert code == 0, stderr
    assert stderr.strip().splitlines()[-1] == f"nothing to do: all 3 images are already in {out}/"
    assert "wrote" not in stderr
    assert {name: data for name, (data, _) in snapshot(out).items() if name.startswith("part-")} == shards


def test_resume_exits_1_when_a_kept_shard_holds_a_failed_image(tmp_path):
    folder = small_folder(tmp_path, 4, bad_at=1)  # the bad image is in shard 0
    out = tmp_path / "out"
    assert cli("compress", folder, "-o", f"{out}/", "--shard-size", 2)[0] == 1
    (out / "part-00001.arrow").unlink()  # as if the run had died before its last shard
    code, stdout, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--resume", "--json")
    summary = json.loads(stdout)
    assert (summary["images"], summary["failed"]) == (2, 0)  # this run: shard 1 only, nothing failed ...
    assert (summary["resumed_shards"], summary["resumed_images"], summary["resumed_failed"]) == (1, 2, 1)
    assert code == 1, stderr  # ... but the output as a whole lacks an image
    code, stdout, _ = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--resume")
    assert code == 1 and "resumed: 2 shards from an earlier run kept (4 images, 1 failed" in stdout


def test_resume_reads_only_the_parquet_rows_of_missing_shards(tmp_path, monkeypatch):
    samples = Path(__file__).parents[1] / "samples" / "samples.parquet"  # 10 rows: shards [0,4) [4,8) [8,10)
    out, full = tmp_path / "out", tmp_path / "full"
    for target in (out, full):
        assert cli("compress", samples, "-o", f"{target}/", "--shard-size", 4, "--workers", 1)[0] == 0
    (out / "part-00001.arrow").unlink()  # a missing shard in the middle

    reads = []
    real = parquet_source._parquet_batches
    monkeypatch.setattr(parquet_source, "_parquet_batches", lambda piece, keep: reads.append((piece.start, piece.stop)) or real(piece, keep))
    code, stdout, stderr = cli("compress", samples, "-o", f"{out}/", "--shard-size", 4, "--workers", 1, "--resume", "--json")
    assert code == 0, stderr
    assert reads == [(4, 8)]  # the committed rows' bytes were not read again
    assert json.loads(stdout)["images"] == 4
    assert shard_rows(out).equals(shard_rows(full))
    assert manifest(out)["complete"] is True


def test_resume_redoes_a_missing_middle_shard_of_image_files(tmp_path):
    # Shards [0,10) [10,20) [20,30): with the middle one gone the committed ones are not a
    # prefix, and shard 1 is opened long before the reader reaches shard 2's images.
    folder = small_folder(tmp_path, 30)
    out, full = tmp_path / "out", tmp_path / "full"
    for target in (out, full):
        assert cli("compress", folder, "-o", f"{target}/", "--shard-size", 10, "--workers", 1)[0] == 0
    (out / "part-00001.arrow").unlink()
    code, stdout, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 10, "--workers", 1, "--resume", "--json")
    assert code == 0, stderr
    assert [e["id"] for e in json.loads(stdout)["per_image"]] == [f"img_{k:03d}.png" for k in range(10, 20)]
    assert shard_rows(out).equals(shard_rows(full))


def test_stats_and_restore_warn_that_an_interrupted_folder_is_incomplete(interrupted, tmp_path):
    folder, out = interrupted
    code, stdout, stderr = cli("stats", out, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["images"] == 2  # the committed shard only ...
    assert "is incomplete" in json.loads(stdout)["incomplete"]  # ... and the report says so
    assert "warning:" in stderr and "--resume" in stderr
    code, _, stderr = cli("restore", out, "-o", tmp_path / "restored", "--table", "none")
    assert code == 0 and "is incomplete" in stderr
    code, _, stderr = cli("show", out, "--id", "img_005.png", "-o", tmp_path / "x.png")
    assert code == 2 and "no id 'img_005.png'" in stderr and "is incomplete" in stderr

    (folder / "img_003.png").write_bytes(bad.png(seed=3))
    assert cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--resume")[0] == 0
    code, stdout, stderr = cli("stats", out, "--json")
    assert "incomplete" not in json.loads(stdout) and "warning" not in stderr


def test_resume_after_the_inputs_changed_loses_or_duplicates_nothing(interrupted):
    folder, out = interrupted
    (folder / "img_003.png").write_bytes(bad.png(seed=3))
    (folder / "img_000a.png").write_bytes(bad.png(seed=50))  # sorts into the committed shard 0
    before = snapshot(out)
    code, _, _stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--resume")
    if code == 2:  # refusing is fine, if nothing was touched
        assert snapshot(out) == before
        return
    ids = shard_rows(out).column("id").to_pylist()
    assert sorted(ids) == sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------- (c) existing output

def test_existing_output_file_is_not_replaced_without_overwrite(tmp_path):
    folder = small_folder(tmp_path, 2, bad_at=1)
    out = tmp_path / "o" / "out.arrow"
    out.parent.mkdir()
    assert cli("compress", folder, "-o", out)[0] == 1
    before = snapshot(out.parent)
    assert sorted(before) == ["out.arrow", "out.arrow.errors.jsonl"]
    code, _, stderr = cli("compress", folder, "-o", out, "--tau", "0.1")
    assert code == 2
    one_line_error(stderr, "already exists", "--overwrite")
    assert snapshot(out.parent) == before
    code, _, _ = cli("compress", folder, "-o", out, "--tau", "0.1", "--overwrite")
    assert code == 1
    assert read_arrow(out).column("tau").to_pylist() == [pytest.approx(0.1)]
    assert sorted(snapshot(out.parent)) == ["out.arrow", "out.arrow.errors.jsonl"]


def test_existing_shard_folder_is_not_replaced_without_overwrite(tmp_path):
    folder = small_folder(tmp_path, 5)
    out = tmp_path / "out"
    assert cli("compress", folder, "-o", f"{out}/", "--shard-size", 2)[0] == 0
    before = snapshot(out)
    for target in (f"{out}/", str(out)):  # an existing folder is a shard folder with or without the slash
        code, _, stderr = cli("compress", folder, "-o", target, "--shard-size", 2)
        assert code == 2
        one_line_error(stderr, "already holds a pixelprune output", "--resume", "--overwrite")
        assert snapshot(out) == before
    code, _, _ = cli("compress", folder, "-o", f"{out}/", "--shard-size", 10, "--overwrite")
    assert code == 0
    assert sorted(snapshot(out)) == ["errors.jsonl", "manifest.json", "part-00000.arrow", "part-00000.errors.jsonl"]
    assert shard_rows(out).num_rows == 5


# ----------------------------------------------------------------- (d) signals to a single-file run

@pytest.mark.parametrize("signum,expected", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupted_single_file_run_exits_cleanly_and_leaves_nothing(slow_folder, tmp_path, signum, expected):
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    proc = start(["compress", slow_folder, "-o", out_dir / "out.arrow", "--workers", 2, "--no-progress"], tmp_path)
    temp = out_dir / f".out.arrow.partial-{proc.pid}"
    wait_for(temp.exists, proc, "the temporary output was opened")
    time.sleep(0.1)  # into the images
    assert proc.poll() is None
    proc.send_signal(signum)
    code, _stdout, stderr = finish(proc, tmp_path)
    assert code == expected
    one_line_error(stderr, "interrupted")
    assert sorted(os.listdir(out_dir)) == []


def test_killed_single_file_run_leaves_nothing_under_the_output_name(many_folder, tmp_path):
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    proc = start(["compress", many_folder, "-o", out_dir / "out.arrow", "--workers", 1, "--no-progress"], tmp_path)
    temp = out_dir / f".out.arrow.partial-{proc.pid}"
    wait_for(lambda: temp.exists() and temp.stat().st_size > 0, proc, "rows were being written")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    left = sorted(os.listdir(out_dir))
    assert "out.arrow" not in left and "out.arrow.errors.jsonl" not in left
    # Hidden temporaries, and the lock file the kernel unlocked (the next run takes it over and removes it).
    assert all(name.startswith(".") and ".partial-" in name for name in left if name != ".out.arrow.pixelprune-lock"), left


def test_rerun_after_a_killed_single_file_run_leaves_no_temporary_files(tmp_path):
    folder = small_folder(tmp_path, 3)
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    # What a SIGKILLed run leaves (its pid is gone): both temporaries of FileSink.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (out_dir / f".out.arrow.partial-{pid}").write_bytes(b"ARROW1 half a file")
    (out_dir / f".out.arrow.errors.jsonl.partial-{pid}").write_text('{"id": "x"')
    code, _, stderr = cli("compress", folder, "-o", out_dir / "out.arrow")
    assert code == 0, stderr
    assert sorted(os.listdir(out_dir)) == ["out.arrow", "out.arrow.errors.jsonl"]


# ----------------------------------------------------------------- (e) --fail-fast

@pytest.mark.parametrize("workers", [1, 2])
def test_fail_fast_stops_at_the_first_bad_image_without_completing_the_output(tmp_path, workers):
    folder = small_folder(tmp_path, 8, bad_at=2)
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    code, _stdout, stderr = cli("compress", folder, "-o", out_dir / "out.arrow", "--fail-fast", "--workers", workers)
    assert code == 1
    one_line_error(stderr, "img_002.png", "decode", "--fail-fast")
    assert sorted(os.listdir(out_dir)) == []


def test_fail_fast_in_a_shard_folder_keeps_only_committed_shards(interrupted):
    _, out = interrupted
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "part-00000.arrow", "part-00000.errors.jsonl"]
    assert read_arrow(out / "part-00000.arrow").column("id").to_pylist() == ["img_000.png", "img_001.png"]


def test_shard_checksum_is_the_files_sha256_on_python_3_10_too(tmp_path, monkeypatch):
    """The manifest's checksum without hashlib.file_digest, which Python 3.10 (our oldest) does not have."""
    import hashlib

    from pixelprune_cli.storage import atomic

    data = np.random.default_rng(0).integers(0, 256, 3 * (1 << 20) + 17, dtype=np.uint8).tobytes()
    path = tmp_path / "part-00000.arrow"
    path.write_bytes(data)
    monkeypatch.delattr(hashlib, "file_digest", raising=False)
    assert atomic.file_checksum(path) == (len(data), hashlib.sha256(data).hexdigest())
