"""Tokens in and out of an image: the stored layout, and the kept tokens' pixels.

`coder` decides, for each merged token, the kept token that rebuilds it (the
flat `ref` array). Here `layout` turns `ref` into what an output stores
(`kept_index`, ascending, and `index_map`, each position's rank among them);
`gather_tokens` copies the kept tokens' pixels out of the resized image in the
processor's patch order, and `scatter_tokens` paints an image back from them.
The kernels are Numba loops over plain arrays; the wrappers check and allocate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pixelprune_cli.coding.coder import check_image, read_only


@njit(cache=True, nogil=True)
def _layout(ref, kept_index, index_map):
    """From ref, fill kept_index (ascending kept tokens) and index_map (rank of each ref).

    Two passes: serpentine refs can point forward, so every rank must exist
    before any position looks one up.
    """
    n = 0
    for p in range(ref.shape[0]):
        if ref[p] == p:
            kept_index[n] = p
            index_map[p] = n
            n += 1
    for p in range(ref.shape[0]):
        index_map[p] = index_map[ref[p]]
    return n


@njit(cache=True, nogil=True)
def _gather(flat, kept_index, tw, patch, merge, out):
    """Copy kept tokens into out (K, merge*merge, 3, patch, patch) in the processor's order.

    flat: the image as (H, W*3). Each patch row is read as one contiguous
    slice and split into its three channel rows.
    """
    ts = patch * merge
    for n in range(kept_index.shape[0]):
        q = kept_index[n]
        y0 = (q // tw) * ts
        x0 = (q % tw) * ts
        for mh in range(merge):
            for mw in range(merge):
                s = mh * merge + mw
                ys = y0 + mh * patch
                xs = (x0 + mw * patch) * 3
                for py in range(patch):
                    src = flat[ys + py, xs:xs + patch * 3]
                    for c in range(3):
                        dst = out[n, s, c, py]
                        for px in range(patch):
                            dst[px] = src[px * 3 + c]


@njit(cache=True, nogil=True)
def _scatter(pixels, index_map, tw, patch, merge, img3):
    """Inverse of _gather: paint each token of img3 from its kept token's pixels."""
    ts = patch * merge
    for p in range(index_map.shape[0]):
        n = index_map[p]
        y0 = (p // tw) * ts
        x0 = (p % tw) * ts
        for mh in range(merge):
            for mw in range(merge):
                s = mh * merge + mw
                ys = y0 + mh * patch
                xs = x0 + mw * patch
                for py in range(patch):
                    for px in range(patch):
                        for c in range(3):
                            img3[ys + py, xs + px, c] = pixels[n, s, c, py, px]


def layout(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kept_index, index_map) as stored in the output, from a flat ref array."""
    kept_index = np.empty(ref.shape[0], dtype=np.int32)
    index_map = np.empty(ref.shape[0], dtype=np.int32)
    n = _layout(read_only(ref), kept_index, index_map)
    return kept_index[:n].copy(), index_map


def gather_tokens(image: np.ndarray, kept_index: np.ndarray, patch_size: int, merge_size: int) -> np.ndarray:
    """Kept tokens' pixels, (K, merge^2 * 3 * patch^2) uint8, each in the processor's patch order."""
    ts = patch_size * merge_size
    image = check_image(image, ts)
    tw = image.shape[1] // ts
    out = np.empty((kept_index.shape[0], merge_size * merge_size, 3, patch_size, patch_size), dtype=np.uint8)
    flat = read_only(image.reshape(image.shape[0], -1))
    _gather(flat, read_only(np.ascontiguousarray(kept_index, dtype=np.int32)), tw, patch_size, merge_size, out)
    return out.reshape(kept_index.shape[0], -1)


def scatter_tokens(pixels: np.ndarray, index_map: np.ndarray, height: int, width: int, patch_size: int, merge_size: int) -> np.ndarray:
    """Rebuild the (height, width, 3) uint8 image from kept pixels and the index map."""
    ts = patch_size * merge_size
    if height % ts or width % ts:
        raise ValueError(f"image size {width}x{height} is not a multiple of the token size {ts}")
    th, tw = height // ts, width // ts
    index_map = np.ascontiguousarray(index_map, dtype=np.int32)
    if index_map.shape[0] != th * tw:
        raise ValueError(f"index_map has {index_map.shape[0]} entries, expected {th * tw} for {width}x{height}")
    if index_map.size and (index_map.min() < 0 or index_map.max() >= pixels.shape[0]):
        raise ValueError("index_map points outside pixels")
    pix = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(pixels.shape[0], merge_size * merge_size, 3, patch_size, patch_size)
    out = np.empty((height, width, 3), dtype=np.uint8)
    _scatter(read_only(pix), read_only(index_map), tw, patch_size, merge_size, out)
    return out
