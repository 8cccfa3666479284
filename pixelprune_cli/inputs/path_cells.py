"""Path cells of an image table: where `{"bytes": null, "path": P}` may send pixelprune, by one written rule.

A table is data, and often downloaded: its cells must not choose what the
machine running pixelprune (or every Ray worker) reads or contacts. The rule,
documented with the Parquet input format:

1. A relative path is read beside the table: in its folder, or under its
   prefix on a store.
2. An absolute local path (`/data/x.png`, or `file:///data/x.png`) is read
   only for a table on the local disk.
3. A URL is read only on the table's own store: the same scheme and bucket
   (or host), under the table's credentials.
4. A `..` segment is refused, whatever is allowed: it climbs out of the
   table's folder, and a store answers it with an access error that reads
   like a credentials problem.

`--allow-path-schemes` (`SourceOptions.allow_path_schemes`) widens 2 and 3:
`file` lets a table on a store name local files, and any other scheme (`s3`,
`gs`, `http`, `https`, `hf`, ...) lets a table name URLs of that scheme on any
store. A store reached that way is not the run's: when it fails, after the
usual retries, the row fails, and the run goes on (`elsewhere`).

`resolve` is pure (text in, text out; no I/O), so the rule is tested alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pixelprune_cli.storage.urls import join, shown

OPTION = "--allow-path-schemes"
LOCAL = "file"  # the scheme name that allows local paths in a table on a store
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_ALIASES = {"gcs": "gs"}  # one store, two spellings


@dataclass(frozen=True)
class CellTarget:
    """Where a path cell is read: a local path or a URL, and whether that is another store than the table's."""

    path: str
    elsewhere: bool = False  # a store the user allowed by scheme: its failure is this row's, not an outage


@dataclass(frozen=True)
class Refusal:
    """Why a path cell is not read (the rule it breaks, and the option that allows it when one does)."""

    reason: str


def scheme_names(schemes) -> tuple[str, ...]:
    """The schemes `--allow-path-schemes` names, lower case and in one spelling; ValueError for a malformed one.

    Takes "s3,gs" as the command line gives it, or a list of names.
    """
    names = schemes.split(",") if isinstance(schemes, str) else list(schemes)
    found: list[str] = []
    for raw in names:
        name = str(raw).strip().lower().removesuffix("://")
        if not name:
            continue
        if not re.fullmatch(r"[a-z][a-z0-9+.-]*", name):
            raise ValueError(f"{raw!r} is not a URL scheme (e.g. s3, gs, http, https, file)")
        name = _ALIASES.get(name, name)
        if name not in found:
            found.append(name)
    return tuple(found)


def resolve(folder: str, ref: str, allowed: tuple[str, ...] = ()) -> CellTarget | Refusal:
    """Where the path cell `ref` of a table in `folder` (a local folder, or a URL prefix) is read, or why it is not.

    `allowed` holds names from `scheme_names`.
    """
    cell = shown(ref)
    folder_scheme = _scheme(folder)
    if _climbs(ref):
        return Refusal(f"path cell {cell} refused: it has a '..' segment, which no path cell may have (it would "
                       f"climb out of the table's folder; whatever {OPTION} allows)")
    scheme = _scheme(ref)
    if scheme == LOCAL:
        host = urlsplit(ref).netloc
        if host not in ("", "localhost"):
            return Refusal(f"path cell {cell} refused: a file:// URL names a file on this machine, and this one "
                           f"names the host {host!r}")
        ref = unquote(urlsplit(ref).path) or "/"
    if scheme is None or scheme == LOCAL:
        if not ref.startswith("/"):
            return CellTarget(join(folder, ref))
        if folder_scheme is None or LOCAL in allowed:
            return CellTarget(ref, elsewhere=folder_scheme is not None)
        return Refusal(f"path cell {cell} refused by the path-cell rule: a table on a store reads its path cells "
                       f"from that store only, and this is a local file; allow local files with {OPTION} {LOCAL}")
    if folder_scheme is not None and _same_store(ref, folder):
        return CellTarget(_on_table_store(folder, ref))
    if scheme in allowed:
        return CellTarget(ref, elsewhere=True)
    if folder_scheme is None:
        why = f"a table on the local disk reads its path cells from the local disk only, and this is a URL ({scheme}://)"
    else:
        why = f"a table on a store reads its path cells from that store only, and this URL ({scheme}://) is on another store"
    return Refusal(f"path cell {cell} refused by the path-cell rule: {why}; allow {scheme}:// URLs with {OPTION} {scheme}")


def _scheme(path: str) -> str | None:
    """`s3` for s3://b/k, `file` for file:///x, None for a plain path (a one-letter scheme is a
    Windows drive, as storage takes it: `c://x` is a relative path here, never a URL)."""
    match = _SCHEME.match(path)
    if match is None or len(match.group(1)) == 1:
        return None
    name = match.group(1).lower()
    return _ALIASES.get(name, name)


def _split(url: str) -> tuple[str, str, str]:
    """(userinfo, bucket or host, key) of scheme://[userinfo@]host/key, split by hand as storage.locate does."""
    netloc, _, key = url.split("://", 1)[1].partition("/")
    userinfo, _, host = netloc.rpartition("@")
    return userinfo, host, key


def _same_store(ref: str, folder: str) -> bool:
    """One scheme and bucket (or host, in any case), and no credentials in the cell other than the table's."""
    (ref_user, ref_host, _), (user, host, _) = _split(ref), _split(folder)
    scheme = _scheme(folder)
    if scheme not in ("s3", "gs"):
        ref_host, host = ref_host.lower(), host.lower()
    return _scheme(ref) == scheme and ref_host == host and ref_user in ("", user)


def _on_table_store(folder: str, ref: str) -> str:
    """The cell's key on the table's store, spelled as the table's URL (its scheme and credentials)."""
    head = folder.split("://", 1)[0]
    userinfo, host, _ = _split(folder)
    return f"{head}://{userinfo + '@' if userinfo else ''}{host}/{_split(ref)[2]}"


def _climbs(ref: str) -> bool:
    """True when the path has a `..` segment: a URL's key as written or percent-decoded (an HTTP server
    decodes it), a file:// URL's path decoded, a plain path as written (`%2e%2e` is a name on a disk)."""
    scheme = _scheme(ref)
    if scheme is None:
        texts = [ref]
    elif scheme == LOCAL:
        texts = [unquote(urlsplit(ref).path)]
    else:
        key = _split(ref)[2]
        texts = [key, unquote(key)]
    return any(".." in text.split("/") for text in texts)
