"""Compare a baseline run with the current run, per partition and metric.

A run is a mapping ``case_id -> case`` of plain data::

    {"partition": "golden",
     "outcome": "passed",            # "passed" | "failed" | "error" | "skipped"
     "scores": {"relevance": 4.0},   # metric -> value; higher is better
     "judge": {"relevance": "..."}}  # metric -> judge identity, judge metrics only

:func:`compare_runs` returns one :class:`ComparisonRow` per (partition,
``"pass_rate"``) and per (partition, metric), and :func:`format_comparison_table`
renders them as lines for the pytest summary and the ``pytest-llmeval compare``
command alike.

The rules, in the order they are applied
-----------------------------------------

1. **What counts.** Skipped cases are left out of everything. An ``error``
   counts as not passed for the pass rate and has no scores (any it carries
   are ignored); a ``failed`` case keeps its scores. A score that is missing,
   ``None`` or not finite is not an observation. Cases are grouped by the
   partition each run gives them, so a case that moved partition is unshared.

2. **Paired or unpaired.** A row's *pairs* are the case ids both runs hold in
   that partition with an observation (a pass/fail outcome, or a score for
   the metric). The row is tested *paired*, on the pairs only, when every
   observed case is shared or when there are at least ``min_pairs`` pairs
   (cases present in only one run are then left out and counted in the
   note). Otherwise, when some cases are unshared and fewer than
   ``min_pairs`` are shared, the row is tested *unpaired* on all observed
   cases of each run. Paired: exact McNemar (pass rate) and Wilcoxon
   signed-rank with a paired bootstrap interval of the mean change (scores).
   Unpaired: Fisher's exact with Newcombe's interval (pass rate) and Welch's
   t with Welch's interval (scores). Paired tests are preferred because each
   case is its own control: the case-to-case spread, usually far larger than
   the change sought, drops out.

3. **Judge identity.** A metric row is ``not_comparable`` (and not tested)
   when, for the scored cases, any shared case has a different judge
   identity in the two runs, or the set of identities used differs between
   the runs. A score from another judge prompt or model measures something
   else; comparing it would be silent nonsense.

4. **Enough data.** A row is ``insufficient_data`` (no p-value) when the
   chosen test would see fewer than ``min_pairs`` observations: fewer pairs
   for a paired test, fewer cases in either run for an unpaired one.

5. **The family.** The p-values of all tested rows of the comparison, every
   partition and metric together, are Holm-adjusted, so the chance of any
   false alarm in the whole comparison stays at ``alpha``.

6. **Conclusion.** ``effect`` is current minus baseline (in pass-rate
   points, or in score units): the change in pass rate on the pairs, the
   mean paired change, or the difference of means when unpaired. With the
   adjusted p below ``alpha``: ``regression`` when the effect is negative and
   at least the minimum effect in size, ``improvement`` when positive and as
   large, ``trivial`` when smaller than that. Otherwise ``no_change``. Higher
   is better for every metric.

   The minimum effect defaults to 0.05 (five points) for pass rates and
   0.25 for scores (a quarter point on the 1-5 scale). A float applies to
   every row; a dict maps metric names (``"pass_rate"`` included) to their
   own minimum, unnamed metrics keeping the defaults.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from pytest_llmeval import stats

__all__ = [
    "CONCLUSIONS",
    "DEFAULT_MIN_EFFECT_PASS_RATE",
    "DEFAULT_MIN_EFFECT_SCORE",
    "PASS_RATE",
    "ComparisonRow",
    "compare_runs",
    "format_comparison_table",
]

PASS_RATE = "pass_rate"
DEFAULT_MIN_EFFECT_PASS_RATE = 0.05
DEFAULT_MIN_EFFECT_SCORE = 0.25
CONCLUSIONS = (
    "regression",
    "improvement",
    "no_change",
    "trivial",
    "insufficient_data",
    "not_comparable",
)
OUTCOMES = ("passed", "failed", "error", "skipped")

# Names of the tests, as they appear in ComparisonRow.test.
MCNEMAR = "mcnemar"
WILCOXON = "wilcoxon"
FISHER = "fisher"
WELCH = "welch"
PAIRED_TESTS = (MCNEMAR, WILCOXON)

# Intervals are reported at 95% whatever alpha is: they describe the size of
# the change, the Holm-adjusted p-value decides the conclusion.
CI_LEVEL = 0.95

# 0.85 - 0.80 is 0.04999999999999993 in floating point; an effect that equals
# the minimum on paper must count as reaching it.
_EFFECT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ComparisonRow:
    """One partition-and-metric line of a baseline comparison.

    ``metric`` is ``"pass_rate"`` or a score name. ``test`` names the test
    chosen by the rules (``mcnemar``, ``wilcoxon``, ``fisher``, ``welch``),
    also for rows that were not run, so a reader sees which one applied.
    ``n_baseline`` and ``n_current`` count each run's observed cases in the
    partition, ``n_pairs`` the shared ones. ``baseline_value`` and
    ``current_value`` are the pass rate or mean score over the cases the test
    used (the pairs, for a paired test), and ``effect`` is their difference,
    current minus baseline. ``ci_low``/``ci_high`` bound the effect at 95%.
    ``p_value`` is the test's own p-value and ``p_adjusted`` its Holm-adjusted
    value over the family; both are ``None`` for untested rows.
    """

    partition: str
    metric: str
    test: str
    n_baseline: int
    n_current: int
    n_pairs: int
    baseline_value: float | None
    current_value: float | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None
    conclusion: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-safe plain Python types (no numpy scalars, no NaN)."""
        return {field.name: _plain(getattr(self, field.name)) for field in fields(self)}


def compare_runs(
    baseline: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float = 0.05,
    min_effect: float | Mapping[str, float] | None = None,
    min_pairs: int = 10,
    seed: int = 0,
) -> list[ComparisonRow]:
    """Compare two runs partition by partition; see the module docstring for the rules.

    ``alpha`` is the family-wise significance level (Holm). ``min_effect`` is
    the smallest change worth calling a regression or an improvement: a float
    for every row, or a dict from metric name to its minimum. ``min_pairs`` is
    the fewest observations a test may run on. ``seed`` makes the bootstrap
    intervals reproducible. Rows come sorted by partition, then metric with
    ``pass_rate`` first.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r} is outside (0, 1); pass a level such as 0.05")
    if min_pairs < 1:
        raise ValueError(f"min_pairs={min_pairs!r} must be at least 1")
    _check_min_effect(min_effect)
    base_cases = _observed_cases(baseline, "baseline")
    cur_cases = _observed_cases(current, "current")

    rows: list[ComparisonRow] = []
    partitions = {case.partition for case in base_cases.values()}
    partitions |= {case.partition for case in cur_cases.values()}
    for partition in sorted(partitions):
        base = {cid: case for cid, case in base_cases.items() if case.partition == partition}
        cur = {cid: case for cid, case in cur_cases.items() if case.partition == partition}
        metric_rows = [
            _score_row(partition, metric, base, cur, min_pairs, seed)
            for metric in sorted(_metric_names(base) | _metric_names(cur))
        ]
        pass_row = _pass_rate_row(partition, base, cur, min_pairs, seed)
        changed_judges = [row.metric for row in metric_rows if row.conclusion == "not_comparable"]
        if changed_judges:
            # Pass/fail of judge-based asserts depends on the judge too.
            note = f"judge changed for {', '.join(changed_judges)}"
            pass_row = replace(pass_row, note=_join_notes(pass_row.note, note))
        rows.append(pass_row)
        rows.extend(metric_rows)

    tested = [(i, row.p_value) for i, row in enumerate(rows) if row.p_value is not None]
    adjusted = stats.holm_adjust([p_value for _, p_value in tested])
    for (i, _), p_adjusted in zip(tested, adjusted):
        minimum = _min_effect_for(rows[i].metric, min_effect)
        conclusion = _conclude(rows[i].effect, p_adjusted, alpha, minimum)
        rows[i] = replace(rows[i], p_adjusted=p_adjusted, conclusion=conclusion)
    return rows


# --------------------------------------------------------------------------
# Reading the runs


@dataclass(frozen=True)
class _Case:
    partition: str
    passed: bool
    scores: Mapping[str, float]
    judges: Mapping[str, str | None]


def _observed_cases(run: Mapping[str, Mapping[str, Any]], side: str) -> dict[str, _Case]:
    """The run's non-skipped cases, validated and reduced to what is compared."""
    cases: dict[str, _Case] = {}
    for case_id, case in run.items():
        outcome = case.get("outcome")
        if outcome not in OUTCOMES:
            raise ValueError(
                f"{side} case {case_id!r}: outcome {outcome!r} is not one of "
                f"{', '.join(OUTCOMES)}; record the test's outcome with one of those"
            )
        if outcome == "skipped":
            continue
        partition = case.get("partition")
        if not isinstance(partition, str):
            raise ValueError(
                f"{side} case {case_id!r}: partition {partition!r} is not a string; "
                "give every case its partition name"
            )
        scores: dict[str, float] = {}
        if outcome != "error":
            for metric, value in (case.get("scores") or {}).items():
                if metric == PASS_RATE:
                    raise ValueError(
                        f"{side} case {case_id!r}: a score is named {PASS_RATE!r}, which "
                        "is the pass-rate row's name; rename the metric"
                    )
                if value is None:
                    continue
                number = float(value)
                if math.isfinite(number):
                    scores[str(metric)] = number
        judges = case.get("judge") or {}
        cases[str(case_id)] = _Case(
            partition=partition,
            passed=outcome == "passed",
            scores=scores,
            judges={str(metric): judges.get(metric) for metric in scores},
        )
    return cases


def _metric_names(cases: Mapping[str, _Case]) -> set[str]:
    return {metric for case in cases.values() for metric in case.scores}


# --------------------------------------------------------------------------
# Building rows


def _pass_rate_row(
    partition: str,
    base: Mapping[str, _Case],
    cur: Mapping[str, _Case],
    min_pairs: int,
    seed: int,
) -> ComparisonRow:
    pairs = sorted(base.keys() & cur.keys())
    counts = (len(base), len(cur), len(pairs))
    if _use_paired(*counts, min_pairs):
        before = [float(base[cid].passed) for cid in pairs]
        after = [float(cur[cid].passed) for cid in pairs]
        return _row(partition, PASS_RATE, MCNEMAR, counts, before, after, min_pairs, seed)
    before = [float(case.passed) for case in base.values()]
    after = [float(case.passed) for case in cur.values()]
    return _row(partition, PASS_RATE, FISHER, counts, before, after, min_pairs, seed)


def _score_row(
    partition: str,
    metric: str,
    base: Mapping[str, _Case],
    cur: Mapping[str, _Case],
    min_pairs: int,
    seed: int,
) -> ComparisonRow:
    base_scored = {cid: case for cid, case in base.items() if metric in case.scores}
    cur_scored = {cid: case for cid, case in cur.items() if metric in case.scores}
    pairs = sorted(base_scored.keys() & cur_scored.keys())
    counts = (len(base_scored), len(cur_scored), len(pairs))
    judge_note = _judge_mismatch(metric, base_scored, cur_scored, pairs)
    if _use_paired(*counts, min_pairs):
        before = [base_scored[cid].scores[metric] for cid in pairs]
        after = [cur_scored[cid].scores[metric] for cid in pairs]
        test = WILCOXON
    else:
        before = [case.scores[metric] for case in base_scored.values()]
        after = [case.scores[metric] for case in cur_scored.values()]
        test = WELCH
    return _row(partition, metric, test, counts, before, after, min_pairs, seed, judge_note)


def _row(
    partition: str,
    metric: str,
    test: str,
    counts: tuple[int, int, int],
    before: Sequence[float],
    after: Sequence[float],
    min_pairs: int,
    seed: int,
    judge_note: str | None = None,
) -> ComparisonRow:
    """Rules 3 and 4, then the test; ``counts`` is (baseline, current, pairs).

    ``before`` and ``after`` are the values the test uses: in case order for a
    paired test. The conclusion of a tested row waits for the Holm step.
    """
    baseline_value, current_value = _mean(before), _mean(after)
    effect = None
    if baseline_value is not None and current_value is not None:
        effect = current_value - baseline_value
    p_value: float | None = None
    interval: tuple[float, float] | None = None
    if judge_note is not None:
        conclusion, notes = "not_comparable", [judge_note]
    elif shortfall := _shortfall(test, counts, min_pairs):
        conclusion, notes = "insufficient_data", [shortfall]
    else:
        conclusion, notes = "no_change", _test_notes(test, counts, min_pairs)
        p_value, interval = _run_test(test, before, after, seed)
    return ComparisonRow(
        partition=partition,
        metric=metric,
        test=test,
        n_baseline=counts[0],
        n_current=counts[1],
        n_pairs=counts[2],
        baseline_value=baseline_value,
        current_value=current_value,
        effect=effect,
        ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None,
        p_value=p_value,
        p_adjusted=None,  # set once the whole family is known
        conclusion=conclusion,
        note=_join_notes(*notes),
    )


def _run_test(
    test: str, before: Sequence[float], after: Sequence[float], seed: int
) -> tuple[float, tuple[float, float] | None]:
    """The p-value of ``test`` and the 95% interval of the change it goes with."""
    if test == MCNEMAR:
        worse = sum(1 for b, a in zip(before, after) if b > a)
        better = sum(1 for b, a in zip(before, after) if a > b)
        p_value = stats.mcnemar_exact(worse, better)
    elif test == WILCOXON:
        p_value = stats.wilcoxon_signed_rank(before, after)
    elif test == FISHER:
        passed_before, passed_after = round(sum(before)), round(sum(after))
        p_value = stats.fisher_exact_p(
            passed_before, len(before) - passed_before, passed_after, len(after) - passed_after
        )
        return p_value, stats.newcombe_interval(
            passed_before, len(before), passed_after, len(after), CI_LEVEL
        )
    else:
        return stats.welch_t_p(before, after), stats.welch_interval(before, after, CI_LEVEL)
    return p_value, stats.paired_bootstrap_ci(before, after, confidence=CI_LEVEL, seed=seed)


def _use_paired(n_base: int, n_cur: int, n_pairs: int, min_pairs: int) -> bool:
    """Rule 2: paired when nothing is unshared or when enough is shared."""
    all_shared = n_base == n_pairs and n_cur == n_pairs
    return all_shared or n_pairs >= min_pairs


def _shortfall(test: str, counts: tuple[int, int, int], min_pairs: int) -> str:
    """Rule 4: why ``test`` would see too little data, or ``""`` when it has enough."""
    n_base, n_cur, n_pairs = counts
    available = n_pairs if test in PAIRED_TESTS else min(n_base, n_cur)
    if available >= min_pairs:
        return ""
    if n_base == 0 or n_cur == 0:
        return f"no observations in the {'baseline' if n_base == 0 else 'current run'}"
    if test in PAIRED_TESTS:
        return f"{n_pairs} shared cases, fewer than min_pairs={min_pairs}"
    return (
        f"{n_base} baseline and {n_cur} current cases, "
        f"fewer than min_pairs={min_pairs} on one side"
    )


def _test_notes(test: str, counts: tuple[int, int, int], min_pairs: int) -> list[str]:
    """Rule 2 made visible: which cases a test that runs leaves out, or why it is unpaired."""
    n_base, n_cur, n_pairs = counts
    if test not in PAIRED_TESTS:
        return [f"only {n_pairs} shared cases (< min_pairs={min_pairs}): unpaired test, all cases"]
    unused = n_base + n_cur - 2 * n_pairs
    if not unused:
        return []
    return [f"paired on {n_pairs} shared cases; {unused} unshared cases not used"]


def _join_notes(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def _judge_mismatch(
    metric: str,
    base: Mapping[str, _Case],
    cur: Mapping[str, _Case],
    pairs: Sequence[str],
) -> str | None:
    """Rule 3: a note saying how the judges differ, or ``None`` when they agree."""
    if not base or not cur:
        return None  # nothing to compare against; rule 4 reports it
    differing = [cid for cid in pairs if base[cid].judges[metric] != cur[cid].judges[metric]]
    before = {case.judges[metric] for case in base.values()}
    after = {case.judges[metric] for case in cur.values()}
    if not differing and before == after:
        return None
    if len(before) == 1 and len(after) == 1:
        return (
            f"judge changed: {_short(next(iter(before)))} -> {_short(next(iter(after)))}; "
            "re-save the baseline with the new judge"
        )
    where = f"on {len(differing)} shared cases" if differing else "between the runs"
    return f"judge identity differs {where}; re-save the baseline with one judge"


def _short(identity: str | None, limit: int = 40) -> str:
    if identity is None:
        return "(no judge)"
    return identity if len(identity) <= limit else identity[: limit - 3] + "..."


# --------------------------------------------------------------------------
# Deciding


def _check_min_effect(min_effect: float | Mapping[str, float] | None) -> None:
    if min_effect is None:
        return
    values = min_effect.values() if isinstance(min_effect, Mapping) else [min_effect]
    for value in values:
        if not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(
                f"min_effect {value!r} must be a number >= 0 "
                "(pass-rate points as a fraction, e.g. 0.05, or score units, e.g. 0.25)"
            )


def _min_effect_for(metric: str, min_effect: float | Mapping[str, float] | None) -> float:
    default = DEFAULT_MIN_EFFECT_PASS_RATE if metric == PASS_RATE else DEFAULT_MIN_EFFECT_SCORE
    if min_effect is None:
        return default
    if isinstance(min_effect, Mapping):
        return float(min_effect.get(metric, default))
    return float(min_effect)


def _conclude(effect: float | None, p_adjusted: float, alpha: float, minimum: float) -> str:
    """Rule 6, for a tested row."""
    if p_adjusted >= alpha or effect is None:
        return "no_change"
    if effect == 0.0 or abs(effect) < minimum - _EFFECT_TOLERANCE:
        return "trivial"
    return "regression" if effect < 0 else "improvement"


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _plain(value: Any) -> Any:
    """A JSON-safe plain value: numpy scalars unwrapped, NaN and infinity to ``None``."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


# --------------------------------------------------------------------------
# The table


_HEADERS = ("metric", "n", "before", "after", "change", "95% CI", "test", "p adj", "conclusion")
_RIGHT_ALIGNED = {1, 2, 3, 4}


def format_comparison_table(rows: Sequence[ComparisonRow], width: int = 100) -> list[str]:
    """The comparison as plain text lines, each at most ``width`` characters.

    One group per partition: a line with its name, then one line per metric
    (pass rate in percent and points, scores in their own units), each row's
    note on an indented line below, and a legend. Column gaps shrink and long
    metric names are shortened to keep within ``width``; below about 82
    columns the numbers no longer fit and rows run over.
    """
    if not rows:
        return ["no cases to compare with the baseline"]
    cells = [_cells(row) for row in rows]
    widths = [max(len(_HEADERS[i]), *(len(c[i]) for c in cells)) for i in range(len(_HEADERS))]
    widths[0] += 2  # metric names are indented under their partition
    gap = 2
    for gap in (2, 1):
        if sum(widths) + gap * (len(widths) - 1) <= width:
            break
    overflow = sum(widths) + gap * (len(widths) - 1) - width
    if overflow > 0:
        widths[0] = max(len(_HEADERS[0]) + 2, widths[0] - overflow)

    def line(values: Sequence[str]) -> str:
        parts = []
        for i, value in enumerate(values):
            if len(value) > widths[i]:
                value = value[: widths[i] - 1] + "~"
            parts.append(value.rjust(widths[i]) if i in _RIGHT_ALIGNED else value.ljust(widths[i]))
        return (" " * gap).join(parts).rstrip()

    lines = [line(_HEADERS)]
    partition: str | None = None
    for row, row_cells in zip(rows, cells):
        if row.partition != partition:
            partition = row.partition
            lines.append(_clip(partition or "(no partition)", width))
        lines.append(line(["  " + row_cells[0], *row_cells[1:]]))
        if row.note:
            lines.extend(
                textwrap.wrap(
                    f"note: {row.note}",
                    width=width,
                    initial_indent="    ",
                    subsequent_indent="      ",
                )
            )
    n_tested = sum(1 for row in rows if row.p_adjusted is not None)
    legend = (
        "change = current - baseline, higher is better (pass rate in points); "
        "n = shared cases for paired tests (mcnemar, wilcoxon), baseline/current "
        f"cases for unpaired ones (fisher, welch); p adj = Holm over {n_tested} tested rows"
    )
    lines.extend(textwrap.wrap(legend, width=width))
    return lines


def _cells(row: ComparisonRow) -> list[str]:
    is_rate = row.metric == PASS_RATE
    n = str(row.n_pairs) if row.test in PAIRED_TESTS else f"{row.n_baseline}/{row.n_current}"
    if row.ci_low is None or row.ci_high is None:
        interval = "-"
    elif is_rate:
        interval = f"[{row.ci_low * 100:+.1f}, {row.ci_high * 100:+.1f}]pt"
    else:
        interval = f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
    return [
        row.metric,
        n,
        _value(row.baseline_value, is_rate),
        _value(row.current_value, is_rate),
        _change(row.effect, is_rate),
        interval,
        row.test,
        _p(row.p_adjusted),
        row.conclusion,
    ]


def _value(value: float | None, is_rate: bool) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f}%" if is_rate else f"{value:.3f}"


def _change(value: float | None, is_rate: bool) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.1f}pt" if is_rate else f"{value:+.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"
