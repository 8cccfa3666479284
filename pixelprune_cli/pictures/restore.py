"""Rebuild each row's resized image from its kept tokens (`pixelprune restore`)."""

from __future__ import annotations

import hashlib
import os
from functools import partial
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image

from pixelprune_cli.coding.presets import resolve_preset
from pixelprune_cli.coding.tokens import scatter_tokens
from pixelprune_cli.errors import ConfigError, InputError, option
from pixelprune_cli.outputs.multi_image import flatten_images
from pixelprune_cli.outputs.overlap import refuse_overlap
from pixelprune_cli.outputs.readers import checked_row, incomplete_note, iter_output_batches, output_meta, output_rows
from pixelprune_cli.outputs.schema import is_multi_image
from pixelprune_cli.outputs.writer import not_a_folder, write_atomically
from pixelprune_cli.report.report import Progress
from pixelprune_cli.report.summary import ImageEntry, Summary, WrittenBytes
from pixelprune_cli.storage.atomic import output_errors, remove_stale_partials

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


def image_file_name(row_id: str, k: int) -> str:
    """The PNG name of image k (from 0) of a multi-image row: the row's name with `~K` before `.png`.

    `~` never appears in an encoded id (it becomes %7E), and a shortened name
    ends in its hash, so the part after the last `~` is always the index.
    """
    return file_name_for(row_id)[:-len(".png")] + f"~{k}.png"


def reconstruct(row_index_map, pixels: np.ndarray, width: int, height: int, preset) -> np.ndarray:
    """The (height, width, 3) uint8 image a row stands for."""
    return scatter_tokens(pixels, np.asarray(row_index_map, dtype=np.int32), height, width,
                          preset.patch_size, preset.merge_size)


def restore_file(path: str, out_dir: str, overwrite: bool = False, progress: bool = True) -> Summary:
    refuse_overlap([path], out_dir)  # PNG names end in .png, which no output to read from does
    meta = output_meta(path)
    preset = resolve_preset(meta)
    target = Path(out_dir)
    not_a_folder(out_dir, "the folder restore writes one PNG per row into")
    with output_errors(target):
        target.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(target, lambda name: name.endswith(".png"))  # what a killed restore left
    summary = Summary(title="pixelprune restore", config=meta, output=str(target))
    note = incomplete_note(path)
    if note:
        summary.incomplete = note
    seen: set[str] = set()
    multi = is_multi_image(meta)
    bar = Progress(progress, "restoring", total=None if multi else output_rows(path))  # rows, not images, if multi
    written = 0
    try:
        for batch in iter_output_batches(path):
            names = None
            if multi:  # one PNG per image, named by its row (image_file_name)
                ids = batch.column("id").to_pylist()
                batch, offsets = flatten_images(batch)
                names = [image_file_name(ids[r], k) for r in range(len(ids)) for k in range(offsets[r + 1] - offsets[r])]
                summary.rows = (summary.rows or 0) + len(ids)
            written += _restore_batch(batch, path, target, overwrite, seen, preset, summary, bar, names)
    finally:
        bar.close()
    summary.bytes_written = WrittenBytes(written)
    return summary.finish()


def _restore_batch(batch, path: str, target: Path, overwrite: bool, seen: set, preset, summary: Summary, bar,
                   names: list[str] | None = None) -> int:
    """Write one record batch's PNGs (named `names`, else by id), each entered in `summary`; returns their bytes."""
    written = 0
    ids = batch.column("id").to_pylist()
    sources = zip(batch.column("source_width").to_pylist(), batch.column("source_height").to_pylist())
    for i, (image_id, source) in enumerate(zip(ids, sources)):
        file = target / (file_name_for(image_id) if names is None else names[i])
        if image_id in seen:
            raise InputError(f"{path}: duplicate id {image_id!r}; restore needs one row per id")
        seen.add(image_id)
        if os.path.lexists(file) and not overwrite:
            raise ConfigError(f"{file} already exists; pass {option('overwrite')} to replace it")
        row = checked_row(batch, i, preset, path)
        size = (row["width"], row["height"])
        image = Image.fromarray(reconstruct(row["index_map"], row["pixels"], *size, preset))
        # whole or not at all, and replacing (never writing through) a symlink at the name
        write_atomically(file, partial(image.save, format="PNG", compress_level=1))
        written += file.stat().st_size
        summary.add_image(ImageEntry(image_id, source, size, row["tokens"], row["kept"], None))
        bar.advance()
    return written
