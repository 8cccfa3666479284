"""A shard folder's manifest: the names of its files, and manifest.json read, checked against its files, and written.

manifest.json lists every committed shard with its size and SHA-256; it is
what `--resume`, `stats` and the readers trust, never a listing. Both shard
sinks (shards.ShardedSink on disk, store_sinks.StoreShardSink on a store) and
the readers share what is here.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pyarrow as pa

from .atomic import file_checksum, write_file
from .errors import ConfigError, InputError, option
from .formats import TABLE_FORMATS

MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"  # a shard folder's merged error report
STAGING = ".pixelprune-staging"  # inside DIR: a replacing (--overwrite) run's output until it commits
SWAP = ".pixelprune-swap"  # inside DIR: a committed replacement being moved into place
LOCK = ".pixelprune-lock"  # inside DIR; beside a file output it is .NAME.pixelprune-lock
_SHARD_FILE = re.compile(rf"part-\d{{5,}}\.({'|'.join(TABLE_FORMATS)}|errors\.jsonl)")  # shard_name's names


def shard_name(index: int, fmt: str = "arrow") -> str:
    return f"part-{index:05d}.{fmt}"


def shard_errors_name(index: int) -> str:
    return f"part-{index:05d}.errors.jsonl"


def same_config(a: dict, b: dict) -> bool:
    """Configs match when everything but the tool and library versions is equal (no backend: pil; and the
    image column, which outputs before 0.3.0 did not record: one absent from either side is not a difference)."""
    unrecorded = {"image_column"} - (a.keys() & b.keys())

    def strip(meta: dict) -> dict:
        return {"backend": "pil", **{k: v for k, v in meta.items()
                                     if k not in ("version", "runtime") and k not in unrecorded}}

    return strip(a) == strip(b)


def is_shard_file(name: str) -> bool:
    """A name the shard writer gives its files: part-NNNNN.arrow, .parquet, .errors.jsonl (never `part-time notes.txt`)."""
    return _SHARD_FILE.fullmatch(name) is not None


def is_folder_file(name: str) -> bool:
    """Every file a shard folder's writer makes, inside DIR or its staging folder."""
    return is_shard_file(name) or name in (MANIFEST, ERRORS)


def listed_files(manifest: dict, where: str, allowed) -> list[str]:
    """The table files a manifest lists, in shard order; InputError (naming `where`) for a name `allowed`
    refuses, or for none at all. Readers trust this list, never a listing."""
    names = [s.get("file") for s in sorted(manifest["shards"], key=lambda s: s.get("index", 0))]
    bad = [n for n in names if not (isinstance(n, str) and allowed(n))]
    if bad:
        raise InputError(f"{where}: its {MANIFEST} lists {bad[0]!r}, not a shard name pixelprune writes")
    if not names:
        raise InputError(f"{where}: its {MANIFEST} lists no shards")
    return names


def columns(schema: pa.Schema) -> list[list[str]]:
    """A schema's columns as the manifest records them: [name, Arrow type] (the metadata is `config`)."""
    return [[f.name, str(f.type)] for f in schema]


def check_same(folder: Path, manifest: dict, meta: dict, layout: dict) -> None:
    """Refuse (ConfigError) to resume with options that would write different files."""
    written = {key: manifest.get(key) for key in layout}
    written["format"] = written["format"] or "arrow"
    if "compression" not in manifest and "columns" not in manifest:  # from an older version: its shards
        written.update(compression=layout["compression"], columns=layout["columns"])  # fail intact()
    if not same_config(manifest["config"], meta) or written != layout:
        changed = [k for k in layout if written[k] != layout[k]]
        raise ConfigError(
            f"{folder} was written with a different configuration "
            f"({describe(manifest['config'])}, shard size {manifest['shard_size']}"
            + (f"; {', '.join(changed)} differ" if changed else "") + "); "
            f"resume with the same options, or pass {option('overwrite')} instead of {option('resume')} to start again"
        )


def intact(folder: Path, record: dict, fmt: str) -> bool:
    """A committed shard is kept only under its own names, with the size and SHA-256 the manifest holds."""
    index = record.get("index")
    if not isinstance(index, int) or index < 0:
        return False
    if record.get("file") != shard_name(index, fmt) or record.get("errors") != shard_errors_name(index):
        return False  # a manifest never sends a read outside the folder
    for name, size, digest in ((record["file"], record.get("bytes"), record.get("sha256")),
                               (record["errors"], record.get("errors_bytes"), record.get("errors_sha256"))):
        path = folder / name
        if size is None or path.is_symlink() or not path.is_file() or path.stat().st_size != size:
            return False
        if file_checksum(path) != (size, digest):
            return False
    return True


def read_manifest(folder: Path) -> dict | None:
    """The manifest in folder, None if there is none; ConfigError for a manifest.json that is not ours."""
    path = folder / MANIFEST
    if not os.path.lexists(path):
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if not (isinstance(manifest, dict) and isinstance(manifest.get("config"), dict)
            and isinstance(manifest.get("shard_size"), int) and isinstance(manifest.get("shards"), list)
            and all(isinstance(s, dict) for s in manifest["shards"])):
        raise ConfigError(f"{path} is not a pixelprune manifest; pixelprune replaces only its own files: "
                          "move it, or write elsewhere")
    return manifest


def write_manifest(folder: Path, meta: dict, layout: dict, shards: list[dict], complete: bool, extra: dict) -> None:
    """manifest.json, written whole (atomic.write_file): the commit record of a local shard folder."""
    shards = sorted(shards, key=lambda s: s["index"])
    manifest = {
        "config": meta,
        **layout,
        "complete": complete,
        **extra,
        "images": sum(s["images"] for s in shards),
        "written": sum(s["written"] for s in shards),
        "failed": sum(s["failed"] for s in shards),
        "shards": shards,
    }
    write_file(folder / MANIFEST, lambda handle: handle.write(json.dumps(manifest, indent=1).encode() + b"\n"))


def folder_bytes(folder: Path) -> int | None:
    """Bytes of the files a shard folder's output consists of: its manifest, what it lists, errors.jsonl.

    Never the rest of the folder (images, notes): "wrote ... (SIZE)" counts only what pixelprune wrote.
    None when there is no manifest to go by.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        listed = sum(s["bytes"] + s["errors_bytes"] for s in manifest["shards"])
        return listed + sum((folder / name).stat().st_size for name in (MANIFEST, ERRORS) if (folder / name).is_file())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def shard_checksums(folder: Path, index: int, fmt: str) -> dict:
    """Size and SHA-256 of a committed shard and of its error log, as the manifest lists them."""
    size, digest = file_checksum(Path(folder) / shard_name(index, fmt))
    errors_size, errors_digest = file_checksum(Path(folder) / shard_errors_name(index))
    return {"bytes": size, "sha256": digest, "errors_bytes": errors_size, "errors_sha256": errors_digest}


def describe(meta: dict) -> str:
    return ", ".join(f"{k}={meta.get(k)}" for k in ("preset", "method", "metric", "tau"))
