"""The support assistant, evaluated example by example.

Run the golden set with `pytest conftest_examples -m golden`, everything with
`pytest conftest_examples`. With no model configured, the embedded local model
(`local/smollm2`) answers; point it elsewhere with --llmeval-model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

KNOWLEDGE_BASE = (Path(__file__).parent / "knowledge_base.md").read_text()

SYSTEM_PROMPT = (
    "You are the support assistant of Acme Helpdesk. Answer in at most three sentences, "
    "using only this knowledge base:\n\n" + KNOWLEDGE_BASE
)


def answer(example, llm):
    """The application under test: one chat call with the knowledge base as context."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": example.input}]
    return llm(messages, temperature=0, max_tokens=120).text


@pytest.mark.llmeval(dataset="evals/support.jsonl", task=answer)
def test_support_answer(eval_example, eval_output, llmeval_record):
    words = len(eval_output.split())
    llmeval_record.add_metric("words", words, passed=0 < words <= 200)
    assert eval_output.strip(), "the assistant returned an empty answer"
    assert words <= 200, f"answer too long for support chat: {words} words"
