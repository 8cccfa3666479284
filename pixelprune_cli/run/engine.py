"""Engines: where the per-image function runs. One interface, picked in one place.

`api.compress` builds a Job (what to code, into which output and layout) and
hands it to the engine `RunOptions.engine` names. An engine codes every input
position into the job's sink, feeds the Summary in input order, and commits
(or aborts and raises); the driver owns the checks before, and the skipped
files and byte count after. Two engines:

- "local" (here): worker threads in this process, results in input order
  (`coded_stream`), any output (file, stream, shard folder).
- "ray" (ray_engine.py): one Ray task per shard, shard folders only.

A new engine is a class with `check` and `run`, added to `engine_for`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from pixelprune_cli.coding.pipeline import CodingConfig
from pixelprune_cli.errors import ConfigError, ImageFailedFast, option
from pixelprune_cli.inputs.pieces import ImageFile, ParquetRows, SourceCounts, SourceOptions, piece_size
from pixelprune_cli.inputs.sources import piece_ids, plan, read_piece
from pixelprune_cli.records import CodedImage, CodedRow, FailedImage, Sink
from pixelprune_cli.report.report import Progress
from pixelprune_cli.report.summary import ImageEntry, Summary
from pixelprune_cli.run.job import Engine, Job, RunOptions, no_images_error
from pixelprune_cli.run.parallel import BackgroundSink, default_workers, ordered_map
from pixelprune_cli.run.ray_engine import RayEngine
from pixelprune_cli.run.row_coding import code_item, entries


def engine_for(run: RunOptions) -> Engine:
    if run.engine == "local":
        return LocalEngine()
    if run.engine == "ray":
        return RayEngine()
    raise ConfigError(f"unknown engine {run.engine!r}; choose local or ray")


def image_entry(coded: CodedImage) -> ImageEntry:
    return ImageEntry(coded.id, (coded.source_width, coded.source_height), (coded.width, coded.height),
                      coded.tokens, coded.kept, coded.seconds, coded.tau, coded.over_budget)


class LocalEngine:
    """Worker threads in this process; a writer thread behind them (parallel.BackgroundSink)."""

    shard_size = 10_000
    shard_format = "arrow"

    def check(self, output: str, run: RunOptions, target: str) -> None:
        if run.ray_address:
            raise ConfigError(f"{option('ray_address')} needs {option('engine', 'ray')}")

    def run(self, job: Job, run: RunOptions, summary: Summary, counts: SourceCounts) -> Sink:
        sink = job.open_sink()
        background = None
        try:  # from here on the output's lock and files are ours to clean up however the run ends
            summary.resumed = sink.resumed
            background = BackgroundSink(sink)
            progress = Progress(run.progress, listing=job.inputs)
            count_in_background(job.inputs, job.sources, progress)
            try:
                for position, result in coded_stream(job.inputs, job.config, job.sources, run, counts, sink.skipper()):
                    if isinstance(result, FailedImage):
                        summary.add_error(result.as_dict())
                        if run.fail_fast:
                            raise ImageFailedFast(result)
                    elif isinstance(result, CodedRow):  # a multi-image row: an entry per image
                        summary.add_row(entries(result))
                    else:
                        summary.add_image(image_entry(result))
                    background.add_at(position, result)
                    progress.advance(position + 1)
                if summary.images == 0 and not (summary.resumed and summary.resumed.shards):
                    raise no_images_error(job.inputs, counts)
                background.commit()
            finally:
                progress.close()
        except BaseException:
            if background is not None:
                background.abort()
            else:
                sink.abort()
            raise
        return sink


def coded_stream(inputs: list[str], config: CodingConfig, sources: SourceOptions, run: RunOptions,
                 counts: SourceCounts, skip=None, pieces=None, then: Callable | None = None):
    """(position, CodedImage | FailedImage) for every input, in input order.

    Positions count every image enumerated; `skip(position, id)` leaves out
    images (already in a committed shard) without reading them. `pieces`
    replaces the plan of `inputs` (e.g. a sample of it). `then(coded)`, run in
    the worker, replaces each CodedImage with what it returns (show's tiles), and a
    CodedRow with a list of what it returns for each of its images.
    """

    def work(entry):
        position, item = entry
        result = code_item(item, config)  # pipeline.process, for each image of a multi-image row too
        if then is not None and isinstance(result, CodedRow):  # a multi-image row: a list, one per image
            return position, [then(image) for image in result.images]
        return position, (then(result) if then is not None and isinstance(result, CodedImage) else result)

    pieces = plan(inputs, sources, counts) if pieces is None else pieces
    entries = _positioned_items(pieces, sources, skip)
    return ordered_map(work, entries, run.workers or default_workers(), passthrough=lambda entry: isinstance(entry[1], FailedImage))


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

    The run itself streams the plan and does not wait; the bar says how many
    files the listing has found until the count arrives (at once for a folder
    of hundreds). Planning errors are left to the run, which raises them itself.
    """
    if not progress.active:
        return
    import threading

    def count():
        try:
            total, files, shown = 0, True, 0.0
            for piece in plan(inputs, sources):
                total += piece_size(piece)
                files = files and isinstance(piece, ImageFile)  # a Parquet file holds many images
                if time.monotonic() - shown > 0.1:  # a few updates a second, not one per file
                    progress.found(total, "files" if files else "images")
                    shown = time.monotonic()
            progress.set_total(total)
        except Exception:
            pass

    threading.Thread(target=count, name="pixelprune-count", daemon=True).start()
