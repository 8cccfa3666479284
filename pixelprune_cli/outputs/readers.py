"""Reading pixelprune outputs back: Arrow IPC files or streams, Parquet, shard folders."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from pixelprune_cli.errors import InputError, one_line
from pixelprune_cli.outputs.formats import ARROW, TableFormat, format_of
from pixelprune_cli.outputs.manifest import is_store_shard, listed_files, read_manifest
from pixelprune_cli.outputs.schema import read_meta
from pixelprune_cli.storage.storage import check_regular, kind, raise_if_unavailable
from pixelprune_cli.storage.urls import is_url, redact

STDIN = "-"  # as an output to read: the Arrow IPC stream that `compress -o -` writes, piped in
_stdin_reader: tuple = (None, None)  # (the stdin object, its stream reader): stdin can be read once


def _stdin_stream() -> pa.RecordBatchStreamReader:
    global _stdin_reader
    if sys.stdin is None:  # started with stdin closed (<&-)
        raise InputError("standard input is closed; pipe an Arrow stream into it (pixelprune compress ... -o - | ...)")
    if _stdin_reader[0] is sys.stdin:
        return _stdin_reader[1]
    if sys.stdin.isatty():
        raise InputError("standard input is a terminal; pipe an Arrow stream into it (pixelprune compress ... -o - | ...)")
    try:
        reader = pa.ipc.open_stream(sys.stdin.buffer)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"standard input: not an Arrow IPC stream ({one_line(exc)})") from None
    _stdin_reader = (sys.stdin, reader)
    return reader


def is_output_folder(path: str) -> bool:
    """A shard folder to read: a folder on disk, or a store URL ending in '/' or naming a prefix."""
    if is_url(path):
        from pixelprune_cli.outputs.objectstore import is_folder

        return is_folder(path)
    return Path(path).is_dir()


def resolve_output(path: str) -> str:
    """Decide once per command whether a store URL to read names a shard folder: a folder URL gets its trailing
    '/', from which every later check here (`is_output_folder`) reads the answer without another store round trip."""
    if is_url(path) and not path.endswith("/") and is_output_folder(path):
        return path + "/"
    return path


def output_files(path: str) -> list[str]:
    """The table files of an output: those a shard folder's manifest lists (never a listing), or the file itself."""
    if is_output_folder(path):
        return listed_files(path)
    if is_url(path) and kind(path) == "missing":
        raise InputError(f"{redact(path)}: no such file or folder")
    return [path]


def _format(file: Path | str) -> TableFormat:
    """A file's format by suffix; a file named otherwise is tried as Arrow (what `-o -` saved to a file is)."""
    return format_of(file) or ARROW


def incomplete_note(path: str) -> str | None:
    """A warning when path is a shard folder whose run has not finished (its manifest says so), else None.

    Such a folder reads fine, shard by shard, but holds only the committed
    shards; whoever reads it should know that before trusting the totals.
    """
    from pixelprune_cli.outputs.manifest import SWAP

    if path == STDIN or not is_output_folder(path):
        return None
    shown = redact(path)
    if not is_url(path) and (Path(path) / SWAP).is_dir():
        return (f"{path} is being replaced: a run that replaced it was stopped while moving its files in; "
                f"the next `pixelprune compress ... -o {path}` finishes the move")
    manifest = read_manifest(path)
    if manifest is None or manifest.get("complete", True):
        return None
    return (f"{shown} is incomplete: the run that writes it has not finished ({len(manifest['shards'])} shards, "
            f"{manifest.get('images', 0):,} images committed); finish it with `pixelprune compress ... "
            f"-o {shown} --resume`")


def _schema_of(path: Path | str) -> pa.Schema:
    """The schema of one output file; InputError (naming it and why) when it is not one that can be read."""

    if not is_url(path):
        if not os.path.lexists(path):
            raise InputError(_missing(str(path)))
        check_regular(str(path))  # opening a FIFO named x.arrow would block
    fmt = _format(path)
    try:
        return fmt.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        if is_url(path) and kind(str(path)) == "missing":  # asked only now: a store round trip
            raise InputError(_missing(str(path))) from None
        raise InputError(f"{redact(str(path))}: {fmt.unreadable} ({redact(one_line(exc))})") from None


def _missing(file: str) -> str:
    """What a missing output file is called: a listed shard that --resume redoes, or a file that is not there."""
    name = file.rstrip("/").rpartition("/")[2]
    if is_store_shard(name):
        folder = redact(file[:len(file) - len(name)])
        return (f"{redact(file)} is missing, though its folder's manifest.json lists it; `pixelprune compress ... "
                f"-o {folder} --resume` redoes that shard")
    return f"{redact(file)}: no such file or folder"


def _meta_of(schema: pa.Schema, name) -> dict | None:
    from pixelprune_cli.coding.presets import resolve_preset

    try:
        meta = read_meta(schema)
        if meta is not None:
            resolve_preset(meta)  # its preset values must make sense before anything is read by them
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"{name}: its pixelprune metadata is unusable ({one_line(exc)})") from None
    return meta


def output_meta(path: str) -> dict:
    """The `pixelprune` metadata of an output that a command needs to read; InputError if path is not one."""
    meta = compressed_meta(path)
    if meta is None:
        raise InputError(f"{path}: not a pixelprune output (no 'pixelprune' schema metadata)")
    return meta


def compressed_meta(path: str) -> dict | None:
    """The `pixelprune` metadata when path is a compressed output, else None (an image table or image).

    `-` is always an output (a stream on stdin); one that is not raises InputError.
    An Arrow file, or a shard folder with a manifest, that cannot be read
    raises InputError saying why, rather than passing for an image.
    """
    if path == STDIN:
        return _meta_of(_stdin_stream().schema, "standard input")
    if is_output_folder(path):
        if read_manifest(path) is None:
            return None  # a folder of images (whatever part-* files it holds: only a manifest makes an output)
        files = output_files(path)
        return _meta_of(_schema_of(files[0]), redact(str(files[0])))
    if format_of(path) is not None:
        return _meta_of(_schema_of(path), redact(path))
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


def _check_columns(schema: pa.Schema, columns: list[str] | None, name) -> None:
    """InputError unless schema (as the format reads it) has the columns wanted, of types a reader can use."""
    from pixelprune_cli.outputs.schema import CORE_COLUMNS, PER_IMAGE_COLUMNS, is_multi_image

    wanted = columns or CORE_COLUMNS
    try:
        multi = is_multi_image(read_meta(schema))
    except ValueError:
        multi = False
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise InputError(f"{name}: no column {', '.join(map(repr, missing))} in this output "
                         f"(columns: {', '.join(schema.names)})")
    for column in wanted:
        if len(schema.get_all_field_indices(column)) > 1:  # as --keep-columns a,a wrote them in 0.2.0
            raise InputError(f"{name}: column {column!r} appears more than once; no reader can tell them apart")
        fits, kind = _COLUMN_TYPES.get(column, (None, None))
        type_ = schema.field(column).type
        if multi and column in PER_IMAGE_COLUMNS:  # a list per row, of the single-image type
            if not (pa.types.is_list(type_) or pa.types.is_large_list(type_)):
                raise InputError(f"{name}: column {column!r} is {type_}, not a list per row (a multi-image output)")
            type_, kind = type_.value_type, f"lists of {kind}"
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


def _output_batches(path: str, columns: list[str] | None = None) -> Iterator[tuple[str | Path, pa.RecordBatch]]:
    if path == STDIN:
        _check_columns(_stdin_stream().schema, columns, "standard input")
        for batch in _stdin_batches(columns):
            yield "standard input", batch
        return
    for file in output_files(path):
        fmt = _format(file)
        _check_columns(_schema_of(file), columns, file)
        try:
            for batch in fmt.iter_batches(file, columns):
                yield file, batch
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise_if_unavailable(exc, str(file))  # a store that went away, not a broken file
            raise InputError(f"{redact(str(file))}: not a readable pixelprune output ({redact(one_line(exc))})") from None


def kept_pixels(batch: pa.RecordBatch, i: int):
    """Row i's kept pixels as a (kept, token_bytes) uint8 numpy view, without Python lists."""
    column = batch.column("pixels")
    tokens = column.values  # FixedSizeListArray of all kept tokens in the batch
    start, stop = column.offsets[i].as_py(), column.offsets[i + 1].as_py()
    width = tokens.type.list_size
    flat = tokens.values.to_numpy(zero_copy_only=False)
    base = tokens.offset * width
    return flat[base + start * width: base + stop * width].reshape(stop - start, width)


def output_row(batch: pa.RecordBatch, i: int) -> dict:
    """Row i of an output's record batch, with numpy arrays (pixels as (kept, token_bytes) uint8)."""
    small = {name: batch.column(name)[i].as_py() for name in ("id", "width", "height", "tokens", "kept", "tau")}
    small["kept_index"] = batch.column("kept_index")[i].values.to_numpy(zero_copy_only=False)
    small["index_map"] = batch.column("index_map")[i].values.to_numpy(zero_copy_only=False)
    small["pixels"] = kept_pixels(batch, i)
    return small


def row_problem(width: int, height: int, tokens: int, kept: int, kept_index: np.ndarray,
                index_map: np.ndarray | None, kept_rows: int, preset) -> str | None:
    """Why a row's index columns cannot describe a coded image (None when they can).

    Checked before any pixel is placed, so a hand-made or corrupted output
    gives one line saying what is wrong rather than an error deep in numpy.
    index_map None (a row handed to the model without it) skips its checks.
    """
    ts = preset.token_size
    if width < ts or height < ts or width % ts or height % ts:
        return f"size {width}x{height} is not a positive multiple of the token size {ts}"
    if tokens != (width // ts) * (height // ts) or (index_map is not None and len(index_map) != tokens):
        entries = "no" if index_map is None else len(index_map)
        return f"{tokens} tokens and {entries} index_map entries for a {width}x{height} image of {ts} px tokens"
    if not (len(kept_index) == kept == kept_rows):
        return f"kept is {kept}, with {len(kept_index)} kept_index entries and {kept_rows} pixels rows"
    if kept and (kept_index[0] < 0 or kept_index[-1] >= tokens or np.any(np.diff(kept_index) <= 0)):
        return f"kept_index is not ascending within [0, {tokens})"
    if index_map is None:
        return None
    if tokens and (index_map.min() < 0 or index_map.max() >= kept):
        return f"index_map points outside the {kept} kept tokens"
    if np.any(index_map[kept_index] != np.arange(kept)):
        return "index_map does not map each kept token to itself"
    return None


def checked_row(batch: pa.RecordBatch, i: int, preset, name) -> dict:
    """output_row(batch, i), refused (InputError naming `name` and the row) unless it can describe an image."""
    row = output_row(batch, i)
    problem = row_problem(row["width"], row["height"], row["tokens"], row["kept"], row["kept_index"],
                          row["index_map"], len(row["pixels"]), preset)
    if problem:
        raise InputError(f"{name}: row {row['id']!r}: {problem}")
    return row


def output_rows(path: str) -> int | None:
    """Rows of a compressed output from its footers (Parquet metadata, Arrow file batch headers); None for streams.

    Only for progress totals: None too when a file cannot be read (reading it will say why).
    """
    if path == STDIN:
        return None
    total = 0
    try:
        for file in output_files(path):
            total += _format(file).count_rows(file)
    except Exception:
        return None
    return total


def _stdin_batches(columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    """The batches of the stream on stdin; InputError unless it ends with the writer's end marker.

    Without the marker the stream was cut (its writer was killed or failed),
    even when the cut fell between two batches, which Arrow itself accepts.
    """
    from pixelprune_cli.outputs.writer import STREAM_END

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
