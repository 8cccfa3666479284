"""Turn an output row back into what the model eats (pixel_values, grid, positions)."""

from __future__ import annotations

import numpy as np

from pixelprune_cli.coding.backends import default_processor_backend, normalisation_table, rows_backend
from pixelprune_cli.coding.presets import Preset, resolve_preset
from pixelprune_cli.errors import BadRow, one_line


def row_pixels(value, token_bytes: int) -> np.ndarray:
    """A row's `pixels` as (kept, token_bytes) uint8, whether numpy, a list of bytes or nested lists.

    A list of bytes (or a numpy array of them) is how readers give a Parquet
    output's `pixels`, one value per kept token.
    """
    if isinstance(value, np.ndarray) and value.dtype != object:
        flat = value.astype(np.uint8, copy=False)
    elif len(value) and isinstance(value[0], (bytes, bytearray, memoryview)):
        flat = np.frombuffer(b"".join(bytes(v) for v in value), dtype=np.uint8)
    else:
        flat = np.asarray(value, dtype=np.uint8)
    return flat.reshape(-1, token_bytes)


def row_problem_for_model(row: dict, preset: Preset) -> str | None:
    """Why `row` cannot be read as an image coded with `preset` (None when it can).

    The grid must be the row's size in the preset's patches, every `pixels`
    value one token of the preset's size, and the index columns pass the
    checks `stats` and `restore` make (readers.row_problem). Rows coded for
    another preset fail here instead of being re-cut into tokens of the
    wrong size.
    """
    from pixelprune_cli.outputs.readers import row_problem

    missing = [key for key in ("grid_thw", "kept_index", "pixels") if row.get(key) is None]
    if missing:
        return f"no {', '.join(map(repr, missing))} in the row"
    p, ts = preset.patch_size, preset.token_size
    grid = [int(v) for v in np.asarray(row["grid_thw"]).reshape(-1)]
    if len(grid) != 3 or grid[0] != 1 or min(grid) < 1:
        return f"grid_thw {grid} is not [1, rows, columns] of one image"
    width, height = _given(row, "width", grid[2] * p), _given(row, "height", grid[1] * p)
    if (grid[1] * p, grid[2] * p) != (height, width):
        return (f"grid_thw {grid} is not the {width}x{height} image in patches of {p} px (preset {preset.name!r}); "
                "was it coded for another preset? Pass its output's metadata")
    kept_rows, wrong = _pixel_rows(row["pixels"], preset.token_bytes)
    if wrong is not None:
        return (f"pixels hold {wrong}, not whole {ts}x{ts} px tokens of {preset.token_bytes} bytes (preset "
                f"{preset.name!r}); was the row coded for another preset? Pass its output's metadata")
    kept_index = np.asarray(row["kept_index"], dtype=np.int64).reshape(-1)
    index_map = None if row.get("index_map") is None else np.asarray(row["index_map"], dtype=np.int64).reshape(-1)
    tokens, kept = _given(row, "tokens", (width // ts) * (height // ts)), _given(row, "kept", len(kept_index))
    return row_problem(width, height, tokens, kept, kept_index, index_map, kept_rows, preset)


def _given(row: dict, key: str, implied: int) -> int:
    """row[key] as an int, or what the other columns imply when the row does not hold it."""
    return implied if row.get(key) is None else int(row[key])


def _pixel_rows(value, token_bytes: int) -> tuple[int, str | None]:
    """(kept tokens in `pixels`, None), or (0, what is wrong) when a value is not one token of token_bytes.

    Takes every form row_pixels takes: (kept, token_bytes) or flat uint8
    arrays, lists of bytes (Parquet), lists of lists (Arrow to_pylist).
    """
    if isinstance(value, np.ndarray) and value.dtype != object:
        width = value.shape[-1] if value.ndim == 2 else token_bytes
        if value.ndim > 2 or width != token_bytes or value.size % token_bytes:
            return 0, f"an array of shape {value.shape}"
        return value.size // token_bytes, None
    wrong = next((len(v) for v in value if len(v) != token_bytes), None)
    return (len(value), None) if wrong is None else (0, f"a value of {wrong} bytes")


def checked_model_row(row: dict, preset: Preset, name: str) -> None:
    """BadRow (a ValueError), one line naming the row as `name`, unless row_problem_for_model finds nothing."""
    try:
        problem = row_problem_for_model(row, preset)
    except (TypeError, ValueError, OverflowError) as exc:  # values of the wrong kind: strings, nested lists
        problem = f"not a pixelprune output row ({one_line(exc)})"
    if problem:
        raise BadRow(f"{name}: {problem}")


_PER_IMAGE = ("source_width", "source_height", "width", "height", "grid_thw", "tokens", "kept", "tau",
              "kept_index", "index_map", "pixels")  # schema.PER_IMAGE_COLUMNS, without importing pyarrow


def is_multi_image_row(row: dict) -> bool:
    """Whether a row (as to_pylist or HF `datasets` gives it) is a multi-image row: its `kept_index` a list of lists."""
    kept_index = row.get("kept_index")
    if kept_index is None:
        return False
    if isinstance(kept_index, np.ndarray) and kept_index.dtype != object:
        return kept_index.ndim > 1
    return len(kept_index) > 0 and isinstance(kept_index[0], (list, tuple, np.ndarray))


def image_rows(row: dict) -> list[dict]:
    """A row's images as single-image rows, in order: a multi-image row's `ROW~K`, or [row] itself.

    Carried columns stay with the row, not its images.
    """
    if not is_multi_image_row(row):
        return [row]
    count = len(row["kept_index"])
    wrong = [key for key in _PER_IMAGE if row.get(key) is not None and len(row[key]) != count]
    if wrong:
        raise ValueError(f"row {row.get('id', '')!r}: {', '.join(wrong)} hold another number of images than "
                         f"kept_index ({count})")
    from pixelprune_cli.outputs.multi_image import image_id  # the one rule for ROW~K

    return [{"id": image_id(row.get("id", ""), k), **{key: row[key][k] for key in _PER_IMAGE if row.get(key) is not None}}
            for k in range(count)]


def model_inputs(row: dict, preset: str | dict | Preset = "qwen3-vl", processor_backend: str | None = None) -> dict:
    """One output row as model inputs: the processor's rows of the kept tokens only.

    A multi-image row gives its images' inputs concatenated in order, as the
    processor gives a list of images: pixel_values and positions one image
    after another, image_grid_thw one row per image.

    row: a dict as `pyarrow.Table.to_pylist()` or HF `datasets` yields it.
    preset: a preset name, or the output file's `pixelprune` metadata dict.
    processor_backend: 'pil' or 'torchvision', whose float steps to take;
    by default those of the processor the metadata's backend matches (pil for
    a preset name; torchvision for qwen-vl-utils rows).
    Returns pixel_values float32 (kept*merge^2, 3*T*patch^2) with the temporal
    copy restored, image_grid_thw int64 (1, 3), and positions int32
    (kept*merge^2, 3): each row's (t, h, w) on the patch grid, for MRoPE ids.
    Raises BadRow (a ValueError, one line) for a row that does not describe an image
    coded with that preset (row_problem_for_model).
    """
    normalise_as = processor_backend or default_processor_backend(rows_backend(preset))
    preset = resolve_preset(preset)
    images = image_rows(row)
    for image in images:  # every image checked before any is used
        checked_model_row(image, preset, f"row {image.get('id', '')!r}")
    inputs = [checked_model_inputs(image, preset, normalise_as) for image in images]
    if len(inputs) == 1:
        return inputs[0]
    return {key: np.concatenate([one[key] for one in inputs]) for key in inputs[0]}


def normalised_pixels(kept: np.ndarray, preset: Preset, normalise_as: str) -> np.ndarray:
    """(kept, token_bytes) uint8 tokens as the processor's pixel_values rows: float32 (kept*merge^2, 3*T*patch^2).

    Each channel goes through its 256-entry table of the processor's values,
    and the temporal copy is restored; no per-pixel arithmetic.
    """
    m, p, t = preset.merge_size, preset.patch_size, preset.temporal_patch_size
    kept = kept.reshape(-1, m * m, 3, p, p)
    table = normalisation_table(preset, normalise_as)  # (3, 256) float32, the processor's values
    values = np.empty(kept.shape, dtype=np.float32)
    for c in range(3):
        values[:, :, c] = table[c][kept[:, :, c]]
    rows = values.reshape(-1, 3, 1, p, p)
    return np.ascontiguousarray(np.broadcast_to(rows, (rows.shape[0], 3, t, p, p))).reshape(rows.shape[0], -1)


def checked_model_inputs(row: dict, preset: Preset, normalise_as: str) -> dict:
    """model_inputs of a row already checked with checked_model_row, normalised as that processor backend does."""
    m = preset.merge_size
    pixel_values = normalised_pixels(row_pixels(row["pixels"], preset.token_bytes), preset, normalise_as)
    grid = np.asarray(row["grid_thw"], dtype=np.int64).reshape(1, 3)
    grid_w_merged = int(grid[0, 2]) // m
    kept_index = np.asarray(row["kept_index"], dtype=np.int64)
    token_h, token_w = kept_index // grid_w_merged, kept_index % grid_w_merged
    sub = np.arange(m * m)
    h = token_h[:, None] * m + sub[None, :] // m
    w = token_w[:, None] * m + sub[None, :] % m
    positions = np.stack([np.zeros_like(h), h, w], axis=-1).reshape(-1, 3).astype(np.int32)
    return {"pixel_values": pixel_values, "image_grid_thw": grid, "positions": positions}
