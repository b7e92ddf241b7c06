"""The runtime's pool for sync user code: grows when its threads block, not when they are busy."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import threading

import pytest

from pytest_llmeval import runtime as runtime_module
from pytest_llmeval.runtime import Runtime

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


@pytest.fixture
def rt():
    runtime = Runtime(threads=6)
    yield runtime
    runtime.close()


def test_blocked_calls_get_as_many_threads_as_the_pool_has(rt: Runtime) -> None:
    # Six calls that can only return once all six are running at the same time.
    barrier = threading.Barrier(6, timeout=10)

    def wait_for_the_others(i: int) -> int:
        barrier.wait()
        return i

    async def main() -> list[int]:
        return list(await asyncio.gather(*(rt.to_thread(wait_for_the_others, i) for i in range(6))))

    assert rt.run(main()) == list(range(6))


def test_threads_waiting_for_model_calls_get_more_threads_without_waiting_for_a_stall(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # Six sync tasks, each blocked in a call it handed to the loop (as llm(...) does on a
    # cache miss), that can only return once all six wait at once. With the stall rule
    # out of reach, only the "every thread waits for the loop" signal can grow the pool.
    monkeypatch.setattr(runtime_module, "POOL_STALL_S", 3600.0)
    waiting = 0
    all_waiting: asyncio.Event | None = None

    async def model_call(i: int) -> int:
        nonlocal waiting, all_waiting
        all_waiting = all_waiting or asyncio.Event()
        waiting += 1
        if waiting == 6:
            all_waiting.set()
        await asyncio.wait_for(all_waiting.wait(), timeout=10)
        return i

    def sync_task(i: int) -> int:
        return rt.run(model_call(i))

    async def main() -> list[int]:
        return list(await asyncio.gather(*(rt.to_thread(sync_task, i) for i in range(6))))

    assert rt.run(main()) == list(range(6))


def test_busy_calls_stay_on_few_threads(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # CPU work answered straight away (a warm run): threads keep finishing calls, so the
    # pool never takes them for blocked and does not add threads to contend for the GIL.
    monkeypatch.setattr(runtime_module, "POOL_GROW_AFTER_S", 0.05)
    seen: set[str] = set()

    def work(i: int) -> str:
        seen.add(threading.current_thread().name)
        digest = b"%d" % i
        for _ in range(300):
            digest = hashlib.sha256(digest).digest()
        return digest.hex()

    async def main() -> list[str]:
        return list(await asyncio.gather(*(rt.to_thread(work, i) for i in range(3000))))

    results = rt.run(main())
    assert results[7] == work(7) and len(results) == 3000
    assert 1 <= len(seen) <= 2, seen  # a ThreadPoolExecutor would have started all 6


def test_errors_and_the_callers_context_reach_the_thread_and_back(rt: Runtime) -> None:
    def read_marker() -> str:
        return marker.get()

    def fail() -> None:
        raise ValueError("boom in user code")

    async def main() -> str:
        marker.set("item-7")
        with pytest.raises(ValueError, match="boom in user code"):
            await rt.to_thread(fail)
        return await rt.to_thread(read_marker)

    assert rt.run(main()) == "item-7"


def test_close_stops_idle_threads(rt: Runtime) -> None:
    async def main() -> int:
        return await rt.to_thread(lambda: 41) + 1

    assert rt.run(main()) == 42
    pool = rt._pool
    assert pool is not None
    threads = list(pool._threads)
    rt.close()
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()
