"""Where rows go: one Arrow/Parquet file or an Arrow stream on stdout (a folder of shards: shards.py).

Files are written batch by batch to a hidden temporary file beside the target
and renamed into place only when complete (atomic.py), so a reader never sees a partial
output under the final name. Failed images go to `<output>.errors.jsonl`
(one JSON object per line: id, stage, reason). A lock file beside the target
keeps a second run off an output being written.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from pixelprune_cli.errors import ConfigError, option
from pixelprune_cli.outputs.formats import output_format, table_format
from pixelprune_cli.outputs.objectstore import check_stored_target, is_folder, write_object
from pixelprune_cli.records import CodedImage, CodedRow, Result, Resumed
from pixelprune_cli.storage.atomic import (
    AtomicFile,
    TargetLock,
    fitting_name,
    lock_path,
    output_errors,
    remove_stale_partials,
    temp_stem,
    write_file,
)
from pixelprune_cli.storage.urls import is_url

# Measured on the bench corpus (docs/performance.md, "compress"): zstd gives the smallest
# files (1.7x the source PNGs) and, written on a background thread, costs no more
# wall time than lz4 (2.1x) or none (11.9x).
DEFAULT_COMPRESSION = "zstd"
STREAM_END = b"pixelprune_end"  # custom metadata of the empty batch that ends a complete `-o -` stream
# A message header no Arrow reader accepts (a 2 GiB metadata length, then nothing):
# what an aborted stream ends with, so that it fails to read rather than looking complete.
_BROKEN_STREAM = b"\xff\xff\xff\xff\xff\xff\xff\x7f"


def errors_path(output: str) -> Path:
    path = Path(output)
    return path.with_name(fitting_name(path.name, ".errors.jsonl"))


def compression_arg(compression: str | None):
    return None if compression in (None, "none", "uncompressed") else compression


def write_atomically(path, write) -> None:
    """write(handle) into `path` whole: a local file renamed into place (atomic.write_file), or an object
    spooled locally and uploaded in one call."""
    if is_url(str(path)):
        return write_object(str(path), write)
    write_file(path, write)


class TableFile:
    """One Arrow IPC file or Parquet file, written batch by batch, atomically."""

    def __init__(self, target: Path, schema: pa.Schema, fmt: str, compression: str | None):
        self.file = AtomicFile(target)
        codec = compression_arg(compression)
        try:
            with output_errors(target):
                self.writer = table_format(fmt).open_writer(self.file.handle, schema, codec)
        except BaseException:
            self.file.abort()
            raise
        self.rows = 0

    def write_rows(self, coded: list[CodedImage | CodedRow]) -> None:
        """Rows as one record batch (Arrow) or row group (Parquet), built as the format likes."""
        if coded:
            with output_errors(self.file.target):
                self.writer.write_rows(coded)
            pa.default_memory_pool().release_unused()  # the pool keeps freed batch buffers resident otherwise
            self.rows += len(coded)

    def commit(self) -> None:
        self.seal()
        self.file.publish()

    def seal(self) -> None:
        """The table's footer written and on disk, under the temporary name."""
        try:
            with output_errors(self.file.target):
                self.writer.close()
        except BaseException:
            self.file.abort()
            raise
        self.file.seal()

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass
        finally:
            self.file.abort()


class ErrorLog:
    """Failed images as JSON lines, written as they come, renamed into place on commit."""

    def __init__(self, target: Path):
        self.file = AtomicFile(target, "w")
        self.count = 0

    def add(self, record: dict) -> None:
        with output_errors(self.file.target):
            self.file.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def commit(self) -> None:
        self.file.commit()

    def abort(self) -> None:
        self.file.abort()


class RowSink:
    """Takes results in input order, batches rows, hands batches and error records on.

    Batches of rows go to `table` (a TableFile) and error records to `errors` (an
    ErrorLog); FileSink and ShardedSink open them, StdoutSink overrides
    `_write` and `_error` instead. The base of every `records.Sink` here.
    """

    BATCH_ROWS = 64  # rows per Arrow record batch ...
    BATCH_BYTES = 16 << 20  # ... or fewer, once their pixels reach this size (a short tail to wait for at the end)
    resumed: Resumed | None = None  # only a shard folder keeps what an earlier run committed

    def __init__(self, schema: pa.Schema, table: TableFile | None = None, errors: ErrorLog | None = None):
        self.schema = schema
        self.table, self.errors = table, errors
        self.pending: list[CodedImage | CodedRow] = []
        self.pending_bytes = 0

    def skipper(self) -> Callable[[int, str], bool] | None:
        return None

    @property
    def bytes_written(self) -> int | None:
        return None

    def add_at(self, position: int, result: Result) -> None:
        self.add(result)

    def add(self, result: Result) -> None:
        """A CodedImage or CodedRow (a row) or a FailedImage (an error record)."""
        if isinstance(result, (CodedImage, CodedRow)):
            self.pending.append(result)
            self.pending_bytes += result.nbytes if isinstance(result, CodedRow) else result.pixels.nbytes
            if len(self.pending) >= self.BATCH_ROWS or self.pending_bytes >= self.BATCH_BYTES:
                self.flush()
        else:
            self._error(result.as_dict())

    def flush(self) -> None:
        if self.pending:
            self._write(self.pending)
            self.pending, self.pending_bytes = [], 0

    def _parts(self) -> tuple[TableFile, ErrorLog]:
        """The open table and error log: a sink has them from opening its file (or shard) until it commits."""
        if self.table is None or self.errors is None:
            raise RuntimeError("no output table is open")
        return self.table, self.errors

    def _write(self, coded: list[CodedImage | CodedRow]) -> None:
        self._parts()[0].write_rows(coded)

    def _error(self, record: dict) -> None:
        self._parts()[1].add(record)


class FileSink(RowSink):
    """Rows to one file, errors beside it in OUTPUT.errors.jsonl."""

    def __init__(self, target: str, schema: pa.Schema, compression: str | None, overwrite: bool = False):
        super().__init__(schema)
        self.target = Path(target)
        self.lock = TargetLock(lock_path(self.target), target)
        try:
            if not overwrite and os.path.lexists(self.target):  # another run finished it since check_target
                raise ConfigError(f"{target} already exists; pass {option('overwrite')} to replace it")
            ours = {temp_stem(p.name) for p in (self.target, errors_path(target))}
            remove_stale_partials(self.target.parent, lambda name: name in ours)
            self.table = TableFile(self.target, schema, output_format(target).name, compression)
            self.errors = ErrorLog(errors_path(target))
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        """Both files whole on disk first; then the old error log goes, the table moves in, its log last.

        A reader sees the old pair, a table with no error log (a commit cut
        short by a kill), or the new pair: never a table beside another run's log.
        """
        self.flush()
        table, errors = self._parts()
        table.seal()
        errors.file.seal()
        with output_errors(errors.file.target):
            errors.file.target.unlink(missing_ok=True)
        table.file.publish()
        errors.file.publish()
        self.lock.release()

    def abort(self) -> None:
        for part in (self.table, self.errors):
            if part is not None:
                part.abort()
        self.lock.release()


class _CountingStream:
    """A write-only file that counts what passes through to `raw` (a pipe has no size to ask afterwards)."""

    def __init__(self, raw):
        self.raw, self.bytes_written = raw, 0

    def write(self, data) -> int:
        self.bytes_written += memoryview(data).nbytes
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    @property
    def closed(self) -> bool:
        return self.raw.closed


class StdoutSink(RowSink):
    """An Arrow IPC stream on stdout (for pipes); errors are only reported.

    A complete stream ends with an empty batch whose custom metadata
    `pixelprune_end` holds {"rows": N}; readers check it, so a stream cut
    anywhere, even between two batches, is told from a whole one. An aborted
    run writes no marker and ends the stream with a header no reader accepts.
    """

    def __init__(self, schema: pa.Schema, compression: str | None):
        super().__init__(schema)
        options = pa.ipc.IpcWriteOptions(compression=compression_arg(compression))
        with output_errors("standard output"):
            self.stream = _CountingStream(sys.stdout.buffer)
            self.writer = pa.ipc.new_stream(self.stream, schema, options=options)
        self.rows = 0

    @property
    def bytes_written(self) -> int:
        return self.stream.bytes_written

    def _write(self, coded: list[CodedImage | CodedRow]) -> None:
        from pixelprune_cli.outputs.multi_image import to_record_batch_of

        batch = to_record_batch_of(coded, self.schema)
        with output_errors("standard output"):
            self.writer.write_batch(batch)
        self.rows += batch.num_rows

    def _error(self, record: dict) -> None:
        pass

    def commit(self) -> None:
        self.flush()
        end = pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in self.schema], schema=self.schema)
        with output_errors("standard output"):
            self.writer.write_batch(end, custom_metadata={STREAM_END: json.dumps({"rows": self.rows})})
            self.writer.close()
            sys.stdout.buffer.flush()

    def abort(self) -> None:
        """Leave the stream visibly broken: never closed as if complete."""
        try:
            sys.stdout.buffer.write(_BROKEN_STREAM)
            sys.stdout.buffer.flush()
        except Exception:  # the reader is gone, or stdout is: nothing left to mark
            pass


def output_target(output: str) -> str:
    """What `-o` names, decided once per command and handed down: "stream" ('-'), "folder" or "file".

    Each call on a store URL without a trailing slash costs a round trip (is
    it a folder?), so nothing below the command asks again.
    """
    if output == "-":
        return "stream"
    return "folder" if is_shard_folder(output) else "file"


def errors_file(output: str, target: str) -> str | None:
    """Where a compress run's error log is: DIR/errors.jsonl, FILE.errors.jsonl beside a file, none for a stream."""
    from pixelprune_cli.storage.urls import join

    if target == "stream":
        return None
    if target == "folder":
        return join(output, "errors.jsonl")
    return output + ".errors.jsonl" if is_url(output) else str(errors_path(output))


def is_shard_folder(output: str) -> bool:
    """`-o DIR/` (trailing slash) or an existing folder means sharded output."""
    if is_url(output):
        return is_folder(output)
    return output != "-" and (output.endswith(("/", os.sep)) or Path(output).is_dir())


def not_a_folder(folder: str | Path, what: str, hint: str = "") -> None:
    """Refuse a folder output whose name an existing file (or a symlink to one) holds.

    overwrite does not help: it replaces pixelprune's outputs, and never turns a file into a folder.
    """
    path = Path(str(folder).rstrip("/" + os.sep) or "/")
    if os.path.lexists(path) and not path.is_dir():
        raise ConfigError(f"{folder} names {what}, but {path} is a file (even {option('overwrite')} never replaces "
                          f"a file with a folder); choose another name{hint}")


def check_target(output: str, overwrite: bool, target: str | None = None) -> None:
    """Refuse to replace an existing output unless asked (exit code 2, nothing touched); target: output_target's."""
    target = target or output_target(output)
    if target == "stream":
        return
    if target == "folder":
        not_a_folder(output, "a folder of shards", f", or -o {output.rstrip('/' + os.sep)} for one file")
        return
    if is_url(output):
        return check_stored_target(output, overwrite)  # a store has no parent folder to ask about
    path = Path(output)
    if os.path.lexists(path) and not overwrite:
        raise ConfigError(f"{output} already exists; pass {option('overwrite')} to replace it")
    if not path.parent.exists():
        raise ConfigError(f"folder {path.parent} does not exist")
