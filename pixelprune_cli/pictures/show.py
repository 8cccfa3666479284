"""`pixelprune show PATH`: what to draw for PATH, and the picture file it is written to.

A folder or a Parquet image table gives a contact sheet (`contact_sheet`); one
image, a table row or an output row gives an overlay (`token_overlay`); an
output without --id/--row gives its only row or a sheet of its rows. What to
draw is one `ShowOptions` record, as `CodingConfig` says how to code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from PIL import Image, PngImagePlugin

from pixelprune_cli.coding.backends import load
from pixelprune_cli.coding.preprocess import open_image
from pixelprune_cli.coding.presets import resolve_preset
from pixelprune_cli.errors import ConfigError, InputError
from pixelprune_cli.inputs.input_files import read_file
from pixelprune_cli.inputs.pieces import ParquetRows, SourceOptions
from pixelprune_cli.inputs.sources import plan, read_piece
from pixelprune_cli.outputs.formats import PARQUET, format_of
from pixelprune_cli.outputs.multi_image import image_batches
from pixelprune_cli.outputs.readers import (
    STDIN,
    checked_row,
    compressed_meta,
    incomplete_note,
    is_output_folder,
    iter_output_batches,
    output_meta,
)
from pixelprune_cli.outputs.schema import is_multi_image
from pixelprune_cli.pictures.contact_sheet import (
    MARK_KEY,
    MARK_VALUE,
    contact_sheet,
    contact_sheet_for_folder,
    sheet_header,
    thumbnail,
)
from pixelprune_cli.pictures.token_overlay import (
    LARGEST_ERROR,
    describe_error,
    overlay_for_image,
    overlay_for_row,
    row_image,
)
from pixelprune_cli.records import FailedImage, ImageRow

SHEET_SAMPLE = 100  # contact-sheet tiles by default: a look over a dataset, not a dump of it


@dataclass(frozen=True)
class ShowOptions:
    """What `show` draws and how (the coding itself is the CodingConfig's): `pixelprune show`'s options."""
    image_id: str | None = None  # an output's row with this id
    row: int | None = None  # row number (from 0) of an output or a Parquet image table
    side_by_side: bool = False  # add the restored image (and an error heat map when tau > 0)
    thumb: int = 256  # contact-sheet thumbnail size
    sample: int | None = SHEET_SAMPLE  # contact sheet: a seeded random sample of this many images; None: all
    workers: int = 1  # threads coding a contact sheet's images
    image_column: str | None = None  # Parquet column holding the images
    hidden: bool = False  # include hidden files of a folder
    output: str | None = None  # the picture about to be written: never a tile of its own sheet
    allow_path_schemes: tuple[str, ...] = ()  # what a table's path cells may name (SourceOptions')
    progress: bool = False  # a progress line (on a terminal) while a contact sheet's images are coded

    def sources(self) -> SourceOptions:
        return SourceOptions(image_column=self.image_column, hidden=self.hidden,
                             allow_path_schemes=self.allow_path_schemes)


def read_output_row(path: str, image_id: str | None = None, row: int | None = None) -> tuple[dict, dict]:
    """(row, meta) of one row of a compressed output, found by id or by position (from 0).

    The row holds numpy arrays (pixels as (kept, token_bytes) uint8), not Python lists.
    """
    if (image_id is None) == (row is None):
        raise ConfigError("give exactly one of --id or --row")
    meta = output_meta(path)
    seen = 0
    batches = image_batches(iter_output_batches(path))  # a multi-image output's images, as ROW~K
    for batch in batches:
        if image_id is not None:
            ids = batch.column("id").to_pylist()
            i = ids.index(image_id) if image_id in ids else None
        else:
            assert row is not None  # exactly one of image_id and row, checked above
            i = row - seen if seen <= row < seen + batch.num_rows else None
        seen += batch.num_rows
        if i is None:
            continue
        found = checked_row(batch, i, resolve_preset(meta), path)
        if path == STDIN:
            for _ in batches:  # read to the end: a stream that was cut short raises there
                pass
        return found, meta
    where = f"id {image_id!r}" if image_id is not None else f"row {row} (it has {seen} rows, counted from 0)"
    if is_multi_image(meta):
        where += " (a multi-image output: --id ROW~K and --row N pick its images, counted from 0)"
    note = incomplete_note(path)
    raise InputError(f"{path}: no {where}" + (f" ({note})" if note else ""))


def read_table_image(path: str, row: int, image_column: str | None = None, backend: str = "pil",
                     sources: SourceOptions | None = None) -> Image.Image:
    """Decode row `row` (from 0) of a Parquet image table, as compress reads it (reading only the row group that holds it)."""
    sources = sources or SourceOptions(image_column=image_column)
    table = next((p for p in plan([path], sources) if isinstance(p, ParquetRows)), None)
    total = 0 if table is None else table.stop
    if table is None or not 0 <= row < total:
        raise InputError(f"{path}: no row {row} (it has {total} rows, counted from 0)")
    item = next(read_piece(replace(table, start=row, stop=row + 1)))
    if isinstance(item, FailedImage):
        raise InputError(f"{path}#{row}: {item.reason}")
    if isinstance(item, ImageRow):
        raise InputError(f"{path}#{row}: holds a list of {len(item.reads)} images, and --row draws one image; "
                         "show the table without --row for a sheet of every image")
    return load(open_image(item.read()), backend)


def picture_format(path: str) -> str:
    """The Pillow format `show -o path` writes, from the suffix; ConfigError for one that is not a picture format."""
    Image.init()
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt not in PICTURE_FORMATS:
        raise ConfigError(f"{path}: show writes a picture; name it {', '.join(PICTURE_SUFFIXES)} "
                          f"(the suffix chooses the format)")
    return fmt


PICTURE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def save_picture(picture: Image.Image, handle, fmt: str) -> None:
    """Write a picture `show` drew in `fmt`, with our mark where the format has room for it (PNG, JPEG)."""
    options: dict = {}
    if fmt == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_text(MARK_KEY, MARK_VALUE)
        options["pnginfo"] = text
    elif fmt == "JPEG":
        options.update(comment=f"{MARK_KEY} {MARK_VALUE}".encode(), quality=95)
    picture.save(handle, format=fmt, **options)


def render_output(path: str, side_by_side: bool = False, thumb: int = 256, sample: int | None = None) -> Rendering:
    """A compressed output shown without --id/--row: its only row drawn whole, else a contact sheet of its rows.

    Rows stream by (a file, a shard folder, or a stream on stdin, which can be
    read only once); with `sample`, a seeded uniform reservoir of that many
    tiles is kept, so memory holds `sample` thumbnails whatever the row count.
    """
    meta = output_meta(path)
    preset = resolve_preset(meta)
    token_size = preset.token_size
    rng = random.Random(0)
    tiles: list = []
    only = None  # the first row, in full, while it is the only one
    seen = 0
    for batch in image_batches(iter_output_batches(path)):  # a multi-image output's images, as ROW~K
        for i in range(batch.num_rows):
            slot = seen if sample is None or seen < sample else rng.randrange(seen + 1)
            if sample is None or slot < sample:
                row = checked_row(batch, i, preset, path)
                only = row if seen == 0 else None
                image, ref = row_image(row, meta)
                tile = (thumbnail(image, ref, token_size, thumb), row["id"], row["kept"] / max(1, row["tokens"]),
                        (row["kept"], row["tokens"]))
                tiles[slot:slot + 1] = [tile]
            elif seen == 1:
                only = None
            seen += 1
    if seen == 0:
        raise InputError(f"{path}: the output holds no rows to show")
    if seen == 1:
        assert only is not None  # a sample of at least one keeps the first row
        return Rendering(overlay_for_row(only, meta, side_by_side), [])
    note = f"a random sample of {len(tiles):,} of {seen:,} rows (--sample to change)" if len(tiles) < seen else None
    return Rendering(contact_sheet(tiles, thumb=thumb, header=sheet_header(tiles, of=seen)), [], note)


class Rendering(NamedTuple):
    """What `show` drew: the picture, the images a contact sheet had to leave out, and a note for the user."""

    picture: Image.Image
    failures: list
    note: str | None = None


def render_path(path: str, config, options: ShowOptions = ShowOptions()) -> Rendering:
    """What `pixelprune show PATH` draws, chosen by what PATH is; `config` (a CodingConfig) codes the images.

    folder, or Parquet image table without `row` -> contact sheet (of a
    seeded random `options.sample` of its images when it holds more; None: all);
    compressed output (schema metadata) -> the row given by `image_id` or
    `row`, without them its only row or a contact sheet of its rows; Parquet
    image table -> row `row`; else an image file, coded with `config.budget`
    when set. `failures` (pipeline.FailedImage) lists the images a contact
    sheet had to leave out; a single image that fails raises (ImageFailure,
    InputError).
    """
    image_id, row, side_by_side, thumb, sample = (options.image_id, options.row, options.side_by_side, options.thumb,
                                                  options.sample)
    p = Path(path)
    is_output = compressed_meta(path) is not None  # read once: it opens the file's schema
    is_table = format_of(p) is PARQUET
    if not is_output and (is_output_folder(path) or (is_table and row is None and image_id is None)):
        if image_id is not None or row is not None:
            raise ConfigError("--id / --row pick one image; a folder gives a contact sheet")
        left_out: list[str] = []
        sheet, failures, total = contact_sheet_for_folder(
            [path], config, thumb=thumb, max_images=sample, workers=options.workers,
            sources=options.sources(), output=options.output,
            left_out=left_out, progress=options.progress)
        shown = total if sample is None else min(sample, total)
        notes = [f"a random sample of {shown:,} of {total:,} images (--sample to change)"] if shown < total else []
        if left_out:
            notes.append(f"left out {len(left_out):,} picture{'s' if len(left_out) > 1 else ''} pixelprune show drew "
                         f"({', '.join(left_out[:3])}{', ...' if len(left_out) > 3 else ''})")
        return Rendering(sheet, failures, "; ".join(notes) or None)
    if is_output:
        if config.budget is not None:
            raise ConfigError("--budget codes images; a compressed output is already coded")
        if image_id is None and row is None:
            return render_output(path, side_by_side, thumb, sample)
        found, meta = read_output_row(path, image_id, row)
        return Rendering(overlay_for_row(found, meta, side_by_side), [])
    if image_id is not None:
        raise ConfigError("--id picks a row of a compressed output; use --row N for a Parquet image table")
    if is_table:
        assert row is not None  # a table without --row is a contact sheet, above
        image = read_table_image(path, row, backend=config.backend, sources=options.sources())
        title = f"{p.name}#{row}"
    else:
        if row is not None:
            raise ConfigError("--row picks a row of a Parquet file or compressed output")
        image = load(open_image(read_file(path, config.max_image_bytes), config.max_image_pixels), config.backend)
        title = p.name
    picture = overlay_for_image(image, config, side_by_side, config.budget, config.max_tau, title)
    largest = picture.info.get(LARGEST_ERROR)
    return Rendering(picture, [], None if largest is None else describe_error(largest[0], config.metric, largest[1]))


