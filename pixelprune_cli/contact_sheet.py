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

from .engine import coded_stream
from .errors import InputError
from .job import RunOptions
from .pieces import ImageFile, Piece, SourceCounts, SourceOptions
from .records import FailedImage
from .sources import plan, sample
from .token_overlay import (
    BACKGROUND,
    PADDING,
    TEXT_COLOUR,
    caption_font,
    line_height,
    mark_dropped,
    row_image,
    text_width,
)


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


def contact_tile_size(thumb: int) -> tuple[int, int]:
    """(width, height) of one contact-sheet tile: the thumbnail box plus two label lines."""
    return thumb + 2 * PADDING, thumb + 2 * line_height(caption_font()) + 3 * PADDING


def contact_sheet(entries: list[tuple[Image.Image, str, float]], columns: int | None = None, thumb: int = 256) -> Image.Image:
    """Tiles of (thumbnail, label, kept_fraction), most reduced (smallest kept fraction) first.

    Each thumbnail is centred in a `thumb` x `thumb` box; under it the label
    (cut to fit) and the kept percentage. Tiles fill rows left to right.
    """
    if not entries:
        raise ValueError("a contact sheet needs at least one image")
    ordered = sorted(entries, key=lambda e: e[2])
    columns = columns or min(len(ordered), 6)
    rows = math.ceil(len(ordered) / columns)
    tile_w, tile_h = contact_tile_size(thumb)
    sheet = Image.new("RGB", (columns * tile_w, rows * tile_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = caption_font()
    line = line_height(font)
    for k, (image, label, fraction) in enumerate(ordered):
        x0, y0 = (k % columns) * tile_w + PADDING, (k // columns) * tile_h + PADDING
        small = image if max(image.size) <= thumb else image.copy()
        small.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
        sheet.paste(small.convert("RGB"), (x0 + (thumb - small.width) // 2, y0 + (thumb - small.height) // 2))
        kept = f"kept {fraction * 100:.1f}%  (-{(1 - fraction) * 100:.1f}%)"
        if text_width(font, kept) > thumb:
            kept = f"kept {fraction * 100:.0f}%"
        draw.text((x0, y0 + thumb + PADDING), _fit(font, label, thumb), fill=TEXT_COLOUR, font=font)
        draw.text((x0, y0 + thumb + PADDING + line), _fit(font, kept, thumb), fill=TEXT_COLOUR, font=font)
    return sheet


def contact_sheet_for_folder(paths: Iterable[str], config, thumb: int = 256, columns: int | None = None,
                             max_images: int | None = None, workers: int = 1, sources=None, output: str | None = None,
                             left_out: list[str] | None = None):
    """Lay images under `paths` (folders, files, Parquet tables) out by reduction, most reduced first.

    Returns (sheet, failures, total): failures are the pipeline.FailedImage
    records of shown images that could not be read or coded (they get no
    tile); total is how many images the inputs hold. Pictures `show` drew are
    left out, their ids appended to `left_out`: `output` (the file about to be
    written) and any picture carrying our mark, since an output of ours is
    never an input of the sheet. With `max_images`, a seeded uniform
    sample of that many is coded and shown (`sources.sample`), so a huge
    folder costs `max_images` decodes and tiles, not one per image.
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
        return thumbnail(image, ref, ts, thumb), coded.id, coded.kept / coded.tokens

    entries: list[tuple] = []  # (thumbnail, id, kept fraction)
    failures: list[FailedImage] = []
    run = RunOptions(workers=workers, progress=False)
    for _, result in coded_stream(list(paths), config, sources, run, SourceCounts(), pieces=pieces, then=tile):
        (failures if isinstance(result, FailedImage) else entries).append(result)
    if not entries:
        raise InputError(f"no image could be shown from {', '.join(paths)}"
                         + (f" (left out, as pictures pixelprune show drew: {', '.join(left_out)})" if left_out else ""))
    total = total if total is not None else len(entries) + len(failures)
    return contact_sheet(entries, columns, thumb), failures, total


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
