"""Statistics for an honest verdict: intervals, tests and corrections.

Every function here is pure: plain numbers in, plain Python floats out (never
numpy scalars, so results can cross the xdist wire and land in JSON as they
are). numpy and scipy are imported only by the functions that need them: the
summary's intervals and percentiles are plain Python, so a run without a
baseline comparison does not pay seconds for them.

The functions answer three kinds of question:

- *How sure are we of one number?* :func:`wilson_interval` for a pass rate,
  :func:`mean_and_interval` for the mean of a few judge samples,
  :func:`percentile` for latency.
- *Did something change between two runs?* :func:`mcnemar_exact` and
  :func:`wilcoxon_signed_rank` when the same cases ran twice (paired),
  :func:`fisher_exact_p` and :func:`welch_t_p` when they did not (unpaired),
  with :func:`paired_bootstrap_ci`, :func:`newcombe_interval` and
  :func:`welch_interval` for the size of the change.
- *How many of those changes are luck?* :func:`holm_adjust`, because testing
  every partition and metric at once gives chance many tries.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import importlib
import statistics
from typing import Any


class _LazyModule:
    """A module imported on first attribute access.

    The summary needs only Wilson intervals and percentiles (pure Python here);
    numpy and scipy cost about two seconds to import, paid only by the
    comparisons and judge intervals that use them.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


np: Any = _LazyModule("numpy")
_st: Any = _LazyModule("scipy.stats")

__all__ = [
    "fisher_exact_p",
    "holm_adjust",
    "mcnemar_exact",
    "mean_and_interval",
    "newcombe_interval",
    "paired_bootstrap_ci",
    "percentile",
    "welch_interval",
    "welch_t_p",
    "wilcoxon_signed_rank",
    "wilson_interval",
]

# Cap on the number of resampled values held in memory at once by the
# bootstrap (2000 resamples of a 5000-case partition would otherwise allocate
# 10 million indices in one go).
_BOOTSTRAP_CHUNK_ELEMENTS = 1_000_000


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(
            f"confidence={confidence!r} is outside (0, 1); pass a level such as 0.95"
        )


def _z(confidence: float) -> float:
    """The two-sided standard normal quantile for ``confidence`` (1.96 for 0.95)."""
    _check_confidence(confidence)
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _as_1d(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers, got shape {array.shape}")
    return array


def _paired_differences(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """``y - x`` as an array, checking that the two sides pair up."""
    xa, ya = _as_1d(x, "x"), _as_1d(y, "y")
    if xa.shape != ya.shape:
        raise ValueError(
            f"paired samples differ in length ({xa.size} and {ya.size}); "
            "pass the values of the same cases, in the same order, on both sides"
        )
    return ya - xa


# --------------------------------------------------------------------------
# How sure are we of one number?


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a pass rate of ``successes`` out of ``n``.

    The plain "rate ± 1.96 standard errors" interval breaks down exactly where
    evals live: small partitions and rates near 100%. It can leave [0, 1] and
    collapses to a single point at 10/10, claiming certainty from ten cases.
    Wilson's interval instead asks which true rates would make the observed
    count unsurprising; it stays inside [0, 1] and stays wide when ``n`` is
    small (8/10 gives about 0.49 to 0.94 at 95%).

    With no observations nothing is known: ``n == 0`` gives ``(0.0, 1.0)``.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    _check_confidence(confidence)
    if n == 0:
        return (0.0, 1.0)
    z = _z(confidence)
    rate = successes / n
    z2_n = z * z / n
    centre = (rate + z2_n / 2.0) / (1.0 + z2_n)
    half = z * math.sqrt(rate * (1.0 - rate) / n + z2_n / (4.0 * n)) / (1.0 + z2_n)
    # At 0/n and n/n the exact bounds are 0 and 1; round-off would miss them.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def mean_and_interval(
    values: Sequence[float], confidence: float = 0.95
) -> tuple[float, tuple[float, float] | None]:
    """Mean of ``values`` and a Student-t confidence interval for it.

    Used for a judge sampled ``k`` times on one output: the mean is the score,
    and the interval says how far the judge's true mean could plausibly be
    given how much its samples disagree. The t distribution (rather than the
    normal) widens the interval for the handful of samples a judge gets.

    One value gives no idea of the spread, so the interval is ``None``.
    Identical values give a zero-width interval at the mean.
    """
    array = _as_1d(values, "values")
    if array.size == 0:
        raise ValueError("mean_and_interval needs at least one value, got none")
    mean = float(array.mean())
    if array.size == 1:
        return mean, None
    _check_confidence(confidence)
    sem = float(array.std(ddof=1)) / math.sqrt(array.size)
    if sem == 0.0:
        return mean, (mean, mean)
    t = float(_st.t.ppf(0.5 + confidence / 2.0, df=array.size - 1))
    return mean, (mean - t * sem, mean + t * sem)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0 to 100) of ``values``; ``None`` when empty.

    Used for latency p50/p95. Between two observations the value is linearly
    interpolated (numpy's default), so p50 of an even count is the midpoint.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q={q!r} is outside [0, 100]; pass 50 for the median, 95 for p95")
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return None
    if any(math.isnan(v) for v in ordered):
        raise ValueError("values contain NaN")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --------------------------------------------------------------------------
# Paired tests: the same cases ran in both runs


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for paired pass/fail outcomes.

    ``b`` counts cases that passed in the baseline and fail now; ``c`` counts
    cases that failed before and pass now. Cases with the same outcome in
    both runs say nothing about a change, so only these discordant pairs
    count. If nothing changed, each discordant case is equally likely to have
    gone either way, like a fair coin: the p-value is the chance of a split at
    least as lopsided as ``b`` against ``c`` in ``b + c`` fair tosses.

    No discordant pairs means no evidence of change: ``b + c == 0`` gives 1.0.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    # The null binomial is symmetric, so two-sided = twice the smaller tail.
    return min(1.0, 2.0 * float(_st.binom.cdf(min(b, c), n, 0.5)))


def wilcoxon_signed_rank(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value for paired scores ``x`` -> ``y``.

    Each case contributes its change ``y - x``. The changes are ranked by
    size and the test asks whether the ups and downs are balanced: if nothing
    changed, a case is as likely to move up as down by any given amount. It
    uses ranks, not the values, so one case jumping from 1 to 5 cannot carry
    the verdict alone, and the 1-5 judge scale need not be an interval scale.

    All changes zero means no evidence of change: the p-value is 1.0.
    """
    diffs = _paired_differences(x, y)
    if diffs.size == 0:
        raise ValueError("wilcoxon_signed_rank needs at least one pair, got none")
    # Scores like 4.1 - 3.9 and 3.3 - 3.1 should tie; without rounding they
    # differ in the last bit and get different ranks (scipy's docs warn of it).
    diffs = np.round(diffs, 9)
    if not np.any(diffs):
        return 1.0
    # zero_method="pratt": with integer judge scores most cases often do not
    # move at all. "wilcox" (scipy's default) throws those cases away and
    # judges the change as if only the moving cases existed; "zsplit" counts
    # each unchanged case half as an improvement and half as a regression,
    # which drowns a real change confined to a few cases (five of a hundred
    # cases each dropping a point gives p = 0.34). Pratt's method ranks the
    # unchanged cases with the rest but gives them no direction, and scipy
    # adjusts the null distribution for it: the standard choice when zeros
    # are frequent.
    #
    # method: without zeros or ties, scipy's "auto" (the exact null up to 50
    # pairs). With them, the normal approximation with tie correction: recent
    # scipy's "auto" instead enumerates every sign flip for 13 or fewer pairs,
    # about a second per call, too slow for a summary of dozens of rows, and
    # the approximation holds its level from 10 pairs (min_pairs) on 1-5
    # integer scores (simulated false-alarm rate 0.045-0.055 at alpha 0.05).
    magnitudes = np.abs(diffs)
    tied_or_zero = bool(np.any(magnitudes == 0.0)) or np.unique(magnitudes).size < diffs.size
    result = _st.wilcoxon(
        diffs,
        zero_method="pratt",
        alternative="two-sided",
        method="asymptotic" if tied_or_zero else "auto",
    )
    return _clip_p(float(result.pvalue))


def paired_bootstrap_ci(
    x: Sequence[float],
    y: Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean paired change ``mean(y - x)``.

    The p-value says whether there is a change; this interval says how big it
    plausibly is. Cases are resampled with replacement *as pairs*, so each
    resample keeps the case-to-case variation out of the difference, the same
    way the paired tests do. The interval spans the middle ``confidence``
    share of the resampled means. It makes no assumption about the shape of
    the scores, which for 1-5 judge scores is far from normal.

    Deterministic for a given ``seed``. For pass/fail data pass 0/1 values and
    the result is an interval for the change in pass rate.
    """
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples} must be at least 1")
    diffs = _paired_differences(x, y)
    n = diffs.size
    if n == 0:
        raise ValueError("paired_bootstrap_ci needs at least one pair, got none")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=float)
    rows_per_chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, rows_per_chunk):
        stop = min(n_resamples, start + rows_per_chunk)
        picks = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diffs[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (float(low), float(high))


# --------------------------------------------------------------------------
# Unpaired tests: different cases in the two runs


def fisher_exact_p(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher's exact p-value for two independent pass rates.

    The 2x2 table is ``[[a, b], [c, d]]``: ``a`` passed and ``b`` failed in the
    baseline, ``c`` passed and ``d`` failed in the current run. Holding the
    totals fixed, the test asks how likely a split of passes between the runs
    at least this uneven would be if both runs had the same pass rate. Exact,
    so it stays valid for the small counts of a golden set.

    A table with an empty row or column carries no evidence and gives 1.0.
    """
    if min(a, b, c, d) < 0:
        raise ValueError(f"table counts must be >= 0, got {[[a, b], [c, d]]}")
    if (a + b) == 0 or (c + d) == 0 or (a + c) == 0 or (b + d) == 0:
        return 1.0
    return _clip_p(float(_st.fisher_exact([[a, b], [c, d]], alternative="two-sided").pvalue))


def welch_t_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided Welch's t-test p-value for the means of independent samples.

    Welch's test compares two means without assuming the two runs have the
    same spread, which is the safe default when the runs may differ in both.

    Rules for degenerate input:

    - fewer than two values on either side: no estimate of spread, 1.0;
    - no spread on either side (every value identical within each run): 1.0
      when the two constants are equal, 0.0 when they differ, since the
      t statistic is then infinite (e.g. an exact-match score that was 1 on
      every case and is now 0 on every case).
    """
    xa, ya = _as_1d(x, "x"), _as_1d(y, "y")
    if xa.size < 2 or ya.size < 2:
        return 1.0
    if np.ptp(xa) == 0.0 and np.ptp(ya) == 0.0:
        return 1.0 if xa[0] == ya[0] else 0.0
    with warnings.catch_warnings():
        # A constant side (every case scored 5) is a legitimate sample, but
        # scipy warns of "precision loss" computing its zero variance; the
        # p-value is right, and the warning would break runs under -W error.
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        result = _st.ttest_ind(xa, ya, equal_var=False)
    return _clip_p(float(result.pvalue))


def welch_interval(
    x: Sequence[float], y: Sequence[float], confidence: float = 0.95
) -> tuple[float, float] | None:
    """Welch confidence interval for ``mean(y) - mean(x)`` of independent samples.

    The companion of :func:`welch_t_p`: the difference of the means plus or
    minus a t quantile (Welch-Satterthwaite degrees of freedom) times its
    standard error. ``None`` with fewer than two values on either side; a
    zero-width interval at the difference when neither side has any spread.
    """
    _check_confidence(confidence)
    xa, ya = _as_1d(x, "x"), _as_1d(y, "y")
    if xa.size < 2 or ya.size < 2:
        return None
    diff = float(ya.mean() - xa.mean())
    vx = float(xa.var(ddof=1)) / xa.size
    vy = float(ya.var(ddof=1)) / ya.size
    se2 = vx + vy
    if se2 == 0.0:
        return (diff, diff)
    df = se2 * se2 / (vx * vx / (xa.size - 1) + vy * vy / (ya.size - 1))
    half = float(_st.t.ppf(0.5 + confidence / 2.0, df=df)) * math.sqrt(se2)
    return (diff - half, diff + half)


def newcombe_interval(
    successes_x: int, n_x: int, successes_y: int, n_y: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's interval for the difference of two independent pass rates.

    For ``rate_y - rate_x``: it combines the two Wilson intervals (Newcombe
    1998, method 10), so it inherits their good behaviour near 0% and 100%
    and for small partitions, where the plain normal interval misleads.
    """
    if n_x == 0 or n_y == 0:
        raise ValueError(f"newcombe_interval needs cases on both sides, got n_x={n_x}, n_y={n_y}")
    low_x, high_x = wilson_interval(successes_x, n_x, confidence)
    low_y, high_y = wilson_interval(successes_y, n_y, confidence)
    rate_x = successes_x / n_x
    rate_y = successes_y / n_y
    diff = rate_y - rate_x
    low = diff - math.sqrt((rate_y - low_y) ** 2 + (high_x - rate_x) ** 2)
    high = diff + math.sqrt((high_y - rate_y) ** 2 + (rate_x - low_x) ** 2)
    return (max(-1.0, low), min(1.0, high))


# --------------------------------------------------------------------------
# Many tests at once


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    Testing ten partition-metric rows at the 5% level gives chance ten tries
    to raise a false alarm. Holm's step-down method controls the chance of
    *any* false alarm across the whole family at the chosen level, and is
    never less powerful than plain Bonferroni: the smallest p-value is
    multiplied by ``m`` (the number of tests), the next by ``m - 1``, and so
    on, each adjusted value being at least the one before it (monotone) and
    at most 1. Compare each adjusted value with alpha as usual.
    """
    m = len(pvalues)
    for p in pvalues:
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"p-values must lie in [0, 1], got {p!r}")
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[index])))
        adjusted[index] = running
    return adjusted


def _clip_p(p: float) -> float:
    """Keep a p-value inside [0, 1]; scipy can return 1 + 1e-16 or NaN."""
    if math.isnan(p):
        return 1.0
    return min(1.0, max(0.0, p))
