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
