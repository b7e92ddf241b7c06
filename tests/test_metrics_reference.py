"""Reference metrics as pure functions: exact match, token F1, cosine, and semantic similarity
through the real client against the mock server. Expected values are computed by hand."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_llmeval.client import ClientSettings, LLMClient
from pytest_llmeval.dataset import EvalExample
from pytest_llmeval.errors import LLMEvalAssertionError
from pytest_llmeval.metric import Score
from pytest_llmeval.metrics import (
    ExactMatch,
    SemanticSimilarity,
    TokenF1,
    assert_exact_match,
    assert_semantic_similarity,
    assert_token_f1,
    cosine,
    exact_match,
    normalize_answer,
    semantic_similarity,
    token_f1,
    token_scores,
)
from pytest_llmeval.mockserver import MockLLMServer, embed_text

EMBED = "/v1/embeddings"

CAPITAL = EvalExample(id="capital", input={"question": "Capital of France?"}, expected_output="Paris")


# -- normalisation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The  Quick, brown-fox!\n", "quick brownfox"),  # SQuAD drops hyphens too: brown-fox -> brownfox
        ("an apple a day", "apple day"),
        ("Theatre, anthem and a thesis", "theatre anthem and thesis"),  # articles only as whole words
        ("don’t “quote” me…", "dont quote me"),  # Unicode punctuation goes like ASCII
        ("don't", "dont"),
        ("$5.00 (50%)", "500 50"),
        ("The.", ""),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


# -- token F1 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        # "the cat sat on the mat" -> [cat, sat, on, mat]; "a cat sat" -> [cat, sat].
        # common = 2: precision 2/4 = 0.5, recall 2/2 = 1.0, F1 = 2*0.5*1.0/1.5 = 2/3.
        ("the cat sat on the mat", "a cat sat", (0.5, 1.0, 2 / 3)),
        # Multisets: [cat, cat, cat] vs [cat, dog]: common = min(3, 1) = 1.
        # precision 1/3, recall 1/2, F1 = 2*(1/6)/(5/6) = 0.4.
        ("cat cat cat", "cat dog", (1 / 3, 1 / 2, 0.4)),
        # [refund, takes, 5, days] vs [refunds, take, 5, business, days]: common {5, days} = 2.
        # precision 2/4, recall 2/5, F1 = 2*0.5*0.4/0.9 = 4/9.
        ("The refund takes 5 days.", "Refunds take 5 business days", (0.5, 0.4, 4 / 9)),
        ("Paris!", "paris", (1.0, 1.0, 1.0)),
        ("dog", "cat", (0.0, 0.0, 0.0)),
        ("", "", (1.0, 1.0, 1.0)),  # both empty
        ("", "The.", (1.0, 1.0, 1.0)),  # "The." normalises to nothing: both empty
        ("", "cat", (0.0, 0.0, 0.0)),  # one empty
        ("cat", "", (0.0, 0.0, 0.0)),
    ],
)
def test_token_scores(prediction: str, reference: str, expected: tuple[float, float, float]) -> None:
    assert token_scores(prediction, reference) == pytest.approx(expected)


def test_token_f1_result_and_report() -> None:
    result = token_f1("the cat sat on the mat", "a cat sat", min_f1=0.9)
    assert result.name == "token_f1"
    assert result.value == pytest.approx(2 / 3)
    assert (result.passed, result.verdict, result.threshold) == (False, "fail", 0.9)
    assert result.details == pytest.approx({"precision": 0.5, "recall": 1.0})
    assert result.report().splitlines() == [
        "token F1 0.67 < 0.90 (precision 0.50, recall 1.00)",
        "  reference:      a cat sat",
        "  output:         the cat sat on the mat",
        "  missing tokens: (none)",
        "  extra tokens:   on, mat",
    ]


def test_token_f1_default_threshold_and_pass() -> None:
    result = token_f1("the cat sat on the mat", "a cat sat")  # 0.67 >= the default 0.5
    assert (result.passed, result.verdict, result.threshold) == (True, "pass", 0.5)
    assert result.summary == "token F1 0.67 >= 0.50 (precision 0.50, recall 1.00)"
    assert [label for label, _ in result.sections] == ["reference", "output"]  # no token lists when passing


def test_token_f1_report_counts_repeated_and_missing_tokens() -> None:
    result = token_f1("cat cat cat", "cat dog dog", min_f1=0.9)
    # [cat x3] vs [cat, dog x2]: common 1, precision 1/3, recall 1/3, F1 1/3.
    assert result.summary == "token F1 0.33 < 0.90 (precision 0.33, recall 0.33)"
    assert ("missing tokens", "dog x2") in result.sections
    assert ("extra tokens", "cat x2") in result.sections


def test_summary_shows_enough_digits_to_read_true() -> None:
    # F1 2/3 = 0.66667 against 0.667: two or three decimals would print "0.67 < 0.67".
    result = token_f1("the cat sat on the mat", "a cat sat", min_f1=0.667)
    assert result.summary == "token F1 0.6667 < 0.6670 (precision 0.50, recall 1.00)"


def test_token_f1_reference_from_example_and_input_section() -> None:
    result = TokenF1(min_f1=0.6).evaluate("It is Paris.", example=CAPITAL)
    # [it, is, paris] vs [paris]: precision 1/3, recall 1, F1 = 2*(1/3)/(4/3) = 0.5.
    assert result.value == pytest.approx(0.5)
    assert result.sections[:3] == [
        ("input", '{"question": "Capital of France?"}'),
        ("reference", "Paris"),
        ("output", "It is Paris."),
    ]
    # An explicit reference wins over the example's.
    assert TokenF1(reference="It is Paris").evaluate("It is Paris.", example=CAPITAL).value == 1.0


def test_long_texts_are_shortened_in_the_report() -> None:
    result = token_f1("word " * 300, "other", min_f1=0.5)
    output = dict(result.sections)["output"]
    assert output.endswith("... [+900 chars]")  # 1500 characters, 600 shown


def test_result_score_is_a_float_for_plain_asserts() -> None:
    result = token_f1("the cat sat on the mat", "a cat sat")
    assert isinstance(result.score, float) and isinstance(result.score, Score)
    assert result.score >= 0.6
    assert result.score == pytest.approx(2 / 3)
    assert result.score.result is result


def test_record_entry_carries_precision_and_recall() -> None:
    entry = token_f1("cat", "cat dog").record_entry()
    # [cat] vs [cat, dog]: precision 1, recall 1/2, F1 = 2*0.5/1.5 = 2/3.
    assert entry == pytest.approx({"name": "token_f1", "value": 2 / 3, "passed": True, "verdict": "pass",
                                   "precision": 1.0, "recall": 0.5})


def test_assert_token_f1_raises_the_report() -> None:
    with pytest.raises(LLMEvalAssertionError) as excinfo:
        assert_token_f1("the dog", "a cat sat", min_f1=0.5)
    assert isinstance(excinfo.value, AssertionError)
    assert str(excinfo.value) == token_f1("the dog", "a cat sat", min_f1=0.5).report()
    assert str(excinfo.value).startswith("token F1 0.00 < 0.50 (precision 0.00, recall 0.00)\n")
    assert assert_token_f1("a cat sat", "the cat sat").passed is True


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", True])
def test_token_f1_threshold_is_validated(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"TokenF1: min_f1 must be a number from 0 to 1, got"):
        TokenF1(min_f1=bad)


# -- exact match -----------------------------------------------------------------------------------


def test_exact_match_pass_and_fail() -> None:
    passed = exact_match("Paris", "Paris")
    assert (passed.value, passed.passed, passed.summary, passed.name) == (1.0, True, "exact match", "exact_match")
    failed = exact_match("London", "Paris")
    assert (failed.value, failed.passed, failed.verdict) == (0.0, False, "fail")
    assert failed.report().splitlines() == [
        "exact match failed",
        "  reference: Paris",
        "  output:    London",
        "  differs:   at char 0: reference 'Paris', output 'London'",
    ]


def test_exact_match_without_normalize_is_strict_and_hints() -> None:
    result = exact_match("The Paris.", "paris")
    assert result.passed is False
    assert dict(result.sections)["hint"].startswith("equal after normalisation")
    trailing = exact_match("Paris\n", "Paris")  # a trailing newline is a difference
    assert trailing.passed is False
    assert dict(trailing.sections)["differs"] == "at char 5: reference '', output '\\n'"


def test_exact_match_with_normalize() -> None:
    result = exact_match("The Paris.", "paris", normalize=True)
    assert (result.value, result.passed, result.summary) == (1.0, True, "exact match (normalized)")
    assert result.details == {"normalize": True}
    failed = exact_match("Lyon!", "paris", normalize=True)
    assert failed.summary == "exact match failed (normalized)"
    assert dict(failed.sections)["normalized text differs"] == "at char 0: reference 'paris', output 'lyon'"
    assert "hint" not in dict(failed.sections)


def test_exact_match_reference_from_example() -> None:
    assert ExactMatch().evaluate("Paris", example=CAPITAL).passed is True
    assert ExactMatch(normalize=True).evaluate("paris.", example=CAPITAL).passed is True
    assert ExactMatch(reference="Lyon").evaluate("Paris", example=CAPITAL).passed is False


def test_assert_exact_match() -> None:
    with pytest.raises(LLMEvalAssertionError, match=r"^exact match failed\n  reference: Paris\n"):
        assert_exact_match("paris", "Paris")
    assert assert_exact_match("paris", "Paris", normalize=True).value == 1.0


def test_completion_outputs_are_compared_by_text() -> None:
    assert exact_match(SimpleNamespace(text="Paris"), "Paris").passed is True


def test_non_text_output_is_a_type_error_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"token_f1 checks text, got dict; return a string from task="):
        token_f1({"answer": "Paris"}, "Paris")


# -- missing references ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [ExactMatch(), TokenF1(), SemanticSimilarity()])
def test_no_reference_names_the_metric_and_the_fix(metric: Any) -> None:
    no_answer = EvalExample(id="open-ended", input="Tell me a joke")
    with pytest.raises(ValueError) as excinfo:
        # compute() is reached before any model call for every metric here.
        asyncio.run(metric.acompute("text", example=no_answer, llm=None))
    assert str(excinfo.value) == (
        f"{metric.name}: no reference to compare with (example 'open-ended' has no expected_output); "
        "pass reference=..., or give the example an expected_output"
    )


def test_assert_form_outside_an_item_without_reference() -> None:
    with pytest.raises(ValueError, match=r"^token_f1: no reference to compare with \(no example is running\); "
                                         r"pass reference=\.\.\., or give the example an expected_output$"):
        assert_token_f1("text")


# -- cosine ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1.0, 0.0], [0.0, 1.0], 0.0),  # orthogonal
        ([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], 1.0),  # same direction, other length
        ([1.0, 0.0], [-1.0, 0.0], -1.0),  # opposite
        ([1.0, 1.0], [1.0, 0.0], 1 / math.sqrt(2)),  # 1 / (sqrt(2) * 1)
        ([3.0, 4.0], [4.0, 3.0], 24 / 25),  # (12 + 12) / (5 * 5)
        ([0.0, 0.0], [1.0, 0.0], 0.0),  # zero vector: no direction
    ],
)
def test_cosine_of_known_vectors(a: list[float], b: list[float], expected: float) -> None:
    assert cosine(a, b) == pytest.approx(expected)


def test_cosine_stays_within_bounds_and_checks_lengths() -> None:
    v = [0.1, 0.7, 0.3, 0.9, 0.2]
    assert -1.0 <= cosine(v, v) <= 1.0
    assert cosine(v, v) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"cosine: vectors of different lengths \(2 and 3\)"):
        cosine([1.0, 0.0], [1.0, 0.0, 0.0])


def test_semantic_similarity_zero_vector_is_zero_with_a_note() -> None:
    class ZeroEmbeddings:
        settings = ClientSettings(embedding_model="fake/zero")

        async def aembed(self, texts: list[str], *, model: str | None = None) -> list[list[float]]:
            return [[0.0, 0.0] if t == "" else [1.0, 0.0] for t in texts]

    metric = SemanticSimilarity(threshold=0.5, reference="Paris")
    result = asyncio.run(metric.acompute("", example=None, llm=ZeroEmbeddings()))  # type: ignore[arg-type]
    assert (result.value, result.passed) == (0.0, False)
    assert dict(result.sections)["note"] == "the output embedding is a zero vector; similarity taken as 0"


@pytest.mark.parametrize("bad", [-1.5, 1.01])
def test_semantic_similarity_threshold_is_validated(bad: float) -> None:
    with pytest.raises(ValueError, match=r"SemanticSimilarity: threshold must be a number from -1 to 1"):
        SemanticSimilarity(threshold=bad)


# -- semantic similarity through the real client and the mock server --------------------------------


@pytest.fixture
def client(mock_llm: MockLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMClient]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    llm = LLMClient.create(ClientSettings(embedding_model="openai/mock-embed", api_base=mock_llm.base_url,
                                          cache_dir=str(tmp_path / "c")))
    yield llm
    llm.runtime.close()
    llm.close()


REFUND = "the refund takes five business days"
FRUIT = "bananas grow on tall green plants"


def test_semantic_similarity_through_the_client(client: LLMClient, mock_llm: MockLLMServer) -> None:
    same = semantic_similarity(REFUND, REFUND, llm=client)
    assert same.name == "semantic_similarity"
    assert same.value == pytest.approx(1.0)
    assert (same.passed, same.verdict, same.threshold) == (True, "pass", 0.85)
    assert same.details == {"embedding_model": "openai/mock-embed"}

    different = semantic_similarity(REFUND, FRUIT, llm=client)
    # The mock's vectors are deterministic, so the expected value is their cosine.
    expected = cosine(embed_text(REFUND), embed_text(FRUIT))
    assert different.value == pytest.approx(expected, abs=1e-6)
    assert different.value < 0.5 < same.value
    assert different.passed is False
    assert different.summary == f"semantic similarity {expected:.2f} < 0.85"
    assert dict(different.sections)["similarity"] == (
        f"cosine {expected:.3f}, threshold 0.85, embeddings from openai/mock-embed"
    )
    assert mock_llm.count(EMBED) == 2  # one request per distinct text


def test_semantic_similarity_second_evaluation_sends_no_requests(client: LLMClient, mock_llm: MockLLMServer) -> None:
    first = SemanticSimilarity(threshold=0.5, reference=FRUIT).evaluate(REFUND, llm=client)
    sent = mock_llm.count(EMBED)
    assert sent == 2
    again = SemanticSimilarity(threshold=0.5, reference=FRUIT).evaluate(REFUND, llm=client)
    swapped = semantic_similarity(FRUIT, REFUND, llm=client)
    assert mock_llm.count(EMBED) == sent  # every text's vector came from the cache
    assert again.value == first.value
    assert swapped.value == pytest.approx(first.value)


def test_semantic_similarity_reference_from_example(client: LLMClient) -> None:
    example = EvalExample(id="refund", input="How long do refunds take?", expected_output=REFUND)
    result = SemanticSimilarity().evaluate("the refund takes five business days.", example=example, llm=client)
    assert result.value == pytest.approx(1.0)  # the mock's words ignore punctuation
    assert result.sections[0] == ("input", "How long do refunds take?")


def test_assert_semantic_similarity_raises_the_report(client: LLMClient) -> None:
    with pytest.raises(LLMEvalAssertionError) as excinfo:
        assert_semantic_similarity(REFUND, FRUIT, 0.9, llm=client)
    lines = str(excinfo.value).splitlines()
    assert lines[0].startswith("semantic similarity ") and lines[0].endswith(" < 0.90")
    assert lines[1:3] == [f"  reference:  {FRUIT}", f"  output:     {REFUND}"]
    assert assert_semantic_similarity(REFUND, REFUND, llm=client).passed is True
