"""Inputs: folders, image files and Parquet image tables, streamed as items.

An item is an id plus a way to read its bytes, so enumeration stays cheap and
the bytes of each image are read in the worker that codes it. Order is
deterministic (sorted paths, Parquet row order), which makes output order,
shards and resumption reproducible.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from .errors import InputError, ReadFailure, one_line
from .pipeline import FailedImage

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
ROWS_PER_READ = 16  # Parquet rows decoded at a time: bounds memory on multi-GB shards


@dataclass
class Item:
    """One image to code: its id, a zero-argument reader of its bytes, carried columns."""

    id: str
    read: Callable[[], bytes]
    extra: dict = field(default_factory=dict)


@dataclass
class SourceCounts:
    """What enumeration saw besides images."""

    skipped_files: int = 0
    parquet_files: int = 0


@dataclass(frozen=True)
class SourceOptions:
    image_column: str | None = None
    keep_columns: tuple[str, ...] = ()


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ReadFailure(f"cannot read {path}: {exc.strerror or one_line(exc)}") from None


def walk_files(root: Path, counts: SourceCounts, visited: set) -> Iterator[tuple[Path, str]]:
    """Files under root in sorted order, following directory symlinks once each."""
    try:
        key = root.resolve()
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"cannot list folder {root}: {exc.strerror or one_line(exc)}") from None
    visited.add(key)
    for entry in entries:
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if is_dir:
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):
                yield path, "link"
                continue
            if target in visited:
                continue  # a symlink loop or a second way into a folder already read
            try:
                yield from walk_files(path, counts, visited)
            except InputError as exc:
                yield path, f"unlistable: {exc}"
        else:
            yield path, "file"


def _folder_items(root: Path, options: SourceOptions, counts: SourceCounts) -> Iterator["Item | FailedImage"]:
    for path, kind in walk_files(root, counts, set()):
        rel = path.relative_to(root).as_posix()
        suffix = path.suffix.lower()
        if kind.startswith("unlistable"):
            yield FailedImage(rel, "read", kind.split(": ", 1)[1])
        elif suffix in PARQUET_SUFFIXES:
            yield from _parquet_items(path, rel, options, counts, inside_folder=True)
        elif suffix not in IMAGE_SUFFIXES:
            counts.skipped_files += 1
        elif kind == "link" or not path.exists():
            yield FailedImage(rel, "read", f"broken or looping symlink {path}")
        else:
            yield Item(rel, partial(_read_file, str(path)))


def find_image_column(schema, requested: str | None, name: str) -> str:
    """The image column: --image-column, else the HF `Image` feature, else a bytes struct, else binary."""
    import pyarrow as pa

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
                if isinstance(feature, dict) and feature.get("_type") == "Image" and column in schema.names:
                    return column
        except (ValueError, AttributeError):
            pass
    for f in schema:
        if pa.types.is_struct(f.type) and f.type.get_field_index("bytes") >= 0:
            return f.name
    for f in schema:
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            return f.name
    raise InputError(f"{name}: no image column found (no HF Image feature, bytes struct or binary column); use --image-column")


def cell_reader(cell, base_dir: Path, label: str):
    """A reader for one image cell: raw bytes, or an HF {bytes, path} struct."""
    if cell is None:
        return None, "image cell is null"
    if isinstance(cell, (bytes, bytearray, memoryview)):
        data = bytes(cell)
        return (lambda: data), None
    if isinstance(cell, dict):
        data = cell.get("bytes")
        if data is not None:
            data = bytes(data)
            return (lambda: data), None
        ref = cell.get("path")
        if ref:
            target = Path(ref) if os.path.isabs(ref) else base_dir / ref
            return partial(_read_file, str(target)), None
        return None, "image cell has neither bytes nor path"
    return None, f"image cell holds {type(cell).__name__}, not bytes"


def _parquet_items(path: Path, name: str, options: SourceOptions, counts: SourceCounts, inside_folder: bool = False) -> Iterator["Item | FailedImage"]:
    import pyarrow.parquet as pq

    try:
        # pre_buffer=False: pyarrow would otherwise keep every chunk read so far
        # alive, and memory would grow with the file (measured in bench/memory.py).
        parquet = pq.ParquetFile(str(path), pre_buffer=False)
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
        raise InputError(f"{name}: --keep-columns names missing columns: {', '.join(missing)}")
    counts.parquet_files += 1
    columns = [column, *[c for c in options.keep_columns if c != column]]
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=ROWS_PER_READ, columns=columns):
            cells = batch.column(column).to_pylist()
            kept = {c: batch.column(c).to_pylist() for c in options.keep_columns}
            for i, cell in enumerate(cells):
                item_id = f"{name}#{row}"
                extra = {c: values[i] for c, values in kept.items()}
                reader, problem = cell_reader(cell, path.parent, item_id)
                if problem:
                    yield FailedImage(item_id, "read", problem, extra)
                else:
                    yield Item(item_id, reader, extra)
                row += 1
    except Exception as exc:
        # The rest of this file cannot be read: account for every remaining row.
        total = parquet.metadata.num_rows
        reason = f"Parquet data unreadable from row {row} ({one_line(exc)})"
        for rest in range(row, total):
            yield FailedImage(f"{name}#{rest}", "read", reason)


def iter_items(paths: list[str], options: SourceOptions = SourceOptions(), counts: SourceCounts | None = None) -> Iterator["Item | FailedImage"]:
    """Every input image, in a deterministic order; raises InputError for unusable paths.

    Ids: with one input, a folder's images are named by their path relative to
    the folder, a file by its name, a Parquet row `NAME.parquet#ROW`. With
    several inputs, the path as given replaces the name (and prefixes folder
    paths), so that ids stay unique.
    """
    counts = counts if counts is not None else SourceCounts()
    several = len(paths) > 1
    for raw in paths:
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"{raw}: no such file or folder")
        if path.is_dir():
            prefix = raw.rstrip("/" + os.sep) + "/" if several else ""
            for entry in _folder_items(path, options, counts):
                entry.id = prefix + entry.id
                yield entry
        elif path.suffix.lower() in PARQUET_SUFFIXES:
            yield from _parquet_items(path, raw if several else path.name, options, counts)
        else:
            yield Item(raw if several else path.name, partial(_read_file, raw))


def check_inputs(paths: list[str]) -> None:
    """Fail early (exit 2) on paths that do not exist, before any output is opened."""
    if not paths:
        raise InputError("no inputs given")
    for raw in paths:
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"{raw}: no such file or folder")
