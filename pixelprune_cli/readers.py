"""Reading pixelprune outputs back: Arrow IPC files or streams, Parquet, shard folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from .errors import InputError, one_line
from .schema import read_meta


STDIN = "-"  # as an output to read: the Arrow IPC stream that `compress -o -` writes, piped in
_stdin_reader: tuple = (None, None)  # (the stdin object, its stream reader): stdin can be read once


def _stdin_stream() -> pa.RecordBatchStreamReader:
    global _stdin_reader
    if _stdin_reader[0] is sys.stdin:
        return _stdin_reader[1]
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError("standard input is a terminal; pipe an Arrow stream into it (pixelprune compress ... -o - | ...)")
    try:
        reader = pa.ipc.open_stream(sys.stdin.buffer)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"standard input: not an Arrow IPC stream ({one_line(exc)})") from None
    _stdin_reader = (sys.stdin, reader)
    return reader


def _output_files(path: str) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(list(p.glob("part-*.arrow")) + list(p.glob("part-*.parquet")))
        if not files:
            raise InputError(f"{path}: folder holds no part-*.arrow or part-*.parquet shards")
        return files
    return [p]


def incomplete_note(path: str) -> str | None:
    """A warning when path is a shard folder whose run has not finished (its manifest says so), else None.

    Such a folder reads fine, shard by shard, but holds only the committed
    shards; whoever reads it should know that before trusting the totals.
    """
    from .writer import MANIFEST, SWAP

    if (Path(path) / SWAP).is_dir():
        return (f"{path} is being replaced: a run that replaced it was stopped while moving its files in; "
                f"the next `pixelprune compress ... -o {path}` finishes the move")
    manifest_path = Path(path) / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{manifest_path} is unreadable; this folder may hold an incomplete output"
    if manifest.get("complete", True):
        return None
    shards = len(manifest.get("shards", []))
    return (f"{path} is incomplete: the run that writes it has not finished ({shards} shards, "
            f"{manifest.get('images', 0):,} images committed); finish it with `pixelprune compress ... "
            f"-o {path} --resume`")


def _schema_of(path: Path) -> pa.Schema:
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.read_schema(str(path))
    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).schema
    except pa.ArrowInvalid:
        with pa.OSFile(str(path)) as source:
            return pa.ipc.open_stream(source).schema


def compressed_meta(path: str) -> dict | None:
    """The `pixelprune` metadata when path is a compressed output, else None (an image table or image).

    `-` is always an output (a stream on stdin); one that is not raises InputError.
    """
    if path == STDIN:
        return read_meta(_stdin_stream().schema)
    p = Path(path)
    if not p.is_dir() and p.suffix.lower() not in (".arrow", ".ipc", ".feather", ".parquet", ".pq", ".arrows"):
        return None
    try:  # a folder without shards raises InputError here, an unreadable file anything
        return read_meta(_schema_of(_output_files(path)[0]))
    except Exception:
        return None


def iter_output_batches(path: str, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of a compressed output, file by file, batch by batch."""
    if path == STDIN:
        yield from _stdin_batches(columns)
        return
    for file in _output_files(path):
        try:
            if file.suffix.lower() in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                yield from pq.ParquetFile(str(file)).iter_batches(batch_size=64, columns=columns)
                continue
            with pa.memory_map(str(file)) as source:
                try:
                    reader = pa.ipc.open_file(source)
                    batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                except pa.ArrowInvalid:
                    source.seek(0)
                    batches = iter(pa.ipc.open_stream(source))
                for batch in batches:
                    yield batch.select(columns) if columns else batch
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{file}: not a readable pixelprune output ({one_line(exc)})") from None


def output_rows(path: str) -> int | None:
    """Rows of a compressed output from its footers (Parquet metadata, Arrow file batch headers); None for streams.

    Only for progress totals: None too when a file cannot be read (reading it will say why).
    """
    if path == STDIN:
        return None
    total = 0
    try:
        for file in _output_files(path):
            if file.suffix.lower() in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                total += pq.ParquetFile(str(file)).metadata.num_rows
                continue
            with pa.memory_map(str(file)) as source:
                reader = pa.ipc.open_file(source)  # a stream has no footer: ArrowInvalid, no total
                total += sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    except Exception:
        return None
    return total


def _stdin_batches(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    """The batches of the stream on stdin; InputError unless it ends with the writer's end marker.

    Without the marker the stream was cut (its writer was killed or failed),
    even when the cut fell between two batches, which Arrow itself accepts.
    """
    from .writer import STREAM_END

    reader, rows, end = _stdin_stream(), 0, None
    try:
        while True:
            try:
                batch, custom = reader.read_next_batch_with_custom_metadata()
            except StopIteration:
                break
            if custom is not None and STREAM_END in custom:
                end = custom[STREAM_END]
                continue
            rows += batch.num_rows
            yield batch.select(columns) if columns else batch
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"standard input: not a readable pixelprune stream, or cut short ({one_line(exc)})") from None
    if end is None:
        raise InputError(f"standard input: the stream ended after {rows:,} rows without its end marker: it was cut "
                         "short (the run writing it was interrupted or failed), so this output is incomplete")
    try:
        promised = json.loads(end)["rows"]
    except (ValueError, KeyError, TypeError):
        promised = None
    if promised != rows:
        raise InputError(f"standard input: the stream's end marker promises {promised} rows but {rows:,} came")
