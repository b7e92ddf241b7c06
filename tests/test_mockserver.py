"""Tests of the mock OpenAI-compatible server, over real HTTP and through litellm."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pytest_llmeval.mockserver import EMBEDDING_DIM, Malformed, MockLLMServer, embed_text

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm  # noqa: E402  (after the env var, so import never fetches the cost map)

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"


def _http(
    server: MockLLMServer,
    path: str,
    body: Any = None,
    *,
    method: str | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """One real HTTP request with urllib; returns (status, headers, body)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(
        server.url + path,
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "mock-model", "messages": [{"role": "user", "content": text}], **extra}


def _complete(server: MockLLMServer, text: str, **kwargs: Any) -> Any:
    return litellm.completion(
        model="openai/mock-model",
        api_base=server.base_url,
        api_key="sk-test",
        messages=[{"role": "user", "content": text}],
        **kwargs,
    )


def _content(raw: bytes) -> str:
    """The reply content of a raw chat completion body."""
    content: str = json.loads(raw)["choices"][0]["message"]["content"]
    return content


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))  # the vectors are unit length


# ------------------------------------------------------------ plain HTTP


def test_chat_completion_over_http(mock_llm: MockLLMServer) -> None:
    body = {
        "model": "mock-model",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "Echo: first question"},
            {"role": "user", "content": "hello mock world"},
        ],
    }
    status, headers, raw = _http(mock_llm, CHAT, body)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    reply = json.loads(raw)
    assert reply["object"] == "chat.completion"
    assert reply["model"] == "mock-model"
    assert reply["id"].startswith("chatcmpl-")
    assert isinstance(reply["created"], int)
    choice = reply["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Echo: hello mock world"}
    assert choice["finish_reason"] == "stop"
    # Whitespace words: 2 + 2 + 3 + 3 in the prompt, "Echo: hello mock world" = 4.
    assert reply["usage"] == {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}


def test_embeddings_over_http(mock_llm: MockLLMServer) -> None:
    texts = [
        "the cat sat on the mat",
        "the cat sat on the mat",
        "a cat on a mat",
        "stock prices fell sharply",
    ]
    status, _, raw = _http(mock_llm, EMBED, {"model": "mock-embed", "input": texts})
    assert status == 200
    reply = json.loads(raw)
    vecs = [d["embedding"] for d in sorted(reply["data"], key=lambda d: d["index"])]
    assert len(vecs) == 4 and all(len(v) == EMBEDDING_DIM for v in vecs)
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0) for v in vecs)
    assert vecs[0] == vecs[1] == embed_text(texts[0])
    # Shared words make texts closer than unrelated ones.
    assert _cosine(vecs[0], vecs[2]) > _cosine(vecs[0], vecs[3]) + 0.3
    assert reply["usage"]["prompt_tokens"] == 6 + 6 + 5 + 4


def test_unknown_route_is_an_openai_style_404(mock_llm: MockLLMServer) -> None:
    status, _, raw = _http(mock_llm, "/v1/completions", {"prompt": "x"})
    assert status == 404
    assert json.loads(raw)["error"]["code"] == "not_found"


# ------------------------------------------------------------ through litellm


def test_litellm_completion_returns_the_echo(mock_llm: MockLLMServer) -> None:
    resp = _complete(mock_llm, "What is 2 + 2?")
    assert resp.choices[0].message.content == "Echo: What is 2 + 2?"
    # Whitespace words: 5 in the prompt, 6 in "Echo: What is 2 + 2?".
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 6)
    (path, sent), = mock_llm.requests
    assert path == CHAT
    assert sent["model"] == "mock-model"
    assert sent["messages"] == [{"role": "user", "content": "What is 2 + 2?"}]


def test_litellm_embedding(mock_llm: MockLLMServer) -> None:
    resp = litellm.embedding(
        model="openai/mock-embed",
        api_base=mock_llm.base_url,
        api_key="sk-test",
        input=["refund policy", "refund policy for orders"],
    )
    first, second = (d["embedding"] for d in resp.data)
    assert len(first) == EMBEDDING_DIM
    # float32 on the wire when the client asks for base64: equal to 1e-6.
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(first, embed_text("refund policy")))
    assert _cosine(first, second) > 0.5
    assert mock_llm.count("embeddings") == 1


# ------------------------------------------------------------ faults


def test_429_carries_retry_after(mock_llm: MockLLMServer) -> None:
    mock_llm.fail_next(1, status=429, retry_after=1.5)
    status, headers, raw = _http(mock_llm, CHAT, _chat_body("hi"))
    assert status == 429
    assert headers["Retry-After"] == "1.5"
    assert json.loads(raw)["error"]["type"] == "rate_limit_error"
    # The fault is used up: the next request succeeds.
    assert _http(mock_llm, CHAT, _chat_body("hi"))[0] == 200


def test_litellm_sees_429_and_500(mock_llm: MockLLMServer) -> None:
    mock_llm.fail_next(1, status=429, retry_after=0.1)
    mock_llm.fail_next(1, status=500)
    with pytest.raises(litellm.RateLimitError):
        _complete(mock_llm, "hi", max_retries=0)
    with pytest.raises(litellm.InternalServerError) as info:
        _complete(mock_llm, "hi", max_retries=0)
    assert "injected 500" in str(info.value)
    assert mock_llm.faults_served == 2
    assert _complete(mock_llm, "after").choices[0].message.content == "Echo: after"


def test_faults_precede_the_script_so_a_retry_gets_it(mock_llm: MockLLMServer) -> None:
    mock_llm.script("scripted")
    mock_llm.fail_next(1, status=500)
    assert _http(mock_llm, CHAT, _chat_body("x"))[0] == 500
    assert _content(_http(mock_llm, CHAT, _chat_body("x"))[2]) == "scripted"


def test_timeout_then_server_stays_healthy(mock_llm: MockLLMServer) -> None:
    mock_llm.hang_s = 5.0  # longer than the client's timeout, bounded
    mock_llm.fail_next(1, timeout=True)
    started = time.monotonic()
    with pytest.raises(litellm.Timeout):
        _complete(mock_llm, "hang", timeout=1, max_retries=0)
    assert time.monotonic() - started < 3
    # The hung request still sleeps on the server; others are served meanwhile.
    assert _complete(mock_llm, "still alive").choices[0].message.content == "Echo: still alive"
    assert mock_llm.count(CHAT) == 2


def test_hung_request_is_dropped_after_hang_s(mock_llm: MockLLMServer) -> None:
    mock_llm.hang_s = 0.3
    mock_llm.fail_next(1, timeout=True)
    with pytest.raises((ConnectionError, urllib.error.URLError)):
        _http(mock_llm, CHAT, _chat_body("x"), timeout=5)


def test_latency_is_applied_without_blocking_the_loop(mock_llm: MockLLMServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    mock_llm.latency_s = 0.3
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        replies = pool.map(lambda i: _http(mock_llm, CHAT, _chat_body(str(i))), range(8))
        statuses = [status for status, _, _ in replies]
    elapsed = time.monotonic() - started
    assert statuses == [200] * 8
    # Eight concurrent requests of 0.3 s each: one latency, not eight.
    assert 0.3 <= elapsed < 1.2


def test_fault_rates_are_reproducible_with_a_seed(mock_llm: MockLLMServer) -> None:
    def run() -> list[int]:
        return [_http(mock_llm, CHAT, _chat_body("x"))[0] for _ in range(200)]

    mock_llm.fault_rates = {429: 0.10, 500: 0.05}
    mock_llm.seed = 7
    first = run()
    mock_llm.seed = 7
    second = run()
    assert first == second
    n429, n500 = first.count(429), first.count(500)
    # Expected 20 and 10 of 200; the bounds are wide, the sequence is fixed anyway.
    assert 8 <= n429 <= 35 and 2 <= n500 <= 20
    assert first.count(200) == 200 - n429 - n500
    assert mock_llm.faults_served == 2 * (n429 + n500)
    mock_llm.seed = 8
    assert run() != first


def test_fault_rates_are_validated(mock_llm: MockLLMServer) -> None:
    with pytest.raises(ValueError, match="add up to more than 1"):
        mock_llm.fault_rates = {429: 0.7, 500: 0.6}
    with pytest.raises(ValueError, match="between 0 and 1"):
        mock_llm.fault_rates = {429: 1.5}


# ------------------------------------------------------------ scripted replies


def test_scripted_replies_in_order_then_echo(mock_llm: MockLLMServer) -> None:
    mock_llm.script("one", "two", {"status": 503, "body": {"error": {"message": "overloaded"}}}, "three")
    contents = []
    for _ in range(3):
        status, _, raw = _http(mock_llm, CHAT, _chat_body("q"))
        contents.append(_content(raw) if status == 200 else status)
    assert contents == ["one", "two", 503]
    assert _complete(mock_llm, "q").choices[0].message.content == "three"
    assert _complete(mock_llm, "q").choices[0].message.content == "Echo: q"


def test_responder_computes_the_reply_from_the_request(mock_llm: MockLLMServer) -> None:
    def judge(req: dict[str, Any]) -> Any:
        prompt = req["messages"][-1]["content"]
        if "broken" in prompt:
            return Malformed.INVALID_JSON_CONTENT
        return json.dumps({"score": 5 if "good" in prompt else 1, "reasoning": "mock"})

    mock_llm.responder = judge
    good = _complete(mock_llm, "rate this good answer").choices[0].message.content
    bad = _complete(mock_llm, "rate this poor answer").choices[0].message.content
    assert json.loads(good)["score"] == 5
    assert json.loads(bad)["score"] == 1
    broken = _complete(mock_llm, "rate this broken answer").choices[0].message.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)
    # A scripted reply takes precedence over the responder.
    mock_llm.script("scripted")
    assert _complete(mock_llm, "good").choices[0].message.content == "scripted"



def test_a_failing_responder_is_named_in_a_500(mock_llm: MockLLMServer) -> None:
    def responder(req: dict[str, Any]) -> str:
        raise KeyError("score")

    mock_llm.responder = responder
    status, _, raw = _http(mock_llm, CHAT, _chat_body("x"))
    assert status == 500
    assert "responder raised KeyError('score')" in json.loads(raw)["error"]["message"]

def test_response_format_does_not_change_the_reply(mock_llm: MockLLMServer) -> None:
    mock_llm.script('{"score": 3}')
    resp = _complete(mock_llm, "judge", response_format={"type": "json_object"})
    assert json.loads(resp.choices[0].message.content) == {"score": 3}
    assert mock_llm.requests[-1][1]["response_format"] == {"type": "json_object"}


# ------------------------------------------------------------ malformed bodies


def test_malformed_non_json_body(mock_llm: MockLLMServer) -> None:
    mock_llm.script(Malformed.NON_JSON_BODY)
    status, _, raw = _http(mock_llm, CHAT, _chat_body("x"))
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    mock_llm.script(Malformed.NON_JSON_BODY)
    with pytest.raises(Exception):
        _complete(mock_llm, "x", max_retries=0)


def test_malformed_missing_choices(mock_llm: MockLLMServer) -> None:
    mock_llm.script(Malformed.MISSING_CHOICES)
    status, _, raw = _http(mock_llm, CHAT, _chat_body("x"))
    reply = json.loads(raw)
    assert status == 200 and "choices" not in reply and reply["object"] == "chat.completion"


def test_malformed_judge_content(mock_llm: MockLLMServer) -> None:
    mock_llm.script(Malformed.INVALID_JSON_CONTENT)
    content = _complete(mock_llm, "judge").choices[0].message.content
    assert content.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_bad_request_body_is_a_400(mock_llm: MockLLMServer) -> None:
    status, _, raw = _http(mock_llm, CHAT, b"not json")
    assert status == 400
    assert "messages" in json.loads(raw)["error"]["message"]
    assert mock_llm.requests == [(CHAT, "not json")]


# ------------------------------------------------------------ counters and admin


def test_counter_and_reset(mock_llm: MockLLMServer) -> None:
    _http(mock_llm, CHAT, _chat_body("a"))
    _http(mock_llm, CHAT, _chat_body("b"))
    _http(mock_llm, EMBED, {"model": "e", "input": "c"})
    assert mock_llm.count() == 3
    assert mock_llm.count(CHAT) == 2 and mock_llm.count("chat/completions") == 2
    assert mock_llm.count("embeddings") == 1
    assert [p for p, _ in mock_llm.requests] == [CHAT, CHAT, EMBED]
    # Admin endpoints are not counted as model requests.
    status, _, raw = _http(mock_llm, "/_mock/stats")
    assert status == 200
    assert json.loads(raw) == {"counts": {CHAT: 2, EMBED: 1}, "total": 3, "faults": 0}

    mock_llm.latency_s = 0.5
    mock_llm.script("left over")
    mock_llm.fail_next(3)
    mock_llm.reset()
    assert mock_llm.count() == 0 and mock_llm.requests == []
    assert mock_llm.latency_s == 0.0
    assert _content(_http(mock_llm, CHAT, _chat_body("fresh"))[2]) == "Echo: fresh"


def test_admin_config_and_reset_over_http(mock_llm: MockLLMServer) -> None:
    status, _, raw = _http(
        mock_llm,
        "/_mock/config",
        {"latency_s": 0.05, "fault_rates": {"500": 0.25}, "seed": 3, "script": ["via admin"]},
    )
    assert status == 200
    assert json.loads(raw)["fault_rates"] == {"500": 0.25}
    assert mock_llm.latency_s == 0.05 and mock_llm.fault_rates == {500: 0.25} and mock_llm.seed == 3
    status, _, raw = _http(mock_llm, "/_mock/config", {"latncy_s": 1})
    assert status == 400 and "latncy_s" in json.loads(raw)["error"]["message"]
    _http(mock_llm, CHAT, _chat_body("x"))
    assert _http(mock_llm, "/_mock/reset", {})[0] == 200
    assert mock_llm.count() == 0 and mock_llm.fault_rates == {} and mock_llm.latency_s == 0.0


def test_lifecycle_binds_loopback_and_frees_the_port() -> None:
    server = MockLLMServer()
    with pytest.raises(RuntimeError, match="not started"):
        server.base_url
    with server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert _http(server, CHAT, _chat_body("x"))[0] == 200
        port = server.port
    server.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_mock/stats", timeout=2)


# ------------------------------------------------------------ subprocess mode


def test_subprocess_mode(tmp_path: Path) -> None:
    repo_root = Path(__file__).resolve().parents[1]
    # The package may not be installed: make it importable from the checkout.
    path = os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_llmeval.mockserver", "--port", "0", "--latency", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("MOCK_URL=http://127.0.0.1:"), (line, proc.stderr and proc.stderr.read())
        base_url = line.split("=", 1)[1]
        assert base_url.endswith("/v1")
        root = base_url[: -len("/v1")]

        req = urllib.request.Request(
            base_url + "/chat/completions", data=json.dumps(_chat_body("sub")).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        started = time.monotonic()
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert _content(resp.read()) == "Echo: sub"
        assert time.monotonic() - started >= 0.1  # --latency took effect
        with urllib.request.urlopen(root + "/_mock/stats", timeout=5) as resp:
            assert json.loads(resp.read()) == {"counts": {CHAT: 1}, "total": 1, "faults": 0}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
