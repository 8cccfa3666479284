"""Inputs and outputs on a real S3 server (SeaweedFS on 127.0.0.1): the same rows as on a local disk,
the manifest as the commit, resume, --overwrite and a second writer without rename or lock, and no secret shown."""

from __future__ import annotations

import json
import re
import tempfile

import pyarrow as pa
import pytest

from conftest import SAMPLE_IMAGES, SAMPLES_PARQUET, cli, read_arrow
from s3server import SECRET_KEY


def upload_folder(server, bucket: str, files, prefix: str = "in") -> str:
    fs = server.filesystem()
    for path in files:
        with fs.open_output_stream(f"{bucket}/{prefix}/{path.name}") as out:
            out.write(path.read_bytes())
    return f"s3://{bucket}/{prefix}/"


def stored_table(server, url: str) -> pa.Table:
    """Every row of an Arrow or Parquet file on the store (read with pyarrow's own S3 client, not ours)."""
    import pyarrow.parquet as pq

    fs = server.filesystem()
    with fs.open_input_file(url.removeprefix("s3://")) as source:
        return pq.read_table(source) if url.endswith(".parquet") else pa.ipc.open_file(source).read_all()


def stored_json(server, url: str) -> dict:
    with server.filesystem().open_input_stream(url.removeprefix("s3://")) as source:
        return json.loads(source.read())


def stored_names(server, url: str) -> set[str]:
    import pyarrow.fs as pafs

    infos = server.filesystem().get_file_info(pafs.FileSelector(url.removeprefix("s3://"), allow_not_found=True))
    return {i.base_name for i in infos}


def wait_for_first_shard(server, folder_url: str, still_running) -> None:
    """Poll the store until the folder's manifest lists a shard; the run must still be going (still_running() is None)."""
    import time

    fs, deadline = server.filesystem(), time.monotonic() + 120
    while True:
        try:
            with fs.open_input_stream(folder_url.removeprefix("s3://") + "manifest.json") as source:
                if json.loads(source.read())["shards"]:
                    return
        except (OSError, ValueError):
            pass
        assert still_running() is None, "the run ended before its first shard could be seen"
        assert time.monotonic() < deadline, "timed out waiting for the first shard"
        time.sleep(0.05)


def same_rows(a: pa.Table, b: pa.Table) -> None:
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    assert a.drop_columns(["seconds"]).equals(b.drop_columns(["seconds"])) if "seconds" in a.schema.names else a.equals(b)


def test_folder_in_the_store_gives_the_rows_of_the_local_folder_id_for_id(s3, tmp_path):
    bucket = s3.new_bucket()
    url = upload_folder(s3, bucket, SAMPLE_IMAGES[:4])
    local_in = tmp_path / "in"
    local_in.mkdir()
    for p in SAMPLE_IMAGES[:4]:
        (local_in / p.name).write_bytes(p.read_bytes())
    assert cli("compress", local_in, "-o", tmp_path / "local.arrow", "--no-progress")[0] == 0
    code, _, err = cli("compress", url, "-o", tmp_path / "from_s3.arrow", "--no-progress")
    assert code == 0, err
    local = read_arrow(tmp_path / "local.arrow")
    assert local.num_rows == 4
    same_rows(read_arrow(tmp_path / "from_s3.arrow"), local)

    code, _, err = cli("compress", local_in, "-o", f"s3://{bucket}/out/table.arrow", "--no-progress")
    assert code == 0, err
    same_rows(stored_table(s3, f"s3://{bucket}/out/table.arrow"), local)
    assert "table.arrow.errors.jsonl" in stored_names(s3, f"s3://{bucket}/out")


def local_copy(tmp_path, files):
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    for p in files:
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


def store_shard_rows(server, folder_url: str) -> pa.Table:
    """The rows of a shard folder on the store, read through its manifest with pyarrow's own client."""
    manifest = stored_json(server, folder_url + "manifest.json")
    assert manifest["complete"] is True
    tables = [stored_table(server, folder_url + s["file"]) for s in sorted(manifest["shards"], key=lambda s: s["index"])]
    return pa.concat_tables(tables)


def test_store_to_store_shard_folder_has_a_manifest_with_sizes_and_checksums(s3, tmp_path):
    import hashlib

    bucket = s3.new_bucket()
    url = upload_folder(s3, bucket, SAMPLE_IMAGES[:5])
    out = f"s3://{bucket}/out/"
    code, _, err = cli("compress", url, "-o", out, "--shard-size", "2", "--no-progress")
    assert code == 0, err
    assert cli("compress", local_copy(tmp_path, SAMPLE_IMAGES[:5]), "-o", f"{tmp_path}/local/", "--shard-size", "2",
               "--no-progress")[0] == 0
    manifest = stored_json(s3, out + "manifest.json")
    assert [s["index"] for s in manifest["shards"]] == [0, 1, 2] and manifest["images"] == 5
    fs = s3.filesystem()
    for shard in manifest["shards"]:
        with fs.open_input_stream(f"{bucket}/out/{shard['file']}") as source:
            data = source.read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (shard["bytes"], shard["sha256"])
    local = pa.concat_tables([read_arrow(p) for p in sorted((tmp_path / "local").glob("part-*.arrow"))])
    same_rows(store_shard_rows(s3, out), local)
    assert "errors.jsonl" in stored_names(s3, out)


def test_stats_restore_and_show_read_an_output_in_the_store(s3, tmp_path):
    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES[:3])
    for out in (f"s3://{bucket}/one.parquet", f"s3://{bucket}/dir/"):
        code, _, err = cli("compress", images, "-o", out, "--no-progress")
        assert code == 0, err
        code, stdout, err = cli("stats", out, "--json")
        assert code == 0, err
        assert json.loads(stdout)["images"] == 3
        restored = tmp_path / f"restored-{out[-4:-1]}"
        code, _, err = cli("restore", out, "-o", restored)
        assert code == 0, err
        assert len(list(restored.glob("*.png"))) == 3
        sheet = tmp_path / f"sheet-{out[-4:-1]}.png"
        code, _, err = cli("show", out, "-o", sheet)
        assert code == 0, err
        assert sheet.stat().st_size > 0
    url = upload_folder(s3, bucket, SAMPLE_IMAGES[:2])
    code, _, err = cli("show", url, "-o", tmp_path / "folder-sheet.png")  # a folder of images: a contact sheet
    assert code == 0, err
    assert (tmp_path / "folder-sheet.png").stat().st_size > 0


def test_parquet_table_in_the_store_reads_like_a_local_one(s3, tmp_path):
    bucket = s3.new_bucket()
    upload_folder(s3, bucket, [SAMPLES_PARQUET], prefix="tables")
    url = f"s3://{bucket}/tables/{SAMPLES_PARQUET.name}"
    assert cli("compress", SAMPLES_PARQUET, "-o", tmp_path / "local.arrow", "--no-progress")[0] == 0
    code, _, err = cli("compress", url, "-o", tmp_path / "stored.arrow", "--no-progress")
    assert code == 0, err
    same_rows(read_arrow(tmp_path / "stored.arrow"), read_arrow(tmp_path / "local.arrow"))


def test_no_secret_in_any_output_message_report_or_manifest(s3, tmp_path, monkeypatch):
    """The key given in the URL (user:secret@) and the one in the environment show up nowhere."""
    bucket = s3.new_bucket()
    url = upload_folder(s3, bucket, SAMPLE_IMAGES[:2])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    bad = upload_folder(s3, bucket, [broken], prefix="bad")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with_key = url.replace("s3://", f"s3://{s3.env()['AWS_ACCESS_KEY_ID']}:{SECRET_KEY}@")
    out = f"s3://{s3.env()['AWS_ACCESS_KEY_ID']}:{SECRET_KEY}@{bucket}/out/"
    seen = []
    for args in (["compress", with_key, "-o", out, "--json"], ["compress", with_key, "-o", out, "--json"],
                 ["stats", out, "--json"], ["compress", with_key + "missing/", "-o", out, "--overwrite"],
                 ["compress", with_key, bad.replace("s3://", with_key.split("@")[0] + "@"), "-o", out + "b/", "--json"],
                 ["compress", "--help"]):
        _, stdout, stderr = cli(*args)
        seen.append(stdout + stderr)
        if args[-1] == "--json" and args[0] == "compress" and stdout:
            report = json.loads(stdout)
    assert json.loads(seen[0])["images"] == 2
    assert "already holds" in seen[1] and "***" in seen[1]
    assert "missing" in seen[3]
    assert report["errors"][0]["id"].startswith(f"s3://{s3.env()['AWS_ACCESS_KEY_ID']}:***@")  # the last run's
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.env()["AWS_ACCESS_KEY_ID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    fs = s3.filesystem()
    for folder in ("out", "out/b"):  # manifests and error logs (the second names a failed image by its URL)
        for name in stored_names(s3, f"s3://{bucket}/{folder}"):
            if name.endswith((".json", ".jsonl")):
                with fs.open_input_stream(f"{bucket}/{folder}/{name}") as source:
                    seen.append(source.read().decode())
    assert any(":***@" in text and "broken.png" in text for text in seen[6:])
    schema = stored_table(s3, f"s3://{bucket}/out/" + stored_json(s3, f"s3://{bucket}/out/manifest.json")["shards"][0]["file"]).schema
    seen.append(str(schema.metadata))
    for text in seen:
        assert SECRET_KEY not in text


class Killed(BaseException):
    """A kill: raised at one store write, with the sink's cleanup switched off, as SIGKILL would leave it."""


def rows_by_reader(url: str) -> pa.Table:
    from pixelprune_cli.outputs.readers import iter_output_batches

    return pa.Table.from_batches(list(iter_output_batches(url, ["id", "tau"])))


def test_overwrite_killed_at_each_store_write_leaves_the_old_output_whole(s3, tmp_path, monkeypatch):
    from pixelprune_cli import api
    from pixelprune_cli.coding.pipeline import CodingConfig
    from pixelprune_cli.outputs import objectstore
    from pixelprune_cli.outputs.store_sinks import StoreShardSink
    from pixelprune_cli.run.job import RunOptions
    from pixelprune_cli.storage import storage

    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES[:2])
    out = f"s3://{bucket}/out/"
    assert cli("compress", images, "-o", out, "--shard-size", "1", "--no-progress")[0] == 0
    old = rows_by_reader(out)
    old_files = {s["file"] for s in stored_json(s3, out + "manifest.json")["shards"]}
    real = {name: getattr(storage, name) for name in ("put_bytes", "put_file", "delete")}
    monkeypatch.setattr(StoreShardSink, "abort", lambda self: None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the spool folders these kills leave go with tmp_path
    monkeypatch.setattr(objectstore, "LEASE_SECONDS", 0.0)  # these "killed" runs live in this process: no pid proof
    kills = 0
    for k in range(100):
        calls = [0]

        def counted(name, *args, k=k, calls=calls):
            if calls[0] == k:
                raise Killed(f"killed at store write {k} ({name})")
            calls[0] += 1
            return real[name](*args)

        for name in real:
            monkeypatch.setattr(storage, name, lambda *a, name=name, counted=counted: counted(name, *a))
        try:
            api.compress([str(images)], out, CodingConfig(tau=0.05), overwrite=True, shard_size=1,
                         run=RunOptions(progress=False))
        except Killed:
            kills += 1
            rows = rows_by_reader(out)  # whatever the step, a reader sees one whole output
            assert rows.column("id").to_pylist() == old.column("id").to_pylist()
            assert len(set(rows.column("tau").to_pylist())) == 1
            continue
        finally:
            for name, fn in real.items():
                monkeypatch.setattr(storage, name, fn)
        break
    assert kills >= 10  # every step of the protocol was interrupted once
    new = rows_by_reader(out)
    assert all(abs(t - 0.05) < 1e-6 for t in new.column("tau").to_pylist())
    manifest = stored_json(s3, out + "manifest.json")
    listed = {n for s in manifest["shards"] for n in (s["file"], s["errors"])}
    assert not old_files & stored_names(s3, out), "the replaced shards are deleted once the new manifest is in"
    leftovers = stored_names(s3, out) - listed
    assert leftovers == {"manifest.json", "errors.jsonl"}, f"killed runs' files are swept: {sorted(leftovers)}"
    assert ".pixelprune-pending.json" not in stored_names(s3, out)


def test_a_second_writer_is_refused_at_its_commit_naming_the_first(s3, tmp_path):
    """Two runs on one folder: the one whose manifest was replaced under it stops (exit 2) and names the other."""
    from pixelprune_cli import api
    from pixelprune_cli.coding.pipeline import CodingConfig
    from pixelprune_cli.errors import ConfigError
    from pixelprune_cli.outputs.schema import output_schema
    from pixelprune_cli.outputs.store_sinks import StoreShardSink
    from pixelprune_cli.run.job import RunOptions

    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES[:3])
    out = f"s3://{bucket}/out/"
    config = CodingConfig()
    schema = output_schema(config.to_meta(), config.preset.token_bytes)
    first = StoreShardSink(out, schema, config.to_meta(), 1, "zstd")  # claims the folder, then stalls
    code, _, err = cli("compress", images, "-o", out, "--shard-size", "1", "--no-progress")
    assert code == 2 and "already holds" in err and f"run {first.place.run['id']}" in err  # a plain second run: at once
    api.compress([str(images)], out, config, shard_size=1, resume=True, run=RunOptions(progress=False))
    second = stored_json(s3, out + "manifest.json")["run"]
    with pytest.raises(ConfigError, match=f"being written by run {second['id']} on {second['host']}"):
        first.commit()
    first.abort()
    assert rows_by_reader(out).num_rows == 3  # the second run's output stands


def test_store_killed_mid_run_then_resume_gives_the_rows_of_a_clean_run(s3, tmp_path, monkeypatch):
    import time

    from conftest import finish, start

    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES)  # one image per shard
    url = upload_folder(s3, bucket, sorted(images.iterdir()))
    out = f"s3://{bucket}/out/"
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # one retry: the run gives up sooner than with the default 4
    proc = start(["compress", url, "-o", out, "--shard-size", "1", "-j1", "--no-progress"], tmp_path)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    wait_for_first_shard(s3, out, proc.poll)
    s3.kill()
    began = time.monotonic()
    code, _, err = finish(proc, tmp_path, timeout=120)
    assert code == 2, err
    assert time.monotonic() - began < 60
    # Arrow's own C++ logger may add a line when a multipart upload dies half-way (it cannot be silenced).
    ours = [line for line in err.splitlines() if not re.match(r"/arrow/.*\.cc:\d+: ", line)]
    assert len(ours) == 1 and "--resume" in ours[0], err
    s3.start()
    code, _, err = cli("compress", url, "-o", out, "--shard-size", "1", "--resume", "--no-progress")
    assert code == 0, err
    clean = f"s3://{bucket}/clean/"
    assert cli("compress", url, "-o", clean, "--shard-size", "1", "--no-progress")[0] == 0
    same_rows(store_shard_rows(s3, out), store_shard_rows(s3, clean))


def test_an_output_inside_an_input_folder_on_the_store_is_refused_before_anything_is_written(s3, tmp_path):
    bucket = s3.new_bucket()
    url = upload_folder(s3, bucket, SAMPLE_IMAGES[:1])
    for out in (url + "out/", url + "table.arrow", f"s3://{bucket}/"):
        code, _, err = cli("compress", url, "-o", out, "--no-progress")
        assert code == 2, err
        assert "overlaps the input" in err
    assert stored_names(s3, url) == {SAMPLE_IMAGES[0].name}


def test_file_urls_are_local_paths(tmp_path):
    images = local_copy(tmp_path, SAMPLE_IMAGES[:2])
    code, _, err = cli("compress", f"file://{images}", "-o", f"file://{tmp_path}/out.arrow", "--no-progress")
    assert code == 0, err
    assert read_arrow(tmp_path / "out.arrow").num_rows == 2


LAST_IMAGE_NEVER_READ = """
import sys, threading
from pixelprune_cli.inputs import input_files
from pixelprune_cli.cli.cli import main

real, last = input_files.read_file, sys.argv.pop(1)

def stuck_at_the_last(path, *args, **kwargs):
    if str(path).endswith(last):
        sys.stdout.write("blocked\\n")
        sys.stdout.flush()
        threading.Event().wait()  # never returns: the run cannot reach its final commit
    return real(path, *args, **kwargs)

input_files.read_file = stuck_at_the_last
sys.argv = ["pixelprune", "compress", *sys.argv[1:]]
main()
"""


def test_sigterm_mid_run_on_the_store_leaves_a_folder_resume_finishes(s3, tmp_path, monkeypatch):
    """The run is held reading its last image (so the signal always lands mid-run, after its first shard)."""
    import signal
    import subprocess
    import sys

    from conftest import run_process

    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES)
    out = f"s3://{bucket}/out/"
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))  # where the run spools its shards
    last = sorted(p.name for p in images.iterdir())[-1]
    proc = subprocess.Popen([sys.executable, "-c", LAST_IMAGE_NEVER_READ, last, str(images), "-o", out,
                             "--shard-size", "1", "-j1", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"blocked"
        wait_for_first_shard(s3, out, proc.poll)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    err = proc.stderr.read().decode()
    assert code == 143, err
    assert "Traceback" not in err
    assert list(spool.iterdir()) == [], "the spool folder is removed on a signal"
    dead = spool / "pixelprune-spool-999999999-x"  # a killed run's (no such pid)
    dead.mkdir()
    manifest = stored_json(s3, out + "manifest.json")
    assert manifest["complete"] is False and 1 <= len(manifest["shards"]) < len(SAMPLE_IMAGES)
    listed = {n for s in manifest["shards"] for n in (s["file"], s["errors"])}
    assert stored_names(s3, out) - listed == {"manifest.json"}, "no upload is left unlisted"
    code, _, err = run_process(["compress", images, "-o", out, "--shard-size", "1", "--resume", "--no-progress"],
                               tmp_path)
    assert code == 0, err
    assert rows_by_reader(out).column("id").to_pylist() == sorted(p.name for p in images.iterdir())
    assert not dead.exists(), "a killed run's spool folder is removed by the next run"


def test_resume_after_a_killed_overwrite_finishes_the_replacement(s3, tmp_path, monkeypatch):
    """Killed at its third upload (shard 1's error log), a replacement has one shard in its pending manifest."""
    from pixelprune_cli import api
    from pixelprune_cli.coding.pipeline import CodingConfig
    from pixelprune_cli.outputs.store_sinks import StoreShardSink
    from pixelprune_cli.run.job import RunOptions
    from pixelprune_cli.storage import storage

    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES[:3])
    out = f"s3://{bucket}/out/"
    assert cli("compress", images, "-o", out, "--shard-size", "1", "--no-progress")[0] == 0
    real_put = storage.put_file
    uploads = []

    def killed_at_the_third_upload(local, url):
        if len(uploads) == 2:
            raise Killed("killed")
        uploads.append(url)
        return real_put(local, url)

    with monkeypatch.context() as patched, pytest.raises(Killed):
        patched.setattr(tempfile, "tempdir", str(tmp_path))  # the spool folder the kill leaves goes with tmp_path
        patched.setattr(storage, "put_file", killed_at_the_third_upload)
        patched.setattr(StoreShardSink, "abort", lambda self: None)
        api.compress([str(images)], out, CodingConfig(tau=0.05), overwrite=True, shard_size=1,
                     run=RunOptions(progress=False))
    assert set(rows_by_reader(out).column("tau").to_pylist()) == {0.0}  # the old output, whole
    summary = api.compress([str(images)], out, CodingConfig(tau=0.05), resume=True, shard_size=1,
                           run=RunOptions(progress=False))
    assert summary.resumed is not None and summary.resumed.shards == 1  # the replacement's first shard was kept
    assert all(abs(t - 0.05) < 1e-6 for t in rows_by_reader(out).column("tau").to_pylist())
    assert ".pixelprune-pending.json" not in stored_names(s3, out)


def test_an_fsspec_store_is_read_through_pyfilesystem(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    for p in SAMPLE_IMAGES[:2]:
        memory.pipe(f"/pixelprune-test/in/{p.name}", p.read_bytes())
    try:
        code, _, err = cli("compress", "memory://pixelprune-test/in/", "-o", tmp_path / "out.arrow", "--no-progress")
        assert code == 0, err
        assert sorted(read_arrow(tmp_path / "out.arrow").column("id").to_pylist()) == sorted(p.name for p in SAMPLE_IMAGES[:2])
    finally:
        memory.rm("/pixelprune-test", recursive=True)


def test_a_store_that_hangs_ends_the_run_within_the_timeouts(s3, tmp_path, monkeypatch):
    """SIGSTOP: the server accepts connections and never answers. With 1 s request timeouts and 2 attempts the
    run ends in a few seconds with the one-line store error, never hanging (4 x 30 s by default)."""
    import os
    import signal
    import time

    from pixelprune_cli import api, errors
    from pixelprune_cli.run.job import RunOptions
    from pixelprune_cli.storage import filesystems

    bucket = s3.new_bucket()
    url = upload_folder(s3, bucket, SAMPLE_IMAGES[:2])
    monkeypatch.setattr(filesystems, "REQUEST_TIMEOUT", 1.0)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    filesystems.cached.cache_clear()  # filesystems made with the default timeouts
    os.killpg(s3.process.pid, signal.SIGSTOP)
    began = time.monotonic()
    try:
        with pytest.raises(errors.StoreUnavailable, match="unreachable or failing"):
            api.compress([url], str(tmp_path / "out.arrow"), run=RunOptions(progress=False))
    finally:
        os.killpg(s3.process.pid, signal.SIGCONT)
        filesystems.cached.cache_clear()
    assert time.monotonic() - began < 30
    assert not (tmp_path / "out.arrow").exists()


def test_show_writes_its_picture_to_the_store_and_restore_refuses_a_store_folder(s3, tmp_path):
    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES[:1])
    picture = f"s3://{bucket}/pictures/sheet.png"
    code, _, err = cli("show", images / SAMPLE_IMAGES[0].name, "-o", picture)
    assert code == 0, err
    with s3.filesystem().open_input_stream(f"{bucket}/pictures/sheet.png") as source:
        assert source.read(8) == b"\x89PNG\r\n\x1a\n"
    code, _, err = cli("show", images / SAMPLE_IMAGES[0].name, "-o", picture)
    assert code == 2 and "already exists" in err
    assert cli("compress", images, "-o", tmp_path / "out.arrow", "--no-progress")[0] == 0
    code, _, err = cli("restore", tmp_path / "out.arrow", "-o", f"s3://{bucket}/restored/")
    assert code == 2 and "local folder" in err
