"""Parquet image tables as inputs: which column holds the images, a file's plan from its footer, its rows read as items.

Rows are read ROWS_PER_READ at a time, one row group after another, so memory
stays bounded on multi-GB files and a bad page costs one row group's images.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pyarrow.parquet as pq

from pixelprune_cli.coding.preprocess import DEFAULT_MAX_IMAGE_BYTES
from pixelprune_cli.errors import InputError, ReadFailure, StoreUnavailable, one_line, option
from pixelprune_cli.inputs import path_cells
from pixelprune_cli.inputs.image_lists import could_hold_images, holds_image_list, is_image_feature, list_item
from pixelprune_cli.inputs.input_files import held_bytes, read_file
from pixelprune_cli.inputs.pieces import ParquetRows, Piece, SourceCounts, SourceOptions
from pixelprune_cli.outputs.formats import PARQUET_SUFFIXES
from pixelprune_cli.outputs.schema import META_KEY
from pixelprune_cli.records import FailedImage, ImageRow, Item
from pixelprune_cli.storage import storage, urls
from pixelprune_cli.storage.storage import check_regular

ROWS_PER_READ = 16  # Parquet rows decoded at a time: bounds memory on multi-GB shards


def find_image_column(schema, requested: str | None, name: str) -> str:
    """The image column: --image-column, else the HF `Image` feature, else a bytes struct, else binary."""
    if requested is not None:
        if requested not in schema.names:
            raise InputError(f"{name}: no column {requested!r} (columns: {', '.join(schema.names)})")
        return requested
    meta = (schema.metadata or {}).get(b"huggingface")
    if meta:
        try:
            info = json.loads(meta)
            features = info.get("info", {}).get("features") or info.get("features") or {}
            for column, feature in features.items():
                if is_image_feature(feature) and column in schema.names:  # Image, or a list of them
                    return column
        except (ValueError, AttributeError):
            pass
    candidates = [f.name for f in schema if could_hold_images(f.type)]  # one image per cell, or a list of them
    if len(candidates) > 1:  # `thumb` and `full`: which one is the image is the user's call, not the schema's order
        raise InputError(f"{name}: {len(candidates)} columns could hold the images ({', '.join(candidates)}); "
                         f"choose one with {option('image_column', 'NAME')}")
    if candidates:
        return candidates[0]
    raise InputError(f"{name}: no image column found (no HF Image feature, bytes struct or binary column); "
                     f"name it with {option('image_column', 'NAME')}")


def image_column_known_before(inputs: list[str], options: SourceOptions) -> str | None:
    """The image column of every Parquet input, when it is known before the run, for the output's metadata.

    That is --image-column, or the one column that the Parquet files named as
    inputs all use (a footer read each). None when there are folders, whose
    Parquet files are found as the run goes (the report names their columns),
    or no Parquet input, or files that differ or cannot be read (the run says why).
    """
    if options.image_column is not None:
        return options.image_column
    if any(os.path.isdir(p) for p in inputs):
        return None
    columns = set()
    for path in inputs:
        if Path(path).suffix.lower() in PARQUET_SUFFIXES:
            try:
                columns.add(find_image_column(pq.read_schema(path), None, path))
            except Exception:
                return None
    return columns.pop() if len(columns) == 1 else None


def cell_reader(cell, base_dir: Path | str, label: str, allowed: tuple[str, ...] = ()):
    """A reader for one image cell: raw bytes, or an HF {bytes, path} struct whose path the
    path-cell rule (`path_cells.resolve`) allows; else (None, why not)."""
    if cell is None:
        return None, "image cell is null"
    if isinstance(cell, (bytes, bytearray, memoryview)):
        return held_bytes(bytes(cell)), None
    if isinstance(cell, dict):
        data = cell.get("bytes")
        if data is not None:
            return held_bytes(bytes(data)), None
        ref = cell.get("path")
        if ref:
            if not isinstance(ref, str):
                return None, f"malformed image cell (its path is {type(ref).__name__}, not a string)"
            target = path_cells.resolve(str(base_dir), ref, allowed)
            if isinstance(target, path_cells.Refusal):
                return None, target.reason
            return partial(read_path_cell, target), None
        return None, "image cell has neither bytes nor path"
    return None, f"image cell holds {type(cell).__name__}, not bytes"


def read_path_cell(target: path_cells.CellTarget, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """The bytes a path cell names. A store that only cells name (allowed by scheme) failing is this
    row's failure; the table's own store failing is an outage that stops the run (StoreUnavailable)."""
    try:
        return read_file(target.path, max_bytes)
    except StoreUnavailable as exc:
        if not target.elsewhere:
            raise
        cause = exc.__context__  # the store's own error, which raise_if_unavailable turned into an outage
        why = storage.reason(cause, target.path) if cause is not None else str(exc)
        raise ReadFailure(f"cannot read {urls.shown(target.path)}: its store, which only path cells name, is "
                          f"unreachable or failing ({why})") from None


def plan_parquet(path: Path | str, name: str, options: SourceOptions, counts: SourceCounts, inside_folder: bool) -> Iterator[Piece]:
    """All rows of one Parquet file, from its footer. Alone on the command line a bad file
    stops the run (exit 2); inside a folder it becomes one error entry."""
    try:
        if not urls.is_url(path):
            check_regular(str(path), name)  # a FIFO named x.parquet would block the open
        parquet = pq.ParquetFile(storage.table_source(str(path)))
        if META_KEY in (parquet.schema_arrow.metadata or {}):  # pixelprune's own output: never an image table
            if not inside_folder:
                raise InputError(f"{name}: a pixelprune output, not an image table; read it with stats, restore "
                                 "or show")
            counts.skip(name)
            return
        column = find_image_column(parquet.schema_arrow, options.image_column, name)
    except InputError as exc:
        if not inside_folder:
            raise
        yield FailedImage(name, "read", str(exc))
        return
    except Exception as exc:
        if not inside_folder:
            raise InputError(f"{name}: not a readable Parquet file ({one_line(exc)})") from None
        yield FailedImage(name, "read", f"not a readable Parquet file ({one_line(exc)})")
        return
    missing = [c for c in options.keep_columns if c not in parquet.schema_arrow.names]
    if missing:
        raise InputError(f"{name}: no column {', '.join(map(repr, missing))} to carry or group by "
                         f"(columns: {', '.join(parquet.schema_arrow.names)})")
    if options.id_column is not None and options.id_column not in parquet.schema_arrow.names:
        raise InputError(f"{name}: no column {options.id_column!r} for {option('id_column', options.id_column)} "
                         f"(columns: {', '.join(parquet.schema_arrow.names)})")
    counts.parquet_files += 1
    counts.image_columns[column] = counts.image_columns.get(column, 0) + 1
    if parquet.metadata.num_rows:
        yield ParquetRows(urls.absolute(str(path)), name, column, 0, parquet.metadata.num_rows,
                          options.allow_path_schemes, options.id_column,
                          many=holds_image_list(parquet.schema_arrow.field(column).type))


def cell_item(image_id: str, cell, base_dir: Path | str, extra: dict, allowed: tuple[str, ...] = ()) -> Item | ImageRow | FailedImage:
    """One image cell as an item to code, or a read failure when the cell holds no image.
    A list cell (a multi-image table) is one ImageRow of all its images (image_lists.list_item)."""
    if isinstance(cell, list):
        return list_item(image_id, cell, partial(cell_reader, base_dir=base_dir, label=image_id, allowed=allowed), extra)
    try:
        reader, problem = cell_reader(cell, base_dir, image_id, allowed)
    except Exception as exc:  # a cell of an unexpected shape (e.g. a struct whose path is not a string)
        reader, problem = None, f"malformed image cell ({one_line(exc)})"
    return FailedImage(image_id, "read", problem, extra) if problem else Item(image_id, reader, extra)


class _BadCell:
    """A Parquet value that cannot be turned into Python (invalid UTF-8, a timestamp out of range ...)."""

    def __init__(self, column: str, exc: Exception):
        self.reason = f"column {column!r}: malformed value ({one_line(exc)})"


def column_values(batch, name: str) -> list:
    """A batch column as Python values; a value that will not convert becomes a _BadCell, alone."""
    column = batch.column(name)
    try:
        return column.to_pylist()
    except Exception:
        values = []
        for i in range(len(column)):
            try:
                values.append(column[i].as_py())
            except Exception as exc:
                values.append(_BadCell(name, exc))
        return values


def row_item(image_id: str, cell, base_dir: Path | str, extra: dict, allowed: tuple[str, ...] = ()) -> Item | ImageRow | FailedImage:
    """One table row (values from `column_values`) as an item; a malformed value fails this row only."""
    bad = [v for v in (cell, *extra.values()) if isinstance(v, _BadCell)]
    if bad:  # its bad value is not carried
        return FailedImage(image_id, "read", bad[0].reason)
    return cell_item(image_id, cell, base_dir, extra, allowed)


def row_id(piece: ParquetRows, row: int, value=None) -> str:
    """A row's id: its id column's value (a string, or a number written out) when there is one, else NAME#ROW."""
    if piece.id_column is None or value is None or isinstance(value, (_BadCell, bytes, dict, list)):
        return f"{piece.name}#{row}"
    return str(value)


def row_ids(piece: ParquetRows) -> Iterator[str]:
    """The ids of a piece's rows, as parquet_items gives them: with an id column, that column alone is read."""
    if piece.id_column is None:
        yield from piece.ids()
        return
    row = piece.start
    try:
        for _, _, batches in _parquet_batches(piece, (), columns=[piece.id_column]):
            for first, batch in batches:
                for i, value in enumerate(column_values(batch, piece.id_column)):
                    yield row_id(piece, first + i, value)
                    row = first + i + 1
    except Exception:  # unreadable: parquet_items fails these rows under NAME#ROW
        yield from (f"{piece.name}#{rest}" for rest in range(row, piece.stop))


def parquet_items(piece: ParquetRows, keep_columns: tuple[str, ...]) -> Iterator[Item | ImageRow | FailedImage]:
    base_dir, row = urls.parent(piece.path), piece.start
    extra_columns = (*keep_columns, piece.id_column) if piece.id_column and piece.id_column not in keep_columns else keep_columns
    try:
        for start, stop, batches in _parquet_batches(piece, extra_columns):
            row = start
            try:
                for first, batch in batches:
                    cells = column_values(batch, piece.column)
                    kept = {c: column_values(batch, c) for c in keep_columns}
                    ids = column_values(batch, piece.id_column) if piece.id_column else [None] * len(cells)
                    for i, cell in enumerate(cells):
                        yield row_item(row_id(piece, first + i, ids[i]), cell, base_dir,
                                       {c: values[i] for c, values in kept.items()}, piece.allow_path_schemes)
                        row = first + i + 1
            except Exception as exc:
                # The rest of this row group cannot be read (a corrupt page): account for each of its
                # rows, then go on with the next row group, which has pages of its own.
                yield from _unreadable(piece, row, stop, exc)
    except Exception as exc:  # the file itself cannot be opened any more
        yield from _unreadable(piece, row, piece.stop, exc)


def _unreadable(piece: ParquetRows, start: int, stop: int, exc: Exception) -> Iterator[FailedImage]:
    storage.raise_if_unavailable(exc, piece.path)  # a store that went away fails the run, not these rows
    reason = f"Parquet data unreadable from row {start} ({one_line(exc)})"
    for rest in range(start, stop):
        yield FailedImage(f"{piece.name}#{rest}", "read", reason)


def _parquet_batches(piece: ParquetRows, keep_columns: tuple[str, ...], columns: list[str] | None = None):
    """The piece's batches, grouped by row group: (first row, stop row, lazy (first row, Arrow batch)
    iterator) for each row group holding rows of the piece, so that a bad page costs one group.
    Columns: the image column and `keep_columns`, or `columns` alone."""
    # pre_buffer=False: pyarrow would otherwise keep every chunk read so far
    # alive, and memory would grow with the file (measured in bench/memory.py).
    parquet = pq.ParquetFile(storage.table_source(piece.path), pre_buffer=False)
    columns = columns or [piece.column, *[c for c in keep_columns if c != piece.column]]
    offset = 0
    for index in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(index).num_rows
        if offset < piece.stop and offset + rows > piece.start:
            start, stop = max(offset, piece.start), min(offset + rows, piece.stop)
            yield start, stop, _group_batches(parquet, index, offset, columns, start, stop)
        offset += rows


def _group_batches(parquet, index: int, offset: int, columns: list[str], start: int, stop: int):
    """(first row, batch) over rows [start, stop) of row group `index`, which begins at row `offset`."""
    row = offset
    for batch in parquet.iter_batches(batch_size=ROWS_PER_READ, row_groups=[index], columns=columns):
        lo, hi = max(start - row, 0), min(stop - row, batch.num_rows)
        if hi > lo:
            yield row + lo, batch.slice(lo, hi - lo)
        row += batch.num_rows
