"""Reading pixelprune outputs back: Arrow IPC files or streams, Parquet, shard folders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from .errors import InputError, one_line
from .presets import resolve_preset
from .schema import pixels_as_tokens, read_meta


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
    import json

    from .writer import MANIFEST

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
        try:
            for batch in _stdin_stream():
                yield batch.select(columns) if columns else batch
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"standard input: not a readable pixelprune stream ({one_line(exc)})") from None
        return
    for file in _output_files(path):
        try:
            if file.suffix.lower() in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                parquet = pq.ParquetFile(str(file))
                token_bytes = resolve_preset(read_meta(parquet.schema_arrow)).token_bytes
                for batch in parquet.iter_batches(batch_size=64, columns=columns):
                    yield pixels_as_tokens(batch, token_bytes)  # restore, show and stats see one layout
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
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise InputError(f"{file}: not a readable pixelprune output ({one_line(exc)})") from None
