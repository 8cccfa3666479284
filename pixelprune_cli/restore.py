"""Rebuild each row's resized image from its kept tokens (`pixelprune restore`)."""

from __future__ import annotations

import hashlib
import os
from functools import partial
from pathlib import Path
from urllib.parse import quote

import numpy as np

from .coder import scatter_tokens
from .errors import ConfigError, InputError, option
from .presets import resolve_preset
from .readers import compressed_meta, incomplete_note, iter_output_batches, kept_pixels
from .report import ImageEntry, Summary
from .writer import output_errors, write_atomically

_MAX_NAME = 200


def file_name_for(image_id: str) -> str:
    """The PNG name of a restored image: the id percent-encoded, plus '.png'.

    Percent-encoding (everything but letters, digits and '-_.') is one-to-one,
    so two ids never share a file; '/' becomes %2F, so all files sit flat in
    the output folder. Names over 200 characters keep their first 180 and add
    a SHA-1 of the full id.
    """
    name = quote(image_id, safe="-_.").replace("~", "%7E")  # '~' only marks shortened names
    if len(name) > _MAX_NAME:
        name = name[:180] + "~" + hashlib.sha1(image_id.encode()).hexdigest()[:16]
    return name + ".png"


def row_problem(width: int, height: int, tokens: int, kept: int, kept_index: np.ndarray, index_map: np.ndarray,
                kept_rows: int, preset) -> str | None:
    """Why a row's index columns cannot describe a coded image (None when they can).

    Checked before any pixel is placed, so a hand-made or corrupted output
    gives one line saying what is wrong rather than an error deep in numpy.
    """
    ts = preset.token_size
    if width < ts or height < ts or width % ts or height % ts:
        return f"size {width}x{height} is not a positive multiple of the token size {ts}"
    if tokens != (width // ts) * (height // ts) or len(index_map) != tokens:
        return f"{tokens} tokens and {len(index_map)} index_map entries for a {width}x{height} image of {ts} px tokens"
    if not (len(kept_index) == kept == kept_rows):
        return f"kept is {kept}, with {len(kept_index)} kept_index entries and {kept_rows} pixels rows"
    if kept and (kept_index[0] < 0 or kept_index[-1] >= tokens or np.any(np.diff(kept_index) <= 0)):
        return f"kept_index is not ascending within [0, {tokens})"
    if tokens and (index_map.min() < 0 or index_map.max() >= kept):
        return f"index_map points outside the {kept} kept tokens"
    if np.any(index_map[kept_index] != np.arange(kept)):
        return "index_map does not map each kept token to itself"
    return None


def reconstruct(row_index_map, pixels: np.ndarray, width: int, height: int, preset) -> np.ndarray:
    """The (height, width, 3) uint8 image a row stands for."""
    return scatter_tokens(pixels, np.asarray(row_index_map, dtype=np.int32), height, width,
                          preset.patch_size, preset.merge_size)


def restore_file(path: str, out_dir: str, overwrite: bool = False, progress: bool = True) -> Summary:
    from .readers import output_rows
    from .report import Progress

    meta = compressed_meta(path)
    if meta is None:
        raise InputError(f"{path}: not a pixelprune output (no 'pixelprune' schema metadata)")
    preset = resolve_preset(meta)
    target = Path(out_dir)
    with output_errors(target):
        target.mkdir(parents=True, exist_ok=True)
    summary = Summary(title="pixelprune restore", config=meta, output=str(target))
    note = incomplete_note(path)
    if note:
        summary.extra["incomplete"] = note
    seen: set[str] = set()
    bar = Progress(progress, "restoring", total=output_rows(path))
    written = 0
    try:
        for batch in iter_output_batches(path):
            written += _restore_batch(batch, path, target, overwrite, seen, preset, summary, bar)
    finally:
        bar.close()
    summary.extra["bytes_written"] = written
    return summary.finish()


def _restore_batch(batch, path: str, target: Path, overwrite: bool, seen: set, preset, summary: Summary, bar) -> int:
    """Write one record batch's PNGs, each entered in `summary`; returns their bytes."""
    from PIL import Image

    written = 0
    ids = batch.column("id").to_pylist()
    sources = zip(batch.column("source_width").to_pylist(), batch.column("source_height").to_pylist())
    widths = batch.column("width").to_pylist()
    heights = batch.column("height").to_pylist()
    tokens = batch.column("tokens").to_pylist()
    kept = batch.column("kept").to_pylist()
    maps = batch.column("index_map")
    kept_indexes = batch.column("kept_index")
    for i, (image_id, source) in enumerate(zip(ids, sources)):
        file = target / file_name_for(image_id)
        if image_id in seen:
            raise InputError(f"{path}: duplicate id {image_id!r}; restore needs one row per id")
        seen.add(image_id)
        if os.path.lexists(file) and not overwrite:
            raise ConfigError(f"{file} already exists; pass {option('overwrite')} to replace it")
        index_map, pixels = maps[i].values.to_numpy(), kept_pixels(batch, i)
        problem = row_problem(widths[i], heights[i], tokens[i], kept[i], kept_indexes[i].values.to_numpy(),
                              index_map, len(pixels), preset)
        if problem:
            raise InputError(f"{path}: row {image_id!r}: {problem}")
        image = Image.fromarray(reconstruct(index_map, pixels, widths[i], heights[i], preset))
        # whole or not at all, and replacing (never writing through) a symlink at the name
        write_atomically(file, partial(image.save, format="PNG", compress_level=1))
        written += file.stat().st_size
        summary.add_image(ImageEntry(image_id, source, (widths[i], heights[i]), tokens[i], kept[i], None))
        bar.advance()
    return written
