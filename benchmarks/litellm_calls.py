"""CPU per model call on the client side: litellm's share, ours, and litellm's settings.

Each variant runs in a fresh process against the mock server at zero latency, so a
call costs only what the client does: 100 warm-up calls, then 2000 distinct calls
with 16 in flight, timed by the process's CPU clock. With zero latency the wall time
per call is the CPU time per call; the difference between rows is what a setting or
a layer costs.

    python benchmarks/litellm_calls.py

Variants (all through the pytest-llmeval client with the cache off, unless noted):

- ``litellm alone``: ``litellm.acompletion`` in a bare asyncio loop, no client.
- ``client``: the same calls through ``LLMClient`` (its loop thread, slots, stats).
- ``unpriced model``: a model name litellm's price list does not know.
- the litellm settings that sound like they turn off per-call work an eval run does
  not need: ``turn_off_message_logging``, ``logging = False``, the per-call
  ``no-log`` flag, and ``disable_aiohttp_transport`` (httpx's own transport).

Not part of the test suite; see docs/benchmarks.md for the figures.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402  (the mock server helpers)

PRICED = "openai/gpt-4o-mini"
UNPRICED = "openai/bench-app"
CALLS = 2000

VARIANTS: list[tuple[str, dict]] = [
    ("litellm alone", {"bare": True}),
    ("client", {}),
    ("client, unpriced model", {"model": UNPRICED}),
    ("client, turn_off_message_logging", {"settings": {"turn_off_message_logging": True}}),
    ("client, litellm.logging = False", {"settings": {"logging": False}}),
    ("client, no-log per call", {"params": {"no-log": True}}),
    ("client, disable_aiohttp_transport", {"settings": {"disable_aiohttp_transport": True}}),
]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(url: str, variant: dict) -> dict[str, float]:
    """Runs in the child process: one variant, returns CPU and wall ms per call."""
    import asyncio

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ["OPENAI_API_KEY"] = "sk-bench"
    model = variant.get("model", PRICED)
    params = variant.get("params", {})

    if variant.get("bare"):
        import litellm

        slots = asyncio.Semaphore(16)  # bound to the loop on first use

        async def one(i: int) -> None:
            async with slots:
                await litellm.acompletion(model=model, api_base=url, messages=[{"role": "user", "content": f"q{i}"}],
                                          num_retries=0, max_retries=0, **params)

        async def many(start: int, n: int) -> None:
            await asyncio.gather(*(one(start + i) for i in range(n)))

        loop = asyncio.new_event_loop()  # one loop for both runs: litellm keeps clients per loop

        def run(start: int, n: int) -> None:
            loop.run_until_complete(many(start, n))
    else:
        from pytest_llmeval.client import ClientSettings, LLMClient

        llm = LLMClient.create(ClientSettings(model=model, api_base=url, cache_mode="off", concurrency=16))
        litellm = llm._engine.litellm
        for name, value in variant.get("settings", {}).items():
            setattr(litellm, name, value)

        async def many_client(start: int, n: int) -> None:
            await asyncio.gather(*(llm.acomplete(f"q{start + i}", **params) for i in range(n)))

        def run(start: int, n: int) -> None:
            llm.runtime.run(many_client(start, n))

    run(10**6, 100)  # warm-up: first connections, litellm's first-call setup
    cpu, wall = _cpu(), time.perf_counter()
    run(0, CALLS)
    return {"cpu_ms": 1000 * (_cpu() - cpu) / CALLS, "wall_ms": 1000 * (time.perf_counter() - wall) / CALLS}


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        url, variant = json.loads(sys.argv[2])
        print(json.dumps(measure(url, variant)))
        return 0
    mock, url = bench.start_mock(0.0)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    rows = []
    try:
        for name, variant in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps([url, variant])],
                                 capture_output=True, text=True, env=env, check=False)
            if out.returncode != 0:
                raise SystemExit(f"{name}: failed\n{out.stderr[-2000:]}")
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((name, figures["cpu_ms"], figures["wall_ms"]))
    finally:
        mock.terminate()
        mock.wait(timeout=10)
    width = max(len(r[0]) for r in rows)
    print(f"client-side cost of one model call: {CALLS} calls, 16 in flight, mock latency 0, "
          f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'variant'.ljust(width)}  CPU ms/call  wall ms/call")
    for name, cpu, wall in rows:
        print(f"{name.ljust(width)}  {cpu:11.2f}  {wall:12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
