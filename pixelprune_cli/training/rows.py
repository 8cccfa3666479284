"""A collator's input rows as samples: each a conversation and its images' kept tokens as numpy views.

Rows come as `load_cache` gives them (one-row `pyarrow.Table`s, read here as
Arrow buffers: offsets and flat values, no Python objects per token or pixel)
or as dicts (`datasets`' Python format, or `prune_image` results). A row of a
multi-image output (`compress` on an `images` list column) holds its images'
columns as lists, read in order as the conversation shows them; a dict row may
instead hold `images`: a list of single-image rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pixelprune_cli.model import image_rows
from pixelprune_cli.outputs.multi_image import flatten_images
from pixelprune_cli.outputs.schema import pixels_as_tokens

CONVERSATION_COLUMNS = ("messages", "prompt", "completion")


@dataclass(frozen=True)
class Sample:
    """One training row: its conversation (`messages`, or `prompt` and `completion`) and its images, in order."""

    id: str
    messages: list | None
    prompt: object
    completion: object
    images: list[dict]


def samples(rows, token_bytes: int) -> list[Sample]:
    """The samples of a batch of rows, Arrow tables read column-wise, dicts as they are."""
    if rows and all(isinstance(r, (pa.Table, pa.RecordBatch)) for r in rows):
        tables = [r if isinstance(r, pa.Table) else pa.Table.from_batches([r]) for r in rows]
        return _arrow_samples(pa.concat_tables(tables).combine_chunks(), token_bytes)
    return [_dict_sample(r, k) for k, r in enumerate(rows)]


def _conversation(columns: dict, name: str) -> dict:
    if "messages" not in columns and not ("prompt" in columns and "completion" in columns):
        raise ValueError(f"{name}: no 'messages' column (nor 'prompt' and 'completion'); compress with "
                         "--keep-columns messages (or prompt,completion) to carry the conversation into the cache")
    return {key: columns.get(key) for key in CONVERSATION_COLUMNS}


def _dict_sample(row, k: int) -> Sample:
    if not isinstance(row, dict):
        raise ValueError(f"row {k}: a {type(row).__name__}, not a dict or a pyarrow Table of output rows")
    name = f"row {k} ({row.get('id', '')!r})"
    images = list(row["images"]) if row.get("images") is not None else image_rows(row)
    return Sample(str(row.get("id", k)), **_conversation(row, name), images=images)


def _list_parts(column: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """A list column's offsets (numpy, from 0) and its flat values (Arrow), zero copy."""
    offsets = column.offsets.to_numpy()
    return offsets - offsets[0], column.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _arrow_samples(table: pa.Table, token_bytes: int) -> list[Sample]:
    """Samples of output rows in one Arrow table: the image columns as views into its buffers.

    Multi-image rows (`images_per_row: many`) are flattened to one image per
    row over the same buffers (`flatten_images`); its offsets say which images
    are whose, in the row's order.
    """
    batch = pixels_as_tokens(table.to_batches()[0], token_bytes) if table.num_rows else None
    if batch is None:
        return []
    missing = [c for c in ("grid_thw", "kept_index", "pixels") if c not in batch.schema.names]
    if missing:
        raise ValueError(f"rows without {', '.join(map(repr, missing))}: not pixelprune output rows")
    ids = batch.column("id").to_pylist() if "id" in batch.schema.names else [str(k) for k in range(batch.num_rows)]
    conversation = _conversation({c: batch.column(c).to_pylist() for c in CONVERSATION_COLUMNS
                                  if c in batch.schema.names}, f"rows {ids[0]!r}...")
    flat, row_offsets = flatten_images(batch)
    images = _images(flat)
    out = []
    for i in range(batch.num_rows):
        messages, prompt, completion = (None if v is None else v[i] for v in conversation.values())
        out.append(Sample(ids[i], messages, prompt, completion,
                          images=images[row_offsets[i]:row_offsets[i + 1]]))
    return out


def _images(batch: pa.RecordBatch) -> list[dict]:
    """Image rows of a single-image batch as dicts of numpy views into its buffers, one per row."""
    names = batch.schema.names
    ids = batch.column("id").to_pylist() if "id" in names else [str(k) for k in range(batch.num_rows)]
    grids = batch.column("grid_thw").flatten().to_numpy(zero_copy_only=False).reshape(-1, 3)
    index_offsets, index_values = _list_parts(batch.column("kept_index"))
    kept_index = index_values.to_numpy(zero_copy_only=False)
    pixel_offsets, tokens = _list_parts(batch.column("pixels"))
    flat = tokens.flatten().to_numpy(zero_copy_only=False)
    pixels = flat.reshape(-1, tokens.type.list_size) if len(tokens) else flat.reshape(0, tokens.type.list_size)
    map_parts = _list_parts(batch.column("index_map")) if "index_map" in names else None
    index_map = map_parts[1].to_numpy(zero_copy_only=False) if map_parts else None
    sizes = {c: batch.column(c).to_numpy(zero_copy_only=False) for c in ("width", "height", "tokens", "kept")
             if c in names}
    out = []
    for i in range(batch.num_rows):
        image = {"id": ids[i], "grid_thw": grids[i], "kept_index": kept_index[index_offsets[i]:index_offsets[i + 1]],
                 "pixels": pixels[pixel_offsets[i]:pixel_offsets[i + 1]]}
        if map_parts is not None and index_map is not None:
            image["index_map"] = index_map[map_parts[0][i]:map_parts[0][i + 1]]
        image.update({c: int(values[i]) for c, values in sizes.items()})
        out.append(image)
    return out
