"""Reading pixelprune outputs back: Arrow IPC files or streams, Parquet, shard folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from .errors import InputError, one_line
from .formats import ARROW, TABLE_FORMATS, TableFormat, format_of
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
        files = sorted(f for fmt in TABLE_FORMATS.values() for f in p.glob(f"part-*{fmt.suffix}"))
        if not files:
            shards = " or ".join(f"part-*{fmt.suffix}" for fmt in TABLE_FORMATS.values())
            raise InputError(f"{path}: folder holds no {shards} shards")
        return files
    return [p]


def _format(file: Path) -> TableFormat:
    """A file's format by suffix; a file named otherwise is tried as Arrow (what `-o -` saved to a file is)."""
    return format_of(file) or ARROW


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


def compressed_meta(path: str) -> dict | None:
    """The `pixelprune` metadata when path is a compressed output, else None (an image table or image).

    `-` is always an output (a stream on stdin); one that is not raises InputError.
    """
    if path == STDIN:
        return read_meta(_stdin_stream().schema)
    p = Path(path)
    if not p.is_dir() and format_of(p) is None:
        return None
    try:  # a folder without shards raises InputError here, an unreadable file anything
        file = _output_files(path)[0]
        return read_meta(_format(file).read_schema(file))
    except Exception:
        return None


def iter_output_batches(path: str, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of a compressed output, file by file, batch by batch."""
    if path == STDIN:
        yield from _stdin_batches(columns)
        return
    for file in _output_files(path):
        try:
            yield from _format(file).iter_batches(file, columns)
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
            total += _format(file).count_rows(file)
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
