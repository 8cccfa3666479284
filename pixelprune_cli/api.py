"""The Python API behind the CLI: compress(), stats(), restore().

The CLI parses options into these calls; notebooks and Ray jobs call them (or
`pipeline.process`) directly, so every entry point shares one code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigError, InputError, PixelpruneError, option
from .parallel import BackgroundSink, default_workers, ordered_map
from .pipeline import CodedImage, CodingConfig, FailedImage, process
from .report import ImageEntry, Progress, Summary
from .sources import ParquetRows, SourceCounts, SourceOptions, check_inputs, piece_ids, piece_size, plan, read_piece


class ImageFailedFast(PixelpruneError):
    """--fail-fast: the first failed image stops the run and no output is kept (exit code 1)."""

    exit_code = 1

    def __init__(self, failed: FailedImage):
        super().__init__(f"{failed.id}: {failed.stage} failed: {failed.reason} (stopped by {option('fail_fast')}; the output was not completed)")


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to produce): workers, failure policy, progress."""

    workers: int = field(default_factory=default_workers)
    fail_fast: bool = False
    progress: bool = True


def _entry(coded: CodedImage) -> ImageEntry:
    return ImageEntry(coded.id, (coded.source_width, coded.source_height), (coded.width, coded.height),
                      coded.tokens, coded.kept, coded.seconds, coded.tau, coded.over_budget)


def coded_stream(inputs: list[str], config: CodingConfig, sources: SourceOptions, run: RunOptions,
                 counts: SourceCounts, skip=None, pieces=None):
    """(position, CodedImage | FailedImage) for every input, in input order.

    Positions count every image enumerated; `skip(position, id)` leaves out
    images (already in a committed shard) without reading them. `pieces`
    replaces the plan of `inputs` (e.g. a sample of it).
    """

    def work(entry):
        position, item = entry
        return position, process(item.id, item.read, config, item.extra)

    pieces = plan(inputs, sources, counts) if pieces is None else pieces
    entries = _positioned_items(pieces, sources, skip)
    return ordered_map(work, entries, run.workers, passthrough=lambda entry: isinstance(entry[1], FailedImage))


def _positioned_items(pieces, sources: SourceOptions, skip):
    """(position, Item | FailedImage) in plan order, minus the skipped positions.

    Skipping works on the plan, before any read: a resumed run does not read
    the image bytes of committed Parquet rows again, only their ids.
    """
    position = 0
    for piece in pieces:
        if skip is None:
            runs = [(0, piece)]
        else:
            todo = [not skip(position + k, image_id) for k, image_id in enumerate(piece_ids(piece))]
            runs = _runs_to_read(piece, todo)
        for offset, part in runs:
            for k, item in enumerate(read_piece(part, sources.keep_columns)):
                yield position + offset + k, item
        position += piece_size(piece)


def _runs_to_read(piece, todo: list[bool]):
    """(offset, piece) for each maximal run of positions still to do; only Parquet rows come in runs."""
    if not isinstance(piece, ParquetRows):
        return [(0, piece)] if todo[0] else []
    runs, start = [], None
    for k, needed in enumerate([*todo, False]):
        if needed and start is None:
            start = k
        elif not needed and start is not None:
            runs.append((start, replace(piece, start=piece.start + start, stop=piece.start + k)))
            start = None
    return runs


def count_in_background(inputs: list[str], sources: SourceOptions, progress: Progress) -> None:
    """Give the progress bar its total: the plan counted again on a side thread (listings and footers only).

    The run itself streams the plan and does not wait; the bar shows `n/?`
    until the count arrives (at once for a folder of hundreds). Planning
    errors are left to the run, which raises them itself.
    """
    if not progress.active:
        return
    import threading

    def count():
        try:
            progress.set_total(sum(piece_size(piece) for piece in plan(inputs, sources)))
        except Exception:
            pass

    threading.Thread(target=count, name="pixelprune-count", daemon=True).start()


def no_images_error(inputs: list[str], counts: SourceCounts) -> InputError:
    skipped = ""
    if counts.skipped_files:
        names = counts.skipped.head(3) if counts.skipped is not None else []
        skipped = (f" ({counts.skipped_files} {'file' if counts.skipped_files == 1 else 'files'} skipped: "
                   + ", ".join(names) + (", ..." if counts.skipped_files > len(names) else "")
                   + ("; hidden ones are included with --hidden" if counts.skipped_hidden else "") + ")")
    return InputError(f"no images found in {', '.join(inputs)}{skipped}")


def written_bytes(output: str, sink=None) -> int | None:
    """Bytes a finished compress left at `output` (a file, a shard folder's files) or sent to stdout."""
    import os

    if output == "-":
        return getattr(sink, "bytes_written", None)
    path = Path(output)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
    return os.path.getsize(path) if path.exists() else None


def carried_fields(inputs: list[str], sources: SourceOptions):
    """Arrow fields of --keep-columns, from the Parquet inputs (plan checks that every one has them).

    Every input must give a column the same type, since the output has one
    schema; a mismatch is refused here, before any image is coded.
    """
    if not sources.keep_columns:
        return []
    import pyarrow.parquet as pq

    fields, first = None, None
    for piece in plan(inputs, sources):
        if isinstance(piece, ParquetRows):
            schema = pq.read_schema(piece.path)
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


def compress(inputs: list[str], output: str, config: CodingConfig = CodingConfig(),
             sources: SourceOptions = SourceOptions(), run: RunOptions = RunOptions(),
             compression: str | None = None, overwrite: bool = False,
             shard_size: int = 10_000, shard_format: str = "arrow", resume: bool = False) -> Summary:
    """Code every input image and write the kept tokens to `output`.

    output: FILE.arrow / FILE.parquet, '-' (Arrow stream on stdout), or DIR/
    (shards of `shard_size` images with a manifest; `resume` finishes an
    interrupted run). Returns the run's Summary. Raises InputError or
    ConfigError (exit code 2) before writing anything when inputs or output are
    unusable.
    """
    from . import writer
    from .schema import output_schema

    check_inputs(inputs)
    writer.check_target(output, overwrite)
    if resume and not writer.is_shard_folder(output):
        raise ConfigError(f"{option('resume')} needs a sharded output folder (an output ending in '/')")
    compression = writer.DEFAULT_COMPRESSION if compression is None else compression
    meta = config.to_meta()
    schema = output_schema(meta, config.preset.token_bytes, carried_fields(inputs, sources))
    counts = SourceCounts()
    summary = Summary(title="pixelprune compress", config=meta, output=output)
    if output == "-":
        sink = writer.StdoutSink(schema, compression)
    elif writer.is_shard_folder(output):
        sink = writer.ShardedSink(output, schema, meta, shard_size, compression, shard_format,
                                  resume=resume, overwrite=overwrite)
        summary.extra.update(sink.resumed)
    else:
        sink = writer.FileSink(output, schema, compression, overwrite=overwrite)
    skip = sink.skips if getattr(sink, "done", None) else None  # only a resumed shard folder skips anything
    plain_sink, sink = sink, BackgroundSink(sink)
    progress = Progress(run.progress)
    count_in_background(inputs, sources, progress)
    try:
        for position, result in coded_stream(inputs, config, sources, run, counts, skip):
            if isinstance(result, FailedImage):
                summary.add_error(result.as_dict())
                if run.fail_fast:
                    raise ImageFailedFast(result)
            else:
                summary.add_image(_entry(result))
            sink.add_at(position, result)
            progress.advance(position + 1)
        if summary.images == 0 and not summary.extra.get("resumed_shards"):
            raise no_images_error(inputs, counts)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    finally:
        progress.close()
    summary.take_skipped(counts)
    summary.extra["bytes_written"] = written_bytes(output, plain_sink)
    return summary.finish()


def stats(inputs: list[str], config: CodingConfig = CodingConfig(), sources: SourceOptions = SourceOptions(),
          run: RunOptions = RunOptions(), sample: int | None = None) -> Summary:
    """What compressing would save (images), or what a compressed file saves (pixelprune outputs).

    With `sample`, images are a seeded uniform sample of that many (see
    `sources.sample`): an estimate for datasets too large to code just to look.

    `-` reads a compressed output streamed on stdin (`compress ... -o - | pixelprune stats -`).
    """
    from .readers import STDIN, compressed_meta

    if inputs == [STDIN]:
        return stats_of_output(STDIN, sources)
    check_inputs(inputs)

    if len(inputs) == 1 and compressed_meta(inputs[0]) is not None:
        return stats_of_output(inputs[0], sources)
    counts = SourceCounts()
    summary = Summary(title="pixelprune stats", config=config.to_meta())
    pieces = None
    if sample is not None:  # a seeded uniform sample: an estimate in `sample` decodes, whatever the input's size
        from .sources import sample as draw

        pieces, total = draw(inputs, sources, sample, counts=counts)
        if total > sample:
            summary.extra["sample"] = {"images": sample, "of": total, "seed": 0}
    progress = Progress(run.progress, "measuring", total=None if pieces is None else sum(map(piece_size, pieces)))
    if pieces is None:
        count_in_background(inputs, sources, progress)
    from .budget import BudgetTally

    budget = BudgetTally()  # stats --budget: a few numbers per image
    try:
        for _, result in coded_stream(inputs, config, sources, run, counts, pieces=pieces):
            if isinstance(result, FailedImage):
                summary.add_error(result.as_dict())
            else:
                entry = _entry(result)
                summary.add_image(entry, result.extra)
                if result.budget is not None:
                    budget.add(result.budget)
            progress.advance()
    finally:
        progress.close()
    if summary.images == 0:
        raise no_images_error(inputs, counts)
    if config.budget is not None:
        summary.extra["budget"] = budget.report()
    if "sample" in summary.extra:
        from .report import sample_estimate

        summary.extra["sample"]["estimate"] = sample_estimate(summary, summary.extra["sample"]["of"])
    summary.take_skipped(counts)
    return summary.finish()


def stats_of_output(path: str, sources: SourceOptions = SourceOptions()) -> Summary:
    """Summary of a compressed file, read from its small columns only."""
    from .readers import compressed_meta, incomplete_note, iter_output_batches

    meta = compressed_meta(path)
    summary = Summary(title=f"pixelprune stats {Path(path).name}", config=meta, output=path)
    note = incomplete_note(path)
    if note:
        summary.extra["incomplete"] = note
    columns = ["id", "source_width", "source_height", "width", "height", "tokens", "kept", "tau", *sources.keep_columns]
    for batch in iter_output_batches(path, columns):
        rows = batch.to_pydict()
        for i in range(batch.num_rows):
            summary.add_image(ImageEntry(rows["id"][i], (rows["source_width"][i], rows["source_height"][i]),
                                         (rows["width"][i], rows["height"][i]), rows["tokens"][i], rows["kept"][i],
                                         None, rows["tau"][i]), {c: rows[c][i] for c in sources.keep_columns})
    return summary.finish()


def restore(path: str, out_dir: str, overwrite: bool = False, progress: bool = True) -> Summary:
    """Rebuild every row's resized image as a PNG under out_dir (see restore.file_name_for)."""
    from .restore import restore_file

    return restore_file(path, out_dir, overwrite, progress)


__all__ = ["compress", "stats", "restore", "RunOptions", "CodingConfig", "SourceOptions", "ConfigError"]
