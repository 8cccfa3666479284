"""Image tables whose image column is a list (TRL's `images`: several screenshots per sample): what such a
column looks like, and a row's list cell as one item to code.

A row is a training sample, so it is coded whole or not at all: one image
that cannot be read fails the row, and the reason names that image's position.
Below `parquet_source` (which asks here), free of pyarrow at import time.
"""

from __future__ import annotations

from collections.abc import Callable

from pixelprune_cli.records import FailedImage, ImageRow


def holds_one_image(type_) -> bool:
    """An Arrow type that holds one image per cell: an HF `Image` struct ({bytes, path}) or binary."""
    import pyarrow as pa

    return ((pa.types.is_struct(type_) and type_.get_field_index("bytes") >= 0)
            or pa.types.is_binary(type_) or pa.types.is_large_binary(type_))


def holds_image_list(type_) -> bool:
    """An Arrow type that holds a list of images per cell (list or large_list of one-image values)."""
    import pyarrow as pa

    return (pa.types.is_list(type_) or pa.types.is_large_list(type_)) and holds_one_image(type_.value_type)


def could_hold_images(type_) -> bool:
    return holds_one_image(type_) or holds_image_list(type_)


def is_image_feature(feature) -> bool:
    """An HF `datasets` feature (from the `huggingface` schema metadata) of one image or a list of images:
    `Image`, `List(Image)` / `Sequence(Image)` (a dict with `feature`) or `[Image]` (a list of one)."""
    if isinstance(feature, list) and len(feature) == 1:
        return is_image_feature(feature[0])
    if not isinstance(feature, dict):
        return False
    if feature.get("_type") == "Image":
        return True
    return feature.get("_type") in ("List", "Sequence", "LargeList") and is_image_feature(feature.get("feature"))


def list_item(row_id: str, cells: list, reader_of: Callable, extra: dict) -> ImageRow | FailedImage:
    """A row's list of image cells as one ImageRow, or the row's failure naming the first cell that holds no image.

    reader_of(cell) -> (reader, None) or (None, why not), as parquet_source.cell_reader.
    """
    if not cells:
        return FailedImage(row_id, "read", "the row's image list is empty", extra)
    reads = []
    for k, cell in enumerate(cells):
        try:
            reader, problem = reader_of(cell)
        except Exception as exc:  # a cell of an unexpected shape
            from pixelprune_cli.errors import one_line

            reader, problem = None, f"malformed image cell ({one_line(exc)})"
        if problem:
            return FailedImage(row_id, "read", f"{image_position(k, len(cells))}: {problem}", extra)
        reads.append(reader)
    return ImageRow(row_id, reads, extra)


def image_position(k: int, count: int) -> str:
    """How a failure names the image of a row that caused it: its index in the row's list, from 0."""
    return f"image {k} of {count} (from 0)"
