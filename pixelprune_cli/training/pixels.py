"""Kept tokens (uint8) to the processor's float32 `pixel_values` rows in one pass: a Numba kernel.

The collator's hot path. `model.normalised_pixels` does the same in numpy
(and is its oracle in the tests) but writes the output twice, through
per-channel fancy indexing and the broadcast of the temporal copy; here each
float is written once, straight from the 256-entry table of its channel.
"""

from __future__ import annotations

import numba
import numpy as np

from pixelprune_cli.coding.backends import normalisation_table
from pixelprune_cli.coding.presets import Preset


@numba.njit(nogil=True, cache=True)
def _normalise(tokens, table, temporal, out):
    """tokens (rows, 3, patch*patch) uint8; table (3, 256) float32; out (rows, 3, temporal, patch*patch) float32."""
    rows, channels, area = tokens.shape
    for r in range(rows):
        for c in range(channels):
            for j in range(area):
                out[r, c, 0, j] = table[c, tokens[r, c, j]]
            for t in range(1, temporal):
                for j in range(area):
                    out[r, c, t, j] = out[r, c, 0, j]


def pixel_values(kept: np.ndarray, preset: Preset, normalise_as: str) -> np.ndarray:
    """(kept, token_bytes) uint8 -> float32 (kept*merge^2, 3*T*patch^2), as `model.normalised_pixels` gives."""
    p, t = preset.patch_size, preset.temporal_patch_size
    tokens = np.ascontiguousarray(kept, dtype=np.uint8).reshape(-1, 3, p * p)  # one row per patch
    out = np.empty((tokens.shape[0], 3, t, p * p), dtype=np.float32)
    _normalise(tokens, np.ascontiguousarray(normalisation_table(preset, normalise_as), dtype=np.float32), t, out)
    return out.reshape(tokens.shape[0], 3 * t * p * p)
