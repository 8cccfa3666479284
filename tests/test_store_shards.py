"""Shard folders on a real S3 server (SeaweedFS on 127.0.0.1): two replacing runs at once, damaged manifests,
missing shards, and --overwrite over a folder that lost its manifest."""

from __future__ import annotations

import threading

from pixelprune_cli.run.job import RunOptions

from conftest import SAMPLE_IMAGES, cli
from test_objectstore import local_copy, rows_by_reader, stored_json, stored_names


def put_object(server, url: str, data: bytes) -> None:
    with server.filesystem().open_output_stream(url.removeprefix("s3://")) as out:
        out.write(data)


def test_a_second_overwrite_while_a_replacement_is_committing_never_loses_the_output(s3, tmp_path, monkeypatch):
    """Run A replaces the output and is held just before its commit (the manifest upload); run B, started then
    with --overwrite, must not take A's pending replacement for a killed one and delete its shards."""
    from pixelprune_cli import api
    from pixelprune_cli.coding.pipeline import CodingConfig
    from pixelprune_cli.storage import storage

    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES[:3])
    out = f"s3://{bucket}/out/"
    assert cli("compress", images, "-o", out, "--shard-size", "1", "--no-progress")[0] == 0
    real_put = storage.put_bytes
    at_commit, go_on = threading.Event(), threading.Event()

    def held_commit(url, data):  # the first commit (run A's final manifest upload) is held, once
        if not at_commit.is_set() and url.endswith("/manifest.json") and b'"complete": true' in data:
            at_commit.set()
            go_on.wait(120)
        return real_put(url, data)

    monkeypatch.setattr(storage, "put_bytes", held_commit)
    outcome: dict = {}

    def run_a():
        try:
            outcome["a"] = api.compress([str(images)], out, CodingConfig(tau=0.05), overwrite=True, shard_size=1,
                                        run=RunOptions(progress=False))
        except BaseException as exc:
            outcome["a"] = exc
        finally:
            at_commit.set()

    a = threading.Thread(target=run_a)
    a.start()
    assert at_commit.wait(120)
    code_b, _, err_b = cli("compress", images, "-o", out, "--overwrite", "--tau", "0.1", "--shard-size", "1",
                           "--no-progress")
    go_on.set()
    a.join(120)
    assert not isinstance(outcome["a"], BaseException), outcome["a"]
    manifest = stored_json(s3, out + "manifest.json")
    listed = {n for s in manifest["shards"] for n in (s["file"], s["errors"])}
    assert listed <= stored_names(s3, out), "every shard the manifest lists is still there"
    rows = rows_by_reader(out)
    assert rows.num_rows == 3 and len(set(rows.column("tau").to_pylist())) == 1  # one whole output
    assert code_b == 2 and "being replaced by run" in err_b, err_b  # B refused, naming A, before touching anything
    assert all(abs(t - 0.05) < 1e-6 for t in rows.column("tau").to_pylist())  # A's output stands


def test_overwrite_after_a_sigkilled_replacement_on_this_host_goes_ahead(s3, tmp_path):
    """The lease does not hold up a replacement whose process is proven dead (same host, pid gone)."""
    import signal
    import time

    from conftest import finish, start

    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES)
    out = f"s3://{bucket}/out/"
    assert cli("compress", images, "-o", out, "--shard-size", "1", "--no-progress")[0] == 0
    proc = start(["compress", images, "-o", out, "--overwrite", "--tau", "0.05", "--shard-size", "1", "-j1",
                  "--no-progress"], tmp_path)
    while ".pixelprune-pending.json" not in stored_names(s3, out):
        assert proc.poll() is None, "the replacement ended before its pending manifest could be seen"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    finish(proc, tmp_path)
    code, _, err = cli("compress", images, "-o", out, "--overwrite", "--tau", "0.1", "--shard-size", "1",
                       "--no-progress")
    assert code == 0, err
    rows = rows_by_reader(out)
    assert rows.num_rows == len(SAMPLE_IMAGES) and all(abs(t - 0.1) < 1e-6 for t in rows.column("tau").to_pylist())
    manifest = stored_json(s3, out + "manifest.json")
    listed = {n for s in manifest["shards"] for n in (s["file"], s["errors"])}
    assert stored_names(s3, out) - listed == {"manifest.json", "errors.jsonl"}, "the killed run's shards are swept"


def test_a_dead_runs_spool_folder_is_swept_even_when_its_pid_now_belongs_to_a_later_process(tmp_path, monkeypatch):
    """The PID-reuse guard of the local partials, for spool folders: a live pid that started after the folder
    was last written to did not write it; a live pid that is older may have, and its folder stays."""
    import os
    import subprocess
    import sys
    import tempfile

    from pixelprune_cli.storage.spool import spool_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        reused = tmp_path / f"pixelprune-spool-{later.pid}-abc"  # a killed run's, its pid since taken
        reused.mkdir()
        os.utime(reused, (1_000_000_000, 1_000_000_000))  # last written long before that process started
        alive = tmp_path / f"pixelprune-spool-{os.getppid()}-abc"  # the parent's: older than its folder
        alive.mkdir()
        own = spool_dir()
        assert not reused.exists()
        assert alive.exists() and os.path.isdir(own)
    finally:
        later.kill()
        later.wait()


def test_what_an_output_url_names_is_asked_of_the_store_once_per_compress(s3, tmp_path, monkeypatch):
    """A URL without a trailing slash may be a folder: one round trip decides it, and the answer is handed down
    (the check, the sink, the engine, the report), never asked again."""
    from pixelprune_cli import api
    from pixelprune_cli.coding.pipeline import CodingConfig
    from pixelprune_cli.storage import storage

    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES[:2])
    assert cli("compress", images, "-o", f"s3://{bucket}/dir/", "--no-progress")[0] == 0
    real, asked = storage.kind, []
    monkeypatch.setattr(storage, "kind", lambda url: (asked.append(url), real(url))[1])
    summary = api.compress([str(images)], f"s3://{bucket}/dir", CodingConfig(), resume=True,
                           run=RunOptions(progress=False))
    assert summary.resumed is not None and summary.resumed.images == 2  # it was taken for the shard folder it is
    assert asked == [f"s3://{bucket}/dir"]


def test_stats_show_and_restore_ask_the_store_once_whether_a_url_is_a_folder(s3, tmp_path, monkeypatch):
    """A URL without a trailing slash costs a round trip to tell a folder from an object: once per command."""
    from pixelprune_cli import api
    from pixelprune_cli.storage import storage

    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES[:2])
    out = f"s3://{bucket}/out/"
    assert cli("compress", images, "-o", out, "--shard-size", "1", "--no-progress")[0] == 0
    real_kind, asked = storage.kind, []

    def counted(url):
        asked.append(url)
        return real_kind(url)

    monkeypatch.setattr(storage, "kind", counted)
    no_slash = out.rstrip("/")
    assert api.stats_of_output(no_slash).images == 2
    assert asked == [no_slash]
    asked.clear()
    api.show(no_slash, str(tmp_path / "sheet.png"))
    assert asked == [no_slash]
    asked.clear()
    assert api.restore(no_slash, str(tmp_path / "pngs"), progress=False).images == 2
    assert asked == [no_slash]
