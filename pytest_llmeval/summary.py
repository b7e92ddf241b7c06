"""The ``llmeval summary``: pure functions from records to numbers to lines.

Hooks only gather records and write these lines; everything here is testable
without pytest and reproducible from the records alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pytest_llmeval.records import Record


@dataclass(frozen=True)
class PartitionRow:
    """Counts for one partition. Skipped items are not part of the rate."""

    partition: str
    items: int
    passed: int
    failed: int
    errored: int
    skipped: int

    @property
    def ran(self) -> int:
        return self.passed + self.failed + self.errored

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.ran if self.ran else None


def partition_rows(records: Iterable[Record], partitions: Sequence[str]) -> list[PartitionRow]:
    """One row per partition that has records, in the configured partition order."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        bucket = counts.setdefault(record.partition, {"passed": 0, "failed": 0, "error": 0, "skipped": 0})
        bucket[record.outcome] += 1
    order = [p for p in partitions if p in counts] + sorted(p for p in counts if p not in partitions)
    return [
        PartitionRow(
            partition=p,
            items=sum(counts[p].values()),
            passed=counts[p]["passed"],
            failed=counts[p]["failed"],
            errored=counts[p]["error"],
            skipped=counts[p]["skipped"],
        )
        for p in order
    ]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def summary_lines(rows: Sequence[PartitionRow]) -> list[str]:
    """The partition table, at most 100 columns wide."""
    header = f"{'partition':<14} {'items':>6} {'passed':>7} {'failed':>7} {'errored':>8} {'skipped':>8} {'pass rate':>10}"
    lines = [header]
    for row in rows:
        lines.append(
            f"{row.partition:<14} {row.items:>6} {row.passed:>7} {row.failed:>7} {row.errored:>8} "
            f"{row.skipped:>8} {_rate(row.pass_rate):>10}"
        )
    return lines


def usage_lines(counters: dict[str, float], latencies: Sequence[float]) -> list[str]:
    """Calls, cache hits, tokens, cost and latency of the run's model calls (empty if none)."""
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
        p50 = ordered[int(0.5 * (len(ordered) - 1))]
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        parts.append(f"latency p50 {p50:.2f}s p95 {p95:.2f}s")
    extra = []
    if counters.get("retries"):
        extra.append(f"retries {int(counters['retries'])}")
    if counters.get("call_errors"):
        extra.append(f"failed calls {int(counters['call_errors'])}")
    if counters.get("budget_exhausted"):
        extra.append("budget spent: paid calls stopped")
    return [", ".join(parts)] + ([", ".join(extra)] if extra else [])
