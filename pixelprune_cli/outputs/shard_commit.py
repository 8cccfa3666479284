"""How one finished shard reaches its folder: the one difference between a shard folder on a disk and on a store.

Everything else about a shard folder (the manifest, resume, overwrite, what
readers trust) is the same code for both (shards.py, manifest.py). A shard's
table and error log are written by writer.TableFile and ErrorLog into
`writing_dir()` and sealed there; `commit` then puts them where the manifest
will list them and returns their sizes and SHA-256:

- `DiskCommit`: written in the output folder itself, each file renamed into
  its final name when sealed (atomic.AtomicFile), so there is nothing left to
  move; the checksums are read back from the files.
- `StoreCommit`: written in a local spool folder and uploaded whole (a store
  has no rename), the local copies then removed (the spool holds one shard).

The shard sink (`ShardedSink`, through its `ShardFolder`) and the Ray engine's shard tasks
all commit through these, so a shard is committed one way whoever wrote it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pixelprune_cli.storage import storage, urls
from pixelprune_cli.storage.atomic import file_checksum


class ShardCommit(Protocol):
    def writing_dir(self) -> Path:
        """The local folder a shard's files are written in."""
        ...

    def commit(self, table: Path, errors: Path, names: tuple[str, str]) -> dict:
        """Put a sealed shard (table, error log) under `names` in the output; its checksums as the manifest lists them."""
        ...


def checksums_of(table: Path, errors: Path) -> dict:
    """Size and SHA-256 of a shard's table and of its error log, under the manifest's keys."""
    size, digest = file_checksum(table)
    errors_size, errors_digest = file_checksum(errors)
    return {"bytes": size, "sha256": digest, "errors_bytes": errors_size, "errors_sha256": errors_digest}


class DiskCommit:
    """A shard folder on a local disk: files are sealed under their final names in the folder itself."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def writing_dir(self) -> Path:
        return self.folder

    def commit(self, table: Path, errors: Path, names: tuple[str, str]) -> dict:
        if (Path(table).name, Path(errors).name) != tuple(names) or Path(table).parent != self.folder:
            raise ValueError(f"shard files {table}, {errors} are not {names} in {self.folder}")  # a bug, not a fault
        return checksums_of(Path(table), Path(errors))


class StoreCommit:
    """A shard folder on a store: files are sealed in a local spool folder, then uploaded whole under `names`."""

    def __init__(self, url: str, spool: str | Path):
        self.url, self.spool = url, Path(spool)
        self.uploaded: list[str] = []  # names uploaded (or being) and not yet listed in a manifest: the caller's to clear

    def writing_dir(self) -> Path:
        return self.spool

    def commit(self, table: Path, errors: Path, names: tuple[str, str]) -> dict:
        """Upload the error log, then the table; each name goes into `uploaded` before its upload, so an
        interrupted one is deleted by the sink's abort."""
        checksums = checksums_of(Path(table), Path(errors))
        for local, name in ((errors, names[1]), (table, names[0])):
            self.uploaded.append(name)
            storage.put_file(str(local), urls.join(self.url, name))
        for local in (table, errors):
            Path(local).unlink(missing_ok=True)
        return checksums
