"""One implementation, three uses, inside pytest: declared metrics=[...], function form, assert form.

The task returns canned answers, so no model is needed (except for the
semantic similarity test, which embeds through the mock server).
"""

from __future__ import annotations

from typing import Any

import pytest

# numpy and scipy cannot be loaded twice in one process, and pytester's in-process runs
# drop modules first imported inside them: the run's summary imports the statistics
# module, so load it out here. (Belongs in tests/conftest.py next to litellm's import.)
import pytest_llmeval.stats  # noqa: F401
from pytest_llmeval.mockserver import MockLLMServer

CASES = "\n".join([
    '{"id": "good", "input": "Capital of France?", "expected_output": "Paris"}',
    '{"id": "wordy", "input": "Capital of France?", "expected_output": "Paris"}',
])

TEST_FILE = """
import pytest

from pytest_llmeval.constraints import ConstraintChecker
from pytest_llmeval.metrics import (
    Constraints, ExactMatch, TokenF1, assert_constraints, assert_exact_match, assert_token_f1, token_f1,
)

ANSWERS = {"good": "Paris", "wordy": "The capital of France is Paris, of course."}

def answer(example, llm):
    return ANSWERS[example.id]

checker = ConstraintChecker().max_words(5).must_not_contain("London", name="no_london")

@pytest.mark.llmeval(dataset="cases.jsonl", task=answer,
                     metrics=[ExactMatch(), TokenF1(min_f1=0.5), Constraints(checker)])
def test_declared(eval_output):
    pass  # the body may be empty: declared metrics fail the item after it

@pytest.mark.llmeval(dataset="cases.jsonl")
def test_function_form(eval_example):
    result = token_f1(ANSWERS[eval_example.id], eval_example.expected_output)
    assert result.name == "token_f1" and result.threshold == 0.5
    assert result.passed is (eval_example.id == "good")

@pytest.mark.llmeval(dataset="cases.jsonl")
def test_assert_form(eval_example):
    assert_token_f1(ANSWERS[eval_example.id])  # the reference is the example's expected_output

@pytest.mark.llmeval(dataset="cases.jsonl")
def test_assert_constraints_form(eval_example):
    assert_constraints(ANSWERS[eval_example.id], checker)

@pytest.mark.llmeval(dataset="cases.jsonl")
def test_plain_assert_on_score(eval_example):
    result = token_f1(ANSWERS[eval_example.id], eval_example.expected_output)
    assert result.score >= 0.9
"""

# "The capital of France is Paris, of course." normalises to
# [capital, of, france, is, paris, of, course] (7 tokens) against [paris]:
# common 1, precision 1/7 = 0.14, recall 1/1 = 1.00, F1 = 2*(1/7)/(8/7) = 0.25.
WORDY_F1 = "token F1 0.25 < 0.50 (precision 0.14, recall 1.00)"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "cases.jsonl").write_text(CASES)
    pytester.makepyfile(test_cases=TEST_FILE)
    return pytester


def teardown_records(reprec: Any) -> dict[str, dict[str, Any]]:
    """Each item's record, by test id, as it rides on the teardown report."""
    return {
        report.nodeid.split("::")[-1]: report.llmeval_record
        for report in reprec.getreports("pytest_runtest_logreport")
        if report.when == "teardown"
    }


@pytest.mark.parametrize("workers", ["0", "2"])
def test_three_forms_fail_and_pass_with_the_same_report(project: pytest.Pytester, workers: str) -> None:
    result = project.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:benchmark", "-n", workers)
    result.assert_outcomes(passed=6, failed=4)
    result.stdout.fnmatch_lines([
        "FAILED test_cases.py::test_declared[[]wordy[]]*",
        "FAILED test_cases.py::test_assert_form[[]wordy[]]*",
        "FAILED test_cases.py::test_assert_constraints_form[[]wordy[]]*",
        "FAILED test_cases.py::test_plain_assert_on_score[[]wordy[]]*",
    ], consecutive=False)
    # The declared failure: every failed metric's report, after the body.
    result.stdout.fnmatch_lines([
        "*_ test_declared[[]wordy[]] _*",
        "E *LLMEvalAssertionError: exact match failed",
        "E *  input:     Capital of France?",
        "E *  reference: Paris",
        "E *  output:    The capital of France is Paris, of course.",
        "E *  differs:   at char 0: reference 'Paris', output 'The capital of Fr*",
        f"E *{WORDY_F1}",
        "E *  input:          Capital of France?",
        "E *  reference:      Paris",
        "E *  output:         The capital of France is Paris, of course.",
        "E *  missing tokens: (none)",
        "E *  extra tokens:   capital, of x2, france, is, course",
        "E *1 of 2 constraints failed: max_words(5)",
        "E *  failed: - max_words(5): 8 words > 5",
        "E *  passed: no_london",
    ])
    # The assert form in a body: the same token F1 report.
    result.stdout.fnmatch_lines([
        "*_ test_assert_form[[]wordy[]] _*",
        "*assert_token_f1(ANSWERS[[]eval_example.id[]])*",
        f"E *LLMEvalAssertionError: {WORDY_F1}",
        "E *  input:          Capital of France?",
        "E *  reference:      Paris",
        "E *  output:         The capital of France is Paris, of course.",
    ])
    result.stdout.fnmatch_lines([
        "*_ test_assert_constraints_form[[]wordy[]] _*",
        "E *LLMEvalAssertionError: 1 of 2 constraints failed: max_words(5)",
        "E *  failed: - max_words(5): 8 words > 5",
    ])
    # A plain assert on result.score: pytest_assertrepr_compare shows the report lines.
    result.stdout.fnmatch_lines([
        "*_ test_plain_assert_on_score[[]wordy[]] _*",
        "E       assert 0.25 >= 0.9",
        f"E         {WORDY_F1}",
        "E           input:          Capital of France?",
        "E           reference:      Paris",
    ])


def test_every_form_lands_on_the_item_record(project: pytest.Pytester) -> None:
    reprec = project.inline_run("-p", "no:randomly", "-p", "no:cacheprovider")
    records = teardown_records(reprec)
    declared_wordy = records["test_declared[wordy]"]
    assert declared_wordy["outcome"] == "failed"
    metrics = declared_wordy["metrics"]
    assert sorted(metrics) == ["constraints", "exact_match", "token_f1"]
    assert metrics["exact_match"] == {"value": 0.0, "passed": False, "verdict": "fail", "normalize": False}
    assert metrics["token_f1"]["value"] == pytest.approx(0.25)
    assert metrics["token_f1"]["precision"] == pytest.approx(1 / 7)
    assert metrics["token_f1"]["passed"] is False
    assert metrics["constraints"] == {"value": 0.5, "passed": False, "verdict": "fail", "checks": 2,
                                      "failed": ["max_words(5)"]}
    good = records["test_declared[good]"]
    assert good["outcome"] == "passed"
    assert {name: m["value"] for name, m in good["metrics"].items()} == {
        "constraints": 1.0, "exact_match": 1.0, "token_f1": 1.0,
    }
    # Function and assert forms record too, passed or not.
    assert records["test_function_form[wordy]"]["metrics"]["token_f1"]["passed"] is False
    assert records["test_assert_form[wordy]"]["metrics"]["token_f1"]["value"] == pytest.approx(0.25)
    assert records["test_assert_form[good]"]["metrics"]["token_f1"]["passed"] is True
    assert records["test_assert_constraints_form[wordy]"]["metrics"]["constraints"]["value"] == 0.5


def test_declared_metrics_fail_an_item_whose_body_ignores_eval_output(pytester: pytest.Pytester) -> None:
    (pytester.path / "cases.jsonl").write_text(CASES)
    pytester.makepyfile(test_empty="""
        import pytest
        from pytest_llmeval.metrics import ExactMatch

        @pytest.mark.llmeval(dataset="cases.jsonl", task=lambda example, llm: "London", metrics=[ExactMatch()])
        def test_empty_body(eval_example):
            pass
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=2)


def test_declared_metric_without_a_reference_fails_the_item_with_the_fix(pytester: pytest.Pytester) -> None:
    (pytester.path / "open.jsonl").write_text('{"id": "joke", "input": "Tell me a joke"}\n')
    pytester.makepyfile(test_open="""
        import pytest
        from pytest_llmeval.metrics import TokenF1

        @pytest.mark.llmeval(dataset="open.jsonl", task=lambda example, llm: "ha", metrics=[TokenF1()])
        def test_open(eval_output):
            assert eval_output == "ha"
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E *ValueError: token_f1: no reference to compare with (example 'joke' has no expected_output); "
        "pass reference=..., or give the example an expected_output",
    ])


def test_declared_semantic_similarity_through_the_mock(
    pytester: pytest.Pytester, mock_llm: MockLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (pytester.path / "cases.jsonl").write_text(
        '{"id": "same", "input": "q", "expected_output": "refunds take five days"}\n'
        '{"id": "other", "input": "q", "expected_output": "bananas grow on tall plants"}\n'
    )
    pytester.makepyfile(test_sim="""
        import pytest
        from pytest_llmeval.metrics import SemanticSimilarity, assert_semantic_similarity

        @pytest.mark.llmeval(dataset="cases.jsonl", task=lambda example, llm: "Refunds take five days.",
                             metrics=[SemanticSimilarity(threshold=0.9)])
        def test_declared(eval_output):
            pass

        @pytest.mark.llmeval(dataset="cases.jsonl")
        def test_assert(eval_example):
            assert_semantic_similarity("refunds take five days", threshold=0.9)
    """)
    pytester.makeini(
        "[pytest]\n"
        "llmeval_embedding_model = openai/mock-embed\n"
        f"llmeval_api_base = {mock_llm.base_url}\n"
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*_ test_declared[[]other[]] _*",
        "E *LLMEvalAssertionError: semantic similarity 0.00 < 0.90",  # no shared words
        "E *  input:      q",
        "E *  reference:  bananas grow on tall plants",
        "E *  output:     Refunds take five days.",
        "E *  similarity: cosine 0.000, threshold 0.90, embeddings from openai/mock-embed",
    ])
    sent = mock_llm.count("/v1/embeddings")
    assert sent == 3  # three distinct texts, each embedded once across both tests
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2, failed=2)
    assert mock_llm.count("/v1/embeddings") == sent  # the rerun embeds from the cache
