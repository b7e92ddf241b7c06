"""The ``--llmeval-report`` JSON file, and the one path from a run's facts to its verdict.

A run is reduced to :class:`RunFacts`: its records plus the few things that are
not in them (settings, model usage, failures of ordinary tests, the baseline
cases it was compared with). :func:`summarize` turns facts into the summary,
the comparison and the verdict. The plugin, ``pytest-llmeval show`` and
``pytest-llmeval merge`` all go through it, which is why a merged report of
shards has the verdict of one unsplit run: the facts of the shards add up to
the facts of the whole.

The file (``schema_version`` 1, keys sorted, records sorted by node id) holds
the facts and, for readers that do not want to recompute, what was derived
from them (``summary``, ``comparison``, ``verdict``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmeval import baseline as baseline_file
from pytest_llmeval.records import Record

if TYPE_CHECKING:
    from pytest_llmeval.compare import ComparisonRow
    from pytest_llmeval.summary import RunSummary

SCHEMA_VERSION = 1
KIND = baseline_file.REPORT_KIND
REPORT_HINT = "pass a file written by pytest --llmeval-report"


class ReportError(Exception):
    """A report that cannot be read or merged; the message names the file and the fix."""


@dataclass
class RunFacts:
    """Everything a verdict is computed from, as plain data.

    ``baseline`` is ``{"path": shown path, "cases": {nodeid: case}}`` holding the
    baseline cases of the items this run ran (None: no baseline compared).
    ``other_failures`` are node ids of failed non-llmeval tests and collection
    errors; ``unexplained_failures`` counts failures pytest saw that nothing here
    accounts for. ``notes`` say what this one run did (saved a baseline, ...);
    they are not carried into a merge.
    """

    records: list[Record]
    partitions: list[str]
    thresholds: dict[str, float]
    alpha: float = 0.05
    min_effect: float | dict[str, float] | None = None
    fail_on_regression: bool = False
    counters: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    other_failures: list[str] = field(default_factory=list)
    unexplained_failures: int = 0
    baseline: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def settings(self) -> dict[str, Any]:
        """The settings that shape the verdict (shards of one suite must agree on them)."""
        return {"partitions": list(self.partitions), "thresholds": dict(sorted(self.thresholds.items())),
                "alpha": self.alpha, "min_effect": self.min_effect, "fail_on_regression": self.fail_on_regression}


def comparison_of(facts: RunFacts) -> tuple[list[ComparisonRow] | None, str | None]:
    """The baseline comparison of a run (None without a baseline) and why it could not be made, if so."""
    if facts.baseline is None:
        return None, None
    from pytest_llmeval.compare import compare_runs

    current = baseline_file.cases_from_records(facts.records)
    try:
        return compare_runs(facts.baseline["cases"], current, alpha=facts.alpha, min_effect=facts.min_effect), None
    except ValueError as exc:  # a score named pass_rate, an unknown outcome, a bad min_effect
        return None, f"no comparison with the baseline: {exc}"


def summarize(facts: RunFacts) -> RunSummary:
    """The summary and verdict of a run, from its facts alone."""
    from pytest_llmeval.summary import build_summary

    comparison, problem = comparison_of(facts)
    return build_summary(
        facts.records, facts.partitions, facts.thresholds, counters=facts.counters, latencies=facts.latencies,
        other_failures=facts.other_failures, unexplained_failures=facts.unexplained_failures,
        comparison=comparison, fail_on_regression=facts.fail_on_regression,
        baseline_path=None if facts.baseline is None else facts.baseline["path"],
        baseline_cases=0 if facts.baseline is None else len(facts.baseline["cases"]),
        notes=[*facts.notes, *([problem] if problem else [])],
    )


def to_document(facts: RunFacts, summary: RunSummary) -> dict[str, Any]:
    """The report as plain data: the facts, then what was derived from them."""
    return {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "settings": facts.settings(),
        "records": [record.to_dict() for record in sorted(facts.records, key=lambda r: r.nodeid)],
        "counters": {name: float(value) for name, value in sorted(facts.counters.items())},
        # Sorted: the order calls finished in says nothing and would only churn diffs.
        "latencies": sorted(round(float(x), 6) for x in facts.latencies),
        "other_failures": sorted(facts.other_failures),
        "unexplained_failures": facts.unexplained_failures,
        "baseline": facts.baseline,
        "notes": list(facts.notes),
        "summary": summary.to_dict(),
        "comparison": None if summary.comparison is None else [row.to_dict() for row in summary.comparison],
        "verdict": summary.verdict.to_dict(),
    }


def write(path: Path, facts: RunFacts, summary: RunSummary) -> None:
    """Write the report atomically (sorted, versioned)."""
    baseline_file.write_atomic(path, baseline_file.dumps(to_document(facts, summary)))


def load(path: Path, shown: str | None = None) -> RunFacts:
    """The facts stored in a report file, or a :class:`ReportError` naming the file and the fix."""
    shown = shown or str(path)
    try:
        document = baseline_file.read_json(path, shown, "report")
    except baseline_file.BaselineError as exc:
        raise ReportError(f"{exc.problem}; {exc.fix or REPORT_HINT}") from None
    return facts_from_document(document, shown)


def facts_from_document(document: Mapping[str, Any], shown: str) -> RunFacts:
    """Inverse of :func:`to_document` for the facts (the derived parts are recomputed, not read)."""
    kind = document.get("kind")
    if kind == baseline_file.KIND:
        raise ReportError(f"report: {shown} is a baseline, not a report; {REPORT_HINT}")
    if kind != KIND:
        raise ReportError(f"report: {shown} is not a pytest-llmeval report (kind {kind!r}); {REPORT_HINT}")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(f"report: {shown} has schema version {version!r} but this pytest-llmeval reads version "
                          f"{SCHEMA_VERSION}; rerun pytest with --llmeval-report to write it anew")
    try:
        settings = document["settings"]
        records = [Record.from_dict(data) for data in document["records"]]
        baseline = document.get("baseline")
        if baseline is not None:
            baseline = {"path": str(baseline["path"]),
                        "cases": baseline_file.validate_cases(baseline.get("cases"), f"report: {shown}: baseline")}
        return RunFacts(
            records=records,
            partitions=list(settings["partitions"]),
            thresholds={str(k): float(v) for k, v in settings["thresholds"].items()},
            alpha=float(settings["alpha"]),
            min_effect=settings.get("min_effect"),
            fail_on_regression=bool(settings.get("fail_on_regression", False)),
            counters={str(k): float(v) for k, v in document.get("counters", {}).items()},
            latencies=[float(x) for x in document.get("latencies", [])],
            other_failures=[str(n) for n in document.get("other_failures", [])],
            unexplained_failures=int(document.get("unexplained_failures", 0)),
            baseline=baseline,
            notes=[str(n) for n in document.get("notes", [])],
        )
    except baseline_file.BaselineError as exc:
        raise ReportError(str(exc)) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportError(f"report: {shown} is damaged ({type(exc).__name__}: {exc}); {REPORT_HINT}") from None


def merge(shards: Sequence[tuple[str, RunFacts]]) -> RunFacts:
    """Join the facts of shard reports (``(shown name, facts)`` pairs) into those of one run.

    Shards must have run with the same settings and baseline file, and no item
    may be in two shards. Counters and latencies add up; failures and baseline
    cases are joined. Shard notes are dropped: they describe one shard's run.
    """
    if not shards:
        raise ReportError("merge: no reports given; pass the reports of every shard")
    first_name, first = shards[0]
    owner: dict[str, str] = {}
    records: list[Record] = []
    cases: dict[str, Any] = {}
    counters: dict[str, float] = {}
    latencies: list[float] = []
    other: set[str] = set()
    unexplained = 0
    for name, facts in shards:
        if facts.settings() != first.settings():
            key = next(k for k, v in facts.settings().items() if first.settings()[k] != v)
            raise ReportError(
                f"merge: {first_name} and {name} were run with different {key} ({first.settings()[key]!r} vs "
                f"{facts.settings()[key]!r}); run every shard with the same options"
            )
        if (facts.baseline is None) != (first.baseline is None) or (
            facts.baseline is not None and first.baseline is not None and facts.baseline["path"] != first.baseline["path"]
        ):
            raise ReportError(f"merge: {first_name} and {name} were compared with different baselines; give every "
                              "shard the same baseline file")
        for record in facts.records:
            if record.nodeid in owner:
                raise ReportError(f"merge: {record.nodeid} is in both {owner[record.nodeid]} and {name}; each "
                                  "shard must run different items (check the -k or split options)")
            owner[record.nodeid] = name
            records.append(record)
        for case_id, case in (facts.baseline or {}).get("cases", {}).items():
            if case_id in cases and cases[case_id] != case:
                raise ReportError(f"merge: the baseline case {case_id} differs between shards (one is {name}); "
                                  "give every shard the same baseline file")
            cases[case_id] = case
        for counter, value in facts.counters.items():
            counters[counter] = counters.get(counter, 0.0) + value
        latencies.extend(facts.latencies)
        other.update(facts.other_failures)
        unexplained += facts.unexplained_failures
    return RunFacts(
        records=sorted(records, key=lambda r: r.nodeid), partitions=list(first.partitions),
        thresholds=dict(first.thresholds), alpha=first.alpha, min_effect=first.min_effect,
        fail_on_regression=first.fail_on_regression, counters=dict(sorted(counters.items())),
        latencies=sorted(latencies), other_failures=sorted(other), unexplained_failures=unexplained,
        baseline=None if first.baseline is None else {"path": first.baseline["path"], "cases": dict(sorted(cases.items()))},
    )


def cases_of_file(path: Path, shown: str) -> tuple[dict[str, Any], RunFacts | None]:
    """The cases in a baseline or a report file (``compare`` accepts either), and the report's facts if a report."""
    try:
        document = baseline_file.read_json(path, shown, "compare")
    except baseline_file.BaselineError as exc:
        fix = exc.fix or "pass a baseline (--llmeval-save-baseline) or a report (--llmeval-report)"
        raise ReportError(f"{exc.problem}; {fix}") from None
    if document.get("kind") == KIND:
        facts = facts_from_document(document, shown)
        return baseline_file.cases_from_records(facts.records), facts
    try:
        return baseline_file.load(path, shown, "compare"), None
    except baseline_file.BaselineError as exc:
        raise ReportError(str(exc)) from None
