"""Turn an output row back into what the model eats (pixel_values, grid, positions)."""

from __future__ import annotations

import numpy as np

from .preprocess import normalisation_table
from .presets import Preset, resolve_preset


def _kept_pixels(row: dict, preset: Preset) -> np.ndarray:
    """(kept, merge^2, 3, patch, patch) uint8 from a row's `pixels` (lists, bytes or arrays)."""
    pixels = row["pixels"]
    shape = (preset.merge_size**2, 3, preset.patch_size, preset.patch_size)
    if isinstance(pixels, np.ndarray):
        flat = pixels.astype(np.uint8, copy=False)
    elif len(pixels) and isinstance(pixels[0], (bytes, bytearray)):
        flat = np.frombuffer(b"".join(pixels), dtype=np.uint8)
    else:
        flat = np.asarray(pixels, dtype=np.uint8)
    return flat.reshape((-1, *shape))


def model_inputs(row: dict, preset: "str | dict | Preset" = "qwen3-vl") -> dict:
    """One output row as model inputs: the processor's rows of the kept tokens only.

    row: a dict as `pyarrow.Table.to_pylist()` or HF `datasets` yields it.
    preset: a preset name, or the output file's `pixelprune` metadata dict.
    Returns pixel_values float32 (kept*merge^2, 3*T*patch^2) with the temporal
    copy restored, image_grid_thw int64 (1, 3), and positions int32
    (kept*merge^2, 3): each row's (t, h, w) on the patch grid, for MRoPE ids.
    """
    preset = resolve_preset(preset)
    m, p, t = preset.merge_size, preset.patch_size, preset.temporal_patch_size
    kept = _kept_pixels(row, preset)  # (K, m*m, 3, p, p)
    table = normalisation_table(preset)  # (3, 256) float32, the processor's values
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
