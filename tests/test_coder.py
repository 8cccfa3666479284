"""The Numba coder against the plain-numpy oracle in coder_oracle.py.

Grids are built from tiny palettes (whole-token colours, optionally with
+-1..3 per-pixel noise) so that matches, near-matches and LOCO edge decisions
are frequent; every tau of interest is tried for every method and metric.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelprune_cli.coding import coder, tokens

import coder_oracle as oracle
from conftest import ROOT

METHODS = ("pred_2d", "raster", "serpentine")
METRICS = ("max", "mae", "rmse")
TAUS = (0.0, 0.02, 0.05, 0.1, 0.3)
SHAPES = ((1, 1), (1, 5), (5, 1), (2, 2), (3, 4), (4, 3), (6, 7), (9, 11))


# ----------------------------------------------------------------- builders

def palette_grid(rng, th, tw, ts, n_colours=2, noise=0, noisy_share=1.0, spread=None):
    """Random grid of whole-token palette colours, plus optional per-pixel noise.

    spread: how far palette colours sit from a common base (small -> colours
    that some taus merge and others do not). noisy_share: fraction of tokens
    that get noise, so exact equality stays common too.
    """
    if spread is None:
        spread = int(rng.choice([2, 4, 8, 30, 120]))
    base = rng.integers(10, 245 - spread, size=3)
    palette = np.clip(base + rng.integers(0, spread + 1, size=(n_colours, 3)), 0, 255)
    idx = rng.integers(0, n_colours, size=(th, tw))
    img = np.repeat(np.repeat(palette[idx], ts, axis=0), ts, axis=1).astype(np.int64)
    if noise:
        mask = rng.random((th, tw)) < noisy_share
        pix_mask = np.repeat(np.repeat(mask, ts, axis=0), ts, axis=1)[..., None]
        img = img + rng.integers(-noise, noise + 1, size=img.shape) * pix_mask
    return np.clip(img, 0, 255).astype(np.uint8)


def uniform_tokens(values, ts):
    """Image whose token (i, j) is filled with the RGB (or grey) value values[i, j]."""
    values = np.asarray(values)
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=2)
    return np.repeat(np.repeat(values, ts, axis=0), ts, axis=1).astype(np.uint8)


def random_cases(seed):
    """(image, ts) pairs covering all shapes, word sizes (ts 1/2/3/4/8) and noise modes."""
    rng = np.random.default_rng(seed)
    for th, tw in SHAPES:
        for ts in (1, 2, 3, 4, 8):
            if ts == 8 and th * tw > 20:
                continue
            n_colours = int(rng.integers(2, 4))
            noise = int(rng.choice([0, 1, 2, 3]))
            share = float(rng.choice([0.3, 1.0]))
            yield palette_grid(rng, th, tw, ts, n_colours, noise, share), ts
    for th, tw, ts in ((3, 4, 28), (2, 5, 32), (4, 2, 32)):
        yield palette_grid(rng, th, tw, ts, 2, int(rng.integers(1, 4)), 0.5), ts


def assert_same(image, ts, method, metric, tau):
    keep, ref = coder.prune_tokens(image, ts, method, metric, tau)
    okeep, oref = oracle.prune_tokens(image, ts, method, metric, tau)
    ctx = f"method={method} metric={metric} tau={tau} ts={ts} grid={ref.shape}"
    assert keep.dtype == np.bool_ and ref.dtype == np.int32, ctx
    np.testing.assert_array_equal(ref, oref, err_msg=ctx)
    np.testing.assert_array_equal(keep, okeep, err_msg=ctx)
    return keep, ref


def recon_errors(image, ref, ts, metric):
    """Oracle error between every token and the token that rebuilds it."""
    grid = oracle.tokens_of(image, ts)
    th, tw = ref.shape
    return np.array([[oracle.error(metric, grid[i, j], grid[divmod(int(ref[i, j]), tw)])
                      for j in range(tw)] for i in range(th)])


# ------------------------------------------------- 1. kernel == oracle

@pytest.mark.parametrize("tau", TAUS + (1e-4,))
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("method", METHODS)
def test_kernel_matches_oracle_on_tiny_palettes(method, metric, tau):
    """Identical keep and ref on many random palette grids, noisy and clean."""
    for seed in (0, 1, 2):
        for image, ts in random_cases(seed * 1000 + 7):
            assert_same(image, ts, method, metric, tau)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("method", METHODS)
def test_kernel_matches_oracle_when_palette_gaps_sit_on_the_tau_boundary(method, metric):
    """Colours one grey level apart, tau exactly at / just under that error: the <= must agree."""
    rng = np.random.default_rng(11)
    for ts in (1, 2, 4):
        n = ts * ts * 3
        for k in (1, 2, 5):
            for _ in range(4):
                idx = rng.integers(0, 3, size=(5, 6))
                image = uniform_tokens(100 + k * idx, ts)
                tau = oracle.error(metric, np.zeros(n, np.int64), np.full(n, k, np.int64))
                for t in (tau, np.nextafter(tau, 0.0), np.nextafter(tau, 1.0)):
                    assert_same(image, ts, method, metric, float(t))


@pytest.mark.parametrize("method", METHODS)
def test_kernel_matches_oracle_on_non_contiguous_views(method):
    """A flipped or Fortran-ordered image is coded like its contiguous copy."""
    rng = np.random.default_rng(5)
    base = palette_grid(rng, 5, 6, 4, 3, noise=2, noisy_share=0.5)
    for view in (base[:, ::-1], np.asfortranarray(base), base[::-1, :, :]):
        for metric in METRICS:
            for tau in (0.0, 0.05):
                assert_same(view, 4, method, metric, tau)


@st.composite
def palette_images(draw):
    th = draw(st.integers(1, 7))
    tw = draw(st.integers(1, 7))
    ts = draw(st.sampled_from([1, 2, 3, 4, 8]))
    colour = st.tuples(*[st.integers(0, 255)] * 3)
    palette = np.array(draw(st.lists(colour, min_size=1, max_size=3)), dtype=np.int64)
    idx = np.array(draw(st.lists(st.integers(0, len(palette) - 1), min_size=th * tw, max_size=th * tw))).reshape(th, tw)
    img = np.repeat(np.repeat(palette[idx], ts, axis=0), ts, axis=1)
    noise = draw(st.integers(0, 3))
    if noise:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        img = img + rng.integers(-noise, noise + 1, size=img.shape) * (rng.random(img.shape[:2]) < 0.5)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8), ts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=palette_images(),
    method=st.sampled_from(METHODS),
    metric=st.sampled_from(METRICS),
    tau=st.one_of(st.sampled_from(TAUS), st.floats(0.0, 0.5, allow_nan=False), st.integers(0, 20).map(lambda k: k / 255)),
)
def test_kernel_matches_oracle_on_hypothesis_palettes(case, method, metric, tau):
    image, ts = case
    assert_same(image, ts, method, metric, tau)


# ------------------------------------------------- 2. tau = 0 is lossless

@pytest.mark.parametrize("patch,merge", [(1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (16, 2)])
def test_gather_scatter_match_oracle_and_round_trip(patch, merge):
    """gather rows follow (mh, mw, C, py, px); scatter of all tokens rebuilds the image."""
    rng = np.random.default_rng(patch * 10 + merge)
    ts = patch * merge
    for th, tw in ((1, 1), (2, 3), (4, 4)):
        image = rng.integers(0, 256, size=(th * ts, tw * ts, 3), dtype=np.uint8)
        every = np.arange(th * tw, dtype=np.int32)
        pixels = tokens.gather_tokens(image, every, patch, merge)
        assert pixels.shape == (th * tw, merge * merge * 3 * patch * patch) and pixels.dtype == np.uint8
        np.testing.assert_array_equal(pixels, oracle.gather_tokens(image, every, patch, merge))
        np.testing.assert_array_equal(tokens.scatter_tokens(pixels, every, th * ts, tw * ts, patch, merge), image)
        # A subset with the oracle's layout: scatter rebuilds the reconstruction.
        ref = np.where(rng.random(th * tw) < 0.5, 0, every).astype(np.int32)
        kept, index_map = oracle.layout(ref)
        sub = tokens.gather_tokens(image, kept, patch, merge)
        np.testing.assert_array_equal(sub, oracle.gather_tokens(image, kept, patch, merge))
        rebuilt = tokens.scatter_tokens(sub, index_map, th * ts, tw * ts, patch, merge)
        np.testing.assert_array_equal(rebuilt, oracle.reconstruct(image, ref.reshape(th, tw), ts))


@pytest.mark.parametrize("method", ["pred_2d", "raster", "serpentine"])
def test_layout_matches_oracle(method):
    """kept_index ascending; index_map[p] is the rank of ref[p] among kept tokens."""
    for seed in (3, 4):
        for image, ts in random_cases(seed):
            for tau in (0.0, 0.1):
                _, ref = coder.prune_tokens(image, ts, method, "max", tau)
                # Dirty the allocator so uninitialised reads show up.
                np.full(ref.size * 4, 7_777_777, dtype=np.int32)
                kept, index_map = tokens.layout(ref.ravel())
                okept, omap = oracle.layout(ref.ravel())
                np.testing.assert_array_equal(kept, okept)
                np.testing.assert_array_equal(index_map, omap)


def test_layout_minimal_serpentine_forward_ref():
    """Minimal case of the layout bug: 2x2 tokens [[A, B], [C, C]], serpentine, tau 0.

    Row 1 is scanned right-to-left: (1,1) is kept, (1,0) drops onto it, so
    ref = [0, 1, 3, 3] and index_map must be [0, 1, 2, 2].
    """
    ref = np.array([0, 1, 3, 3], dtype=np.int32)
    image = uniform_tokens([[0, 50], [100, 100]], 2)
    np.testing.assert_array_equal(coder.prune_tokens(image, 2, "serpentine")[1].ravel(), ref)
    results = []
    for _ in range(5):
        np.full(64, 7_777_777, dtype=np.int32)
        results.append(tokens.layout(ref)[1].tolist())
    assert all(r == [0, 1, 2, 2] for r in results), results


@pytest.mark.parametrize("method", ["pred_2d", "raster", "serpentine"])
def test_tau0_is_lossless_through_layout_gather_scatter(method):
    """At tau=0, scatter(gather(kept), index_map) reproduces the image bit for bit."""
    for seed in (8, 9):
        for image, ts in random_cases(seed):
            for patch, merge in ((ts, 1), (1, ts)):
                for metric in METRICS:
                    _, ref = coder.prune_tokens(image, ts, method, metric, 0.0)
                    np.full(ref.size * 4, 7_777_777, dtype=np.int32)
                    kept, index_map = tokens.layout(ref.ravel())
                    pixels = tokens.gather_tokens(image, kept, patch, merge)
                    rebuilt = tokens.scatter_tokens(pixels, index_map, image.shape[0], image.shape[1], patch, merge)
                    np.testing.assert_array_equal(rebuilt, image)


@pytest.mark.parametrize("method", METHODS)
def test_tau0_reconstruction_is_exact(method):
    """Independent of layout: at tau=0 every token's ref holds byte-identical pixels."""
    for image, ts in random_cases(12):
        for metric in METRICS:
            _, ref = coder.prune_tokens(image, ts, method, metric, 0.0)
            np.testing.assert_array_equal(oracle.reconstruct(image, ref, ts), image)


# ------------------------------------------------- 3. bounded error at tau > 0

def _ramps(tw=40):
    """Ramps of +1 grey level per token (flat tokens and with +-1 pixel noise)."""
    j = np.arange(tw)
    rng = np.random.default_rng(21)
    horizontal = uniform_tokens(np.tile(60 + j, (3, 1)), 4)
    vertical = uniform_tokens(np.tile(60 + j, (3, 1)).T, 4)
    diagonal = uniform_tokens(60 + np.add.outer(np.arange(12), np.arange(14)), 4)
    noisy = np.clip(horizontal.astype(int) + rng.integers(-1, 2, horizontal.shape), 0, 255).astype(np.uint8)
    return {"horizontal": horizontal, "vertical": vertical, "diagonal": diagonal, "noisy": noisy}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["horizontal", "vertical", "diagonal", "noisy"])
def test_anchored_error_stays_within_tau_on_ramps(name, method, metric):
    """Each token differs from its neighbour by 1/255, tau = 2/255: a sliding comparison
    would chain the whole ramp into one token (error 39/255); anchoring bounds every
    token's reconstruction error by tau, so several tokens must be kept."""
    image = _ramps()[name]
    tau = 2 / 255
    keep, ref = assert_same(image, 4, method, metric, tau)
    errs = recon_errors(image, ref, 4, metric)
    assert errs.max() <= tau, (errs.max(), tau)
    span = int(image.max()) - int(image.min())
    # A kept flat token at value v covers at most v-2..v+2 (5 levels, +-1 noise included).
    assert keep.sum() >= math.ceil((span + 1 - 2) / 7)
    assert keep.sum() > 1


@pytest.mark.parametrize("tau", [0.02, 0.05, 0.1, 0.3])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("method", METHODS)
def test_every_token_reconstructs_within_tau_on_random_grids(method, metric, tau):
    """The kernel's own refs always point to a kept token within tau of the original."""
    for image, ts in random_cases(31):
        keep, ref = coder.prune_tokens(image, ts, method, metric, tau)
        flat = ref.ravel()
        assert np.all(keep.ravel()[flat]), "ref must point to kept tokens"
        assert recon_errors(image, ref, ts, metric).max() <= tau


# ------------------------------------------------- 4. structural facts from the spec

@pytest.mark.parametrize("tau", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("method", METHODS)
def test_constant_image_keeps_exactly_one_token(method, metric, tau):
    for th, tw, ts in ((1, 1, 2), (1, 6, 4), (6, 1, 4), (5, 7, 2), (3, 3, 32)):
        for value in (255, 0, 77):
            keep, ref = coder.prune_tokens(np.full((th * ts, tw * ts, 3), value, np.uint8), ts, method, metric, tau)
            assert keep.sum() == 1 and keep[0, 0]
            assert np.all(ref == 0)


@pytest.mark.parametrize("tau", [0.0, 0.05])
@pytest.mark.parametrize("tw", [1, 2, 5, 6])
def test_vertical_stripes_keep_first_row_with_pred_2d(tw, tau):
    """Columns alternate colours, constant downwards (colours 100 apart, far beyond tau).

    pred_2d: row 0 all kept (each differs from its left); below, C == A and C != B,
    so B (the token above, identical) predicts and everything drops.
    raster: each row-start is predicted by the previous row's last column, which has
    the same colour only when tw is odd. serpentine: each row-start is directly below
    the previous row's last scanned token, so it always drops.
    """
    th = 4
    cols = np.where(np.arange(tw) % 2 == 0, 50, 150)
    image = uniform_tokens(np.tile(cols, (th, 1)), 2)
    for metric in METRICS:
        keep, _ = assert_same(image, 2, "pred_2d", metric, tau)
        assert keep[0].all() and not keep[1:].any()
        keep, _ = assert_same(image, 2, "serpentine", metric, tau)
        assert keep.sum() == th * tw - (th - 1)
        keep, _ = assert_same(image, 2, "raster", metric, tau)
        if tw == 1:
            assert keep.sum() == 1
        elif tw % 2 == 0:
            assert keep.all()
        else:
            assert keep.sum() == th * tw - (th - 1)


@pytest.mark.parametrize("tau", [0.0, 0.05])
def test_horizontal_stripes_keep_one_token_per_row(tau):
    """Rows alternate colours: pred_2d and raster keep column 0; serpentine keeps each
    row's first scanned token (column 0 on even rows, the last column on odd rows)."""
    th, tw = 5, 6
    image = uniform_tokens(np.tile(np.where(np.arange(th) % 2 == 0, 30, 200)[:, None], (1, tw)), 4)
    for metric in METRICS:
        for method in ("pred_2d", "raster"):
            keep, _ = assert_same(image, 4, method, metric, tau)
            expected = np.zeros((th, tw), bool)
            expected[:, 0] = True
            np.testing.assert_array_equal(keep, expected)
        keep, _ = assert_same(image, 4, "serpentine", metric, tau)
        expected = np.zeros((th, tw), bool)
        expected[0::2, 0] = True
        expected[1::2, -1] = True
        np.testing.assert_array_equal(keep, expected)


def test_checkerboard_keeps_every_token_with_pred_2d():
    """C has X's colour and differs from A, so the edge rule picks A, which differs from X."""
    for th, tw in ((1, 5), (5, 1), (4, 4), (5, 7)):
        image = uniform_tokens(np.where(np.add.outer(np.arange(th), np.arange(tw)) % 2 == 0, 0, 255), 2)
        for metric in METRICS:
            keep, _ = assert_same(image, 2, "pred_2d", metric, 0.1)
            assert keep.all()


@pytest.mark.parametrize("metric", METRICS)
def test_stripes_merge_exactly_at_their_error(metric):
    """Two colours k levels apart: tau == their error merges everything; one ulp less does not."""
    ts, k = 4, 3
    n = ts * ts * 3
    image = uniform_tokens(np.tile(np.where(np.arange(6) % 2 == 0, 100, 100 + k), (3, 1)), ts)
    gap = coder.token_error(metric, {"max": k, "mae": k * n, "rmse": k * k * n}[metric], n)
    assert gap == oracle.error(metric, np.zeros(n, np.int64), np.full(n, k, np.int64))
    for method in METHODS:
        keep, _ = assert_same(image, ts, method, metric, gap)
        assert keep.sum() == 1
    keep, _ = assert_same(image, ts, "pred_2d", metric, float(np.nextafter(gap, 0.0)))
    assert keep[0].all() and not keep[1:].any()


# ------------------------------------------------- error_limit / token_error

N_VALUES = (3, 12, 48, 27, 2352, 3072)


def _limit_is_largest(metric, tau, n):
    limit = coder.error_limit(metric, tau, n)
    top = {"max": 255, "mae": 255 * n, "rmse": 65025 * n}[metric]
    assert isinstance(limit, int) and 0 <= limit <= top
    assert coder.token_error(metric, limit, n) <= tau, (metric, tau, n, limit)
    if limit < top:
        assert coder.token_error(metric, limit + 1, n) > tau, (metric, tau, n, limit)


@pytest.mark.parametrize("n", N_VALUES)
@pytest.mark.parametrize("metric", METRICS)
def test_error_limit_is_largest_statistic_within_tau(metric, n):
    rng = np.random.default_rng(n)
    top = {"max": 255, "mae": 255 * n, "rmse": 65025 * n}[metric]
    taus = [k / 255 for k in range(256)] + [0.0, 1e-9, 0.02, 0.05, 0.1, 0.3, 0.999999, 1.0, 1.5, 1e6]
    taus += list(rng.random(200))
    values = sorted(set([0, 1, 2, top - 1, top] + list(rng.integers(0, top + 1, size=200))))
    for v in values:
        e = coder.token_error(metric, int(v), n)
        taus += [e, float(np.nextafter(e, 0.0)), float(np.nextafter(e, 2.0))]
    for tau in taus:
        _limit_is_largest(metric, float(tau), n)


@pytest.mark.parametrize("metric", METRICS)
def test_token_error_equals_oracle_error_on_token_pairs(metric):
    """token_error(statistic) is the spec's float formula, bit for bit."""
    rng = np.random.default_rng(3)
    for ts in (1, 2, 4, 28, 32):
        n = ts * ts * 3
        for _ in range(30):
            a = rng.integers(0, 256, n)
            b = np.clip(a + rng.integers(-rng.integers(0, 256), rng.integers(0, 256) + 1, n), 0, 255)
            d = a - b
            stat = {"max": int(np.abs(d).max()), "mae": int(np.abs(d).sum()), "rmse": int((d * d).sum())}[metric]
            assert coder.token_error(metric, stat, n) == oracle.error(metric, a, b)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("tau", [1.0, 2.0, 1e6])
def test_tau_of_one_or_more_merges_everything(metric, tau):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    for method in METHODS:
        keep, _ = assert_same(image, 4, method, metric, tau)
        assert keep.sum() == 1


@pytest.mark.parametrize("metric,tau", [
    ("rmse", 1e160),
    ("mae", 1e307),
    ("max", 1e307),
    ("rmse", 1e150),
])
def test_huge_finite_tau_is_accepted(metric, tau):
    """tau is any finite number >= 0; a huge one must behave like tau = 1, not crash."""
    n = 48
    assert coder.error_limit(metric, tau, n) == {"max": 255, "mae": 255 * n, "rmse": 65025 * n}[metric]
    image = np.random.default_rng(0).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    keep, _ = coder.prune_tokens(image, 4, "pred_2d", metric, tau)
    assert keep.sum() == 1


# ------------------------------------------------- 5. input validation

GOOD = np.zeros((8, 12, 3), np.uint8)


@pytest.mark.parametrize("image,ts,match", [
    (GOOD.astype(np.float32), 4, "uint8"),
    (GOOD.astype(np.uint16), 4, "uint8"),
    (GOOD.astype(np.int8), 4, "uint8"),
    (GOOD[..., 0], 4, r"\(H, W, 3\)"),
    (np.zeros((8, 12, 4), np.uint8), 4, r"\(H, W, 3\)"),
    (np.zeros((8, 12, 1), np.uint8), 4, r"\(H, W, 3\)"),
    (np.zeros((1, 8, 12, 3), np.uint8), 4, r"\(H, W, 3\)"),
    (GOOD.tolist(), 4, "uint8"),
    (np.zeros((10, 12, 3), np.uint8), 4, "multiple of token_size 4"),
    (np.zeros((8, 10, 3), np.uint8), 4, "multiple of token_size 4"),
    (np.zeros((0, 12, 3), np.uint8), 4, "positive multiple"),
    (np.zeros((8, 0, 3), np.uint8), 4, "positive multiple"),
    (GOOD, 0, "token_size"),
    (GOOD, -4, "token_size"),
])
def test_bad_images_are_rejected_with_value_error(image, ts, match):
    with pytest.raises(ValueError, match=match):
        coder.prune_tokens(image, ts)


@pytest.mark.parametrize("tau", [-0.01, -1.0, float("nan"), float("inf"), float("-inf")])
def test_bad_tau_is_rejected(tau):
    with pytest.raises(ValueError, match="tau must be a finite number >= 0"):
        coder.prune_tokens(GOOD, 4, tau=tau)


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "zigzag"}, "unknown method 'zigzag'.*pred_2d, raster, serpentine"),
    ({"method": "PRED_2D"}, "unknown method"),
    ({"metric": "mse"}, "unknown metric 'mse'.*max, mae, rmse"),
    ({"metric": ""}, "unknown metric"),
])
def test_unknown_method_or_metric_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        coder.prune_tokens(GOOD, 4, **kwargs)


def test_gather_and_scatter_reject_mismatched_sizes():
    with pytest.raises(ValueError, match="multiple of token_size"):
        tokens.gather_tokens(np.zeros((10, 12, 3), np.uint8), np.array([0], np.int32), 2, 2)
    pixels = np.zeros((2, 48), np.uint8)
    with pytest.raises(ValueError, match="index_map has 5 entries, expected 6"):
        tokens.scatter_tokens(pixels, np.zeros(5, np.int32), 8, 12, 2, 2)
    with pytest.raises(ValueError, match="outside pixels"):
        tokens.scatter_tokens(pixels, np.array([0, 1, 2, 0, 0, 0], np.int32), 8, 12, 2, 2)
    with pytest.raises(ValueError, match="outside pixels"):
        tokens.scatter_tokens(pixels, np.array([0, -1, 0, 0, 0, 0], np.int32), 8, 12, 2, 2)


# ------------------------------------------------- 6. real samples

SAMPLES = sorted((ROOT / "samples").glob("*.png"))


@pytest.mark.parametrize("path", SAMPLES or [None], ids=[p.name for p in SAMPLES] or ["no-samples"])
def test_kernel_matches_oracle_on_sample_images(path):
    """pred_2d on real renders (cropped to multiples of 32) agrees with the oracle."""
    if path is None:
        pytest.skip("no samples/*.png yet")
    from PIL import Image

    with Image.open(path) as im:
        image = np.asarray(im.convert("RGB"))
    h, w = (image.shape[0] // 32) * 32, (image.shape[1] // 32) * 32
    if h == 0 or w == 0:
        pytest.skip(f"{path.name} is smaller than one 32x32 token")
    image = np.ascontiguousarray(image[:h, :w])
    for tau in (0.0, 0.05):
        _, ref = assert_same(image, 32, "pred_2d", "max", tau)
        assert recon_errors(image, ref, 32, "max").max() <= tau
    kept, index_map = tokens.layout(coder.prune_tokens(image, 32)[1].ravel())
    pixels = tokens.gather_tokens(image, kept, 16, 2)
    np.testing.assert_array_equal(tokens.scatter_tokens(pixels, index_map, h, w, 16, 2), image)


def test_kernels_see_read_only_inputs_whoever_owns_the_buffer():
    """Writable API arrays and read-only decoded/Arrow buffers reach the kernels as one signature.

    Numba types a writable and a read-only array differently, so without the
    read-only views `pixelprune warmup` would have to compile both variants.
    """
    rng = np.random.default_rng(12)
    image = palette_grid(rng, 3, 4, 4, 3, noise=2, noisy_share=0.5)
    frozen = image.copy()
    frozen.flags.writeable = False
    for array in (image, frozen):
        for method in METHODS:
            for metric, tau in (("max", 0.0), ("max", 0.05), ("mae", 0.05)):
                ref = coder.code_refs(array, 4, method, metric, tau)
        kept, index_map = tokens.layout(ref)
        pixels = tokens.gather_tokens(array, kept, 2, 2)
        tokens.scatter_tokens(pixels, index_map, 12, 16, 2, 2)
    inputs = {coder._exact_neighbours: 1, coder._neighbour_max_diffs: 1, coder._code_pred_2d: 1, coder._code_scan: 1,
              tokens._layout: 1, tokens._gather: 2, tokens._scatter: 2}  # leading arguments only read
    for kernel, n_inputs in inputs.items():
        assert kernel.signatures, kernel
        for signature in kernel.signatures:
            assert not any(arg.mutable for arg in signature[:n_inputs]), (kernel, signature)
