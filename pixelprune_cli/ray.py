"""Ray Data entry points: `compress_dataset` over a Ray Dataset, and `compress_with_ray` (`--engine ray` as a call).

Nothing here decides an output value: every image goes through
`pipeline.process` and every row through `schema.to_record_batch`, exactly as
in `api.compress`. This module only decides where that runs.

- `compress_dataset(ds, config)` maps the per-image function over a Ray
  Dataset of image cells that already has ids and returns a Ray Dataset of the
  output schema; failed images go to an error report (`errors_path`).
- `compress_with_ray(inputs, output_dir, ...)` is `api.compress` with the
  "ray" engine (`ray_engine.RayEngine`): the same inputs, ids, shards,
  manifest and error report as the local sharded mode.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow as pa

from pixelprune_cli.api import compress
from pixelprune_cli.coding.pipeline import CodingConfig
from pixelprune_cli.errors import ConfigError
from pixelprune_cli.inputs.parquet_source import column_values, row_item
from pixelprune_cli.inputs.pieces import SourceOptions
from pixelprune_cli.outputs.schema import output_schema, to_record_batch
from pixelprune_cli.outputs.writer import ErrorLog, is_shard_folder
from pixelprune_cli.records import FailedImage
from pixelprune_cli.report.summary import Summary
from pixelprune_cli.run.job import RunOptions
from pixelprune_cli.run.ray_engine import DEFAULT_SHARD_ROWS, ROWS_PER_READ, code_item, import_ray

ERROR_FIELDS = [pa.field("id", pa.string()), pa.field("stage", pa.string()), pa.field("reason", pa.string())]
_STAGE, _REASON = "__pixelprune_stage", "__pixelprune_reason"  # failure columns between map steps


def code_cells(ids, cells, extras, config: CodingConfig, base_dir: Path, allow_path_schemes: tuple[str, ...] = ()):
    """CodedImage | FailedImage for each image cell (HF {bytes, path} struct or bytes), in order; path
    cells are read as those of a local table in `base_dir` (path_cells.resolve)."""
    for image_id, cell, extra in zip(ids, cells, extras):
        yield code_item(row_item(image_id, cell, base_dir, extra, allow_path_schemes), config)




def _failures_table(failed: list, schema: pa.Schema) -> pa.Table:
    """Failed images in the coded-batch layout: the id, nulls, the stage and the reason."""
    columns = [pa.array([f.id for f in failed], pa.string()) if field.name == "id" else pa.nulls(len(failed), field.type)
               for field in schema]
    columns += [pa.array([f.stage for f in failed], pa.string()), pa.array([f.reason for f in failed], pa.string())]
    return pa.Table.from_arrays(columns, schema=_with_failure_columns(schema))


def _with_failure_columns(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(_STAGE, pa.string())).append(pa.field(_REASON, pa.string()))


class _CodeBatch:
    """map_batches function: a batch of (id, image cell, carried columns) -> coded rows and failures.

    Returns the output schema plus two failure columns (null for written
    rows), so one Ray step yields both; `compress_dataset` splits them.
    """

    def __init__(self, config: CodingConfig, image_column: str, keep_columns: tuple, id_column: str | None,
                 allow_path_schemes: tuple[str, ...] = ()):
        self.config, self.image_column, self.keep_columns, self.id_column = config, image_column, keep_columns, id_column
        self.allow_path_schemes = allow_path_schemes

    def __call__(self, batch: pa.Table) -> pa.Table:
        id_column = self.id_column or "id"
        if id_column not in batch.column_names:
            raise ConfigError(f"compress_dataset: no id column {id_column!r} (columns: {', '.join(batch.column_names)}); "
                             "pass id_column= (a column of unique ids)")
        if self.image_column not in batch.column_names:
            raise ConfigError(f"compress_dataset: no image column {self.image_column!r} (columns: {', '.join(batch.column_names)})")
        schema = output_schema({**self.config.to_meta(), "image_column": self.image_column},
                               self.config.preset.token_bytes, [batch.schema.field(c) for c in self.keep_columns])
        kept = {c: column_values(batch, c) for c in self.keep_columns}
        extras = [{c: values[i] for c, values in kept.items()} for i in range(batch.num_rows)]
        ids = [str(i) for i in batch.column(id_column).to_pylist()]
        results = list(code_cells(ids, column_values(batch, self.image_column), extras, self.config, Path.cwd(),
                                  self.allow_path_schemes))
        coded = [r for r in results if not isinstance(r, FailedImage)]
        failed = [r for r in results if isinstance(r, FailedImage)]
        parts = [_failures_table(failed, schema)]
        if coded:
            rows = pa.Table.from_batches([to_record_batch(coded, schema)])
            rows = rows.append_column(_STAGE, pa.nulls(len(coded), pa.string())).append_column(_REASON, pa.nulls(len(coded), pa.string()))
            parts.insert(0, rows)
        return pa.concat_tables(parts)


def _written_rows(batch: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    rows = batch.filter(pc.is_null(batch.column(_STAGE)))
    return rows.drop_columns([_STAGE, _REASON])


def _failed_rows(batch: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    failed = batch.filter(pc.is_valid(batch.column(_STAGE))).select(["id", _STAGE, _REASON])
    return pa.Table.from_arrays(failed.columns, schema=pa.schema(ERROR_FIELDS))


def compress_dataset(ds, config: CodingConfig = CodingConfig(), image_column: str = "image",
                     keep_columns=(), id_column: str | None = None, errors_path: str | os.PathLike | None = None,
                     allow_path_schemes=()):
    """A Ray Dataset of the output schema: `ds` coded with the CLI's per-image function.

    `ds` holds one image per row in `image_column` (HF Image struct
    {bytes, path} or binary) and a unique id in `id_column` (default: "id");
    `keep_columns` are carried into the output. Path cells are read as those
    of a local table in the current folder, and name URLs only of the schemes
    in `allow_path_schemes` (`SourceOptions`'). The returned rows have the
    output schema and their blocks carry the `pixelprune` metadata, so
    `write_parquet` files do too. An image that fails does not fail the job:
    its {id, stage, reason} goes to `errors_path` as JSON lines (the format of
    the CLI's errors.jsonl; the file is always written, empty when none
    failed), or, without `errors_path`, to a logged warning per image.

    The coding runs once, here (`materialize`), so that the error report is
    complete when this returns and reading the rows does not code again. The
    coded rows then sit in Ray's object store; for outputs larger than it, use
    `compress_with_ray`, which writes shards as it codes.
    """
    import_ray()
    schemes = SourceOptions(allow_path_schemes=allow_path_schemes).allow_path_schemes  # checked before Ray starts work
    fn = _CodeBatch(config, image_column, tuple(keep_columns), id_column, schemes)
    coded = ds.map_batches(fn, batch_format="pyarrow", batch_size=ROWS_PER_READ).materialize()
    failures = coded.map_batches(_failed_rows, batch_format="pyarrow", batch_size=None).take_all()
    _report_failures(failures, errors_path)
    return coded.map_batches(_written_rows, batch_format="pyarrow", batch_size=None)


def _report_failures(failures: list[dict], errors_path) -> None:
    """Only {id, stage, reason} reaches the driver: a few hundred bytes per failed image."""
    if errors_path is None:
        log = logging.getLogger("pixelprune")
        for failure in failures:
            log.warning("%s: %s error: %s", failure["id"], failure["stage"], failure["reason"])
        return
    report = ErrorLog(Path(errors_path))
    try:
        for failure in failures:
            report.add({"id": failure["id"], "stage": failure["stage"], "reason": failure["reason"]})
    except BaseException:
        report.abort()
        raise
    report.commit()


def compress_with_ray(inputs: list[str], output_dir: str, config: CodingConfig = CodingConfig(),
                      sources: SourceOptions = SourceOptions(), ray_address: str | None = None,
                      shard_size: int = DEFAULT_SHARD_ROWS, workers: int | None = None,
                      compression: str | None = None, overwrite: bool = False, resume: bool = False,
                      progress: bool = True, shard_format: str = "parquet") -> Summary:
    """`api.compress(inputs, output_dir + "/", ..., run=RunOptions(engine="ray"))`: the shards coded on Ray.

    Same ids, rows, shard boundaries (`shard_size` images per shard, one Ray
    task each: pick it so that there are several shards per CPU), manifest and
    errors.jsonl as the local sharded mode. Parquet shards by default (what
    Ray and Spark users read, and measured as fast to write as "arrow"
    shards: docs/performance.md, "Engines"). Local Ray with `workers` CPUs
    (default: all) unless `ray_address` names a cluster, whose nodes must all
    see `inputs` and `output_dir` at the same paths. Returns the Summary the
    CLI prints.
    """
    folder = output_dir if is_shard_folder(output_dir) else str(output_dir).rstrip("/" + os.sep) + "/"
    run = RunOptions(workers=workers, progress=progress, engine="ray", ray_address=ray_address)
    return compress(inputs, folder, config, sources, run, compression=compression, overwrite=overwrite,
                    shard_size=shard_size, shard_format=shard_format, resume=resume)
