"""An output never replaces, or lands inside, one of the run's inputs.

`--overwrite` means "replace an earlier output", never "destroy my input", so
every command that writes calls `refuse_overlap` before it touches anything.
Two paths are the same place when they resolve to the same path (symlinks,
`./` and `../` spellings) or, where the file exists, have the same
(st_dev, st_ino) (hard links, bind mounts). On an object store two URLs are
the same place when bucket and key are (credentials aside); a store and the
local disk never overlap.

The one exception, allowed on purpose: `compress -o in/out.parquet` over
`in/`. A table is not an image, the run never lists its own files
(`OwnFiles`), and later runs skip pixelprune outputs by their metadata.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pixelprune_cli.errors import ConfigError, option
from pixelprune_cli.storage import urls


@dataclass(frozen=True)
class Place:
    """A path as given; resolved; its entry (resolved folder + its own name, a symlink not
    followed); and its (st_dev, st_ino) when it exists."""

    shown: str
    path: Path
    entry: Path
    ident: tuple[int, int] | None
    is_dir: bool

    @classmethod
    def of(cls, raw: str) -> Place:
        plain = raw.rstrip("/" + os.sep) or raw
        try:
            path = Path(os.path.realpath(raw))  # the folders that exist resolved, the rest as spelled
            entry = Path(os.path.realpath(os.path.dirname(os.path.abspath(plain)))) / os.path.basename(plain)
        except ValueError:  # a NUL byte: no file can have this name
            path = entry = Path(os.path.abspath(plain))
        try:
            info = os.stat(raw)
        except (OSError, ValueError):  # not there (yet)
            return cls(raw, path, entry, None, False)
        return cls(raw, path, entry, (info.st_dev, info.st_ino), stat.S_ISDIR(info.st_mode))

    def same(self, other: Place) -> bool:
        return self.path == other.path or (self.ident is not None and self.ident == other.ident)

    def inside(self, folder: Place) -> bool:
        """This place, or its entry (a symlink there), lies somewhere under `folder` (a bind mount of it too)."""
        if folder.path in self.path.parents or folder.path in self.entry.parents:
            return True
        if folder.ident is None or not folder.is_dir:
            return False
        for parent in self.path.parents:
            try:
                info = os.stat(parent)
            except OSError:
                continue
            if (info.st_dev, info.st_ino) == folder.ident:
                return True
        return False


def refuse_overlap(inputs: list[str], output: str, *, owned_folder: bool = False, table_output: bool = False,
                   also_writes: tuple[str, ...] = ()) -> None:
    """ConfigError (exit code 2, naming both paths) when `output` would replace or sit inside an input.

    owned_folder: the output is a folder whose files pixelprune replaces (a
    shard folder), so an input inside it is refused too. table_output: a single
    `.arrow`/`.parquet` table, which may sit in an input folder (see the module
    docstring). also_writes: files written beside the output (its error log).
    """
    if urls.is_url(output):
        _refuse_store_overlap([raw for raw in inputs if urls.is_url(raw)], output)
        return
    out = Place.of(output)
    beside = [Place.of(p) for p in also_writes]
    for raw in inputs:
        if raw == "-" or urls.is_url(raw):
            continue
        given = Place.of(raw)
        for target in (out, *beside):
            if target.same(given):
                mine = "the output" if target is out else "the output's error log"
                raise ConfigError(f"{mine} {target.shown} is the input {raw} (the same file); pixelprune never "
                                  f"replaces an input, even with {option('overwrite')}: write the output elsewhere")
        if given.is_dir and out.inside(given):
            if not table_output:
                raise ConfigError(f"the output {output} is inside the input folder {raw}, so it would be read as "
                                  "an input; write the output elsewhere")
            if _listed_input(output):
                raise ConfigError(f"the output {output} would replace a table the input folder {raw} holds, "
                                  "which this run reads as an input; write the output elsewhere")
        if owned_folder and given.inside(out):
            raise ConfigError(f"the input {raw} is inside the output folder {output}, whose files pixelprune "
                              "writes and replaces; write the output elsewhere")


def _listed_input(path: str) -> bool:
    """An existing file at path that a folder walk reads: a Parquet table that is not a pixelprune output."""
    from pixelprune_cli.outputs.formats import PARQUET_SUFFIXES

    if not os.path.lexists(path) or Path(path).suffix.lower() not in PARQUET_SUFFIXES:
        return False
    return not _is_pixelprune_table(path)


def _is_pixelprune_table(path: str | Path) -> bool:
    """A table file whose schema carries pixelprune's metadata: an output, never an input."""
    from pixelprune_cli.outputs.formats import format_of
    from pixelprune_cli.outputs.schema import META_KEY

    fmt = format_of(path)
    if fmt is None:
        return False
    try:
        schema = fmt.read_schema(Path(path))
    except Exception:  # unreadable: whatever it is, it is not a whole output of ours
        return False
    return META_KEY in (schema.metadata or {})


class OwnFiles:
    """The files a run writes beside a single output, which its own folder walk never lists.

    OUT, OUT.errors.jsonl and the hidden .OUT.* beside them (temporaries,
    the lock): compared by name first (cheap), then by the folder they are in.
    """

    def __init__(self, output: str):
        self.folder = Place.of(os.path.dirname(os.path.abspath(output)))
        name = os.path.basename(output.rstrip("/" + os.sep))
        self.names = {name, name + ".errors.jsonl"}
        self.hidden_prefix = f".{name}."

    def __contains__(self, path: Path) -> bool:
        name = path.name
        if name not in self.names and not name.startswith(self.hidden_prefix):
            return False
        return Place.of(str(path.parent)).same(self.folder)


def _refuse_store_overlap(inputs: list[str], output: str) -> None:
    """ConfigError (exit 2) when an output on a store is an input, lies inside an input folder, or holds one:
    the run would read what it writes (its shards are Parquet tables), or replace what it reads."""
    out = _store_key(output)
    for raw in inputs:
        given = _store_key(raw)
        if out == given or out.startswith(given + "/") or given.startswith(out + "/"):
            raise ConfigError(f"{urls.redact(output)} overlaps the input {urls.redact(raw)} (one is inside the "
                              "other): a run would read what it writes; write the output elsewhere")


def _store_key(url: str) -> str:
    """scheme://bucket/key with no credentials and no trailing slash: what two URLs are compared by.

    The credentials end where `urls.credentials` says (as for signing and redaction), and gcs:// is gs://.
    """
    found = urls.credentials(url)
    scheme = urls.scheme_of(url)
    place = url[found.host_at if found else url.index("://") + 3:]
    return f"{'gs' if scheme == 'gcs' else scheme}://{place}".rstrip("/")
