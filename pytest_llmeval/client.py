"""The model client: every completion and embedding goes through litellm from here.

Order of a call: canonical request and its key -> cache (per ``--llmeval-cache``)
-> share an identical request already in flight -> budget -> concurrency slot
-> litellm, retried on rate limits, timeouts and server errors with exponential
backoff and full jitter (a ``Retry-After`` header is a floor) -> cache write.
A call that fails for good raises :class:`LLMCallError`: the item errors, and
nothing is turned into a score.
"""

from __future__ import annotations

import asyncio
import gc
import os
import queue
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pytest_llmeval import slots
from pytest_llmeval.cache import FrozenJSON, PreparedRequest, cache_exists
from pytest_llmeval.errors import LLMCallError
from pytest_llmeval.runtime import Runtime, current_item

LOCAL_PREFIX = "local/"
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Completion:
    """One model answer. ``cost_usd`` is ``None`` when litellm does not know the price."""

    text: str
    model: str
    cached: bool
    latency_s: float
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None

    def __str__(self) -> str:
        return self.text


class StatsSink(Protocol):
    """Where run-level figures go (the pytest session, or :class:`LocalStats`)."""

    def count(self, name: str, amount: float = 1) -> None: ...

    def latency(self, seconds: float) -> None: ...


class LocalStats:
    """A stats sink for use outside pytest."""

    def __init__(self) -> None:
        self.counters: dict[str, float] = {}
        self.latencies: list[float] = []
        self._lock = threading.Lock()  # cache hits are counted from callers' threads too

    def count(self, name: str, amount: float = 1) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + amount

    def latency(self, seconds: float) -> None:
        self.latencies.append(seconds)


@dataclass(frozen=True)
class ClientSettings:
    """Resolved client settings (see :mod:`pytest_llmeval.settings` for their sources)."""

    model: str | None = None
    judge_model: str | None = None
    embedding_model: str | None = None
    api_base: str | None = None
    cache_mode: str = "use"
    cache_dir: str = ".llmeval/cache"
    concurrency: int = 8
    retries: int = 4
    timeout: float = 60.0
    max_cost: float | None = None
    samples: int = 1  # judge samples per score
    judge_temperature: float | None = None  # None: 0 for one sample, 0.7 for several
    inconclusive: str = "fail"  # what an inconclusive judge verdict counts as


NO_MODEL_MESSAGE = (
    "no {what} configured. Set it in one of three ways: the command line "
    "(--llmeval-{flag} NAME, e.g. openai/gpt-4o-mini), the ini file (llmeval_{ini} = NAME), "
    "or per call (model=NAME). For an offline default, install the embedded model: "
    'pip install "pytest-llmeval[local]" (or pip install -e ".[local]")'
)


class _Engine:
    """Shared state behind every client view of one run: cache, budget, in-flight calls."""

    def __init__(self, settings: ClientSettings, runtime: Runtime, stats: StatsSink) -> None:
        self.settings = settings
        self.runtime = runtime
        self.stats = stats
        self.spent_usd = 0.0
        self.budget_exhausted = False
        self._cache: Any = None
        self._writer: _CacheWriter | None = None
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._semaphore_loop: asyncio.AbstractEventLoop | None = None
        self._http_models: set[str] = set()  # models whose requests were seen going through httpx
        self._inflight: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._litellm: Any = None
        # The cache keys each item looked up (item node id -> keys), noted for the next
        # run's read-ahead when the cache closes.
        self._used: dict[str, list[str]] = {}

    # -- lazily built pieces --------------------------------------------------------------

    @property
    def litellm(self) -> Any:
        if self._litellm is None:
            # The cost map is fetched from the internet at import unless told otherwise.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm

            # An eval run needs none of litellm's telemetry or per-call debug logging.
            litellm.telemetry = False
            litellm.suppress_debug_info = True
            litellm.drop_params = True
            # litellm brings ~300,000 long-lived objects. Moved out of the collector's
            # reach, they are no longer traversed by each full collection during the
            # run, nor at exit (1.8 s -> 0.3 s from the summary to the process's end).
            gc.freeze()
            slots.install()
            self._litellm = litellm
        return self._litellm

    @property
    def cache(self) -> Any:
        if self._cache is None and self.settings.cache_mode != "off":
            from pytest_llmeval.cache import ResponseCache

            self._cache = ResponseCache(self.settings.cache_dir)
        return self._cache

    def _bound(self, name: str) -> asyncio.Semaphore:
        """``requests``: C requests in flight; ``calls``: 2 C calls inside litellm (see slots)."""
        # A semaphore belongs to one loop; the runtime may have been restarted since.
        loop = asyncio.get_running_loop()
        if self._semaphore_loop is not loop:
            limit = self.settings.concurrency
            self._semaphores = {"requests": asyncio.Semaphore(limit), "calls": asyncio.Semaphore(2 * limit)}
            self._semaphore_loop = loop
        return self._semaphores[name]

    def http_gated(self, model: str) -> bool:
        """Whether this model's slots are taken around its HTTP requests only."""
        return model in self._http_models

    def call_args(self, model: str, api_base: str | None, params: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        """litellm, and the keyword arguments of one try (our retries replace litellm's own)."""
        litellm = self.litellm
        if model.startswith(LOCAL_PREFIX):
            _register_local()
        kwargs = {name: value.thawed() if type(value) is FrozenJSON else value for name, value in params.items()}
        kwargs.update(timeout=self.settings.timeout, num_retries=0, max_retries=0)
        if api_base:
            kwargs["api_base"] = api_base
        return litellm, kwargs

    def read_ahead(self, items: Sequence[str]) -> int:
        """Load the cached responses these items looked up on their last run (see ResponseCache.read_ahead)."""
        if self.settings.cache_mode not in ("use", "replay") or not cache_exists(self.settings.cache_dir):
            return 0
        loaded = self.cache.read_ahead(items)
        if loaded:
            self.stats.count("cache_read_ahead", loaded)
        return loaded

    def close(self) -> None:
        wrote = False
        if self._writer is not None:
            self._writer.close()  # every answer received is on disk before the cache closes
            self._writer = None
            wrote = True
        if self._cache is not None:
            if self._used:
                wrote = self._cache.note_keys(self._used) > 0 or wrote
                self._used = {}
            if wrote:
                self._cache.checkpoint()  # this run wrote: leave no write-ahead log behind
            self._cache.close()
            self._cache = None

    # -- one request ----------------------------------------------------------------------

    def cached(self, request: PreparedRequest) -> dict[str, Any] | None:
        """The cached response for a request, if the cache mode reads and has it (any thread)."""
        mode = self.settings.cache_mode
        if mode == "off":
            return None
        item = current_item.get()
        if item is not None and mode != "replay":  # replay never writes to the cache, hints included
            self._used.setdefault(item.nodeid, []).append(request.key)
        if mode not in ("use", "replay"):
            return None
        cache = self.cache
        if cache is None:
            return None
        key = request.key
        hit = self.writer.pending(key) if self._writer is not None else None
        if hit is None:
            hit = cache.get(key)
        if hit is not None:
            self.stats.count("cache_hits")
        return hit

    async def fetch(self, request: PreparedRequest, send: Any, *,
                    looked_up: bool = False) -> tuple[dict[str, Any], bool]:
        """The response for a canonical request, from the cache or from ``send()``.

        ``looked_up`` lets a caller that already missed the cache skip reading it again.
        """
        key = request.key
        hit = None if looked_up else self.cached(request)
        if hit is not None:
            return hit, True
        mode = self.settings.cache_mode
        if mode == "replay":
            item = current_item.get()
            where = f"{item.nodeid}: " if item else ""
            raise LLMCallError(
                f"{where}--llmeval-cache=replay: no recorded response for this {request.kind} call to "
                f"{request.model!r} (cache key {key[:12]}). Record it first with a run using "
                "--llmeval-cache=use (or refresh), then commit or import the recording "
                "(pytest-llmeval cache export/import)",
                model=request.model,
                kind="replay",
            )
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._send_and_store(key, request, send))
            self._inflight[key] = task
            task.add_done_callback(lambda _t, k=key: self._inflight.pop(k, None))
        else:
            self.stats.count("shared_inflight")
        return await asyncio.shield(task), False

    async def _send_and_store(self, key: str, request: PreparedRequest, send: Any) -> dict[str, Any]:
        response = await self._with_retries(request.model, send)
        if self.cache is not None and self.settings.cache_mode in ("use", "refresh"):
            self.writer.put(key, request.data, response)
        return response

    @property
    def writer(self) -> _CacheWriter:
        if self._writer is None:
            self._writer = _CacheWriter(self.cache)
        return self._writer

    async def _with_retries(self, model: str, send: Any) -> dict[str, Any]:
        if self._litellm is None:
            # Importing litellm takes seconds: do it off the loop, and outside the timings.
            await asyncio.get_running_loop().run_in_executor(None, lambda: self.litellm)
        self.runtime.favour_loop()  # requests are about to be in flight (idempotent)
        retries = self.settings.retries
        attempt = 0
        while True:
            requests = self._bound("requests")
            async with self._bound("calls"):
                if self.http_gated(model):
                    # The slot is taken inside httpx, around the request only. The budget is
                    # checked again once it is ours: calls queued before the budget ran out
                    # must not all slip through together.
                    self._check_budget(model)
                    use = slots.SlotUse(requests, take=True, admit=lambda: self._check_budget(model))
                    outcome = await self._attempt(send, use)
                else:
                    async with requests:
                        self._check_budget(model)
                        use = slots.SlotUse(requests, take=False)
                        outcome = await self._attempt(send, use)
                    if use.seen:
                        self._http_models.add(model)
            if isinstance(outcome, dict):
                return outcome
            failure = outcome
            retryable, retry_after = _classify(failure)
            if not retryable or attempt >= retries:
                self.stats.count("call_errors")
                raise LLMCallError(_describe_failure(failure, model, attempt), model=model) from failure
            attempt += 1
            self.stats.count("retries")
            # Full jitter spreads retries of many concurrent calls; Retry-After is a floor.
            delay = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))
            if retry_after is not None:
                delay = max(delay, retry_after)
            await asyncio.sleep(delay)

    async def _attempt(self, send: Any, use: slots.SlotUse) -> dict[str, Any] | Exception:
        """One try: the response, or the failure for the retry policy to classify."""
        token = slots.CURRENT.set(use)
        started = time.perf_counter()
        try:
            response = await send()
        except Exception as exc:
            if use.refused is not None:  # the budget ran out while the call queued for a slot
                raise use.refused from None
            if isinstance(exc, LLMCallError):  # already ours (a malformed reply): keep its kind and message
                self.stats.count("call_errors")
                raise
            return exc  # classified by the caller; anything unknown is not retried
        finally:
            slots.CURRENT.reset(token)
        latency = time.perf_counter() - started - use.waited_s
        self.stats.count("calls")
        self.stats.latency(latency)
        response["latency_s"] = latency
        self._account(response)
        return response

    def _check_budget(self, model: str) -> None:
        limit = self.settings.max_cost
        if limit is None or model.startswith(LOCAL_PREFIX):
            return
        if self.spent_usd >= limit:
            self.budget_exhausted = True
            raise LLMCallError(
                f"--llmeval-max-cost {limit:g} USD is spent ({self.spent_usd:.4f} USD so far): no new paid calls "
                "are made. Raise the budget, or rerun: cached answers cost nothing",
                model=model,
                kind="budget",
            )

    def _account(self, response: dict[str, Any]) -> None:
        usage = response.get("usage") or {}
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if usage.get(name):
                self.stats.count(name, usage[name])
        cost = response.get("cost_usd")
        if cost is None:
            self.stats.count("cost_unknown_calls")
        else:
            self.spent_usd += cost
            self.stats.count("cost_usd", cost)


class _CacheWriter:
    """Writes responses to the cache from a thread of its own, many per commit.

    A SQLite commit costs about a millisecond; made on the event loop, it stalled
    every call in flight. Here the loop only enqueues, and the writer commits
    whatever has queued up in one transaction (SQLite releases the GIL meanwhile).
    A response is readable from the cache once written; until then, a repeat of
    the same request in this process shares the in-flight answer instead.
    """

    def __init__(self, cache: Any) -> None:
        self._cache = cache
        self._pending: dict[str, dict[str, Any]] = {}  # single dict operations are atomic in CPython
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()  # entries, flush events, None to stop
        self._thread = threading.Thread(target=self._run, name="llmeval-cache-writer", daemon=True)
        self._thread.start()

    def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        self._pending[key] = response
        self._queue.put((key, request, response))

    def pending(self, key: str) -> dict[str, Any] | None:
        """A response received but not yet committed (so a repeat right away still hits)."""
        return self._pending.get(key)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = []
            while isinstance(item, tuple):
                batch.append(item)
                if len(batch) >= 256:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._cache.set_many(batch)
                for key, _request, _response in batch:
                    self._pending.pop(key, None)
            if isinstance(item, threading.Event):  # a flush: everything before it is written
                item.set()
            elif item is None:
                return

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()

    def close(self) -> None:
        """Write everything queued, then stop."""
        self._queue.put(None)
        self._thread.join()


def _classify(exc: BaseException) -> tuple[bool, float | None]:
    """Whether a failure is worth retrying, and the server's Retry-After if it sent one."""
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    transient_names = ("RateLimitError", "Timeout", "APITimeoutError", "InternalServerError",
                       "ServiceUnavailableError", "APIConnectionError", "BadGatewayError")
    retryable = name in transient_names or (isinstance(status, int) and (status == 429 or status >= 500))
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        retryable = True
    return retryable, _retry_after(exc)


def _retry_after(exc: BaseException) -> float | None:
    candidates: list[Mapping[str, Any]] = []
    for attr in ("headers", "litellm_response_headers"):
        value = getattr(exc, attr, None)
        if isinstance(value, Mapping) or hasattr(value, "get"):
            candidates.append(value)
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "headers"):
        candidates.append(response.headers)
    for headers in candidates:
        try:
            raw = headers.get("retry-after") or headers.get("Retry-After")
        except Exception:
            continue
        if raw is not None:
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def _describe_failure(exc: BaseException, model: str, attempt: int) -> str:
    message = str(exc).strip() or type(exc).__name__
    if len(message) > 600:
        message = message[:597] + "..."
    tries = f"after {attempt} retr{'y' if attempt == 1 else 'ies'}" if attempt else "not retried"
    return f"call to {model!r} failed ({type(exc).__name__}, {tries}): {message}"


def _response_to_plain(response: Any, model: str, engine: _Engine) -> dict[str, Any]:
    """A litellm ModelResponse as the plain dict we cache; malformed answers raise."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise LLMCallError(f"call to {model!r}: malformed response with no choices: {str(response)[:300]}",
                           model=model, kind="malformed")
    message = choices[0].message
    content = getattr(message, "content", None)
    tool_calls = getattr(message, "tool_calls", None)
    if content is None and not tool_calls:
        raise LLMCallError(f"call to {model!r}: malformed response with no content: {str(response)[:300]}",
                           model=model, kind="malformed")
    usage_obj = getattr(response, "usage", None)
    usage = {}
    if usage_obj is not None:
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = getattr(usage_obj, name, None)
            if isinstance(value, int):
                usage[name] = value
    plain: dict[str, Any] = {
        "text": content or "",
        "model": getattr(response, "model", None) or model,
        "usage": usage,
        "cost_usd": _cost(response, model, engine),
        "finish_reason": getattr(choices[0], "finish_reason", None),
    }
    if tool_calls:
        plain["tool_calls"] = [tc.model_dump() if hasattr(tc, "model_dump") else dict(tc) for tc in tool_calls]
    return plain


def _cost(response: Any, model: str, engine: _Engine) -> float | None:
    if model.startswith(LOCAL_PREFIX):
        return 0.0
    hidden = getattr(response, "_hidden_params", None) or {}
    if "response_cost" in hidden:
        # litellm prices every response as it logs it; asking again costs ~1 ms a call,
        # and for a model it cannot price, an exception each time. None stays unknown.
        cost = hidden["response_cost"]
        return float(cost) if isinstance(cost, (int, float)) else None
    try:
        return float(engine.litellm.completion_cost(completion_response=response, model=model))
    except Exception:
        return None  # unknown price: shown as unknown, never as 0


def _messages(prompt_or_messages: str | Sequence[Mapping[str, Any]]) -> Messages:
    if isinstance(prompt_or_messages, str):
        return [{"role": "user", "content": prompt_or_messages}]
    # A FrozenJSON message (a judge's system prompt) stays as it is: it is read-only, and
    # keying the request splices in its text, serialised once, instead of serialising it.
    messages = [m if type(m) is FrozenJSON else dict(m) for m in prompt_or_messages]
    for index, message in enumerate(messages):
        if "role" not in message or "content" not in message:
            raise ValueError(f"llm(...): message {index} needs 'role' and 'content', got {sorted(message)}")
    return messages


class LLMClient:
    """Calls models through litellm, with the cache, retries, concurrency limit and budget.

    ``llm("question")`` answers with the default model; ``await llm.acomplete(...)``
    does the same from async code; ``llm.embed(texts)`` returns one vector per text.
    """

    def __init__(self, engine: _Engine, model: str | None, role: str = "model") -> None:
        self._engine = engine
        self._model = model
        self._role = role

    @classmethod
    def create(cls, settings: ClientSettings | None = None, *, runtime: Runtime | None = None,
               stats: StatsSink | None = None) -> LLMClient:
        """A client for use outside pytest (the fixtures build theirs from the options)."""
        settings = settings or ClientSettings()
        engine = _Engine(settings, runtime or Runtime(settings.concurrency + 4), stats or LocalStats())
        return cls(engine, settings.model)

    @property
    def model(self) -> str:
        """The default model of this client (raises a clear error when none is configured)."""
        model = self._model or _local_default()
        if model is None:
            flag = "model" if self._role == "model" else "judge-model"
            raise LLMCallError(NO_MODEL_MESSAGE.format(what="model under test" if self._role == "model" else "judge model",
                                                       flag=flag, ini=flag.replace("-", "_")), kind="config")
        return model

    @property
    def settings(self) -> ClientSettings:
        return self._engine.settings

    @property
    def runtime(self) -> Runtime:
        return self._engine.runtime

    @property
    def budget_exhausted(self) -> bool:
        return self._engine.budget_exhausted

    def with_model(self, model: str | None, role: str = "model") -> LLMClient:
        """The same client (cache, budget, limits) with another default model."""
        return LLMClient(self._engine, model, role)

    def judge(self) -> LLMClient:
        """This client bound to the judge model (default: the model under test)."""
        return self.with_model(self.settings.judge_model or self._model, role="judge")

    def flush(self) -> None:
        """Wait until every response received so far is written to the cache.

        Writes happen in the background; other processes see them once written, and
        closing the client (the end of a pytest run) writes everything.
        """
        if self._engine._writer is not None:
            self._engine._writer.flush()

    def read_ahead(self, items: Sequence[str]) -> int:
        """Load into memory the cached responses these test items (node ids) looked up last run.

        The plugin calls this when its run loop starts; returns how many entries were
        loaded (0 with ``--llmeval-cache`` off or refresh, or before any run noted keys).
        """
        return self._engine.read_ahead(items)

    def close(self) -> None:
        self._engine.close()

    # -- completions ------------------------------------------------------------------------

    def __call__(self, prompt_or_messages: str | Sequence[Mapping[str, Any]], *, model: str | None = None,
                 **params: Any) -> Completion:
        """Complete synchronously; see :meth:`acomplete`."""
        started = time.perf_counter()
        prepared = self._chat_request(prompt_or_messages, model, params)
        # A cache hit is answered here, in the caller's thread: no hop to the loop.
        hit = self._engine.cached(prepared[3])
        if hit is not None:
            return _completion(hit, prepared[0], True, started)
        return self.runtime.run(self._complete_prepared(*prepared, looked_up=True))

    async def acomplete(self, prompt_or_messages: str | Sequence[Mapping[str, Any]], *, model: str | None = None,
                        **params: Any) -> Completion:
        """Complete a prompt (a string) or a list of chat messages.

        ``params`` are passed to litellm (temperature, max_tokens, response_format, ...)
        and are part of the cache key; ``sample=k`` asks for the k-th independent
        sample of the same request (cached separately).
        """
        coro = self._complete(prompt_or_messages, model, params)
        if self.runtime.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(self.runtime.submit(coro))

    def _chat_request(self, prompt_or_messages: Any, model: str | None,
                      params: dict[str, Any]) -> tuple[str, str | None, dict[str, Any], PreparedRequest]:
        """The model, API base, litellm parameters and canonical request of one chat call."""
        chosen = model or self.model
        messages = _messages(prompt_or_messages)
        params = dict(params)
        sample = int(params.pop("sample", 0))
        api_base = params.pop("api_base", None) or (None if chosen.startswith(LOCAL_PREFIX) else self.settings.api_base)
        return chosen, api_base, params, PreparedRequest("chat", chosen, api_base, "messages", messages, params, sample)

    async def _complete(self, prompt_or_messages: Any, model: str | None, params: dict[str, Any]) -> Completion:
        return await self._complete_prepared(*self._chat_request(prompt_or_messages, model, params))

    async def _complete_prepared(self, chosen: str, api_base: str | None, params: dict[str, Any],
                                 request: PreparedRequest, *, looked_up: bool = False) -> Completion:
        engine = self._engine

        async def send() -> dict[str, Any]:
            litellm, kwargs = engine.call_args(chosen, api_base, params)
            response = await litellm.acompletion(model=chosen, messages=request.data["messages"], **kwargs)
            return _response_to_plain(response, chosen, engine)

        started = time.perf_counter()
        plain, cached = await engine.fetch(request, send, looked_up=looked_up)
        return _completion(plain, chosen, cached, started)

    # -- embeddings ----------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], *, model: str | None = None, **params: Any) -> list[list[float]]:
        """One embedding vector per text, from the embedding model (each text cached on its own)."""
        return self.runtime.run(self._embed(list(texts), model, params))

    async def aembed(self, texts: Sequence[str], *, model: str | None = None, **params: Any) -> list[list[float]]:
        """Async :meth:`embed`."""
        coro = self._embed(list(texts), model, params)
        if self.runtime.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(self.runtime.submit(coro))

    async def _embed(self, texts: list[str], model: str | None, params: dict[str, Any]) -> list[list[float]]:
        chosen = model or self.settings.embedding_model or _local_default()
        if chosen is None:
            raise LLMCallError(NO_MODEL_MESSAGE.format(what="embedding model", flag="embedding-model",
                                                       ini="embedding_model"), kind="config")
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("embed(texts): every text must be a string")
        api_base = None if chosen.startswith(LOCAL_PREFIX) else self.settings.api_base
        engine = self._engine

        async def one(text: str) -> list[float]:
            request = PreparedRequest("embedding", chosen, api_base, "input", [text], params, 0)

            async def send() -> dict[str, Any]:
                litellm, kwargs = engine.call_args(chosen, api_base, params)
                response = await litellm.aembedding(model=chosen, input=[text], **kwargs)
                data = getattr(response, "data", None) or []
                if not data:
                    raise LLMCallError(f"embedding call to {chosen!r}: malformed response with no data",
                                       model=chosen, kind="malformed")
                first = data[0]
                vector = first["embedding"] if isinstance(first, Mapping) else getattr(first, "embedding", None)
                if not vector:
                    raise LLMCallError(f"embedding call to {chosen!r}: malformed response with no vector",
                                       model=chosen, kind="malformed")
                usage = getattr(response, "usage", None)
                tokens = getattr(usage, "prompt_tokens", None) if usage is not None else None
                return {"vector": [float(x) for x in vector], "model": chosen,
                        "usage": {"prompt_tokens": tokens} if isinstance(tokens, int) else {},
                        "cost_usd": _cost(response, chosen, engine)}

            plain, _cached = await engine.fetch(request, send)
            return list(plain["vector"])

        return list(await asyncio.gather(*(one(t) for t in texts)))


def _completion(plain: dict[str, Any], model: str, cached: bool, started: float) -> Completion:
    """A Completion from a cached or fresh plain response."""
    return Completion(
        text=plain["text"],
        model=plain.get("model") or model,
        cached=cached,
        latency_s=(time.perf_counter() - started) if cached else float(plain.get("latency_s", 0.0)),
        usage=dict(plain.get("usage") or {}),
        cost_usd=0.0 if cached else plain.get("cost_usd"),
    )


def _local_default() -> str | None:
    """``local/smollm2`` when the embedded model is installed, else None."""
    try:
        from pytest_llmeval import local_model
    except ImportError:  # pragma: no cover - module always ships; the extra may not
        return None
    return "local/smollm2" if local_model.is_available() else None


def _register_local() -> None:
    from pytest_llmeval import local_model

    local_model.register()
