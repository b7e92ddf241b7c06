"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

litellm talks to it over real HTTP, so the whole client path (httpx, the openai
SDK, litellm's error mapping and retries) is exercised without any network.

In-process use (the ``mock_llm`` fixture wraps this)::

    with MockLLMServer(latency_s=0.0) as server:
        server.script("first reply", {"status": 500, "body": "boom"})
        server.fail_next(1, status=429, retry_after=0.1)
        litellm.completion(model="openai/mock-model", api_base=server.base_url,
                           api_key="sk-test", messages=[...])

Subprocess use (benchmarks, other processes such as xdist workers)::

    python -m pytest_llmeval.mockserver --port 0 --latency 0.1
    # prints: MOCK_URL=http://127.0.0.1:PORT/v1

and is then driven through ``GET /_mock/stats``, ``POST /_mock/reset`` and
``POST /_mock/config``.

Only the standard library is imported at module level: aiohttp is imported in
:meth:`MockLLMServer.start`, so importing this module costs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import enum
import hashlib
import itertools
import json
import math
import random
import re
import signal
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "EMBEDDING_DIM",
    "Malformed",
    "MockLLMServer",
    "embed_text",
    "main",
]

# The only address the server ever binds: tests must not be reachable from, or
# reach, anything but this machine.
HOST = "127.0.0.1"

EMBEDDING_DIM = 64
CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MODEL_PATHS = (CHAT_PATH, EMBEDDINGS_PATH)

DEFAULT_RETRY_AFTER_S = 1.5
DEFAULT_HANG_S = 30.0

_WORD_RE = re.compile(r"\w+", re.UNICODE)


class Malformed(enum.Enum):
    """Markers for broken replies, usable in :meth:`MockLLMServer.script` and
    as a responder's return value.

    ``NON_JSON_BODY``: status 200, ``Content-Type: application/json``, a body
    that is not JSON (a misbehaving proxy). ``MISSING_CHOICES``: valid JSON
    without ``choices``. ``INVALID_JSON_CONTENT``: a well-formed completion whose
    message content is truncated JSON (a judge that broke off mid-answer).
    """

    NON_JSON_BODY = "non_json_body"
    MISSING_CHOICES = "missing_choices"
    INVALID_JSON_CONTENT = "invalid_json_content"


# What a scripted item or a responder may produce: reply content, a raw
# response ``{"status": int, "body": str | dict | list, "headers": {...}}``,
# or a malformed marker.
Reply = Union[str, Mapping[str, Any], Malformed]
Responder = Callable[[dict[str, Any]], Reply]

_NON_JSON_BODY_TEXT = "<html><body>502 Bad Gateway</body></html>"
_INVALID_JSON_CONTENT = '{"score": 4, "reasoning": "the answer is mostly'


@dataclass(frozen=True)
class _Fault:
    """One injected failure: an HTTP error status, or a hang (``timeout``)."""

    status: int = 429
    retry_after: float | None = DEFAULT_RETRY_AFTER_S
    timeout: bool = False


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def _count_words(text: str) -> int:
    # Token counts are whitespace words: cheap, deterministic, and close enough
    # for usage and cost bookkeeping in tests.
    return len(text.split())


def embed_text(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """Deterministic bag-of-words embedding: signed feature hashing, L2-normalised.

    Texts sharing words get a higher cosine similarity; identical text gives an
    identical vector. Text without words hashes the empty token, so every vector
    has unit length and a downstream cosine never divides by zero.
    """
    vec = [0.0] * dim
    for word in _words(text) or [""]:
        # blake2b rather than hash(): str hashing is salted per process, and the
        # vectors must agree between the test process and a subprocess server.
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        h = int.from_bytes(digest, "little")
        # The sign bit keeps unrelated texts near cosine 0 instead of all positive.
        vec[h % dim] += 1.0 if (h >> 63) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vec))
    if norm == 0.0:
        # Every word cancelled out (possible with signed hashing): fall back to
        # the empty token's vector rather than return a zero vector.
        return embed_text("", dim)
    return [x / norm for x in vec]


def _content_text(content: Any) -> str:
    """Text of a message ``content``: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        )
    return "" if content is None else str(content)


def _error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


_ERROR_KINDS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
}


def _openai_error(status: int, message: str | None = None) -> dict[str, Any]:
    fallback = ("server_error" if status >= 500 else "invalid_request_error", str(status))
    type_, code = _ERROR_KINDS.get(status, fallback)
    return _error_body(message or f"mock server: injected {status} ({code})", type_, code)


def _normalise_path(path: str) -> str:
    # count("chat/completions") and count("/v1/chat/completions") mean the same.
    return path if path.startswith("/") else "/v1/" + path


def _parse_fault_rates(rates: Mapping[Any, float]) -> dict[int | str, float]:
    parsed: dict[int | str, float] = {}
    for key, rate in rates.items():
        k: int | str = "timeout" if str(key) == "timeout" else int(key)
        r = float(rate)
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"fault_rates[{key!r}] = {rate!r}: a rate must be between 0 and 1")
        parsed[k] = r
    if sum(parsed.values()) > 1.0 + 1e-9:
        raise ValueError(f"fault_rates {dict(rates)!r}: rates add up to more than 1; lower them")
    return parsed


class MockLLMServer:
    """An OpenAI-compatible server on 127.0.0.1 with scripted replies and faults.

    Serves ``POST /v1/chat/completions`` (default reply ``"Echo: <last user
    message>"``), ``POST /v1/embeddings`` (see :func:`embed_text`) and the admin
    endpoints ``GET /_mock/stats``, ``POST /_mock/reset``, ``POST /_mock/config``.

    Each model request is answered by the first of these that applies:
    a fault queued by :meth:`fail_next`; a fault drawn from :attr:`fault_rates`;
    (chat only) the next item queued by :meth:`script`; :attr:`responder`;
    the echo. Faults come first so that a retried request gets the scripted
    reply that was waiting for it.

    Configuration attributes may be changed at any time from any thread.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        latency_s: float = 0.0,
        fault_rates: Mapping[Any, float] | None = None,
        seed: int | None = 0,
        hang_s: float = DEFAULT_HANG_S,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
        responder: Responder | None = None,
    ) -> None:
        self._port = port
        self._defaults: dict[str, Any] = {
            "latency_s": float(latency_s),
            "fault_rates": _parse_fault_rates(fault_rates or {}),
            "seed": seed,
            "hang_s": float(hang_s),
            "retry_after_s": float(retry_after_s),
            "responder": responder,
        }
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._bound_port: int | None = None
        self._apply_defaults()

    # ----------------------------------------------------------------- config

    def _apply_defaults(self) -> None:
        with self._lock:
            d = self._defaults
            #: Seconds every model request waits before it is answered.
            self.latency_s: float = d["latency_s"]
            #: Seconds a ``timeout`` fault hangs before dropping the connection.
            self.hang_s: float = d["hang_s"]
            #: Retry-After (seconds) sent with 429s drawn from :attr:`fault_rates`.
            self.retry_after_s: float = d["retry_after_s"]
            #: ``fn(request_json) -> reply`` used when nothing is scripted.
            self.responder: Responder | None = d["responder"]
            self._fault_rates: dict[int | str, float] = dict(d["fault_rates"])
            self._seed: int | None = d["seed"]
            self._rng = random.Random(self._seed)
            self._script: deque[Reply] = deque()
            self._faults: deque[_Fault] = deque()
            self._log: list[tuple[str, Any]] = []
            self._counts: Counter[str] = Counter()
            self._faults_served = 0

    @property
    def fault_rates(self) -> dict[int | str, float]:
        """Probability per fault, e.g. ``{429: 0.10, 500: 0.05, "timeout": 0.01}``.

        One draw of the seeded RNG per model request, so a given seed and number
        of requests always yield the same number of faults.
        """
        with self._lock:
            return dict(self._fault_rates)

    @fault_rates.setter
    def fault_rates(self, rates: Mapping[Any, float]) -> None:
        parsed = _parse_fault_rates(rates)
        with self._lock:
            self._fault_rates = parsed

    @property
    def seed(self) -> int | None:
        """Seed of the fault RNG; setting it restarts the RNG's sequence."""
        return self._seed

    @seed.setter
    def seed(self, seed: int | None) -> None:
        with self._lock:
            self._seed = seed
            self._rng = random.Random(seed)

    def script(self, *replies: Reply) -> None:
        """Queue chat replies, consumed one per chat request in order.

        Each is reply content (``str``), a raw response ``{"status": 500,
        "body": ..., "headers": {...}}`` (``body`` a string, or JSON-encoded if a
        dict or list), or a :class:`Malformed` marker.
        """
        for reply in replies:
            if not isinstance(reply, (str, Mapping, Malformed)):
                raise TypeError(
                    f"script({reply!r}): a reply is a str, a dict with 'status' or a Malformed marker"
                )
        with self._lock:
            self._script.extend(replies)

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        retry_after: float | None = DEFAULT_RETRY_AFTER_S,
        timeout: bool = False,
    ) -> None:
        """Make the next ``n`` model requests fail.

        With ``status`` 429 the response carries ``Retry-After: retry_after``
        (``None`` omits the header). With ``timeout=True`` the request hangs for
        :attr:`hang_s` seconds and the connection is then dropped unanswered.
        """
        fault = _Fault(status=status, retry_after=retry_after, timeout=timeout)
        with self._lock:
            self._faults.extend([fault] * n)

    def reset(self) -> None:
        """Forget requests, counts, scripted replies and queued faults, and restore
        the constructor's configuration (latency, fault rates, seed, responder)."""
        self._apply_defaults()

    # --------------------------------------------------------------- metrics

    @property
    def requests(self) -> list[tuple[str, Any]]:
        """A snapshot of ``(path, parsed JSON body)`` of every model request, in
        arrival order (the body is the raw text if it was not JSON)."""
        with self._lock:
            return list(self._log)

    def count(self, path: str | None = None) -> int:
        """Number of model requests received, all or for one path
        (``"/v1/chat/completions"`` or just ``"chat/completions"``)."""
        with self._lock:
            if path is None:
                return sum(self._counts.values())
            return self._counts[_normalise_path(path)]

    @property
    def faults_served(self) -> int:
        """Number of requests answered with an error status or left hanging."""
        with self._lock:
            return self._faults_served

    def stats(self) -> dict[str, Any]:
        """What ``GET /_mock/stats`` returns: counts per path, total, faults."""
        with self._lock:
            return {
                "counts": dict(sorted(self._counts.items())),
                "total": sum(self._counts.values()),
                "faults": self._faults_served,
            }

    def configure(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Apply what ``POST /_mock/config`` accepts and return the configuration.

        Keys: ``latency_s``, ``fault_rates`` (``{"429": 0.1}``), ``seed``,
        ``hang_s``, ``retry_after_s``, ``script`` (a list of replies) and
        ``fail_next`` (``{"n": 2, "status": 500, "retry_after": 1, "timeout":
        false}``). Unknown keys are rejected so that a typo does not pass silently.
        """
        known = {"latency_s", "fault_rates", "seed", "hang_s", "retry_after_s", "script", "fail_next"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; allowed: {sorted(known)}")
        if "fault_rates" in config:
            self.fault_rates = config["fault_rates"]
        if "seed" in config:
            self.seed = config["seed"]
        for key in ("latency_s", "hang_s", "retry_after_s"):
            if key in config:
                setattr(self, key, float(config[key]))
        if "script" in config:
            self.script(*config["script"])
        if "fail_next" in config:
            self.fail_next(**config["fail_next"])
        return {
            "latency_s": self.latency_s,
            "fault_rates": {str(k): v for k, v in self.fault_rates.items()},
            "seed": self.seed,
            "hang_s": self.hang_s,
            "retry_after_s": self.retry_after_s,
        }

    # ------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The bound port (only once started)."""
        if self._bound_port is None:
            raise RuntimeError(
                "MockLLMServer is not started; call start() or use it as a context manager"
            )
        return self._bound_port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the admin endpoints live under it)."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the ``api_base`` to give litellm."""
        return f"{self.url}/v1"

    def start(self) -> MockLLMServer:
        """Bind 127.0.0.1 (a free port when ``port=0``) and serve from a
        background thread running its own event loop. Returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("MockLLMServer is already started")
        # Imported here so that importing this module stays stdlib-only.
        from aiohttp import web

        # Binding the socket ourselves (rather than letting aiohttp bind) gives
        # the real port at once and makes port 0 race-free.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, self._port))
        except OSError:
            sock.close()
            raise
        self._bound_port = sock.getsockname()[1]

        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def setup() -> None:
            self._stopping = asyncio.Event()
            # access_log=None: per-request logging would dominate the cost of a
            # request under the 5000-case benchmark.
            # A short shutdown timeout: a hanging (timeout-fault) handler must
            # not hold up stop(); _stopping also wakes it early.
            runner = web.AppRunner(
                self._make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
            )
            await runner.setup()
            await web.SockSite(runner, sock, backlog=1024).start()
            self._runner = runner

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(setup())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"mock-llm-{self._bound_port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            self._bound_port = None
            sock.close()
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging requests and join the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return

        async def shutdown() -> None:
            assert self._stopping is not None
            self._stopping.set()
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._thread = self._loop = self._runner = None
            self._bound_port = None

    def __enter__(self) -> MockLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._bound_port is not None else "not started"
        return f"<MockLLMServer {where}>"

    # --------------------------------------------------------------- serving

    def _make_app(self) -> web.Application:
        from aiohttp import web

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post(CHAT_PATH, self._handle_chat)
        app.router.add_post(EMBEDDINGS_PATH, self._handle_embeddings)
        app.router.add_get("/_mock/stats", self._handle_stats)
        app.router.add_post("/_mock/reset", self._handle_reset)
        app.router.add_post("/_mock/config", self._handle_config)
        # OpenAI-shaped 404s, so a client sees a provider-like error, not HTML.
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        return app

    @classmethod
    def _bad_request(cls, message: str) -> web.Response:
        return cls._json(_openai_error(400, f"mock server: {message}"), 400)

    @staticmethod
    def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
        from aiohttp import web

        return web.Response(
            body=json.dumps(body).encode("utf-8"),
            status=status,
            headers=headers,
            content_type="application/json",
        )

    async def _admit(self, request: web.Request) -> tuple[Any, _Fault | None]:
        """Read and log a model request, pick its fault (if any), and wait the
        configured latency. The body is ``None``-safe: non-JSON is kept as text."""
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self._log.append((request.path, body))
            self._counts[request.path] += 1
            fault = self._faults.popleft() if self._faults else self._draw_fault()
            if fault is not None:
                self._faults_served += 1
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        return body, fault

    def _draw_fault(self) -> _Fault | None:
        # Called under the lock. Exactly one draw per request even when no rate
        # is set, so adding a rate later does not shift an unrelated sequence.
        x = self._rng.random()
        for key in sorted(self._fault_rates, key=str):
            x -= self._fault_rates[key]
            if x < 0:
                if key == "timeout":
                    return _Fault(timeout=True)
                assert isinstance(key, int)
                return _Fault(status=key, retry_after=self.retry_after_s if key == 429 else None)
        return None

    async def _serve_fault(self, request: web.Request, fault: _Fault) -> web.StreamResponse:
        if fault.timeout:
            assert self._stopping is not None
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.hang_s)
            except asyncio.TimeoutError:
                pass
            # Drop the connection without an answer, like a dead upstream.
            if request.transport is not None:
                request.transport.close()
            return self._json(_openai_error(504, "mock server: request hung"), status=504)
        headers = {}
        if fault.status == 429 and fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        return self._json(_openai_error(fault.status), status=fault.status, headers=headers)

    def _raw_reply(self, reply: Mapping[str, Any]) -> web.Response:
        from aiohttp import web

        status = int(reply.get("status", 200))
        if status >= 400:
            with self._lock:
                self._faults_served += 1
        body = reply.get("body")
        headers = dict(reply.get("headers") or {})
        if status == 429 and "Retry-After" not in headers:
            headers["Retry-After"] = f"{self.retry_after_s:g}"
        if body is None:
            body = _openai_error(status) if status >= 400 else {}
        if isinstance(body, (dict, list)):
            return self._json(body, status=status, headers=headers)
        return web.Response(
            text=str(body), status=status, headers=headers, content_type="application/json"
        )

    def _completion(
        self, req: Mapping[str, Any], content: str, *, with_choices: bool = True
    ) -> dict[str, Any]:
        messages = req.get("messages") or []
        prompt_tokens = sum(
            _count_words(_content_text(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        completion_tokens = _count_words(content)
        out: dict[str, Any] = {
            "id": f"chatcmpl-mock-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(req.get("model") or "mock-model"),
            "system_fingerprint": "mock",
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if with_choices:
            out["choices"] = [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ]
        return out

    @staticmethod
    def _echo(req: Mapping[str, Any]) -> str:
        for message in reversed(req.get("messages") or []):
            if isinstance(message, dict) and message.get("role") == "user":
                return "Echo: " + _content_text(message.get("content"))
        return "Echo: "

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body, fault = await self._admit(request)
        if fault is not None:
            return await self._serve_fault(request, fault)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._bad_request("the body must be JSON with a 'messages' list")
        if body.get("stream"):
            return self._bad_request("stream=true is not supported; call without streaming")

        with self._lock:
            reply: Reply | None = self._script.popleft() if self._script else None
        if reply is None:
            # The responder runs outside the lock: it is user code and may be slow.
            try:
                reply = self.responder(body) if self.responder is not None else self._echo(body)
            except Exception as exc:
                # Name the culprit in the reply: aiohttp's bare 500 would leave a
                # test author looking for the bug in the client instead.
                message = f"mock server: the responder raised {exc!r}; fix the test's responder"
                return self._json(_openai_error(500, message), 500)

        if isinstance(reply, Malformed):
            if reply is Malformed.NON_JSON_BODY:
                return web.Response(text=_NON_JSON_BODY_TEXT, content_type="application/json")
            if reply is Malformed.MISSING_CHOICES:
                return self._json(self._completion(body, "", with_choices=False))
            reply = _INVALID_JSON_CONTENT
        if isinstance(reply, Mapping):
            return self._raw_reply(reply)
        return self._json(self._completion(body, str(reply)))

    async def _handle_embeddings(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._admit(request)
        if fault is not None:
            return await self._serve_fault(request, fault)
        if not isinstance(body, dict) or "input" not in body:
            return self._bad_request("the body must be JSON with an 'input'")
        texts = _embedding_inputs(body["input"])
        # The openai SDK asks for base64 unless told otherwise and decodes it
        # itself, so both encodings must be served.
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vec = embed_text(text)
            emb: Any = vec
            if as_base64:
                emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(_count_words(t) for t in texts)
        return self._json(
            {
                "object": "list",
                "data": data,
                "model": str(body.get("model") or "mock-embed"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _handle_stats(self, request: web.Request) -> web.StreamResponse:
        return self._json(self.stats())

    async def _handle_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return self._json({"ok": True})

    async def _handle_config(self, request: web.Request) -> web.StreamResponse:
        try:
            config = json.loads(await request.read() or b"{}")
            if not isinstance(config, dict):
                raise ValueError("the body must be a JSON object")
            return self._json(self.configure(config))
        except (ValueError, TypeError) as exc:
            return self._bad_request(f"bad /_mock/config: {exc}")

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        return self._json(
            _openai_error(404, f"mock server: no route {request.method} {request.path}; "
                          f"served: POST {CHAT_PATH}, POST {EMBEDDINGS_PATH}"),
            404,
        )


def _embedding_inputs(value: Any) -> list[str]:
    """OpenAI's ``input``: a string, a list of strings, or token id lists."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        if value and all(isinstance(v, int) for v in value):
            return [" ".join(map(str, value))]
        return [v if isinstance(v, str) else " ".join(map(str, v)) for v in value]
    return [str(value)]


def _fault_rate_arg(text: str) -> tuple[str, float]:
    key, sep, rate = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(
            f"--fault {text!r}: expected STATUS=RATE, e.g. 429=0.1 or timeout=0.01"
        )
    return key, float(rate)


def _json_responder(json_text: str) -> Callable[[dict[str, Any]], Reply]:
    """Answer requests that ask for JSON with a fixed text, everything else with the echo."""

    def respond(body: dict[str, Any]) -> Reply:
        if body.get("response_format"):
            return json_text
        return MockLLMServer._echo(body)

    return respond


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print ``MOCK_URL=http://127.0.0.1:PORT/v1``."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_llmeval.mockserver",
        description="OpenAI-compatible mock server on 127.0.0.1 for tests and benchmarks.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: a free one)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every model request"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    parser.add_argument(
        "--fault",
        type=_fault_rate_arg,
        action="append",
        default=[],
        metavar="STATUS=RATE",
        help="fault rate, repeatable: 429=0.1 500=0.05 timeout=0.01",
    )
    parser.add_argument(
        "--hang", type=float, default=DEFAULT_HANG_S, help="seconds a timeout fault hangs"
    )
    parser.add_argument("--retry-after", type=float, default=DEFAULT_RETRY_AFTER_S,
                        help="Retry-After seconds sent with random 429s")
    parser.add_argument("--json-reply", metavar="JSON", default=None,
                        help="reply with this text to chat requests that ask for JSON (response_format set), "
                             "e.g. a judge verdict for benchmarks")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server = MockLLMServer(
        port=args.port,
        latency_s=args.latency,
        fault_rates=dict(args.fault),
        seed=args.seed,
        hang_s=args.hang,
        retry_after_s=args.retry_after,
        responder=None if args.json_reply is None else _json_responder(args.json_reply),
    )
    with server:
        print(f"MOCK_URL={server.base_url}", flush=True)
        # A timed wait so the main thread regularly returns to the interpreter,
        # where Python runs signal handlers.
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
