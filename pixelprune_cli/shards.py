"""A folder of shards (`-o DIR/`): part-NNNNN files, a manifest, resume, and replacing an output safely.

Each shard of `shard_size` input positions is written as its own table file
(writer.TableFile) and error log, committed, then listed in manifest.json with
its size and SHA-256, so `--resume` keeps exactly the shards that are intact.
`--overwrite` writes into a staging folder inside DIR and moves it into place
only on commit; a lock file inside DIR keeps a second run off the folder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa

from .atomic import (
    AtomicFile,
    TargetLock,
    hold,
    let_go,
    output_errors,
    remove_stale_partials,
)
from .errors import ConfigError, option
from .manifest import (
    ERRORS,
    LOCK,
    MANIFEST,
    STAGING,
    SWAP,
    check_same,
    columns,
    intact,
    is_folder_file,
    is_shard_file,
    kept_and_damaged,
    read_manifest,
    shard_errors_name,
    shard_name,
    write_manifest,
)
from .records import FailedImage, Result, Resumed
from .shard_commit import DiskCommit, ShardCommit
from .writer import ErrorLog, RowSink, TableFile, compression_arg


def _remove_own_folder(folder: Path) -> None:
    """Empty a staging or swap folder of the files we write there, then remove it (left if anything else is inside)."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in folder.iterdir():
        if is_folder_file(entry.name) and not entry.is_dir():
            entry.unlink()
    remove_stale_partials(folder, is_folder_file)
    try:
        folder.rmdir()
    except OSError:
        pass


class ShardedSink(RowSink):
    """Rows to DIR/part-NNNNN.arrow, `shard_size` input images per shard, plus manifest.json.

    Shard k holds the images at input positions [k*shard_size, (k+1)*shard_size),
    so shard boundaries depend only on the inputs and a resumed run redoes
    exactly the shards that were not committed. Each shard and its
    part-NNNNN.errors.jsonl are renamed into place, then the manifest is
    rewritten (atomically) to list it with their sizes and SHA-256, which
    `--resume` checks before keeping a shard. A completed run also writes
    errors.jsonl with every failure.

    A run that replaces an existing output (--overwrite) writes into
    DIR/.pixelprune-staging instead, so the old output stays whole until the
    new one is complete. Its commit renames the staging folder to
    DIR/.pixelprune-swap (the commit point), then moves the new files over the
    old ones, manifest last; a run killed during that move has it finished by
    the next run on DIR. Only files with the writer's own names are ever
    removed.
    """

    def __init__(self, folder: str, schema: pa.Schema, meta: dict, shard_size: int, compression: str | None,
                 fmt: str = "arrow", resume: bool = False, overwrite: bool = False, manifest_extra: dict | None = None):
        super().__init__(schema)
        self.folder = Path(folder)
        self._describe(str(folder), meta, shard_size, compression, fmt, manifest_extra)
        with output_errors(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
        self.lock = TargetLock(self.folder / LOCK, str(folder))
        hold(self, self.abort)  # an interrupt before the caller's cleanup is set up still removes our staging
        try:
            with output_errors(self.folder):
                self._start(resume, overwrite)
        except BaseException:
            let_go(self)
            self.lock.release()
            raise
        self._track_progress()

    def _describe(self, name: str, meta: dict, shard_size: int, compression: str | None, fmt: str,
                  manifest_extra: dict | None) -> None:
        """What both sinks (disk, store) record of the output: its name in messages, its layout, no shard open."""
        self.name = name  # what messages call the folder (a store URL redacted)
        self.manifest_extra = manifest_extra or {}  # e.g. {"engine": "ray"}
        self.meta, self.shard_size, self.compression, self.fmt = meta, shard_size, compression, fmt
        self.layout = {"format": fmt, "shard_size": shard_size, "compression": compression_arg(compression) or "none",
                       "columns": columns(self.schema)}  # with `config`: everything that shapes the files
        self.current: int | None = None
        self.finished = False

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

    def _start(self, resume: bool, overwrite: bool) -> None:
        """Choose where this run writes (DIR, or its staging folder) and which committed shards it keeps."""
        self._finish_swap()  # a replacement a killed run had committed but not moved into place
        staging = self.folder / STAGING
        existing = self._read_manifest(self.folder) is not None or any(
            is_shard_file(p.name) for p in self.folder.iterdir())
        if resume and (staging / MANIFEST).is_file():
            self.dir = staging  # finish the interrupted replacement; the old output stays as it is
        elif resume or not existing:
            self.dir = self.folder
        elif not overwrite:
            raise ConfigError(f"{self.name} already holds a pixelprune output; pass {option('resume')} to finish it "
                              f"or {option('overwrite')} to replace it")
        else:
            self.dir = staging
        if self.dir != staging:
            _remove_own_folder(staging)
        manifest = self._read_manifest(self.dir) if resume else None
        if manifest is None and resume and any(is_shard_file(p.name) for p in self.dir.iterdir()):
            raise ConfigError(f"{self.name} holds shards but no {MANIFEST}; pass {option('overwrite')} instead of "
                              f"{option('resume')} to start again")
        self.shards: list[dict] = []  # manifest records of the committed shards kept
        self.damaged: list[str] = []  # file names of those that failed their check, redone
        if manifest is not None:
            self._check_same(manifest)
            records = manifest["shards"]
            self.shards, damaged = kept_and_damaged(records, [self._intact(r) for r in records])
            for record in damaged:  # torn, bit-flipped or missing: redone; only our own names are removed
                for name in (record.get("file"), record.get("errors")):
                    if isinstance(name, str) and is_shard_file(name):
                        (self.dir / name).unlink(missing_ok=True)
            self.damaged = [str(r.get("file")) for r in damaged]
        if self.dir == staging:
            if manifest is None:
                _remove_own_folder(staging)
            staging.mkdir(exist_ok=True)
        remove_stale_partials(self.dir, is_folder_file)
        if not self.shards or self.damaged:
            self._write_manifest(complete=False)  # resuming leaves intact files alone until a shard is done

    def _check_same(self, manifest: dict) -> None:
        """Refuse (ConfigError) to resume with options that would write different files."""
        check_same(self.name, manifest, self.meta, self.layout)

    def _intact(self, record: dict) -> bool:
        return intact(self.dir, record, self.fmt)

    def _finish_swap(self) -> None:
        """Move a committed replacement into place: its files over the old ones, the manifest last. Repeatable."""
        swap = self.folder / SWAP
        if not swap.is_dir() or swap.is_symlink():
            return
        try:
            manifest = self._read_manifest(swap)
        except ConfigError:  # cannot happen to a manifest we renamed there whole; leave the old output as it is
            manifest = None
        if manifest is not None:
            names = (s.get(key) for s in manifest["shards"] for key in ("file", "errors"))
            new = {MANIFEST, ERRORS, *(n for n in names if isinstance(n, str) and is_shard_file(n))}
            for old in self.folder.iterdir():
                if is_shard_file(old.name) and old.name not in new and not old.is_dir():
                    old.unlink()
            for name in sorted(new - {MANIFEST}) + [MANIFEST]:
                if (swap / name).is_file():
                    os.replace(swap / name, self.folder / name)
        _remove_own_folder(swap)

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
    def shard_dir(self) -> Path:
        """The folder this run writes shard files into (DIR itself, or its staging folder when replacing)."""
        return self.dir

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
        """The names of shard `index`'s table and error log in this run."""
        return shard_name(index, self.fmt), shard_errors_name(index)

    def _committer(self) -> ShardCommit:
        """How a finished shard reaches the folder (shard_commit): sealed in place in DIR or its staging folder."""
        return DiskCommit(self.dir)

    def _open_shard(self, index: int) -> None:
        folder = self._committer().writing_dir()
        table = TableFile(folder / shard_name(index, self.fmt), self.schema, self.fmt, self.compression)
        try:
            self.errors = ErrorLog(folder / shard_errors_name(index))
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
        checksums = self._committer().commit(Path(table.file.target), Path(errors.file.target), self.shard_names(index))
        self.record_shard(index, self.counts["images"], self.counts["failed"], self._ids.hexdigest(), checksums)

    def commit(self) -> None:
        self._close_shard()
        self.verify_resumed()
        with output_errors(self.folder):
            merged = AtomicFile(self.dir / ERRORS, "wb")
            try:
                for shard in sorted(self.shards, key=lambda s: s["index"]):
                    merged.handle.write((self.dir / shard["errors"]).read_bytes())
            except BaseException:
                merged.abort()
                raise
            merged.commit()
            self._write_manifest(complete=True)
            if self.dir != self.folder:
                os.rename(self.dir, self.folder / SWAP)  # the commit point of a replacement
                self._finish_swap()
            else:
                listed = {n for s in self.shards for n in (s["file"], s["errors"])}
                for old in self.folder.iterdir():  # shards a torn earlier run left, not part of this output
                    if is_shard_file(old.name) and old.name not in listed and not old.is_dir():
                        old.unlink()
                remove_stale_partials(self.folder, is_folder_file)
        self.finished = True
        let_go(self)
        self.lock.release()

    def abort(self) -> None:
        """Drop the shard in progress; committed shards stay for --resume (a replacing run's in its staging folder)."""
        if self.finished:
            return
        try:
            if self.current is not None:
                table, errors = self._parts()
                table.abort()
                errors.abort()
                self.current = None
            if self.dir != self.folder and not self.shards:
                _remove_own_folder(self.dir)  # a replacement that committed nothing leaves no trace
        except OSError:
            pass
        finally:
            let_go(self)
            self.lock.release()

    @staticmethod
    def _read_manifest(folder: Path) -> dict | None:
        return read_manifest(folder)

    def _write_manifest(self, complete: bool) -> None:
        write_manifest(self.dir, self.meta, self.layout, self.shards, complete, self.manifest_extra)
