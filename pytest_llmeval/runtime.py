"""One event loop per process, in a background thread, where every model call runs.

Sync callers (test bodies, sync ``task=`` functions in worker threads) submit
coroutines to it and wait; async code running on it awaits directly. Having a
single loop is what lets one semaphore bound the calls in flight for the whole
process, and lets identical in-flight requests be shared instead of sent twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from pytest_llmeval.context import ItemContext, current_item

__all__ = ["ItemContext", "Runtime", "current_item"]

T = TypeVar("T")

# How long a thread may hold the GIL while another waits for it, once model requests
# are in flight. CPython's default is 5 ms: each time an answer arrives while pytest's
# thread is busy running items, the loop would wait up to that long, its concurrency
# slot held. 1 ms cut the time slots are held by ~4% (N=5000 benchmark,
# docs/benchmarks.md). Runs served from the cache keep the default: there, with only
# CPU-bound threads, faster switching cost ~8% of a warm N=5000 run.
LOOP_SWITCH_INTERVAL_S = 0.001


class Runtime:
    """A lazily started event loop thread plus a thread pool for sync user code."""

    def __init__(self, threads: int = 12) -> None:
        self._threads = threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._saved_switch_interval: float | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            with self._lock:
                if self._loop is None:
                    loop = asyncio.new_event_loop()
                    started = threading.Event()

                    def run() -> None:
                        asyncio.set_event_loop(loop)
                        loop.call_soon(started.set)
                        loop.run_forever()

                    thread = threading.Thread(target=run, name="llmeval-loop", daemon=True)
                    thread.start()
                    started.wait()
                    self._thread = thread
                    self._loop = loop
        return self._loop

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        max_workers=self._threads, thread_name_prefix="llmeval-task"
                    )
        return self._executor

    def favour_loop(self) -> None:
        """Hand the GIL to the loop sooner, until :meth:`close` (called when requests start)."""
        if self._saved_switch_interval is None:
            self._saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._saved_switch_interval, LOOP_SWITCH_INTERVAL_S))

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def submit_many(self, coros: list[Coroutine[Any, Any, T]]) -> list[concurrent.futures.Future[T]]:
        """Schedule many coroutines, in order, with one wake-up of the loop (not one each)."""
        futures: list[concurrent.futures.Future[T]] = [concurrent.futures.Future() for _ in coros]
        loop = self.loop

        def start() -> None:
            for coro, future in zip(coros, futures):
                if future.set_running_or_notify_cancel():
                    loop.create_task(coro).add_done_callback(functools.partial(_settle, future))
                else:
                    coro.close()

        loop.call_soon_threadsafe(start)
        return futures

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and wait for it (not from the loop's own thread)."""
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                "a synchronous llm(...) call was made from async code running on pytest-llmeval's loop; "
                "use `await llm.acomplete(...)` there instead"
            )
        return self.submit(coro).result()

    async def to_thread(self, fn: Any, *args: Any) -> Any:
        """Run sync user code in the pool, keeping the caller's context (the current item)."""
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.executor, ctx.run, fn, *args)

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            # Cancel what is still pending (litellm keeps a background logging task on
            # the loop) so nothing is left to run on a closed loop.
            async def cancel_pending() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await loop.shutdown_asyncgens()

            try:
                asyncio.run_coroutine_threadsafe(cancel_pending(), loop).result(timeout=5)
            except Exception:  # pragma: no cover - best effort at shutdown
                pass
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            loop.close()
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
            self._saved_switch_interval = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _settle(future: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
    """Copy a finished task's outcome to the future a thread waits on."""
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())
