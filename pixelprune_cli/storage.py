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

Credentials and the endpoint come from the standard environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE,
AWS_ENDPOINT_URL[_S3], AWS_DEFAULT_REGION / AWS_REGION, instance roles,
GOOGLE_APPLICATION_CREDENTIALS) or from `s3://KEY:SECRET@bucket/...`; a URL
is shown with its secret replaced by `***` (`urls.redact`) wherever it is
printed or recorded.
"""

from __future__ import annotations

import os
import re
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from .errors import InputError, OutputError, PixelpruneError, ReadFailure, StoreUnavailable, one_line
from .urls import id_text, is_url, local_path, redact, scheme_of

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

# Bounded waits: a store that does not answer ends the run in about
# attempts x (connect or request timeout) seconds, never hangs it.
CONNECT_TIMEOUT = 5.0  # seconds to open a connection
REQUEST_TIMEOUT = 30.0  # seconds a request may stall without a byte moving
ATTEMPTS = 4  # tries per request (AWS_MAX_ATTEMPTS overrides): throttling, resets and 5xx are retried with backoff
# What the AWS SDK says when the store itself is unreachable or failing (after its retries), not one object.
_UNAVAILABLE = re.compile(r"NETWORK_CONNECTION|curlCode|SERVICE_UNAVAILABLE|INTERNAL_FAILURE|SLOW_DOWN|"
                          r"REQUEST_TIMEOUT|Throttl|timed out|Connection reset|Could not connect")

# ------------------------------------------------------------------ filesystems

@dataclass(frozen=True)
class Location:
    """One file or folder: its filesystem, the path that filesystem takes, and the URL as shown."""

    fs: pafs.FileSystem
    path: str
    shown: str


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def _s3(userinfo: str) -> pafs.FileSystem:
    import pyarrow.fs as pafs

    options: dict = {"connect_timeout": CONNECT_TIMEOUT, "request_timeout": REQUEST_TIMEOUT,
                     "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=_attempts())}
    if userinfo:
        key, _, secret = userinfo.partition(":")
        options.update(access_key=unquote(key), secret_key=unquote(secret))
    endpoint = _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    region = _env("AWS_DEFAULT_REGION", "AWS_REGION")
    if region or endpoint:  # an S3-compatible server ignores the region, but the SDK must not go looking for one
        options["region"] = region or "us-east-1"
    return pafs.S3FileSystem(**options)


def _attempts() -> int:
    """AWS_MAX_ATTEMPTS, the SDKs' own setting, when it is a positive number; else ATTEMPTS."""
    value = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return int(value) if value.isdigit() and int(value) > 0 else ATTEMPTS


def _gcs() -> pafs.FileSystem:
    import pyarrow.fs as pafs

    return pafs.GcsFileSystem(retry_limit_seconds=_attempts() * REQUEST_TIMEOUT)


def _fsspec(url: str) -> tuple[pafs.FileSystem, str]:
    try:
        import fsspec
    except ImportError:
        raise InputError(f"{redact(url)}: the {scheme_of(url)}:// scheme needs fsspec: "
                         "pip install 'pixelprune[fsspec]' and the fsspec package for that store") from None
    import pyarrow.fs as pafs

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InputError(f"{redact(url)}: cannot reach this store ({redact(one_line(exc))})") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


@lru_cache(maxsize=16)
def _filesystem(scheme: str, userinfo: str, environment: tuple) -> pafs.FileSystem:
    """One filesystem per store and credentials (and environment, so a changed one is seen)."""
    return _s3(userinfo) if scheme == "s3" else _gcs()


_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_MAX_ATTEMPTS",
                "GOOGLE_APPLICATION_CREDENTIALS")


def locate(path: str) -> Location:
    """The filesystem and path of a URL or a local path."""
    scheme = scheme_of(path)
    if scheme is None:
        import pyarrow.fs as pafs

        local = os.path.abspath(local_path(path))
        return Location(pafs.LocalFileSystem(), local, path)
    if scheme in ("s3", "gs", "gcs"):
        # Split by hand: a key is taken as written, so '#', '?' and '%' in object names stay what they are.
        netloc, _, key = path.split("://", 1)[1].partition("/")
        userinfo, _, bucket = netloc.rpartition("@")
        if not bucket:
            raise InputError(f"{redact(path)}: no bucket in this URL")
        environment = tuple(os.environ.get(name) for name in _ENVIRONMENT)
        fs = _filesystem("s3" if scheme == "s3" else "gs", userinfo, environment)
        return Location(fs, f"{bucket}/{key}".rstrip("/"), redact(path))
    fs, inner = _fsspec(path)
    return Location(fs, inner.rstrip("/"), redact(path))


def raise_if_unavailable(exc: BaseException, url: str) -> None:
    """StoreUnavailable when exc says the store (not this one object) failed."""
    if is_url(url) and _UNAVAILABLE.search(str(exc)):
        raise StoreUnavailable(f"the store is unreachable or failing at {redact(url)}: {reason(exc)}; "
                               "committed work is kept, rerun with --resume (shard folders) once it is back") from None


def reason(exc: BaseException) -> str:
    """What went wrong, in one line, with any secret in it redacted."""
    return redact(getattr(exc, "strerror", None) or one_line(exc))


@contextmanager
def _converted(url: str, error: type[PixelpruneError], verb: str):
    import pyarrow as pa

    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        raise_if_unavailable(exc, url)
        raise error(f"cannot {verb} {redact(url)}: {reason(exc)}") from None


def writing(url: str):
    """Any store or OS error while writing url -> OutputError naming it (exit code 2)."""
    return _converted(url, OutputError, "write")


def reading(url: str):
    """Any store or OS error while reading url -> InputError naming it (exit code 2)."""
    return _converted(url, InputError, "read")


# ------------------------------------------------------------------ listing and stat

def kind(url: str) -> str:
    """'file', 'folder' or 'missing'; InputError when the store cannot be asked."""
    import pyarrow.fs as pafs

    where = locate(url)
    with reading(url):
        info = where.fs.get_file_info(where.path)
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
    """The bytes of one stored image of at most max_bytes; anything else is this image's ReadFailure."""
    import pyarrow as pa

    where = locate(url)
    try:
        with where.fs.open_input_file(where.path) as handle:
            total = handle.size()
            if total > max_bytes:
                raise ReadFailure(f"{where.shown} is {total:,} bytes, over the limit of {max_bytes:,} (--max-image-bytes)")
            return handle.read(total)
    except (OSError, pa.ArrowException) as exc:
        raise_if_unavailable(exc, url)
        raise ReadFailure(f"cannot read {where.shown}: {reason(exc)}") from None


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
        raise InputError(f"cannot read {where.shown}: {reason(exc)}") from None


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
            raise OutputError(f"cannot delete {where.shown}: {reason(exc)}") from None


def spool_dir() -> str:
    """A private local folder for files on their way to a store (removed by whoever made it).

    Named with this process's id, so that the folders of killed runs (at most
    a shard each) are found and removed by the next run that spools.
    """
    import tempfile

    _remove_dead_spools(tempfile.gettempdir())
    return tempfile.mkdtemp(prefix=f"pixelprune-spool-{os.getpid()}-")


def _remove_dead_spools(folder: str) -> None:
    import shutil

    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) < 4 or not name.startswith("pixelprune-spool-") or not parts[2].isdigit():
            continue
        try:
            os.kill(int(parts[2]), 0)  # alive (or not ours to signal): leave it
        except ProcessLookupError:
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
        except OSError:
            pass


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
