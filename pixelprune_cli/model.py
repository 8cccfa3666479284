"""Turn an output row back into what the model eats (pixel_values, grid, positions)."""

from __future__ import annotations

import numpy as np

from .backends import default_processor_backend, normalisation_table, rows_backend
from .presets import Preset, resolve_preset


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


def model_inputs(row: dict, preset: str | dict | Preset = "qwen3-vl", processor_backend: str | None = None) -> dict:
    """One output row as model inputs: the processor's rows of the kept tokens only.

    row: a dict as `pyarrow.Table.to_pylist()` or HF `datasets` yields it.
    preset: a preset name, or the output file's `pixelprune` metadata dict.
    processor_backend: 'pil' or 'torchvision', whose float steps to take;
    by default those of the processor the metadata's backend matches (pil for
    a preset name; torchvision for qwen-vl-utils rows).
    Returns pixel_values float32 (kept*merge^2, 3*T*patch^2) with the temporal
    copy restored, image_grid_thw int64 (1, 3), and positions int32
    (kept*merge^2, 3): each row's (t, h, w) on the patch grid, for MRoPE ids.
    """
    normalise_as = processor_backend or default_processor_backend(rows_backend(preset))
    preset = resolve_preset(preset)
    m, p, t = preset.merge_size, preset.patch_size, preset.temporal_patch_size
    kept = row_pixels(row["pixels"], preset.token_bytes).reshape(-1, m * m, 3, p, p)
    table = normalisation_table(preset, normalise_as)  # (3, 256) float32, the processor's values
    values = np.empty(kept.shape, dtype=np.float32)
    for c in range(3):
        values[:, :, c] = table[c][kept[:, :, c]]
    rows = values.reshape(-1, 3, 1, p, p)
    pixel_values = np.ascontiguousarray(np.broadcast_to(rows, (rows.shape[0], 3, t, p, p))).reshape(rows.shape[0], -1)

    grid = np.asarray(row["grid_thw"], dtype=np.int64).reshape(1, 3)
    grid_w_merged = int(grid[0, 2]) // m
    kept_index = np.asarray(row["kept_index"], dtype=np.int64)
    token_h, token_w = kept_index // grid_w_merged, kept_index % grid_w_merged
    sub = np.arange(m * m)
    h = token_h[:, None] * m + sub[None, :] // m
    w = token_w[:, None] * m + sub[None, :] % m
    positions = np.stack([np.zeros_like(h), h, w], axis=-1).reshape(-1, 3).astype(np.int32)
    return {"pixel_values": pixel_values, "image_grid_thw": grid, "positions": positions}
