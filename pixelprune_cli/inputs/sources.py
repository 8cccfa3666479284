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

import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

from pixelprune_cli.errors import InputError
from pixelprune_cli.inputs.input_files import gone_reason, read_listed_file, walk_files
from pixelprune_cli.inputs.parquet_source import parquet_items, plan_parquet, row_ids
from pixelprune_cli.inputs.pieces import ImageFile, ParquetRows, Piece, SourceCounts, SourceOptions, piece_size
from pixelprune_cli.outputs.formats import IMAGE_SUFFIXES, PARQUET_SUFFIXES
from pixelprune_cli.outputs.overlap import OwnFiles
from pixelprune_cli.records import FailedImage, ImageRow, Item
from pixelprune_cli.storage import storage, urls
from pixelprune_cli.storage.urls import id_text


def plan(paths: list[str], options: SourceOptions = SourceOptions(), counts: SourceCounts | None = None) -> Iterator[Piece]:
    """Every input image, in a deterministic order, as pieces; raises InputError for unusable paths.
    With `options.limit`, the first that many positions only (the listing stops there too).

    Ids: with one input, a folder's images are named by their path relative to
    the folder, a file by its name, a Parquet row `NAME.parquet#ROW`. With
    several inputs, the path as given replaces the name (and prefixes folder
    paths), so that ids stay unique. Both engines (local and Ray) enumerate
    through here, so they give every image the same id and position.
    """
    pieces = _plan_all(paths, options, counts if counts is not None else SourceCounts())
    return pieces if options.limit is None else first_positions(pieces, options.limit)


def first_positions(pieces: Iterable[Piece], limit: int) -> Iterator[Piece]:
    """The plan cut after `limit` input positions; a run of Parquet rows is cut inside."""
    left = limit
    for piece in pieces:
        if left <= 0:
            return
        if piece_size(piece) > left and isinstance(piece, ParquetRows):
            piece = replace(piece, stop=piece.start + left)
        yield piece
        left -= piece_size(piece)


def _plan_all(paths: list[str], options: SourceOptions, counts: SourceCounts) -> Iterator[Piece]:
    several = len(paths) > 1
    if several:
        _refuse_overlaps(paths)
    for raw in paths:
        if urls.is_url(raw):
            yield from _plan_url(raw, several, options, counts)
            continue
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"{raw}: no such file or folder")
        if path.is_dir():
            prefix = raw.rstrip("/" + os.sep) + "/" if several else ""
            yield from _plan_folder(path, prefix, options, counts)
        elif path.suffix.lower() in PARQUET_SUFFIXES:
            yield from plan_parquet(path, id_text(raw if several else path.name), options, counts, inside_folder=False)
        else:
            yield ImageFile(id_text(raw if several else path.name), os.path.abspath(raw))



def _plan_url(url: str, several: bool, options: SourceOptions, counts: SourceCounts) -> Iterator[Piece]:
    """The pieces of one input URL: a folder (every object under the prefix), a Parquet table or an image."""
    kind = storage.kind(url)
    shown = urls.redact(url)
    if kind == "missing":
        raise InputError(f"{shown}: no such file or folder")
    if kind == "file":
        name = id_text(shown if several else urls.name_of(url))
        if os.path.splitext(url)[1].lower() in PARQUET_SUFFIXES:
            yield from plan_parquet(url, name, options, counts, inside_folder=False)
        else:
            yield ImageFile(name, url)
        return
    prefix = shown.rstrip("/") + "/" if several else ""
    hidden_folders: set[str] = set()
    for relative, _ in storage.list_files(url):
        parts = relative.split("/")
        name = id_text(prefix + relative)
        dot = next((i for i, part in enumerate(parts) if part.startswith(".")), None)
        if dot is not None and not options.hidden:
            if dot == len(parts) - 1:
                counts.skip(name, hidden=True)
            elif "/".join(parts[:dot + 1]) not in hidden_folders:
                hidden_folders.add("/".join(parts[:dot + 1]))
                counts.skip(id_text(prefix + "/".join(parts[:dot + 1])) + "/", hidden=True)
            continue
        suffix = os.path.splitext(parts[-1])[1].lower()
        if suffix in PARQUET_SUFFIXES:
            yield from plan_parquet(urls.join(url, relative), name, options, counts, inside_folder=True)
        elif suffix in IMAGE_SUFFIXES:
            yield ImageFile(name, urls.join(url, relative))
        else:
            counts.skip(name)


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
            yield from plan_parquet(path, name, options, counts, inside_folder=True)
        elif suffix not in IMAGE_SUFFIXES:
            counts.skip(name)
        elif kind == "link" or not path.exists():
            yield FailedImage(name, "read", gone_reason(path))
        else:
            yield ImageFile(name, os.path.abspath(path))


def piece_ids(piece: Piece) -> Iterator[str]:
    """The ids of a piece's positions, as read_piece gives them (an id column is read for them)."""
    return row_ids(piece) if isinstance(piece, ParquetRows) else iter([piece.id])


def read_piece(piece: Piece, keep_columns: tuple[str, ...] = ()) -> Iterator[Item | ImageRow | FailedImage]:
    """The items of one piece, in order. Bad data never raises: every position yields an item or a failure."""
    if isinstance(piece, ImageFile):
        yield Item(piece.id, partial(read_listed_file, piece.path))
    elif isinstance(piece, ParquetRows):
        yield from parquet_items(piece, keep_columns)
    else:
        yield piece


def sample(paths: list[str], options: SourceOptions = SourceOptions(), size: int = 100, seed: int = 0,
           counts: SourceCounts | None = None, pieces: Iterable[Piece] | None = None) -> tuple[list[Piece], int]:
    """(a uniform sample of `size` input positions as one-image pieces in input order, how many there are).

    Reservoir sampling over the plan (or `pieces`, a plan of paths already
    filtered): every image is equally likely, the same seed gives the same
    sample, and memory holds `size` pieces whatever the input, since no image
    is read. With `size` or fewer images, all of them.
    """
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


def iter_items(paths: list[str], options: SourceOptions = SourceOptions(), counts: SourceCounts | None = None) -> Iterator[Item | ImageRow | FailedImage]:
    """Every input image as an item (or a failure), in `plan` order; raises InputError for unusable paths."""
    for piece in plan(paths, options, counts):
        yield from read_piece(piece, options.keep_columns)


def check_inputs(paths: list[str]) -> None:
    """Fail early (exit 2) on paths that do not exist, before any output is opened."""
    if not paths:
        raise InputError("no inputs given")
    for raw in paths:
        if urls.is_url(raw):
            if storage.kind(raw) == "missing":
                raise InputError(f"{urls.redact(raw)}: no such file or folder")
            continue
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"{raw}: no such file or folder")
