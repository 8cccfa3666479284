"""The contact sheet (`pixelprune show FOLDER`): many images as thumbnails, most reduced first.

A sheet codes its images on the local engine's worker threads (or reads the
rows of an output) and keeps only thumbnails, so a large folder costs
thumbnails, not images; pictures `show` drew earlier carry a mark and are
left out, since an output of ours is never an input of the sheet.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pixelprune_cli.errors import InputError
from pixelprune_cli.inputs.pieces import ImageFile, Piece, SourceCounts, SourceOptions
from pixelprune_cli.inputs.sources import plan, sample
from pixelprune_cli.pictures.token_overlay import (
    BACKGROUND,
    CAPTION_MIN_SIZE,
    PADDING,
    TEXT_COLOUR,
    caption_font,
    caption_size,
    line_height,
    mark_dropped,
    row_image,
    saving_text,
    text_width,
)
from pixelprune_cli.records import FailedImage
from pixelprune_cli.report.report import Progress
from pixelprune_cli.run.engine import coded_stream, count_in_background
from pixelprune_cli.run.job import RunOptions


def thumbnail(image: np.ndarray, ref: np.ndarray, token_size: int, thumb: int) -> Image.Image:
    marked = Image.fromarray(mark_dropped(image, ref, token_size, grid=False, hatch=False))
    marked.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
    return marked


def _fit(font, text: str, width: int) -> str:
    """text, cut and ended with '...' if it is wider than `width` pixels (labels stay inside their tile)."""
    if text_width(font, text) <= width:
        return text
    while text and text_width(font, text + "...") > width:
        text = text[:-1]
    return text + "..." if text_width(font, text + "...") <= width else ""


def tile_font(thumb: int):
    """The labels' font: it grows with the thumbnails (16 px for 256 px ones), so a large sheet stays readable."""
    return caption_font(max(CAPTION_MIN_SIZE, round(thumb / 16)))


def contact_tile_size(thumb: int) -> tuple[int, int]:
    """(width, height) of one contact-sheet tile: the thumbnail box plus two label lines."""
    return thumb + 2 * PADDING, thumb + 2 * line_height(tile_font(thumb)) + 3 * PADDING


def header_height(width: int) -> int:
    """Height of the line of totals atop a sheet `width` pixels wide (its font grows with the sheet, as captions do)."""
    return line_height(caption_font(caption_size(width))) + 2 * PADDING


def sheet_header(entries: list[tuple], of: int | None = None, failed: int = 0) -> str:
    """The totals of a sheet's tiles, (thumbnail, label, kept fraction, (kept, tokens)) each, in one line (ASCII)."""
    kept, tokens = sum(e[3][0] for e in entries), sum(e[3][1] for e in entries)
    parts = [f"{len(entries):,} image{'' if len(entries) == 1 else 's'}" + (f" of {of:,}" if of and of > len(entries) else ""),
             f"kept {kept:,} of {tokens:,} tokens ({saving_text(kept, tokens)})"]
    if failed:
        parts.append(f"{failed:,} failed")
    return " | ".join(parts)


def contact_sheet(entries: list[tuple], columns: int | None = None, thumb: int = 256,
                  header: str | None = None) -> Image.Image:
    """Tiles of (thumbnail, label, kept_fraction, ...), most reduced (smallest kept fraction) first.

    Each thumbnail is centred in a `thumb` x `thumb` box; under it the label
    (cut to fit) and the kept percentage. Tiles fill rows left to right, under
    `header` (a line of totals, `sheet_header`) when given.
    """
    if not entries:
        raise ValueError("a contact sheet needs at least one image")
    ordered = sorted(entries, key=lambda e: e[2])
    columns = columns or min(len(ordered), 6)
    rows = math.ceil(len(ordered) / columns)
    tile_w, tile_h = contact_tile_size(thumb)
    top = 0 if header is None else header_height(columns * tile_w)
    sheet = Image.new("RGB", (columns * tile_w, top + rows * tile_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if header is not None:
        big = caption_font(caption_size(sheet.width))
        draw.text((PADDING, PADDING), _fit(big, header, sheet.width - 2 * PADDING), fill=TEXT_COLOUR, font=big)
    font = tile_font(thumb)
    line = line_height(font)
    for k, (image, label, fraction, *_) in enumerate(ordered):
        x0, y0 = (k % columns) * tile_w + PADDING, top + (k // columns) * tile_h + PADDING
        small = image if max(image.size) <= thumb else image.copy()
        small.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
        sheet.paste(small.convert("RGB"), (x0 + (thumb - small.width) // 2, y0 + (thumb - small.height) // 2))
        kept = f"kept {fraction * 100:.1f}%  ({saving_text(fraction, 1)})"
        if text_width(font, kept) > thumb:
            kept = f"kept {fraction * 100:.0f}%"
        draw.text((x0, y0 + thumb + PADDING), _fit(font, label, thumb), fill=TEXT_COLOUR, font=font)
        draw.text((x0, y0 + thumb + PADDING + line), _fit(font, kept, thumb), fill=TEXT_COLOUR, font=font)
    return sheet


def contact_sheet_for_folder(paths: Iterable[str], config, thumb: int = 256, columns: int | None = None,
                             max_images: int | None = None, workers: int = 1, sources=None, output: str | None = None,
                             left_out: list[str] | None = None, progress: bool = False):
    """Lay images under `paths` (folders, files, Parquet tables) out by reduction, most reduced first.

    Returns (sheet, failures, total): failures are the pipeline.FailedImage
    records of shown images that could not be read or coded (they get no
    tile); total is how many images the inputs hold. Pictures `show` drew are
    left out, their ids appended to `left_out`: `output` (the file about to be
    written) and any picture carrying our mark, since an output of ours is
    never an input of the sheet. With `max_images`, a seeded uniform
    sample of that many is coded and shown (`sources.sample`), so a huge
    folder costs `max_images` decodes and tiles, not one per image.
    With `progress`, a progress line on a terminal, as compress draws.
    """
    sources = sources or SourceOptions()
    left_out = [] if left_out is None else left_out
    listed = _without(plan(list(paths), sources), _same_file_as(output), left_out)
    pieces: Iterable[Piece]
    total: int | None
    if max_images is None:
        pieces, total = _without(listed, _drawn_by_us, left_out), None  # streamed: the tiles are what is held
    else:
        chosen, total = sample(list(paths), sources, max_images, pieces=listed)
        pieces = list(_without(chosen, _drawn_by_us, left_out))
        total -= len(chosen) - len(pieces)
    ts = config.preset.token_size

    def tile(coded):
        row = {"index_map": coded.index_map, "kept_index": coded.kept_index, "pixels": coded.pixels,
               "width": coded.width, "height": coded.height}
        image, ref = row_image(row, config.to_meta())
        return thumbnail(image, ref, ts, thumb), coded.id, coded.kept / coded.tokens, (coded.kept, coded.tokens)

    entries: list[tuple] = []  # (thumbnail, id, kept fraction, (kept, tokens))
    failures: list[FailedImage] = []
    run = RunOptions(workers=workers, progress=False)
    bar = Progress(progress, "drawing", total=len(pieces) if isinstance(pieces, list) else None, listing=list(paths))
    if bar.total is None:
        count_in_background(list(paths), sources, bar)  # counts what is left out too: a total a little high at worst
    try:
        for _, result in coded_stream(list(paths), config, sources, run, SourceCounts(), pieces=pieces, then=tile):
            if isinstance(result, list):  # a multi-image row's tiles
                entries.extend(result)
            else:
                (failures if isinstance(result, FailedImage) else entries).append(result)
            bar.advance()
    finally:
        bar.close()
    if not entries:
        raise InputError(f"no image could be shown from {', '.join(paths)}"
                         + (f" (left out, as pictures pixelprune show drew: {', '.join(left_out)})" if left_out else ""))
    total = total if total is not None else len(entries) + len(failures)
    header = sheet_header(entries, of=total, failed=len(failures))
    return contact_sheet(entries, columns, thumb, header), failures, total


# A text chunk (PNG) or comment (JPEG) in every picture `show` writes, so a later sheet of the folder leaves it out.
MARK_KEY, MARK_VALUE = "pixelprune", "show"


def _without(pieces, unwanted, left_out: list[str]):
    for piece in pieces:
        if unwanted(piece):
            left_out.append(piece.id)
        else:
            yield piece


def _same_file_as(output: str | None):
    """A test for image pieces that are the file at `output` (the same inode, whatever the spelling or link)."""
    try:
        target = os.stat(output) if output else None
    except OSError:  # not there yet: nothing listed can be it
        target = None
    suffix = Path(output).suffix.lower() if output else ""

    def same(piece) -> bool:
        if target is None or not isinstance(piece, ImageFile) or Path(piece.path).suffix.lower() != suffix:
            return False
        try:
            found = os.stat(piece.path)
        except OSError:
            return False
        return (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino)

    return same


def _drawn_by_us(piece) -> bool:
    """An image file that carries the mark `show` writes (read from its header; never raises)."""
    if not isinstance(piece, ImageFile):
        return False
    try:
        with Image.open(piece.path) as image:
            mark = image.info.get(MARK_KEY) or image.info.get("comment")
    except Exception:  # not an image, or unreadable: the run itself will say so
        return False
    return mark in (MARK_VALUE, f"{MARK_KEY} {MARK_VALUE}".encode())
