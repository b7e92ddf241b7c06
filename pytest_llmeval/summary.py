"""The ``llmeval summary``: pure functions from records to numbers to lines.

Hooks only gather records and write these lines; everything here is testable
without pytest and reproducible from the records alone. The same functions
render the summary in the plugin and in ``pytest-llmeval show``/``merge``.

The order of a summary, top to bottom: one row per partition (counts, pass
rate, its 95% Wilson interval) with the mean of each metric; model usage
(calls, cache hits, tokens, cost, latency) and the judge's position-bias rate;
the gates; the comparison with the baseline; notes; the verdict.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_llmeval.records import Record

if TYPE_CHECKING:
    from pytest_llmeval.compare import ComparisonRow

WIDTH = 100  # every line fits in 100 columns, whatever the terminal

# A threshold is met at or above it; the tolerance keeps 0.95 reached by 19/20,
# whose float quotient may fall a hair below.
_RATE_TOLERANCE = 1e-12


# --- per partition ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricStat:
    """One metric over one partition's scored cases.

    ``n`` counts the values averaged: cases neither skipped nor errored (an
    errored case measured nothing, as in the baseline comparison) whose value is
    a finite number. ``passed``/``failed`` count the metric's own verdicts.
    """

    name: str
    n: int
    mean: float | None
    minimum: float | None
    maximum: float | None
    passed: int
    failed: int


@dataclass(frozen=True)
class PartitionRow:
    """Counts for one partition. Skipped items are not part of the rate; errored ones count against it."""

    partition: str
    items: int
    passed: int
    failed: int
    errored: int
    skipped: int
    metrics: tuple[MetricStat, ...] = ()

    @property
    def ran(self) -> int:
        return self.passed + self.failed + self.errored

    @property
    def not_passed(self) -> int:
        return self.failed + self.errored

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.ran if self.ran else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """95% Wilson interval of the pass rate (None when nothing ran)."""
        if not self.ran:
            return None
        from pytest_llmeval.stats import wilson_interval  # numpy/scipy: only once a summary is drawn

        return wilson_interval(self.passed, self.ran)


def partition_rows(records: Iterable[Record], partitions: Sequence[str]) -> list[PartitionRow]:
    """One row per partition that has records, in the configured partition order."""
    by_partition: dict[str, list[Record]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record)
    order = [p for p in partitions if p in by_partition] + sorted(p for p in by_partition if p not in partitions)
    rows = []
    for p in order:
        counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for record in by_partition[p]:
            counts[record.outcome] += 1
        rows.append(PartitionRow(
            partition=p, items=len(by_partition[p]), passed=counts["passed"], failed=counts["failed"],
            errored=counts["error"], skipped=counts["skipped"], metrics=metric_stats(by_partition[p]),
        ))
    return rows


def metric_stats(records: Iterable[Record]) -> tuple[MetricStat, ...]:
    """Per metric name (sorted): how many values, their mean, min and max, and the metric's verdicts."""
    values: dict[str, list[float]] = {}
    verdicts: dict[str, list[int]] = {}
    for record in records:
        if record.outcome == "skipped":
            continue
        for name, entry in record.metrics.items():
            counts = verdicts.setdefault(name, [0, 0])
            if entry.get("passed") is True:
                counts[0] += 1
            elif entry.get("passed") is False:
                counts[1] += 1
            value = entry.get("value")
            bucket = values.setdefault(name, [])
            if record.outcome != "error" and isinstance(value, (int, float)) and math.isfinite(value):
                bucket.append(float(value))
    stats = []
    for name in sorted(verdicts):
        got = values.get(name, [])
        stats.append(MetricStat(
            name=name, n=len(got), mean=math.fsum(got) / len(got) if got else None,
            minimum=min(got) if got else None, maximum=max(got) if got else None,
            passed=verdicts[name][0], failed=verdicts[name][1],
        ))
    return tuple(stats)


def position_bias(records: Iterable[Record]) -> tuple[int, int]:
    """(pairwise verdicts flagged position-biased, all pairwise verdicts).

    A pairwise judge result carries a boolean ``position_bias`` (its verdict
    changed when the two answers swapped places); any metric entry with one counts.
    """
    biased = total = 0
    for record in records:
        if record.outcome == "skipped":
            continue
        for entry in record.metrics.values():
            flag = entry.get("position_bias")
            if isinstance(flag, bool):
                total += 1
                biased += flag
    return biased, total


# --- gates and the verdict ----------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """One partition's gate. ``threshold`` None: no gate, any failed item fails the run."""

    partition: str
    threshold: float | None
    ran: int
    passed: int

    @property
    def not_passed(self) -> int:
        return self.ran - self.passed

    @property
    def rate(self) -> float | None:
        return self.passed / self.ran if self.ran else None

    @property
    def met(self) -> bool:
        if self.threshold is None:
            return self.not_passed == 0
        # Nothing ran (all skipped): there is no evidence against the partition.
        return self.rate is None or self.rate >= self.threshold - _RATE_TOLERANCE

    @property
    def tolerated(self) -> int:
        """Failed or errored items this gate lets pass (they still show as failed)."""
        return self.not_passed if self.met else 0


def gates(rows: Sequence[PartitionRow], thresholds: Mapping[str, float]) -> list[Gate]:
    """One gate per partition row, in row order."""
    return [Gate(row.partition, thresholds.get(row.partition), row.ran, row.passed) for row in rows]


@dataclass(frozen=True)
class Verdict:
    """Whether the run passes, and every reason it does not (empty when it passes)."""

    passed: bool
    reasons: tuple[str, ...] = ()
    tolerated: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons), "tolerated": self.tolerated}


def decide(
    run_gates: Sequence[Gate],
    *,
    other_failures: Sequence[str] = (),
    comparison: Sequence[ComparisonRow] | None = None,
    fail_on_regression: bool = False,
    budget_exhausted: bool = False,
    unexplained_failures: int = 0,
) -> Verdict:
    """The run's verdict from its gates and everything else that can fail it.

    ``other_failures`` are node ids of failed tests that are not llmeval items
    (and collection errors): they always fail the run. ``unexplained_failures``
    counts failures pytest saw that no record or node id accounts for (another
    plugin's): they fail it too, so the plugin never hides a failure it does not own.
    """
    reasons: list[str] = []
    for gate in run_gates:
        if gate.met:
            continue
        if gate.threshold is None:
            reasons.append(
                f"{gate.partition}: {gate.not_passed} of {gate.ran} not passed and it has no threshold "
                f"(--llmeval-threshold {gate.partition}=RATE would tolerate some)"
            )
        else:
            reasons.append(
                f"{gate.partition}: pass rate {_pct(gate.rate)} is below its threshold {_pct(gate.threshold)}"
            )
    if other_failures:
        shown = ", ".join(other_failures[:3]) + (", ..." if len(other_failures) > 3 else "")
        reasons.append(f"{_plural(len(other_failures), 'other test')} failed ({shown})")
    if unexplained_failures:
        reasons.append(f"{_plural(unexplained_failures, 'failure')} reported outside pytest-llmeval's records")
    if fail_on_regression and comparison:
        regressed = [f"{row.partition} {row.metric}" for row in comparison if row.conclusion == "regression"]
        if regressed:
            reasons.append(f"{_plural(len(regressed), 'regression')} against the baseline ({', '.join(regressed)})")
    if budget_exhausted:
        reasons.append("the --llmeval-max-cost budget was spent and paid calls stopped")
    tolerated = sum(gate.tolerated for gate in run_gates)
    return Verdict(not reasons, tuple(reasons), tolerated)


# --- the whole summary ---------------------------------------------------------------------------


@dataclass
class RunSummary:
    """Everything the ``llmeval summary`` shows, computed; :func:`render` turns it into lines."""

    rows: list[PartitionRow]
    gates: list[Gate]
    verdict: Verdict
    counters: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    position_bias: tuple[int, int] = (0, 0)
    comparison: list[ComparisonRow] | None = None
    baseline_path: str | None = None
    baseline_cases: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report (sorted when dumped); the verdict is stored beside it."""
        biased, pairwise = self.position_bias
        return {
            "partitions": [
                {**{k: v for k, v in asdict(row).items() if k != "metrics"},
                 "pass_rate": row.pass_rate, "interval_95": list(row.interval) if row.interval else None,
                 "metrics": {m.name: {k: v for k, v in asdict(m).items() if k != "name"} for m in row.metrics}}
                for row in self.rows
            ],
            "gates": [
                {"partition": g.partition, "threshold": g.threshold, "ran": g.ran, "passed": g.passed,
                 "rate": g.rate, "met": g.met, "tolerated": g.tolerated}
                for g in self.gates
            ],
            "position_bias": {"biased": biased, "pairwise": pairwise},
        }


def build_summary(
    records: Sequence[Record],
    partitions: Sequence[str],
    thresholds: Mapping[str, float],
    *,
    counters: Mapping[str, float] | None = None,
    latencies: Sequence[float] = (),
    other_failures: Sequence[str] = (),
    unexplained_failures: int = 0,
    comparison: Sequence[ComparisonRow] | None = None,
    fail_on_regression: bool = False,
    baseline_path: str | None = None,
    baseline_cases: int = 0,
    notes: Sequence[str] = (),
) -> RunSummary:
    """Compute the summary and the verdict of a run from its records and facts."""
    rows = partition_rows(records, partitions)
    run_gates = gates(rows, thresholds)
    counters = dict(counters or {})
    verdict = decide(
        run_gates, other_failures=other_failures, comparison=comparison, fail_on_regression=fail_on_regression,
        budget_exhausted=bool(counters.get("budget_exhausted")), unexplained_failures=unexplained_failures,
    )
    return RunSummary(
        rows=rows, gates=run_gates, verdict=verdict, counters=counters, latencies=list(latencies),
        position_bias=position_bias(records), comparison=None if comparison is None else list(comparison),
        baseline_path=baseline_path, baseline_cases=baseline_cases, notes=list(notes),
    )


def render(summary: RunSummary, verbosity: int = 0) -> list[str]:
    """The summary as lines of at most :data:`WIDTH` columns.

    ``verbosity`` < 0 (``-q``): one line per partition, a comparison tally, the
    verdict. 0: the full summary with each partition's metric means. > 0 (``-v``):
    a per-metric table (n, mean, min, max, verdicts) in place of the means lines.
    """
    if verbosity < 0:
        name_width = min(20, max([0, *(len(row.partition) for row in summary.rows)]))
        lines = [_short_partition_line(row, gate, name_width) for row, gate in zip(summary.rows, summary.gates)]
        if summary.comparison is not None:
            lines.append(_comparison_tally(summary))
        return lines + _verdict_lines(summary.verdict)
    lines = summary_lines(summary.rows, means=verbosity == 0)
    if verbosity > 0:
        lines += ["", *metric_table_lines(summary.rows)]
    usage = usage_lines(summary.counters, summary.latencies)
    biased, pairwise = summary.position_bias
    if pairwise:
        usage.append(f"judge position bias: {biased} of {pairwise} pairwise verdicts ({_pct(biased / pairwise)})")
    if usage:
        lines += ["", *usage]
    lines += ["", *gate_lines(summary.gates)]
    if summary.comparison is not None:
        from pytest_llmeval.compare import format_comparison_table

        lines += ["", comparison_header(summary.baseline_path, summary.baseline_cases),
                  *format_comparison_table(summary.comparison, width=WIDTH)]
    if summary.notes:
        lines += [""] + [line for note in summary.notes for line in _wrap(f"note: {note}")]
    return lines + [""] + _verdict_lines(summary.verdict)


def summary_lines(rows: Sequence[PartitionRow], means: bool = True) -> list[str]:
    """The partition table with 95% Wilson intervals; ``means`` adds a line of metric means per row."""
    name_width = min(20, max([len("partition"), *(len(row.partition) for row in rows)]))
    header = (f"{'partition':<{name_width}} {'items':>6} {'passed':>7} {'failed':>7} {'errored':>8} "
              f"{'skipped':>8} {'pass rate':>10}  95% CI")
    lines = [header]
    for row in rows:
        lines.append(
            f"{_clip(row.partition, name_width):<{name_width}} {row.items:>6} {row.passed:>7} {row.failed:>7} "
            f"{row.errored:>8} {row.skipped:>8} {_pct(row.pass_rate):>10}  {_interval(row.interval)}"
        )
        scored = [m for m in row.metrics if m.mean is not None]
        if means and scored:
            text = ", ".join(f"{m.name} {m.mean:.3f}" for m in scored)
            lines.extend(_wrap(f"mean: {text}", first="  "))
    return lines


def metric_table_lines(rows: Sequence[PartitionRow]) -> list[str]:
    """``-v``: one line per partition and metric."""
    header = (f"{'partition':<16} {'metric':<28} {'n':>5} {'mean':>9} {'min':>9} {'max':>9} "
              f"{'passed':>7} {'failed':>7}")
    lines = [header]
    for row in rows:
        for m in row.metrics:
            lines.append(
                f"{_clip(row.partition, 16):<16} {_clip(m.name, 28):<28} {m.n:>5} {_num(m.mean):>9} "
                f"{_num(m.minimum):>9} {_num(m.maximum):>9} {m.passed:>7} {m.failed:>7}"
            )
    if len(lines) == 1:
        lines.append("(no metrics recorded)")
    return lines


def gate_lines(run_gates: Sequence[Gate]) -> list[str]:
    """Each partition's gate: its rate against its threshold, met or FAILED."""
    lines = ["gates (a partition at or above its threshold tolerates its failed items):"]
    name_width = min(20, max([0, *(len(g.partition) for g in run_gates)]))
    for gate in run_gates:
        counted = f"{_pct(gate.rate):>6} ({gate.passed}/{gate.ran})"
        rule = f"threshold {_pct(gate.threshold)}" if gate.threshold is not None else "no threshold"
        lines.append(f"  {_clip(gate.partition, name_width):<{name_width}}  {counted:<18} {rule:<18} "
                     f"{_gate_status(gate)}")
    return lines


def _gate_status(gate: Gate) -> str:
    if not gate.met:
        return "FAILED"
    if gate.tolerated:
        return f"met ({_plural(gate.tolerated, 'failed item')} tolerated)"
    return "met"


def _short_partition_line(row: PartitionRow, gate: Gate, name_width: int) -> str:
    rule = f"threshold {_pct(gate.threshold)}" if gate.threshold is not None else "no threshold"
    status = "FAILED" if not gate.met else f"met, {gate.tolerated} tolerated" if gate.tolerated else "met"
    counted = f"{row.passed}/{row.ran} passed"
    return _clip(
        f"{_clip(row.partition, name_width):<{name_width}}  {counted:>15} {_pct(row.pass_rate):>6} "
        f"{_interval(row.interval):<16}  {rule}: {status}",
        WIDTH,
    )


def comparison_header(baseline_path: str | None, cases: int) -> str:
    """The line above the comparison table (also printed by ``pytest-llmeval compare``)."""
    return _clip(f"comparison with the baseline {baseline_path} ({_plural(cases, 'case')} of this run in it):", WIDTH)


def _comparison_tally(summary: RunSummary) -> str:
    counts: dict[str, int] = {}
    for row in summary.comparison or []:
        counts[row.conclusion] = counts.get(row.conclusion, 0) + 1
    text = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "nothing to compare"
    return _clip(f"baseline {summary.baseline_path}: {text}", WIDTH)


def _verdict_lines(verdict: Verdict) -> list[str]:
    if verdict.passed:
        tolerated = f" ({_plural(verdict.tolerated, 'failed item')} tolerated by gates)" if verdict.tolerated else ""
        return [f"verdict: PASSED{tolerated}"]
    return _wrap("verdict: FAILED: " + "; ".join(verdict.reasons), indent="  ")


def usage_lines(counters: Mapping[str, float], latencies: Sequence[float]) -> list[str]:
    """Calls, cache hits, tokens, cost and latency of the run's model calls (empty if none).

    Cost stays "unknown" for calls whose price litellm does not know, rather than
    counting them as free.
    """
    calls = int(counters.get("calls", 0))
    hits = int(counters.get("cache_hits", 0))
    if not calls and not hits and not counters.get("call_errors"):
        return []
    tokens = int(counters.get("total_tokens", 0))
    unknown = int(counters.get("cost_unknown_calls", 0))
    cost = counters.get("cost_usd", 0.0)
    if unknown and unknown == calls:
        cost_text = "unknown"
    elif unknown:
        cost_text = f"${cost:.4f} + unknown for {unknown} calls"
    else:
        cost_text = f"${cost:.4f}"
    parts = [f"calls {calls}", f"cache hits {hits}", f"tokens {tokens}", f"cost {cost_text}"]
    if latencies:
        ordered = sorted(latencies)
        parts.append(f"latency p50 {_nearest_rank(ordered, 0.5):.2f}s p95 {_nearest_rank(ordered, 0.95):.2f}s")
    extra = []
    if counters.get("retries"):
        extra.append(f"retries {int(counters['retries'])}")
    if counters.get("call_errors"):
        extra.append(f"failed calls {int(counters['call_errors'])}")
    if counters.get("budget_exhausted"):
        extra.append("budget spent: paid calls stopped")
    return [", ".join(parts)] + ([", ".join(extra)] if extra else [])


def _nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: a latency some call really had (95% of calls took at most p95)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- formatting helpers -----------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _interval(interval: tuple[float, float] | None) -> str:
    return "-" if interval is None else f"[{100 * interval[0]:.1f}%, {100 * interval[1]:.1f}%]"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _wrap(text: str, first: str = "", indent: str = "    ") -> list[str]:
    return textwrap.wrap(text, width=WIDTH, initial_indent=first, subsequent_indent=indent,
                         break_on_hyphens=False) or [""]
