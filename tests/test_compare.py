"""Unit tests of pytest_llmeval.compare: every conclusion from constructed runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from pytest_llmeval.compare import (
    ComparisonRow,
    compare_runs,
    format_comparison_table,
)

Run = dict[str, dict[str, Any]]


def make_run(
    outcomes: Sequence[str],
    *,
    partition: str = "golden",
    prefix: str = "case",
    scores: dict[str, Sequence[float]] | None = None,
    judge: dict[str, str] | None = None,
) -> Run:
    """A run of ``len(outcomes)`` cases ``{prefix}-{i}`` in one partition."""
    run: Run = {}
    for i, outcome in enumerate(outcomes):
        run[f"{prefix}-{i}"] = {
            "partition": partition,
            "outcome": outcome,
            "scores": {metric: values[i] for metric, values in (scores or {}).items()},
            "judge": dict(judge or {}),
        }
    return run


def outcomes(passed: int, failed: int) -> list[str]:
    return ["passed"] * passed + ["failed"] * failed


def row_for(rows: Sequence[ComparisonRow], partition: str, metric: str) -> ComparisonRow:
    (row,) = [r for r in rows if r.partition == partition and r.metric == metric]
    return row


# ---------------------------------------------------------------------------
# One conclusion each


def test_regression_on_pass_rate() -> None:
    baseline = make_run(outcomes(30, 0))
    current = make_run(outcomes(20, 10))  # ten cases went passed -> failed
    (row,) = compare_runs(baseline, current)
    assert row.test == "mcnemar"
    assert row.conclusion == "regression"
    assert row.n_pairs == 30
    assert row.baseline_value == 1.0 and row.current_value == pytest.approx(2 / 3)
    assert row.effect == pytest.approx(-1 / 3)
    assert row.p_value == pytest.approx(2 / 2**10)  # b=10, c=0
    assert row.ci_low is not None and row.ci_high is not None
    assert row.ci_low <= row.effect <= row.ci_high < 0


def test_improvement_on_scores() -> None:
    before = [3.0, 2.0, 4.0, 3.0, 2.0] * 4
    after = [4.0, 3.0, 5.0, 4.0, 3.0] * 4
    baseline = make_run(outcomes(20, 0), scores={"relevance": before}, judge={"relevance": "j"})
    current = make_run(outcomes(20, 0), scores={"relevance": after}, judge={"relevance": "j"})
    row = row_for(compare_runs(baseline, current), "golden", "relevance")
    assert (row.test, row.conclusion) == ("wilcoxon", "improvement")
    assert row.effect == pytest.approx(1.0)
    assert row.ci_low == row.ci_high == pytest.approx(1.0)


def test_no_change_on_identical_runs() -> None:
    scores = {"relevance": [1.0, 2.0, 3.0, 4.0, 5.0] * 4}
    run = make_run(outcomes(15, 5), scores=scores)
    rows = compare_runs(run, run)
    assert [(r.metric, r.conclusion, r.p_value) for r in rows] == [
        ("pass_rate", "no_change", 1.0),
        ("relevance", "no_change", 1.0),
    ]
    assert all(r.effect == 0.0 for r in rows)


def test_trivial_when_significant_but_below_min_effect() -> None:
    before = [3.0, 4.0, 2.0, 5.0] * 25
    after = [value - 0.1 for value in before]  # every case drops a tenth of a point
    baseline = make_run(outcomes(100, 0), scores={"relevance": before})
    current = make_run(outcomes(100, 0), scores={"relevance": after})
    rows = compare_runs(baseline, current)
    row = row_for(rows, "golden", "relevance")
    assert row.p_adjusted is not None and row.p_adjusted < 1e-6
    assert row.effect == pytest.approx(-0.1)
    assert row.conclusion == "trivial"
    # The same data with a smaller minimum is a regression.
    rows = compare_runs(baseline, current, min_effect={"relevance": 0.05})
    assert row_for(rows, "golden", "relevance").conclusion == "regression"


def test_insufficient_data_below_min_pairs() -> None:
    baseline = make_run(outcomes(6, 0), scores={"f1": [1.0] * 6})
    current = make_run(outcomes(0, 6), scores={"f1": [0.0] * 6})
    rows = compare_runs(baseline, current)
    assert [r.conclusion for r in rows] == ["insufficient_data", "insufficient_data"]
    assert all(r.p_value is None and r.p_adjusted is None for r in rows)
    assert rows[0].effect == -1.0  # still described, just not tested
    assert "fewer than min_pairs=10" in rows[0].note
    # With a lower bar the test runs: McNemar p = 2 / 2**6 = 0.031.
    assert compare_runs(baseline, current, min_pairs=6)[0].conclusion == "regression"


def test_not_comparable_when_the_judge_changed() -> None:
    values = [4.0, 3.0, 5.0] * 5
    baseline = make_run(outcomes(15, 0), scores={"faith": values}, judge={"faith": "gpt-4o/v1"})
    current = make_run(outcomes(15, 0), scores={"faith": values}, judge={"faith": "gpt-4o/v2"})
    rows = compare_runs(baseline, current)
    faith = row_for(rows, "golden", "faith")
    assert faith.conclusion == "not_comparable"
    assert faith.p_value is None
    assert "gpt-4o/v1 -> gpt-4o/v2" in faith.note
    # The pass rate is still tested, with a warning that judged asserts moved.
    pass_rate = row_for(rows, "golden", "pass_rate")
    assert pass_rate.conclusion == "no_change"
    assert "judge changed for faith" in pass_rate.note


def test_not_comparable_when_one_shared_case_has_another_judge() -> None:
    values = [4.0] * 12
    baseline = make_run(outcomes(12, 0), scores={"faith": values}, judge={"faith": "a"})
    current = make_run(outcomes(12, 0), scores={"faith": values}, judge={"faith": "a"})
    current["case-3"]["judge"] = {"faith": "b"}
    row = row_for(compare_runs(baseline, current), "golden", "faith")
    assert row.conclusion == "not_comparable"
    assert "on 1 shared cases" in row.note


def test_not_comparable_when_judges_differ_only_on_unshared_cases() -> None:
    values = [4.0] * 12
    baseline = make_run(outcomes(12, 0), scores={"faith": values}, judge={"faith": "a"})
    current = make_run(outcomes(12, 0), scores={"faith": values}, judge={"faith": "a"})
    newcomer = make_run(["passed"], prefix="new", scores={"faith": [4.0]}, judge={"faith": "b"})
    current.update(newcomer)
    row = row_for(compare_runs(baseline, current), "golden", "faith")
    assert row.conclusion == "not_comparable"
    assert "between the runs" in row.note


# ---------------------------------------------------------------------------
# The Holm family


def test_holm_turns_a_lone_regression_into_no_change_in_a_family() -> None:
    # Partition "a": b=9 passed -> failed, c=1 failed -> passed over 30 cases:
    # McNemar p = 2 * 11 / 1024 = 0.0215, a regression of 8 points on its own.
    baseline = make_run(outcomes(29, 1), partition="a", prefix="a")
    current = make_run(["failed"] * 9 + ["passed"] * 20 + ["passed"], partition="a", prefix="a")
    alone = compare_runs(baseline, current)
    assert alone[0].p_value == pytest.approx(22 / 1024)
    assert alone[0].conclusion == "regression"

    # Two more partitions that did not change at all: three tests in the
    # family, so the smallest p is multiplied by 3 -> 0.064, above 0.05.
    for name in ("b", "c"):
        unchanged = make_run(outcomes(25, 5), partition=name, prefix=name)
        baseline.update(unchanged)
        current.update(unchanged)
    rows = compare_runs(baseline, current)
    row_a = row_for(rows, "a", "pass_rate")
    assert row_a.p_value == pytest.approx(22 / 1024)
    assert row_a.p_adjusted == pytest.approx(3 * 22 / 1024)
    assert row_a.conclusion == "no_change"


def test_untested_rows_are_not_in_the_family() -> None:
    baseline = make_run(outcomes(29, 1), partition="a", prefix="a")
    current = make_run(["failed"] * 9 + ["passed"] * 21, partition="a", prefix="a")
    # A tiny partition (insufficient_data) must not dilute alpha.
    baseline.update(make_run(outcomes(3, 0), partition="z", prefix="z"))
    current.update(make_run(outcomes(3, 0), partition="z", prefix="z"))
    rows = compare_runs(baseline, current)
    assert row_for(rows, "a", "pass_rate").p_adjusted == pytest.approx(22 / 1024)
    assert row_for(rows, "z", "pass_rate").conclusion == "insufficient_data"


# ---------------------------------------------------------------------------
# Paired or unpaired


def test_unshared_cases_use_fisher_and_welch() -> None:
    baseline = make_run(outcomes(29, 1), prefix="old", scores={"f1": [0.9] * 15 + [0.8] * 15})
    current = make_run(outcomes(15, 15), prefix="new", scores={"f1": [0.5] * 15 + [0.6] * 15})
    rows = compare_runs(baseline, current)
    pass_rate, f1 = row_for(rows, "golden", "pass_rate"), row_for(rows, "golden", "f1")
    assert (pass_rate.test, pass_rate.n_pairs) == ("fisher", 0)
    assert (pass_rate.n_baseline, pass_rate.n_current) == (30, 30)
    assert pass_rate.conclusion == "regression"
    assert "unpaired test, all cases" in pass_rate.note
    assert f1.test == "welch" and f1.conclusion == "regression"
    assert f1.effect == pytest.approx(0.55 - 0.85)


def test_enough_shared_cases_pair_and_leave_the_rest_out() -> None:
    baseline = make_run(outcomes(12, 0))
    baseline.update(make_run(outcomes(0, 8), prefix="gone"))
    current = make_run(outcomes(12, 0))
    current.update(make_run(outcomes(0, 5), prefix="new"))
    (row,) = compare_runs(baseline, current)
    assert (row.test, row.n_baseline, row.n_current, row.n_pairs) == ("mcnemar", 20, 17, 12)
    assert row.baseline_value == row.current_value == 1.0  # over the pairs only
    assert "13 unshared cases not used" in row.note


def test_a_partition_missing_from_the_current_run() -> None:
    baseline = make_run(outcomes(20, 0), partition="old")
    baseline.update(make_run(outcomes(20, 0), partition="kept", prefix="k"))
    current = make_run(outcomes(20, 0), partition="kept", prefix="k")
    row = row_for(compare_runs(baseline, current), "old", "pass_rate")
    assert row.conclusion == "insufficient_data"
    assert row.current_value is None and row.effect is None
    assert row.note == "no observations in the current run"


# ---------------------------------------------------------------------------
# What counts


def test_skipped_ignored_error_counts_as_failed_and_has_no_scores() -> None:
    baseline = make_run(outcomes(12, 0) + ["skipped"], scores={"f1": [1.0] * 13})
    current = make_run(
        ["error"] * 4 + ["passed"] * 8 + ["skipped"], scores={"f1": [1.0] * 13}
    )
    rows = compare_runs(baseline, current)
    pass_rate, f1 = rows
    assert (pass_rate.n_baseline, pass_rate.n_current) == (12, 12)
    assert pass_rate.current_value == pytest.approx(8 / 12)
    assert (f1.n_baseline, f1.n_current, f1.n_pairs) == (12, 8, 8)


def test_min_effect_float_applies_to_every_row_and_float_round_off_is_tolerated() -> None:
    # 340/400 -> 320/400 is exactly five points on paper, 0.04999999999999993
    # in floating point; it must count as reaching the default minimum.
    baseline = make_run(outcomes(340, 60))
    current = make_run(outcomes(320, 80))
    (row,) = compare_runs(baseline, current)
    assert row.conclusion == "regression"
    (row,) = compare_runs(baseline, current, min_effect=0.1)
    assert row.conclusion == "trivial"


def test_invalid_input_names_the_case_and_the_fix() -> None:
    bad = make_run(["passed"], prefix="x")
    bad["x-0"]["outcome"] = "xfailed"
    with pytest.raises(ValueError, match=r"current case 'x-0'.*passed, failed, error, skipped"):
        compare_runs({}, bad)
    with pytest.raises(ValueError, match="rename the metric"):
        compare_runs(make_run(["passed"], scores={"pass_rate": [1.0]}), {})
    with pytest.raises(ValueError, match="alpha"):
        compare_runs({}, {}, alpha=5)
    with pytest.raises(ValueError, match="min_effect"):
        compare_runs({}, {}, min_effect={"f1": -0.1})


def test_rows_are_sorted_partition_then_pass_rate_first() -> None:
    baseline = make_run(outcomes(10, 0), partition="regression", scores={"b": [1.0] * 10})
    golden_scores = {"z": [1.0] * 10, "a": [1.0] * 10}
    baseline.update(make_run(outcomes(10, 0), partition="golden", prefix="g", scores=golden_scores))
    rows = compare_runs(baseline, baseline)
    assert [(r.partition, r.metric) for r in rows] == [
        ("golden", "pass_rate"),
        ("golden", "a"),
        ("golden", "z"),
        ("regression", "pass_rate"),
        ("regression", "b"),
    ]
    assert compare_runs({}, {}) == []


# ---------------------------------------------------------------------------
# Output


def _mixed_comparison() -> list[ComparisonRow]:
    long_metric = "answer_relevance_to_the_customer_question_with_context"
    before = [3.0, 4.0, 2.0, 5.0, 4.0] * 300
    baseline = make_run(
        outcomes(1300, 200),
        partition="distribution",
        scores={long_metric: before, "faithfulness": before},
        judge={long_metric: "openai/gpt-4o-mini:rubric@" + "f" * 40, "faithfulness": "j"},
    )
    current = make_run(
        outcomes(1200, 300),
        partition="distribution",
        scores={long_metric: [v - 0.5 for v in before], "faithfulness": before},
        judge={long_metric: "anthropic/claude:rubric@" + "e" * 40, "faithfulness": "j"},
    )
    baseline.update(make_run(outcomes(4, 1), partition="adversarial", prefix="adv"))
    current.update(make_run(outcomes(1, 9), partition="adversarial", prefix="adv2"))
    return compare_runs(baseline, current)


def test_to_dict_is_plain_json() -> None:
    rows = _mixed_comparison()
    dicts = [row.to_dict() for row in rows]
    text = json.dumps(dicts, allow_nan=False)
    assert json.loads(text) == dicts
    allowed = (str, int, float, type(None))
    assert all(type(value) in allowed for d in dicts for value in d.values())
    assert set(dicts[0]) == {
        "partition", "metric", "test", "n_baseline", "n_current", "n_pairs",
        "baseline_value", "current_value", "effect", "ci_low", "ci_high",
        "p_value", "p_adjusted", "conclusion", "note",
    }  # fmt: skip


def test_table_lines_fit_in_100_columns() -> None:
    rows = _mixed_comparison()
    lines = format_comparison_table(rows)
    assert all(len(line) <= 100 for line in lines), "\n".join(lines)
    text = "\n".join(lines)
    assert "distribution" in text and "adversarial" in text
    assert "not_comparable" in text and "insufficient_data" in text
    assert "-6.7pt" in text  # 1300/1500 -> 1200/1500 pass rate, paired
    narrow = format_comparison_table(rows, width=90)
    assert all(len(line) <= 90 for line in narrow), "\n".join(narrow)
    assert "answer_relevance" in "\n".join(narrow)  # shortened, not dropped


def test_table_shows_each_row_once_with_its_conclusion() -> None:
    baseline = make_run(outcomes(30, 0))
    current = make_run(outcomes(20, 10))
    lines = format_comparison_table(compare_runs(baseline, current))
    assert lines[0].split() == [
        "metric", "n", "before", "after", "change", "95%", "CI", "test", "p", "adj", "conclusion",
    ]  # fmt: skip
    assert lines[1] == "golden"
    assert lines[2].split()[:5] == ["pass_rate", "30", "100.0%", "66.7%", "-33.3pt"]
    assert lines[2].split()[-1] == "regression"
    assert format_comparison_table([]) == ["no cases to compare with the baseline"]
