"""Paths and URLs as text: which are on a store, joining and splitting them, and hiding their secrets.

No I/O and no pyarrow, so that anything may import it cheaply (the CLI prints
redacted paths before a command loads anything). I/O on them is storage.py's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme_of(path: str) -> str | None:
    """`s3` for s3://bucket/key, None for a plain path (Windows drives and `file://` count as local)."""
    match = _URL.match(str(path))
    if match is None or len(match.group(1)) == 1:
        return None
    scheme = match.group(1).lower()
    return None if scheme == "file" else scheme


def is_url(path) -> bool:
    """True for a path on an object store (any scheme but file://)."""
    return scheme_of(str(path)) is not None


def local_path(path: str) -> str:
    """A local path as the OS takes it: `file:///data/x` -> `/data/x`; anything else unchanged."""
    text = str(path)
    if text.lower().startswith("file://"):
        return unquote(urlsplit(text).path) or "/"
    return text

_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://")
# host, host:port, [v6 host]:port (a ':' that is no secret), as written or in running text ("(host:80).")
_HOST_PORT = re.compile(r"(\[[^\]/]*\]?|[^:\[\]]*)(:\d*)?[)\]}'\"`,.;!?]*")
_BUCKETS = ("s3", "gs", "gcs")  # schemes whose host is a bucket name, which never holds ':' or '@'
_ENCODE = ("percent-encode a '/' in them as %2F and an '@' as %40, or give the key in the environment "
           "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")


@dataclass(frozen=True)
class Credentials:
    """The userinfo of `scheme://USER:SECRET@host/...` as the one parse finds it, for both use and redaction.

    `hidden` is the (start, end) of what no message may show: the secret (all of
    the userinfo when it has no ':'), and, when the URL is ambiguous, everything up
    to the last '@' that could end it. `problem` says why such a URL is refused,
    without any of the secret.
    """

    user: str  # as written, percent-encoded
    secret: str | None  # as written; None for a userinfo with no ':' (a token)
    host_at: int  # where the host (the bucket) starts in the text
    hidden: tuple[int, int]
    problem: str | None


def credentials(url: str) -> Credentials | None:
    """The credentials in a URL, or None. The userinfo ends at the last '@' before the first '/' (a bucket or host
    name holds no '@'), so an '@' inside the secret is taken as written. A '/' in it cannot be: the URL is then
    refused, and its secret hidden up to the last '@' anywhere after it, whatever was meant."""
    match = _SCHEME.match(url)
    if match is None:
        return None
    scheme, start = url[: match.end() - 3].lower(), match.end()
    rest = url[start:]
    head = rest.split("/", 1)[0]
    last_at = rest.rfind("@")
    if "@" in head:
        end = last_at if last_at >= len(head) else head.rfind("@")  # an '@' further on may end them too: hide it all
        userinfo, host_at, problem = rest[:end], start + end + 1, None
        if end >= len(head):
            problem = "has an '@' after the '/' that follows its credentials, so where they end is unclear"
        elif any(c.isspace() or not c.isprintable() for c in userinfo):
            problem = "has a space or a control character in its credentials"
    elif ":" in head and (scheme in _BUCKETS or _HOST_PORT.fullmatch(head) is None):
        userinfo, host_at = rest if last_at < 0 else rest[:last_at], start + (len(rest) if last_at < 0 else last_at + 1)
        problem = "has a '/' in its credentials, or a ':' in its bucket name"
    else:
        return None
    user, colon, secret = userinfo.partition(":")
    hidden = (start + len(user) + 1 if colon else start, start + len(userinfo))
    if problem:
        problem = f"this URL {problem}: {_ENCODE}"
    return Credentials(user if colon else "", secret if colon else None, host_at, hidden, problem)


def redact(text: str) -> str:
    """text with the secret of every URL in it replaced by `***`, as `credentials` finds it.

    A URL in running text ends at the first space (a secret with a space is refused before
    it reaches any message); each `scheme://` starts one, so a URL inside another is seen too.
    """
    text, spans = str(text), []
    for match in _SCHEME.finditer(text):
        token = text[match.start():].split(None, 1)[0] if not text[match.start()].isspace() else ""
        found = credentials(token)
        if found is not None:
            spans.append((match.start() + found.hidden[0], match.start() + found.hidden[1]))
    return _hide(text, spans)


def shown(url: str) -> str:
    """How a URL is printed, reported or recorded: its secret hidden (the whole URL parsed, then as running text)."""
    url = str(url)
    found = credentials(url)
    return redact(url if found is None else _hide(url, [found.hidden]))


def _hide(text: str, spans: list[tuple[int, int]]) -> str:
    out, at = [], 0
    for begin, end in sorted(spans):
        if end <= at:
            continue
        out.append(text[at:max(begin, at)] + "***")
        at = end
    return "".join(out) + text[at:]


def join(base: str, name: str) -> str:
    """`base/name` for a URL or a path, without doubling the slash."""
    return base.rstrip("/") + "/" + name.lstrip("/") if is_url(base) else os.path.join(base, name)


def parent(url: str) -> str:
    """The folder holding a file URL (or path)."""
    if not is_url(url):
        return os.path.dirname(url)
    head, _, _ = url.rstrip("/").rpartition("/")
    return head


def name_of(url: str) -> str:
    return url.rstrip("/").rpartition("/")[2]


def absolute(path: str) -> str:
    """A URL as it is; a local path made absolute (what pieces carry into worker threads and Ray tasks)."""
    return path if is_url(path) else os.path.abspath(local_path(path))


def id_text(name: str) -> str:
    """A path as an id, reversibly: a backslash is doubled and each byte that is not UTF-8 is written `\\xNN`.

    Linux names are bytes; Python hands the bytes that are not UTF-8 over as
    lone surrogates, which no Arrow string (and no terminal) can hold.
    """
    if "\\" not in name and name.isascii():
        return name
    raw = os.fsencode(name).replace(b"\\", b"\\\\")
    return raw.decode("utf-8", "backslashreplace")
