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
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

from . import storage
from .errors import ConfigError, InputError, option
from .formats import TABLE_FORMATS
from .manifest import MANIFEST, is_shard_file, listed_files

PENDING = ".pixelprune-pending.json"  # a replacing (--overwrite) run's manifest until it commits
STORE_SHARD = re.compile(rf"part-(\d{{5,}})-([0-9a-f]{{12}})\.({'|'.join(TABLE_FORMATS)}|errors\.jsonl)")


def is_store_shard(name: str) -> bool:
    """A name a store run gives its shards (part-NNNNN-RUN.arrow, ...), or a local one (copied up with a sync tool)."""
    return STORE_SHARD.fullmatch(name) is not None or is_shard_file(name)


def new_run() -> dict:
    """Who is writing: what a second writer's refusal names."""
    return {"id": os.urandom(6).hex(), "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def describe_run(run: object) -> str:
    if not isinstance(run, dict):
        return "another pixelprune run"
    return f"run {run.get('id')} on {run.get('host')}, pid {run.get('pid')}, started {run.get('started')}"


# ------------------------------------------------------------------ reading outputs back

def read_manifest(folder: str) -> dict | None:
    """A folder's manifest, None when it has none; ConfigError for a manifest.json that is not ours."""
    data = storage.read_small(storage.join(folder, MANIFEST))
    return None if data is None else parse_manifest(data, storage.join(folder, MANIFEST))


def parse_manifest(data: bytes, url: str) -> dict:
    try:
        manifest = json.loads(data)
    except ValueError:
        manifest = None
    if not (isinstance(manifest, dict) and isinstance(manifest.get("config"), dict)
            and isinstance(manifest.get("shards"), list) and all(isinstance(s, dict) for s in manifest["shards"])):
        raise ConfigError(f"{storage.shown(url)} is not a pixelprune manifest; pixelprune replaces only its own files: "
                          "move it, or write elsewhere")
    return manifest


def is_folder(url: str) -> bool:
    """`-o URL/` (a trailing slash), or a URL that is a folder on the store."""
    return url.endswith("/") or storage.kind(url) == "folder"


def output_files(url: str) -> list[str]:
    """The table files of an output on a store: the shards its manifest lists (never a listing), or the file itself."""
    if not is_folder(url):
        if storage.kind(url) == "missing":
            raise InputError(f"{storage.shown(url)}: no such file or folder")
        return [url]
    manifest = read_manifest(url)
    if manifest is None:
        raise InputError(f"{storage.shown(url)}: no {MANIFEST}; a shard folder on a store is read through its manifest")
    return [storage.join(url, n) for n in listed_files(manifest, storage.shown(url), is_store_shard)]


def incomplete_note(url: str) -> str | None:
    """A warning when a store folder's manifest says its run has not finished, else None."""
    if not is_folder(url):
        return None
    manifest = read_manifest(url)
    if manifest is None or manifest.get("complete", True):
        return None
    return (f"{storage.shown(url)} is incomplete: the run that writes it has not finished "
            f"({len(manifest['shards'])} shards, {manifest.get('images', 0):,} images committed); finish it with "
            f"`pixelprune compress ... -o {storage.shown(url)} --resume`")


def written_bytes(url: str) -> int | None:
    """Bytes of a finished output on a store: the file, or the shards and error logs its manifest lists."""
    if not is_folder(url):
        return storage.size(url)
    manifest = read_manifest(url) or {"shards": []}
    return sum(int(s.get("bytes", 0)) + int(s.get("errors_bytes", 0)) for s in manifest["shards"])


def check_stored_target(url: str, overwrite: bool) -> None:
    """Refuse (exit 2) to replace an existing object unless asked."""
    if not overwrite and storage.kind(url) != "missing":
        raise ConfigError(f"{storage.shown(url)} already exists; pass {option('overwrite')} to replace it")


def write_object(url: str, write) -> None:
    """write(handle) into a local spool file, then uploaded whole to url (show's PNG, for one)."""
    spool = storage.spool_dir()
    try:
        local = Path(spool) / storage.name_of(url)
        with local.open("wb") as handle:
            write(handle)
        storage.put_file(str(local), url)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


