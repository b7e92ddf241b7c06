"""The end of the run: summary, gates, baseline, report and exit status.

One :class:`VerdictPlugin` per process, registered next to the session. Workers
only load the baseline (read-only, so failure reports can show baseline scores);
the controller alone computes, writes files and prints, so ``-n 0`` and ``-n 2``
give the same summary and files. (Metrics become JUnit properties where the item
runs, in the session's report hook.)

The run fails through ``session.exitstatus`` in ``pytest_sessionfinish``, never
by raising, and only a status of OK or TESTS_FAILED is ever changed: an
interrupt, a usage or internal error, or "no tests collected" stays as pytest
set it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmeval import settings

if TYPE_CHECKING:
    from pytest_llmeval.report import RunFacts
    from pytest_llmeval.session import LLMEvalSession
    from pytest_llmeval.summary import RunSummary


class VerdictPlugin:
    """Owns the verdict of one run (see the module docstring)."""

    def __init__(self, session: LLMEvalSession) -> None:
        self.session = session
        self.config = config = session.config
        # Parsed now so a bad value is a usage error before anything runs.
        self.thresholds = settings.thresholds(config)
        self.alpha: float = settings.resolve(config, "alpha")
        self.min_effect: float | dict[str, float] | None = settings.resolve(config, "min_effect")
        self.fail_on_regression = bool(settings.resolve(config, "fail_on_regression"))
        self.save_baseline = bool(settings.resolve(config, "save_baseline"))
        report = settings.resolve(config, "report")
        # Like --junitxml, the report path is relative to where pytest was started.
        self.report_path = None if report is None else config.invocation_params.dir / report
        # The baseline belongs to the project, like the cache: relative to the rootdir.
        self.baseline_path = config.rootpath / settings.resolve(config, "baseline")
        from pytest_llmeval.baseline import display_path

        self.baseline_shown = display_path(self.baseline_path, config.rootpath)
        self.baseline_cases: dict[str, dict[str, Any]] | None = None
        self.notes: list[str] = []
        # Controller: failed reports (collection and test phases) per node id, counted
        # as pytest counts them, to tell tolerated llmeval failures from all others.
        self._failed: dict[str, int] = {}
        self.summary: RunSummary | None = None

    # --- baseline: loaded by every process, before any item runs --------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.config.option.collectonly:
            return
        self.load_baseline()
        self.session.baseline_lookup = self.baseline_case  # type: ignore[attr-defined]

    def baseline_case(self, nodeid: str) -> dict[str, Any] | None:
        """This item's case in the loaded baseline (shown in its failure report)."""
        return None if self.baseline_cases is None else self.baseline_cases.get(nodeid)

    def load_baseline(self) -> None:
        """Read the baseline; a problem is a usage error when the user relies on the file, else a note."""
        from pytest_llmeval.baseline import BaselineError, BaselineMissing, load

        try:
            self.baseline_cases = load(self.baseline_path, self.baseline_shown)
        except BaselineError as exc:
            if self.session.is_worker:
                return  # the controller has already judged the file
            missing = isinstance(exc, BaselineMissing)
            if self.save_baseline:
                if not missing:
                    self.notes.append(f"{exc.problem}: replaced by this run's baseline")
            elif missing and not (self._baseline_named() or self.fail_on_regression):
                self.notes.append(f"{exc} to compare later runs with this one")
            else:
                raise pytest.UsageError(str(exc)) from None

    def _baseline_named(self) -> bool:
        setting = settings.BY_NAME["baseline"]
        return bool(self.config.getoption(setting.dest, default=None) or self.config.getini(setting.ini_key))

    # --- controller: count failures as pytest does ----------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note_failure(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note_failure(report)

    def _note_failure(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        # The same rule as pytest's Session.testsfailed, so the two counts can be compared.
        if report.failed and not hasattr(report, "wasxfail") and not self.session.is_worker:
            self._failed[report.nodeid] = self._failed.get(report.nodeid, 0) + 1

    # --- controller: decide, write, set the exit status -----------------------------------------

    @pytest.hookimpl(trylast=True)  # after the session has counted a spent budget
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.session.is_worker:
            return
        status = session.exitstatus
        # Only a finished run gets a verdict: interrupts, usage and internal errors and
        # "no tests collected" keep pytest's status.
        decided = status in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        completed = decided and not (session.shouldfail or session.shouldstop)  # -x/--maxfail stop early
        summary = None
        # A shard without llmeval items still writes its report: its ordinary failures count in a merge.
        if self.session.records or self.report_path is not None:
            summary = self.conclude(session, completed)
            if self.session.records:
                self.summary = summary  # printed by pytest_terminal_summary
        if not decided:
            return
        if summary is None:
            # No llmeval items ran, but the llm fixture may have spent the budget.
            if self.session.counters.get("budget_exhausted"):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        if not summary.verdict.passed:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif status == pytest.ExitCode.TESTS_FAILED and completed and self._all_failures_accounted(session):
            # Every failure pytest counted is an llmeval item its gate tolerates.
            session.exitstatus = pytest.ExitCode.OK

    def conclude(self, session: pytest.Session, completed: bool) -> RunSummary:
        """Save the baseline if asked, compute the summary and write the report."""
        if self.session.records and not completed:
            self.notes.append("the run stopped early: the summary and verdict cover only the items that ran")
        if self.save_baseline and self.session.records:
            self.write_baseline(completed)
        facts = self.facts(session)
        from pytest_llmeval.report import summarize, write

        summary = summarize(facts)
        if self.report_path is not None:
            write(self.report_path, facts, summary)
        return summary

    def facts(self, session: pytest.Session) -> RunFacts:
        """This run's facts, for the summary and the report."""
        from pytest_llmeval.report import RunFacts

        records = self.session.records
        baseline = None
        if self.baseline_cases is not None:
            # Only the cases this run ran: a -k or -m run is compared on its own items, and
            # the shards of a split suite add up to the whole.
            ran = {k: v for k, v in sorted(self.baseline_cases.items()) if k in records}
            baseline = {"path": self.baseline_shown, "cases": ran}
        return RunFacts(
            records=self.session.sorted_records(),
            partitions=list(self.session.partitions),
            thresholds=self.thresholds,
            alpha=self.alpha,
            min_effect=self.min_effect,
            fail_on_regression=self.fail_on_regression,
            counters=dict(sorted(self.session.counters.items())),
            latencies=list(self.session.latencies),
            other_failures=sorted(n for n in self._failed if n not in records),
            unexplained_failures=max(0, session.testsfailed - sum(self._failed.values())),
            baseline=baseline,
            notes=list(self.notes),
        )

    def _all_failures_accounted(self, session: pytest.Session) -> bool:
        counted = sum(self._failed.values())
        return counted > 0 and counted == session.testsfailed

    def write_baseline(self, completed: bool) -> None:
        """Save this run's cases, unless the run stopped early (its cases would be a fragment)."""
        if not completed:
            self.notes.append(f"baseline not saved to {self.baseline_shown}: the run stopped early")
            return
        from pytest_llmeval.baseline import cases_from_records, save

        cases = cases_from_records(self.session.sorted_records())
        save(self.baseline_path, cases)
        self.notes.append(f"baseline saved to {self.baseline_shown}: {len(cases)} cases")
        if self.baseline_cases is not None:
            dropped = len(self.baseline_cases.keys() - cases.keys())
            if dropped:
                self.notes.append(f"{dropped} cases of the previous baseline did not run and are not in the new one")

    # --- controller: print ----------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.session.is_worker or self.summary is None:
            return
        from pytest_llmeval.summary import render

        terminalreporter.write_sep("=", "llmeval summary")
        for line in render(self.summary, self.config.get_verbosity()):
            terminalreporter.write_line(line)

