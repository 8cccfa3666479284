"""Image files as inputs: reading one (a local path without blocking on a FIFO or device, a URL through storage; a size limit) and walking folders."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from pixelprune_cli.coding.preprocess import DEFAULT_MAX_IMAGE_BYTES
from pixelprune_cli.errors import InputError, ReadFailure, one_line
from pixelprune_cli.inputs.pieces import SourceCounts
from pixelprune_cli.storage import storage, urls
from pixelprune_cli.storage.urls import id_text


def _open_nonblocking(path, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)


def read_file(path: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a regular file of at most max_bytes; anything else is this image's ReadFailure.

    Not a regular file (a FIFO would block, /dev/zero never ends) is refused
    before it is opened, and at most max_bytes + 1 bytes are ever read.
    """
    if urls.is_url(path):
        return storage.read_bytes(path, max_bytes)
    shown = id_text(path)
    try:
        kind = storage.not_regular(os.stat(path).st_mode)
        if kind:
            raise ReadFailure(f"{shown} is {kind}, not a regular file")
        # O_NONBLOCK: should the path become a FIFO after the check, opening it does not wait.
        with open(path, "rb", opener=_open_nonblocking) as handle:
            info = os.fstat(handle.fileno())
            kind = storage.not_regular(info.st_mode)
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
