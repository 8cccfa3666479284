"""Coding a multi-image row: every image by `pipeline.process`, the per-image function of single images,
so an image gives the same tokens alone or in a row; and which runs hold such rows."""

from __future__ import annotations

import time

from pixelprune_cli.coding.pipeline import CodingConfig, process
from pixelprune_cli.errors import ConfigError, option
from pixelprune_cli.inputs.image_lists import image_position
from pixelprune_cli.inputs.pieces import ParquetRows, SourceOptions
from pixelprune_cli.outputs.multi_image import image_id
from pixelprune_cli.records import CodedImage, CodedRow, FailedImage, ImageRow, Item, Result
from pixelprune_cli.report.summary import ImageEntry


def process_row(row: ImageRow, config: CodingConfig) -> CodedRow | FailedImage:
    """Code every image of a row in order with `pipeline.process`; the first that fails fails the row,
    its position in the reason. Never raises for bad data."""
    start = time.perf_counter()
    images = []
    for k, read in enumerate(row.reads):
        result = process(image_id(row.id, k), read, config)
        if isinstance(result, FailedImage):
            return FailedImage(row.id, result.stage, f"{image_position(k, len(row.reads))}: {result.reason}", row.extra)
        images.append(result)
    return CodedRow(row.id, images, row.extra, time.perf_counter() - start)


def code_item(item: Item | ImageRow | FailedImage, config: CodingConfig) -> Result:
    """An item coded by the per-image function (every image of an ImageRow), or the read failure it already is."""
    if isinstance(item, FailedImage):
        return item
    if isinstance(item, ImageRow):
        return process_row(item, config)
    return process(item.id, item.read, config, item.extra)


def entries(result: CodedImage | CodedRow) -> list[ImageEntry]:
    """A coded result's summary entries: one per image (a multi-image row's images as `ROW~K`)."""
    images = result.images if isinstance(result, CodedRow) else [result]
    return [ImageEntry(c.id, (c.source_width, c.source_height), (c.width, c.height), c.tokens, c.kept, c.seconds,
                       c.tau, c.over_budget) for c in images]


def holds_lists(inputs: list[str], sources: SourceOptions) -> bool:
    """Whether the inputs are multi-image tables (their image column a list), from the plan (listings, footers).

    A run writes one schema, so inputs that mix tables of image lists with single
    images (files or tables) are refused (ConfigError), naming one of each.
    """
    import os

    from pixelprune_cli.inputs.sources import plan
    from pixelprune_cli.outputs.formats import PARQUET_SUFFIXES
    from pixelprune_cli.storage.urls import is_url

    if not any(is_url(p) or os.path.isdir(p) or os.path.splitext(p)[1].lower() in PARQUET_SUFFIXES for p in inputs):
        return False  # image files only
    lists = single = None
    for piece in plan(inputs, sources):
        if isinstance(piece, ParquetRows) and piece.many:
            lists = lists or piece.name
        elif not isinstance(piece, FailedImage):
            single = single or (piece.name if isinstance(piece, ParquetRows) else piece.id)
        if lists and single:
            raise ConfigError(f"{lists} holds a list of images per row and {single} one image; one output holds "
                              "one kind of row, so compress them to separate outputs")
    return bool(lists)


def check_engine(engine: str) -> None:
    if engine != "local":
        raise ConfigError(f"{option('engine', engine)} codes one image per row; multi-image tables (an image "
                          f"list column) run on {option('engine', 'local')}")
