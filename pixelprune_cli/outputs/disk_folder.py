"""The local side of a shard folder (shards.ShardFolder): a lock, a staging folder, and renames.

A run on DIR holds DIR/.pixelprune-lock for its whole life, so no second
run writes the folder (a store has no lock: store_sinks.StoreFolder claims
the folder with its manifest and reads it back instead).

A run that replaces an existing output (--overwrite) writes into
DIR/.pixelprune-staging, so the old output stays whole until the new one is
complete. Its commit renames the staging folder to DIR/.pixelprune-swap (the
commit point), then moves the new files over the old ones, manifest last; a
run killed during that move has it finished by the next run on DIR. Only
files with the writer's own names are ever removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from pixelprune_cli.errors import ConfigError, option
from pixelprune_cli.outputs.manifest import (
    ERRORS,
    LOCK,
    MANIFEST,
    STAGING,
    SWAP,
    intact,
    is_folder_file,
    is_shard_file,
    read_manifest,
    shard_errors_name,
    shard_name,
)
from pixelprune_cli.outputs.shard_commit import DiskCommit
from pixelprune_cli.storage.atomic import AtomicFile, TargetLock, output_errors, remove_stale_partials, write_file


def _remove_own_folder(folder: Path) -> None:
    """Empty a staging or swap folder of the files we write there, then remove it (left if anything else is inside)."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in folder.iterdir():
        if is_folder_file(entry.name) and not entry.is_dir():
            entry.unlink()
    remove_stale_partials(folder, is_folder_file)
    try:
        folder.rmdir()
    except OSError:
        pass


class DiskFolder:
    """A shard folder on a local disk: DIR itself, or DIR/.pixelprune-staging when replacing an output."""

    claims_by_manifest = False  # the lock claims the folder: a resumed run leaves intact files alone

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.name = str(folder)
        self.dir = self.folder  # where this run writes: DIR, or its staging folder (decided in `open`)
        self.lock: TargetLock | None = None

    @property
    def shard_dir(self) -> Path:
        return self.dir

    def committer(self) -> DiskCommit:
        return DiskCommit(self.dir)

    def new_names(self, index: int, fmt: str) -> tuple[str, str]:
        return shard_name(index, fmt), shard_errors_name(index)

    def open(self, resume: bool, overwrite: bool) -> dict | None:
        """Take the lock, choose where this run writes, and return the manifest it resumes from (None: none)."""
        with output_errors(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
            self.lock = TargetLock(self.folder / LOCK, self.name)
            self._finish_swap()  # a replacement a killed run had committed but not moved into place
            staging = self.folder / STAGING
            existing = read_manifest(self.folder) is not None or any(
                is_shard_file(p.name) for p in self.folder.iterdir())
            if resume and (staging / MANIFEST).is_file():
                self.dir = staging  # finish the interrupted replacement; the old output stays as it is
            elif resume or not existing:
                self.dir = self.folder
            elif not overwrite:
                raise ConfigError(f"{self.name} already holds a pixelprune output; pass {option('resume')} to finish "
                                  f"it or {option('overwrite')} to replace it")
            else:
                self.dir = staging
            if self.dir != staging:
                _remove_own_folder(staging)
            manifest = read_manifest(self.dir) if resume else None
            if manifest is None and resume and any(is_shard_file(p.name) for p in self.dir.iterdir()):
                raise ConfigError(f"{self.name} holds shards but no {MANIFEST}; pass {option('overwrite')} instead "
                                  f"of {option('resume')} to start again")
            if self.dir == staging:
                if manifest is None:
                    _remove_own_folder(staging)
                staging.mkdir(exist_ok=True)
            remove_stale_partials(self.dir, is_folder_file)
        return manifest

    def intact(self, records: list[dict], fmt: str) -> list[bool]:
        with output_errors(self.folder):
            return [intact(self.dir, record, fmt) for record in records]

    def drop(self, damaged: list[dict]) -> None:
        """Remove the files of shards that failed their check (torn, bit-flipped): only our own names."""
        with output_errors(self.folder):
            for record in damaged:
                for name in (record.get("file"), record.get("errors")):
                    if isinstance(name, str) and is_shard_file(name):
                        (self.dir / name).unlink(missing_ok=True)

    def stamp(self) -> dict:
        return {}

    def write_manifest(self, manifest: dict) -> None:
        """manifest.json, written whole (atomic.write_file): the commit record of the folder."""
        data = json.dumps(manifest, indent=1).encode() + b"\n"
        with output_errors(self.folder):
            write_file(self.dir / MANIFEST, lambda handle: handle.write(data))

    def commit(self, manifest: dict, error_logs: Iterable[str]) -> None:
        """errors.jsonl, then the complete manifest; a replacement is then swapped into place."""
        with output_errors(self.folder):
            merged = AtomicFile(self.dir / ERRORS, "wb")
            try:
                for name in error_logs:
                    merged.handle.write((self.dir / name).read_bytes())
            except BaseException:
                merged.abort()
                raise
            merged.commit()
            self.write_manifest(manifest)
            if self.dir != self.folder:
                os.rename(self.dir, self.folder / SWAP)  # the commit point of a replacement
                self._finish_swap()
            else:
                listed = {n for s in manifest["shards"] for n in (s["file"], s["errors"])}
                for old in self.folder.iterdir():  # shards a torn earlier run left, not part of this output
                    if is_shard_file(old.name) and old.name not in listed and not old.is_dir():
                        old.unlink()
                remove_stale_partials(self.folder, is_folder_file)

    def abort(self, committed_shards: bool) -> None:
        """A replacement that committed no shard leaves no trace; committed ones stay for --resume."""
        try:
            if self.dir != self.folder and not committed_shards:
                _remove_own_folder(self.dir)
        except OSError:
            pass

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def _finish_swap(self) -> None:
        """Move a committed replacement into place: its files over the old ones, the manifest last. Repeatable."""
        swap = self.folder / SWAP
        if not swap.is_dir() or swap.is_symlink():
            return
        try:
            manifest = read_manifest(swap)
        except ConfigError:  # cannot happen to a manifest we renamed there whole; leave the old output as it is
            manifest = None
        if manifest is not None:
            names = (s.get(key) for s in manifest["shards"] for key in ("file", "errors"))
            new = {MANIFEST, ERRORS, *(n for n in names if isinstance(n, str) and is_shard_file(n))}
            for old in self.folder.iterdir():
                if is_shard_file(old.name) and old.name not in new and not old.is_dir():
                    old.unlink()
            for name in sorted(new - {MANIFEST}) + [MANIFEST]:
                if (swap / name).is_file():
                    os.replace(swap / name, self.folder / name)
        _remove_own_folder(swap)
