"""The predictive coder: which merged tokens to keep, and what rebuilds the others.

Moving the tokens' pixels (the kept ones out, back into an image) is `tokens`.

Kernels work on the resized image itself, viewed as a 2-D uint8 array
(H, W*3), so a token is `ts` runs of `ts*3` contiguous bytes and no patchified
copy is ever made. A token is dropped when it is close enough to the
*reconstruction* of its predictor: comparisons always go through `ref`, the
kept token that rebuilds a position, which makes tau > 0 anchored (no error
accumulation) and costs nothing at tau = 0, where reconstruction is exact.

Error definitions, with d the integer difference of two uint8 values and n the
values in a token (ts*ts*3), all in [0, 1] units:
    max  = max|d| / 255
    mae  = sum|d| / (n * 255)
    rmse = sqrt(sum d^2 / (n * 255^2))
Each is turned into an exact integer limit once (see `error_limit`), so the
kernels compare integers and exit at the first row that exceeds it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from pixelprune_cli.coding.presets import (  # named there, so that the CLI lists them without importing Numba
    METHODS,
    METRICS,
)
from pixelprune_cli.errors import ConfigError

_METRIC_CODE = {name: i for i, name in enumerate(METRICS)}
_METHOD_CODE = {name: i for i, name in enumerate(METHODS)}
NO_NEIGHBOUR = 32767  # a neighbour difference larger than any limit
_WORD_DTYPES = {8: np.uint64, 4: np.uint32, 2: np.uint16, 1: np.uint8}


def token_error(metric: str, value: int, n: int) -> float:
    """The error, in [0, 1] units, of an integer statistic `value` over `n` values.

    `value` is max|d| for max, sum|d| for mae and sum d^2 for rmse.
    """
    if metric == "max":
        return value / 255.0
    if metric == "mae":
        return value / (n * 255.0)
    return math.sqrt(value / (n * 65025.0))


def error_limit(metric: str, tau: float, n: int) -> int:
    """Largest integer statistic whose `token_error` is still <= tau."""
    top = {"max": 255, "mae": 255 * n, "rmse": 65025 * n}[metric]
    tau = min(tau, 1.0)  # every error is <= 1; also keeps the products below finite
    guess = {"max": tau * 255.0, "mae": tau * n * 255.0, "rmse": tau * tau * n * 65025.0}[metric]
    limit = min(top, max(0, math.floor(guess)))
    while limit < top and token_error(metric, limit + 1, n) <= tau:
        limit += 1
    while limit > 0 and token_error(metric, limit, n) > tau:
        limit -= 1
    return limit


@njit(cache=True, nogil=True, inline="always")
def _token_diff(img, p, q, tw, ts, metric, limit):
    """The metric's integer statistic between tokens p and q (flat indices), exact while <= limit.

    img: (H, W*3) uint8; metric: an index into METRICS. The statistic is
    max|d|, sum|d| or sum d^2; once it passes `limit` the scan stops after
    that row and returns a value > limit. Rows are taken as slices so the
    inner loops index from 0 and vectorise.
    """
    if p == q:
        return 0
    row_bytes = ts * 3
    yp = (p // tw) * ts
    xp = (p % tw) * row_bytes
    yq = (q // tw) * ts
    xq = (q % tw) * row_bytes
    total = 0
    for r in range(ts):
        a = img[yp + r, xp:xp + row_bytes]
        b = img[yq + r, xq:xq + row_bytes]
        if metric == 0:
            m = 0
            for k in range(row_bytes):
                m = max(m, abs(np.int32(a[k]) - np.int32(b[k])))
            total = max(total, m)
        elif metric == 1:
            s = 0
            for k in range(row_bytes):
                s += abs(np.int32(a[k]) - np.int32(b[k]))
            total += s
        else:
            s = 0
            for k in range(row_bytes):
                d = np.int32(a[k]) - np.int32(b[k])
                s += d * d
            total += s
        if total > limit:
            break
    return total


@njit(cache=True, nogil=True)
def _exact_neighbours(words, th, tw, ts, rw, d_left, d_up):
    """One streaming pass: is each token byte-identical to its left / upper neighbour?

    words: the image as (H, W*3/word) machine words, rw words per token row.
    Each pixel row is loaded once and XOR-ORed, against the row one token to
    the left and the row one token band up (still in cache), into per-word
    accumulators: a branch-free loop the compiler vectorises.
    d_left / d_up: (th*tw,) int16, filled: 0 where identical, 1 where not,
    NO_NEIGHBOUR where there is none (the form _code_pred_2d and _code_scan read).
    """
    n = tw * rw
    acc_left = np.zeros(n, dtype=words.dtype)
    acc_up = np.zeros(n, dtype=words.dtype)
    for i in range(th):
        acc_left[:] = 0
        acc_up[:] = 0
        for r in range(ts):
            y = i * ts + r
            row = words[y]
            cur, prev, left_acc = row[rw:], row[:n - rw], acc_left[rw:]
            if i > 0:
                above = words[y - ts]
                for k in range(rw):
                    acc_up[k] |= row[k] ^ above[k]
                up, up_acc = above[rw:], acc_up[rw:]
                for k in range(n - rw):
                    c = cur[k]
                    left_acc[k] |= c ^ prev[k]
                    up_acc[k] |= c ^ up[k]
            else:
                for k in range(n - rw):
                    left_acc[k] |= cur[k] ^ prev[k]
        for j in range(tw):
            left = 0
            upper = 0
            for k in range(j * rw, (j + 1) * rw):
                left |= acc_left[k]
                upper |= acc_up[k]
            d_left[i * tw + j] = np.int16(left != 0) if j > 0 else NO_NEIGHBOUR
            d_up[i * tw + j] = np.int16(upper != 0) if i > 0 else NO_NEIGHBOUR


@njit(cache=True, nogil=True)
def _neighbour_max_diffs(img, ts, th, tw, d_left, d_up):
    """Per token, max|X - left| and max|X - up| as int16 (NO_NEIGHBOUR where there is none).

    The max-metric twin of _exact_neighbours: one streaming pass keeping
    per-byte maxima of absolute differences in uint8 accumulators (8-bit SIMD).
    Kept as a twin on measurement: one pass generic over the unit (bytes or
    words, rules picked by dtype through numba overloads) ran the byte case
    2-6% slower (2048x2048 page, interleaved runs), part of a 10% loss of
    pred_2d at tau=0.05 in the bench configuration; the word case was as fast.
    """
    n = img.shape[1]
    rb = ts * 3
    acc_left = np.zeros(n, dtype=np.uint8)
    acc_up = np.zeros(n, dtype=np.uint8)
    for i in range(th):
        acc_left[:] = 0
        acc_up[:] = 0
        for r in range(ts):
            y = i * ts + r
            row = img[y]
            cur, prev, left_acc = row[rb:], row[:n - rb], acc_left[rb:]
            if i > 0:  # left and up in one loop: each row is loaded once
                above = img[y - ts]
                for k in range(rb):
                    a = row[k]
                    b = above[k]
                    acc_up[k] = max(acc_up[k], np.uint8(max(a, b) - min(a, b)))
                up, up_acc = above[rb:], acc_up[rb:]
                for k in range(n - rb):
                    a = cur[k]
                    b = prev[k]
                    u = up[k]
                    left_acc[k] = max(left_acc[k], np.uint8(max(a, b) - min(a, b)))
                    up_acc[k] = max(up_acc[k], np.uint8(max(a, u) - min(a, u)))
            else:
                for k in range(n - rb):
                    a = cur[k]
                    b = prev[k]
                    left_acc[k] = max(left_acc[k], np.uint8(max(a, b) - min(a, b)))
        for j in range(tw):
            left = 0
            upper = 0
            for k in range(j * rb, (j + 1) * rb):
                left = max(left, acc_left[k])
                upper = max(upper, acc_up[k])
            d_left[i * tw + j] = left if j > 0 else NO_NEIGHBOUR
            d_up[i * tw + j] = upper if i > 0 else NO_NEIGHBOUR


@njit(cache=True, nogil=True, inline="always")
def _recon_close(img, u, v, d_uv, ref, err, tw, ts, metric, limit):
    """Are the reconstructions of neighbours u and v (d_uv = max|u - v|) within the limit?

    For limit > 0. For the max metric their distance lies within err[u] +
    err[v] of d_uv (triangle inequality), so pixels are read only when that
    interval straddles the limit.
    """
    a = ref[u]
    b = ref[v]
    if a == b:
        return True
    if metric == 0:
        slack = err[u] + err[v]
        if d_uv + slack <= limit:
            return True
        if d_uv - slack > limit:
            return False
    return _token_diff(img, a, b, tw, ts, metric, limit) <= limit


@njit(cache=True, nogil=True, inline="always")
def _diff_to_ref(img, p, r, dx, e, tw, ts, metric, limit):
    """Token p's statistic against r, its predictor's reconstruction: exact when <= limit.

    dx = max|p - predictor|; e = err[predictor]. A token identical to its
    predictor is as close to r as the predictor is (e); at limit 0 nothing else
    drops; the max metric bounds the answer by dx +- e before reading pixels.
    """
    if dx == 0:
        return e
    if limit == 0:
        return 1
    if metric == 0:
        if dx + e <= limit:
            return dx + e
        if dx - e > limit:
            return limit + 1
    return _token_diff(img, p, r, tw, ts, metric, limit)


@njit(cache=True, nogil=True)
def _code_pred_2d(img, ts, th, tw, metric, limit, d_left, d_up, ref, err):
    """LOCO-I edge rule over the token grid; fills ref (th*tw,) int32 and err (th*tw,) int16, zeroed.

    d_left / d_up: from _neighbour_max_diffs (exact max|d|) when the metric
    is max and limit > 0, the only case that reads more than whether they are
    0; from _exact_neighbours otherwise. For the max metric, err[p] bounds
    max|token p - its reconstruction| (0 for kept tokens; 0 everywhere for the
    other metrics), so with the neighbour differences most decisions need no
    pixels, and the result is the same as comparing reconstructions directly.
    One walk serves every metric and tau, a price paid to write the edge rule
    once: against the two walks it replaced (2048x2048 page, callgrind) it
    runs 0.4M vs 0.2M instructions at tau=0 and 0.94M vs 0.81M at max 0.05,
    about 3% of code_refs; timed, code_refs moved by -8% to +4% (noise-level).
    """
    for i in range(th):
        for j in range(tw):
            p = i * tw + j
            if p == 0:
                ref[0] = 0
                continue
            if i == 0:
                pred, dx = p - 1, d_left[p]
            elif j == 0:
                pred, dx = p - tw, d_up[p]
            else:
                a, b, c = p - 1, p - tw, p - tw - 1
                if limit == 0:  # reconstruction is exact: compare the tokens themselves
                    c_a, c_b = d_up[a] == 0, d_left[b] == 0
                else:
                    c_a = _recon_close(img, c, a, d_up[a], ref, err, tw, ts, metric, limit)
                    c_b = c_a and _recon_close(img, c, b, d_left[b], ref, err, tw, ts, metric, limit)
                if c_a and not c_b:
                    pred, dx = b, d_up[p]
                else:
                    pred, dx = a, d_left[p]
            r = ref[pred]
            bound = _diff_to_ref(img, p, r, dx, err[pred], tw, ts, metric, limit)
            if bound <= limit:
                ref[p] = r
                if metric == 0:
                    err[p] = bound
            else:
                ref[p] = p


@njit(cache=True, nogil=True)
def _code_scan(img, ts, th, tw, metric, limit, serpentine, d_left, d_up, ref):
    """One continuous scan (row-major, or serpentine); each token predicted by the previous one.

    d_left / d_up: from _exact_neighbours (0 = byte-identical); ref (th*tw,) int32, filled.
    """
    prev = -1
    for i in range(th):
        backwards = serpentine and i % 2 == 1
        for jj in range(tw):
            j = tw - 1 - jj if backwards else jj
            p = i * tw + j
            if prev < 0:
                ref[p] = p
                prev = p
                continue
            if jj > 0:
                same = d_left[prev] == 0 if backwards else d_left[p] == 0
            elif serpentine:
                same = d_up[p] == 0
            else:
                same = False
            r = ref[prev]
            if same or ((limit > 0 or (not serpentine and jj == 0)) and _token_diff(img, p, r, tw, ts, metric, limit) <= limit):
                ref[p] = r
            else:
                ref[p] = p
            prev = p


def check_image(image: np.ndarray, token_size: int) -> np.ndarray:
    """The image as a C-contiguous (H, W, 3) uint8 array tiled by whole tokens; ConfigError (a ValueError) otherwise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError("image must be a uint8 array of shape (H, W, 3)")
    h, w, _ = image.shape
    if token_size < 1 or h == 0 or w == 0 or h % token_size or w % token_size:
        raise ConfigError(f"image size {w}x{h} is not a positive multiple of token_size {token_size}")
    return np.ascontiguousarray(image)


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view: kernels then see one array type whoever owns the buffer.

    Numba compiles a separate signature for writable and read-only arrays;
    inputs arrive as both (decoded images and Arrow buffers are read-only,
    API callers' arrays usually writable), so the wrappers pass every input
    kernels only read as a read-only view and one signature serves them all.
    """
    view = array.view()
    view.flags.writeable = False
    return view


def code_refs(image: np.ndarray, token_size: int, method: str = "pred_2d", metric: str = "max", tau: float = 0.0) -> np.ndarray:
    """Flat int32 ref array (one per token, row-major): the kept token rebuilding each position."""
    if method not in _METHOD_CODE:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if metric not in _METRIC_CODE:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if not (tau >= 0.0 and math.isfinite(tau)):
        raise ConfigError(f"tau must be a finite number >= 0, got {tau}")
    image = check_image(image, token_size)
    h, w, _ = image.shape
    th, tw = h // token_size, w // token_size
    flat = read_only(image.reshape(h, w * 3))
    limit = error_limit(metric, float(tau), token_size * token_size * 3)
    d_left = np.empty(th * tw, dtype=np.int16)
    d_up = np.empty(th * tw, dtype=np.int16)
    row_bytes = token_size * 3
    if method == "pred_2d" and metric == "max" and limit > 0:  # its bounds use the neighbours' max|d|
        _neighbour_max_diffs(flat, token_size, th, tw, d_left, d_up)
    else:  # only equality matters: compare whole machine words
        word = next(size for size in (8, 4, 2, 1) if row_bytes % size == 0)
        _exact_neighbours(flat.view(_WORD_DTYPES[word]), th, tw, token_size, row_bytes // word, d_left, d_up)
    ref = np.empty(th * tw, dtype=np.int32)
    m = _METRIC_CODE[metric]
    if method == "pred_2d":
        _code_pred_2d(flat, token_size, th, tw, m, limit, d_left, d_up, ref, np.zeros(th * tw, dtype=np.int16))
    else:
        _code_scan(flat, token_size, th, tw, m, limit, method == "serpentine", d_left, d_up, ref)
    return ref


def prune_tokens(image: np.ndarray, token_size: int, method: str = "pred_2d", metric: str = "max", tau: float = 0.0):
    """Decide which merged tokens of a resized image to keep.

    image: uint8 (H, W, 3), H and W multiples of token_size (32 for qwen3-vl).
    Returns (keep, ref): keep bool (H/ts, W/ts); ref int32 (H/ts, W/ts), the flat
    row-major index of the kept token whose pixels reconstruct each token.
    """
    ref = code_refs(image, token_size, method, metric, tau)
    th, tw = image.shape[0] // token_size, image.shape[1] // token_size
    keep = ref == np.arange(ref.shape[0], dtype=np.int32)
    return keep.reshape(th, tw), ref.reshape(th, tw)
