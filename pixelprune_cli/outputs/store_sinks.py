"""Outputs on a store: one object (`StoreFileSink`), and a shard folder's store side (`StoreFolder`, `StoreShardSink`).

How a store commits without rename or lock is in objectstore.py's docstring;
this module does it. Everything goes through `storage`.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from pixelprune_cli.errors import ConfigError, option
from pixelprune_cli.outputs.formats import output_format
from pixelprune_cli.outputs.manifest import ERRORS, MANIFEST, STORE_SHARD, is_store_shard, parse_manifest
from pixelprune_cli.outputs.objectstore import (
    LEASE_SECONDS,
    PENDING,
    check_stored_target,
    describe_run,
    may_be_writing,
    new_run,
)
from pixelprune_cli.outputs.shard_commit import StoreCommit
from pixelprune_cli.outputs.shards import ShardedSink
from pixelprune_cli.outputs.writer import ErrorLog, RowSink, TableFile, errors_path
from pixelprune_cli.storage import storage, urls
from pixelprune_cli.storage.atomic import hold, let_go
from pixelprune_cli.storage.spool import spool_dir

CHECK_THREADS = 8  # shards checksummed at once on --resume: each is one streaming GET


class StoreFileSink(RowSink):
    """Rows to one object (URL.arrow / URL.parquet), errors to URL.errors.jsonl, each uploaded whole on commit.

    The table is built in a local spool folder and uploaded last: the error
    log goes up first, so a run stopped between the two leaves the previous
    table (if any) with the new run's error log, never a partial table.
    """

    def __init__(self, target: str, schema: pa.Schema, compression: str | None, overwrite: bool = False):
        super().__init__(schema)
        self.target = target
        self.spool = spool_dir()
        hold(self, self.abort)
        try:
            check_stored_target(target, overwrite)  # again: another run may have finished it meanwhile
            local = Path(self.spool) / urls.name_of(target)
            self.table = TableFile(local, schema, output_format(target).name, compression)
            self.errors = ErrorLog(errors_path(str(local)))
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        self.flush()
        table, errors = self._parts()
        try:
            table.commit()
            errors.commit()
            storage.put_file(str(errors.file.target), self.target + ".errors.jsonl")
            storage.put_file(str(table.file.target), self.target)
        finally:
            self.abort()

    def abort(self) -> None:
        for part in (self.table, self.errors):
            if part is not None:
                part.abort()
        shutil.rmtree(self.spool, ignore_errors=True)
        let_go(self)


class StoreFolder:
    """The store side of a shard folder (shards.ShardFolder): no rename and no lock, so the manifest does both.

    See objectstore.py's docstring for the protocol. Shards are written in a
    local spool folder, uploaded whole under this run's names (StoreCommit),
    and listed in the manifest (or, when replacing, the pending manifest)
    after each one. Each manifest write first reads back the one this run
    wrote last: a changed one means another run claimed the folder.
    """

    claims_by_manifest = True  # the first manifest write claims the folder: a second writer now sees this run

    def __init__(self, folder: str):
        self.url = folder.rstrip("/")
        self.name = urls.shown(self.url)
        self.run = new_run()
        self.spool = spool_dir()
        self.store_commit = StoreCommit(self.url, self.spool)  # .uploaded: names not yet listed in a manifest of ours
        self.committed = False

    @property
    def shard_dir(self) -> str:
        return self.url

    def committer(self) -> StoreCommit:
        return self.store_commit  # built in the spool, uploaded whole once sealed

    def new_names(self, index: int, fmt: str) -> tuple[str, str]:
        stem = f"part-{index:05d}-{self.run['id']}"
        return f"{stem}.{fmt}", f"{stem}.errors.jsonl"

    # -- where the progress manifest lives, and the check that no other run wrote it meanwhile
    def open(self, resume: bool, overwrite: bool) -> dict | None:
        manifest_url, pending_url = urls.join(self.url, MANIFEST), urls.join(self.url, PENDING)
        current_bytes, pending_bytes = storage.read_small(manifest_url), storage.read_small(pending_url)
        current = None if current_bytes is None else parse_manifest(current_bytes, manifest_url)
        pending = None if pending_bytes is None else parse_manifest(pending_bytes, pending_url)
        self.replaced: dict | None = None  # the manifest a replacing run replaces on commit
        self.abandoned: dict | None = None  # a killed replacement's pending manifest, whose shards go on commit
        self.replaced_bytes = current_bytes
        # Runs whose leftovers (shards uploaded but never listed) this run may sweep once it commits: each
        # is dead, or will be refused at its next manifest write, since this run's commit replaces what it saw.
        self.stale_runs = {m["run"].get("id") for m in (current, pending) if m and isinstance(m.get("run"), dict)}
        self.stale_runs.update(_names(pending, "stale_runs"))  # those a killed replacement had not swept yet
        base: dict | None
        if resume and pending is not None:
            self.replacing, base = True, pending  # finish the interrupted replacement; the old output stays
        elif resume or current is None:
            self.replacing, base = False, current
        elif not overwrite:
            by = "" if current.get("complete", True) else f" that {describe_run(current.get('run'))} has not finished"
            raise ConfigError(f"{self.name} already holds a pixelprune output{by}; pass {option('resume')} to finish "
                              f"it (once no run is writing it) or {option('overwrite')} to replace it")
        else:
            self.replacing, base = True, None
            if pending is not None and may_be_writing(pending):
                raise ConfigError(f"{self.name} is being replaced by {describe_run(pending.get('run'))}; wait for it "
                                  f"to finish (or, if it was killed, for its lease to run out: "
                                  f"{LEASE_SECONDS / 60:g} minutes after its last shard), or write elsewhere")
            self.abandoned = pending  # a killed replacement: its shards are deleted once this run commits
            if pending is not None:  # and its runs' shards by the sweep, should this run be killed too
                self.stale_runs.update(m.group(2) for m in map(STORE_SHARD.fullmatch, _listed_names(pending)) if m)
        if self.replacing:
            self.replaced = current
        self.progress_url = pending_url if self.replacing else manifest_url
        self.expected = pending_bytes if self.replacing else current_bytes
        self.orphans: set[str] = set()  # shards where no manifest is: the local folder's rule, replaced on commit
        if current is None and base is None and not self.replacing:
            self.orphans = {n for n, _ in storage.list_files(self.url) if is_store_shard(n)}
            if self.orphans and (resume or not overwrite):
                raise ConfigError(f"{self.name} holds shards but no {MANIFEST}; pass {option('overwrite')} to "
                                  "replace them" + (f" instead of {option('resume')}" if resume else ""))
        if current is not None:  # what the last committed run was killed before cleaning up
            self._delete_names(_names(current, "replaces"), keep=current)
            self._sweep(_names(current, "stale_runs") - self.stale_runs, _listed_names(current))
        return base

    def intact(self, records: list[dict], fmt: str) -> list[bool]:
        with ThreadPoolExecutor(CHECK_THREADS) as pool:
            return list(pool.map(self._intact, records))

    def _intact(self, record: dict) -> bool:
        """A listed shard is kept only under a shard name, with the size and SHA-256 the manifest holds."""
        index = record.get("index")
        if not isinstance(index, int) or index < 0:
            return False
        for name, size, digest in ((record.get("file"), record.get("bytes"), record.get("sha256")),
                                   (record.get("errors"), record.get("errors_bytes"), record.get("errors_sha256"))):
            if not isinstance(name, str) or size is None:
                return False
            number = re.match(r"part-(\d+)[-.]", name) if is_store_shard(name) else None
            if number is None or int(number.group(1)) != index:
                return False  # only a shard name, and one of its own index
            url = urls.join(self.url, name)
            if storage.size(url) != size or storage.sha256_of(url) != (size, digest):
                return False
        return True

    def drop(self, damaged: list[dict]) -> None:
        """Nothing now: a damaged shard's files go with its run's unlisted ones in the sweep on commit."""

    def stamp(self) -> dict:
        return {"run": self.run, "renewed": round(time.time(), 3)}  # the lease: a replacing run waits while fresh

    def _put_manifest(self, url: str, data: bytes, expected: bytes | None) -> None:
        """PUT data at url unless another run wrote there since we last looked; ConfigError (exit 2) naming it."""
        now = storage.read_small(url)
        if now != expected:
            try:
                other = json.loads(now).get("run") if now is not None else None
            except (ValueError, AttributeError):
                other = None
            what = describe_run(other) if now is not None else "another run, which removed it"
            raise ConfigError(f"{self.name} is being written by {what}; this run stopped without committing: "
                              "wait for it to finish, or write elsewhere")
        storage.put_bytes(url, data)

    def _manifest_bytes(self, manifest: dict, replaces: list[str] | None = None) -> bytes:
        manifest = dict(manifest)
        if replaces:  # the replaced output's files, deleted after this commit (again by the next run if cut short)
            manifest["replaces"] = replaces
        if self.stale_runs:  # runs whose unlisted shards are swept on commit (again by the next run if cut short)
            manifest["stale_runs"] = sorted(self.stale_runs)
        return json.dumps(manifest, indent=1).encode() + b"\n"

    def write_manifest(self, manifest: dict) -> None:
        data = self._manifest_bytes(manifest)
        self._put_manifest(self.progress_url, data, self.expected)
        self.expected = data
        self.store_commit.uploaded.clear()

    def commit(self, manifest: dict, error_logs: Iterable[str]) -> None:
        merged = Path(self.spool) / ERRORS
        with merged.open("wb") as out:
            for name in error_logs:
                out.write(storage.read_small(urls.join(self.url, name)) or b"")
        listed = _listed_names(manifest)
        replaces = None
        if self.replacing and self.replaced is not None:  # its own "replaces" were deleted when this run started
            replaces = sorted(n for n in _listed_names(self.replaced) if is_store_shard(n) and n not in listed)
        elif self.orphans - listed:
            replaces = sorted(self.orphans - listed)
        data = self._manifest_bytes(manifest, replaces=replaces)
        if self.replacing:
            self._put_manifest(self.progress_url, data, self.expected)  # the pending one: still ours?
            self._put_manifest(urls.join(self.url, MANIFEST), data, self.replaced_bytes)  # the commit point
        else:
            self._put_manifest(self.progress_url, data, self.expected)  # the commit point
        self.expected = data
        self.store_commit.uploaded.clear()
        self.committed = True
        storage.put_file(str(merged), urls.join(self.url, ERRORS))
        self._delete_names(set(replaces or ()) | _listed_names(self.abandoned or {"shards": []}), keep=json.loads(data))
        if self.replacing:
            storage.delete(self.progress_url)
        self._sweep(self.stale_runs | {self.run["id"]}, listed)

    def _sweep(self, runs: set[str], listed: set[str]) -> None:
        """Delete shards that these runs uploaded but never listed (a kill between an upload and the manifest
        write leaves one): this run's, and those of runs whose manifest it replaced, which are dead or will be
        refused at their next manifest write. A listing finds them; nothing else trusts it."""
        if not runs:
            return
        for name, _ in storage.list_files(self.url):
            match = STORE_SHARD.fullmatch(name)
            if match and match.group(2) in runs and name not in listed:
                storage.delete(urls.join(self.url, name))

    def abort(self, committed_shards: bool) -> None:
        """Delete any upload not yet listed; listed shards stay for --resume. Never raises."""
        if self.committed:
            return
        try:
            for name in self.store_commit.uploaded:
                storage.delete(urls.join(self.url, name))
            self.store_commit.uploaded.clear()
            if self.replacing and not committed_shards and storage.read_small(self.progress_url) == self.expected:
                storage.delete(self.progress_url)  # a replacement that committed nothing leaves no trace
        except Exception:
            pass

    def release(self) -> None:
        shutil.rmtree(self.spool, ignore_errors=True)

    def _delete_names(self, names: set[str], keep: dict | None) -> None:
        """Delete these files unless `keep` lists them: only names pixelprune gives its shards, never a path."""
        kept = _listed_names(keep) if keep is not None else set()
        for name in sorted(names):
            if is_store_shard(name) and name not in kept:
                storage.delete(urls.join(self.url, name))


class StoreShardSink(ShardedSink):
    """A shard folder on a store: the one shard sink, with the store's way to claim, commit and clean up."""

    place_type = StoreFolder


def _names(manifest: dict | None, key: str) -> set[str]:
    """A list of names a manifest keeps under `key` ("replaces", "stale_runs"), as a set of strings."""
    values = (manifest or {}).get(key)
    return {v for v in values if isinstance(v, str)} if isinstance(values, list) else set()


def _listed_names(manifest: dict) -> set[str]:
    """Every file name a manifest lists (shards and their error logs)."""
    return {n for s in manifest["shards"] for n in (s.get("file"), s.get("errors")) if isinstance(n, str)}
