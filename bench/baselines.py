"""What pixelprune is measured against: the floors and the obvious alternatives.

- `copy_floor`: one numpy.copy of the resized uint8 image, the cost of one pass
  over the pixels (target 1).
- `numpy_pred_2d`: the same pred_2d rule written the way one would in plain
  numpy, on float32 values in [0, 1] (target 2). tau = 0 is fully vectorised;
  tau > 0 is anchored (a token is compared with its neighbours'
  *reconstructions*), so decisions within a row depend on each other and the
  obvious version vectorises what the previous row settles and loops over the
  tokens of the row for the rest.
- `pillow_floor`: read + Pillow decode + RGB convert + BICUBIC smart-resize,
  nothing else, not even the copy to numpy (target 3's floor).
- `hf_processor`: read + Pillow decode + transformers' Qwen2VLImageProcessorPil
  to pixel_values, what users run today (target 3's baseline).

Written from the rule's definition, independently of pixelprune_cli.coding.coder, so
the bench can also check that both give the same keep mask.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pixelprune_cli.coding.preprocess import smart_resize  # the arithmetic only; the floor does its own Pillow calls

# qwen3-vl processor settings, as values (no hub access).
QWEN3_VL = dict(patch_size=16, merge_size=2, temporal_patch_size=2, min_pixels=65536,
                max_pixels=16777216, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def copy_floor(image: np.ndarray) -> np.ndarray:
    return np.copy(image)


# ---------------------------------------------------------------- target 2


def patchify(image: np.ndarray, ts: int) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (th, tw, ts*ts*3) in [0, 1], one row per merged token."""
    h, w, _ = image.shape
    th, tw = h // ts, w // ts
    values = image.astype(np.float32) / np.float32(255)
    return values.reshape(th, ts, tw, ts, 3).transpose(0, 2, 1, 3, 4).reshape(th, tw, ts * ts * 3)


def close(a: np.ndarray, b: np.ndarray, tau: float) -> np.ndarray:
    """max-metric closeness along the last axis: max |a - b| <= tau."""
    return np.abs(a - b).max(axis=-1) <= tau


def _resolve(ref: np.ndarray) -> np.ndarray:
    """Follow ref chains to their kept token by pointer jumping (log-many vectorised steps)."""
    while True:
        nxt = ref[ref]
        if np.array_equal(nxt, ref):
            return ref
        ref = nxt


def numpy_pred_2d_exact(image: np.ndarray, ts: int) -> tuple[np.ndarray, np.ndarray]:
    """pred_2d at tau = 0, fully vectorised. Returns (keep (th, tw) bool, ref (th*tw,) int).

    At tau = 0 a reconstruction equals the original, so every comparison is
    between original tokens and all of them can be made at once.
    """
    tokens = patchify(image, ts)
    th, tw, _ = tokens.shape
    eq_left = np.zeros((th, tw), dtype=bool)
    eq_up = np.zeros((th, tw), dtype=bool)
    eq_left[:, 1:] = close(tokens[:, 1:], tokens[:, :-1], 0.0)
    eq_up[1:, :] = close(tokens[1:], tokens[:-1], 0.0)
    # C ~ A is "A equals its upper neighbour"; C ~ B is "B equals its left neighbour".
    use_b = np.zeros((th, tw), dtype=bool)
    use_b[1:, 1:] = eq_up[1:, :-1] & ~eq_left[:-1, 1:]
    use_b[1:, 0] = True  # first column: only the upper neighbour exists
    same = np.where(use_b, eq_up, eq_left)
    same[0, 0] = False
    index = np.arange(th * tw).reshape(th, tw)
    pred = np.where(use_b, index - tw, index - 1)
    ref = _resolve(np.where(same, pred, index).reshape(-1))
    return ~same, ref


def numpy_pred_2d_anchored(image: np.ndarray, ts: int, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """pred_2d at tau > 0, anchored: neighbours are compared through their reconstructions.

    The previous row is settled, so everything that involves only B (upper)
    and C (upper-left) is computed for the whole row at once; what involves A
    (the left neighbour, decided just before) is done token by token.
    """
    tokens = patchify(image, ts)
    th, tw, d = tokens.shape
    flat = tokens.reshape(th * tw, d)
    ref = np.empty(th * tw, dtype=np.int64)
    ref[0] = 0
    for j in range(1, tw):  # first row: each token predicted by its left neighbour
        r = ref[j - 1]
        ref[j] = r if close(flat[j], flat[r], tau) else j
    for i in range(1, th):
        row = slice(i * tw, (i + 1) * tw)
        ref_up = ref[(i - 1) * tw:i * tw]
        recon_b = flat[ref_up]  # (tw, D): reconstruction of B for every column
        x = flat[row]
        x_close_b = close(x, recon_b, tau)
        c_close_b = np.zeros(tw, dtype=bool)
        c_close_b[1:] = close(recon_b[:-1], recon_b[1:], tau)
        ref[i * tw] = ref_up[0] if x_close_b[0] else i * tw
        for j in range(1, tw):
            p = i * tw + j
            recon_a = flat[ref[p - 1]]
            c_close_a = close(recon_b[j - 1], recon_a, tau)
            if c_close_a and not c_close_b[j]:
                ref[p] = ref_up[j] if x_close_b[j] else p
            else:
                ref[p] = ref[p - 1] if close(x[j], recon_a, tau) else p
    keep = ref == np.arange(th * tw)
    return keep.reshape(th, tw), ref


def numpy_pred_2d(image: np.ndarray, ts: int, tau: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The obvious numpy pred_2d (max metric): exact path at tau = 0, anchored otherwise."""
    if tau == 0:
        return numpy_pred_2d_exact(image, ts)
    return numpy_pred_2d_anchored(image, ts, tau)


# ---------------------------------------------------------------- target 3


def pillow_floor(paths) -> int:
    """Read, decode, convert to RGB and BICUBIC-resize every file, nothing more; returns total pixels.

    Strict floor: the resized image stays a PIL image (no numpy copy), so
    everything pixelprune does after the resize, np.asarray included, counts
    against it.
    """
    factor = QWEN3_VL["patch_size"] * QWEN3_VL["merge_size"]
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        image = Image.open(io.BytesIO(data)).convert("RGB")
        h, w = smart_resize(image.height, image.width, factor, QWEN3_VL["min_pixels"], QWEN3_VL["max_pixels"])
        resized = image.resize((w, h), Image.Resampling.BICUBIC)
        total += resized.width * resized.height
    return total


def make_hf_processor():
    """transformers' PIL processor with the qwen3-vl config built from values."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(**QWEN3_VL)


def hf_processor(paths, processor) -> int:
    """Read, decode and run the processor to pixel_values for every file; returns total values."""
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        image = Image.open(io.BytesIO(data))
        image.load()
        total += processor(images=image)["pixel_values"].size
    return total
