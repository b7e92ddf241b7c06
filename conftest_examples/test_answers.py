"""The assistant's replies, checked without a judge: support policy and closeness to the reference.

`task=answer` runs the assistant (support_app.answer) once per example, for every
test below, ahead of the test bodies and concurrently; `eval_output` is its reply.

Thresholds are calibrated for the tiny embedded model (local/smollm2, which is also
the embedding model); see SIMILARITY_THRESHOLD.
"""

from __future__ import annotations

import re

import pytest

from pytest_llmeval import ConstraintChecker, assert_constraints, assert_semantic_similarity
from support_app import KNOWLEDGE_BASE, answer

COMPETITORS = ("Zendesk", "Freshdesk", "Intercom", "Help Scout", "HubSpot", "Salesforce")
KNOWN_AMOUNTS = set(re.findall(r"\$\d+(?:\.\d+)?|\d+%", KNOWLEDGE_BASE))  # $0, $20, $45, 15%


def only_known_amounts(reply: str) -> bool | str:
    """Every price and percentage in the reply is one the knowledge base states."""
    unknown = sorted(set(re.findall(r"\$\d+(?:\.\d+)?|\d+%", reply)) - KNOWN_AMOUNTS)
    return f"amounts not in the knowledge base: {', '.join(unknown)}" if unknown else True


def no_phone_numbers(reply: str) -> bool | str:
    """Acme has no phone support, so a phone number in a reply is invented."""
    found = re.findall(r"\+?\d[\d ()-]{7,}\d", reply)
    return f"phone number(s) {found}" if found else True


def in_english(reply: str) -> bool | str:
    """The assistant supports English only: no CJK, Cyrillic, Arabic... script in the reply."""
    foreign = re.findall(r"[\u0400-\u04FF\u0600-\u06FF\u3040-\u30FF\u3400-\u9FFF\uAC00-\uD7AF]", reply)
    return f"non-English script: {''.join(foreign[:10])!r}" if foreign else True


def support_policy() -> ConstraintChecker:
    """The policy every reply must follow, whatever the question (a new checker each call)."""
    return (
        ConstraintChecker()
        .min_words(3)                     # an empty or one-word reply helps nobody
        .max_words(60)                    # a chat reply, not an essay (the assistant stops at 100 tokens)
        .must_not_contain(*COMPETITORS, name="no_competitors")
        .must_not_contain("Facts:", "You are the support assistant", "using only the facts", name="no_prompt_leak")
        .must_not_contain("guarantee", "I promise", "forever", "lifetime deal", name="no_promises")
        .add("only_known_amounts", only_known_amounts)
        .add("no_phone_numbers", no_phone_numbers)
        .add("in_english", in_english)
    )


@pytest.mark.llmeval(dataset="evals/support.jsonl", task=answer)
def test_reply_follows_support_policy(eval_example, eval_output):
    checker = support_policy()
    # The example's own checks: the fact the reply must state, the mistakes it must not make.
    must = eval_example.metadata.get("must_mention")
    if must:
        checker.must_contain_any(*must, name="mentions_the_answer")
    must_not = eval_example.metadata.get("must_not_mention")
    if must_not:
        checker.must_not_contain(*must_not, name="avoids_known_mistakes")
    assert_constraints(eval_output, checker)


# Cosine similarity of the embeddings of the reply and the reference answer, calibrated for
# the tiny embedded model (local/smollm2 is also the embedding model), whose vectors are all
# alike. Measured on the golden set: the assistant's replies score 0.93 to 1.00, while an
# empty reply scores at most 0.79, "I don't know." 0.86 and "Sorry, I can't help with that.
# Please check our website." 0.89, so 0.9 separates them. It cannot tell a reply to another
# question (up to 0.93) from the right one: the policy test above catches those.
# With a real embedding model (--llmeval-embedding-model openai/text-embedding-3-small, ...)
# every score is lower: recalibrate the same way, between the lowest golden reply and the
# highest non-answer (0.8 is a common starting point).
SIMILARITY_THRESHOLD = 0.9


@pytest.mark.llmeval(dataset="evals/support.jsonl", task=answer,
                     partitions=["golden", "regression", "distribution"])  # the ones with a reference answer
def test_reply_is_close_to_reference(eval_example, eval_output):
    assert_semantic_similarity(eval_output, eval_example.expected_output, threshold=SIMILARITY_THRESHOLD)
