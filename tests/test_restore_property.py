"""Property-based: restore (layout -> gather -> scatter) of any coding stays within tau per token."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelprune_cli.coding import coder, tokens

from conftest import token_errors


@st.composite
def images(draw):
    """Random grids of patch x merge tokens: smooth ramps, palettes or noise, so all branches run."""
    patch, merge = draw(st.sampled_from([(1, 1), (1, 2), (2, 2), (3, 1), (4, 2)]))
    ts = patch * merge
    th, tw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["ramp", "palette", "noise"]))
    if kind == "ramp":
        step = draw(st.integers(0, 4))
        base = (np.arange(tw)[None, :] + np.arange(th)[:, None]) * step
        grid = np.repeat(np.repeat(base, ts, 0), ts, 1)[..., None].repeat(3, -1)
        image = grid + rng.integers(0, 2, grid.shape)
    elif kind == "palette":
        palette = rng.integers(0, 256, (draw(st.integers(1, 3)), 3))
        grid = palette[rng.integers(0, len(palette), (th, tw))]
        image = np.repeat(np.repeat(grid, ts, 0), ts, 1)
    else:
        image = rng.integers(0, 256, (th * ts, tw * ts, 3))
    return np.clip(image, 0, 255).astype(np.uint8), patch, merge


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=images(), method=st.sampled_from(coder.METHODS), metric=st.sampled_from(coder.METRICS),
       tau=st.one_of(st.just(0.0), st.floats(0.0, 0.2, allow_nan=False)))
def test_restore_is_within_tau_of_every_token(case, method, metric, tau):
    image, patch, merge = case
    ts = patch * merge
    ref = coder.code_refs(image, ts, method, metric, tau)
    kept_index, index_map = tokens.layout(ref)
    pixels = tokens.gather_tokens(image, kept_index, patch, merge)
    restored = tokens.scatter_tokens(pixels, index_map, image.shape[0], image.shape[1], patch, merge)
    errors = token_errors(image, restored, ts, metric)
    assert (errors <= tau).all()
    assert (errors.ravel()[kept_index] == 0).all()  # kept tokens come back exactly
    if tau == 0.0:
        assert np.array_equal(restored, image)
