"""Inputs: folders, image files and Parquet image tables, planned as pieces and read as items.

`plan` enumerates every input image from folder listings and Parquet footers
only: image files, runs of Parquet rows, and inputs that failed to enumerate.
Both engines, and resume and sampling, work on that plan; `read_piece` turns a
piece into items (an id plus a way to read its bytes), so the bytes of each
image are read in the worker that codes it. Order is deterministic (sorted
paths, Parquet row order), which makes output order, shards and resumption
reproducible.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from . import storage
from .errors import ConfigError, InputError, ReadFailure, one_line, option
from .formats import IMAGE_SUFFIXES, PARQUET_SUFFIXES
from .preprocess import DEFAULT_MAX_IMAGE_BYTES
from .records import FailedImage, Item

if TYPE_CHECKING:
    from .summary import SpooledList

ROWS_PER_READ = 16  # Parquet rows decoded at a time: bounds memory on multi-GB shards


@dataclass
class SourceCounts:
    """What enumeration saw besides images: files left out of a folder walk, by name, and Parquet files."""

    skipped_files: int = 0
    skipped_hidden: int = 0  # of skipped_files: hidden files and folders (a folder counts once)
    parquet_files: int = 0
    skipped: SpooledList | None = None  # the skipped paths, spooled past 10,000; made on the first one
    image_columns: dict[str, int] = field(default_factory=dict)  # Parquet files read, by the column of their images

    def skip(self, name: str, hidden: bool = False) -> None:
        if self.skipped is None:
            from .summary import SpooledList

            self.skipped = SpooledList()
        self.skipped.append(name)
        self.skipped_files += 1
        self.skipped_hidden += hidden


@dataclass(frozen=True)
class SourceOptions:
    image_column: str | None = None
    keep_columns: tuple[str, ...] = ()
    hidden: bool = False  # walk into hidden files and folders (names starting with '.'), as rg/fd --hidden
    own_output: str | None = None  # the single output file a run writes: it and its companions are never inputs

    def __post_init__(self):
        twice = sorted({c for c in self.keep_columns if self.keep_columns.count(c) > 1})
        if twice:  # an Arrow table may hold two columns of one name, but no reader can pick one of them
            raise ConfigError(f"{option('keep_columns', list(self.keep_columns), ','.join(self.keep_columns))} "
                              f"names {', '.join(map(repr, twice))} more than once; name each column once")


def id_text(name: str) -> str:
    """A path as an id, reversibly: a backslash is doubled and each byte that is not UTF-8 is written `\\xNN`.

    Linux names are bytes; Python hands the bytes that are not UTF-8 over as
    lone surrogates, which no Arrow string (and no terminal) can hold.
    """
    if "\\" not in name and name.isascii():
        return name
    raw = os.fsencode(name).replace(b"\\", b"\\\\")
    return raw.decode("utf-8", "backslashreplace")


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def not_regular(mode: int) -> str | None:
    """What a file is when it is not a regular file (a read of it could block or never end), else None."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def check_regular(path: str, shown: str | None = None) -> None:
    """Raise InputError unless path is a regular file (symlinks followed): opening a FIFO blocks."""
    try:
        kind = not_regular(os.stat(path).st_mode)
    except OSError as exc:
        raise InputError(f"{shown or id_text(path)}: {exc.strerror or one_line(exc)}") from None
    if kind:
        raise InputError(f"{shown or id_text(path)}: is {kind}, not a regular file")


def _open_nonblocking(path, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)


def read_file(path: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a regular file of at most max_bytes; anything else is this image's ReadFailure.

    Not a regular file (a FIFO would block, /dev/zero never ends) is refused
    before it is opened, and at most max_bytes + 1 bytes are ever read.
    """
    if storage.is_url(path):
        return storage.read_bytes(path, max_bytes)
    shown = id_text(path)
    try:
        kind = not_regular(os.stat(path).st_mode)
        if kind:
            raise ReadFailure(f"{shown} is {kind}, not a regular file")
        # O_NONBLOCK: should the path become a FIFO after the check, opening it does not wait.
        with open(path, "rb", opener=_open_nonblocking) as handle:
            info = os.fstat(handle.fileno())
            kind = not_regular(info.st_mode)
            if kind:
                raise ReadFailure(f"{shown} is {kind}, not a regular file")
            if info.st_size > max_bytes:
                raise ReadFailure(f"{shown} is {info.st_size:,} bytes, over the limit of {max_bytes:,} (--max-image-bytes)")
            data = handle.read(max_bytes + 1)
            if len(data) < info.st_size:  # another process cut it while we read
                raise ReadFailure(f"{shown} was truncated while it was read: {len(data):,} of the "
                                  f"{info.st_size:,} bytes it had when opened")
    except OSError as exc:
        raise ReadFailure(f"cannot read {shown}: {exc.strerror or one_line(exc)}") from None
    except ValueError as exc:  # a NUL in a path from a Parquet cell
        raise ReadFailure(f"cannot read {shown}: {one_line(exc)}") from None
    if len(data) > max_bytes:
        raise ReadFailure(f"{shown} grew past the limit of {max_bytes:,} bytes (--max-image-bytes) while read")
    return data


def read_listed_file(path: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """read_file of an image file the plan listed; one gone since then says so, not just "No such file".

    A user reading the error log of a long run acts on these words: a file
    deleted or moved while the run went on is not a broken symlink.
    """
    try:
        return read_file(path, max_bytes)
    except ReadFailure:
        if not os.path.exists(path):
            raise ReadFailure(gone_reason(path)) from None
        raise


def gone_reason(path) -> str:
    """Why a listed path no longer leads to a file: a symlink whose target is gone (or loops), or it disappeared."""
    shown = id_text(str(path))
    if os.path.islink(path):
        return f"broken or looping symlink {shown}"
    return f"{shown} disappeared after it was listed (deleted or moved while the run went on)"


def held_bytes(data: bytes) -> Callable[..., bytes]:
    """A reader of bytes already in memory (a Parquet cell), with the same size limit as files."""

    def read(max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
        if len(data) > max_bytes:
            raise ReadFailure(f"image cell is {len(data):,} bytes, over the limit of {max_bytes:,} (--max-image-bytes)")
        return data

    return read


def walk_files(root: Path, counts: SourceCounts, visited: set, hidden: bool = True) -> Iterator[tuple[Path, str]]:
    """Files under root in sorted order, following directory symlinks once each.

    Without `hidden`, entries whose name starts with '.' (.git/, .cache/,
    .ipynb_checkpoints/) are yielded as kind 'hidden' (or 'hidden folder')
    and not walked into.
    """
    try:
        key = root.resolve()
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"cannot list folder {id_text(str(root))}: {exc.strerror or one_line(exc)}") from None
    visited.add(key)
    for entry in entries:
        path = Path(entry.path)
        if not hidden and entry.name.startswith("."):
            try:
                yield path, "hidden folder" if entry.is_dir() else "hidden"
            except OSError:
                yield path, "hidden"
            continue
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
                yield from walk_files(path, counts, visited, hidden)
            except InputError as exc:
                yield path, f"unlistable: {exc}"
        else:
            yield path, "file"


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
    candidates = [f.name for f in schema if (pa.types.is_struct(f.type) and f.type.get_field_index("bytes") >= 0)
                  or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
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
    import pyarrow.parquet as pq

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


def cell_reader(cell, base_dir: Path | str, label: str):
    """A reader for one image cell: raw bytes, or an HF {bytes, path} struct."""
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
            target = ref if os.path.isabs(ref) or storage.is_url(ref) else storage.join(str(base_dir), ref)
            return partial(read_file, target), None
        return None, "image cell has neither bytes nor path"
    return None, f"image cell holds {type(cell).__name__}, not bytes"


@dataclass(frozen=True)
class ImageFile:
    """One image file to read: its id and its path."""

    id: str
    path: str


@dataclass(frozen=True)
class ParquetRows:
    """Rows [start, stop) of a Parquet image table, known from its footer; ids are `name#ROW`."""

    path: str
    name: str
    column: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def ids(self) -> Iterator[str]:
        return (f"{self.name}#{row}" for row in range(self.start, self.stop))


# A piece of the input plan: an image file, a run of Parquet rows, or an input that failed
# to enumerate (FailedImage). Planning reads folder listings and Parquet footers, never images.
Piece = ImageFile | ParquetRows | FailedImage


def plan(paths: list[str], options: SourceOptions = SourceOptions(), counts: SourceCounts | None = None) -> Iterator[Piece]:
    """Every input image, in a deterministic order, as pieces; raises InputError for unusable paths.

    Ids: with one input, a folder's images are named by their path relative to
    the folder, a file by its name, a Parquet row `NAME.parquet#ROW`. With
    several inputs, the path as given replaces the name (and prefixes folder
    paths), so that ids stay unique. Both engines (local and Ray) enumerate
    through here, so they give every image the same id and position.
    """
    counts = counts if counts is not None else SourceCounts()
    several = len(paths) > 1
    if several:
        _refuse_overlaps(paths)
    for raw in paths:
        if storage.is_url(raw):
            from .objectstore import plan_url

            yield from plan_url(raw, several, options, counts)
            continue
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"{raw}: no such file or folder")
        if path.is_dir():
            prefix = raw.rstrip("/" + os.sep) + "/" if several else ""
            yield from _plan_folder(path, prefix, options, counts)
        elif path.suffix.lower() in PARQUET_SUFFIXES:
            yield from _plan_parquet(path, id_text(raw if several else path.name), options, counts, inside_folder=False)
        else:
            yield ImageFile(id_text(raw if several else path.name), os.path.abspath(raw))


def _refuse_overlaps(paths: list[str]) -> None:
    """InputError when two inputs are the same file or folder, or one lies inside another folder:
    their images would be coded twice, under ids that may coincide."""
    seen: dict[Path, str] = {}
    for raw in paths:
        try:
            resolved = Path(raw).resolve()
        except (OSError, RuntimeError):
            continue  # a broken link: plan reports it
        for other, other_raw in seen.items():
            if resolved == other:
                raise InputError(f"{id_text(raw)} and {id_text(other_raw)} are the same input given twice")
            inner, outer = (resolved, other) if other in resolved.parents else (other, resolved)
            if outer in inner.parents and outer.is_dir():
                raise InputError(f"{id_text(raw)} and {id_text(other_raw)} overlap (one is inside the other); "
                                 "give each image once")
        seen[resolved] = raw


def _plan_folder(root: Path, prefix: str, options: SourceOptions, counts: SourceCounts) -> Iterator[Piece]:
    from .overlap import OwnFiles

    own = OwnFiles(options.own_output) if options.own_output else ()
    for path, kind in walk_files(root, counts, set(), options.hidden):
        if path in own:  # this run's output, its error log, temporaries and lock: not even skipped
            continue
        name = id_text(prefix + path.relative_to(root).as_posix())
        suffix = path.suffix.lower()
        if kind.startswith("hidden"):
            counts.skip(name + ("/" if kind == "hidden folder" else ""), hidden=True)
        elif kind.startswith("unlistable"):
            yield FailedImage(name, "read", kind.split(": ", 1)[1])
        elif suffix in PARQUET_SUFFIXES:
            yield from _plan_parquet(path, name, options, counts, inside_folder=True)
        elif suffix not in IMAGE_SUFFIXES:
            counts.skip(name)
        elif kind == "link" or not path.exists():
            yield FailedImage(name, "read", gone_reason(path))
        else:
            yield ImageFile(name, os.path.abspath(path))


def _plan_parquet(path: Path | str, name: str, options: SourceOptions, counts: SourceCounts, inside_folder: bool) -> Iterator[Piece]:
    """All rows of one Parquet file, from its footer. Alone on the command line a bad file
    stops the run (exit 2); inside a folder it becomes one error entry."""
    import pyarrow.parquet as pq

    from .schema import META_KEY

    try:
        if not storage.is_url(path):
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
    counts.parquet_files += 1
    counts.image_columns[column] = counts.image_columns.get(column, 0) + 1
    if parquet.metadata.num_rows:
        yield ParquetRows(storage.absolute(str(path)), name, column, 0, parquet.metadata.num_rows)


def piece_size(piece: Piece) -> int:
    """How many input positions a piece takes."""
    return piece.size if isinstance(piece, ParquetRows) else 1


def piece_ids(piece: Piece) -> Iterator[str]:
    return piece.ids() if isinstance(piece, ParquetRows) else iter([piece.id])


def read_piece(piece: Piece, keep_columns: tuple[str, ...] = ()) -> Iterator[Item | FailedImage]:
    """The items of one piece, in order. Bad data never raises: every position yields an item or a failure."""
    if isinstance(piece, ImageFile):
        yield Item(piece.id, partial(read_listed_file, piece.path))
    elif isinstance(piece, ParquetRows):
        yield from _parquet_items(piece, keep_columns)
    else:
        yield piece


def cell_item(image_id: str, cell, base_dir: Path | str, extra: dict) -> Item | FailedImage:
    """One image cell as an item to code, or a read failure when the cell holds no image."""
    try:
        reader, problem = cell_reader(cell, base_dir, image_id)
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


def row_item(image_id: str, cell, base_dir: Path | str, extra: dict) -> Item | FailedImage:
    """One table row (values from `column_values`) as an item; a malformed value fails this row only."""
    bad = [v for v in (cell, *extra.values()) if isinstance(v, _BadCell)]
    if bad:  # its bad value is not carried
        return FailedImage(image_id, "read", bad[0].reason)
    return cell_item(image_id, cell, base_dir, extra)


def _parquet_items(piece: ParquetRows, keep_columns: tuple[str, ...]) -> Iterator[Item | FailedImage]:
    base_dir, row = storage.parent(piece.path), piece.start
    try:
        for start, stop, batches in _parquet_batches(piece, keep_columns):
            row = start
            try:
                for first, batch in batches:
                    cells = column_values(batch, piece.column)
                    kept = {c: column_values(batch, c) for c in keep_columns}
                    for i, cell in enumerate(cells):
                        yield row_item(f"{piece.name}#{first + i}", cell, base_dir, {c: values[i] for c, values in kept.items()})
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


def _parquet_batches(piece: ParquetRows, keep_columns: tuple[str, ...]):
    """The piece's batches, grouped by row group: (first row, stop row, lazy (first row, Arrow batch)
    iterator) for each row group holding rows of the piece, so that a bad page costs one group."""
    import pyarrow.parquet as pq

    # pre_buffer=False: pyarrow would otherwise keep every chunk read so far
    # alive, and memory would grow with the file (measured in bench/memory.py).
    parquet = pq.ParquetFile(storage.table_source(piece.path), pre_buffer=False)
    columns = [piece.column, *[c for c in keep_columns if c != piece.column]]
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


def sample(paths: list[str], options: SourceOptions = SourceOptions(), size: int = 100, seed: int = 0,
           counts: SourceCounts | None = None, pieces: Iterable[Piece] | None = None) -> tuple[list[Piece], int]:
    """(a uniform sample of `size` input positions as one-image pieces in input order, how many there are).

    Reservoir sampling over the plan (or `pieces`, a plan of paths already
    filtered): every image is equally likely, the same seed gives the same
    sample, and memory holds `size` pieces whatever the input, since no image
    is read. With `size` or fewer images, all of them.
    """
    import random

    rng = random.Random(seed)
    chosen: list[tuple[int, Piece]] = []
    position = 0
    for piece in plan(paths, options, counts) if pieces is None else pieces:
        for k in range(piece_size(piece)):
            slot = position if position < size else rng.randrange(position + 1)
            if slot < size:
                one = replace(piece, start=piece.start + k, stop=piece.start + k + 1) if isinstance(piece, ParquetRows) else piece
                if slot == len(chosen):
                    chosen.append((position, one))
                else:
                    chosen[slot] = (position, one)
            position += 1
    return [one for _, one in sorted(chosen, key=lambda c: c[0])], position


def iter_items(paths: list[str], options: SourceOptions = SourceOptions(), counts: SourceCounts | None = None) -> Iterator[Item | FailedImage]:
    """Every input image as an item (or a failure), in `plan` order; raises InputError for unusable paths."""
    for piece in plan(paths, options, counts):
        yield from read_piece(piece, options.keep_columns)


def check_inputs(paths: list[str]) -> None:
    """Fail early (exit 2) on paths that do not exist, before any output is opened."""
    if not paths:
        raise InputError("no inputs given")
    for raw in paths:
        if storage.is_url(raw):
            if storage.kind(raw) == "missing":
                raise InputError(f"{storage.shown(raw)}: no such file or folder")
            continue
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"{raw}: no such file or folder")
