"""Tests of the model client (``pytest_llmeval.client``) against the mock server.

Every call goes through litellm over real HTTP to the mock OpenAI-compatible
server on 127.0.0.1: the cache, retries with backoff and Retry-After, the
concurrency bound, in-flight sharing, the budget and embeddings are exercised
end to end. Backoff constants are patched small so retries cost milliseconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import pytest_llmeval.client as client_mod
from pytest_llmeval.cache import ResponseCache, cache_exists
from pytest_llmeval.client import ClientSettings, Completion, LLMClient, LocalStats
from pytest_llmeval.errors import LLMCallError
from pytest_llmeval.mockserver import EMBEDDING_DIM, Malformed, MockLLMServer, embed_text
from pytest_llmeval.runtime import ItemContext, current_item

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
MODEL = "openai/mock"

MakeClient = Callable[..., tuple[LLMClient, LocalStats]]


@pytest.fixture(scope="module", autouse=True)
def _litellm_imported() -> None:
    """Import litellm (seconds) once up front, so no timed test pays for it."""
    import litellm  # noqa: F401


@pytest.fixture(autouse=True)
def _fast_and_keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Millisecond backoff, and the API key litellm's openai provider insists on."""
    monkeypatch.setattr(client_mod, "BACKOFF_BASE_S", 0.01)
    monkeypatch.setattr(client_mod, "BACKOFF_CAP_S", 0.05)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def make_client(mock_llm: MockLLMServer, cache_dir: Path) -> Iterator[MakeClient]:
    """``make_client(**settings) -> (client, stats)``; every client is closed at teardown.

    Defaults: the mock model at the mock server, a per-test cache directory,
    retries=4, timeout=5. Clients made in one test share the cache directory.
    """
    made: list[LLMClient] = []

    def make(**overrides: Any) -> tuple[LLMClient, LocalStats]:
        fields: dict[str, Any] = {
            "model": MODEL,
            "api_base": mock_llm.base_url,
            "cache_dir": str(cache_dir),
            "retries": 4,
            "timeout": 5,
        }
        fields.update(overrides)
        stats = LocalStats()
        client = LLMClient.create(ClientSettings(**fields), stats=stats)
        made.append(client)
        return client, stats

    yield make
    for client in made:
        client.runtime.close()
        client.close()


def _warm_up(llm: LLMClient, mock_llm: MockLLMServer) -> None:
    """One call and a reset of the mock, so a timed test measures neither litellm's
    first-call setup nor the first connection."""
    llm("warm-up", temperature=0.123)
    mock_llm.reset()


def _note_answer_times(mock_llm: MockLLMServer, reply: Callable[[dict[str, Any]], str]) -> list[float]:
    """Make the mock answer with ``reply(body)`` and note when each answer was made.

    The responder runs in the server after its latency, so with a latency of L every
    answer time is L after its request arrived.
    """
    answered: list[float] = []
    lock = threading.Lock()

    def responder(body: dict[str, Any]) -> str:
        with lock:
            answered.append(time.perf_counter())
        return reply(body)

    mock_llm.responder = responder
    return answered


def _busiest(times: list[float], window: float) -> int:
    """The most answer times that fall in any one window of this length."""
    ordered = sorted(times)
    return max(sum(1 for t in ordered if a <= t < a + window) for a in ordered)


def _gather(client: LLMClient, prompts: list[str], **params: Any) -> list[Any]:
    """Run ``acomplete`` for every prompt concurrently, from a loop of the test's own."""

    async def main() -> list[Any]:
        return await asyncio.gather(*(client.acomplete(p, **params) for p in prompts), return_exceptions=True)

    return asyncio.run(main())


def _entries(cache_dir: Path) -> int:
    """How many responses are stored in ``cache_dir`` (0 when there is no cache)."""
    if not cache_exists(cache_dir):
        return 0
    with ResponseCache(cache_dir) as cache:
        return len(cache)


# -- 1. basic completion, cache hit, async -------------------------------------------------


def test_completion_fields_then_cache_hit(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, stats = make_client()

    first = llm("hi")
    assert isinstance(first, Completion)
    assert first.text == "Echo: hi"
    assert str(first) == "Echo: hi"
    assert "mock" in first.model
    assert first.cached is False
    assert first.latency_s > 0
    # The mock counts whitespace words: "hi" -> 1, "Echo: hi" -> 2.
    assert first.usage == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert mock_llm.count(CHAT) == 1
    assert mock_llm.requests[0][1]["messages"] == [{"role": "user", "content": "hi"}]
    assert stats.counters["calls"] == 1
    assert len(stats.latencies) == 1

    second = llm("hi")
    assert second.cached is True
    assert second.text == "Echo: hi"
    assert second.usage == first.usage
    assert second.cost_usd == 0.0  # a cached answer costs nothing
    assert mock_llm.count() == 1  # no new request
    assert stats.counters["cache_hits"] == 1
    assert stats.counters["calls"] == 1


def test_acomplete_from_another_event_loop(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, _ = make_client()

    async def main() -> tuple[Completion, Completion]:
        # Not the client's loop: acomplete must hand the call over to its runtime.
        assert not llm.runtime.in_loop_thread()
        one = await llm.acomplete("async hello")
        two = await llm.acomplete("async hello")
        return one, two

    one, two = asyncio.run(main())
    assert one.text == "Echo: async hello" and one.cached is False
    assert two.text == "Echo: async hello" and two.cached is True
    assert mock_llm.count(CHAT) == 1
    # ... and the sync path shares the same cache.
    assert llm("async hello").cached is True
    assert mock_llm.count(CHAT) == 1


# -- 2. messages ------------------------------------------------------------------------------


def test_messages_list_is_sent_as_given(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, _ = make_client()
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    answer = llm(messages)
    assert answer.text == "Echo: second question"
    assert mock_llm.requests[-1][1]["messages"] == messages
    # The prompt string form is the same request as one user message.
    llm([{"role": "user", "content": "same"}])
    assert llm("same").cached is True


@pytest.mark.parametrize(
    ("messages", "index"),
    [
        ([{"role": "user", "content": "ok"}, {"content": "no role"}], 1),
        ([{"role": "user"}], 0),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"text": "x"}], 2),
    ],
)
def test_bad_message_raises_value_error_naming_index(
    make_client: MakeClient, mock_llm: MockLLMServer, messages: list[dict[str, Any]], index: int
) -> None:
    llm, _ = make_client()
    with pytest.raises(ValueError, match=rf"message {index}\b.*'role' and 'content'"):
        llm(messages)
    assert mock_llm.count() == 0


# -- 3. no model ---------------------------------------------------------------------------------


def test_no_model_configured_names_all_three_ways(
    make_client: MakeClient, mock_llm: MockLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_mod, "_local_default", lambda: None)
    llm, _ = make_client(model=None)

    with pytest.raises(LLMCallError) as excinfo:
        llm("hi")
    message = str(excinfo.value)
    for way in ("--llmeval-model", "llmeval_model", "model="):
        assert way in message, f"{way!r} missing from: {message}"
    assert excinfo.value.kind == "config"

    with pytest.raises(LLMCallError, match="--llmeval-model"):
        _ = llm.model

    with pytest.raises(LLMCallError) as judge_info:
        llm.judge()("hi")
    assert "--llmeval-judge-model" in str(judge_info.value)
    assert "llmeval_judge_model" in str(judge_info.value)

    # A model given per call is enough.
    assert llm("hi", model=MODEL).text == "Echo: hi"
    assert mock_llm.count() == 1


def test_completely_default_settings_without_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "_local_default", lambda: None)
    llm = LLMClient.create(ClientSettings())
    try:
        with pytest.raises(LLMCallError, match=r"--llmeval-model.*llmeval_model.*model="):
            llm("hi")
    finally:
        llm.runtime.close()
        llm.close()


# -- 4-8. retries and failures -----------------------------------------------------------------


def test_429_retry_after_is_honoured(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, stats = make_client()
    mock_llm.fail_next(1, status=429, retry_after=0.6)

    started = time.perf_counter()
    answer = llm("rate limited")
    elapsed = time.perf_counter() - started

    assert answer.text == "Echo: rate limited"
    assert mock_llm.count(CHAT) == 2
    assert stats.counters["retries"] == 1
    # Backoff is patched to at most 0.05 s: only the header can explain the wait.
    assert elapsed >= 0.6, f"Retry-After: 0.6 not honoured, retried after {elapsed:.3f}s"
    assert elapsed < 3.0


def test_429_without_retry_after_uses_short_backoff(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, stats = make_client()
    _warm_up(llm, mock_llm)
    stats.counters.clear()
    mock_llm.fail_next(1, status=429, retry_after=None)
    started = time.perf_counter()
    assert llm("rate limited, no header").text == "Echo: rate limited, no header"
    assert time.perf_counter() - started < 0.5
    assert mock_llm.count(CHAT) == 2
    assert stats.counters["retries"] == 1


def test_500_twice_then_success(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, stats = make_client()
    mock_llm.fail_next(2, status=500)
    answer = llm("flaky")
    assert answer.text == "Echo: flaky"
    assert answer.cached is False
    assert mock_llm.count(CHAT) == 3
    assert stats.counters["retries"] == 2
    assert stats.counters["calls"] == 1
    assert "call_errors" not in stats.counters
    # The success was cached as usual.
    assert llm("flaky").cached is True
    assert mock_llm.count(CHAT) == 3


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(make_client: MakeClient, mock_llm: MockLLMServer, status: int) -> None:
    llm, stats = make_client()
    mock_llm.fail_next(1, status=status)
    with pytest.raises(LLMCallError, match="not retried") as excinfo:
        llm("bad request")
    assert "mock server: injected" in str(excinfo.value)
    assert mock_llm.count(CHAT) == 1
    assert "retries" not in stats.counters
    assert stats.counters["call_errors"] == 1


def test_timeout_is_retried(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    mock_llm.hang_s = 3.0  # longer than the client's timeout, so the client gives up first
    llm, stats = make_client(timeout=1)
    mock_llm.fail_next(1, timeout=True)
    started = time.perf_counter()
    answer = llm("slow")
    elapsed = time.perf_counter() - started
    assert answer.text == "Echo: slow"
    assert mock_llm.count(CHAT) == 2
    assert stats.counters["retries"] == 1
    assert 0.9 <= elapsed < 2.9  # one client timeout, not the server's hang


def test_timeout_without_retries_fails(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    mock_llm.hang_s = 3.0
    llm, stats = make_client(timeout=1, retries=0)
    mock_llm.fail_next(1, timeout=True)
    with pytest.raises(LLMCallError) as excinfo:
        llm("slow")
    assert "timeout" in str(excinfo.value).lower() or "timed out" in str(excinfo.value).lower()
    assert "not retried" in str(excinfo.value)
    assert mock_llm.count(CHAT) == 1
    assert stats.counters["call_errors"] == 1


def test_retries_exhausted_raise_with_provider_message_and_are_not_cached(
    make_client: MakeClient, mock_llm: MockLLMServer, cache_dir: Path
) -> None:
    llm, stats = make_client(retries=2)
    mock_llm.fail_next(10, status=500)

    with pytest.raises(LLMCallError) as excinfo:
        llm("doomed")
    message = str(excinfo.value)
    assert "mock server: injected 500 (internal_error)" in message  # the provider's own words
    assert "after 2 retries" in message
    assert MODEL in message
    assert excinfo.value.model == MODEL
    assert mock_llm.count(CHAT) == 3
    assert stats.counters["retries"] == 2
    assert stats.counters["call_errors"] == 1

    # Nothing was cached: after the server recovers the call reaches it again.
    mock_llm.reset()
    answer = llm("doomed")
    assert answer.text == "Echo: doomed"
    assert answer.cached is False
    assert mock_llm.count(CHAT) == 1
    llm.flush()
    with ResponseCache(cache_dir) as cache:
        assert len(cache) == 1  # only the success


@pytest.mark.parametrize("malformed", [Malformed.NON_JSON_BODY, Malformed.MISSING_CHOICES])
def test_malformed_response_raises_and_is_not_cached(
    make_client: MakeClient, mock_llm: MockLLMServer, cache_dir: Path, malformed: Malformed
) -> None:
    llm, stats = make_client(retries=0)
    mock_llm.script(malformed)

    with pytest.raises(LLMCallError) as excinfo:
        llm("broken")  # never a Completion with text ""
    assert str(excinfo.value).strip()
    assert MODEL in str(excinfo.value)
    assert mock_llm.count(CHAT) == 1
    assert stats.counters["call_errors"] == 1
    llm.flush()  # had anything been queued for the cache, it is on disk now
    assert _entries(cache_dir) == 0

    answer = llm("broken")
    assert answer.text == "Echo: broken"
    assert answer.cached is False
    assert mock_llm.count(CHAT) == 2


def test_malformed_on_every_attempt_exhausts_retries(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, _ = make_client(retries=2)
    mock_llm.script(*[Malformed.NON_JSON_BODY] * 5)
    with pytest.raises(LLMCallError):
        llm("always broken")
    assert 1 <= mock_llm.count(CHAT) <= 3


_NULL_CONTENT = {
    "status": 200,
    "body": {
        "id": "chatcmpl-null", "object": "chat.completion", "created": 1, "model": "mock",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}],
    },
}


def test_null_content_raises_and_is_not_cached(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, _ = make_client(retries=0)
    mock_llm.script(_NULL_CONTENT)
    with pytest.raises(LLMCallError, match="malformed response with no content"):
        llm("null content")
    assert llm("null content").text == "Echo: null content"
    assert mock_llm.count(CHAT) == 2


def test_malformed_error_keeps_its_kind(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, _ = make_client(retries=0)
    mock_llm.script(_NULL_CONTENT)
    with pytest.raises(LLMCallError) as excinfo:
        llm("null content")
    assert excinfo.value.kind == "malformed"


# -- 9. cache modes and the cache key -----------------------------------------------------------


def test_cache_off_always_calls_and_stores_nothing(
    make_client: MakeClient, mock_llm: MockLLMServer, cache_dir: Path
) -> None:
    llm, stats = make_client(cache_mode="off")
    assert llm("hi").cached is False
    assert llm("hi").cached is False
    assert mock_llm.count(CHAT) == 2
    assert "cache_hits" not in stats.counters
    assert not cache_exists(cache_dir)


def test_cache_refresh_always_calls_and_overwrites(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    recorder, _ = make_client(cache_mode="use")
    mock_llm.script("old answer")
    assert recorder("q").text == "old answer"

    refresher, _ = make_client(cache_mode="refresh")
    mock_llm.script("new answer", "newest answer")
    first = refresher("q")
    assert first.text == "new answer" and first.cached is False
    second = refresher("q")
    assert second.text == "newest answer" and second.cached is False
    assert mock_llm.count(CHAT) == 3
    refresher.flush()  # cache writes are made in the background

    # The overwritten entry is what a "use" run now gets.
    hit = recorder("q")
    assert hit.cached is True
    assert hit.text == "newest answer"
    assert mock_llm.count(CHAT) == 3


def test_a_recording_run_leaves_no_write_ahead_log(make_client: MakeClient, cache_dir: Path) -> None:
    # Threads that read the cache keep their SQLite connections open past close(), as a
    # run's task pool does; SQLite then never folds the log in by itself, and the next
    # run would read through every entry this one wrote.
    client, _ = make_client()
    with concurrent.futures.ThreadPoolExecutor(4) as threads:
        assert len(list(threads.map(lambda i: client(f"question {i}"), range(8)))) == 8
        client.close()
        wal = cache_dir / "cache.db-wal"
        assert not wal.exists() or wal.stat().st_size == 0
        reader, _ = make_client(cache_mode="replay")
        assert reader("question 3").cached  # everything written is in the database itself


def test_cache_replay_serves_hits_and_fails_on_miss(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    recorder, _ = make_client(cache_mode="use")
    recorder("recorded")
    assert mock_llm.count(CHAT) == 1
    recorder.flush()  # writes are in the background: another client sees them once written

    replayer, _ = make_client(cache_mode="replay")
    hit = replayer("recorded")
    assert hit.cached is True and hit.text == "Echo: recorded"

    with pytest.raises(LLMCallError) as excinfo:
        replayer("never recorded")
    message = str(excinfo.value)
    assert "--llmeval-cache=replay" in message
    assert "--llmeval-cache=use" in message
    assert MODEL in message
    assert excinfo.value.kind == "replay"
    assert mock_llm.count(CHAT) == 1  # replay never calls the model


def test_cache_replay_miss_names_the_current_item(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    replayer, _ = make_client(cache_mode="replay")
    token = current_item.set(ItemContext(nodeid="tests/test_app.py::test_answer[case-7]"))
    try:
        with pytest.raises(LLMCallError, match=r"^tests/test_app.py::test_answer\[case-7\]: --llmeval-cache=replay"):
            replayer("never recorded")
    finally:
        current_item.reset(token)
    assert mock_llm.count() == 0


def test_params_are_part_of_the_key(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, _ = make_client()
    assert llm("q", temperature=0).cached is False
    assert llm("q", temperature=0).cached is True
    assert llm("q", temperature=0.7).cached is False
    assert mock_llm.count(CHAT) == 2
    assert mock_llm.requests[-1][1]["temperature"] == 0.7
    assert llm("q", temperature=0, max_tokens=5).cached is False
    assert mock_llm.count(CHAT) == 3


def test_sample_makes_a_distinct_request(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, _ = make_client()
    assert llm("q").cached is False
    assert llm("q", sample=0).cached is True  # sample=0 is the default
    assert llm("q", sample=1).cached is False
    assert llm("q", sample=2).cached is False
    assert llm("q", sample=1).cached is True
    assert mock_llm.count(CHAT) == 3
    # ``sample`` is ours: it is not sent to the provider.
    assert all("sample" not in body for _path, body in mock_llm.requests)


def test_api_base_is_part_of_the_key(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, _ = make_client()
    llm("q")
    # Another address is another endpoint, even when it reaches the same server.
    other = mock_llm.base_url + "/"
    assert llm("q", api_base=other).cached is False
    assert mock_llm.count(CHAT) == 2


# -- 10-11. in-flight sharing and the concurrency bound -------------------------------------------


def test_identical_concurrent_calls_share_one_request(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    mock_llm.latency_s = 0.3
    llm, stats = make_client()
    results = _gather(llm, ["same question"] * 20)
    assert all(isinstance(r, Completion) for r in results), results
    assert {r.text for r in results} == {"Echo: same question"}
    assert mock_llm.count(CHAT) == 1
    assert stats.counters["shared_inflight"] + stats.counters.get("cache_hits", 0) == 19
    assert stats.counters["calls"] == 1


def test_identical_calls_from_threads_share_one_request(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    mock_llm.latency_s = 0.3
    llm, stats = make_client()
    barrier = threading.Barrier(20)

    def call(_: int) -> Completion:
        barrier.wait()
        return llm("same from threads")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(call, range(20)))
    assert {r.text for r in results} == {"Echo: same from threads"}
    assert mock_llm.count(CHAT) == 1
    assert stats.counters.get("shared_inflight", 0) + stats.counters.get("cache_hits", 0) == 19


def test_concurrency_is_bounded(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, _ = make_client(concurrency=4)
    _warm_up(llm, mock_llm)
    mock_llm.latency_s = 0.2
    answered = _note_answer_times(mock_llm, lambda body: "ok " + body["messages"][-1]["content"])

    started = time.perf_counter()
    results = _gather(llm, [f"distinct {i}" for i in range(16)])
    elapsed = time.perf_counter() - started

    assert [r.text for r in results] == [f"ok distinct {i}" for i in range(16)]
    assert mock_llm.count(CHAT) == 16
    # 16 calls, 4 at a time, 0.2 s each: at least 4 waves.
    assert 0.75 <= elapsed < 3.0, elapsed
    # Each request is in flight for the 0.2 s before its answer, so answers less than
    # 0.2 s apart were in flight together: no 0.15 s window may hold more than 4.
    busiest = _busiest(answered, 0.15)
    assert busiest <= 4, answered
    assert busiest >= 3  # the 4 slots were actually used in parallel


def test_an_http_model_holds_its_slot_for_the_request_only(
    make_client: MakeClient, mock_llm: MockLLMServer
) -> None:
    llm, _ = make_client(concurrency=2)
    assert llm._engine.http_gated(MODEL) is False  # not yet seen: the first call holds a whole slot
    llm("first call")
    assert llm._engine.http_gated(MODEL) is True  # its request went through httpx
    mock_llm.reset()
    mock_llm.latency_s = 0.2
    answered = _note_answer_times(mock_llm, lambda body: "ok")
    results = _gather(llm, [f"gated {i}" for i in range(10)])

    assert all(isinstance(r, Completion) for r in results), results
    assert mock_llm.count(CHAT) == 10
    # Still no more than 2 requests in flight at the server (see test_concurrency_is_bounded).
    assert _busiest(answered, 0.15) <= 2, answered


def test_a_model_without_http_holds_its_slot_for_the_whole_call(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import litellm
    from litellm import CustomLLM, ModelResponse
    from litellm.utils import custom_llm_setup

    state = {"now": 0, "most": 0}

    class InProcess(CustomLLM):  # answers without any HTTP, like the embedded model
        async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            await asyncio.sleep(0.05)
            state["now"] -= 1
            return ModelResponse(choices=[{"message": {"role": "assistant", "content": "in-process"}}])

    monkeypatch.setattr(litellm, "custom_provider_map", [{"provider": "inproc", "custom_handler": InProcess()}])
    custom_llm_setup()
    llm, _ = make_client(model="inproc/model", concurrency=3, api_base=None)

    results = _gather(llm, [f"no http {i}" for i in range(12)])

    assert [r.text for r in results] == ["in-process"] * 12
    assert llm._engine.http_gated("inproc/model") is False
    assert state["most"] == 3  # bounded by the whole-call slot, and the 3 slots were used


def test_budget_refuses_calls_already_queued_for_a_request_slot(
    make_client: MakeClient, mock_llm: MockLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_mod, "_cost", lambda response, model, engine: 0.01)
    llm, stats = make_client(max_cost=0.015, concurrency=1)
    llm("paid first")  # 0.01 spent: under the budget, and the model is now known to speak HTTP
    assert llm._engine.http_gated(MODEL) is True
    mock_llm.reset()
    mock_llm.latency_s = 0.1

    # Both calls pass the check made before litellm starts (0.01 < 0.015); one gets the
    # request slot and spends 0.01 more, the other is refused once the slot is its turn.
    results = _gather(llm, ["queued a", "queued b"])

    answers = [r for r in results if isinstance(r, Completion)]
    refusals = [r for r in results if isinstance(r, LLMCallError)]
    assert len(answers) == 1 and len(refusals) == 1, results
    assert refusals[0].kind == "budget" and "--llmeval-max-cost" in str(refusals[0])
    assert mock_llm.count(CHAT) == 1
    assert "retries" not in stats.counters  # a refusal is final, never retried as a connection error


# -- 12. fault soak ------------------------------------------------------------------------------


def test_fault_soak_all_calls_succeed(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    mock_llm.fault_rates = {429: 0.10, 500: 0.05}
    mock_llm.seed = 1234
    mock_llm.retry_after_s = 0.05
    llm, stats = make_client(concurrency=16, retries=6)
    prompts = [f"soak prompt {i}" for i in range(200)]

    results = _gather(llm, prompts)

    failures = [r for r in results if not isinstance(r, Completion)]
    assert not failures, failures[:3]
    assert [r.text for r in results] == [f"Echo: {p}" for p in prompts]
    retries = stats.counters.get("retries", 0)
    assert retries > 0
    assert mock_llm.count(CHAT) == 200 + retries
    assert mock_llm.faults_served == retries
    assert stats.counters["calls"] == 200
    assert "call_errors" not in stats.counters


# -- 13. budget and cost -------------------------------------------------------------------------


def test_budget_stops_new_calls_but_not_cached_ones(
    make_client: MakeClient, mock_llm: MockLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_mod, "_cost", lambda response, model, engine: 0.01)
    llm, stats = make_client(max_cost=0.025)

    for i in range(3):  # 0.00 -> 0.01 -> 0.02 (< 0.025) -> 0.03
        answer = llm(f"paid {i}")
        assert answer.cost_usd == pytest.approx(0.01)
    assert mock_llm.count(CHAT) == 3
    assert stats.counters["cost_usd"] == pytest.approx(0.03)
    assert llm.budget_exhausted is False

    with pytest.raises(LLMCallError) as excinfo:
        llm("one too many")
    message = str(excinfo.value)
    assert "--llmeval-max-cost" in message
    assert "0.025" in message
    assert excinfo.value.kind == "budget"
    assert mock_llm.count(CHAT) == 3  # nothing reached the server
    assert llm.budget_exhausted is True

    cached = llm("paid 1")
    assert cached.cached is True and cached.text == "Echo: paid 1"
    assert cached.cost_usd == 0.0
    assert mock_llm.count(CHAT) == 3

    # The budget is shared by views of the same client (the judge, other models).
    with pytest.raises(LLMCallError, match="--llmeval-max-cost"):
        llm.judge()("judge this")
    assert mock_llm.count(CHAT) == 3


def test_unknown_cost_is_none_and_counted(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, stats = make_client(max_cost=0.000001)
    first = llm("price unknown")
    assert first.cost_usd is None  # never a made-up 0
    assert stats.counters["cost_unknown_calls"] == 1
    assert "cost_usd" not in stats.counters
    # An unknown price spends nothing against the budget.
    llm("price still unknown")
    assert stats.counters["cost_unknown_calls"] == 2
    assert llm.budget_exhausted is False


def test_known_price_is_reported(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    # The mock serves any model name; litellm prices gpt-4o-mini from its local cost map.
    llm, stats = make_client(model="openai/gpt-4o-mini")
    answer = llm("hello there friend")
    assert answer.text == "Echo: hello there friend"
    assert answer.cost_usd is not None and answer.cost_usd > 0
    assert stats.counters["cost_usd"] == pytest.approx(answer.cost_usd)
    assert "cost_unknown_calls" not in stats.counters


# -- 14. embeddings ------------------------------------------------------------------------------


def test_embeddings_vectors_and_cache(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, stats = make_client(embedding_model="openai/mock-embed")
    vectors = llm.embed(["a b", "a b", "c"])
    assert len(vectors) == 3
    assert all(len(v) == EMBEDDING_DIM for v in vectors)
    assert all(isinstance(x, float) for v in vectors for x in v)
    assert vectors[0] == vectors[1]
    assert vectors[0] != vectors[2]
    assert vectors[0] == pytest.approx(embed_text("a b"), abs=1e-6)
    assert vectors[2] == pytest.approx(embed_text("c"), abs=1e-6)
    # Identical texts in one call are one request.
    assert mock_llm.count(EMBED) == 2
    assert mock_llm.count(CHAT) == 0
    assert sorted(body["input"][0] for _p, body in mock_llm.requests) == ["a b", "c"]

    again = llm.embed(["c", "a b"])
    assert again == [vectors[2], vectors[0]]
    assert mock_llm.count(EMBED) == 2
    assert stats.counters["cache_hits"] == 2

    async def main() -> list[list[float]]:
        return await llm.aembed(["a b", "new text"])

    mixed = asyncio.run(main())
    assert mixed[0] == vectors[0]
    assert mock_llm.count(EMBED) == 3


def test_embedding_errors(make_client: MakeClient, mock_llm: MockLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "_local_default", lambda: None)
    llm, _ = make_client()
    with pytest.raises(LLMCallError, match="--llmeval-embedding-model"):
        llm.embed(["x"])
    with pytest.raises(TypeError, match="every text must be a string"):
        llm.embed(["x", 3], model="openai/mock-embed")  # type: ignore[list-item]
    assert mock_llm.count() == 0


def test_known_embedding_price_is_counted(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, stats = make_client(embedding_model="openai/text-embedding-3-small")
    llm.embed(["a b c d"])
    assert mock_llm.count(EMBED) == 1
    assert stats.counters.get("cost_usd", 0) > 0
    assert "cost_unknown_calls" not in stats.counters


# -- 15. credentials -------------------------------------------------------------------------------


def test_api_key_is_never_stored(
    make_client: MakeClient, mock_llm: MockLLMServer, cache_dir: Path, tmp_path: Path
) -> None:
    secret = "sk-secret-123"
    llm, _ = make_client()
    answer = llm("keep it secret", api_key=secret)
    assert answer.text == "Echo: keep it secret"
    assert mock_llm.count(CHAT) == 1
    # The key does not change what is asked: another key hits the same entry.
    assert llm("keep it secret", api_key="sk-other").cached is True
    assert llm("keep it secret").cached is True
    llm.close()  # flush and release the cache before reading its files

    export = tmp_path / "export.jsonl"
    with ResponseCache(cache_dir) as cache:
        assert cache.export(export) == 1
    text = export.read_text(encoding="utf-8")
    assert "keep it secret" in text  # the export does hold the entry...
    assert secret not in text  # ... but not the key
    for path in cache_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


# -- the runtime ---------------------------------------------------------------------------------


def test_sync_call_on_the_clients_loop_is_refused(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    llm, _ = make_client()

    async def on_the_loop() -> Completion:
        return llm("sync inside async")

    with pytest.raises(RuntimeError, match=r"await llm\.acomplete"):
        llm.runtime.run(on_the_loop())

    async def awaited_on_the_loop() -> Completion:
        return await llm.acomplete("awaited inside async")

    assert llm.runtime.run(awaited_on_the_loop()).text == "Echo: awaited inside async"
    assert mock_llm.count(CHAT) == 1


def test_to_thread_keeps_the_current_item(make_client: MakeClient) -> None:
    llm, _ = make_client()

    def user_code() -> tuple[str | None, str]:
        item = current_item.get()
        return (item.nodeid if item else None), threading.current_thread().name

    async def job() -> tuple[str | None, str]:
        current_item.set(ItemContext(nodeid="tests/test_x.py::test_y"))
        return await llm.runtime.to_thread(user_code)

    nodeid, thread_name = llm.runtime.run(job())
    assert nodeid == "tests/test_x.py::test_y"
    assert thread_name.startswith("llmeval-task")
    assert current_item.get() is None  # the job's context did not leak into the caller


def test_client_still_works_after_runtime_restart(make_client: MakeClient, mock_llm: MockLLMServer) -> None:
    mock_llm.latency_s = 0.05
    llm, _ = make_client(concurrency=2)

    def batch(tag: str) -> list[Any]:
        results = _gather(llm, [f"{tag} {i}" for i in range(5)])
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results

    assert [r.text for r in batch("before")] == [f"Echo: before {i}" for i in range(5)]
    llm.runtime.close()  # the runtime starts a new loop on its next use
    assert [r.text for r in batch("after")] == [f"Echo: after {i}" for i in range(5)]
