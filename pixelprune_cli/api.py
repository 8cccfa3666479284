"""The Python API behind the CLI: compress(), stats(), restore().

The CLI parses options into these calls; notebooks and Ray jobs call them (or
`pipeline.process`) directly, so every entry point shares one code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, InputError
from .parallel import default_workers, ordered_map
from .pipeline import CodedImage, CodingConfig, FailedImage, process
from .report import ImageEntry, Progress, Summary
from .sources import Item, SourceCounts, SourceOptions, check_inputs, iter_items

BATCH_ROWS = 64  # rows per Arrow record batch
BATCH_BYTES = 64 << 20  # or fewer rows, once their pixels reach this size


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to produce): workers, failure policy, progress."""

    workers: int = field(default_factory=default_workers)
    fail_fast: bool = False
    progress: bool = True


def _entry(coded: CodedImage) -> ImageEntry:
    return ImageEntry(coded.id, (coded.source_width, coded.source_height), (coded.width, coded.height),
                      coded.tokens, coded.kept, coded.seconds, coded.tau)


def coded_stream(inputs: list[str], config: CodingConfig, sources: SourceOptions, run: RunOptions, counts: SourceCounts):
    """Every input as a CodedImage or FailedImage, in input order."""

    def work(item: Item):
        return process(item.id, item.read, config, item.extra)

    items = iter_items(inputs, sources, counts)
    return ordered_map(work, items, run.workers, passthrough=lambda x: isinstance(x, FailedImage))


def _extra_fields(inputs: list[str], sources: SourceOptions):
    """Arrow fields of --keep-columns, taken from the first Parquet input that has them."""
    if not sources.keep_columns:
        return []
    import pyarrow.parquet as pq

    for path in _parquet_paths(inputs):
        try:
            schema = pq.read_schema(path)
        except Exception:
            continue
        if all(c in schema.names for c in sources.keep_columns):
            return [schema.field(c) for c in sources.keep_columns]
    raise InputError(f"--keep-columns {','.join(sources.keep_columns)}: no Parquet input has these columns")


def _parquet_paths(inputs: list[str]):
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(str(p) for p in path.rglob("*.parquet"))
        elif path.suffix.lower() in (".parquet", ".pq"):
            yield raw


def compress(inputs: list[str], output: str, config: CodingConfig = CodingConfig(),
             sources: SourceOptions = SourceOptions(), run: RunOptions = RunOptions(),
             compression: str | None = None, overwrite: bool = False) -> Summary:
    """Code every input image and write the kept tokens to `output` ('-' for stdout).

    Returns the run's Summary. Raises InputError/ConfigError (exit code 2)
    before writing anything when inputs or output are unusable.
    """
    from . import writer
    from .schema import output_schema, to_record_batch

    check_inputs(inputs)
    writer.check_target(output, overwrite)
    compression = writer.DEFAULT_COMPRESSION if compression is None else compression
    schema = output_schema(config.to_meta(), config.preset.token_bytes, _extra_fields(inputs, sources))
    counts = SourceCounts()
    summary = Summary(title="pixelprune compress", config=config.to_meta(), output=output)
    sink = writer.StdoutSink(schema, compression) if output == "-" else writer.FileSink(output, schema, compression)
    progress = Progress(run.progress)
    batch: list[CodedImage] = []
    batch_bytes = 0
    try:
        for result in coded_stream(inputs, config, sources, run, counts):
            if isinstance(result, FailedImage):
                record = result.as_dict()
                summary.add_error(record)
                sink.error(record)
                if run.fail_fast:
                    break
            else:
                summary.add_image(_entry(result))
                batch.append(result)
                batch_bytes += result.pixels.nbytes
                if len(batch) >= BATCH_ROWS or batch_bytes >= BATCH_BYTES:
                    sink.write(to_record_batch(batch, schema))
                    batch, batch_bytes = [], 0
            progress.advance()
        if batch:
            sink.write(to_record_batch(batch, schema))
        if summary.images == 0:
            raise InputError(f"no images found in {', '.join(inputs)}"
                             + (f" ({counts.skipped_files} non-image files skipped)" if counts.skipped_files else ""))
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    finally:
        progress.close()
    summary.skipped_files = counts.skipped_files
    return summary.finish()


def stats(inputs: list[str], config: CodingConfig = CodingConfig(), sources: SourceOptions = SourceOptions(),
          run: RunOptions = RunOptions()) -> Summary:
    """What compressing would save (images), or what a compressed file saves (pixelprune outputs)."""
    check_inputs(inputs)
    from .readers import compressed_meta

    if len(inputs) == 1 and compressed_meta(inputs[0]) is not None:
        return stats_of_output(inputs[0], sources)
    counts = SourceCounts()
    summary = Summary(title="pixelprune stats", config=config.to_meta())
    progress = Progress(run.progress, "measuring")
    try:
        for result in coded_stream(inputs, config, sources, run, counts):
            if isinstance(result, FailedImage):
                summary.add_error(result.as_dict())
            else:
                entry = _entry(result)
                summary.add_image(entry)
                summary.group_values.append(result.extra)
            progress.advance()
    finally:
        progress.close()
    if summary.images == 0:
        raise InputError(f"no images found in {', '.join(inputs)}")
    summary.skipped_files = counts.skipped_files
    return summary.finish()


def stats_of_output(path: str, sources: SourceOptions = SourceOptions()) -> Summary:
    """Summary of a compressed file, read from its small columns only."""
    from .readers import compressed_meta, iter_output_batches

    meta = compressed_meta(path)
    summary = Summary(title=f"pixelprune stats {Path(path).name}", config=meta, output=path)
    columns = ["id", "source_width", "source_height", "width", "height", "tokens", "kept", "tau", *sources.keep_columns]
    for batch in iter_output_batches(path, columns):
        rows = batch.to_pydict()
        for i in range(batch.num_rows):
            summary.add_image(ImageEntry(rows["id"][i], (rows["source_width"][i], rows["source_height"][i]),
                                         (rows["width"][i], rows["height"][i]), rows["tokens"][i], rows["kept"][i],
                                         0.0, rows["tau"][i]))
            summary.group_values.append({c: rows[c][i] for c in sources.keep_columns})
    return summary.finish()


def restore(path: str, out_dir: str, overwrite: bool = False) -> Summary:
    """Rebuild every row's resized image as a PNG under out_dir (see restore.file_name_for)."""
    from .restore import restore_file

    return restore_file(path, out_dir, overwrite)


__all__ = ["compress", "stats", "restore", "RunOptions", "CodingConfig", "SourceOptions", "ConfigError"]
