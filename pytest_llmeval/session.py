"""The session object: owns one run's state and implements the hooks.

One instance lives in ``config.stash`` and is registered as a plugin. It runs on
every process; ``is_worker`` tells an xdist worker (which builds records and
sends them out) from the controller (which gathers records and decides).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmeval import collection, settings
from pytest_llmeval.errors import LLMCallError, LLMEvalUsageError
from pytest_llmeval.records import REPORT_ATTR, Record

if TYPE_CHECKING:
    from pytest_llmeval.dataset import EvalDataset, EvalExample

SESSION_KEY = pytest.StashKey["LLMEvalSession"]()


def get_session(config: pytest.Config) -> LLMEvalSession:
    """The run's :class:`LLMEvalSession` (raises KeyError before configure)."""
    return config.stash[SESSION_KEY]


def example_of(item: pytest.Item) -> EvalExample | None:
    """The example an llmeval item was parametrized with, if any."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    return callspec.params.get(collection.EXAMPLE_ARG)


class LLMEvalSession:
    """State of one pytest run, for the plugin."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.partitions = settings.partitions(config)
        self.is_worker = hasattr(config, "workerinput")
        # Controller side: finished records by node id (a rerun replaces).
        self.records: dict[str, Record] = {}
        # This process: records of items still running.
        self._live: dict[str, Record] = {}
        self._datasets: dict[Path, EvalDataset] = {}
        self._markers_known: set[str] = set(self.partitions)
        # Additive run-level counters (calls, cache hits, tokens, ...). Each process
        # counts its own; workers ship theirs to the controller, which sums them.
        self.counters: dict[str, float] = {}
        for name in self.partitions:
            config.addinivalue_line("markers", f"{name}: examples of the {name!r} partition (pytest-llmeval)")

    # --- collection -------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_pycollect_makeitem(
        self, collector: pytest.Module | pytest.Class, name: str, obj: object
    ) -> Generator[None, Any, Any]:
        if collector.istestfunction(obj, name) and collection.has_marker(collector, obj):
            # The example is parametrized indirectly, so its fixture must be in the
            # closure even when the test only asks for eval_output or llm.
            pytest.mark.usefixtures(collection.EXAMPLE_ARG)(obj)
        try:
            return (yield)
        except LLMEvalUsageError as error:
            return collection.InvalidLLMEvalTest.from_parent(collector, name=name, error=error)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        mark = metafunc.definition.get_closest_marker(collection.MARKER)
        if mark is None:
            return
        where = metafunc.definition.nodeid
        spec = collection.parse_marker(mark, where)
        dataset = self.load_dataset(collection.dataset_path(metafunc.definition.path, spec.dataset))
        examples = collection.select(dataset.examples, spec, where, self.partitions)
        params = [pytest.param(e, id=e.id, marks=self._marks_for(e)) for e in examples]
        metafunc.parametrize(collection.EXAMPLE_ARG, params, indirect=True)

    def load_dataset(self, path: Path) -> EvalDataset:
        """Load a dataset once per session; errors name the file relative to the rootdir."""
        from pytest_llmeval.dataset import load_dataset

        key = path.resolve()
        if key not in self._datasets:
            try:
                shown = str(key.relative_to(self.config.rootpath))
            except ValueError:
                shown = str(path)
            self._datasets[key] = load_dataset(key, partitions=self.partitions, display_path=shown)
        return self._datasets[key]

    def _marks_for(self, example: EvalExample) -> list[pytest.MarkDecorator]:
        names = [example.partition, *example.tags]
        for name in names:
            if name not in self._markers_known:
                self._markers_known.add(name)
                self.config.addinivalue_line("markers", f"{name}: examples tagged {name!r} (pytest-llmeval)")
        return [getattr(pytest.mark, name) for name in dict.fromkeys(names)]

    # --- running: build the record on the process that runs the item ---------------------

    def record_for(self, item: pytest.Item) -> Record:
        """This item's record, created on first use."""
        record = self._live.get(item.nodeid)
        if record is None:
            example = example_of(item)
            if example is None:
                raise LLMEvalUsageError(f"{item.nodeid}: not an llmeval item (no @pytest.mark.llmeval)")
            record = Record(item.nodeid, example.id, example.partition, list(example.tags))
            self._live[item.nodeid] = record
        return record

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report: pytest.TestReport = yield
        if example_of(item) is None:
            return report
        record = self.record_for(item)
        record.duration_s += report.duration
        _apply_phase(record, report, call)
        if report.when == "teardown":
            setattr(report, REPORT_ATTR, record.to_dict())
            self.count("records")
            del self._live[item.nodeid]
        return report

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        # A model call that failed for good measured nothing: show it as an error, not a failure.
        if report.when == "call" and report.failed and getattr(report, "llmeval_call_error", False):
            return "error", "E", "ERROR"
        return None

    # --- controller: gather ---------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None)
        if data is not None and not self.is_worker:
            self.records[data["nodeid"]] = Record.from_dict(data)

    def count(self, name: str, amount: float = 1) -> None:
        """Add to a run-level counter of this process."""
        self.counters[name] = self.counters.get(name, 0) + amount

    def worker_output(self) -> dict[str, Any]:
        """What a worker sends the controller at the end (plain data only)."""
        return {"counters": dict(sorted(self.counters.items()))}

    def merge_worker_output(self, output: dict[str, Any]) -> None:
        """Controller: fold one worker's figures into the run's."""
        for name, amount in output.get("counters", {}).items():
            self.count(name, amount)

    def sorted_records(self) -> list[Record]:
        return [self.records[k] for k in sorted(self.records)]

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not self.records:
            return
        from pytest_llmeval.summary import partition_rows, summary_lines

        terminalreporter.write_sep("=", "llmeval summary")
        for line in summary_lines(partition_rows(self.sorted_records(), self.partitions)):
            terminalreporter.write_line(line)


def _apply_phase(record: Record, report: pytest.TestReport, call: pytest.CallInfo[None]) -> None:
    """Fold one phase's report into the record's outcome (error beats failed beats skipped)."""
    if report.failed:
        call_error = call.excinfo is not None and call.excinfo.errisinstance(LLMCallError)
        if call_error:
            report.llmeval_call_error = True  # type: ignore[attr-defined]
        outcome = "failed" if report.when == "call" and not call_error else "error"
        if record.outcome != "error":
            record.outcome = outcome
            record.message = _short_message(call)
    elif report.skipped and record.outcome == "passed":
        record.outcome = "skipped"
        record.message = _short_message(call)


def _short_message(call: pytest.CallInfo[None]) -> str | None:
    if call.excinfo is None:
        return None
    text = call.excinfo.exconly()
    return text if len(text) <= 500 else text[:497] + "..."
