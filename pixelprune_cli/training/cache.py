"""A pixelprune output as a `datasets` dataset: `load_cache`.

The rows are the output's rows, carried columns included, read through the
project's own readers (so a URL goes through `storage`, with its credentials
and timeouts) and handed to `datasets` as Arrow tables. Each output file is
one `datasets` shard, so `datasets` does the rest: seeded shuffling (shard
order plus a buffer), `split_dataset_by_node`, DataLoader workers and
`state_dict()` for resuming mid-epoch. A shard folder is read through its
manifest: only the shards it lists, never a listing.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from pixelprune_cli.errors import InputError
from pixelprune_cli.outputs.readers import iter_output_batches, output_files, output_meta
from pixelprune_cli.outputs.schema import pixels_as_tokens
from pixelprune_cli.storage.urls import is_url, redact

ON_BAD_SHARD = ("raise", "skip")


def cache_files(source: str) -> list[str]:
    """The table files of an output: the file itself, or the shards a folder's manifest lists, in order."""
    source = str(source)
    if not is_url(source) and not Path(source).exists():
        raise InputError(f"{source}: no such file or folder")
    return output_files(source)


def _tables(files: list[str], token_bytes: int, on_bad_shard: str) -> Iterator[tuple[str, pa.Table]]:
    """(key, table) per record batch of each file, `pixels` as list<fixed_size_list<uint8>> whatever the format.

    A damaged file raises InputError naming it, or (on_bad_shard='skip') is
    left out with a warning; rows it gave before the damage was found stay.
    """
    for file in files:
        try:
            for k, batch in enumerate(iter_output_batches(file)):
                yield f"{file}:{k}", pa.Table.from_batches([pixels_as_tokens(batch, token_bytes)])
        except (InputError, ValueError) as exc:
            if on_bad_shard != "skip":
                raise InputError(str(exc) if isinstance(exc, InputError) else f"{redact(file)}: {exc}") from None
            warnings.warn(f"skipping a damaged shard: {exc}", stacklevel=2)


def _fingerprint(files: list[str], meta: dict) -> str:
    """What names these files' contents for `datasets`' cache: names, sizes, modification times, metadata.

    Without it, `Dataset.from_generator` keys its cache on the file names only
    and serves an output rewritten in place from the stale copy.
    """
    import hashlib
    import json
    import os

    from pixelprune_cli.storage.storage import size

    def stamp(file: str):
        if is_url(file):
            return [file, size(file)]
        info = os.stat(file)
        return [file, info.st_size, info.st_mtime_ns, info.st_ino]

    text = json.dumps([[stamp(f) for f in files], meta], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _rows(files: list[str], token_bytes: int, on_bad_shard: str) -> Iterator[dict]:
    """The rows as Python objects, for Dataset.from_generator, which writes them once to its Arrow cache."""
    for _, table in _tables(files, token_bytes, on_bad_shard):
        yield from table.to_pylist()


def load_cache(source, *, streaming: bool = True, on_bad_shard: str = "raise", **kwargs):
    """A pixelprune output (Arrow or Parquet file, or shard folder; a path or URL) as a `datasets` dataset.

    streaming=True gives a `datasets.IterableDataset` with one shard per
    output file, formatted as Arrow (each row a one-row `pyarrow.Table`, which
    `PrunedCollator` reads as arrays); streaming=False a `datasets.Dataset`
    (built once through `Dataset.from_generator`; kwargs go to it, e.g.
    cache_dir). on_bad_shard: 'raise' (InputError naming the file) or 'skip'
    (a warning, and the rest is read). The output's metadata is in
    `dataset.info.description` as JSON, and `PrunedCollator` takes `source` as
    its `meta` too.
    """
    import json

    import datasets
    from datasets.iterable_dataset import ArrowExamplesIterable

    from pixelprune_cli.coding.presets import resolve_preset

    if on_bad_shard not in ON_BAD_SHARD:
        raise ValueError(f"on_bad_shard is {on_bad_shard!r}, not one of {', '.join(ON_BAD_SHARD)}")
    source = str(source)
    files = cache_files(source)
    meta = output_meta(files[0])
    token_bytes = resolve_preset(meta).token_bytes
    first = next(_tables(files[:1], token_bytes, "raise"), None)
    if first is None:
        raise InputError(f"{redact(files[0])}: holds no rows")
    features = datasets.Features.from_arrow_schema(first[1].schema)
    info = datasets.DatasetInfo(features=features, description=json.dumps(meta, sort_keys=True))

    def generate_tables(files):
        yield from _tables(files, token_bytes, on_bad_shard)

    iterable = datasets.IterableDataset(ArrowExamplesIterable(generate_tables, {"files": files}), info=info)
    if streaming:
        if kwargs:
            raise TypeError(f"load_cache(streaming=True) takes no {', '.join(kwargs)}")
        return iterable.with_format("arrow")
    kwargs.setdefault("fingerprint", _fingerprint(files, meta))
    dataset = datasets.Dataset.from_generator(_rows, features=features, gen_kwargs={
        "files": files, "token_bytes": token_bytes, "on_bad_shard": on_bad_shard}, **kwargs)
    dataset.info.description = info.description
    return dataset.with_format("arrow")
