"""The response cache: canonical requests, their keys, and a JSON store on disk.

Two halves with different costs:

* Pure functions (``canonical_request``, ``request_key``, ``is_credential_name``,
  ``parse_duration``) run on the hot path of every model call. This module
  therefore imports only the standard library at the top; ``diskcache`` is
  imported when a ``ResponseCache`` is opened, so a run with ``--llmeval-cache=off``
  (or ``pytest --version``) never pays for it.
* ``ResponseCache`` wraps a ``diskcache.Cache`` (SQLite in WAL mode), which is safe
  for several processes at once: xdist workers share one directory.

A run notes which keys each test item looked up (``note_keys``); the next run
loads those entries in a few queries before its items start (``read_ahead``).

Values are stored as JSON text, never pickle: a cache directory may be shared
or restored from CI artifacts, and unpickling untrusted bytes runs code. The
same JSON is what ``export`` writes, so recordings can be reviewed in a diff.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    import diskcache

# Bump when the meaning of a stored entry or of the key changes; every old key
# then misses instead of returning an answer recorded under other rules.
CACHE_FORMAT_VERSION = 1

# The default of the plugin's ``--llmeval-cache-dir`` and the CLI's ``--cache-dir``.
DEFAULT_CACHE_DIR = ".llmeval/cache"

# The name of diskcache's SQLite file inside a cache directory.
_DB_FILE = "cache.db"

# Parameters dropped from a canonical request because they carry a credential or
# only shape the transport (how, not what, is asked), compared lower-cased.
# ``api_version`` is NOT here: an Azure API version can change the answer.
_DROPPED_PARAMS = frozenset({
    "api_key", "headers", "extra_headers", "timeout", "request_timeout",
    "num_retries", "max_retries", "stream_options", "client", "metadata", "user",
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
    "azure_ad_token", "vertex_credentials",
})
# Any other parameter whose lower-cased name contains one of these is treated as a
# credential too (``azure_api_key``, ``bearer_token``, ``client_secret``, ...) ...
_CREDENTIAL_PARTS = ("key", "token", "secret", "password", "credential")
# ... unless the name ends in "_tokens": those are token counts (``max_tokens``,
# ``max_completion_tokens``, ``max_output_tokens``), which change the answer.
_TOKEN_COUNT_SUFFIX = "_tokens"

# Accepted by ``parse_duration``: a non-negative number and one unit.
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")

# Decodes the response part of a stored entry (ResponseCache.get).
_DECODER = json.JSONDecoder()

# The fields of one stored entry, and of one line of an export file.
_ENTRY_FIELDS = ("created_at", "key", "request", "response")

# Read-ahead (ResponseCache.read_ahead): the table, in the cache's database, of the keys
# each test item looked up on its last run; the most response text one read-ahead holds
# in memory; and how many values one query binds.
_HINTS_TABLE = "LLMEvalItemKeys"
READ_AHEAD_BYTES = 128 * 2**20
_SQL_CHUNK = 500


@functools.lru_cache(maxsize=512)  # the same few parameter names, on every request
def is_credential_name(name: str) -> bool:
    """Whether a request parameter named ``name`` is dropped from canonical requests.

    The rule, on the lower-cased name: dropped if it is one of the exact names in
    ``_DROPPED_PARAMS`` (credentials and transport-only settings: ``api_key``,
    ``headers``, ``extra_headers``, ``timeout``, ``request_timeout``,
    ``num_retries``, ``max_retries``, ``stream_options``, ``client``, ``metadata``,
    ``user``, the AWS/Azure/Vertex credentials), or if it contains ``key``,
    ``token``, ``secret``, ``password`` or ``credential`` and does not end in
    ``_tokens``. Only parameter names are tested, not keys nested in their values:
    a tool's JSON schema may legitimately have a ``token`` property.
    """
    lowered = name.lower()
    if lowered in _DROPPED_PARAMS:
        return True
    if lowered.endswith(_TOKEN_COUNT_SUFFIX):
        return False
    return any(part in lowered for part in _CREDENTIAL_PARTS)


@functools.lru_cache(maxsize=64)  # one or two endpoints per run, parsed for every call
def _public_api_base(api_base: str | None) -> str | None:
    """``api_base`` without credentials: no ``user:password@`` and no credential query parameters.

    Some gateways take a key in the URL (``?api-key=...``); the key must never be
    hashed or stored, and the rest of the URL still tells endpoints apart.
    """
    if not api_base:
        return api_base
    parts = urlsplit(api_base)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not is_credential_name(k.replace("-", "_"))]
    if "@" not in parts.netloc and len(kept) == len(pairs):
        return api_base  # nothing to remove: keep the URL byte for byte
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept), parts.fragment))


def _to_json(value: Any) -> Any:
    """``json.dumps`` fallback for the non-JSON values litellm accepts in a request."""
    # Duck-typed so this module never imports pydantic.
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        # A pydantic model class as ``response_format``: litellm sends its JSON
        # schema under the class name, so that is what changes the answer.
        return {"type": "json_schema",
                "json_schema": {"name": value.__name__, "schema": value.model_json_schema(), "strict": True}}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _json_copy(value: Any, what: str) -> Any:
    """A deep, JSON-only copy of ``value`` with dict keys sorted.

    The round trip detaches the copy from the caller's objects (mutating their
    messages later cannot change a stored entry) and fixes key order.
    """
    try:
        return json.loads(json.dumps(value, default=_to_json, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"request {what}: {exc}; pass plain JSON data (dicts, lists, str, numbers, bool, None) "
            "or a pydantic model"
        ) from None


def canonical_request(
    kind: str,
    model: str,
    api_base: str | None,
    payload_key: str,
    payload: Any,
    params: Mapping[str, Any],
    sample: int = 0,
) -> dict[str, Any]:
    """The request as cached: plain JSON data with every answer-changing part and no credential.

    ``payload_key`` names the payload field (``"messages"`` for chat, ``"input"``
    for embeddings). ``params`` are the keyword arguments that reach litellm;
    credentials and transport-only settings are dropped (see
    ``is_credential_name``), everything else is kept as given. ``sample`` tells
    repeated samples of one request apart.
    """
    kept = {name: value for name, value in params.items() if not is_credential_name(name)}
    request = {
        "kind": kind,
        "model": model,
        "api_base": _public_api_base(api_base),
        payload_key: _json_copy(payload, payload_key),
        "params": {name: _json_copy(kept[name], f"parameter {name!r}") for name in sorted(kept)},
        "sample": int(sample),
    }
    return dict(sorted(request.items()))


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(request: Mapping[str, Any]) -> str:
    """The cache key of a canonical request: sha256 hex of its canonical JSON plus the format version."""
    return _key_of(_canonical_json({**request, "v": CACHE_FORMAT_VERSION}))


def _key_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class FrozenJSON(dict):  # type: ignore[type-arg]
    """A JSON object that is the same on every call, serialised once (canonically).

    For parameters sent with many requests, such as the verdict schema of every judge
    call, and for items of a list payload, such as a judge's system message: keying a
    request splices ``text`` in rather than serialising the object again. It must not
    change, so it refuses changes at its top level; the client hands litellm a fresh
    copy (``thawed``), which litellm may change as it likes.
    """

    __slots__ = ("text",)

    def __init__(self, value: Mapping[str, Any]) -> None:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        super().__init__(json.loads(text))
        self.text = text

    def thawed(self) -> dict[str, Any]:
        """A plain, independent copy."""
        result: dict[str, Any] = json.loads(self.text)
        return result

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("FrozenJSON is read-only; use thawed() for a copy to change")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _read_only  # type: ignore[assignment]


# Stands in for a FrozenJSON value while a request is serialised; its JSON form is then
# replaced by the value's text. The random part keeps any real string from matching.
_FROZEN_MARK = f"\x00llmeval-frozen-{os.urandom(8).hex()}-"


@functools.lru_cache(maxsize=256)
def _mark(name: str) -> str:
    return f"{_FROZEN_MARK}{name}"


@functools.lru_cache(maxsize=256)
def _marked_json(mark: str) -> str:
    return json.dumps(mark, ensure_ascii=False)


class PreparedRequest:
    """A canonical request and its cache key, from one serialisation of what the caller passed.

    ``key`` equals ``request_key(canonical_request(...))`` for the same arguments.
    The detached request (``data``) is parsed back from that serialisation only when
    something needs it, which is a cache miss: a cache hit costs one ``json.dumps``
    and one hash, not the three serialisations and a parse of building the
    request first.
    """

    __slots__ = ("key", "kind", "model", "_text", "_data")

    def __init__(self, kind: str, model: str, api_base: str | None, payload_key: str, payload: Any,
                 params: Mapping[str, Any], sample: int = 0) -> None:
        self.kind = kind
        self.model = model
        self._data: dict[str, Any] | None = None
        kept = {name: value for name, value in params.items() if not is_credential_name(name)}
        # FrozenJSON parameters, and FrozenJSON items of a list payload (a judge's system
        # message), stand as marks while serialising; their texts are spliced in after.
        frozen = {_mark(name): value for name, value in kept.items() if type(value) is FrozenJSON}
        if frozen:
            kept = {name: _mark(name) if type(value) is FrozenJSON else value for name, value in kept.items()}
        if type(payload) is list and any(type(item) is FrozenJSON for item in payload):
            frozen.update((_mark(f"{payload_key}.{index}"), item) for index, item in enumerate(payload)
                          if type(item) is FrozenJSON)
            payload = [_mark(f"{payload_key}.{index}") if type(item) is FrozenJSON else item
                       for index, item in enumerate(payload)]
        text = None
        if _str_keys_only(payload) and _str_keys_only(kept):
            # Serialising the caller's values directly gives the canonical text of the copy
            # canonical_request would make, as long as every dict key is a string: json
            # sorts keys before turning them into strings, so {10: .., 9: ..} would come
            # out in another order than its copy {"10": .., "9": ..}.
            raw = {"kind": kind, "model": model, "api_base": _public_api_base(api_base), payload_key: payload,
                   "params": kept, "sample": int(sample), "v": CACHE_FORMAT_VERSION}
            try:
                text = json.dumps(raw, default=_to_json, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError):
                pass  # canonical_request raises the error that names the bad part
            else:
                for mark, value in frozen.items():
                    text = text.replace(_marked_json(mark), value.text, 1)
        if text is None:
            self._data = canonical_request(kind, model, api_base, payload_key, payload, params, sample)
            text = _canonical_json({**self._data, "v": CACHE_FORMAT_VERSION})
        self._text = text
        self.key = _key_of(text)

    @property
    def data(self) -> dict[str, Any]:
        """The canonical request as plain data (detached from the caller's objects)."""
        if self._data is None:
            data = json.loads(self._text)
            del data["v"]
            self._data = data
        return self._data


def _str_keys_only(value: Any) -> bool:
    """Whether every dict inside ``value`` (lists and tuples walked) has only string keys."""
    stack = [value]
    while stack:  # iterative, and only containers are pushed: this runs on every call
        item = stack.pop()
        if isinstance(item, dict):
            for key in item:
                if type(key) is not str:
                    return False
            stack.extend([v for v in item.values() if isinstance(v, _CONTAINERS)])
        elif isinstance(item, (list, tuple)):
            stack.extend([v for v in item if isinstance(v, _CONTAINERS)])
    return True


_CONTAINERS = (dict, list, tuple)


def credential_params(request: Mapping[str, Any]) -> list[str]:
    """Names in ``request`` that look like credentials (empty for a canonical request).

    Checks top-level fields, ``params`` names and ``api_base``: the same places
    ``canonical_request`` cleans, so a stored entry that fails this check was not
    made by it.
    """
    found = [name for name in request if is_credential_name(name)]
    params = request.get("params")
    if isinstance(params, Mapping):
        found += [f"params.{name}" for name in params if is_credential_name(name)]
    api_base = request.get("api_base")
    if isinstance(api_base, str) and api_base != _public_api_base(api_base):
        found.append("api_base")
    return found


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30d``, ``12h``, ``90m`` or ``45s``."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(
            f"duration {text!r} is not understood; use a number and one unit: "
            "s (seconds), m (minutes), h (hours) or d (days), e.g. 30d, 12h, 90m, 45s"
        )
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def cache_exists(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a response cache (without creating one)."""
    return (Path(directory) / _DB_FILE).is_file()


class ResponseCache:
    """Responses stored by request key in a directory, as JSON, shared by processes.

    Each entry is ``{"request": ..., "response": ..., "created_at": <unix seconds>}``.
    ``clock`` gives the time for ``created_at`` and ``prune`` (tests pass a fake).
    Use as a context manager, or call ``close()``.
    """

    def __init__(self, directory: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> None:
        import diskcache  # lazily: see the module docstring

        self.directory = Path(directory)
        self._clock = clock
        # eviction_policy="none": a recording cache must never drop entries
        # silently (replay mode would then fail far from the cause), and with no
        # eviction a read never writes, so concurrent workers only contend on writes.
        # Values are always JSON ``str`` (see ``_put``), which diskcache stores as
        # TEXT in SQLite (or a text file when large), never pickled.
        self._cache: diskcache.Cache = diskcache.Cache(str(self.directory), eviction_policy="none")
        # Entries read ahead (key -> stored text), each handed out once; and the keys each
        # item looked up last time, as stored ("k1 k2", sorted), for the items asked about.
        self._ahead: dict[str, str] = {}
        self._hints: dict[str, str] = {}

    # -- lookups ---------------------------------------------------------------

    def entry(self, key: str) -> dict[str, Any] | None:
        """The stored entry for ``key`` (request, response, created_at), or ``None``."""
        return _decode_entry(self._cache.get(key))

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached response for ``key``, or ``None`` on a miss (or a damaged response)."""
        text = self._ahead.pop(key, None)
        if text is None:
            text = self._cache.get(key)
        if not isinstance(text, str):
            return None
        # Entries are canonical JSON (keys sorted), so "response" is the last member of
        # the object. Decoding it alone skips the request, most of a judge call's entry.
        # Inside JSON strings every quote is escaped, so this pattern is a real key; if
        # it is one nested in the response, its value ends before the entry does.
        start = text.rfind(',"response":')
        if start != -1:
            try:
                response, end = _DECODER.raw_decode(text, start + len(',"response":'))
            except ValueError:
                end = -1
            if end == len(text) - 1 and text[end] == "}" and isinstance(response, dict):
                return response
        entry = _decode_entry(text)
        return None if entry is None else entry.get("response")

    def set(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        """Store ``response`` for ``request`` under ``key`` (which must be ``request_key(request)``).

        Callers store successful responses only: errors are never cached.
        """
        bad = credential_params(request)
        if bad:
            raise ValueError(
                f"cache: request has credential-looking field(s) {', '.join(bad)}; "
                "build requests with canonical_request(), which drops them"
            )
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            # The key is request_key(request), computed once by the caller: hashing the
            # request again here cost a measurable share of every cold call. Import
            # recomputes every key, so a wrong one cannot survive a round trip.
            raise ValueError(f"cache: key {key!r} is not request_key(request); compute it with request_key()")
        self._put(key, {"request": request, "response": response, "created_at": float(self._clock())})

    def set_many(self, entries: Iterable[tuple[str, dict[str, Any], dict[str, Any]]]) -> int:
        """Store several ``(key, request, response)`` entries in one transaction (one commit)."""
        count = 0
        with self._cache.transact():
            for key, request, response in entries:
                self.set(key, request, response)
                count += 1
        return count

    def _put(self, key: str, entry: Mapping[str, Any]) -> None:
        # Serialised here, so diskcache only ever sees a str: no pickle on disk.
        # (json.dumps rejects anything that is not JSON, so no separate copy is needed.)
        self._cache.set(key, _canonical_json(dict(entry)))

    def __len__(self) -> int:
        return len(self._cache)

    def _entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(key, entry) pairs in key order; entries removed meanwhile are skipped."""
        for key in sorted(self._cache.iterkeys()):
            entry = self.entry(key)
            if entry is not None:
                yield key, entry

    # -- read-ahead ------------------------------------------------------------

    def read_ahead(self, items: Sequence[str], budget_bytes: int = READ_AHEAD_BYTES) -> int:
        """Load into memory the entries ``items`` looked up on their last run (see ``note_keys``).

        A warm run then answers its lookups from memory instead of one SQLite read
        each, which in a busy process also means one hand-over of the GIL each. The
        entries are read in a few queries, in the order of ``items``, until
        ``budget_bytes`` of text are held. ``get`` hands each out once; a lookup of
        anything else reads the database as before, and a stale hint only costs
        its read. Returns how many entries were loaded.
        """
        from diskcache.core import MODE_RAW

        loaded = size = 0
        try:
            with self._connect() as con:
                self._load_hints(con, items)
                keys = list(dict.fromkeys(key for item in items for key in self._hints.get(item, "").split()))
                for chunk in _chunks(keys):
                    # Responses are JSON text, which diskcache keeps in the row (MODE_RAW)
                    # unless it is large; those stay on disk and are read by get().
                    # (Testing expire_time in SQL made the query five times slower.)
                    query = (f"SELECT key, value, expire_time FROM Cache "
                             f"WHERE raw = 1 AND mode = ? AND key IN ({_placeholders(chunk)})")
                    for key, value, expires in con.execute(query, [MODE_RAW, *chunk]):
                        if expires is None and isinstance(value, str) and key not in self._ahead:
                            self._ahead[key] = value
                            loaded += 1
                            size += len(value)
                    if size >= budget_bytes:
                        break
        except sqlite3.Error:
            pass  # locked or damaged: lookups read the database one by one, as without read-ahead
        return loaded

    def note_keys(self, used: Mapping[str, Iterable[str]]) -> int:
        """Remember which keys each item looked up (item id -> keys), for the next ``read_ahead``.

        Only items whose keys changed are written, so a rerun that changed nothing
        writes nothing. Best effort: a locked database skips it. Returns how many
        items were written.
        """
        wanted = {item: " ".join(sorted(set(keys))) for item, keys in used.items()}
        if not wanted:
            return 0
        try:
            with self._connect() as con:
                self._load_hints(con, [item for item in wanted if item not in self._hints])
                changed = [(item, text) for item, text in wanted.items() if self._hints.get(item) != text]
                if changed:
                    with con:  # one transaction
                        con.execute(f"CREATE TABLE IF NOT EXISTS {_HINTS_TABLE} (item TEXT PRIMARY KEY, keys TEXT)")
                        con.executemany(f"INSERT OR REPLACE INTO {_HINTS_TABLE} (item, keys) VALUES (?, ?)", changed)
                    self._hints.update(changed)
        except sqlite3.Error:
            return 0
        return len(changed)

    def _connect(self) -> contextlib.closing[sqlite3.Connection]:
        return contextlib.closing(sqlite3.connect(self.directory / _DB_FILE, timeout=5))

    def _load_hints(self, con: sqlite3.Connection, items: Sequence[str]) -> None:
        exists = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_HINTS_TABLE,))
        if exists.fetchone() is None:
            return  # no run has noted keys in this cache yet
        for chunk in _chunks(items):
            query = f"SELECT item, keys FROM {_HINTS_TABLE} WHERE item IN ({_placeholders(chunk)})"
            self._hints.update(con.execute(query, chunk))

    # -- maintenance -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts and size: ``entries``, ``size_bytes``, ``by_kind``, ``by_model``,
        ``oldest`` and ``newest`` (unix seconds, ``None`` when empty)."""
        by_kind: Counter[str] = Counter()
        by_model: Counter[str] = Counter()
        times: list[float] = []
        for _key, entry in self._entries():
            request = entry.get("request") or {}
            by_kind[str(request.get("kind", "?"))] += 1
            by_model[str(request.get("model", "?"))] += 1
            created = entry.get("created_at")
            if isinstance(created, (int, float)):
                times.append(float(created))
        return {
            "entries": sum(by_kind.values()),
            "size_bytes": int(self._cache.volume()),
            "by_kind": dict(sorted(by_kind.items())),
            "by_model": dict(sorted(by_model.items())),
            "oldest": min(times, default=None),
            "newest": max(times, default=None),
        }

    def clear(self) -> int:
        """Remove every entry (and the keys noted for read-ahead); returns how many entries were removed."""
        removed = int(self._cache.clear())
        with contextlib.suppress(sqlite3.Error), self._connect() as con, con:
            con.execute(f"DROP TABLE IF EXISTS {_HINTS_TABLE}")
        self._ahead.clear()
        self._hints.clear()
        return removed

    def prune(self, older_than_s: float) -> int:
        """Remove entries created more than ``older_than_s`` seconds ago; returns how many."""
        cutoff = self._clock() - older_than_s
        removed = 0
        for key, entry in list(self._entries()):
            created = entry.get("created_at")
            if isinstance(created, (int, float)) and created < cutoff and self._cache.delete(key):
                removed += 1
        return removed

    # -- export / import -------------------------------------------------------

    def export(self, path: str | os.PathLike[str]) -> int:
        """Write every entry to ``path`` as JSONL sorted by key; returns how many.

        The same cache gives the same bytes, so exports diff cleanly in review.
        Written atomically; refuses (``ValueError``) if any request carries a
        credential-looking field, naming the entry and field.
        """
        lines: list[str] = []
        for key, entry in self._entries():
            bad = credential_params(entry.get("request") or {})
            if bad:
                raise ValueError(
                    f"cache entry {key}: request has credential-looking field(s) {', '.join(bad)}; "
                    "refusing to export it. Remove it (pytest-llmeval cache clear) and record again"
                )
            record = {"key": key, "request": entry.get("request"), "response": entry.get("response"),
                      "created_at": entry.get("created_at")}
            lines.append(_canonical_json(record) + "\n")
        _write_atomically(Path(path), "".join(lines))
        return len(lines)

    def import_(self, path: str | os.PathLike[str]) -> int:
        """Load entries exported by ``export``; returns how many.

        Every line is checked before any is stored, so a bad file changes nothing;
        a bad line raises ``ValueError`` naming ``file:line``, the problem and the fix.
        Keys are recomputed from the requests: an edited request cannot replay
        under its old key. Existing entries with the same key are replaced.
        """
        entries: list[tuple[str, dict[str, Any]]] = []
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                if line.strip():
                    entries.append(_parse_export_line(f"{path}:{lineno}", line))
        for key, entry in entries:
            self._put(key, entry)
        return len(entries)

    # -- lifetime --------------------------------------------------------------

    def checkpoint(self) -> None:
        """Fold SQLite's write-ahead log into the database file and empty it (best effort).

        SQLite does this itself when the last connection to a database closes, but a
        run leaves connections open in its threads (the writer, the task pool) until
        the process ends, so the log of everything the run wrote survived it, and the
        next run read through it: the warm rerun right after a cold N=5000 run took
        5.2 s where later reruns took 4.3 s.
        """
        try:
            with self._connect() as con:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            pass  # another process is writing: its own run ends with a checkpoint too

    def close(self) -> None:
        """Close the database connections of this process."""
        self._cache.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _SQL_CHUNK):
        yield values[start:start + _SQL_CHUNK]


def _placeholders(values: Sequence[str]) -> str:
    return ",".join("?" * len(values))


def _decode_entry(text: Any) -> dict[str, Any] | None:
    """A stored entry from its JSON text; ``None`` when absent or damaged (a miss: the next call records it again)."""
    if not isinstance(text, str):
        return None
    try:
        entry = json.loads(text)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _parse_export_line(where: str, line: str) -> tuple[str, dict[str, Any]]:
    """Validate one export line; ``where`` is ``file:line`` for the error message."""
    fix = "re-export it with `pytest-llmeval cache export`, or delete the line"
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc}); {fix}") from None
    if not isinstance(record, dict) or sorted(record) != sorted(_ENTRY_FIELDS):
        got = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{where}: expected an object with exactly {', '.join(_ENTRY_FIELDS)}, got {got}; {fix}")
    key, request, response, created = record["key"], record["request"], record["response"], record["created_at"]
    if not isinstance(request, dict) or not isinstance(request.get("kind"), str):
        raise ValueError(f"{where}: 'request' must be an object with a 'kind'; {fix}")
    if not isinstance(response, dict):
        raise ValueError(f"{where}: 'response' must be an object; {fix}")
    if isinstance(created, bool) or not isinstance(created, (int, float)) or not math.isfinite(created):
        raise ValueError(f"{where}: 'created_at' must be unix seconds, got {created!r}; {fix}")
    bad = credential_params(request)
    if bad:
        raise ValueError(f"{where}: request has credential-looking field(s) {', '.join(bad)}; "
                         "remove them from the line (credentials are never stored)")
    expected = request_key(request)
    if key != expected:
        raise ValueError(
            f"{where}: key {key!r} does not match its request (expected {expected!r}); the request was "
            f"edited or recorded under another cache format (this is v{CACHE_FORMAT_VERSION}). "
            "Record it again, or set the key to the expected value if the edit is intended"
        )
    return key, {"request": request, "response": response, "created_at": float(created)}


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
