"""Unit tests of the response cache: canonical requests, keys, and the store on disk."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from pytest_llmeval import cache as cache_module
from pytest_llmeval.cache import (
    FrozenJSON,
    PreparedRequest,
    ResponseCache,
    cache_exists,
    canonical_request,
    is_credential_name,
    parse_duration,
    request_key,
)

MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]
PARAMS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 200}


def chat(**changes: Any) -> dict[str, Any]:
    """A canonical chat request; keyword arguments replace canonical_request's arguments."""
    args: dict[str, Any] = {
        "kind": "chat", "model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:8000/v1",
        "payload_key": "messages", "payload": MESSAGES, "params": PARAMS, "sample": 0,
    }
    args.update(changes)
    return canonical_request(**args)


def with_params(**params: Any) -> dict[str, Any]:
    return chat(params={**PARAMS, **params})


class Answer(pydantic.BaseModel):
    value: int


class OtherAnswer(pydantic.BaseModel):
    value: str


TOOL = {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}


# -- keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(lambda: chat(kind="embedding"), id="kind"),
        pytest.param(lambda: chat(model="openai/gpt-4o"), id="model"),
        pytest.param(lambda: chat(api_base="http://127.0.0.1:9000/v1"), id="api_base"),
        pytest.param(lambda: chat(api_base=None), id="api_base-none"),
        pytest.param(lambda: chat(payload=[{"role": "user", "content": "What is 2 + 3?"}]), id="messages"),
        pytest.param(lambda: with_params(temperature=0.7), id="temperature"),
        pytest.param(lambda: with_params(max_tokens=201), id="max_tokens"),
        pytest.param(lambda: with_params(top_p=0.9), id="top_p"),
        pytest.param(lambda: with_params(seed=1), id="seed"),
        pytest.param(lambda: with_params(stop=["\n"]), id="stop"),
        pytest.param(lambda: with_params(response_format={"type": "json_object"}), id="response_format"),
        pytest.param(lambda: with_params(tools=[TOOL]), id="tools"),
        pytest.param(lambda: with_params(tool_choice="required"), id="tool_choice"),
        pytest.param(lambda: with_params(reasoning_effort="low"), id="reasoning_effort"),
        pytest.param(lambda: with_params(thinking={"type": "enabled", "budget_tokens": 1024}), id="thinking"),
        pytest.param(lambda: with_params(extra_body={"top_k": 5}), id="extra_body"),
        pytest.param(lambda: with_params(api_version="2024-10-21"), id="api_version"),
        pytest.param(lambda: chat(sample=1), id="sample"),
    ],
)
def test_every_answer_changing_part_changes_the_key(changed: Any) -> None:
    assert request_key(changed()) != request_key(chat())


def test_format_version_changes_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = request_key(chat())
    monkeypatch.setattr(cache_module, "CACHE_FORMAT_VERSION", cache_module.CACHE_FORMAT_VERSION + 1)
    assert request_key(chat()) != before


def test_pydantic_response_format_becomes_its_schema() -> None:
    request = with_params(response_format=Answer)
    stored = request["params"]["response_format"]
    assert stored["json_schema"]["name"] == "Answer"
    assert stored["json_schema"]["schema"] == Answer.model_json_schema()
    json.dumps(request)  # plain data, storable
    assert request_key(request) == request_key(with_params(response_format=Answer))
    assert request_key(request) != request_key(with_params(response_format=OtherAnswer))


def test_key_is_stable_across_param_order_and_floats_are_kept_as_given() -> None:
    a = chat(params={"temperature": 0.7, "max_tokens": 10})
    b = chat(params={"max_tokens": 10, "temperature": 0.7})
    assert request_key(a) == request_key(b)
    assert list(a["params"]) == ["max_tokens", "temperature"]
    assert a["params"]["temperature"] == 0.7
    assert request_key(chat(params={"temperature": 1})) != request_key(chat(params={"temperature": 1.5}))


@pytest.mark.parametrize(
    "payload, params",
    [
        pytest.param(MESSAGES, PARAMS, id="plain"),
        pytest.param(({"content": "Ünïcode ✓ \"quoted\"", "role": "user"},), {"stop": ("a", "b")}, id="tuples-unicode"),
        pytest.param(MESSAGES, {"response_format": Answer, "temperature": 0.1}, id="pydantic-class"),
        pytest.param(MESSAGES, {"logit_bias": {10: -100, 9: 5}}, id="int-keys-sorted-as-text"),
        pytest.param(MESSAGES, {"stop": {"b", "a"}}, id="set"),
        pytest.param(MESSAGES, {"api_key": "sk-secret", "extra_body": {"x": [1.5, None, True]}}, id="credential"),
        pytest.param(MESSAGES, {"response_format": FrozenJSON({"type": "json_schema", "json_schema": {
            "name": "V", "schema": {"properties": {"b": {"type": "integer"}, "a": {"type": "string"}}}}}),
            "temperature": 0.0}, id="frozen-json"),
        pytest.param([{"role": "user", "content": "FrozenJSON twice"}],
                     {"a": FrozenJSON({"x": [1, "é"]}), "z": FrozenJSON({"y": None})}, id="two-frozen"),
        pytest.param([FrozenJSON({"role": "system", "content": "Rubric:\n\"1-5\" ✓"}), *MESSAGES,
                      FrozenJSON({"role": "user", "content": "last"})],
                     {"response_format": FrozenJSON({"type": "json_object"})}, id="frozen-messages"),
    ],
)
def test_prepared_request_keys_and_stores_exactly_what_canonical_request_does(payload: Any, params: Any) -> None:
    """One serialisation instead of copy-then-hash: same key, same stored request."""
    args = ("chat", "openai/gpt-4o-mini", "https://user:pw@gateway.example/v1?api-key=k", "messages", payload,
            params, 2)
    expected = canonical_request(*args)
    prepared = PreparedRequest(*args)
    assert prepared.key == request_key(expected)
    assert prepared.data == expected
    assert request_key(prepared.data) == prepared.key  # what cache import checks


def test_frozen_json_refuses_changes_and_thaws_into_an_independent_copy() -> None:
    frozen = FrozenJSON({"b": {"n": 1}, "a": [1, 2]})
    assert frozen == {"a": [1, 2], "b": {"n": 1}} and frozen.text == '{"a":[1,2],"b":{"n":1}}'
    for change in (lambda: frozen.__setitem__("c", 1), lambda: frozen.pop("a"), lambda: frozen.update(c=1),
                   frozen.clear):
        with pytest.raises(TypeError, match="read-only"):
            change()
    copy = frozen.thawed()
    copy["b"]["n"] = 2
    assert type(copy) is dict and frozen["b"]["n"] == 1


def test_prepared_request_names_the_bad_parameter_as_canonical_request_does() -> None:
    with pytest.raises(TypeError, match="parameter 'temperature'"):
        PreparedRequest("chat", "m", None, "messages", MESSAGES, {"temperature": float("nan")})
    with pytest.raises(TypeError, match="parameter 'seed'"):
        PreparedRequest("chat", "m", None, "messages", MESSAGES, {"seed": object()})


def test_key_is_sha256_hex() -> None:
    key = request_key(chat())
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize(
    "params",
    [
        {"api_key": "sk-secret"},
        {"headers": {"Authorization": "Bearer sk-secret"}},
        {"extra_headers": {"X-Api-Key": "sk-secret"}},
        {"timeout": 5},
        {"request_timeout": 5},
        {"num_retries": 3, "max_retries": 3},
        {"metadata": {"run": 1}, "user": "alice"},
        {"aws_secret_access_key": "s", "aws_access_key_id": "i", "aws_session_token": "t"},
        {"azure_ad_token": "t", "vertex_credentials": "{}"},
        {"Azure_API_Key": "s", "bearer_token": "t", "client_secret": "s", "db_password": "p"},
    ],
    ids=lambda params: ",".join(params),
)
def test_credentials_and_transport_params_do_not_change_the_key_and_are_not_kept(
    params: dict[str, Any], tmp_path: Path
) -> None:
    request = with_params(**params)
    assert request_key(request) == request_key(chat())
    assert not set(params) & set(request["params"])
    with ResponseCache(tmp_path / "cache") as cache:
        cache.set(request_key(request), request, {"text": "4"})
        export = tmp_path / "out.jsonl"
        cache.export(export)
    text = export.read_text()
    assert "secret" not in text and "sk-" not in text


def test_credential_rule_spares_token_counts() -> None:
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens", "temperature", "top_k", "api_version"):
        assert not is_credential_name(name), name
    for name in ("api_key", "API_KEY", "access_token", "prompt_tokens_details", "my_secret", "credentials"):
        assert is_credential_name(name), name


def test_credentials_in_api_base_are_removed() -> None:
    request = chat(api_base="https://user:pw@gateway.example/v1?api-key=sk-secret&deployment=a")
    assert request["api_base"] == "https://gateway.example/v1?deployment=a"
    assert request_key(request) == request_key(chat(api_base="https://gateway.example/v1?deployment=a"))
    # a URL without credentials is kept byte for byte
    assert chat(api_base="http://h:1/v1?")["api_base"] == "http://h:1/v1?"


def test_non_json_parameter_is_an_error_naming_it() -> None:
    with pytest.raises(TypeError, match="parameter 'seed'.*plain JSON data"):
        with_params(seed=object())


def test_mutating_callers_messages_does_not_change_request_or_stored_entry(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "hello"}]
    params: dict[str, Any] = {"stop": ["x"]}
    request = chat(payload=messages, params=params)
    key = request_key(request)
    with ResponseCache(tmp_path) as cache:
        cache.set(key, request, {"text": "hi"})
        messages[0]["content"] = "changed"
        messages.append({"role": "user", "content": "more"})
        params["stop"].append("y")
        assert request["messages"] == [{"content": "hello", "role": "user"}]
        assert request["params"]["stop"] == ["x"]
        request["messages"].append({"role": "user", "content": "after set"})
        entry = cache.entry(key)
    assert entry is not None
    assert entry["request"]["messages"] == [{"content": "hello", "role": "user"}]


# -- the store -----------------------------------------------------------------


def test_get_set_and_two_samples_are_distinct_entries(tmp_path: Path) -> None:
    first, second = chat(sample=0), chat(sample=1)
    with ResponseCache(tmp_path) as cache:
        assert cache.get(request_key(first)) is None
        cache.set(request_key(first), first, {"text": "a"})
        cache.set(request_key(second), second, {"text": "b"})
        assert cache.get(request_key(first)) == {"text": "a"}
        assert cache.get(request_key(second)) == {"text": "b"}
        assert len(cache) == 2


@pytest.mark.parametrize(
    "response",
    [
        pytest.param({"text": 'says ,"response": {"x": 1}} inside a string', "usage": {}}, id="pattern-in-string"),
        pytest.param({"text": "a", "tool_calls": [{"id": "c1", "response": {"ok": True}}]}, id="nested-response-key"),
        pytest.param({"text": "a", "z": {"a": 1, "response": {"ok": True}}}, id="nested-response-key-last"),
    ],
)
def test_get_returns_the_top_level_response_whatever_it_contains(tmp_path: Path, response: dict[str, Any]) -> None:
    request = chat(payload=[{"role": "user", "content": 'a prompt quoting ,"response": {}'}])
    with ResponseCache(tmp_path) as cache:
        cache.set(request_key(request), request, response)
        assert cache.get(request_key(request)) == response


def test_a_damaged_response_is_a_miss(tmp_path: Path) -> None:
    request = chat()
    key = request_key(request)
    with ResponseCache(tmp_path) as cache:
        cache.set(key, request, {"text": "a"})
        text = cache._cache.get(key)
        for damaged in (text[:-1], text.replace('{"text":"a"}', '{"text":"a"')):
            cache._cache.set(key, damaged)
            assert cache.get(key) is None
            assert cache.entry(key) is None
        # get() reads only the response; readers of whole entries (stats, export) skip
        # one whose request part is damaged.
        cache._cache.set(key, text.replace('"request":', '"request":{', 1))
        assert cache.get(key) == {"text": "a"}
        assert cache.entry(key) is None


def test_set_refuses_a_wrong_key_or_a_credential(tmp_path: Path) -> None:
    request = chat()
    with ResponseCache(tmp_path) as cache:
        with pytest.raises(ValueError, match="request_key"):
            cache.set("refund-03", request, {"text": "a"})
        leaky = {**request, "params": {"api_key": "sk"}}
        with pytest.raises(ValueError, match="params.api_key.*canonical_request"):
            cache.set(request_key(leaky), leaky, {"text": "a"})
        assert len(cache) == 0


def test_values_are_json_text_on_disk_never_pickle(tmp_path: Path) -> None:
    small, large = chat(sample=0), chat(sample=1)
    with ResponseCache(tmp_path) as cache:
        cache.set(request_key(small), small, {"text": "four"})
        # diskcache moves values over 32 KiB to files: those must be JSON too.
        cache.set(request_key(large), large, {"text": "x" * 100_000})
    with sqlite3.connect(tmp_path / "cache.db") as db:
        rows = db.execute("SELECT key, value, filename FROM Cache").fetchall()
    values = {key: (value, filename) for key, value, filename in rows}
    value, filename = values[request_key(small)]
    assert isinstance(value, str) and filename is None
    assert json.loads(value)["response"] == {"text": "four"}
    value, filename = values[request_key(large)]
    assert value is None and filename
    assert json.loads((tmp_path / filename).read_text(encoding="utf-8"))["response"]["text"] == "x" * 100_000


def test_prune_by_age_with_a_fake_clock(tmp_path: Path) -> None:
    now = [1_000_000.0]
    with ResponseCache(tmp_path, clock=lambda: now[0]) as cache:
        old = chat(sample=0)
        cache.set(request_key(old), old, {"text": "old"})
        now[0] += 40 * 86400
        new = chat(sample=1)
        cache.set(request_key(new), new, {"text": "new"})
        now[0] += 86400
        assert cache.prune(parse_duration("30d")) == 1
        assert cache.get(request_key(old)) is None
        assert cache.get(request_key(new)) == {"text": "new"}


def test_stats_and_clear(tmp_path: Path) -> None:
    times = iter([100.0, 200.0, 300.0])
    with ResponseCache(tmp_path, clock=lambda: next(times)) as cache:
        requests = [chat(sample=0), chat(sample=1, model="other/model"),
                    canonical_request("embedding", "openai/text-embedding-3-small", None, "input", ["a"], {})]
        for request in requests:
            cache.set(request_key(request), request, {"data": []})
        stats = cache.stats()
        assert stats["entries"] == 3
        assert stats["size_bytes"] > 0
        assert stats["by_kind"] == {"chat": 2, "embedding": 1}
        assert stats["by_model"] == {"openai/gpt-4o-mini": 1, "openai/text-embedding-3-small": 1, "other/model": 1}
        assert (stats["oldest"], stats["newest"]) == (100.0, 300.0)
        assert cache.clear() == 3
        assert cache.stats()["entries"] == 0 and cache.stats()["oldest"] is None


# -- export / import -----------------------------------------------------------


def _filled(directory: Path, count: int = 5) -> ResponseCache:
    cache = ResponseCache(directory, clock=lambda: 1_700_000_000.5)
    for sample in range(count):
        request = chat(sample=sample, payload=[{"role": "user", "content": f"héllo {sample}"}])
        cache.set(request_key(request), request, {"text": f"réponse {sample}"})
    return cache


def test_export_is_sorted_and_byte_identical(tmp_path: Path) -> None:
    with _filled(tmp_path / "cache") as cache:
        assert cache.export(tmp_path / "a.jsonl") == 5
        assert cache.export(tmp_path / "b.jsonl") == 5
    data = (tmp_path / "a.jsonl").read_bytes()
    assert data == (tmp_path / "b.jsonl").read_bytes()
    lines = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    assert [line["key"] for line in lines] == sorted(line["key"] for line in lines)
    assert all(list(line) == ["created_at", "key", "request", "response"] for line in lines)
    assert "héllo" in data.decode("utf-8")  # readable in review, not \u-escaped
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_export_refuses_an_entry_with_a_credential(tmp_path: Path) -> None:
    leaky = {**chat(), "params": {"api_key": "sk-secret"}}
    with ResponseCache(tmp_path / "cache") as cache:
        # Written past set()'s check, as an old or foreign writer might have.
        cache._put(request_key(leaky), {"request": leaky, "response": {}, "created_at": 1.0})
        with pytest.raises(ValueError, match=rf"{request_key(leaky)}.*params\.api_key.*refusing"):
            cache.export(tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_import_round_trip_into_a_fresh_directory(tmp_path: Path) -> None:
    with _filled(tmp_path / "a") as cache:
        cache.export(tmp_path / "a.jsonl")
        original = cache.stats()
    assert not cache_exists(tmp_path / "b")
    with ResponseCache(tmp_path / "b") as fresh:
        assert fresh.import_(tmp_path / "a.jsonl") == 5
        fresh.export(tmp_path / "b.jsonl")
        assert fresh.stats()["by_model"] == original["by_model"]
        request = chat(sample=3, payload=[{"role": "user", "content": "héllo 3"}])
        assert fresh.get(request_key(request)) == {"text": "réponse 3"}
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda line: line.replace('"temperature":0.0', '"temperature":0.5'), "does not match its request"),
        (lambda line: line[:-10], "not valid JSON"),
        (lambda line: line.replace('"created_at":', '"created":'), "exactly created_at, key, request, response"),
        (lambda line: line.replace('"params":{', '"params":{"api_key":"sk",'), "credential-looking"),
    ],
    ids=["edited-request", "truncated", "renamed-field", "credential"],
)
def test_import_rejects_a_bad_line_naming_file_and_line(tmp_path: Path, tamper: Any, message: str) -> None:
    with _filled(tmp_path / "a", count=3) as cache:
        cache.export(tmp_path / "a.jsonl")
    lines = (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()
    lines[1] = tamper(lines[1])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with ResponseCache(tmp_path / "b") as fresh:
        with pytest.raises(ValueError, match=rf"bad\.jsonl:2: .*{message}") as info:
            fresh.import_(bad)
        assert len(fresh) == 0  # nothing from a bad file is stored
    assert "re-" in str(info.value) or "remove" in str(info.value) or "Record" in str(info.value)


@pytest.mark.parametrize("text", ["30d", "12h", "90m", "45s", "1.5h", " 2d "])
def test_parse_duration_accepts(text: str) -> None:
    expected = {"30d": 30 * 86400, "12h": 12 * 3600, "90m": 90 * 60, "45s": 45, "1.5h": 5400, " 2d ": 2 * 86400}
    assert parse_duration(text) == expected[text]


@pytest.mark.parametrize("text", ["30", "d", "-1d", "3 weeks", "1y", ""])
def test_parse_duration_rejects_naming_value_and_forms(text: str) -> None:
    with pytest.raises(ValueError, match=rf"duration {text!r}.*30d, 12h, 90m, 45s"):
        parse_duration(text)


# -- processes -----------------------------------------------------------------


def _write_many(directory: str, worker: int, count: int) -> None:
    """Child-process body: write ``count`` distinct entries."""
    with ResponseCache(directory) as cache:
        for sample in range(count):
            request = chat(model=f"worker/{worker}", sample=sample)
            cache.set(request_key(request), request, {"text": f"{worker}-{sample}"})


def test_two_processes_write_to_one_directory(tmp_path: Path) -> None:
    # spawn, not fork: a forked child would inherit the parent's threads and
    # SQLite state; xdist workers are separate interpreters too.
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(tmp_path), worker, 200)) for worker in (1, 2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    with ResponseCache(tmp_path) as cache:
        stats = cache.stats()
    assert stats["entries"] == 400
    assert stats["by_model"] == {"worker/1": 200, "worker/2": 200}


def test_importing_the_key_functions_does_not_import_diskcache() -> None:
    code = ("import sys; from pytest_llmeval.cache import canonical_request, request_key; "
            "assert 'diskcache' not in sys.modules and 'pydantic' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- read-ahead ------------------------------------------------------------------


def _entries(cache: ResponseCache, count: int) -> list[str]:
    keys = []
    for sample in range(count):
        request = chat(sample=sample)
        cache.set(request_key(request), request, {"text": f"answer {sample}"})
        keys.append(request_key(request))
    return keys


def _delete_all(directory: Path) -> None:
    """Empty the database behind the cache's back: what is still served came from memory."""
    con = sqlite3.connect(directory / "cache.db")
    with con:
        con.execute("DELETE FROM Cache")
    con.close()


def test_read_ahead_serves_what_each_item_looked_up_last_run_from_memory(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        keys = _entries(cache, 4)
        big = chat(sample=99)
        # Over diskcache's 32 KiB, a value lives in a file of its own, not in the row.
        cache.set(request_key(big), big, {"text": "x" * 40_000})
        assert cache.note_keys({"t::a": [keys[1], keys[0], keys[0]], "t::b": [keys[2], request_key(big)],
                                "t::c": [keys[3]]}) == 3
    with ResponseCache(tmp_path) as cache:
        assert cache.read_ahead(["t::a", "t::b", "t::unknown"]) == 3  # the large entry stays on disk
        assert cache.get(request_key(big)) == {"text": "x" * 40_000}
        _delete_all(tmp_path)
        assert [cache.get(key) for key in keys] == [{"text": "answer 0"}, {"text": "answer 1"},
                                                      {"text": "answer 2"}, None]  # t::c was not asked for
        assert cache.get(keys[0]) is None  # each entry read ahead is handed out once


def test_note_keys_writes_only_items_whose_keys_changed(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        keys = _entries(cache, 3)
        assert cache.note_keys({"t::a": keys[:2], "t::b": keys[2:]}) == 2
    with ResponseCache(tmp_path) as cache:
        assert cache.note_keys({"t::a": [keys[1], keys[0]], "t::b": keys[2:]}) == 0  # order does not matter
        assert cache.note_keys({"t::a": keys[:1], "t::b": keys[2:]}) == 1
    with ResponseCache(tmp_path) as cache:
        assert cache.read_ahead(["t::a", "t::b"]) == 2  # keys[1] is no longer noted for t::a


def test_read_ahead_without_notes_stale_notes_or_after_clear(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        assert cache.read_ahead(["t::a"]) == 0  # no run has noted keys here yet
        keys = _entries(cache, 2)
        cache.note_keys({"t::a": [keys[0], "0" * 64]})  # one key that is not in the cache
        assert cache.read_ahead(["t::a"]) == 1
        assert cache.clear() == 2
        assert cache.get(keys[0]) is None  # clearing drops what was read ahead too
    with ResponseCache(tmp_path) as cache:
        assert cache.read_ahead(["t::a"]) == 0  # and the notes


def test_read_ahead_stops_at_its_memory_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "_SQL_CHUNK", 2)  # the budget is checked after each query
    with ResponseCache(tmp_path) as cache:
        keys = _entries(cache, 6)
        cache.note_keys({f"t::{i}": [key] for i, key in enumerate(keys)})
    with ResponseCache(tmp_path) as cache:
        assert cache.read_ahead([f"t::{i}" for i in range(6)], budget_bytes=1) == 2
    with ResponseCache(tmp_path) as cache:
        assert cache.read_ahead([f"t::{i}" for i in range(6)]) == 6
