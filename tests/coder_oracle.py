"""A slow, obvious, plain-numpy reference for pixelprune_cli.coding.coder.

Written from the tool's contract, not from the Numba kernels: tokens are cut
out as whole arrays, errors are the float formulas of the spec evaluated on
exact int64 statistics, reconstructions are looked up through `ref` every
time, and scan orders are explicit lists. Nothing here shares code with the
kernels, so an agreement between the two means something.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def tokens_of(image: np.ndarray, ts: int) -> np.ndarray:
    """The token grid as int64 (th, tw, ts, ts, 3), so differences never wrap."""
    h, w, _ = image.shape
    th, tw = h // ts, w // ts
    grid = np.empty((th, tw, ts, ts, 3), dtype=np.int64)
    for i in range(th):
        for j in range(tw):
            grid[i, j] = image[i * ts:(i + 1) * ts, j * ts:(j + 1) * ts, :]
    return grid


def error(metric: str, a: np.ndarray, b: np.ndarray) -> float:
    """The spec's error between two tokens, in [0, 1] units."""
    d = a.astype(np.int64) - b.astype(np.int64)
    n = d.size
    if metric == "max":
        return int(np.abs(d).max()) / 255
    if metric == "mae":
        return int(np.abs(d).sum()) / (n * 255)
    if metric == "rmse":
        return math.sqrt(int((d * d).sum()) / (n * 255 ** 2))
    raise ValueError(metric)


class _Coder:
    """Keeps the grid and ref together so `recon` and `close` read like the spec."""

    def __init__(self, image, ts, metric, tau):
        self.grid = tokens_of(image, ts)
        self.th, self.tw = self.grid.shape[:2]
        self.metric = metric
        self.tau = tau
        self.ref = {}  # (i, j) -> (i, j) of the kept token rebuilding it

    def original(self, t):
        return self.grid[t]

    def recon(self, t):
        return self.grid[self.ref[t]]

    def close(self, a, b) -> bool:
        return error(self.metric, a, b) <= self.tau

    def decide(self, x, pred):
        """Drop x onto its predictor's reconstruction if close enough, else keep it."""
        if self.close(self.original(x), self.recon(pred)):
            self.ref[x] = self.ref[pred]
        else:
            self.ref[x] = x

    def result(self):
        keep = np.zeros((self.th, self.tw), dtype=bool)
        ref = np.zeros((self.th, self.tw), dtype=np.int32)
        for (i, j), (ri, rj) in self.ref.items():
            ref[i, j] = ri * self.tw + rj
            keep[i, j] = (ri, rj) == (i, j)
        assert len(self.ref) == self.th * self.tw
        return keep, ref


def prune_pred_2d(image, ts, metric="max", tau=0.0):
    """LOCO-style 2-D prediction over the token grid, row-major, anchored."""
    c = _Coder(image, ts, metric, tau)
    for i in range(c.th):
        for j in range(c.tw):
            x = (i, j)
            if i == 0 and j == 0:
                c.ref[x] = x
                continue
            if i == 0:
                pred = (i, j - 1)
            elif j == 0:
                pred = (i - 1, j)
            else:
                A, B, C = (i, j - 1), (i - 1, j), (i - 1, j - 1)
                c_like_a = c.close(c.recon(C), c.recon(A))
                c_like_b = c.close(c.recon(C), c.recon(B))
                pred = B if (c_like_a and not c_like_b) else A
            c.decide(x, pred)
    return c.result()


def scan_order(th, tw, serpentine):
    """Grid positions in scan order; odd rows reversed when serpentine."""
    order = []
    for i in range(th):
        cols = list(range(tw))
        if serpentine and i % 2 == 1:
            cols.reverse()
        order.extend((i, j) for j in cols)
    return order


def prune_scan(image, ts, metric="max", tau=0.0, serpentine=False):
    """One continuous scan; each token predicted by the token scanned just before it."""
    c = _Coder(image, ts, metric, tau)
    order = scan_order(c.th, c.tw, serpentine)
    c.ref[order[0]] = order[0]
    for prev, x in itertools.pairwise(order):
        c.decide(x, prev)
    return c.result()


def prune_tokens(image, token_size, method="pred_2d", metric="max", tau=0.0):
    """Oracle counterpart of coder.prune_tokens -> (keep, ref), both (th, tw)."""
    if method == "pred_2d":
        return prune_pred_2d(image, token_size, metric, tau)
    if method == "raster":
        return prune_scan(image, token_size, metric, tau, serpentine=False)
    if method == "serpentine":
        return prune_scan(image, token_size, metric, tau, serpentine=True)
    raise ValueError(method)


def layout(ref_flat):
    """(kept_index, index_map): kept tokens ascending, and each ref's rank among them."""
    ref_flat = [int(r) for r in ref_flat]
    kept_index = sorted(p for p, r in enumerate(ref_flat) if r == p)
    rank = {q: k for k, q in enumerate(kept_index)}
    index_map = [rank[r] for r in ref_flat]
    return np.array(kept_index, dtype=np.int32), np.array(index_map, dtype=np.int32)


def gather_tokens(image, kept_index, patch, merge):
    """Each kept token as merge x merge patches in row order, each patch (C, patch, patch)."""
    ts = patch * merge
    tw = image.shape[1] // ts
    rows = []
    for q in kept_index:
        i, j = divmod(int(q), tw)
        block = image[i * ts:(i + 1) * ts, j * ts:(j + 1) * ts, :]
        parts = []
        for mh in range(merge):
            for mw in range(merge):
                p = block[mh * patch:(mh + 1) * patch, mw * patch:(mw + 1) * patch, :]
                for ch in range(3):
                    parts.append(p[:, :, ch].reshape(-1))
        rows.append(np.concatenate(parts) if parts else np.zeros(0, np.uint8))
    return np.array(rows, dtype=np.uint8).reshape(len(kept_index), merge * merge * 3 * patch * patch)


def reconstruct(image, ref, ts):
    """The image every token of which is replaced by the original pixels of ref[token]."""
    th, tw = ref.shape
    out = np.empty_like(image)
    for i in range(th):
        for j in range(tw):
            ri, rj = divmod(int(ref[i, j]), tw)
            out[i * ts:(i + 1) * ts, j * ts:(j + 1) * ts] = image[ri * ts:(ri + 1) * ts, rj * ts:(rj + 1) * ts]
    return out
