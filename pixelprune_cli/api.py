"""The Python API behind the CLI: compress(), stats(), restore(), show(), warmup().

The CLI parses options into these calls; notebooks and Ray jobs call them (or
`pipeline.process`) directly, so every entry point shares one code path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Union

from pixelprune_cli.coding.pipeline import CodingConfig, warm_up
from pixelprune_cli.errors import ConfigError, InputError, option
from pixelprune_cli.inputs.parquet_source import image_column_known_before
from pixelprune_cli.inputs.pieces import ParquetRows, SourceCounts, SourceOptions, piece_size
from pixelprune_cli.inputs.sources import check_inputs, plan
from pixelprune_cli.outputs import writer
from pixelprune_cli.outputs.formats import output_format, table_format
from pixelprune_cli.outputs.overlap import refuse_overlap
from pixelprune_cli.outputs.schema import IMAGES_PER_ROW, MANY, output_schema
from pixelprune_cli.outputs.shards import ShardedSink
from pixelprune_cli.pictures.show import Rendering, ShowOptions, picture_format, render_path, save_picture
from pixelprune_cli.records import CodedRow, FailedImage, Sink
from pixelprune_cli.report.report import Progress
from pixelprune_cli.report.summary import ImageEntry, Sample, Summary, WrittenBytes, sample_estimate
from pixelprune_cli.run.engine import coded_stream, count_in_background, engine_for, image_entry
from pixelprune_cli.run.job import Job, RunOptions, no_images_error
from pixelprune_cli.run.row_coding import check_engine, entries, holds_lists
from pixelprune_cli.storage.atomic import sweep_partials_of
from pixelprune_cli.storage.urls import is_url, local_path, redact

Inputs = Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]]]


def input_list(inputs: Inputs) -> list[str]:
    """`compress("photos/")` means one input, as `compress(["photos/"])` does, not one per character."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return [local_path(os.fspath(i)) for i in inputs]  # file:// is a local path


def written_bytes(output: str, sink: Sink | None = None) -> int | None:
    """Bytes a finished compress left at `output` (a file, a shard folder's files) or sent to stdout."""
    if output == "-":
        return None if sink is None else sink.bytes_written
    if isinstance(sink, ShardedSink):  # the files its manifest lists, never whatever else the folder holds
        from pixelprune_cli.outputs.manifest import folder_bytes

        return folder_bytes(output)
    from pixelprune_cli.storage.storage import size

    return size(output)


def carried_fields(inputs: list[str], sources: SourceOptions):
    """Arrow fields of --keep-columns, from the Parquet inputs (plan checks that every one has them).

    Every input must give a column the same type, since the output has one
    schema; a mismatch is refused here, before any image is coded.
    """
    if not sources.keep_columns:
        return []
    import pyarrow.parquet as pq

    from pixelprune_cli.storage.storage import table_source

    fields, first = None, None
    for piece in plan(inputs, sources):
        if isinstance(piece, ParquetRows):
            schema = pq.read_schema(table_source(piece.path))
            these = [schema.field(c) for c in sources.keep_columns]
            if fields is None:
                fields, first = these, piece.name
                continue
            for had, field_ in zip(fields, these):
                if had.type != field_.type:
                    raise ConfigError(f"{option('keep_columns', sources.keep_columns, ','.join(sources.keep_columns))}: "
                                      f"{first} has {had.name} as {had.type} and {piece.name} as {field_.type}; "
                                      "carried columns need one type in every input")
    if fields is None:
        raise InputError(f"{option('keep_columns', sources.keep_columns, ','.join(sources.keep_columns))}: "
                         "no Parquet input has these columns")
    return fields


def with_image_column(meta: dict, inputs: list[str], sources: SourceOptions) -> dict:
    """The output's metadata, naming the Parquet column the images came from when it is known before the run."""
    column = image_column_known_before(inputs, sources)
    return meta if column is None else {**meta, "image_column": column}


def compress(inputs: Inputs, output: str | os.PathLike[str], config: CodingConfig = CodingConfig(),
             sources: SourceOptions = SourceOptions(), run: RunOptions = RunOptions(),
             compression: str | None = None, overwrite: bool = False,
             shard_size: int | None = None, shard_format: str | None = None, resume: bool = False) -> Summary:
    """Code every input image and write the kept tokens to `output`, on the engine `run.engine` names.

    output: FILE.arrow / FILE.parquet, '-' (Arrow stream on stdout), or DIR/
    (shards of `shard_size` images with a manifest; `resume` finishes an
    interrupted run). `shard_size` and `shard_format` default to the
    engine's (10,000 Arrow shards here; 1,000 Parquet shards, one Ray task
    each, with "ray"). Returns the run's Summary. Raises InputError or
    ConfigError (exit code 2) before writing anything when inputs or output are
    unusable.
    """
    engine = engine_for(run)
    inputs, output = input_list(inputs), local_path(os.fspath(output))  # file:// is a local path
    check_inputs(inputs)
    target = writer.output_target(output)  # decided once: a store round trip for a URL without a trailing slash
    folder = target == "folder"
    if output != "-":
        refuse_overlap(inputs, output, owned_folder=folder, table_output=not folder,
                       also_writes=() if folder or is_url(output) else (str(writer.errors_path(output)),))
        if not is_url(output):
            sources = replace(sources, own_output=None if folder else os.path.abspath(output))
    engine.check(output, run, target)
    if target == "file":
        output_format(output)  # a suffix that is none of ours is refused before anything is touched
    writer.check_target(output, overwrite, target)
    if resume and not folder:
        raise ConfigError(f"{option('resume')} needs a sharded output folder (an output ending in '/')")
    for name, value in (("shard_size", shard_size), ("shard_format", shard_format)):
        if value is not None and not folder:
            raise ConfigError(f"{option(name, value)} shapes a folder of shards (an output ending in '/'), and "
                              f"{output} is one {'stream' if output == '-' else 'file'}; drop it or write to a folder")
    if resume and overwrite:
        raise ConfigError(f"{option('resume')} keeps the committed shards and {option('overwrite')} replaces them; "
                          "pass one of the two")
    shard_size = engine.shard_size if shard_size is None else shard_size
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    shard_format = table_format(shard_format or engine.shard_format).name
    meta = with_image_column(config.to_meta(), inputs, sources)
    if holds_lists(inputs, sources):  # a table of image lists: one output row per sample (multi_image)
        check_engine(run.engine)
        meta = {**meta, IMAGES_PER_ROW: MANY}
    job = Job(inputs, output, config, sources, output_schema(meta, config.preset.token_bytes, carried_fields(inputs, sources)),
              writer.DEFAULT_COMPRESSION if compression is None else compression, shard_size, shard_format,
              resume=resume, overwrite=overwrite, target=target)
    counts = SourceCounts()
    summary = Summary(title="pixelprune compress", config=meta, output=redact(output),
                      errors_file=redact(writer.errors_file(output, target) or "") or None)
    if IMAGES_PER_ROW in meta:
        summary.rows = 0  # counted as rows are written: the report speaks of rows even if every one fails
    sink = engine.run(job, run, summary, counts)
    summary.take_skipped(counts)
    summary.bytes_written = WrittenBytes(written_bytes(output, sink))
    return summary.finish()


def stats(inputs: Inputs, config: CodingConfig = CodingConfig(), sources: SourceOptions = SourceOptions(),
          run: RunOptions = RunOptions(), sample: int | None = None) -> Summary:
    """What compressing would save (images), or what a compressed file saves (pixelprune outputs).

    With `sample`, images are a seeded uniform sample of that many (see
    `sources.sample`): an estimate for datasets too large to code just to look.

    `-` reads a compressed output streamed on stdin (`compress ... -o - | pixelprune stats -`).
    """
    from pixelprune_cli.outputs.readers import STDIN, compressed_meta

    inputs = input_list(inputs)
    if inputs == [STDIN]:
        return stats_of_output(STDIN, sources)
    check_inputs(inputs)

    if len(inputs) == 1 and compressed_meta(inputs[0]) is not None:
        return stats_of_output(inputs[0], sources)
    counts = SourceCounts()
    summary = Summary(title="pixelprune stats", config=config.to_meta())
    pieces = None
    if sample is not None:  # a seeded uniform sample: an estimate in `sample` decodes, whatever the input's size
        from pixelprune_cli.inputs.sources import sample as draw

        pieces, total = draw(inputs, sources, sample, counts=counts)
        if total > sample:
            summary.sample = Sample(images=sample, of=total, seed=0)
    progress = Progress(run.progress, "measuring", total=None if pieces is None else sum(map(piece_size, pieces)),
                        listing=inputs)
    if pieces is None:
        count_in_background(inputs, sources, progress)
    from pixelprune_cli.coding.budget import BudgetTally

    budget = BudgetTally()  # stats --budget: a few numbers per image
    try:
        for _, result in coded_stream(inputs, config, sources, run, counts, pieces=pieces):
            if isinstance(result, FailedImage):
                summary.add_error(result.as_dict())
            elif isinstance(result, CodedRow):  # a multi-image table's row: an entry per image
                summary.add_row(entries(result), result.extra)
                for image in result.images:
                    if image.budget is not None:
                        budget.add(image.budget)
            else:
                entry = image_entry(result)
                summary.add_image(entry, result.extra)
                if result.budget is not None:
                    budget.add(result.budget)
            progress.advance()
    finally:
        progress.close()
    if summary.images == 0:
        raise no_images_error(inputs, counts)
    if config.budget is not None:
        summary.budget = budget.report()
    if summary.sample:
        summary.sample.estimate = sample_estimate(summary, summary.sample.of)
    summary.take_skipped(counts)
    return summary.finish()


def stats_of_output(path: str, sources: SourceOptions = SourceOptions()) -> Summary:
    """Summary of a compressed file, read from its small columns only."""
    from pixelprune_cli.outputs.multi_image import flatten_images
    from pixelprune_cli.outputs.readers import incomplete_note, iter_output_batches, output_meta, resolve_output
    from pixelprune_cli.outputs.schema import is_multi_image

    output = resolve_output(path)  # a folder or a file, decided once (a store round trip); messages keep `path`
    meta = output_meta(output)
    summary = Summary(title=f"pixelprune stats {Path(path).name}", config=meta, output=redact(path))
    note = incomplete_note(output)
    if note:
        summary.incomplete = note
    columns = ["id", "source_width", "source_height", "width", "height", "tokens", "kept", "tau", *sources.keep_columns]
    multi = is_multi_image(meta)
    for batch in iter_output_batches(output, columns):
        if multi:  # an entry per image (ROW~K), carried values repeated for --group-by
            summary.rows = (summary.rows or 0) + batch.num_rows
            batch, _ = flatten_images(batch, repeat_carried=True)
        rows = batch.to_pydict()
        for i in range(batch.num_rows):
            summary.add_image(ImageEntry(rows["id"][i], (rows["source_width"][i], rows["source_height"][i]),
                                         (rows["width"][i], rows["height"][i]), rows["tokens"][i], rows["kept"][i],
                                         None, rows["tau"][i]), {c: rows[c][i] for c in sources.keep_columns})
    return summary.finish()


def restore(path: str, out_dir: str, overwrite: bool = False, progress: bool = True) -> Summary:
    """Rebuild every row's resized image as a PNG under out_dir (see restore.file_name_for)."""
    from pixelprune_cli.pictures.restore import restore_file

    if is_url(out_dir):
        raise ConfigError(f"{redact(out_dir)}: restore writes PNG files into a local folder; give a local path")
    from pixelprune_cli.outputs.readers import resolve_output

    return restore_file(resolve_output(local_path(path)), local_path(out_dir), overwrite, progress)


def show(path: str, output: str, config: CodingConfig = CodingConfig(), options: ShowOptions = ShowOptions(),
         overwrite: bool = False) -> Rendering:
    """Draw which tokens of PATH are kept into the picture `output` (the suffix picks its format).

    What is drawn follows what PATH is (`show.render_path`): an image or a
    table row as an overlay, a folder or table as a contact sheet, an output's
    row as stored. The picture is refused before anything is drawn if its
    suffix is not a picture format, if it would replace or sit inside an
    input, or if it exists without `overwrite`; it is written whole (a
    temporary file renamed, or one upload). Returns the Rendering: the
    picture, the images a contact sheet left out (FailedImage), and a note.
    """
    fmt = picture_format(output)
    refuse_overlap([path], output)
    writer.check_target(output, overwrite)
    from pixelprune_cli.outputs.readers import resolve_output

    rendering = render_path(resolve_output(path), config, replace(options, output=output))
    sweep_partials_of(output)  # what a killed show left
    writer.write_atomically(output, lambda handle: save_picture(rendering.picture, handle, fmt))
    return rendering


def warmup() -> list[str]:
    """Compile (or load from Numba's cache) every kernel a run uses, so a first run starts fast; says what it covered."""
    return warm_up()


__all__ = ["compress", "stats", "restore", "show", "warmup"]
