"""The prefetch pipeline: each item's ``task=`` and then its ``metrics=``, ahead of the bodies.

When the run loop starts, every llmeval item this process will run and that
declares ``task=`` gets a job on the runtime's loop. Jobs start in item order;
the client's slots bound the requests in flight. An item's body waits only
for its own job (``eval_output``), and a job that raises errors only its item.
Items this process does not run are never computed; an item that arrives
unannounced (xdist rescheduling after a crash) is computed on demand.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_llmeval.context import current_item

if TYPE_CHECKING:
    from pytest_llmeval.client import LLMClient
    from pytest_llmeval.context import ItemContext
    from pytest_llmeval.collection import LLMEvalSpec
    from pytest_llmeval.dataset import EvalExample
    from pytest_llmeval.records import Record


@dataclass
class ItemResult:
    """What the pipeline computed for one item."""

    output: Any = None
    error: BaseException | None = None
    baseline: dict[str, Any] | None = None
    metrics: list[Any] = field(default_factory=list)  # metric results, in declaration order
    metric_errors: list[BaseException] = field(default_factory=list)


@dataclass
class Job:
    nodeid: str
    spec: LLMEvalSpec
    example: EvalExample
    record: Record
    context: ItemContext
    future: concurrent.futures.Future[ItemResult] | None = None


class Progress:
    """Counts for the progress line: done/total, calls per second, cache hits."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.started = time.perf_counter()

    def line(self, counters: dict[str, float]) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        calls = counters.get("calls", 0)
        hits = counters.get("cache_hits", 0)
        return (f"llmeval: {self.done}/{self.total} outputs, {calls / elapsed:.1f} calls/s, "
                f"{int(hits)} cache hits")


class Pipeline:
    """Schedules and holds the jobs of one process."""

    def __init__(self, llm: LLMClient) -> None:
        self.llm = llm
        self.jobs: dict[str, Job] = {}
        self.progress = Progress()

    def schedule(self, jobs: list[Job]) -> None:
        """Start the jobs (in order) on the runtime's loop."""
        if not jobs:
            return
        for job in jobs:
            self.jobs[job.nodeid] = job
        self.progress.total += len(jobs)
        futures = self.llm.runtime.submit_many([self._run(job) for job in jobs])
        for job, future in zip(jobs, futures):
            job.future = future

    def ensure(self, job: Job) -> Job:
        """The job for an item, scheduled now if it was not announced in advance."""
        existing = self.jobs.get(job.nodeid)
        if existing is not None and existing.future is not None:
            return existing
        self.schedule([job])
        return job

    async def _run(self, job: Job) -> ItemResult:
        current_item.set(job.context)
        result = ItemResult(baseline=job.context.baseline)
        try:
            result.output = await self._call_task(job)
        except BaseException as exc:  # the item errors; nothing else does
            result.error = exc
            self.progress.done += 1
            return result
        metrics = job.spec.metrics
        if len(metrics) == 1:  # most often: no gather, no task of its own
            try:
                outcomes: list[Any] = [await metrics[0].aevaluate(result.output, example=job.example, llm=self.llm)]
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # as gather(return_exceptions=True) would return it
                outcomes = [exc]
        else:
            outcomes = await asyncio.gather(
                *(metric.aevaluate(result.output, example=job.example, llm=self.llm) for metric in metrics),
                return_exceptions=True,
            )
        if outcomes:
            from pytest_llmeval.metric import record_result

            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    result.metric_errors.append(outcome)
                else:
                    result.metrics.append(outcome)
                    record_result(outcome)
        self.progress.done += 1
        return result

    async def _call_task(self, job: Job) -> Any:
        task = job.spec.task
        assert task is not None
        if inspect.iscoroutinefunction(task) or inspect.iscoroutinefunction(getattr(task, "__call__", None)):
            return await task(job.example, self.llm)
        value = await self.llm.runtime.to_thread(task, job.example, self.llm)
        if inspect.isawaitable(value):
            value = await value
        return value

    def wait(self, job: Job, status: Any | None = None) -> ItemResult:
        """Block until the item's result is ready, refreshing a status line while waiting."""
        assert job.future is not None
        if status is None:
            return job.future.result()
        while True:
            try:
                return job.future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                status()


def terminal_status(terminalreporter: Any, progress: Progress, counters: dict[str, float],
                    capture_manager: Any = None) -> Any:
    """A callback that shows the progress line while the main thread waits.

    On a TTY it writes the line after the cursor and erases it when the wait ends,
    so pytest's own progress output is untouched; elsewhere it prints a plain line
    at most every 10 seconds.
    """
    isatty = bool(getattr(terminalreporter, "isatty", False))
    last = {"t": 0.0}

    def uncaptured() -> Any:
        # The wait happens inside a fixture, while pytest captures output: without
        # this the line would land in the item's captured stdout, not the terminal.
        if capture_manager is None:
            return contextlib.nullcontext()
        return capture_manager.global_and_fixture_disabled()

    def show() -> None:
        now = time.perf_counter()
        if isatty:
            # Save cursor, write the status, and restore: the next write erases it.
            with uncaptured():
                terminalreporter.write("\x1b7 " + progress.line(counters) + "\x1b8", flush=True)
            last["shown"] = 1.0
        elif now - last["t"] >= 10.0:
            with uncaptured():
                terminalreporter.write_line(progress.line(counters))
            last["t"] = now

    def clear() -> None:
        if isatty and last.get("shown"):
            with uncaptured():
                terminalreporter.write("\x1b[K", flush=True)
            last["shown"] = 0.0

    show.clear = clear  # type: ignore[attr-defined]
    return show
