"""A shard folder is what its manifest lists, on a disk as on a store: damaged manifests, shards listed twice,
missing shards and stray part-* files, each read the same way by `stats` and by `--resume`."""

from __future__ import annotations

import json
import shutil

import pyarrow.fs as pafs
import pytest

from pixelprune_cli.run.job import RunOptions

from conftest import SAMPLE_IMAGES, cli, one_line_error


@pytest.fixture(params=["disk", "store"])
def folder(request, tmp_path):
    """(output folder, its pyarrow filesystem, the folder's path on it) of a committed 3-shard output."""
    images = tmp_path / "in"
    images.mkdir()
    for p in SAMPLE_IMAGES[:3]:
        shutil.copy(p, images / p.name)
    if request.param == "disk":
        out, fs = str(tmp_path / "out") + "/", pafs.LocalFileSystem()
        inner = out
    else:
        s3 = request.getfixturevalue("s3")
        out, fs = f"s3://{s3.new_bucket()}/out/", s3.filesystem()
        inner = out.removeprefix("s3://")
    code, _, err = cli("compress", images, "-o", out, "--shard-size", "1", "--no-progress")
    assert code == 0, err
    return out, fs, inner, images


def manifest_of(fs, inner: str) -> dict:
    with fs.open_input_stream(inner + "manifest.json") as source:
        return json.loads(source.read())


def put_manifest(fs, inner: str, manifest: dict) -> None:
    with fs.open_output_stream(inner + "manifest.json") as out:
        out.write(json.dumps(manifest).encode())


def stats_images(out: str) -> int:
    code, stdout, err = cli("stats", out, "--json")
    assert code == 0, err
    return json.loads(stdout)["images"]


@pytest.mark.parametrize("damage", [
    lambda m: m["shards"][0].update(index="0"),
    lambda m: m.update(complete=False, images="many"),
    lambda m: m["shards"][1].update(images=None, written="2"),
])
def test_a_damaged_manifest_is_one_line_saying_so_never_a_traceback(folder, damage):
    out, fs, inner, images = folder
    manifest = manifest_of(fs, inner)
    damage(manifest)
    put_manifest(fs, inner, manifest)
    for args in (["stats", out], ["compress", images, "-o", out, "--resume", "--shard-size", "1", "--no-progress"]):
        code, _, err = cli(*args)
        assert code == 2
        one_line_error(err, "not a pixelprune manifest")


def test_a_shard_listed_twice_is_refused_by_readers_and_dropped_by_resume(folder):
    out, fs, inner, images = folder
    manifest = manifest_of(fs, inner)
    manifest["shards"].append(dict(manifest["shards"][0]))
    put_manifest(fs, inner, manifest)
    code, _, err = cli("stats", out)
    assert code == 2
    one_line_error(err, "shard 0 twice", "--resume")
    code, _, err = cli("compress", images, "-o", out, "--resume", "--shard-size", "1", "--no-progress")
    assert code == 0, err
    assert sorted(s["index"] for s in manifest_of(fs, inner)["shards"]) == [0, 1, 2]
    assert manifest_of(fs, inner)["images"] == 3
    assert stats_images(out) == 3


def test_a_missing_listed_shard_is_reported_missing_and_resume_redoes_it(folder):
    out, fs, inner, images = folder
    gone = manifest_of(fs, inner)["shards"][1]["file"]
    fs.delete_file(inner + gone)
    code, _, err = cli("stats", out)
    assert code == 2
    one_line_error(err, gone, "is missing", "--resume")
    code, _, err = cli("compress", images, "-o", out, "--resume", "--shard-size", "1", "--no-progress")
    assert code == 0, err
    assert stats_images(out) == 3


def test_readers_count_what_the_manifest_lists_not_a_stray_copy_of_a_shard(folder):
    out, fs, inner, _ = folder
    first = manifest_of(fs, inner)["shards"][0]["file"]
    fs.copy_file(inner + first, inner + "part-99999.arrow")
    assert stats_images(out) == 3


def test_wrote_size_counts_the_manifest_what_it_lists_and_errors_jsonl_on_disk_and_store(folder):
    out, fs, inner, images = folder
    code, stdout, err = cli("compress", images, "-o", out, "--overwrite", "--shard-size", "1", "--json")
    assert code == 0, err
    manifest = manifest_of(fs, inner)
    own = sum(fs.get_file_info(inner + name).size for name in ("manifest.json", "errors.jsonl"))
    assert json.loads(stdout)["bytes_written"] == own + sum(s["bytes"] + s["errors_bytes"] for s in manifest["shards"])


def test_overwrite_of_a_folder_that_lost_its_manifest_removes_the_old_shards_and_only_those(folder):
    out, fs, inner, images = folder
    old = {n for s in manifest_of(fs, inner)["shards"] for n in (s["file"], s["errors"])}
    fs.delete_file(inner + "manifest.json")
    for name in ("notes.txt", "part-time.txt"):
        with fs.open_output_stream(inner + name) as stream:
            stream.write(b"the user's")
    code, _, err = cli("compress", images, "-o", out, "--shard-size", "1", "--no-progress")
    assert code == 2 and "--overwrite" in err, err  # shards without a manifest are not taken over unasked
    code, _, err = cli("compress", images, "-o", out, "--overwrite", "--tau", "0.05", "--shard-size", "1",
                       "--no-progress")
    assert code == 0, err
    manifest = manifest_of(fs, inner)
    listed = {n for s in manifest["shards"] for n in (s["file"], s["errors"])}
    names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(inner.rstrip("/")))}
    assert names == listed | {"manifest.json", "errors.jsonl", "notes.txt", "part-time.txt"}
    assert not (old - listed) & names


SWAP_CUT_AFTER_FIRST_MOVE = """
import os, sys
from pixelprune_cli.run.job import RunOptions
from pixelprune_cli import api
from pixelprune_cli.outputs import manifest
from pixelprune_cli.coding.pipeline import CodingConfig

real = os.replace

def killed_after_the_first_move(src, dst, *args, **kwargs):
    real(src, dst, *args, **kwargs)
    if os.sep + manifest.SWAP + os.sep in os.fspath(src):
        os._exit(9)  # as SIGKILL: no clean-up, the lock goes with the process

os.replace = killed_after_the_first_move
api.compress([sys.argv[1]], sys.argv[2], CodingConfig(tau=0.05), overwrite=True, shard_size=1,
             run=RunOptions(progress=False))
"""


def test_a_replacement_killed_after_its_first_move_into_place_is_finished_whole_by_the_next_run(tmp_path):
    """The real move of a committed replacement, cut after its first rename: the next run finishes it, and every
    shard the manifest then lists is intact as moved, none redone (the manifest must be moved last)."""
    import subprocess
    import sys

    from pixelprune_cli.storage.atomic import file_checksum

    images = tmp_path / "in"
    images.mkdir()
    for p in SAMPLE_IMAGES[:3]:
        shutil.copy(p, images / p.name)
    out = tmp_path / "out"
    assert cli("compress", images, "-o", f"{out}/", "--shard-size", "1", "--no-progress")[0] == 0
    killed = subprocess.run([sys.executable, "-c", SWAP_CUT_AFTER_FIRST_MOVE, str(images), f"{out}/"],
                            capture_output=True, timeout=120)
    assert killed.returncode == 9, killed.stderr.decode()
    assert (out / ".pixelprune-swap").is_dir(), "the kill fell inside the move"
    from pixelprune_cli import api
    from pixelprune_cli.coding.pipeline import CodingConfig

    summary = api.compress([str(images)], f"{out}/", CodingConfig(tau=0.05), resume=True, shard_size=1,
                           run=RunOptions(progress=False))
    assert summary.resumed is not None and summary.resumed.damaged == (), "the moved-in output was whole"
    assert summary.resumed.shards == 3  # all kept: nothing to redo
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 3
    for record in manifest["shards"]:
        assert file_checksum(out / record["file"]) == (record["bytes"], record["sha256"]), record["file"]
        assert file_checksum(out / record["errors"]) == (record["errors_bytes"], record["errors_sha256"])
    assert stats_images(f"{out}/") == 3
