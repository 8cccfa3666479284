"""Multi-image rows (a GUI trajectory's screenshots, TRL's `images` column) in Arrow: written and flattened.

One output row per sample, so a shuffled stream keeps samples whole: `id`
and carried columns per row, each per-image core column a list with one entry
per image, in the row's order (schema.output_schema with `images_per_row:
many`). How a row's images are coded is `row_coding`'s.

`flatten_images(batch)` is the seam for readers (the collator, stats, restore,
show): a batch of multi-image rows as a batch of the single-image schema, one
row per image, over the same buffers, plus the offsets saying which images
belong to which row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from pixelprune_cli.outputs.schema import (
    IMAGES_PER_ROW,
    META_KEY,
    PER_IMAGE_COLUMNS,
    _numeric,
    _strings,
    is_multi_image,
    output_schema,
    read_meta,
    to_record_batch,
)


def image_id(row_id: str, k: int) -> str:
    """The id of image k (from 0) of a multi-image row: `ROW~K` (the part after the last `~` is the index)."""
    return f"{row_id}~{k}"


# -- to Arrow and back ------------------------------------------------------------------------

def image_schema(schema: pa.Schema) -> pa.Schema:
    """The single-image schema (core columns only) of a multi-image schema's images."""
    return output_schema(_single_meta(read_meta(schema) or {}), schema.field("pixels").type.value_type.value_type.list_size)


def _single_meta(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k != IMAGES_PER_ROW}


def to_record_batch_of(results: list, schema: pa.Schema) -> pa.RecordBatch:
    """A batch of `schema` from CodedImages, or from CodedRows when the schema is multi-image."""
    if not is_multi_image(read_meta(schema)):
        return to_record_batch(results, schema)
    images = image_schema(schema)
    flat = to_record_batch([image for row in results for image in row.images], images)
    offsets = np.zeros(len(results) + 1, dtype=np.int32)
    np.cumsum([len(row.images) for row in results], out=offsets[1:])
    offsets_array = _numeric(offsets, pa.int32())
    columns = {"id": _strings([row.id for row in results])}
    for name in PER_IMAGE_COLUMNS:
        columns[name] = pa.ListArray.from_arrays(offsets_array, flat.column(name))
    for f in schema:
        if f.name not in columns:  # carried columns, one value per row
            columns[f.name] = pa.array([row.extra.get(f.name) for row in results], type=f.type)
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)


def is_multi_batch(batch: pa.RecordBatch | pa.Table) -> bool:
    """Whether a batch holds multi-image rows: by its metadata, else by its per-image columns being lists."""
    meta = (batch.schema.metadata or {}).get(META_KEY)
    if meta is not None:
        try:
            return is_multi_image(read_meta(batch.schema))
        except ValueError:
            pass
    for name in ("tokens", "kept", "width", "source_width"):
        if name in batch.schema.names:
            return pa.types.is_list(batch.schema.field(name).type) or pa.types.is_large_list(batch.schema.field(name).type)
    return False


def flatten_images(batch: pa.RecordBatch | pa.Table, repeat_carried: bool = False) -> tuple[pa.RecordBatch, np.ndarray]:
    """(one row per image in the single-image schema, row_offsets) of a batch of multi-image rows.

    Images of row i are rows row_offsets[i]:row_offsets[i+1] of the result (int64,
    len(batch) + 1 entries). The per-image columns are the list columns'
    values, zero-copy; `id` becomes `ROW~K` (image_id); carried columns are
    left out (the collator reads them per row from `batch`), or repeated per
    image with `repeat_carried`. Whatever per-image columns the batch holds are
    flattened (stats reads a few). A batch of single-image rows comes back as
    it is, with offsets 0..n. Raises ValueError if the per-image columns of a
    row disagree on its image count.
    """
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else pa.RecordBatch.from_pylist([], schema=batch.schema)
    if not is_multi_batch(batch):
        return batch, np.arange(batch.num_rows + 1, dtype=np.int64)
    per_image = [f.name for f in batch.schema if f.name in PER_IMAGE_COLUMNS]
    if not per_image:
        raise ValueError("no per-image column to flatten (tokens, kept, pixels, ...)")
    spans = {name: _row_offsets(batch.column(name)) for name in per_image}  # (offsets from 0, first value)
    offsets = spans[per_image[0]][0]
    for name in per_image[1:]:
        if not np.array_equal(spans[name][0], offsets):
            raise ValueError(f"column {name!r} holds another number of images per row than {per_image[0]!r}")
    counts = np.diff(offsets)
    rows = np.repeat(np.arange(batch.num_rows), counts)
    arrays, fields = [], []
    for f in batch.schema:
        if f.name == "id":
            ids = batch.column("id").to_pylist()
            starts = offsets[rows]
            arrays.append(_strings([image_id(ids[r], int(i - s)) for i, (r, s) in enumerate(zip(rows, starts))]))
            fields.append(pa.field("id", pa.string()))
        elif f.name in PER_IMAGE_COLUMNS:
            first = spans[f.name][1]  # the list's values over this slice: zero-copy
            values = batch.column(f.name).values.slice(first, int(offsets[-1]))
            arrays.append(values)
            fields.append(pa.field(f.name, values.type))
        elif repeat_carried:
            arrays.append(batch.column(f.name).take(_numeric(rows.astype(np.int64), pa.int64())))
            fields.append(f)
    metadata = dict(batch.schema.metadata or {})
    meta = read_meta(batch.schema) if META_KEY in metadata else None
    if meta is not None:
        metadata[META_KEY] = json.dumps(_single_meta(meta), sort_keys=True).encode()
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata or None)), offsets


def _row_offsets(column: pa.Array) -> tuple[np.ndarray, int]:
    """(a list column's offsets rebased to 0, as int64 (one more than its rows), where its values start)."""
    if column.null_count:
        raise ValueError("a multi-image column holds nulls; not a pixelprune output that can be read")
    width = np.int64 if pa.types.is_large_list(column.type) else np.int32  # large lists: as polars writes them
    offsets = np.frombuffer(column.buffers()[1], dtype=width)[column.offset: column.offset + len(column) + 1]
    offsets = offsets.astype(np.int64)
    return offsets - offsets[0], int(offsets[0])


def image_batches(batches: Iterable[pa.RecordBatch], repeat_carried: bool = False) -> Iterator[pa.RecordBatch]:
    """An output's batches with one row per image (flatten_images; single-image batches as they are)."""
    for batch in batches:
        yield flatten_images(batch, repeat_carried)[0]
