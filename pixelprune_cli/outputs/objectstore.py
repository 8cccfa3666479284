"""Outputs on an object store (s3://, gs://, ...): how they commit, and reading them back (the sinks: store_sinks.py).

Everything here goes through `storage`, the one seam to files a user names.
A store has atomic whole-object PUTs but no rename and no lock, so outputs
are committed the way Delta Lake and Iceberg commit tables:

- Every object is written whole (`storage.put_file`): a shard, its error log
  and a single-file output are built in a local spool folder, then uploaded.
- Shards carry the writing run's id in their names (`part-00003-<run>.arrow`),
  so no run ever writes over another run's shard.
- `manifest.json`, listing every shard with its size and SHA-256, is the
  commit. Readers, `stats` and `--resume` trust the manifest and never a
  listing; `--resume` redoes shards that are missing or fail their checksum.
- `--overwrite` records its progress in `.pixelprune-pending.json`, not in the
  manifest, so readers keep seeing the old output whole; its commit replaces
  the manifest, and only then deletes the old shards.
- There is no lock: before each manifest write the run checks that the
  object it is about to replace is the one it last wrote (or saw at start),
  and refuses (exit 2), naming the other run, when it is not.
- Each manifest a run writes carries `renewed` (when it was written), a
  lease: a second `--overwrite` refuses to start over a pending replacement
  whose lease is fresh (LEASE_SECONDS), unless its run is proven dead (same
  host, process gone). It never deletes what a live run may still commit.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

from pixelprune_cli.errors import ConfigError, option
from pixelprune_cli.storage import storage, urls
from pixelprune_cli.storage.spool import spool_dir

LEASE_SECONDS = 600.0  # a run that wrote no manifest for this long is taken for dead (each shard renews it)
PENDING = ".pixelprune-pending.json"  # a replacing (--overwrite) run's manifest until it commits


def new_run() -> dict:
    """Who is writing: what a second writer's refusal names."""
    return {"id": os.urandom(6).hex(), "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def may_be_writing(manifest: dict) -> bool:
    """Whether the run that wrote `manifest` may still be writing: its lease is fresh and it is not proven dead.

    Proven dead: it ran on this host, in another process, and that process
    is gone (or its pid now belongs to a later process). A run in this very
    process, or on another host, is judged by its lease alone.
    """
    from pixelprune_cli.storage.atomic import (
        _may_be_writing,  # the local partials' liveness test, PID-reuse guard included
    )

    renewed, run = manifest.get("renewed"), manifest.get("run")
    if not isinstance(renewed, (int, float)) or isinstance(renewed, bool):
        return False  # written by a version without leases: as before, taken for a killed run
    if isinstance(run, dict) and run.get("host") == socket.gethostname() and isinstance(run.get("pid"), int) \
            and run["pid"] != os.getpid() and not _may_be_writing(run["pid"], float(renewed)):
        return False
    return time.time() - renewed < LEASE_SECONDS


def describe_run(run: object) -> str:
    if not isinstance(run, dict):
        return "another pixelprune run"
    return f"run {run.get('id')} on {run.get('host')}, pid {run.get('pid')}, started {run.get('started')}"


# ------------------------------------------------------------------ reading outputs back

def is_folder(url: str) -> bool:
    """`-o URL/` (a trailing slash), or a URL that is a folder on the store."""
    return url.endswith("/") or storage.kind(url) == "folder"


def check_stored_target(url: str, overwrite: bool) -> None:
    """Refuse (exit 2) to replace an existing object unless asked, or to code anything for a place the store will
    not let us write (a read-only identity): a shard folder finds that at its first manifest write, a file here."""
    if not overwrite and storage.kind(url) != "missing":
        raise ConfigError(f"{urls.shown(url)} already exists; pass {option('overwrite')} to replace it")
    storage.check_writable(url)


def write_object(url: str, write) -> None:
    """write(handle) into a local spool file, then uploaded whole to url (show's PNG, for one)."""
    spool = spool_dir()
    try:
        local = Path(spool) / urls.name_of(url)
        with local.open("wb") as handle:
            write(handle)
        storage.put_file(str(local), url)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


