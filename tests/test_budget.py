"""Token budgets: the search over integer limits (budget.code_with_budget) and its report.

Images are random token grids whose tokens carry noise of varied strength (so
each tau keeps a different number of tokens) and the samples/ images resized
as the qwen3-vl processor does. Restore errors are measured in plain numpy.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pixelprune_cli.coding import coder, tokens
from pixelprune_cli.coding.backends import resize_for_model
from pixelprune_cli.coding.budget import BudgetResult, budget_report, candidate_limits, code_with_budget, tau_for_limit
from pixelprune_cli.coding.preprocess import decode_image
from pixelprune_cli.coding.presets import PRESETS

from conftest import SAMPLE_IMAGES, token_errors

PRESET = PRESETS["qwen3-vl"]
TS = PRESET.token_size
N_VALUES = TS * TS * 3
METHODS = ("pred_2d", "raster", "serpentine")
METRICS = ("max", "mae", "rmse")
FRACTIONS = (1.0, 0.95, 0.85, 0.6, 0.3)  # budgets as fractions of the lossless kept count


def noisy_tokens(seed: int, th: int = 8, tw: int = 10) -> np.ndarray:
    """(th*TS, tw*TS, 3) uint8: a few token colours, each token with noise of its own amplitude (0..40).

    Small amplitudes put pairs of same-colour tokens within reach of the `max`
    limits below tau 0.1 (25 levels); large ones keep some tokens at any tau.
    """
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 216, size=(3, 3))
    base = colours[rng.integers(0, 3, size=(th, tw))]
    amplitude = rng.choice(np.array([0, 1, 2, 4, 6, 9, 12, 20, 40]), size=(th, tw))
    noise = rng.integers(-40, 41, size=(th, tw, TS, TS, 3)) * amplitude[..., None, None, None] // 40
    tokens = np.clip(base[:, :, None, None, :] + noise, 0, 255)
    return np.ascontiguousarray(tokens.transpose(0, 2, 1, 3, 4).reshape(th * TS, tw * TS, 3).astype(np.uint8))


def sample_images() -> dict[str, np.ndarray]:
    return {p.name: resize_for_model(decode_image(p.read_bytes()), PRESET) for p in SAMPLE_IMAGES}


SAMPLES = sample_images()
IMAGES = {**{f"random{seed}": noisy_tokens(seed) for seed in range(3)}, **SAMPLES}


def kept_count(ref: np.ndarray) -> int:
    return int(np.count_nonzero(ref == np.arange(ref.shape[0])))


def lossless_kept(image: np.ndarray, method: str, metric: str) -> int:
    return kept_count(coder.code_refs(image, TS, method, metric, 0.0))


def cases():
    """(name, method, metric, fraction): random images with every method and metric, samples with two each."""
    combos = [(m, e) for m in METHODS for e in METRICS]
    for k, name in enumerate(IMAGES):
        chosen = combos if name.startswith("random") else {combos[k % len(combos)], ("pred_2d", METRICS[k % 3])}
        for method, metric in chosen:
            for fraction in FRACTIONS:
                yield name, method, metric, fraction


def restore(image: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """What a reader rebuilds: layout, gather the kept tokens, scatter them back."""
    kept_index, index_map = tokens.layout(ref)
    pixels = tokens.gather_tokens(image, kept_index, PRESET.patch_size, PRESET.merge_size)
    return tokens.scatter_tokens(pixels, index_map, image.shape[0], image.shape[1], PRESET.patch_size, PRESET.merge_size)


@pytest.fixture(scope="module")
def searches():
    """Every case searched once: {(name, method, metric, fraction): (budget, BudgetResult)}."""
    found = {}
    for name, method, metric, fraction in cases():
        image = IMAGES[name]
        budget = max(1, int(lossless_kept(image, method, metric) * fraction))
        found[name, method, metric, fraction] = budget, code_with_budget(image, TS, method, metric, budget, 0.1)
    return found


def test_kept_count_is_within_budget_whenever_max_tau_reaches_it(searches):
    searched = {metric: 0 for metric in METRICS}
    for (name, method, metric, _), (budget, result) in searches.items():
        at_max = kept_count(coder.code_refs(IMAGES[name], TS, method, metric, 0.1))
        assert result.kept == kept_count(result.ref)
        if at_max <= budget:
            assert not result.over_budget, name
            assert result.kept <= budget, (name, method, metric, budget)
            assert result.tau <= 0.1
            searched[metric] += result.tau > 0
    assert min(searched.values()) >= 4, searched  # the cases exercise the search for every metric


def test_tau_found_is_the_smallest_examined_candidate_meeting_the_budget(searches):
    for (name, *_), (budget, result) in searches.items():
        if result.over_budget:
            continue
        meeting = [tau for tau, kept in zip(result.examined, result.examined_kept) if kept <= budget]
        assert result.tau == min(meeting), name
        assert result.kept == result.examined_kept[result.examined.index(result.tau)]


def test_limit_just_below_the_found_one_was_examined_and_misses_the_budget(searches):
    """The search stops at a probed boundary: tau found meets the budget, the next smaller limit does not."""
    for (name, _, metric, _), (budget, result) in searches.items():
        if result.over_budget or result.limit == 0:
            continue
        below = tau_for_limit(metric, result.limit - 1, N_VALUES, 0.1)
        assert below in result.examined, name
        assert result.examined_kept[result.examined.index(below)] > budget


def test_ref_is_the_coding_at_the_tau_found(searches):
    for (name, method, metric, _), (_, result) in searches.items():
        again = coder.code_refs(IMAGES[name], TS, method, metric, result.tau)
        assert np.array_equal(again, result.ref), name


def test_restore_stays_within_the_tau_found_also_as_stored_in_float32(searches):
    for (name, _, metric, _), (_, result) in searches.items():
        image = IMAGES[name]
        errors = token_errors(image, restore(image, result.ref), TS, metric)
        assert errors.max() <= result.tau, (name, metric, errors.max(), result.tau)
        assert errors.max() <= float(np.float32(result.tau)), name


def test_tau_for_limit_is_the_smallest_tau_with_that_limit_and_survives_float32():
    for metric in METRICS:
        top = coder.error_limit(metric, 0.1, N_VALUES)
        for limit in sorted({0, 1, 2, 3, top // 3, top // 2, top - 1, top}):
            tau = tau_for_limit(metric, limit, N_VALUES, 0.1)
            assert coder.error_limit(metric, tau, N_VALUES) == limit
            assert coder.error_limit(metric, float(np.float32(tau)), N_VALUES) == limit
            assert tau >= coder.token_error(metric, limit, N_VALUES)
            if limit > 0:  # nothing smaller gives this limit: the previous error gives the previous limit
                assert coder.error_limit(metric, coder.token_error(metric, limit - 1, N_VALUES), N_VALUES) == limit - 1


def test_number_of_codings_is_logarithmic_in_the_candidates(searches):
    for (name, _, metric, _), (_, result) in searches.items():
        candidates = candidate_limits(metric, 0.1, N_VALUES)
        assert len(result.examined) <= 2 * math.ceil(math.log2(candidates)) + 2, (name, metric)
        assert len(result.examined) <= math.ceil(math.log2(candidates)) + 2  # lossless, max_tau, then halving
        assert len(set(result.examined)) == len(result.examined)  # no tau coded twice


def test_search_equals_the_smallest_meeting_limit_of_a_full_scan_when_kept_falls_monotonically():
    """For the `max` metric every limit (0..25) can be coded: compare with the exhaustive answer."""
    compared = 0
    for name, image in IMAGES.items():
        counts = [kept_count(coder.code_refs(image, TS, "pred_2d", "max", tau_for_limit("max", limit, N_VALUES)))
                  for limit in range(candidate_limits("max", 0.1, N_VALUES))]
        if any(b > a for a, b in itertools.pairwise(counts)):
            continue  # not monotone here; the boundary rule is checked by the tests above
        for budget in sorted(set(counts)):
            result = code_with_budget(image, TS, "pred_2d", "max", budget, 0.1)
            assert result.limit == next(limit for limit, kept in enumerate(counts) if kept <= budget), name
            compared += 1
    assert compared >= 10


def test_budget_at_or_above_the_lossless_count_codes_once_at_tau_zero():
    image = IMAGES["random0"]
    result = code_with_budget(image, TS, "pred_2d", "max", lossless_kept(image, "pred_2d", "max"), 0.1)
    assert (result.tau, result.limit, result.over_budget, result.examined) == (0.0, 0, False, [0.0])


def test_unreachable_budget_is_coded_at_max_tau_and_flagged_over_budget():
    image = np.random.default_rng(7).integers(0, 256, size=(4 * TS, 5 * TS, 3), dtype=np.uint8)
    result = code_with_budget(image, TS, "pred_2d", "max", 1, 0.1)
    assert result.over_budget
    assert result.tau == 0.1
    assert result.kept == 20
    assert np.array_equal(result.ref, coder.code_refs(image, TS, "pred_2d", "max", 0.1))
    assert len(result.examined) == 2  # lossless and max_tau, nothing in between


def test_max_tau_zero_only_codes_losslessly():
    image = IMAGES["random1"]
    result = code_with_budget(image, TS, "pred_2d", "mae", 1, 0.0)
    assert result.over_budget and result.examined == [0.0] and result.tau == 0.0


@pytest.mark.parametrize("budget, max_tau", [(0, 0.1), (-3, 0.1), (10, -0.1), (10, float("nan")), (10, float("inf"))])
def test_bad_budget_or_max_tau_is_refused(budget, max_tau):
    with pytest.raises(ValueError):
        code_with_budget(IMAGES["random0"], TS, "pred_2d", "max", budget, max_tau)


def _result(tau, kept_at_zero, over=False, budget=100, codings=3):
    examined = [0.0] + [tau] * (codings - 1)
    return BudgetResult(np.zeros(1, np.int32), tau, 0, 0, budget, over, examined, [kept_at_zero] + [0] * (codings - 1))


def test_budget_report_counts_fits_and_gives_tau_quantiles_with_over_budget_above_max_tau():
    results = [_result(0.0, 80, codings=1), _result(0.0, 100, codings=1), _result(0.01, 150), _result(0.02, 200),
               _result(0.1, 900, over=True, codings=2)]
    report = budget_report(results)
    assert report["images"] == 5 and report["budget"] == 100
    assert report["fit_at_tau_0"] == 2
    assert report["fit_within_max_tau"] == 4
    assert report["over_budget"] == 1
    assert report["tau_needed"]["p50"] == 0.01
    assert report["tau_needed"]["p90"] is None  # falls on the over-budget image: above max_tau
    assert report["codings_max"] == 3 and report["codings_mean"] == pytest.approx(2.0)


def test_budget_report_of_real_searches_matches_their_results(searches):
    results = [result.without_ref() for _, result in searches.values()]
    assert all(r.ref.size == 0 for r in results)
    report = budget_report(results)
    assert report["over_budget"] == sum(r.over_budget for r in results)
    assert report["fit_at_tau_0"] == sum(r.tau == 0.0 for r in results)
