"""Paths and URLs as text: which are on a store, joining and splitting them, and hiding their secrets.

No I/O and no pyarrow, so that anything may import it cheaply (the CLI prints
redacted paths before a command loads anything). I/O on them is storage.py's.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/@\s:]*):([^/@\s]*)@")


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


def redact(text: str) -> str:
    """Every `scheme://user:secret@` in text with its secret replaced by `***`."""
    return _USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", str(text))


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
