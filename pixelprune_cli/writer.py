"""Where rows go: one Arrow/Parquet file, an Arrow stream on stdout, or a folder of shards.

Files are written batch by batch to a hidden temporary file beside the target
and renamed into place only when complete, so a reader never sees a partial
output under the final name. Failed images go to `<output>.errors.jsonl`
(one JSON object per line: id, stage, reason).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow as pa

from .errors import ConfigError

ARROW_SUFFIXES = (".arrow", ".ipc", ".feather")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Measured on the bench corpus (README, "Performance"): zstd gives the smallest
# files for a few percent of the run time; lz4 is faster to write but larger.
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
        self.handle = open(self.temp, mode)

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
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self.writer = pq.ParquetWriter(self.file.handle, schema, compression=codec or "none")
        else:
            options = pa.ipc.IpcWriteOptions(compression=codec)
            self.writer = pa.ipc.new_file(self.file.handle, schema, options=options)
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.writer.write_batch(batch)
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


class FileSink:
    """Rows to one file, errors beside it."""

    def __init__(self, target: str, schema: pa.Schema, compression: str | None):
        self.target = Path(target)
        self.table = TableFile(self.target, schema, output_format(target), compression)
        self.errors = ErrorLog(errors_path(target))

    def write(self, batch: pa.RecordBatch) -> None:
        self.table.write(batch)

    def error(self, record: dict) -> None:
        self.errors.add(record)

    def commit(self) -> None:
        self.table.commit()
        self.errors.commit()

    def abort(self) -> None:
        self.table.abort()
        self.errors.abort()


class StdoutSink:
    """An Arrow IPC stream on stdout (for pipes); errors are reported, not written."""

    def __init__(self, schema: pa.Schema, compression: str | None):
        options = pa.ipc.IpcWriteOptions(compression=compression_arg(compression))
        self.writer = pa.ipc.new_stream(sys.stdout.buffer, schema, options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.writer.write_batch(batch)

    def error(self, record: dict) -> None:
        pass

    def commit(self) -> None:
        self.writer.close()
        sys.stdout.buffer.flush()

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


def check_target(output: str, overwrite: bool) -> None:
    """Refuse to replace an existing output unless asked (exit code 2, nothing touched)."""
    if output == "-":
        return
    path = Path(output)
    if path.exists() and not overwrite:
        raise ConfigError(f"{output} already exists; pass --overwrite to replace it")
    if path.exists() and path.is_dir():
        raise ConfigError(f"{output} is a folder; end the name with / to write shards into it")
    if not path.parent.exists():
        raise ConfigError(f"folder {path.parent} does not exist")
