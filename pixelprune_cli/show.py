"""Pictures of what the coder keeps (`pixelprune show`), drawn with Pillow and numpy only.

An overlay is the resized image at 1:1 (the pixels the model sees), with
dropped tokens greyed, darkened and hatched and kept tokens left as they are,
a faint token grid, and a caption. Greying alone has a fixed point (a token
already of the grey colour would not change), so dropped tokens also get a
sparse diagonal hatch in a colour that contrasts with them: every dropped
token is marked, whatever its colour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# dropped pixel = DROPPED_KEEP * pixel + (1 - DROPPED_KEEP) * DROPPED_GREY: white -> 168, black -> 53
DROPPED_KEEP = 0.45
DROPPED_GREY = 96
HATCH_PERIOD = 8  # one hatch pixel in 8 along each row: (x + y) % 8 == 0
HATCH_DARK, HATCH_LIGHT = 24, 216
GRID_COLOUR = np.array([0, 150, 255], dtype=np.float32)
GRID_ALPHA = 0.3  # faint: 30% grid colour over the pixel
PANEL_GAP = 8
PADDING = 4
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (20, 20, 20)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=13)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _line_height(font) -> int:
    _, _, _, bottom = font.getbbox("Agjy|%")
    return bottom + 3


def _text_width(font, text: str) -> float:
    return font.getlength(text)


def wrap_caption(caption: str, width: int, font=None) -> list[str]:
    """Caption lines that fit `width` pixels: explicit newlines kept, then greedy word wrap."""
    font = font or _font()
    usable = max(1, width - 2 * PADDING)
    lines: list[str] = []
    for paragraph in caption.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = word if not line else f"{line} {word}"
            if line and _text_width(font, candidate) > usable:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def caption_bar_height(caption: str, width: int) -> int:
    """Height in pixels of the caption bar drawn under a picture `width` pixels wide."""
    font = _font()
    return len(wrap_caption(caption, width, font)) * _line_height(font) + 2 * PADDING


def _draw_caption(canvas: Image.Image, top: int, caption: str) -> None:
    font = _font()
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(wrap_caption(caption, canvas.width, font)):
        draw.text((PADDING, top + PADDING + k * _line_height(font)), line, fill=TEXT_COLOUR, font=font)


def token_mask(keep: np.ndarray, token_size: int) -> np.ndarray:
    """(th, tw) bool per token -> (th*ts, tw*ts) bool per pixel."""
    return np.repeat(np.repeat(keep, token_size, axis=0), token_size, axis=1)


def rebuild(resized: np.ndarray, ref: np.ndarray, token_size: int) -> np.ndarray:
    """The image restore gives for this coding: each position painted by its kept token."""
    from .coder import gather_tokens, layout, scatter_tokens

    h, w, _ = resized.shape
    kept_index, index_map = layout(np.asarray(ref, dtype=np.int32).reshape(-1))
    # Any patch x merge split of the token gives the same image; one patch per token is simplest.
    pixels = gather_tokens(resized, kept_index, token_size, 1)
    return scatter_tokens(pixels, index_map, h, w, token_size, 1)


def mark_dropped(resized: np.ndarray, ref: np.ndarray, token_size: int, grid: bool = True, hatch: bool = True) -> np.ndarray:
    """The overlay panel: dropped tokens greyed, darkened and hatched; kept tokens untouched.

    The grid is drawn on the first pixel row and column of each token (not the
    image's outer edge), so a token's pixels from row 1 and column 1 on are
    only ever changed by its own kept/dropped marking.
    """
    h, w, _ = resized.shape
    th, tw = h // token_size, w // token_size
    ref = np.asarray(ref).reshape(-1)
    keep = (ref == np.arange(th * tw)).reshape(th, tw)
    dropped = ~token_mask(keep, token_size)
    out = resized.astype(np.float32)
    out[dropped] = DROPPED_KEEP * out[dropped] + (1.0 - DROPPED_KEEP) * DROPPED_GREY
    if hatch:
        yy, xx = np.indices((h, w))
        lines = dropped & ((xx + yy) % HATCH_PERIOD == 0)
        light = out.mean(axis=2) >= 110
        out[lines & light] = HATCH_DARK
        out[lines & ~light] = HATCH_LIGHT
    if grid:  # one blend per pixel, crossings included
        lines = np.zeros((h, w), dtype=bool)
        lines[token_size::token_size, :] = True
        lines[:, token_size::token_size] = True
        out[lines] = (1 - GRID_ALPHA) * out[lines] + GRID_ALPHA * GRID_COLOUR
    return np.rint(out).clip(0, 255).astype(np.uint8)


def error_map(original: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """(H, W) uint8: per pixel, the largest absolute channel difference."""
    return np.abs(original.astype(np.int16) - restored.astype(np.int16)).max(axis=2).astype(np.uint8)


def token_errors(original: np.ndarray, restored: np.ndarray, token_size: int, metric: str) -> np.ndarray:
    """(th, tw) float: each token's error under `metric`, in [0,1] units, as the coder measures it against tau.

    With d the integer differences of a token's uint8 values and n their
    count: max = max|d|/255, mae = sum|d|/(255 n), rmse = sqrt(sum d^2/(255^2 n)).
    """
    h, w, c = original.shape
    th, tw = h // token_size, w // token_size
    d = original.astype(np.int32) - restored.astype(np.int32)
    d = d.reshape(th, token_size, tw, token_size, c).transpose(0, 2, 1, 3, 4).reshape(th, tw, -1)
    if metric == "max":
        return np.abs(d).max(axis=2) / 255.0
    if metric == "mae":
        return np.abs(d).sum(axis=2) / (255.0 * d.shape[2])
    return np.sqrt((d.astype(np.int64) ** 2).sum(axis=2) / (255.0 ** 2 * d.shape[2]))


def describe_error(worst: float, metric: str, tau: float) -> str:
    """The largest per-token error, said plainly: a black heat map must not look like a broken one."""
    if worst == 0:
        return "largest per-token error: 0 (restored = resized image, nothing lost)"
    return f"largest per-token error: {worst:.4g} ({metric}; tau {tau:.4g})"


def heat_colours(errors: np.ndarray, scale: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 heat map, black -> red -> yellow -> white; `scale` (default: the max) is white."""
    scale = max(1, int(errors.max()) if scale is None else int(scale))
    t = np.clip(errors.astype(np.float32) / scale, 0.0, 1.0)[..., None] * 3.0
    ramp = np.clip(t - np.array([0.0, 1.0, 2.0], dtype=np.float32), 0.0, 1.0)
    return np.rint(ramp * 255).astype(np.uint8)


def render_overlay(resized: np.ndarray, ref: np.ndarray, token_size: int, caption: str,
                   side_by_side: bool = False, restored: np.ndarray | None = None,
                   error_map: np.ndarray | None = None, grid: bool = True) -> Image.Image:
    """Overlay panel (+ restored image, + error heat map when given) above a caption bar.

    Panels are the resized image's size, separated by PANEL_GAP white pixels;
    the picture is as wide as the panels and as tall as the image plus the
    caption bar (`caption_bar_height`).
    """
    h, w, _ = resized.shape
    panels = [mark_dropped(resized, ref, token_size, grid=grid)]
    if side_by_side:
        panels.append(rebuild(resized, ref, token_size) if restored is None else restored)
        if error_map is not None:
            panels.append(heat_colours(error_map))
    width = len(panels) * w + (len(panels) - 1) * PANEL_GAP
    canvas = Image.new("RGB", (width, h + caption_bar_height(caption, width)), BACKGROUND)
    for k, panel in enumerate(panels):
        canvas.paste(Image.fromarray(np.ascontiguousarray(panel)), (k * (w + PANEL_GAP), 0))
    _draw_caption(canvas, h, caption)
    return canvas


def caption_for(preset: str, method: str, metric: str, tau: float, kept: int, tokens: int,
                title: str | None = None, note: str | None = None) -> str:
    """The caption text: preset, method, metric, tau, kept/total, reduction (ASCII, any font draws it)."""
    reduction = 100.0 * (1 - kept / tokens) if tokens else 0.0
    line = (f"{preset} | {method} | {metric} | tau={tau:.4g} | kept {kept}/{tokens} tokens | "
            f"-{reduction:.1f}%")
    parts = [title] if title else []
    parts.append(line)
    if note:
        parts.append(note)
    return "\n".join(parts)


LARGEST_ERROR = "pixelprune_largest_token_error"
_SIDE_NOTE = "left: kept tokens (dropped greyed + hatched) | middle: restored from kept tokens"


def overlay_for_image(pil_image: Image.Image, config, side_by_side: bool = False, budget: int | None = None,
                      max_tau: float = 0.1, title: str | None = None) -> Image.Image:
    """Resize and code a decoded image with `config` (a pipeline.CodingConfig), then draw it.

    With `budget`, tau is searched as `compress --budget` does (budget.code_with_budget).
    The error heat map (third panel) appears for tau > 0, where restore can differ.
    """
    from .backends import resize_for_model
    from .pipeline import token_refs

    preset = config.preset
    resized = resize_for_model(pil_image, preset, config.backend)
    ts = preset.token_size
    note = None
    ref, tau, found = token_refs(resized, ts, config.method, config.metric, config.tau, budget, max_tau)
    if found is not None:
        note = f"budget {budget} tokens" + (f": over budget at max tau {max_tau:g}" if found.over_budget else "")
    kept = int(np.count_nonzero(ref == np.arange(ref.shape[0])))
    restored = errors = None
    if side_by_side:
        restored = rebuild(resized, ref, ts)
        side = _SIDE_NOTE
        if tau > 0:
            errors = error_map(resized, restored)
            side += f" | right: |error|, max over channels, white = {max(1, int(errors.max()))}/255"
        worst = float(token_errors(resized, restored, ts, config.metric).max())
        side += "\n" + describe_error(worst, config.metric, tau)
        note = side if note is None else f"{note}\n{side}"
    caption = caption_for(preset.name, config.method, config.metric, tau, kept, ref.shape[0], title, note)
    picture = render_overlay(resized, ref, ts, caption, side_by_side, restored, errors)
    if side_by_side:
        picture.info[LARGEST_ERROR] = (worst, tau)  # for the command's own message (Pillow does not save it)
    return picture


def _row_array(value, dtype) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else np.asarray(value, dtype=dtype)


def row_image(row: dict, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """(image, ref) of an output row: the image its kept tokens rebuild, and each position's kept token."""
    from .coder import scatter_tokens
    from .model import row_pixels
    from .presets import resolve_preset

    preset = resolve_preset(meta)
    index_map = _row_array(row["index_map"], np.int32)
    kept_index = _row_array(row["kept_index"], np.int32)
    pixels = row_pixels(row["pixels"], preset.token_bytes)
    image = scatter_tokens(pixels, index_map, int(row["height"]), int(row["width"]), preset.patch_size, preset.merge_size)
    return image, kept_index[index_map]


def overlay_for_row(row: dict, meta: dict, side_by_side: bool = False) -> Image.Image:
    """Draw a row of a compressed output (`pyarrow` to_pylist form, or numpy arrays).

    The base image is the one the row's kept tokens rebuild (equal to the
    resized source at tau=0). The source itself is not in the output, so there
    is no error heat map here.
    """
    from .presets import resolve_preset

    preset = resolve_preset(meta)
    image, ref = row_image(row, meta)
    note = _SIDE_NOTE if side_by_side else None
    caption = caption_for(preset.name, meta.get("method", "?"), meta.get("metric", "?"), float(row["tau"]),
                          int(row["kept"]), int(row["tokens"]), str(row.get("id", "")) or None, note)
    return render_overlay(image, ref, preset.token_size, caption, side_by_side, restored=image)


def read_output_row(path: str, image_id: str | None = None, row: int | None = None) -> tuple[dict, dict]:
    """(row, meta) of one row of a compressed output, found by id or by position (from 0).

    The row holds numpy arrays (pixels as (kept, token_bytes) uint8), not Python lists.
    """
    from .errors import ConfigError, InputError
    from .presets import resolve_preset
    from .readers import STDIN, checked_row, incomplete_note, iter_output_batches, output_meta

    if (image_id is None) == (row is None):
        raise ConfigError("give exactly one of --id or --row")
    meta = output_meta(path)
    seen = 0
    batches = iter_output_batches(path)
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
    note = incomplete_note(path)
    raise InputError(f"{path}: no {where}" + (f" ({note})" if note else ""))


def read_table_image(path: str, row: int, image_column: str | None = None, backend: str = "pil") -> Image.Image:
    """Decode row `row` (from 0) of a Parquet image table, as compress reads it (reading only the row group that holds it)."""
    from dataclasses import replace

    from .backends import load
    from .errors import InputError
    from .preprocess import open_image
    from .records import FailedImage
    from .sources import ParquetRows, SourceOptions, plan, read_piece

    table = next((p for p in plan([path], SourceOptions(image_column=image_column)) if isinstance(p, ParquetRows)), None)
    total = 0 if table is None else table.stop
    if table is None or not 0 <= row < total:
        raise InputError(f"{path}: no row {row} (it has {total} rows, counted from 0)")
    item = next(read_piece(replace(table, start=row, stop=row + 1)))
    if isinstance(item, FailedImage):
        raise InputError(f"{path}#{row}: {item.reason}")
    return load(open_image(item.read()), backend)


def _thumbnail(image: np.ndarray, ref: np.ndarray, token_size: int, thumb: int) -> Image.Image:
    marked = Image.fromarray(mark_dropped(image, ref, token_size, grid=False, hatch=False))
    marked.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
    return marked


def _fit(font, text: str, width: int) -> str:
    """text, cut and ended with '...' if it is wider than `width` pixels (labels stay inside their tile)."""
    if _text_width(font, text) <= width:
        return text
    while text and _text_width(font, text + "...") > width:
        text = text[:-1]
    return text + "..." if _text_width(font, text + "...") <= width else ""


def contact_tile_size(thumb: int) -> tuple[int, int]:
    """(width, height) of one contact-sheet tile: the thumbnail box plus two label lines."""
    return thumb + 2 * PADDING, thumb + 2 * _line_height(_font()) + 3 * PADDING


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
    font = _font()
    line = _line_height(font)
    for k, (image, label, fraction) in enumerate(ordered):
        x0, y0 = (k % columns) * tile_w + PADDING, (k // columns) * tile_h + PADDING
        small = image if max(image.size) <= thumb else image.copy()
        small.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
        sheet.paste(small.convert("RGB"), (x0 + (thumb - small.width) // 2, y0 + (thumb - small.height) // 2))
        kept = f"kept {fraction * 100:.1f}%  (-{(1 - fraction) * 100:.1f}%)"
        if _text_width(font, kept) > thumb:
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
    from .engine import RunOptions, coded_stream
    from .records import FailedImage
    from .sources import Piece, SourceCounts, SourceOptions, plan, sample

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
        return _thumbnail(image, ref, ts, thumb), coded.id, coded.kept / coded.tokens

    entries: list[tuple] = []  # (thumbnail, id, kept fraction)
    failures: list[FailedImage] = []
    run = RunOptions(workers=workers, progress=False)
    for _, result in coded_stream(list(paths), config, sources, run, SourceCounts(), pieces=pieces, then=tile):
        (failures if isinstance(result, FailedImage) else entries).append(result)
    if not entries:
        from .errors import InputError

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
    import os

    from .sources import ImageFile

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
    from .sources import ImageFile

    if not isinstance(piece, ImageFile):
        return False
    try:
        with Image.open(piece.path) as image:
            mark = image.info.get(MARK_KEY) or image.info.get("comment")
    except Exception:  # not an image, or unreadable: the run itself will say so
        return False
    return mark in (MARK_VALUE, f"{MARK_KEY} {MARK_VALUE}".encode())


def picture_format(path: str) -> str:
    """The Pillow format `show -o path` writes, from the suffix; ConfigError for one that is not a picture format."""
    from .errors import ConfigError

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
    from PIL import PngImagePlugin

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
    import random

    from .errors import InputError
    from .presets import resolve_preset
    from .readers import checked_row, iter_output_batches, output_meta

    meta = output_meta(path)
    preset = resolve_preset(meta)
    token_size = preset.token_size
    rng = random.Random(0)
    tiles: list = []
    only = None  # the first row, in full, while it is the only one
    seen = 0
    for batch in iter_output_batches(path):
        for i in range(batch.num_rows):
            slot = seen if sample is None or seen < sample else rng.randrange(seen + 1)
            if sample is None or slot < sample:
                row = checked_row(batch, i, preset, path)
                only = row if seen == 0 else None
                image, ref = row_image(row, meta)
                tile = (_thumbnail(image, ref, token_size, thumb), row["id"], row["kept"] / max(1, row["tokens"]))
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
    return Rendering(contact_sheet(tiles, thumb=thumb), [], note)


class Rendering(NamedTuple):
    """What `show` drew: the picture, the images a contact sheet had to leave out, and a note for the user."""

    picture: Image.Image
    failures: list
    note: str | None = None


SHEET_SAMPLE = 100  # contact-sheet tiles by default: a look over a dataset, not a dump of it


def render_path(path: str, config, image_id: str | None = None, row: int | None = None, side_by_side: bool = False,
                budget: int | None = None, max_tau: float = 0.1, image_column: str | None = None,
                thumb: int = 256, workers: int = 1, sample: int | None = SHEET_SAMPLE, hidden: bool = False,
                output: str | None = None) -> Rendering:
    """What `pixelprune show PATH` draws, chosen by what PATH is.

    folder, or Parquet image table without `row` -> contact sheet (of a
    seeded random `sample` of its images when it holds more; None: all);
    compressed output (schema metadata) -> the row given by `image_id` or
    `row`, without them its only row or a contact sheet of its rows; Parquet
    image table -> row `row`; else an image file. `failures` (pipeline.FailedImage) lists the images a contact
    sheet had to leave out; a single image that fails raises (ImageFailure,
    InputError).
    """
    from .backends import load
    from .errors import ConfigError
    from .formats import PARQUET, format_of
    from .preprocess import open_image
    from .readers import compressed_meta
    from .sources import SourceOptions, read_file

    p = Path(path)
    is_output = compressed_meta(path) is not None  # read once: it opens the file's schema
    is_table = format_of(p) is PARQUET
    if not is_output and (_is_folder(path) or (is_table and row is None and image_id is None)):
        if image_id is not None or row is not None:
            raise ConfigError("--id / --row pick one image; a folder gives a contact sheet")
        left_out: list[str] = []
        sheet, failures, total = contact_sheet_for_folder(
            [path], config, thumb=thumb, max_images=sample, workers=workers,
            sources=SourceOptions(image_column=image_column, hidden=hidden), output=output, left_out=left_out)
        shown = total if sample is None else min(sample, total)
        notes = [f"a random sample of {shown:,} of {total:,} images (--sample to change)"] if shown < total else []
        if left_out:
            notes.append(f"left out {len(left_out):,} picture{'s' if len(left_out) > 1 else ''} pixelprune show drew "
                         f"({', '.join(left_out[:3])}{', ...' if len(left_out) > 3 else ''})")
        return Rendering(sheet, failures, "; ".join(notes) or None)
    if is_output:
        if budget is not None:
            raise ConfigError("--budget codes images; a compressed output is already coded")
        if image_id is None and row is None:
            return render_output(path, side_by_side, thumb, sample)
        found, meta = read_output_row(path, image_id, row)
        return Rendering(overlay_for_row(found, meta, side_by_side), [])
    if image_id is not None:
        raise ConfigError("--id picks a row of a compressed output; use --row N for a Parquet image table")
    if is_table:
        assert row is not None  # a table without --row is a contact sheet, above
        image = read_table_image(path, row, image_column, config.backend)
        title = f"{p.name}#{row}"
    else:
        if row is not None:
            raise ConfigError("--row picks a row of a Parquet file or compressed output")
        image = load(open_image(read_file(path, config.max_image_bytes), config.max_image_pixels), config.backend)
        title = p.name
    picture = overlay_for_image(image, config, side_by_side, budget, max_tau, title)
    largest = picture.info.get(LARGEST_ERROR)
    return Rendering(picture, [], None if largest is None else describe_error(largest[0], config.metric, largest[1]))


def _is_folder(path: str) -> bool:
    """A local folder, or a folder (prefix) on an object store."""
    from .storage import is_url

    if is_url(path):
        from .objectstore import is_folder

        return is_folder(path)
    return Path(path).is_dir()
