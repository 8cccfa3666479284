"""Scratch prototype (not used by `make bench`): a pred_2d coder for the max metric whose
tau > 0 path costs about what the tau = 0 path costs.

Why: today's tau > 0 path compares token *reconstructions* one pair at a time
(C~A, C~B, X~pred), re-reading up to three tokens per position. Instead:

1. `neighbour_diffs`: one streaming pass over the pixel rows (8-bit SIMD
   absolute differences, like the tau = 0 XOR pass) gives d = max|X - left|
   and max|X - up| for every token.
2. `decide`: the LOCO-I rule over the grid. It keeps err[p], an upper bound of
   max|token p - its reconstruction| (0 for kept tokens). By the triangle
   inequality |recon u - recon v| lies within err[u] + err[v] of d(u, v), so
   a comparison reads pixels only when that interval straddles the limit
   (chains of near-equal tokens, such as a gradient, once their errors add up).

At tau = 0 it uses `exact_neighbours_fused` (today's XOR pass with the left
and upper comparisons in one loop) and today's rule kernel.
The result (ref) is identical to pixelprune_cli.coder.code_refs for
method="pred_2d", metric="max" at every tau: `python bench/proto_coder.py`
checks that on the bench inputs, samples/ and random palette grids, and
prints the best-of-101 times of both.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BIG = 32767  # "no neighbour": larger than any limit


@njit(cache=True, nogil=True, inline="always")
def _row_maxdiff(a, b, n):
    """max |a[k] - b[k]| over n uint8 values (branch-free, vectorises)."""
    m = 0
    for k in range(n):
        x = np.int32(a[k])
        y = np.int32(b[k])
        m = max(m, abs(x - y))
    return m


@njit(cache=True, nogil=True)
def neighbour_diffs(img, ts, th, tw, d_left, d_up):
    """Per token: max|X - left| and max|X - up| (int16; BIG where there is no neighbour).

    img: (H, W*3) uint8. Streams each pixel row once, keeping per-byte maxima of
    |row - row shifted one token left| and |row - row one token band up| in two
    row-long uint8 accumulators; LLVM turns the inner loops into 8-bit SIMD
    (vpminub/vpmaxub/vpsubb), and the band above is still in L2.
    """
    n = img.shape[1]
    rb = ts * 3
    acc_l = np.zeros(n, dtype=np.uint8)
    acc_u = np.zeros(n, dtype=np.uint8)
    for i in range(th):
        acc_l[:] = 0
        acc_u[:] = 0
        for r in range(ts):
            y = i * ts + r
            row = img[y]
            cur, prev, al = row[rb:], row[:n - rb], acc_l[rb:]
            for k in range(n - rb):
                a = cur[k]
                b = prev[k]
                al[k] = max(al[k], np.uint8(max(a, b) - min(a, b)))
            if i > 0:
                above = img[y - ts]
                for k in range(n):
                    a = row[k]
                    b = above[k]
                    acc_u[k] = max(acc_u[k], np.uint8(max(a, b) - min(a, b)))
        for j in range(tw):
            ml = 0
            mu = 0
            for k in range(j * rb, (j + 1) * rb):
                ml = max(ml, acc_l[k])
                mu = max(mu, acc_u[k])
            d_left[i * tw + j] = ml if j > 0 else BIG
            d_up[i * tw + j] = mu if i > 0 else BIG


@njit(cache=True, nogil=True)
def exact_neighbours_fused(words, th, tw, ts, rw, eq_left, eq_up):
    """The tau = 0 pass, with the left and upper XOR-ORs fused into one loop per pixel row.

    words: (H, W*3/8) uint64 view of the image; rw words per token row. Same
    output as coder._exact_neighbours, but each row is loaded once, not twice.
    """
    n = tw * rw
    acc_l = np.zeros(n, dtype=words.dtype)
    acc_u = np.zeros(n, dtype=words.dtype)
    for i in range(th):
        acc_l[:] = 0
        acc_u[:] = 0
        for r in range(ts):
            y = i * ts + r
            row = words[y]
            cur, prev, al = row[rw:], row[:n - rw], acc_l[rw:]
            if i > 0:
                above = words[y - ts]
                for k in range(rw):
                    acc_u[k] |= row[k] ^ above[k]
                up, au = above[rw:], acc_u[rw:]
                for k in range(n - rw):
                    c = cur[k]
                    al[k] |= c ^ prev[k]
                    au[k] |= c ^ up[k]
            else:
                for k in range(n - rw):
                    al[k] |= cur[k] ^ prev[k]
        for j in range(tw):
            left = 0
            upper = 0
            for k in range(j * rw, (j + 1) * rw):
                left |= acc_l[k]
                upper |= acc_u[k]
            eq_left[i * tw + j] = j > 0 and left == 0
            eq_up[i * tw + j] = i > 0 and upper == 0


@njit(cache=True, nogil=True, inline="always")
def _tokens_maxdiff(img, p, q, tw, ts, limit):
    """max|token p - token q|, exact while <= limit; reading stops at the first row above it."""
    if p == q:
        return 0
    rb = ts * 3
    yp = (p // tw) * ts
    xp = (p % tw) * rb
    yq = (q // tw) * ts
    xq = (q % tw) * rb
    m = 0
    for r in range(ts):
        m = max(m, _row_maxdiff(img[yp + r, xp:xp + rb], img[yq + r, xq:xq + rb], rb))
        if m > limit:
            break
    return m


@njit(cache=True, nogil=True, inline="always")
def _close_recon(img, u, v, d_uv, ref, err, tw, ts, limit):
    """Are the reconstructions of neighbours u and v (d_uv apart) within the limit?

    By the triangle inequality, |recon u - recon v| lies within err[u] + err[v]
    of d_uv; pixels are read only when that interval straddles the limit.
    """
    a = ref[u]
    b = ref[v]
    if a == b:
        return True
    slack = err[u] + err[v]
    if d_uv + slack <= limit:
        return True
    if d_uv - slack > limit:
        return False
    return _tokens_maxdiff(img, a, b, tw, ts, limit) <= limit


@njit(cache=True, nogil=True)
def decide(img, ts, th, tw, limit, d_left, d_up, ref, err):
    """LOCO-I pred_2d over the grid from the neighbour differences; fills ref.

    err[p] is an upper bound of max|token p - its reconstruction| (0 for kept
    tokens and for exact copies of exact tokens), kept so that most decisions
    need no pixels.
    """
    for i in range(th):
        for j in range(tw):
            p = i * tw + j
            if p == 0:
                ref[0] = 0
                err[0] = 0
                continue
            if i == 0:
                pred, dx = p - 1, d_left[p]
            elif j == 0:
                pred, dx = p - tw, d_up[p]
            else:
                a, b, c = p - 1, p - tw, p - tw - 1
                c_a = _close_recon(img, c, a, d_up[a], ref, err, tw, ts, limit)
                c_b = c_a and _close_recon(img, c, b, d_left[b], ref, err, tw, ts, limit)
                if c_a and not c_b:
                    pred, dx = b, d_up[p]
                else:
                    pred, dx = a, d_left[p]
            r = ref[pred]
            e = err[pred]
            if dx + e <= limit:  # also every exact repeat (dx = 0): pred itself is within the limit of r
                bound = dx + e
            elif dx - e > limit:
                bound = limit + 1
            else:
                bound = _tokens_maxdiff(img, p, r, tw, ts, limit)
            if bound <= limit:
                ref[p] = r
                err[p] = bound
            else:
                ref[p] = p
                err[p] = 0


def code_refs_max(image: np.ndarray, ts: int, tau: float) -> np.ndarray:
    """Flat int32 ref, as coder.code_refs(image, ts, "pred_2d", "max", tau)."""
    from pixelprune_cli.coder import _code_pred_2d, error_limit

    h, w, _ = image.shape
    th, tw = h // ts, w // ts
    limit = error_limit("max", float(tau), ts * ts * 3)
    flat = np.ascontiguousarray(image).reshape(h, w * 3)
    ref = np.empty(th * tw, dtype=np.int32)
    if limit == 0 and (ts * 3) % 8 == 0:  # exact: the fused XOR pass, then today's rule kernel
        eq_left = np.empty(th * tw, dtype=np.bool_)
        eq_up = np.empty(th * tw, dtype=np.bool_)
        exact_neighbours_fused(flat.view(np.uint64), th, tw, ts, ts * 3 // 8, eq_left, eq_up)
        _code_pred_2d(flat, ts, th, tw, 0, 0, eq_left, eq_up, ref)
        return ref
    d_left = np.empty(th * tw, dtype=np.int16)
    d_up = np.empty(th * tw, dtype=np.int16)
    neighbour_diffs(flat, ts, th, tw, d_left, d_up)
    err = np.empty(th * tw, dtype=np.int16)
    decide(flat, ts, th, tw, limit, d_left, d_up, ref, err)
    return ref


def prune_max(image: np.ndarray, ts: int, tau: float = 0.0):
    """(keep, ref) like coder.prune_tokens(image, ts, "pred_2d", "max", tau)."""
    ref = code_refs_max(image, ts, tau)
    th, tw = image.shape[0] // ts, image.shape[1] // ts
    keep = ref == np.arange(ref.shape[0], dtype=np.int32)
    return keep.reshape(th, tw), ref.reshape(th, tw)


def _check_and_time() -> None:
    import sys
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from inputs import make_inputs
    from pixelprune_cli.coder import code_refs, prune_tokens
    from pixelprune_cli.preprocess import decode_image, resize_for_model
    from pixelprune_cli.presets import resolve_preset

    preset = resolve_preset()
    made = make_inputs()
    root = Path(__file__).resolve().parent.parent
    paths = [*made["coder"].values(), *made["files"], *sorted((root / "samples").glob("*.png"))]
    images = [resize_for_model(decode_image(p.read_bytes()), preset) for p in paths]
    rng = np.random.default_rng(0)
    for _ in range(30):  # small random palettes: many near and exact repeats
        grid = rng.integers(0, 4, (int(rng.integers(1, 6)), int(rng.integers(1, 6))))
        levels = rng.integers(0, 256, (4, 3)).astype(np.uint8)
        noise = rng.integers(-12, 13, (grid.shape[0] * 32, grid.shape[1] * 32, 3)) * (rng.random() < 0.5)
        img = levels[grid].repeat(32, 0).repeat(32, 1).astype(np.int32) + noise
        images.append(np.clip(img, 0, 255).astype(np.uint8))
    for img in images:
        for tau in (0.0, 0.01, 0.03, 0.05, 0.1, 0.3, 1.0):
            want = code_refs(img, 32, "pred_2d", "max", tau)
            got = code_refs_max(img, 32, tau)
            assert np.array_equal(want, got), (img.shape, tau)
    print(f"identical refs on {len(images)} images x 7 taus")

    def med(fn, n=101):
        fn()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return np.min(times) * 1e3

    for name, path in made["coder"].items():
        img = resize_for_model(decode_image(path.read_bytes()), preset)
        row = [f"{name:18s} copy {med(lambda: np.copy(img)):.3f} ms"]
        for tau in (0.0, 0.05):
            row.append(f"tau={tau:g}: now {med(lambda: prune_tokens(img, 32, tau=tau)):.3f}"
                       f" proto {med(lambda: prune_max(img, 32, tau)):.3f} ms")
        print("  ".join(row))


if __name__ == "__main__":
    _check_and_time()
