"""The one output schema, its metadata, and coded images -> Arrow record batches.

Column names and types are a public interface (docs/output-format.md); plain
Arrow types only, so pyarrow, polars, duckdb and HF `datasets` all read it.

Parquet files store `pixels` as list<binary>, one value of token_bytes per kept
token, because Parquet has no 8-bit type: a list<fixed_size_list<uint8>>
becomes one INT32 with repetition and definition levels per pixel byte, about
ten times the Arrow IPC write time. Both layouts share one byte buffer, so
converting between them copies nothing (`pixels_as_binary`, `pixels_as_tokens`),
and the writer builds it over each image's own array (`to_parquet_table`).

A multi-image output (metadata `"images_per_row": "many"`, from a table whose
image column is a list, as TRL's `images`) keeps one row per sample: `id` and
carried columns per row, each per-image column a list with one entry per image
(`multi_image` builds and flattens such rows). Its Parquet `pixels` is
list<list<binary>>, the same trick one list level down.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from pixelprune_cli.errors import ConfigError

META_KEY = b"pixelprune"
# The Parquet layout of `pixels`, recorded in a Parquet output's metadata; a file
# without this key holds list<fixed_size_list<uint8>> (Arrow outputs, and Parquet
# outputs of pixelprune before 0.2.0).
LAYOUT_KEY, BINARY_LAYOUT = "pixels_layout", "list<binary>"

CORE_COLUMNS = (
    "id", "source_width", "source_height", "width", "height", "grid_thw",
    "tokens", "kept", "tau", "kept_index", "index_map", "pixels",
)
PER_IMAGE_COLUMNS = CORE_COLUMNS[1:]  # in a multi-image output, lists with one entry per image
IMAGES_PER_ROW, MANY = "images_per_row", "many"  # the metadata key and value of a multi-image output


def is_multi_image(meta: dict | None) -> bool:
    """Whether an output's metadata says each row holds a list of images (one sample of several)."""
    return meta is not None and meta.get(IMAGES_PER_ROW) == MANY


def output_schema(meta: dict, token_bytes: int, extra_fields: list[pa.Field] | tuple = ()) -> pa.Schema:
    """Schema of a compressed file: the core columns, carried columns, `pixelprune` metadata.

    With `is_multi_image(meta)`, every per-image column is a list of its single-image type.
    """
    per_image = [
        pa.field("source_width", pa.int32()),
        pa.field("source_height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("grid_thw", pa.list_(pa.int32(), 3)),
        pa.field("tokens", pa.int32()),
        pa.field("kept", pa.int32()),
        pa.field("tau", pa.float32()),
        pa.field("kept_index", pa.list_(pa.int32())),
        pa.field("index_map", pa.list_(pa.int32())),
        pa.field("pixels", pa.list_(pa.list_(pa.uint8(), token_bytes))),
    ]
    if is_multi_image(meta):
        per_image = [pa.field(f.name, pa.list_(f.type)) for f in per_image]
    fields = [pa.field("id", pa.string()), *per_image, *extra_fields]
    clash = [f.name for f in extra_fields if f.name in CORE_COLUMNS]
    if clash:
        raise ConfigError(f"carried columns clash with output columns: {', '.join(clash)}")
    return pa.schema(fields, metadata={META_KEY: json.dumps(meta, sort_keys=True).encode()})


META_NEEDS = ("patch_size", "merge_size", "min_pixels", "max_pixels", "image_mean", "image_std")


def read_meta(schema: pa.Schema) -> dict | None:
    """The `pixelprune` metadata of a schema, or None if it is not a pixelprune output.

    Raises ValueError, saying what is wrong, when the metadata is there but
    is not a JSON object with the preset's keys.
    """
    raw = (schema.metadata or {}).get(META_KEY)
    if not raw:
        return None
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"a JSON {type(meta).__name__}, not an object")
    missing = [key for key in META_NEEDS if key not in meta]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}")
    return meta


def _numeric(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A non-null Arrow array over a numpy array's buffer, without copying.

    Built from buffers rather than with pa.array, whose first call imports
    pandas (about 0.3 s of every run).
    """
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(values)])


def _strings(texts: list[str]) -> pa.Array:
    encoded = [t.encode() for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def _list_array(parts: list[np.ndarray], dtype, width: int | None = None) -> pa.Array:
    """A list<dtype> array (list<fixed_size_list<dtype>[width]> if width) from numpy rows."""
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    offsets = np.zeros(len(parts) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([p.reshape(-1) for p in parts]) if parts else np.empty(0)
    values = _numeric(flat.astype(dtype, copy=False), pa.from_numpy_dtype(np.dtype(dtype)))
    if width is not None:
        values = pa.FixedSizeListArray.from_arrays(values, width)
    return pa.ListArray.from_arrays(_numeric(offsets, pa.int32()), values)


def to_record_batch(coded: list, schema: pa.Schema) -> pa.RecordBatch:
    """Build a batch from CodedImage rows with a handful of large copies, no per-token objects."""
    token_bytes = schema.field("pixels").type.value_type.list_size
    pixels = _list_array([c.pixels for c in coded], np.uint8, token_bytes)
    return pa.RecordBatch.from_arrays(_columns(coded, schema, pixels), schema=schema)


def to_parquet_table(coded: list, schema: pa.Schema) -> pa.Table:
    """CodedImage rows as a table of `parquet_schema`'s layout, `pixels` one chunk per image over its own array.

    The Parquet writer copies every value into its pages anyway, so gathering
    the batch's pixels into one buffer first (as an Arrow record batch needs)
    would only cost the writer thread a copy of the batch and raise the peak by
    its size.
    """
    chunks = [_binary_tokens(c.pixels) for c in coded]
    pixels = pa.chunked_array(chunks, type=schema.field("pixels").type)
    return pa.Table.from_arrays(_columns(coded, schema, pixels), schema=schema)


def _binary_tokens(pixels: np.ndarray) -> pa.Array:
    """One image's (kept, token_bytes) uint8 pixels as a one-row list<binary>, one value per token; no copy."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    kept, token_bytes = pixels.shape
    ends = np.arange(kept + 1, dtype=np.int64) * token_bytes
    if ends[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"an image of {kept:,} kept tokens is over the 2 GiB a binary column holds")
    values = pa.Array.from_buffers(pa.binary(), kept, [None, pa.py_buffer(ends.astype(np.int32)), pa.py_buffer(pixels)])
    return pa.ListArray.from_arrays(_numeric(np.array([0, kept], dtype=np.int32), pa.int32()), values)


def _columns(coded: list, schema: pa.Schema, pixels) -> list:
    """The columns of `schema` from CodedImage rows, in its order, with `pixels` as given."""

    def ints(name):
        return _numeric(np.array([getattr(c, name) for c in coded], dtype=np.int32), pa.int32())

    grid = np.array([c.grid_thw for c in coded], dtype=np.int32).reshape(-1)
    columns = {
        "id": _strings([c.id for c in coded]),
        "source_width": ints("source_width"),
        "source_height": ints("source_height"),
        "width": ints("width"),
        "height": ints("height"),
        "grid_thw": pa.FixedSizeListArray.from_arrays(_numeric(grid, pa.int32()), 3),
        "tokens": ints("tokens"),
        "kept": ints("kept"),
        "tau": _numeric(np.array([c.tau for c in coded], dtype=np.float32), pa.float32()),
        "kept_index": _list_array([c.kept_index for c in coded], np.int32),
        "index_map": _list_array([c.index_map for c in coded], np.int32),
        "pixels": pixels,
    }
    for f in schema:
        if f.name not in columns:  # carried columns: any Arrow type, built the general way
            columns[f.name] = pa.array([c.extra.get(f.name) for c in coded], type=f.type)
    return [columns[f.name] for f in schema]


def parquet_schema(schema: pa.Schema) -> pa.Schema:
    """The schema of a Parquet output: `pixels` as list<binary> (list<list<binary>> when multi-image),
    the layout named in the metadata."""
    base = read_meta(schema)
    if base is None:
        raise ValueError("not an output schema: it has no pixelprune metadata")
    meta = {**base, LAYOUT_KEY: BINARY_LAYOUT}
    pixels = schema.get_field_index("pixels")
    return schema.set(pixels, pa.field("pixels", _binary_type(schema.field(pixels).type))).with_metadata(
        {**schema.metadata, META_KEY: json.dumps(meta, sort_keys=True).encode()})


def _binary_type(tokens: pa.DataType) -> pa.DataType:
    """list<fixed_size_list<uint8>> -> list<binary>, under any number of outer lists."""
    inner = tokens.value_type
    return pa.list_(pa.binary() if pa.types.is_fixed_size_list(inner) else _binary_type(inner))


def tokens_type(stored: pa.DataType, token_bytes: int) -> pa.DataType | None:
    """The Arrow type of a `pixels` column stored as list<binary> (under any outer lists); None if it is not."""
    if not pa.types.is_list(stored):
        return None
    if pa.types.is_binary(stored.value_type):
        return pa.list_(pa.list_(pa.uint8(), token_bytes))
    inner = tokens_type(stored.value_type, token_bytes)
    return None if inner is None else pa.list_(inner)


def pixels_as_binary(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch of the output schema in `parquet_schema`'s layout, over the same pixel bytes."""
    pixels = _tokens_as_binary(batch.column("pixels"))
    return pa.RecordBatch.from_arrays([pixels if f.name == "pixels" else batch.column(f.name) for f in schema],
                                      schema=schema)


def _tokens_as_binary(column: pa.Array) -> pa.Array:
    """list<fixed_size_list<uint8>> (under any outer lists) as list<binary>, one value per token; no copy."""
    if not pa.types.is_fixed_size_list(column.type.value_type):
        return pa.ListArray.from_arrays(_rebased(column.offsets), _tokens_as_binary(column.flatten()))
    tokens = column.flatten()  # fixed_size_list<uint8>: this batch's kept tokens
    token_bytes = tokens.type.list_size
    data = tokens.flatten()
    ends = np.arange(len(tokens) + 1, dtype=np.int64) * token_bytes
    if ends[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"a batch of {len(tokens):,} kept tokens is over the 2 GiB a binary column holds")
    values = pa.Array.from_buffers(pa.binary(), len(tokens), [None, pa.py_buffer(ends.astype(np.int32)), _bytes_of(data)])
    return pa.ListArray.from_arrays(_rebased(column.offsets), values)


def pixels_as_tokens(batch: pa.RecordBatch, token_bytes: int) -> pa.RecordBatch:
    """A batch read from either layout, with `pixels` as list<fixed_size_list<uint8>> (under its outer
    lists when multi-image); no copy.

    Raises ValueError if a binary value is not token_bytes long.
    """
    if "pixels" not in batch.schema.names or tokens_type(batch.schema.field("pixels").type, token_bytes) is None:
        return batch
    pixels = _binary_as_tokens(batch.column("pixels"), token_bytes)
    index = batch.schema.get_field_index("pixels")
    return batch.set_column(index, pa.field("pixels", pixels.type), pixels)


def _binary_as_tokens(column: pa.Array, token_bytes: int) -> pa.Array:
    if not pa.types.is_binary(column.type.value_type):
        return pa.ListArray.from_arrays(_rebased(column.offsets), _binary_as_tokens(column.flatten(), token_bytes))
    values = column.flatten()  # binary, one value per kept token
    ends = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset: values.offset + len(values) + 1]
    if np.any(np.diff(ends) != token_bytes):
        raise ValueError(f"pixels values are not all {token_bytes} bytes (one merged token each)")
    data = values.buffers()[2].slice(int(ends[0]), int(ends[-1] - ends[0]))
    tokens = pa.FixedSizeListArray.from_arrays(pa.Array.from_buffers(pa.uint8(), len(data), [None, data]), token_bytes)
    return pa.ListArray.from_arrays(_rebased(column.offsets), tokens)


def _bytes_of(values: pa.Array) -> pa.Buffer:
    """The data buffer of a non-null uint8 array, cut to its slice."""
    return values.buffers()[1].slice(values.offset, len(values))


def _rebased(offsets: pa.Array) -> pa.Array:
    """List offsets of a slice, shifted to start at 0 (the flattened values start there)."""
    offsets = offsets.to_numpy()
    return _numeric(offsets - offsets[0], pa.int32())
