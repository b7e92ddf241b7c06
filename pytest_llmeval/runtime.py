"""One event loop per process, in a background thread, where every model call runs.

Sync callers (test bodies, sync ``task=`` functions in worker threads) submit
coroutines to it and wait; async code running on it awaits directly. Having a
single loop is what lets one semaphore bound the calls in flight for the whole
process, and lets identical in-flight requests be shared instead of sent twice.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import functools
import queue
import sys
import threading
from collections.abc import Coroutine, Iterator
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


# The pool checks this often whether to add threads. It adds them at once when every
# thread is waiting for a model call (a cold run: that is what blocks sync tasks). It
# adds them only after POOL_STALL_S with nothing finished when the threads wait for
# something else (a sync task that sleeps or reads a socket of its own). Threads busy
# with CPU work, as in a warm run where every call is a cache hit, keep finishing
# calls, and so never look stalled for that long, even when they must share the GIL
# with pytest's thread and the loop.
POOL_GROW_AFTER_S = 0.02
POOL_STALL_S = 0.25


class Runtime:
    """A lazily started event loop thread plus a thread pool for sync user code."""

    def __init__(self, threads: int = 12) -> None:
        self._threads = threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: _Pool | None = None
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
        future = self.submit(coro)
        pool = self._pool
        if pool is None or not pool.owns_current_thread():
            return future.result()
        with pool.waiting_for_loop():  # a pool thread blocked on a model call: the pool may grow
            return future.result()

    async def to_thread(self, fn: Any, *args: Any) -> Any:
        """Run sync user code in the pool, keeping the caller's context (the current item).

        Call from the loop's thread.
        """
        if self._pool is None:
            self._pool = _Pool(self.loop, self._threads)
        return await self._pool.run(contextvars.copy_context(), fn, args)

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
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _settle(future: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
    """Copy a finished task's outcome to the future a thread waits on."""
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())


class _Pool:
    """Threads for sync user code (``task=`` functions), run on behalf of the loop.

    Unlike ``ThreadPoolExecutor``, which starts a thread for each call submitted while
    none is idle, it grows only when its threads are blocked. It doubles whenever all
    its threads wait for model calls (a cold run, checked every ``POOL_GROW_AFTER_S``),
    or after ``POOL_STALL_S`` with nothing finished (sync code blocked on something
    else). Tasks answered from the cache (a warm run) stay on one thread instead of a
    score of threads contending for the GIL. Results go back to the loop in batches:
    one wake-up of the loop for whatever finished meanwhile.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop = loop
        self._size = max(1, size)
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._finished: collections.deque[tuple[asyncio.Future[Any], BaseException | None, Any]] = (
            collections.deque())
        self._completed = 0  # calls finished so far: the pool grows when this stalls
        self._waiting = 0  # threads blocked on a call they handed to the loop (a model call)
        self._lock = threading.Lock()
        self._since = 0.0  # loop time of the last completion seen by _grow_if_stalled
        self._drain_pending = False
        self._check_pending = False
        self._closed = False

    def run(self, ctx: contextvars.Context, fn: Any, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue ``fn(*args)`` (loop thread only); the future is settled on the loop."""
        future = self._loop.create_future()
        self._queue.put((future, ctx, fn, args))
        if not self._threads:
            self._add_threads(1)
        elif len(self._threads) < self._size and not self._check_pending:
            self._check_pending = True
            self._since = self._loop.time()
            self._loop.call_later(POOL_GROW_AFTER_S, self._grow_if_stalled, self._completed)
        return future

    def owns_current_thread(self) -> bool:
        return threading.current_thread() in self._threads

    @contextlib.contextmanager
    def waiting_for_loop(self) -> Iterator[None]:
        """Mark the calling pool thread as blocked on the loop (a model call) meanwhile."""
        with self._lock:
            self._waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    def _grow_if_stalled(self, completed_then: int) -> None:
        self._check_pending = False
        waiting = self._queue.qsize()
        if self._closed or not waiting:
            return
        now = self._loop.time()
        if self._completed != completed_then:
            self._since = now
        elif self._waiting >= len(self._threads) or now - self._since >= POOL_STALL_S:
            # Doubling reaches any size in a few steps (20 threads: 100 ms) while a lone
            # stall, such as a first call opening the cache, adds one thread, not twenty.
            self._add_threads(min(waiting, len(self._threads), self._size - len(self._threads)))
            self._since = now
        if len(self._threads) < self._size:
            self._check_pending = True
            self._loop.call_later(POOL_GROW_AFTER_S, self._grow_if_stalled, self._completed)

    def _add_threads(self, count: int) -> None:
        for _ in range(count):
            thread = threading.Thread(target=self._work, name=f"llmeval-task-{len(self._threads)}", daemon=True)
            self._threads.append(thread)  # before it starts: its first call may ask owns_current_thread()
            thread.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            future, ctx, fn, args = job
            try:
                outcome: tuple[Any, BaseException | None, Any] = (future, None, ctx.run(fn, *args))
            except BaseException as exc:  # handed to the awaiting task, like run_in_executor
                outcome = (future, exc, None)
            del job, fn, args, ctx
            self._finished.append(outcome)
            self._completed += 1
            if not self._drain_pending:
                self._drain_pending = True
                try:
                    self._loop.call_soon_threadsafe(self._drain)
                except RuntimeError:  # the loop is closed: nobody waits for the result
                    return

    def _drain(self) -> None:
        self._drain_pending = False  # before draining: a result added from now on schedules another drain
        while self._finished:
            future, error, value = self._finished.popleft()
            if future.cancelled():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    def close(self) -> None:
        """Stop the threads once they finish what they run (queued calls are dropped)."""
        self._closed = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._queue.put(None)
