"""A shard folder's manifest: the names of its files, and manifest.json read, checked against its files, and written.

manifest.json lists every committed shard with its size and SHA-256; it is
what `--resume`, `stats` and the readers trust, never a listing. Both shard
sink (shards.ShardedSink, on disk and on a store) and the readers share what
is here.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pyarrow as pa

from pixelprune_cli.errors import ConfigError, InputError, option
from pixelprune_cli.outputs.formats import TABLE_FORMATS
from pixelprune_cli.storage import urls
from pixelprune_cli.storage.atomic import file_checksum

MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"  # a shard folder's merged error report
STAGING = ".pixelprune-staging"  # inside DIR: a replacing (--overwrite) run's output until it commits
SWAP = ".pixelprune-swap"  # inside DIR: a committed replacement being moved into place
LOCK = ".pixelprune-lock"  # inside DIR; beside a file output it is .NAME.pixelprune-lock
_SHARD_FILE = re.compile(rf"part-\d{{5,}}\.({'|'.join(TABLE_FORMATS)}|errors\.jsonl)")  # shard_name's names
STORE_SHARD = re.compile(rf"part-(\d{{5,}})-([0-9a-f]{{12}})\.({'|'.join(TABLE_FORMATS)}|errors\.jsonl)")  # + run id


def shard_name(index: int, fmt: str = "arrow") -> str:
    return f"part-{index:05d}.{fmt}"


def shard_errors_name(index: int) -> str:
    return f"part-{index:05d}.errors.jsonl"


def same_config(a: dict, b: dict) -> bool:
    """Configs match when everything but the tool and library versions is equal (no backend: pil; and the
    image column, which outputs before 0.3.0 did not record: one absent from either side is not a difference)."""
    return not config_differences(a, b)


def config_differences(written: dict, asked: dict) -> list[str]:
    """`key WRITTEN (not ASKED)` for each setting same_config finds different, in a stable order."""
    unrecorded = {"image_column"} - (written.keys() & asked.keys())

    def strip(meta: dict) -> dict:
        return {"backend": "pil", **{k: v for k, v in meta.items()
                                     if k not in ("version", "runtime") and k not in unrecorded}}

    old, new = strip(written), strip(asked)
    return [f"{key} {old.get(key)} (not {new.get(key)})" for key in sorted(old.keys() | new.keys())
            if old.get(key) != new.get(key)]


def is_shard_file(name: str) -> bool:
    """A name the shard writer gives its files: part-NNNNN.arrow, .parquet, .errors.jsonl (never `part-time notes.txt`)."""
    return _SHARD_FILE.fullmatch(name) is not None


def is_store_shard(name: str) -> bool:
    """A name a store run gives its shards (part-NNNNN-RUN.arrow, ...), or a local one (copied up with a sync tool)."""
    return STORE_SHARD.fullmatch(name) is not None or is_shard_file(name)


def is_folder_file(name: str) -> bool:
    """Every file a shard folder's writer makes, inside DIR or its staging folder."""
    return is_shard_file(name) or name in (MANIFEST, ERRORS)


def columns(schema: pa.Schema) -> list[list[str]]:
    """A schema's columns as the manifest records them: [name, Arrow type] (the metadata is `config`)."""
    return [[f.name, str(f.type)] for f in schema]


def check_same(folder, manifest: dict, meta: dict, layout: dict) -> None:
    """Refuse (ConfigError) to resume with options that would write different files."""
    if "shard_size" not in manifest:
        raise ConfigError(f"{folder}: its {MANIFEST} does not say how its shards were cut; "
                          f"pass {option('overwrite')} to start again")
    written = {key: manifest.get(key) for key in layout}
    written["format"] = written["format"] or "arrow"
    if "compression" not in manifest and "columns" not in manifest:  # from an older version: its shards
        written.update(compression=layout["compression"], columns=layout["columns"])  # fail intact()
    settings = config_differences(manifest["config"], meta)
    if settings or written != layout:
        changed = [k for k in layout if written[k] != layout[k]]
        details = ([f"it has {', '.join(settings)}"] if settings else []) + ([f"{', '.join(changed)} differ"] if changed else [])
        raise ConfigError(
            f"{folder} was written with a different configuration "
            f"({describe(manifest['config'])}, shard size {manifest['shard_size']}; {'; '.join(details)}); "
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


def kept_and_damaged(records: list[dict], intact: list[bool]) -> tuple[list[dict], list[dict]]:
    """Which listed shards --resume keeps (the first intact record of each index) and which it redoes.

    A record repeating a kept index is dropped, neither kept nor redone, so
    a damaged manifest that lists a shard twice is rewritten listing it once.
    """
    kept: dict[int, dict] = {}
    for record, ok in zip(records, intact):
        if ok:
            kept.setdefault(record["index"], record)
    damaged = [r for r, ok in zip(records, intact) if not ok and r["index"] not in kept]
    return list(kept.values()), damaged


def read_manifest(folder) -> dict | None:
    """The manifest in a shard folder (a local path or a store URL), None if it has none.

    ConfigError for a manifest.json that is not ours or is damaged (parse_manifest): the one reader of
    manifests, for the sinks on disk and on a store, and for everything that reads an output back.
    """
    from pixelprune_cli.storage import storage

    url = urls.join(str(folder), MANIFEST)
    if urls.is_url(url):
        data = storage.read_small(url)
    elif not os.path.lexists(url):
        data = None
    else:
        try:
            data = Path(url).read_bytes()
        except OSError:
            data = b""  # a folder or a dangling link under the manifest's name: not ours
    return None if data is None else parse_manifest(data, url)


def _count(value: object, needed: bool = False) -> bool:
    """A count in a manifest: a non-negative int (not a bool), or absent unless needed."""
    if value is None:
        return not needed
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _well_formed(manifest: object) -> bool:
    """The shape every reader relies on, so no field of a damaged or foreign manifest is a traceback later."""
    if not (isinstance(manifest, dict) and isinstance(manifest.get("config"), dict)
            and isinstance(manifest.get("shards"), list) and all(isinstance(s, dict) for s in manifest["shards"])):
        return False
    if not (_count(manifest.get("shard_size")) and manifest.get("shard_size") != 0
            and isinstance(manifest.get("complete", True), bool)
            and all(_count(manifest.get(k)) for k in ("images", "written", "failed"))):
        return False
    return all(_count(s.get("index"), needed=True) and all(_count(s.get(k)) for k in ("images", "written", "failed"))
               and all(isinstance(s.get(k, ""), str) for k in ("file", "errors")) for s in manifest["shards"])


def parse_manifest(data: bytes, where: str) -> dict:
    """A manifest's bytes as a dict; ConfigError naming `where` unless it has a pixelprune manifest's shape."""
    from pixelprune_cli.storage.urls import redact

    try:
        manifest = json.loads(data)
    except ValueError:
        manifest = None
    if not _well_formed(manifest):
        raise ConfigError(f"{redact(where)} is not a pixelprune manifest (or it is damaged); pixelprune replaces only "
                          "its own files: move it, or write elsewhere")
    return manifest


def repeated_index(manifest: dict) -> int | None:
    """A shard index the manifest lists more than once (no run writes one: a damaged or hand-edited manifest)."""
    seen: set[int] = set()
    for record in manifest["shards"]:
        if record["index"] in seen:
            return record["index"]
        seen.add(record["index"])
    return None


def listed_files(folder: str) -> list[str]:
    """The table files of a shard folder (a path or a URL), as its manifest lists them in shard order.

    Never a listing of the folder: a stray or copied part-* file is not part
    of the output. InputError when there is no manifest, when it lists a name
    pixelprune does not write (which could lead a read outside the folder),
    a shard twice, or nothing.
    """

    manifest = read_manifest(folder)
    shown = urls.redact(folder)
    if manifest is None:
        raise InputError(f"{shown}: no {MANIFEST}; a shard folder is read through its manifest")
    records = sorted(manifest["shards"], key=lambda s: s["index"])
    bad = [r.get("file") for r in records if not (isinstance(r.get("file"), str) and is_store_shard(r["file"]))]
    if bad:
        raise InputError(f"{shown}: its {MANIFEST} lists {bad[0]!r}, not a shard name pixelprune writes")
    repeated = repeated_index(manifest)
    if repeated is not None:
        raise InputError(f"{shown}: its {MANIFEST} lists shard {repeated} twice (damaged); `pixelprune compress ... "
                         f"-o {shown} {option('resume')}` rewrites it listing each shard once")
    if not records:
        raise InputError(f"{shown}: its {MANIFEST} lists no shards")
    return [urls.join(folder, r["file"]) for r in records]


def manifest_record(meta: dict, layout: dict, shards: list[dict], complete: bool, extra: dict) -> dict:
    """A shard folder's manifest as both kinds of folder write it: settings, totals, the shards in index order."""
    shards = sorted(shards, key=lambda s: s["index"])
    return {
        "config": meta,
        **layout,
        "complete": complete,
        **extra,
        "images": sum(s["images"] for s in shards),
        "written": sum(s["written"] for s in shards),
        "failed": sum(s["failed"] for s in shards),
        "shards": shards,
    }


def folder_bytes(folder: str) -> int | None:
    """Bytes of the files a shard folder's output consists of: its manifest, what it lists, errors.jsonl.

    The same files on a disk and on a store, never the rest of the folder
    (images, notes): "wrote ... (SIZE)" counts only what pixelprune wrote.
    None when there is no manifest to go by.
    """
    from pixelprune_cli.storage import storage

    try:
        manifest = read_manifest(folder)
    except ConfigError:
        return None
    if manifest is None:
        return None
    listed = sum((s.get("bytes") or 0) + (s.get("errors_bytes") or 0) for s in manifest["shards"])
    return listed + sum(storage.size(urls.join(str(folder), name)) or 0 for name in (MANIFEST, ERRORS))


def describe(meta: dict) -> str:
    return ", ".join(f"{k}={meta.get(k)}" for k in ("preset", "method", "metric", "tau"))
