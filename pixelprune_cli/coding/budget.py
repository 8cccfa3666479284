"""Fixed token budgets: the smallest tau, up to a cap, whose coding keeps at most N tokens.

Candidates. The coder never uses tau itself, only `error_limit(metric, tau, n)`,
the largest integer statistic a token may differ by (max|d|, sum|d| or sum d^2).
So every tau in [0, max_tau] codes exactly like one integer limit L in
0..error_limit(max_tau), and the smallest tau with limit L is token_error(L).
The search runs over these integer limits: the candidate set is complete, no
coding reachable under max_tau is skipped, whatever anchoring compares a token
with. (Differences between neighbouring tokens would be a smaller set, but an
incomplete one: with tau > 0 a token is compared with its predictor's *anchor*,
so the threshold that flips a decision is often no neighbour difference.)
Bisection costs about log2(L_max) codings: at max_tau 0.1 with 32-pixel tokens,
5 for `max`, 17 for `mae`, 21 for `rmse`; a coding takes about a millisecond.

Non-monotonicity. With anchoring the kept count need not fall as tau grows.
The search keeps two probed limits, `lo` (keeps more than N) and `hi` (keeps
at most N), starting from 0 and L_max, and halves the gap until they are
adjacent. Hence the returned tau was coded and meets the budget (it is never
inferred), it is the smallest probed tau that meets it (`hi` only goes down),
and the next smaller limit was probed and misses it. What it cannot promise
without a linear scan: that no unprobed smaller tau also meets the budget, and,
when max_tau misses it, that no smaller tau meets it. Such an image is coded at
max_tau and flagged `over_budget`.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field, replace
from typing import TypedDict

import numpy as np

from pixelprune_cli.coding.coder import code_refs, error_limit, token_error
from pixelprune_cli.errors import ConfigError


class BudgetReport(TypedDict):
    """How a run's images fit a token budget (stats --budget): the summary's JSON "budget"."""

    images: int
    budget: int | None  # None only before any image was added
    fit_at_tau_0: int
    fit_within_max_tau: int
    over_budget: int
    tau_needed: dict[str, float | None]  # "p50", "p90", ...: None is above max_tau
    codings_mean: float
    codings_max: int


@dataclass(frozen=True)
class BudgetResult:
    """The coding chosen for a budget, and the probes that chose it.

    ref: flat int32, as `coder.code_refs` returns it, coded at `tau`.
    examined / examined_kept: every tau coded, in probe order, and its kept count.
    """

    ref: np.ndarray
    tau: float
    limit: int
    kept: int
    budget: int
    over_budget: bool
    examined: list[float] = field(default_factory=list)
    examined_kept: list[int] = field(default_factory=list)

    def without_ref(self) -> BudgetResult:
        """The same result without the ref array: what to keep per image for `budget_report`."""
        return replace(self, ref=np.empty(0, dtype=np.int32))

    @property
    def kept_at_zero(self) -> int:
        """Kept count of the lossless coding (always the first probe)."""
        return self.examined_kept[0]


def tau_for_limit(metric: str, limit: int, n: int, max_tau: float = 1.0) -> float:
    """Smallest tau whose `error_limit` is `limit`, nudged to a float32 value when that is safe.

    The output's `tau` column is float32. Rounding token_error(limit) up to the
    next float32 keeps the stored value's limit equal to `limit`, so recoding
    at the stored tau gives the same tokens and restore errors stay <= it.
    """
    exact = token_error(metric, limit, n)
    single = np.float32(exact)
    if float(single) < exact:
        single = np.nextafter(single, np.float32(np.inf))
    tau = float(single)
    if tau > max_tau or error_limit(metric, tau, n) != limit:
        return exact
    return tau


def candidate_limits(metric: str, max_tau: float, n: int) -> int:
    """Number of candidate limits (0..L_max) for values of n per token."""
    return error_limit(metric, max_tau, n) + 1


def code_with_budget(resized: np.ndarray, token_size: int, method: str, metric: str,
                     budget: int, max_tau: float = 0.1) -> BudgetResult:
    """Code `resized` (H, W, 3) uint8 with the smallest probed tau <= max_tau keeping <= budget tokens.

    Raises ConfigError (a ValueError) for budget < 1 or a max_tau that is not a finite number >= 0.
    """
    if budget < 1:
        raise ConfigError(f"budget must be at least 1 token, got {budget}")
    if not (max_tau >= 0.0 and math.isfinite(max_tau)):
        raise ConfigError(f"max_tau must be a finite number >= 0, got {max_tau}")
    n = token_size * token_size * 3
    examined: list[float] = []
    examined_kept: list[int] = []
    codings: dict[int, tuple[np.ndarray, int, float]] = {}

    def probe(limit: int) -> int:
        tau = tau_for_limit(metric, limit, n, max_tau)
        ref = code_refs(resized, token_size, method, metric, tau)
        kept = int(np.count_nonzero(ref == np.arange(ref.shape[0], dtype=np.int32)))
        examined.append(tau)
        examined_kept.append(kept)
        codings[limit] = (ref, kept, tau)
        return kept

    def result(limit: int, over: bool) -> BudgetResult:
        ref, kept, tau = codings[limit]
        return BudgetResult(ref, max_tau if over else tau, limit, kept, budget, over, examined, examined_kept)

    top = error_limit(metric, max_tau, n)
    if probe(0) <= budget:
        return result(0, False)
    if top == 0 or probe(top) > budget:
        return result(top, True)
    lo, hi = 0, top  # lo probed and over budget, hi probed and within it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid) <= budget:
            codings.pop(hi)  # only the current hi's coding can still be returned
            hi = mid
        else:
            codings.pop(mid)
            lo = mid
    return result(hi, False)


class BudgetTally:
    """What `stats --budget N` reports, gathered image by image in 8 bytes per image (a run can have millions)."""

    def __init__(self):
        self.needed = array("d")  # tau needed per image; inf when over budget
        self.images = self.fit_at_zero = self.fit_within = self.codings_sum = self.codings_max = 0
        self.budget = None

    def add(self, result: BudgetResult) -> None:
        self.images += 1
        self.budget = result.budget
        self.needed.append(math.inf if result.over_budget else result.tau)
        self.fit_at_zero += result.kept_at_zero <= result.budget
        self.fit_within += not result.over_budget
        self.codings_sum += len(result.examined)
        self.codings_max = max(self.codings_max, len(result.examined))

    def report(self, quantiles=(0.5, 0.9, 0.99, 1.0)) -> BudgetReport:
        """Images fitting at tau=0, within max_tau, and quantiles of the tau needed.

        Quantiles count over-budget images as needing more than max_tau; a
        quantile that falls among them is None ("above max_tau").
        """
        needed = np.frombuffer(self.needed, dtype=np.float64) if self.images else np.empty(0)
        tau_needed: dict[str, float | None] = {}
        report: BudgetReport = {
            "images": self.images,
            "budget": self.budget,
            "fit_at_tau_0": int(self.fit_at_zero),
            "fit_within_max_tau": int(self.fit_within),
            "over_budget": self.images - int(self.fit_within),
            "tau_needed": tau_needed,
            "codings_mean": self.codings_sum / self.images if self.images else 0.0,
            "codings_max": int(self.codings_max),
        }
        for q in quantiles:
            value = float(np.quantile(needed, q, method="inverted_cdf")) if self.images else None
            tau_needed[f"p{q * 100:g}"] = None if value is None or math.isinf(value) else value
        return report


def budget_report(results: list[BudgetResult], quantiles=(0.5, 0.9, 0.99, 1.0)) -> BudgetReport:
    """BudgetTally.report over a list of search results."""
    tally = BudgetTally()
    for result in results:
        tally.add(result)
    return tally.report(quantiles)
