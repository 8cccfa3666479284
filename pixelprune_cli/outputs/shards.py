"""A folder of shards (`-o DIR/` or `-o URL/`): part-* files, a manifest, resume, and replacing an output safely.

Each shard of `shard_size` input positions is written as its own table file
(writer.TableFile) and error log, committed (shard_commit), then listed in
manifest.json with its size and SHA-256, so `--resume` keeps exactly the
shards that are intact. The manifest is the commit on a disk as on a store;
readers trust only what it lists. `ShardedSink` is the one sink for both;
what differs (a lock and renames on a disk, a claimed and read-back manifest
and uploads on a store) is its `ShardFolder` strategy: disk_folder.DiskFolder,
store_sinks.StoreFolder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar, Protocol

import pyarrow as pa

from pixelprune_cli.errors import ConfigError, option
from pixelprune_cli.outputs.disk_folder import DiskFolder
from pixelprune_cli.outputs.manifest import check_same, columns, kept_and_damaged, manifest_record
from pixelprune_cli.outputs.shard_commit import ShardCommit
from pixelprune_cli.outputs.writer import ErrorLog, RowSink, TableFile, compression_arg
from pixelprune_cli.records import FailedImage, Result, Resumed
from pixelprune_cli.storage.atomic import hold, let_go


class ShardFolder(Protocol):
    """Where a shard folder lives, and the few steps a disk and a store do differently."""

    name: str  # what messages call the folder (a store URL redacted)
    claims_by_manifest: bool  # no lock: the first manifest write claims the folder (a store)

    def __init__(self, folder: str) -> None:
        """The folder as the user named it (a path, or a URL for a store)."""
        ...

    @property
    def shard_dir(self) -> Path | str:
        """Where whole shards go (engines that write them: ray.py): a local folder, or a folder URL."""
        ...

    def open(self, resume: bool, overwrite: bool) -> dict | None:
        """Claim the folder, finish what a killed run left, and return the manifest to resume from (None: none).
        ConfigError when the folder holds an output this run may not touch."""
        ...

    def intact(self, records: list[dict], fmt: str) -> list[bool]:
        """For each listed shard: are its files there with the size and SHA-256 listed?"""
        ...

    def drop(self, damaged: list[dict]) -> None:
        """Forget the files of listed shards that failed their check (they are redone)."""
        ...

    def new_names(self, index: int, fmt: str) -> tuple[str, str]:
        """The names this run gives shard `index`'s table and error log."""
        ...

    def committer(self) -> ShardCommit:
        """How a finished shard reaches the folder (shard_commit)."""
        ...

    def stamp(self) -> dict:
        """Fields this kind of folder adds to every manifest it writes (a store: the run and its lease)."""
        ...

    def write_manifest(self, manifest: dict) -> None:
        """Record progress (complete=False): the manifest, written whole."""
        ...

    def commit(self, manifest: dict, error_logs: Iterable[str]) -> None:
        """The complete manifest (the commit point) and errors.jsonl merged from `error_logs`; then clean up."""
        ...

    def abort(self, committed_shards: bool) -> None:
        """Drop what the run wrote but did not list; listed shards stay for --resume. Never raises."""
        ...

    def release(self) -> None:
        """Let go of the folder (a lock, a spool folder). Repeatable."""
        ...


class ShardedSink(RowSink):
    """Rows to FOLDER/part-*.arrow (or .parquet), `shard_size` input images per shard, plus manifest.json.

    Shard k holds the images at input positions [k*shard_size, (k+1)*shard_size),
    so shard boundaries depend only on the inputs and a resumed run redoes
    exactly the shards that were not committed. Each shard and its error log
    are committed (shard_commit), then the manifest is rewritten whole to list
    them with their sizes and SHA-256, which `--resume` checks before keeping a
    shard. A completed run also writes errors.jsonl with every failure. Where
    the folder is, and how it is claimed and replaced, is `place_type`'s.
    """

    place_type: ClassVar[type[ShardFolder]] = DiskFolder

    def __init__(self, folder: str, schema: pa.Schema, meta: dict, shard_size: int, compression: str | None,
                 fmt: str = "arrow", resume: bool = False, overwrite: bool = False, manifest_extra: dict | None = None):
        super().__init__(schema)
        self.place = type(self).place_type(folder)
        self.name = self.place.name
        self.manifest_extra = manifest_extra or {}  # e.g. {"engine": "ray"}
        self.meta, self.shard_size, self.compression, self.fmt = meta, shard_size, compression, fmt
        self.layout = {"format": fmt, "shard_size": shard_size, "compression": compression_arg(compression) or "none",
                       "columns": columns(self.schema)}  # with `config`: everything that shapes the files
        self.current: int | None = None
        self.finished = False
        self.shards: list[dict] = []  # manifest records of the committed shards kept
        self.damaged: list[str] = []  # file names of those that failed their check, redone
        hold(self, self.abort)  # an interrupt before the caller's cleanup is set up still undoes our start
        try:
            self._start(resume, overwrite)
        except BaseException:
            let_go(self)
            self.place.release()
            raise
        self._track_progress()

    def _start(self, resume: bool, overwrite: bool) -> None:
        """Claim the folder and keep the committed shards that are intact (on --resume)."""
        manifest = self.place.open(resume, overwrite)
        if manifest is not None:
            check_same(self.name, manifest, self.meta, self.layout)
            records = manifest["shards"]
            self.shards, damaged = kept_and_damaged(records, self.place.intact(records, self.fmt))
            self.place.drop(damaged)
            self.damaged = [str(r.get("file")) for r in damaged]
        if self.place.claims_by_manifest or not self.shards or self.damaged:
            self._write_manifest(complete=False)  # a lock claims a disk folder: resuming leaves intact files alone

    def _track_progress(self) -> None:
        """What the run keeps besides its files: the shards it kept, and the ids it has seen (for resume checks)."""
        self.done = {s["index"] for s in self.shards}
        self.resumed = Resumed(shards=len(self.shards), images=sum(s["images"] for s in self.shards),
                               failed=sum(s["failed"] for s in self.shards), damaged=tuple(self.damaged))
        self._seen: dict[int, hashlib._Hash] = {}
        self._seen_count: dict[int, int] = {}
        self._verified: set[int] = set()
        self._ids = hashlib.sha1()
        self.counts = {"images": 0, "written": 0, "failed": 0}

    # -- which inputs to skip on resume
    def skipper(self) -> Callable[[int, str], bool] | None:
        return self.skips if self.done else None

    def skips(self, position: int, image_id: str) -> bool:
        """True for inputs of committed shards, whose ids are hashed for `verify_resumed`.

        Inputs come in order, so when shard k is opened every committed shard
        before k has had all its ids seen; those after k (a shard missing in
        the middle, or a folder a Ray run left) are checked later, at the
        latest on commit.
        """
        shard = position // self.shard_size
        if shard not in self.done:
            return False
        digest = self._seen.setdefault(shard, hashlib.sha1())
        digest.update(image_id.encode() + b"\n")
        self._seen_count[shard] = self._seen_count.get(shard, 0) + 1
        return True

    def verify_resumed(self, before: int | None = None) -> None:
        """Refuse (ConfigError) when a committed shard's inputs changed; only shards before `before` if given."""
        for record in self.shards:
            k = record["index"]
            if k in self._verified or (before is not None and k >= before):
                continue
            seen = self._seen.get(k)
            if seen is None or self._seen_count[k] != record["images"] or seen.hexdigest() != record.get("ids_sha1"):
                raise ConfigError(
                    f"{self.name}: the inputs changed since {record['file']} was written (its images differ); "
                    f"resume needs the same inputs, or pass {option('overwrite')} instead of {option('resume')} to start "
                    "again"
                )
            self._verified.add(k)

    def add_at(self, position: int, result: Result) -> None:
        shard = position // self.shard_size
        if shard != self.current:
            self._close_shard()
            self.verify_resumed(before=shard)
            self._open_shard(shard)
        self._ids.update(result.id.encode() + b"\n")
        self.counts["images"] += 1
        self.counts["failed" if isinstance(result, FailedImage) else "written"] += 1
        self.add(result)

    # -- for engines that write whole shards themselves (ray.py): where, which, and recording them
    @property
    def shard_dir(self) -> Path | str:
        """Where this run writes whole shards: a local folder (DIR, or its staging folder), or a folder URL."""
        return self.place.shard_dir

    def committed(self, shard_ids: Callable[[int], Iterable[str]]) -> set[int]:
        """Indices of the shards already committed, once each one's ids are checked against `shard_ids(k)`.

        Raises ConfigError when the inputs of a committed shard changed, as
        the local mode does before its first new shard.
        """
        for k in sorted(self.done):
            for offset, image_id in enumerate(shard_ids(k)):
                self.skips(k * self.shard_size + offset, image_id)
        self.verify_resumed()
        return set(self.done)

    def record_shard(self, index: int, images: int, failed: int, ids_sha1: str, checksums: dict) -> None:
        """List a committed shard in the manifest, with the checksums its commit (shard_commit) gave."""
        file, errors = self.shard_names(index)
        self.shards.append({"index": index, "file": file, "errors": errors,
                            "images": images, "written": images - failed, "failed": failed, "ids_sha1": ids_sha1,
                            **checksums})
        self.done.add(index)
        self._verified.add(index)  # written in this run: nothing to check against
        self._write_manifest(complete=False)

    def shard_names(self, index: int) -> tuple[str, str]:
        """The names of shard `index`'s table and error log in this run (a kept shard keeps its own)."""
        for record in self.shards:
            if record["index"] == index:
                return record["file"], record["errors"]
        return self.place.new_names(index, self.fmt)

    def _open_shard(self, index: int) -> None:
        folder = self.place.committer().writing_dir()
        table_name, errors_name = self.shard_names(index)
        table = TableFile(folder / table_name, self.schema, self.fmt, self.compression)
        try:
            self.errors = ErrorLog(folder / errors_name)
        except BaseException:
            table.abort()
            raise
        self.table, self.current = table, index
        self.counts = {"images": 0, "written": 0, "failed": 0}
        self._ids = hashlib.sha1()

    def _close_shard(self) -> None:
        if self.current is None:
            return
        self.flush()
        table, errors = self._parts()
        table.commit()
        errors.commit()
        index, self.current = self.current, None
        checksums = self.place.committer().commit(Path(table.file.target), Path(errors.file.target),
                                                  self.shard_names(index))
        self.record_shard(index, self.counts["images"], self.counts["failed"], self._ids.hexdigest(), checksums)

    def commit(self) -> None:
        self._close_shard()
        self.verify_resumed()
        listed = sorted(self.shards, key=lambda s: s["index"])
        self.place.commit(self._manifest(complete=True), [s["errors"] for s in listed])
        self.finished = True
        let_go(self)
        self.place.release()

    def abort(self) -> None:
        """Drop the shard in progress and anything written but not listed; listed shards stay for --resume."""
        if self.finished:
            return
        try:
            if self.current is not None:
                table, errors = self._parts()
                table.abort()
                errors.abort()
                self.current = None
        except Exception:  # an abort runs while another error propagates: never hide it
            pass
        finally:
            try:
                self.place.abort(committed_shards=bool(self.shards))
            finally:
                let_go(self)
                self.place.release()

    def _manifest(self, complete: bool) -> dict:
        return manifest_record(self.meta, self.layout, self.shards, complete, {**self.manifest_extra,
                                                                               **self.place.stamp()})

    def _write_manifest(self, complete: bool) -> None:
        self.place.write_manifest(self._manifest(complete))
