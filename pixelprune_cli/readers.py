"""Reading pixelprune outputs back: Arrow IPC files or streams, Parquet, shard folders."""

from __future__ import annotations

import json
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
        from .writer import is_shard_file

        files = sorted(f for f in p.iterdir() if is_shard_file(f.name) and not f.name.endswith(".errors.jsonl"))
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


ARROW_SUFFIXES = (".arrow", ".ipc", ".feather", ".arrows")
PARQUET_SUFFIXES = (".parquet", ".pq")


def _schema_of(path: Path) -> pa.Schema:
    """The schema of one output file; InputError (naming it and why) when it is not one that can be read."""
    from .sources import check_regular

    check_regular(str(path))  # opening a FIFO named x.arrow would block
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(str(path))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({one_line(exc)})") from None
    try:
        with pa.memory_map(str(path)) as source:
            try:
                return pa.ipc.open_file(source).schema
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_stream(source).schema
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Arrow file, truncated or not an Arrow IPC file or stream "
                         f"({one_line(exc)})") from None


def _meta_of(schema: pa.Schema, name) -> dict | None:
    from .presets import resolve_preset

    try:
        meta = read_meta(schema)
        if meta is not None:
            resolve_preset(meta)  # its preset values must make sense before anything is read by them
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"{name}: its pixelprune metadata is unusable ({one_line(exc)})") from None
    return meta


def compressed_meta(path: str) -> dict | None:
    """The `pixelprune` metadata when path is a compressed output, else None (an image table or image).

    `-` is always an output (a stream on stdin); one that is not raises InputError.
    An Arrow file, or a shard folder with a manifest, that cannot be read
    raises InputError saying why, rather than passing for an image.
    """
    if path == STDIN:
        return _meta_of(_stdin_stream().schema, "standard input")
    p = Path(path)
    if p.is_dir():
        shards = sorted(list(p.glob("part-*.arrow")) + list(p.glob("part-*.parquet")))
        from .writer import MANIFEST

        if not shards:
            if (p / MANIFEST).is_file():
                raise InputError(f"{path}: has a {MANIFEST} but no part-*.arrow or part-*.parquet shards")
            return None
        try:
            return _meta_of(_schema_of(shards[0]), shards[0])
        except InputError:
            if (p / MANIFEST).is_file():
                raise
            return None  # a folder of images that happens to hold a part-* file
    suffix = p.suffix.lower()
    if suffix in ARROW_SUFFIXES or suffix in PARQUET_SUFFIXES:
        return _meta_of(_schema_of(p), path)
    return None


NOT_NULL = ("id", "source_width", "source_height", "width", "height", "grid_thw", "tokens", "kept", "tau",
            "kept_index", "index_map", "pixels")  # the core columns: a null in one is a broken output


def _integers(t: pa.DataType) -> bool:
    return pa.types.is_integer(t)


def _integer_lists(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type)


def _token_lists(t: pa.DataType) -> bool:
    return ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_fixed_size_list(t.value_type)
            and pa.types.is_uint8(t.value_type.value_type))


# What a reader relies on in each core column (other writers may widen the types: int64, large_list).
_COLUMN_TYPES = {
    "id": (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "a string"),
    **{c: (_integers, "integers") for c in ("source_width", "source_height", "width", "height", "tokens", "kept")},
    "tau": (pa.types.is_floating, "floats"),
    "kept_index": (_integer_lists, "lists of integers"),
    "index_map": (_integer_lists, "lists of integers"),
    "pixels": (_token_lists, "lists of fixed-size uint8 lists"),
}


def _binary_lists(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_binary(t.value_type)


def _check_columns(schema: pa.Schema, columns: list[str] | None, name, parquet: bool = False) -> None:
    """InputError unless schema has the columns wanted, of types a reader can use.

    A Parquet output may store `pixels` as one binary per token (its own
    layout, turned back into token lists as it is read).
    """
    from .schema import CORE_COLUMNS

    wanted = columns or CORE_COLUMNS
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise InputError(f"{name}: no column {', '.join(map(repr, missing))} in this output "
                         f"(columns: {', '.join(schema.names)})")
    for column in wanted:
        fits, kind = _COLUMN_TYPES.get(column, (None, None))
        type_ = schema.field(column).type
        if parquet and column == "pixels" and _binary_lists(type_):
            continue
        if fits is not None and not fits(type_):
            raise InputError(f"{name}: column {column!r} is {schema.field(column).type}, not {kind}")


def iter_output_batches(path: str, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of a compressed output, file by file, batch by batch.

    Raises InputError, naming the file, for a column it lacks or a null in a core column.
    """
    for name, batch in _output_batches(path, columns):
        for column in NOT_NULL:
            if column in batch.schema.names and batch.column(column).null_count:
                raise InputError(f"{name}: column {column!r} holds nulls; not a pixelprune output that can be read")
        yield batch


def _output_batches(path: str, columns: list[str] | None = None) -> Iterator[tuple[str, pa.RecordBatch]]:
    if path == STDIN:
        _check_columns(_stdin_stream().schema, columns, "standard input")
        for batch in _stdin_batches(columns):
            yield "standard input", batch
        return
    for file in _output_files(path):
        parquet = file.suffix.lower() in PARQUET_SUFFIXES
        _check_columns(_schema_of(file), columns, file, parquet)
        try:
            if parquet:
                import pyarrow.parquet as pq

                parquet = pq.ParquetFile(str(file))
                token_bytes = resolve_preset(read_meta(parquet.schema_arrow)).token_bytes
                for batch in parquet.iter_batches(batch_size=64, columns=columns):
                    yield file, pixels_as_tokens(batch, token_bytes)  # restore, show and stats see one layout
                continue
            with pa.memory_map(str(file)) as source:
                try:
                    reader = pa.ipc.open_file(source)
                    batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                except pa.ArrowInvalid:
                    source.seek(0)
                    batches = iter(pa.ipc.open_stream(source))
                for batch in batches:
                    yield file, batch.select(columns) if columns else batch
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
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
