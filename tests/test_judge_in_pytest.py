"""Judge scores inside a pytest run: the failure text users see, from a plain
``assert result.score >= 4`` and from a declared ``metrics=[JudgeScore(...)]``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_llmeval.mockserver import MockLLMServer

DATASET = json.dumps({
    "id": "refund-03",
    "partition": "golden",
    "input": "Can I get a refund after 40 days?",
    "criteria": ["states the 30-day refund window", "does not promise what the policy excludes"],
}) + "\n"

TEST_FILE = """
import pytest
from pytest_llmeval.judge import JudgeScore, judge_score

def answer(example, llm):
    return llm(example.input, temperature=0).text

@pytest.mark.llmeval(dataset="cases.jsonl")
def test_inline(eval_example, llm):
    output = llm(eval_example.input, temperature=0).text
    result = judge_score(output, criteria=eval_example.criteria)
    assert result.score >= 4

@pytest.mark.llmeval(dataset="cases.jsonl", task=answer, metrics=[JudgeScore(min_score=4)])
def test_declared(eval_example, eval_output):
    assert eval_output.startswith("Yes")
"""


def respond(body: dict[str, Any]) -> str:
    if body["model"] == "mock-app":
        return "Yes, refunds are available at any time."
    return json.dumps({
        "score": 2,
        "reasoning": "It invents an unlimited refund window; the policy allows 30 days.",
        "strengths": ["answers directly"],
        "weaknesses": ["wrong refund window"],
    })


@pytest.fixture
def project(pytester: pytest.Pytester, mock_llm: MockLLMServer, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    mock_llm.responder = respond
    (pytester.path / "cases.jsonl").write_text(DATASET)
    pytester.makepyfile(test_cases=TEST_FILE)
    return pytester


def run(project: pytest.Pytester, mock_llm: MockLLMServer, *args: str) -> pytest.RunResult:
    return project.runpytest(
        "--llmeval-model", "openai/mock-app", "--llmeval-judge-model", "openai/mock-judge",
        "--llmeval-api-base", mock_llm.base_url, "--llmeval-retries", "0", *args,
    )


REPORT_LINES = [
    "*judge score 2 < 4*",
    "*criteria:*- states the 30-day refund window*",
    "*- does not promise what the policy excludes*",
    "*input:*Can I get a refund after 40 days?*",
    "*output:*Yes, refunds are available at any time.*",
    "*reasoning:*It invents an unlimited refund window; the policy allows 30 days.*",
    "*strengths:*- answers directly*",
    "*weaknesses:*- wrong refund window*",
    "*judge:*openai/mock-judge (prompt *",
]


def test_assert_on_a_score_shows_the_judge_report(project: pytest.Pytester, mock_llm: MockLLMServer) -> None:
    result = run(project, mock_llm, "-k", "test_inline")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*assert 2.0 >= 4*", *REPORT_LINES])


def test_a_declared_judge_score_fails_after_the_body_with_the_same_report(
    project: pytest.Pytester, mock_llm: MockLLMServer
) -> None:
    result = run(project, mock_llm, "-k", "test_declared")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*LLMEvalAssertionError: judge score 2 < 4*", *REPORT_LINES[1:]])
