"""The session object: owns one run's state and implements the hooks.

One instance lives in ``config.stash`` and is registered as a plugin. It runs on
every process; ``is_worker`` tells an xdist worker (which builds records and
sends them out) from the controller (which gathers records and decides).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmeval import collection, settings
from pytest_llmeval.errors import LLMCallError, LLMEvalUsageError
from pytest_llmeval.records import REPORT_ATTR, Record
from pytest_llmeval.context import ItemContext, current_item

if TYPE_CHECKING:
    from pytest_llmeval.client import LLMClient
    from pytest_llmeval.dataset import EvalDataset, EvalExample
    from pytest_llmeval.pipeline import ItemResult, Job, Pipeline

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
        self._from_workers = not self.is_worker and _is_xdist_controller(config)
        # Controller side (or the only process): finished records by node id.
        self.records: dict[str, Record] = {}
        # This process: records of items still running.
        self._live: dict[str, Record] = {}
        self._datasets: dict[Path, EvalDataset] = {}
        self._markers_known: set[str] = set(self.partitions)
        self._mark_cache: dict[str, pytest.MarkDecorator] = {}
        # Parsed markers by identity: the items of one test function share its Mark.
        self._specs: dict[int, tuple[pytest.Mark, collection.LLMEvalSpec]] = {}
        # Additive run-level counters (calls, cache hits, tokens, ...). Each process
        # counts its own; workers ship theirs to the controller, which sums them.
        self.counters: dict[str, float] = {}
        self._count_lock = threading.Lock()
        self.latencies: list[float] = []
        self._client: LLMClient | None = None
        self._running_item: pytest.Item | None = None  # the item being set up or run
        self._pipeline: Pipeline | None = None
        # Set by the controller's xdist hooks: workers run a fixed share of the items
        # (index % workercount == worker index), so each can prefetch exactly its own.
        self.static_share: tuple[int, int] | None = None
        if self.is_worker:
            facts = config.workerinput.get("llmeval", {})  # type: ignore[attr-defined]
            if facts.get("static_share"):
                worker = config.workerinput["workerid"]  # type: ignore[attr-defined]
                number, count = int(worker.lstrip("gw")), int(config.workerinput["workercount"])  # type: ignore[attr-defined]
                if number < count:  # a replacement worker has no fixed share
                    self.static_share = (number, count)
        for name in self.partitions:
            config.addinivalue_line("markers", f"{name}: examples of the {name!r} partition (pytest-llmeval)")

    # --- collection -------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_pycollect_makeitem(
        self, collector: pytest.Module | pytest.Class, name: str, obj: object
    ) -> Generator[None, Any, Any]:
        if collector.istestfunction(obj, name) and collection.has_marker(collector, obj):
            # The example is a parameter of every item, so it must be in the fixture
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
        # Direct, not through the eval_example fixture: pytest then hands each item its
        # example without running a fixture function and building its request for it
        # (~20 us an item). The fixture remains for tests that are not marked.
        metafunc.parametrize(collection.EXAMPLE_ARG, params)

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
        return [self._mark(name) for name in dict.fromkeys([example.partition, *example.tags])]

    def _mark(self, name: str) -> pytest.MarkDecorator:
        """The marker for a partition or tag, registered on first use (so --strict-markers passes)."""
        mark = self._mark_cache.get(name)
        if mark is None:
            if name not in self._markers_known:
                self._markers_known.add(name)
                self.config.addinivalue_line("markers", f"{name}: examples tagged {name!r} (pytest-llmeval)")
            mark = self._mark_cache[name] = getattr(pytest.mark, name)
        return mark

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
        if example_of(item) is None:
            return (yield)
        record = self.record_for(item)
        if call.when == "teardown":
            # Before pytest makes the teardown report, which copies the user properties
            # (it rides to the controller, and junitxml writes those of teardown reports).
            item.user_properties.extend(record.junit_properties())
        report: pytest.TestReport = yield
        record.duration_s += report.duration
        _apply_phase(record, report, call)
        if report.when == "teardown":
            setattr(report, REPORT_ATTR, record.to_dict())
            self.count("records")
            del self._live[item.nodeid]
            if not self.is_worker:
                self.records[item.nodeid] = record  # a rerun replaces
            if self._pipeline is not None:
                # The item is done with its job: let its future, context and result go,
                # rather than keep thousands of them for the collector to walk.
                self._pipeline.jobs.pop(item.nodeid, None)
        return report

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        # A model call that failed for good measured nothing: show it as an error, not a failure.
        if report.when == "call" and report.failed and getattr(report, "llmeval_call_error", False):
            return "error", "E", "ERROR"
        return None

    # --- controller: gather ---------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Under xdist the controller runs no items: their records come from the workers.
        if self._from_workers:
            data = getattr(report, REPORT_ATTR, None)
            if data is not None:
                self.records[data["nodeid"]] = Record.from_dict(data)

    def count(self, name: str, amount: float = 1) -> None:
        """Add to a run-level counter of this process (from any thread)."""
        with self._count_lock:
            self.counters[name] = self.counters.get(name, 0) + amount

    def latency(self, seconds: float) -> None:
        """Note the latency of one model call made by this process."""
        self.latencies.append(seconds)

    def worker_output(self) -> dict[str, Any]:
        """What a worker sends the controller at the end (plain data only)."""
        return {
            "counters": {k: float(v) for k, v in sorted(self.counters.items())},
            "latencies": [round(float(x), 6) for x in self.latencies],
        }

    def merge_worker_output(self, output: dict[str, Any]) -> None:
        """Controller: fold one worker's figures into the run's."""
        for name, amount in output.get("counters", {}).items():
            self.count(name, amount)
        self.latencies.extend(output.get("latencies", []))

    # --- the model client and the prefetch pipeline ------------------------------------------

    @property
    def client(self) -> LLMClient:
        """This process's client, built from the options on first use."""
        if self._client is None:
            from pytest_llmeval.client import ClientSettings, LLMClient, _Engine
            from pytest_llmeval.runtime import Runtime

            get = lambda name: settings.resolve(self.config, name)  # noqa: E731
            client_settings = ClientSettings(
                model=get("model"), judge_model=get("judge_model"), embedding_model=get("embedding_model"),
                api_base=get("api_base"), cache_mode=get("cache"),
                cache_dir=str(self.config.rootpath / get("cache_dir")), concurrency=get("concurrency"),
                retries=get("retries"), timeout=get("timeout"), max_cost=get("max_cost"),
                samples=get("samples"), judge_temperature=get("judge_temperature"),
                inconclusive=get("inconclusive"),
            )
            runtime = Runtime(threads=client_settings.concurrency + 4)
            self._client = LLMClient(_Engine(client_settings, runtime, self), client_settings.model)
        return self._client

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            from pytest_llmeval.pipeline import Pipeline

            self._pipeline = Pipeline(self.client)
        return self._pipeline

    def _job_for(self, item: pytest.Item) -> Job | None:
        example = example_of(item)
        if example is None:
            return None
        mark = item.get_closest_marker(collection.MARKER)
        if mark is None:
            return None
        known = self._specs.get(id(mark))
        if known is not None and known[0] is mark:
            spec = known[1]
        else:
            spec = collection.parse_marker(mark, item.nodeid)
            self._specs[id(mark)] = (mark, spec)
        if spec.task is None:
            return None
        from pytest_llmeval.pipeline import Job

        context = self.item_context(item)
        return Job(item.nodeid, spec, example, context.record, context)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        if session.config.option.collectonly or self._from_workers:
            return
        items = session.items
        if self.static_share is not None:
            index, count = self.static_share
            items = items[index::count]
        elif self.is_worker:
            return  # no fixed share (another --dist mode): compute each item when it starts
        evals = [item.nodeid for item in items if example_of(item) is not None]
        if evals:
            self.client.read_ahead(evals)
        jobs = [job for job in map(self._job_for, items) if job is not None]
        if jobs:
            _freeze_collected()
            self.pipeline.schedule(jobs)

    def item_context(self, item: pytest.Item) -> ItemContext:
        """What metrics and assertions running for this item can see."""
        example = example_of(item)
        return ItemContext(item.nodeid, self.record_for(item), example, self.client, self.baseline_case(item))

    def baseline_case(self, item: pytest.Item) -> dict[str, Any] | None:
        """This item's entry in the loaded baseline (filled in by the verdict plugin)."""
        lookup = getattr(self, "baseline_lookup", None)
        return lookup(item.nodeid) if lookup is not None else None

    def result_for(self, item: pytest.Item) -> ItemResult:
        """The pipeline's result for an item with ``task=`` (computed now if not yet scheduled)."""
        job = self._scheduled_job(item)
        if job is None:
            job = self._job_for(item)
            if job is None:
                raise LLMEvalUsageError(
                    f"{item.nodeid}: eval_output needs task= on the marker, e.g. "
                    "@pytest.mark.llmeval(dataset=..., task=answer) where answer(example, llm) returns the output"
                )
            job = self.pipeline.ensure(job)
        assert job.future is not None
        if job.future.done():  # the usual case once the pipeline is ahead: no status line to set up
            return job.future.result()
        pipeline = self.pipeline
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        show = None
        if reporter is not None and settings.resolve(self.config, "progress") and not self.is_worker:
            from pytest_llmeval.pipeline import terminal_status

            capman = self.config.pluginmanager.get_plugin("capturemanager")
            show = terminal_status(reporter, pipeline.progress, self.counters, capman)
        try:
            return pipeline.wait(job, show)
        finally:
            if show is not None:
                show.clear()  # type: ignore[attr-defined]

    def _scheduled_job(self, item: pytest.Item) -> Job | None:
        """The item's job, if the pipeline has already scheduled it."""
        if self._pipeline is None:
            return None
        job = self._pipeline.jobs.get(item.nodeid)
        return job if job is not None and job.future is not None else None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self._running_item = item

    # A fixture of the registered session object rather than of the plugin module: it
    # finds the session as ``self`` and its item from the hook above, with no `request`
    # argument, for which pytest would build a fixture definition (inspect.signature
    # included) at every item's setup.
    @pytest.fixture
    def eval_output(self, eval_example: EvalExample) -> object:
        """This item's output from the marker's ``task=`` (computed ahead, concurrently with other items).

        If the task raised, or its model call failed for good, the item errors here.
        """
        assert self._running_item is not None
        result = self.result_for(self._running_item)
        if result.error is not None:
            raise result.error
        return result.output

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        if example_of(item) is None:
            return (yield)
        job = self._scheduled_job(item)
        token = current_item.set(job.context if job is not None else self.item_context(item))
        try:
            result = yield
        finally:
            current_item.reset(token)
        job = job or self._scheduled_job(item)  # eval_output may have scheduled it just now
        if job is not None and job.spec.metrics:
            # Wait even when the body never asked for eval_output: a declared metric
            # that failed must fail its item whatever the body did.
            _fail_on_declared_metrics(self.pipeline.wait(job))
        return result

    def sorted_records(self) -> list[Record]:
        return [self.records[k] for k in sorted(self.records)]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # A spent budget fails the run: the verdict plugin reads this counter (summed
        # over workers) and sets the exit status, after this hook.
        if self._client is not None:
            if self._client.budget_exhausted:
                self.count("budget_exhausted")
            self._client.runtime.close()
            self._client.close()


def _freeze_collected() -> None:
    """Move what collection built (items, fixtures, modules) out of the garbage collector's reach.

    It all lives until the session ends anyway; left in, every full collection during
    the run, and pytest's own at the end, walks it again (a warm N=5000 run spent 1.2 s
    in the collector; 0.85 s after this). Garbage is collected first, so none is frozen.
    """
    gc.collect()
    gc.freeze()


def _is_xdist_controller(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and getattr(config.option, "dist", "no") != "no"


def _fail_on_declared_metrics(result: ItemResult) -> None:
    """After the body: a declared metric that failed (or could not run) fails the item with its report."""
    __tracebackhide__ = True
    if result.error is not None:
        return  # eval_output already raised it
    if result.metric_errors:
        raise result.metric_errors[0]
    failed = [m for m in result.metrics if getattr(m, "passed", None) is False]
    if failed:
        from pytest_llmeval.errors import LLMEvalAssertionError

        baseline = result.baseline or {}
        raise LLMEvalAssertionError(
            "\n\n".join(m.report(baseline.get("scores", {}).get(m.name)) for m in failed)
        )


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
