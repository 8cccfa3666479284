"""Where rows go: one Arrow/Parquet file, an Arrow stream on stdout, or a folder of shards.

Files are written batch by batch to a hidden temporary file beside the target
and renamed into place only when complete, so a reader never sees a partial
output under the final name. Failed images go to `<output>.errors.jsonl`
(one JSON object per line: id, stage, reason).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pyarrow as pa

from .errors import ConfigError

ARROW_SUFFIXES = (".arrow", ".ipc", ".feather")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Measured on the bench corpus (README, "Performance"): zstd gives the smallest
# files (1.7x the source PNGs) and, written on a background thread, costs no more
# wall time than lz4 (2.1x) or none (11.9x).
DEFAULT_COMPRESSION = "zstd"
MANIFEST = "manifest.json"


def output_format(path: str) -> str:
    """'arrow' or 'parquet', from the file name."""
    suffix = Path(path).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return "arrow"


def errors_path(output: str) -> Path:
    return Path(str(output) + ".errors.jsonl")


def _temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial-{os.getpid()}")


def compression_arg(compression: str | None):
    return None if compression in (None, "none", "uncompressed") else compression


class AtomicFile:
    """A file under a temporary name until commit() renames it into place."""

    def __init__(self, target: Path, mode: str = "wb"):
        self.target = Path(target)
        self.temp = _temp_path(self.target)
        self.handle = open(self.temp, mode, encoding=None if "b" in mode else "utf-8")

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.temp, self.target)

    def abort(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        self.temp.unlink(missing_ok=True)


class TableFile:
    """One Arrow IPC file or Parquet file, written batch by batch, atomically."""

    def __init__(self, target: Path, schema: pa.Schema, fmt: str, compression: str | None):
        self.file = AtomicFile(target)
        codec = compression_arg(compression)
        self.parquet_schema = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            from .schema import parquet_schema

            self.parquet_schema = parquet_schema(schema)
            # Measured (README, "Performance"): dictionaries never pay on unique
            # pixel tokens; statistics are kept for the flat columns only. A
            # page cannot end inside a row, so an image's pixels are one page;
            # version 2 pages are compressed in place, where version 1 pages
            # keep a second copy of the largest one until the next row group.
            flat = [f.name for f in schema if not pa.types.is_nested(f.type)]
            self.writer = pq.ParquetWriter(self.file.handle, self.parquet_schema, compression=codec or "none",
                                           use_dictionary=False, write_statistics=flat, data_page_version="2.0")
        else:
            options = pa.ipc.IpcWriteOptions(compression=codec)
            self.writer = pa.ipc.new_file(self.file.handle, schema, options=options)
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            if self.parquet_schema is not None:
                from .schema import pixels_as_binary

                batch = pixels_as_binary(batch, self.parquet_schema)
            self.writer.write_batch(batch)
            pa.default_memory_pool().release_unused()  # the pool keeps freed batch buffers resident otherwise
            self.rows += batch.num_rows

    def commit(self) -> None:
        self.writer.close()
        self.file.commit()

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass
        self.file.abort()


class ErrorLog:
    """Failed images as JSON lines, written as they come, renamed into place on commit."""

    def __init__(self, target: Path):
        self.file = AtomicFile(target, "w")
        self.count = 0

    def add(self, record: dict) -> None:
        self.file.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def commit(self) -> None:
        self.file.commit()

    def abort(self) -> None:
        self.file.abort()


class RowSink:
    """Takes results in input order, batches rows, hands batches and error records on.

    Batches go to `self.table` (a TableFile) and error records to `self.errors`
    (an ErrorLog), which subclasses open; StdoutSink overrides both.
    """

    BATCH_ROWS = 64  # rows per Arrow record batch ...
    BATCH_BYTES = 16 << 20  # ... or fewer, once their pixels reach this size (a short tail to wait for at the end)

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.pending: list = []
        self.pending_bytes = 0

    def add(self, result) -> None:
        """A CodedImage (a row) or a FailedImage (an error record)."""
        if hasattr(result, "pixels"):
            self.pending.append(result)
            self.pending_bytes += result.pixels.nbytes
            if len(self.pending) >= self.BATCH_ROWS or self.pending_bytes >= self.BATCH_BYTES:
                self.flush()
        else:
            self._error(result.as_dict())

    def flush(self) -> None:
        if self.pending:
            from .schema import to_record_batch

            self._write(to_record_batch(self.pending, self.schema))
            self.pending, self.pending_bytes = [], 0

    def _write(self, batch: pa.RecordBatch) -> None:
        self.table.write(batch)

    def _error(self, record: dict) -> None:
        self.errors.add(record)


class FileSink(RowSink):
    """Rows to one file, errors beside it in OUTPUT.errors.jsonl."""

    def __init__(self, target: str, schema: pa.Schema, compression: str | None):
        super().__init__(schema)
        self.target = Path(target)
        _remove_stale_partials(self.target.parent, self.target.name)
        _remove_stale_partials(self.target.parent, errors_path(target).name)
        self.table = TableFile(self.target, schema, output_format(target), compression)
        self.errors = ErrorLog(errors_path(target))

    def commit(self) -> None:
        self.flush()
        self.table.commit()
        self.errors.commit()

    def abort(self) -> None:
        self.table.abort()
        self.errors.abort()


class StdoutSink(RowSink):
    """An Arrow IPC stream on stdout (for pipes); errors are only reported."""

    def __init__(self, schema: pa.Schema, compression: str | None):
        super().__init__(schema)
        options = pa.ipc.IpcWriteOptions(compression=compression_arg(compression))
        self.writer = pa.ipc.new_stream(sys.stdout.buffer, schema, options=options)

    def _write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)

    def _error(self, record: dict) -> None:
        pass

    def commit(self) -> None:
        self.flush()
        self.writer.close()
        sys.stdout.buffer.flush()

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


def is_shard_folder(output: str) -> bool:
    """`-o DIR/` (trailing slash) or an existing folder means sharded output."""
    return output != "-" and (output.endswith(("/", os.sep)) or Path(output).is_dir())


def shard_name(index: int, fmt: str = "arrow") -> str:
    return f"part-{index:05d}.{fmt}"


def shard_errors_name(index: int) -> str:
    return f"part-{index:05d}.errors.jsonl"


def _same_config(a: dict, b: dict) -> bool:
    """Configs match when everything but the tool version is equal."""
    strip = lambda meta: {k: v for k, v in meta.items() if k != "version"}
    return strip(a) == strip(b)


def _remove_stale_partials(folder: Path, name: str = "*") -> None:
    """Delete temporary files that killed runs left behind (their process is gone)."""
    for temp in folder.glob(f".{name}.partial-*"):
        pid = temp.name.rsplit("-", 1)[-1]
        alive = False
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
        if not alive:
            temp.unlink(missing_ok=True)


class ShardedSink(RowSink):
    """Rows to DIR/part-NNNNN.arrow, `shard_size` input images per shard, plus manifest.json.

    Shard k holds the images at input positions [k*shard_size, (k+1)*shard_size),
    so shard boundaries depend only on the inputs and a resumed run redoes
    exactly the shards that were not committed. Each shard and its
    part-NNNNN.errors.jsonl are renamed into place, then the manifest is
    rewritten (atomically) to list it. A completed run also writes errors.jsonl
    with every failure.
    """

    def __init__(self, folder: str, schema: pa.Schema, meta: dict, shard_size: int, compression: str | None,
                 fmt: str = "arrow", resume: bool = False, overwrite: bool = False, manifest_extra: dict | None = None):
        super().__init__(schema)
        self.manifest_extra = manifest_extra or {}  # e.g. {"engine": "ray"}
        self.folder = Path(folder)
        self.meta, self.shard_size, self.compression, self.fmt = meta, shard_size, compression, fmt
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self._read_manifest()
        existing = sorted(self.folder.glob("part-*"))
        if manifest and resume:
            if not _same_config(manifest["config"], meta) or manifest["shard_size"] != shard_size or manifest.get("format", "arrow") != fmt:
                raise ConfigError(
                    f"{folder} was written with a different configuration "
                    f"({_describe(manifest['config'])}, shard size {manifest['shard_size']}); "
                    "resume with the same options, or pass --overwrite to start again"
                )
            self.shards = [s for s in manifest["shards"] if (self.folder / s["file"]).exists()]
        elif (manifest or existing) and not overwrite:
            raise ConfigError(f"{folder} already holds a pixelprune output; pass --resume to finish it or --overwrite to replace it")
        else:
            for old in existing:
                old.unlink()
            for old in (self.folder / MANIFEST, self.folder / "errors.jsonl"):
                old.unlink(missing_ok=True)
            self.shards = []
        _remove_stale_partials(self.folder)
        self.done = {s["index"] for s in self.shards}
        self.resumed = {  # what earlier runs committed: part of this output, not of this run's counts
            "resumed_shards": len(self.shards),
            "resumed_images": sum(s["images"] for s in self.shards),
            "resumed_failed": sum(s["failed"] for s in self.shards),
        }
        self._seen: dict[int, "hashlib._Hash"] = {}
        self._seen_count: dict[int, int] = {}
        self._verified: set[int] = set()
        self._ids = hashlib.sha1()
        self.current: int | None = None
        self.table = self.errors = None
        self.counts = {"images": 0, "written": 0, "failed": 0}
        if not self.shards:
            self._write_manifest(complete=False)  # resuming leaves files alone until a shard is done

    # -- which inputs to skip on resume
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
                    f"{self.folder}: the inputs changed since {record['file']} was written (its images differ); "
                    "resume needs the same inputs, or pass --overwrite to start again"
                )
            self._verified.add(k)

    def add_at(self, position: int, result) -> None:
        shard = position // self.shard_size
        if shard != self.current:
            self._close_shard()
            self.verify_resumed(before=shard)
            self._open_shard(shard)
        self._ids.update(result.id.encode() + b"\n")
        self.counts["images"] += 1
        self.counts["written" if hasattr(result, "pixels") else "failed"] += 1
        self.add(result)

    def record_shard(self, index: int, images: int, failed: int, ids_sha1: str) -> None:
        """List a committed shard in the manifest: one of ours, or one a Ray task wrote."""
        self.shards.append({"index": index, "file": shard_name(index, self.fmt), "errors": shard_errors_name(index),
                            "images": images, "written": images - failed, "failed": failed, "ids_sha1": ids_sha1})
        self.done.add(index)
        self._verified.add(index)  # written in this run: nothing to check against
        self._write_manifest(complete=False)

    def _open_shard(self, index: int) -> None:
        self.current = index
        self.table = TableFile(self.folder / shard_name(index, self.fmt), self.schema, self.fmt, self.compression)
        self.errors = ErrorLog(self.folder / shard_errors_name(index))
        self.counts = {"images": 0, "written": 0, "failed": 0}
        self._ids = hashlib.sha1()

    def _close_shard(self) -> None:
        if self.current is None:
            return
        self.flush()
        self.table.commit()
        self.errors.commit()
        index, self.current = self.current, None
        self.record_shard(index, self.counts["images"], self.counts["failed"], self._ids.hexdigest())

    def commit(self) -> None:
        self._close_shard()
        self.verify_resumed()
        merged = AtomicFile(self.folder / "errors.jsonl", "wb")
        for shard in sorted(self.shards, key=lambda s: s["index"]):
            path = self.folder / shard["errors"]
            if path.exists():
                merged.handle.write(path.read_bytes())
        merged.commit()
        _remove_stale_partials(self.folder)
        self._write_manifest(complete=True)

    def abort(self) -> None:
        """Drop the shard in progress; committed shards stay for --resume."""
        if self.current is not None:
            self.table.abort()
            self.errors.abort()
            self.current = None

    def _read_manifest(self) -> dict | None:
        path = self.folder / MANIFEST
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError:
            raise ConfigError(f"{path} is not valid JSON; pass --overwrite to start again") from None

    def _write_manifest(self, complete: bool) -> None:
        shards = sorted(self.shards, key=lambda s: s["index"])
        manifest = {
            "config": self.meta,
            "format": self.fmt,
            "shard_size": self.shard_size,
            "complete": complete,
            **self.manifest_extra,
            "images": sum(s["images"] for s in shards),
            "written": sum(s["written"] for s in shards),
            "failed": sum(s["failed"] for s in shards),
            "shards": shards,
        }
        out = AtomicFile(self.folder / MANIFEST, "w")
        out.handle.write(json.dumps(manifest, indent=1) + "\n")
        out.commit()


def _describe(meta: dict) -> str:
    return ", ".join(f"{k}={meta.get(k)}" for k in ("preset", "method", "metric", "tau"))


def check_target(output: str, overwrite: bool) -> None:
    """Refuse to replace an existing output unless asked (exit code 2, nothing touched)."""
    if output == "-" or is_shard_folder(output):
        return
    path = Path(output)
    if path.exists() and not overwrite:
        raise ConfigError(f"{output} already exists; pass --overwrite to replace it")
    if not path.parent.exists():
        raise ConfigError(f"folder {path.parent} does not exist")
