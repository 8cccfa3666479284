"""The one registry of file formats: which suffixes pixelprune reads and writes, and how.

Every command asks here: sources (which files are images, which are Parquet
tables), writer (how a table file is opened for writing), readers and show
(how an output file is read back). A new output format is one more entry in
TABLE_FORMATS with its suffixes, a writer and the three readers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pixelprune_cli.errors import ConfigError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
STDOUT = "-"  # as an output: an Arrow IPC stream on stdout


@dataclass(frozen=True)
class TableFormat:
    """A table file format: its name (as --shard-format takes it), suffixes, and how to write and read it."""

    name: str
    suffixes: tuple[str, ...]  # the first one names shards (part-00000.arrow)
    unreadable: str  # what a file of this name that cannot be read is not, for the one-line error
    # (binary handle, output schema, codec or None) -> an object with write_rows(CodedImages) and close();
    # each format turns rows into Arrow its own way (schema.to_record_batch, schema.to_parquet_table)
    open_writer: Callable
    read_schema: Callable  # (path) -> pa.Schema
    iter_batches: Callable  # (path, columns or None) -> Iterator[pa.RecordBatch]
    count_rows: Callable  # (path) -> rows, from the footer only

    @property
    def suffix(self) -> str:
        return self.suffixes[0]


class _ArrowWriter:
    """An Arrow IPC file: each call's rows one record batch."""

    def __init__(self, handle, schema, codec):
        import pyarrow as pa

        self.schema = schema
        self.writer = pa.ipc.new_file(handle, schema, options=pa.ipc.IpcWriteOptions(compression=codec))

    def write_rows(self, coded: list) -> None:
        from pixelprune_cli.outputs.multi_image import to_record_batch_of

        self.writer.write_batch(to_record_batch_of(coded, self.schema))

    def close(self) -> None:
        self.writer.close()


def _arrow_schema(path: Path):
    import pyarrow as pa

    from pixelprune_cli.storage.storage import open_random

    with open_random(str(path)) as source:
        try:
            return pa.ipc.open_file(source).schema
        except pa.ArrowInvalid:  # an Arrow stream saved to a file (`compress -o - > out.arrows`)
            source.seek(0)
            return pa.ipc.open_stream(source).schema


def _arrow_batches(path: Path, columns: list[str] | None) -> Iterator:
    import pyarrow as pa

    from pixelprune_cli.storage.storage import open_random

    with open_random(str(path)) as source:
        try:
            reader = pa.ipc.open_file(source)
            fields = [reader.schema.get_field_index(c) for c in columns or ()]
            if fields and min(fields) >= 0:  # every column there, once (-1: missing or ambiguous)
                # Only the wanted columns' buffers are read: on a store, a few KB of a shard for `stats`.
                reader = pa.ipc.open_file(source, options=pa.ipc.IpcReadOptions(included_fields=fields))
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            source.seek(0)
            batches = iter(pa.ipc.open_stream(source))
        for batch in batches:
            yield batch.select(columns) if columns else batch


def _arrow_rows(path: Path) -> int:
    import pyarrow as pa

    from pixelprune_cli.storage.storage import open_random

    with open_random(str(path)) as source:
        reader = pa.ipc.open_file(source)  # a stream has no footer: ArrowInvalid, no total
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


class _ParquetWriter:
    """A Parquet output in its own layout: `pixels` as one binary per token (schema.parquet_schema)."""

    def __init__(self, handle, schema, codec):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from pixelprune_cli.outputs.schema import parquet_schema

        self.arrow_schema, self.schema = schema, parquet_schema(schema)
        # Measured (docs/performance.md, "Parquet output"): dictionaries never pay on unique
        # pixel tokens; statistics are kept for the flat columns only. A
        # page cannot end inside a row, so an image's pixels are one page;
        # version 2 pages are compressed in place, where version 1 pages
        # keep a second copy of the largest one until the next row group.
        flat = [f.name for f in schema if not pa.types.is_nested(f.type)]
        self.writer = pq.ParquetWriter(handle, self.schema, compression=codec or "none",
                                       use_dictionary=False, write_statistics=flat, data_page_version="2.0")

    def write_rows(self, coded: list) -> None:
        """One row group of these rows, each image's pixels read where its worker left them (no batch copy)."""
        from pixelprune_cli.outputs.multi_image import to_record_batch_of
        from pixelprune_cli.outputs.schema import is_multi_image, pixels_as_binary, read_meta, to_parquet_table

        if is_multi_image(read_meta(self.arrow_schema)):  # rows of image lists: gathered, then one binary per token
            self.writer.write_batch(pixels_as_binary(to_record_batch_of(coded, self.arrow_schema), self.schema))
        else:
            self.writer.write_table(to_parquet_table(coded, self.schema))

    def close(self) -> None:
        self.writer.close()


def _parquet_schema(path: Path):
    """The schema readers see: `pixels` as token lists, as _parquet_batches yields them from either layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pixelprune_cli.coding.presets import resolve_preset
    from pixelprune_cli.outputs.schema import read_meta, tokens_type
    from pixelprune_cli.storage.storage import table_source

    schema = pq.read_schema(table_source(str(path)))
    if "pixels" not in schema.names:
        return schema
    try:
        token_bytes = resolve_preset(read_meta(schema) or {}).token_bytes
    except (KeyError, TypeError, ValueError):  # metadata the readers refuse on their own, naming the file
        return schema
    tokens = tokens_type(schema.field("pixels").type, token_bytes)  # list<binary>, or list<list<binary>>
    if tokens is None:
        return schema
    return schema.set(schema.get_field_index("pixels"), pa.field("pixels", tokens))


def _parquet_batches(path: Path, columns: list[str] | None) -> Iterator:
    """Batches with `pixels` as token lists, whichever layout the file has, so every reader sees one."""
    import pyarrow.parquet as pq

    from pixelprune_cli.coding.presets import resolve_preset
    from pixelprune_cli.outputs.schema import pixels_as_tokens, read_meta
    from pixelprune_cli.storage.storage import table_source

    parquet = pq.ParquetFile(table_source(str(path)))
    meta = read_meta(parquet.schema_arrow)
    if meta is None:  # the readers turn this into a one-line error naming the file
        raise ValueError("no pixelprune metadata")
    token_bytes = resolve_preset(meta).token_bytes
    for batch in parquet.iter_batches(batch_size=64, columns=columns):
        yield pixels_as_tokens(batch, token_bytes)


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    from pixelprune_cli.storage.storage import table_source

    return pq.ParquetFile(table_source(str(path))).metadata.num_rows


ARROW = TableFormat("arrow", (".arrow", ".ipc", ".feather", ".arrows"),
                    "not a readable Arrow file, truncated or not an Arrow IPC file or stream", _ArrowWriter, _arrow_schema, _arrow_batches, _arrow_rows)
PARQUET = TableFormat("parquet", (".parquet", ".pq"), "not a readable Parquet file", _ParquetWriter, _parquet_schema, _parquet_batches, _parquet_rows)
TABLE_FORMATS = {f.name: f for f in (ARROW, PARQUET)}
PARQUET_SUFFIXES = frozenset(PARQUET.suffixes)  # as an input: an image table (or an output, by its metadata)


def format_of(path: str | Path) -> TableFormat | None:
    """The table format a file name says, None when its suffix is none of ours."""
    suffix = Path(path).suffix.lower()
    return next((f for f in TABLE_FORMATS.values() if suffix in f.suffixes), None)


def known_outputs() -> str:
    suffixes = ", ".join(s for f in TABLE_FORMATS.values() for s in f.suffixes)
    return f"{suffixes}; - (an Arrow stream on stdout); or DIR/ (a folder of shards)"


def output_format(path: str | Path) -> TableFormat:
    """The format of an output file, from its name; ConfigError (exit code 2) for a suffix that is none of ours."""
    fmt = format_of(path)
    if fmt is None:
        suffix = Path(path).suffix
        what = f"unknown output suffix {suffix!r}" if suffix else "no output suffix"
        raise ConfigError(f"{path}: {what}; known outputs: {known_outputs()}")
    return fmt


def table_format(name: str) -> TableFormat:
    """A format by name (--shard-format); ValueError listing the known ones."""
    if name not in TABLE_FORMATS:
        raise ValueError(f"shard format must be one of {', '.join(TABLE_FORMATS)}, got {name!r}")
    return TABLE_FORMATS[name]
