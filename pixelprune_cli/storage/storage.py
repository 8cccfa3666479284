"""The storage seam: where a path or URL a user names is listed, stat'ed, opened, written and deleted.

`pyarrow.fs` is the one interface (what Ray Data, pyarrow.dataset and duckdb
read through): plain paths and `file://` stay on the local disk, `s3://` and
`gs://` go to `S3FileSystem` / `GcsFileSystem`, and any other scheme
(`hf://`, `az://`, ...) to fsspec wrapped in `PyFileSystem`, when fsspec is
installed (the `fsspec` extra). Object stores have no rename, no locks and
no append, so what is written here is written whole: a file is spooled on
the local disk first and uploaded in one call (a single PUT, or a multipart
upload that S3 completes only at its end), never streamed from Python code
that an exception could stop half-way, since an Arrow output stream dropped
unclosed completes its upload with what it has.

Which filesystem a URL gets, with its credentials, endpoint, retries and
timeouts, is filesystems.py's; a URL is shown with its secret replaced by
`***` (`shown`, `redact`, over the one parse in urls.py) wherever it is
printed or recorded, and a store error's reason is redacted too (`reason`).
"""

from __future__ import annotations

import os
import re
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from pixelprune_cli.errors import (
    ConfigError,
    InputError,
    OutputError,
    PixelpruneError,
    ReadFailure,
    StoreUnavailable,
    one_line,
)
from pixelprune_cli.storage import filesystems
from pixelprune_cli.storage.urls import credentials, id_text, is_url, local_path, redact, scheme_of, shown

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

# What the AWS SDK says when the store itself is unreachable or failing (after its retries), not one object.
_UNAVAILABLE = re.compile(r"NETWORK_CONNECTION|curlCode|SERVICE_UNAVAILABLE|INTERNAL_FAILURE|SLOW_DOWN|"
                          r"REQUEST_TIMEOUT|Throttl|timed out|Connection reset|Could not connect|"
                          r"HTTP status 5\d\d")  # a HEAD's 503 has no body to name it SlowDown by
# What Google's client says when it found no credentials to sign with (before any request is sent).
_NO_CREDENTIALS = re.compile(r"Could not create a OAuth2 access token")
_GOOGLE_STATUS = re.compile(r"google::cloud::Status\((.*?) error_info=")

# ------------------------------------------------------------------ filesystems

@dataclass(frozen=True)
class Location:
    """One file or folder: its filesystem, the path that filesystem takes, and the URL as shown."""

    fs: pafs.FileSystem
    path: str
    shown: str


def locate(path: str) -> Location:
    """The filesystem and path of a URL or a local path; InputError for a URL that cannot be used as written."""
    if scheme_of(path) is None:
        import pyarrow.fs as pafs

        return Location(pafs.LocalFileSystem(), os.path.abspath(local_path(path)), path)
    fs, inner = filesystems.for_url(path)
    return Location(fs, inner, shown(path))



def raise_if_unavailable(exc: BaseException, url: str) -> None:
    """ConfigError when exc says no credentials could be found; StoreUnavailable when it says the store (not
    this one object) failed."""
    if is_url(url) and _NO_CREDENTIALS.search(str(exc)):
        raise ConfigError(f"cannot reach {shown(url)}: no credentials for this store were found; set "
                          "GOOGLE_APPLICATION_CREDENTIALS to a key file or run `gcloud auth application-default "
                          "login` (STORAGE_EMULATOR_HOST for an emulator)") from None
    if is_url(url) and _UNAVAILABLE.search(str(exc)):
        raise StoreUnavailable(f"the store is unreachable or failing at {shown(url)}: {reason(exc, url)}; "
                               "committed work is kept, rerun with --resume (shard folders) once it is back") from None


def reason(exc: BaseException, url: str) -> str:
    """What went wrong, in one line, with any secret in it redacted: a URL's, and url's own secret wherever it
    stands (an fsspec store may quote its path, `KEY:SECRET@bucket/x`, with no scheme to find it by)."""
    text = redact(getattr(exc, "strerror", None) or one_line(exc))
    google = _GOOGLE_STATUS.search(text)  # google::cloud::Status(...) wraps one line in a paragraph of metadata
    text = google.group(1) if google else text
    found = credentials(url)
    for secret in {found.secret, unquote(found.secret)} if found is not None and found.secret else ():
        text = text.replace(secret, "***")
    return text


@contextmanager
def _converted(url: str, error: type[PixelpruneError], verb: str):
    import pyarrow as pa

    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        raise_if_unavailable(exc, url)
        raise error(f"cannot {verb} {shown(url)}: {reason(exc, url)}") from None


def writing(url: str):
    """Any store or OS error while writing url -> OutputError naming it (exit code 2)."""
    return _converted(url, OutputError, "write")


def reading(url: str):
    """Any store or OS error while reading url -> InputError naming it (exit code 2)."""
    return _converted(url, InputError, "read")


# ------------------------------------------------------------------ listing and stat

def kind(url: str) -> str:
    """'file', 'folder' or 'missing'; InputError when the store cannot be asked.

    A URL ending in '/' names the prefix, never an object of the same name beside it
    (a store may hold both `b/both` and `b/both/x`): it is a folder or missing.
    """
    import pyarrow.fs as pafs

    where = locate(url)
    with reading(url):
        info = where.fs.get_file_info(where.path)
        if info.type == pafs.FileType.File and is_url(url) and url.endswith("/"):  # an object: is a prefix beside it?
            # Listed only in this rare case: a listing pages through every entry, a stat asks for one.
            return "folder" if where.fs.get_file_info(pafs.FileSelector(where.path, allow_not_found=True)) else "missing"
    return {pafs.FileType.File: "file", pafs.FileType.Directory: "folder"}.get(info.type, "missing")


def size(url: str) -> int | None:
    """Bytes of a file, None when it does not exist."""
    import pyarrow.fs as pafs

    where = locate(url)
    with reading(url):
        info = where.fs.get_file_info(where.path)
    return info.size if info.type == pafs.FileType.File else None


def list_files(url: str) -> list[tuple[str, int]]:
    """(path relative to the folder, size) of every file under a folder URL, in the order a local walk gives.

    Sorted by path component, so `a/x.png` comes before `a-b.png` as in a
    walk of sorted folder entries, and ids come in the same order as local.
    """
    import pyarrow.fs as pafs

    where = locate(url)
    with reading(url):
        infos = where.fs.get_file_info(pafs.FileSelector(where.path, recursive=True, allow_not_found=True))
    prefix = where.path.rstrip("/") + "/"
    files = [(info.path[len(prefix):], info.size or 0) for info in infos
             if info.type == pafs.FileType.File and info.path.startswith(prefix)]
    return sorted(files, key=lambda f: f[0].split("/"))


# ------------------------------------------------------------------ reading

def open_random(url: str) -> pa.NativeFile:
    """A random-access file: Parquet and Arrow readers fetch only the footers, columns and row groups they need."""
    import pyarrow as pa

    if not is_url(url):
        return pa.memory_map(local_path(url))
    where = locate(url)
    return where.fs.open_input_file(where.path)


def table_source(url: str):
    """What `pq.ParquetFile` is given: the path itself when local (as before), an open random-access file otherwise."""
    return local_path(url) if not is_url(url) else open_random(url)


def read_bytes(url: str, max_bytes: int) -> bytes:
    """The bytes of one stored image of at most max_bytes; anything else is this image's ReadFailure
    (a listed key that no URL can name, `a/../b.png`, too: it fails alone, not the run)."""
    import pyarrow as pa

    try:
        where = locate(url)
    except InputError as exc:
        raise ReadFailure(str(exc)) from None
    try:
        with where.fs.open_input_file(where.path) as handle:
            total = handle.size()
            if total > max_bytes:
                raise ReadFailure(f"{where.shown} is {total:,} bytes, over the limit of {max_bytes:,} (--max-image-bytes)")
            return handle.read(total)
    except (OSError, pa.ArrowException) as exc:
        raise_if_unavailable(exc, url)
        raise ReadFailure(f"cannot read {where.shown}: {reason(exc, url)}") from None


def read_small(url: str) -> bytes | None:
    """A small file (a manifest) read whole; None when it does not exist."""
    import pyarrow as pa

    where = locate(url)
    try:
        with where.fs.open_input_stream(where.path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as exc:
        if "NoSuchKey" in str(exc) or "does not exist" in str(exc):
            return None
        raise_if_unavailable(exc, url)
        raise InputError(f"cannot read {where.shown}: {reason(exc, url)}") from None


def sha256_of(url: str) -> tuple[int, str]:
    """(size, SHA-256 hex) of a stored file, read in 4 MiB blocks."""
    import hashlib

    digest, total = hashlib.sha256(), 0
    where = locate(url)
    with reading(url), where.fs.open_input_stream(where.path) as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
            total += len(block)
    return total, digest.hexdigest()


# ------------------------------------------------------------------ writing, whole or not at all

def put_file(local: str, url: str) -> None:
    """Upload a complete local file to url in one call: the object appears whole or not at all.

    One C++ call (`copy_files`) does the whole upload, so a signal cannot
    stop it half-way with an unclosed stream that Arrow would complete.
    """
    import pyarrow.fs as pafs

    where = locate(url)
    with writing(url):
        pafs.copy_files(local, where.path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=where.fs)


def put_bytes(url: str, data: bytes) -> None:
    """Write a small object (a manifest) whole: one write, then the close that PUTs it."""
    where = locate(url)
    with writing(url), where.fs.open_output_stream(where.path) as out:
        out.write(data)


def check_writable(url: str) -> None:
    """OutputError (exit 2) naming url when the store refuses a write beside it, found before any image is coded.

    A zero-byte `.NAME.pixelprune-write-check` is written and deleted again (one
    fixed name, so a store that allows writes but not deletes keeps one, not one a run).
    """
    where = locate(url)
    folder, _, name = where.path.rpartition("/")
    probe = f"{folder}/.{name}.pixelprune-write-check"
    with writing(url), where.fs.open_output_stream(probe):
        pass
    try:
        where.fs.delete_file(probe)
    except OSError:
        pass


def delete(url: str) -> None:
    """Remove one file we wrote; one that is already gone is fine."""
    where = locate(url)
    try:
        where.fs.delete_file(where.path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if "NoSuchKey" not in str(exc) and "does not exist" not in str(exc):
            raise_if_unavailable(exc, url)
            raise OutputError(f"cannot delete {where.shown}: {reason(exc, url)}") from None


# Local files: a FIFO or device named as an input would block or never end.
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
