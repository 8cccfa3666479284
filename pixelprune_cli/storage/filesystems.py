"""Which `pyarrow.fs` filesystem a URL gets, and how it is configured: credentials, endpoint, retries, timeouts.

Credentials and the endpoint come from the standard environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE,
AWS_ENDPOINT_URL[_S3], AWS_DEFAULT_REGION / AWS_REGION, AWS_MAX_ATTEMPTS,
instance roles; GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST) or from
`s3://KEY:SECRET@bucket/...`, parsed once by `urls.credentials`, which the
redaction of every message uses too. A setting that cannot work (an endpoint
that is no URL, credentials that cannot be told from the bucket, a `..`) is
refused here, naming it, before any connection is tried. Every wait is
bounded: a dead store ends a run in about attempts x timeout, never hangs it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pixelprune_cli.errors import ConfigError, InputError, one_line
from pixelprune_cli.storage.urls import Credentials, credentials, redact, scheme_of, shown

if TYPE_CHECKING:
    import pyarrow.fs as pafs

# Bounded waits: a store that does not answer ends the run in about
# attempts x (connect or request timeout) seconds, never hangs it.
CONNECT_TIMEOUT = 5.0  # seconds to open a connection
REQUEST_TIMEOUT = 30.0  # seconds a request may stall without a byte moving
ATTEMPTS = 4  # tries per request (AWS_MAX_ATTEMPTS overrides): throttling, resets and 5xx are retried with backoff
GCS_RETRY_SECONDS = 20.0  # how long a GCS call retries transient errors (GCS retries by time, not by count)


def for_url(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, the path it takes) for a URL: s3:// and gs:// through pyarrow's own, the rest through fsspec."""
    scheme = scheme_of(path)
    found = check_url(path)
    if scheme not in ("s3", "gs", "gcs"):
        fs, inner = _fsspec(path)
        return fs, inner.rstrip("/")
    # Split by hand: a key is taken as written, so '#', '?' and '%' in object names stay what they are.
    bucket, _, key = path[found.host_at if found else len(scheme) + 3:].partition("/")
    if not bucket:
        raise InputError(f"{shown(path)}: no bucket in this URL")
    if found is not None and (scheme != "s3" or found.secret is None):
        raise InputError(f"{shown(path)}: " + ("a gs:// URL takes no credentials; set GOOGLE_APPLICATION_CREDENTIALS"
                         if scheme != "s3" else "credentials in an s3:// URL are KEY:SECRET@"))
    environment = tuple(os.environ.get(name) for name in _ENVIRONMENT)
    fs = cached("s3" if scheme == "s3" else "gs", found.user if found else "", found.secret if found else None,
                environment)
    return fs, f"{bucket}/{key}".rstrip("/")


def _s3(user: str, secret: str | None) -> pafs.FileSystem:
    import pyarrow.fs as pafs

    options: dict = {"connect_timeout": CONNECT_TIMEOUT, "request_timeout": REQUEST_TIMEOUT,
                     "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=attempts())}
    if secret is not None:
        options.update(access_key=unquote(user), secret_key=unquote(secret))
    endpoint = s3_endpoint()
    if endpoint:
        options.update(endpoint_override=endpoint[1], scheme=endpoint[0])
    region = _env("AWS_DEFAULT_REGION", "AWS_REGION")
    if region or endpoint:  # an S3-compatible server ignores the region, but the SDK must not go looking for one
        options["region"] = region or "us-east-1"
    return pafs.S3FileSystem(**options)


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def s3_endpoint() -> tuple[str, str] | None:
    """(scheme, host[:port]) from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL; ConfigError (exit 2) naming the
    variable and what is wrong with it, before any connection is tried."""
    name = next((n for n in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") if os.environ.get(n)), None)
    return None if name is None else _endpoint(name, ("http", "https"))


def _endpoint(name: str, schemes: tuple[str, ...], bare: str = "https") -> tuple[str, str]:
    """(scheme, host[:port]) of the endpoint in variable `name` (`bare`:// when it has no scheme)."""
    value = os.environ[name]
    wrong = None
    try:
        parts = urlsplit(value if "://" in value else f"{bare}://{value}")
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number in range)
    except ValueError as exc:
        wrong = f"it is not a URL ({exc})"
    else:
        if parts.scheme.lower() not in schemes:
            wrong = f"its scheme is {parts.scheme!r}; an endpoint is {' or '.join(s + '://' for s in schemes)}"
        elif not parts.hostname:
            wrong = "it names no host"
        elif parts.username is not None or parts.password is not None:
            wrong = "it holds credentials; give them as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        elif parts.path.strip("/") or parts.query or parts.fragment:
            wrong = "it has a path or a query; an endpoint is a scheme, a host and a port, as in http://host:9000"
    if wrong:
        raise ConfigError(f"the environment variable {name}={shown(value)} is not a usable endpoint: {wrong}")
    return parts.scheme.lower(), parts.netloc


def attempts() -> int:
    """AWS_MAX_ATTEMPTS, the SDKs' own setting, when it is a positive number; else ATTEMPTS."""
    value = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return int(value) if value.isdigit() and int(value) > 0 else ATTEMPTS


def _gcs() -> pafs.FileSystem:
    """GCS retries by time, not by count: GCS_RETRY_SECONDS bounds each call's retries of transient errors
    (a dead store, missing credentials), after which the run ends with one line. STORAGE_EMULATOR_HOST, the
    variable Google's own libraries read, points it at an emulator, which takes no credentials."""
    from datetime import timedelta

    import pyarrow.fs as pafs

    options: dict = {"retry_time_limit": timedelta(seconds=GCS_RETRY_SECONDS)}
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        scheme, host = _endpoint("STORAGE_EMULATOR_HOST", ("http", "https"), bare="http")  # as Google's libraries
        options.update(endpoint_override=host, scheme=scheme, anonymous=True)
    return pafs.GcsFileSystem(**options)


def _fsspec(url: str) -> tuple[pafs.FileSystem, str]:
    try:
        import fsspec
    except ImportError:
        raise InputError(f"{shown(url)}: the {scheme_of(url)}:// scheme needs fsspec: "
                         "pip install 'pixelprune[fsspec]' and the fsspec package for that store") from None
    import pyarrow.fs as pafs

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InputError(f"{shown(url)}: cannot reach this store ({redact(one_line(exc))})") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


@lru_cache(maxsize=16)
def cached(scheme: str, user: str, secret: str | None, environment: tuple) -> pafs.FileSystem:
    """One filesystem per store and credentials (and environment, so a changed one is seen)."""
    return _s3(user, secret) if scheme == "s3" else _gcs()


_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_MAX_ATTEMPTS",
                "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GCE_METADATA_ROOT")


def check_url(url: str) -> Credentials | None:
    """The URL's credentials; InputError (exit 2) for a URL that names its place ambiguously: credentials that
    cannot be told from the rest (say which characters to encode, never the secret), or a '..' segment, which
    a store takes as a key's literal part or refuses as ACCESS_DENIED, never as "the folder above"."""
    found = credentials(url)
    if found is not None and found.problem:
        raise InputError(f"{shown(url)}: {found.problem}")
    place = url[found.host_at if found else url.index("://") + 3:]
    if ".." in place.split("/")[1:]:
        raise InputError(f"{shown(url)}: a '..' in a URL is refused: a store has no folder above a key; "
                         "write the URL without it")
    return found
