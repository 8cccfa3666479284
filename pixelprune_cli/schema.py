"""The one output schema, its metadata, and coded images -> Arrow record batches.

Column names and types are a public interface (README, "Output schema"); plain
Arrow types only, so pyarrow, polars, duckdb and HF `datasets` all read it.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from .errors import ConfigError

META_KEY = b"pixelprune"

CORE_COLUMNS = (
    "id", "source_width", "source_height", "width", "height", "grid_thw",
    "tokens", "kept", "tau", "kept_index", "index_map", "pixels",
)


def output_schema(meta: dict, token_bytes: int, extra_fields: list[pa.Field] | tuple = ()) -> pa.Schema:
    """Schema of a compressed file: the core columns, carried columns, `pixelprune` metadata."""
    fields = [
        pa.field("id", pa.string()),
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
        *extra_fields,
    ]
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
        "pixels": _list_array([c.pixels for c in coded], np.uint8, token_bytes),
    }
    for f in schema:
        if f.name not in columns:  # carried columns: any Arrow type, built the general way
            columns[f.name] = pa.array([c.extra.get(f.name) for c in coded], type=f.type)
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)
