"""Unit tests of pytest_llmeval.stats: against scipy, hand-worked values, simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from pytest_llmeval import stats
from pytest_llmeval.compare import compare_runs

# ---------------------------------------------------------------------------
# wilson_interval


def test_wilson_8_of_10_matches_hand_computed_values() -> None:
    # z = 1.959964: centre = (0.8 + z²/20) / (1 + z²/10) = 0.71674,
    # half-width = z·sqrt(0.016 + z²/400) / (1 + z²/10) = 0.22657.
    low, high = stats.wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_matches_scipy_binomtest_wilson_method() -> None:
    for successes, n in [(0, 5), (3, 7), (50, 100), (99, 100), (20, 20)]:
        ci = st.binomtest(successes, n).proportion_ci(confidence_level=0.9, method="wilson")
        low, high = stats.wilson_interval(successes, n, confidence=0.9)
        assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_edges() -> None:
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    low, high = stats.wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.7225, abs=1e-4)  # never a point at 100%
    assert stats.wilson_interval(0, 10)[0] == 0.0
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        stats.wilson_interval(1, 2, confidence=95)


# ---------------------------------------------------------------------------
# mcnemar_exact


@pytest.mark.parametrize("b, c", [(0, 1), (1, 0), (3, 3), (7, 1), (1, 9), (12, 30), (40, 5)])
def test_mcnemar_matches_binomtest_on_discordant_pairs(b: int, c: int) -> None:
    expected = st.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
    assert stats.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_no_discordant_pairs_is_no_evidence() -> None:
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert isinstance(stats.mcnemar_exact(9, 1), float)


# ---------------------------------------------------------------------------
# wilcoxon_signed_rank


def test_wilcoxon_matches_scipy_pratt() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(3.0, 1.0, 25)
    y = x + rng.normal(0.3, 0.5, 25)
    expected = st.wilcoxon(y - x, zero_method="pratt").pvalue
    assert stats.wilcoxon_signed_rank(x, y) == pytest.approx(expected, rel=1e-12)


def test_wilcoxon_with_zeros_and_ties_uses_the_normal_approximation() -> None:
    x = [4, 4, 3, 5, 2, 4, 3, 3, 4, 5, 1, 4]
    y = [3, 4, 3, 4, 2, 3, 2, 3, 4, 4, 1, 3]
    diffs = np.subtract(y, x)
    expected = st.wilcoxon(diffs, zero_method="pratt", method="asymptotic").pvalue
    assert stats.wilcoxon_signed_rank(x, y) == pytest.approx(expected, rel=1e-12)


def test_wilcoxon_round_off_does_not_break_ties() -> None:
    # 4.1 - 3.9 and 3.3 - 3.1 differ in the last bit; they must rank as ties.
    x = [3.9, 3.1] * 6
    y = [4.1, 3.3] * 6
    assert stats.wilcoxon_signed_rank(x, y) == pytest.approx(
        st.wilcoxon([0.2] * 12, zero_method="pratt", method="asymptotic").pvalue
    )


def test_wilcoxon_identical_samples() -> None:
    assert stats.wilcoxon_signed_rank([3.0, 4.0, 5.0], [3.0, 4.0, 5.0]) == 1.0
    with pytest.raises(ValueError, match="same cases"):
        stats.wilcoxon_signed_rank([1.0, 2.0], [1.0])


# ---------------------------------------------------------------------------
# paired_bootstrap_ci


def test_bootstrap_is_deterministic_and_brackets_the_mean_change() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 1.0, 60)
    y = x + 0.4 + rng.normal(0.0, 0.3, 60)
    first = stats.paired_bootstrap_ci(x, y, seed=7)
    assert first == stats.paired_bootstrap_ci(x, y, seed=7)
    assert first != stats.paired_bootstrap_ci(x, y, seed=8)
    low, high = first
    assert low < float(np.mean(y - x)) < high
    # Close to the normal-theory interval of a mean change (se = sd / sqrt(n)).
    se = float(np.std(y - x, ddof=1)) / math.sqrt(60)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert all(type(bound) is float for bound in first)


def test_bootstrap_edges_and_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    assert stats.paired_bootstrap_ci([1.0, 2.0], [1.0, 2.0]) == (0.0, 0.0)
    assert stats.paired_bootstrap_ci([0, 1, 1, 0], [1, 1, 1, 1]) == (0.0, 1.0)
    x, y = [1.0, 2.0, 4.0, 3.0, 5.0], [2.0, 2.0, 5.0, 3.0, 5.5]
    whole = stats.paired_bootstrap_ci(x, y, n_resamples=500, seed=1)
    monkeypatch.setattr(stats, "_BOOTSTRAP_CHUNK_ELEMENTS", 7)  # one resample per chunk
    assert stats.paired_bootstrap_ci(x, y, n_resamples=500, seed=1) == whole
    with pytest.raises(ValueError):
        stats.paired_bootstrap_ci([], [])


# ---------------------------------------------------------------------------
# Unpaired tests and intervals


@pytest.mark.parametrize("table", [(8, 2, 1, 9), (20, 5, 14, 11), (3, 0, 0, 3), (50, 50, 45, 55)])
def test_fisher_matches_scipy(table: tuple[int, int, int, int]) -> None:
    a, b, c, d = table
    expected = st.fisher_exact([[a, b], [c, d]]).pvalue
    assert stats.fisher_exact_p(a, b, c, d) == pytest.approx(expected, rel=1e-12)


def test_fisher_empty_margin_is_no_evidence() -> None:
    assert stats.fisher_exact_p(0, 0, 3, 4) == 1.0
    assert stats.fisher_exact_p(5, 0, 7, 0) == 1.0  # nobody failed in either run


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(3.0, 1.0, 15), rng.normal(3.6, 2.0, 40)
    expected = st.ttest_ind(x, y, equal_var=False).pvalue
    assert stats.welch_t_p(x, y) == pytest.approx(expected, rel=1e-12)


def test_welch_degenerate_rules() -> None:
    assert stats.welch_t_p([4.0], [1.0, 2.0, 3.0]) == 1.0  # no spread estimate on one side
    assert stats.welch_t_p([4.0, 4.0, 4.0], [4.0, 4.0]) == 1.0  # identical constants
    assert stats.welch_t_p([1.0] * 5, [0.0] * 5) == 0.0  # separated constants
    # Zero spread on one side only is an ordinary Welch test (scipy warns of
    # precision loss on the constant side; stats.welch_t_p silences that).
    with pytest.warns(RuntimeWarning, match="Precision loss"):
        expected = st.ttest_ind([3.0] * 5, [1.0, 2.0, 3.0, 2.0], equal_var=False).pvalue
    assert stats.welch_t_p([3.0] * 5, [1.0, 2.0, 3.0, 2.0]) == pytest.approx(expected)


def test_welch_interval_matches_scipy() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(3.0, 1.0, 12), rng.normal(3.5, 0.5, 20)
    ci = st.ttest_ind(y, x, equal_var=False).confidence_interval(0.95)
    assert stats.welch_interval(x, y) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert stats.welch_interval([1.0], [1.0, 2.0]) is None
    assert stats.welch_interval([2.0, 2.0], [3.0, 3.0]) == (1.0, 1.0)


def test_newcombe_interval_worked_example() -> None:
    # Newcombe (1998), table II example (a): 56/70 vs 48/80, difference 0.2,
    # method 10 interval 0.0524 to 0.3339.
    low, high = stats.newcombe_interval(48, 80, 56, 70)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    with pytest.raises(ValueError, match="both sides"):
        stats.newcombe_interval(0, 0, 1, 2)


# ---------------------------------------------------------------------------
# holm_adjust


def test_holm_worked_example() -> None:
    # Sorted: 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 = 0.04 -> 0.06
    # (monotone: never below the adjusted value before it).
    assert stats.holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_keeps_ties_and_empty() -> None:
    assert stats.holm_adjust([0.6, 0.7]) == [1.0, 1.0]
    assert stats.holm_adjust([0.5, 0.4, 0.3]) == pytest.approx([0.9, 0.9, 0.9])
    assert stats.holm_adjust([0.02, 0.02]) == pytest.approx([0.04, 0.04])
    assert stats.holm_adjust([0.2]) == [0.2]
    assert stats.holm_adjust([]) == []
    with pytest.raises(ValueError):
        stats.holm_adjust([0.1, float("nan")])


def test_holm_is_monotone_in_the_raw_order() -> None:
    rng = np.random.default_rng(2)
    raw = list(rng.uniform(0, 0.2, 30))
    adjusted = stats.holm_adjust(raw)
    pairs = sorted(zip(raw, adjusted))
    assert all(a1 <= a2 for (_, a1), (_, a2) in zip(pairs, pairs[1:]))
    assert all(a >= r and a <= 1.0 for r, a in zip(raw, adjusted))


# ---------------------------------------------------------------------------
# percentile and mean_and_interval


def test_percentile() -> None:
    assert stats.percentile([], 50) is None
    assert stats.percentile([3.0], 95) == 3.0
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.percentile(list(range(101)), 95) == pytest.approx(95.0)
    with pytest.raises(ValueError, match="p95"):
        stats.percentile([1.0], 150)


def test_mean_and_interval_matches_scipy_t_interval() -> None:
    values = [4.0, 3.0, 5.0, 4.0, 4.0]
    mean, interval = stats.mean_and_interval(values)
    expected = st.t.interval(0.95, df=4, loc=np.mean(values), scale=st.sem(values))
    assert mean == 4.0
    assert interval == pytest.approx(expected)


def test_mean_and_interval_edges() -> None:
    assert stats.mean_and_interval([3.0]) == (3.0, None)
    assert stats.mean_and_interval([4.0, 4.0, 4.0]) == (4.0, (4.0, 4.0))
    with pytest.raises(ValueError):
        stats.mean_and_interval([])


# ---------------------------------------------------------------------------
# Simulation: calibration under no change, power of pairing


def _simulated_pair(
    rng: np.random.Generator, n_cases: int, score_shift: float
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Two runs of the same cases. Each case has its own difficulty; each run
    draws pass/fail and a 1-5 judge score around it independently."""
    quality = rng.normal(3.5, 1.0, n_cases)
    pass_prob = 1.0 / (1.0 + np.exp(-(quality - 2.5) * 1.5))

    def run(shift: float) -> dict[str, dict]:
        passed = rng.random(n_cases) < pass_prob
        scores = np.clip(np.rint(quality + shift + rng.normal(0.0, 0.6, n_cases)), 1, 5)
        return {
            f"case-{i}": {
                "partition": "distribution",
                "outcome": "passed" if passed[i] else "failed",
                "scores": {"relevance": float(scores[i])},
                "judge": {"relevance": "judge-a"},
            }
            for i in range(n_cases)
        }

    return run(0.0), run(score_shift)


def test_false_alarm_rate_under_no_change_is_at_most_alpha() -> None:
    rng = np.random.default_rng(20240601)
    n_runs, alpha = 300, 0.05
    false_alarms = 0
    for _ in range(n_runs):
        baseline, current = _simulated_pair(rng, n_cases=40, score_shift=0.0)
        rows = compare_runs(baseline, current, alpha=alpha)
        assert [row.test for row in rows] == ["mcnemar", "wilcoxon"]
        false_alarms += any(
            row.p_adjusted is not None and row.p_adjusted < alpha for row in rows
        )
    rate = false_alarms / n_runs
    print(f"false-alarm rate under no change: {rate:.3f} over {n_runs} runs (alpha {alpha})")
    # Binomial sd of the estimate at 0.05 is 0.0126; allow about three of them.
    assert rate <= alpha + 0.04


def test_paired_test_has_more_power_than_welch_on_noisy_cases() -> None:
    # Cases vary a lot between themselves (sd 1.0), the change is small (0.25)
    # and the run-to-run noise smaller still (sd 0.4): pairing removes the
    # case-to-case spread that swamps Welch's test.
    rng = np.random.default_rng(11)
    n_sims, n_cases, alpha = 300, 30, 0.05
    paired_hits = welch_hits = 0
    for _ in range(n_sims):
        quality = rng.normal(3.0, 1.0, n_cases)
        before = quality + rng.normal(0.0, 0.4, n_cases)
        after = quality - 0.25 + rng.normal(0.0, 0.4, n_cases)
        paired_hits += stats.wilcoxon_signed_rank(before, after) < alpha
        welch_hits += stats.welch_t_p(before, after) < alpha
    paired_power, welch_power = paired_hits / n_sims, welch_hits / n_sims
    print(f"power at shift 0.25: paired Wilcoxon {paired_power:.2f}, Welch {welch_power:.2f}")
    assert paired_power > welch_power + 0.3, (paired_power, welch_power)
