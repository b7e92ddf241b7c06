"""The hallucination check itself, on three fixed answers (evals/hallucination.yaml): it must
pass the faithful answer and catch the subtly wrong price and the invented feature.

This checks the judge, not the assistant: on the tiny embedded judge it is an expected
failure (see `needs_a_real_judge` in conftest.py); with --llmeval-judge-model it gates.
"""

from __future__ import annotations

import pytest

from pytest_llmeval import LLMEvalAssertionError, assert_faithful


@pytest.mark.llmeval(dataset="evals/hallucination.yaml")
@pytest.mark.usefixtures("needs_a_real_judge")
def test_faithfulness_check_catches_hallucinations(eval_example):
    answer = eval_example.metadata["answer"]
    if eval_example.metadata["faithful"]:
        assert_faithful(answer)  # against the example's context: the pricing facts
    else:
        # Every claim is checked against the context; the wrong one must be listed as unsupported.
        with pytest.raises(LLMEvalAssertionError, match="unsupported"):
            assert_faithful(answer)
