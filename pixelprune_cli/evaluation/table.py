"""A benchmark table, streamed: one row at a time from a Parquet file (local or URL), never all in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pixelprune_cli.errors import InputError
from pixelprune_cli.evaluation.tasks import Task
from pixelprune_cli.inputs.parquet_source import ROWS_PER_READ, cell_reader, find_image_column
from pixelprune_cli.storage import storage, urls


@dataclass
class BenchmarkRow:
    """One question: its id (the row number), a reader of its image bytes (or why there is none), its fields."""

    id: str
    read: Callable[[int], bytes] | None
    problem: str | None
    fields: dict


@dataclass
class BenchmarkTable:
    path: str
    rows: int
    image_column: str
    columns: dict  # role -> column

    def __iter__(self) -> Iterator[BenchmarkRow]:
        import pyarrow.parquet as pq

        base = urls.parent(self.path)
        names = [self.image_column, *dict.fromkeys(self.columns.values())]
        index = 0
        with storage.reading(self.path):
            parquet = pq.ParquetFile(storage.table_source(self.path))
            for batch in parquet.iter_batches(batch_size=ROWS_PER_READ, columns=names):
                values = {name: batch.column(name).to_pylist() for name in names}
                for k in range(batch.num_rows):
                    read, problem = cell_reader(values[self.image_column][k], base, str(index))
                    fields = {role: values[column][k] for role, column in self.columns.items()}
                    yield BenchmarkRow(str(index), read, problem, fields)
                    index += 1


def open_table(path: str, task: Task, overrides: dict, image_column: str | None = None) -> BenchmarkTable:
    """The table's image column and the task's columns, from its footer; InputError naming what is missing."""
    import pyarrow.parquet as pq

    shown = urls.shown(path)
    with storage.reading(path):
        if storage.kind(path) != "file":
            raise InputError(f"{shown}: no such file (a Parquet benchmark table)")
        try:
            parquet = pq.ParquetFile(storage.table_source(path))
        except Exception as exc:  # not Parquet: ArrowInvalid and friends
            raise InputError(f"{shown}: not a Parquet table ({exc})") from None
        schema = parquet.schema_arrow
        rows = parquet.metadata.num_rows
    image = find_image_column(schema, image_column, shown)
    columns = task.resolve_columns(list(schema.names), overrides, shown)
    return BenchmarkTable(path, rows, image, columns)
