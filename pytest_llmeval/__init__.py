"""pytest-llmeval: regression-test LLM applications with pytest.

The public API is listed in ``__all__``. Names are imported on first use
(PEP 562), so ``import pytest_llmeval`` stays cheap for projects that have the
plugin installed but run no evals.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # datasets
    "EvalExample": "pytest_llmeval.dataset",
    "EvalDataset": "pytest_llmeval.dataset",
    "load_dataset": "pytest_llmeval.dataset",
    # model calls
    "Completion": "pytest_llmeval.client",
    "LLMClient": "pytest_llmeval.client",
    "ClientSettings": "pytest_llmeval.client",
    # metrics: objects for metrics=[...], functions returning results, assert forms
    "Metric": "pytest_llmeval.metric",
    "MetricResult": "pytest_llmeval.metric",
    "ExactMatch": "pytest_llmeval.metrics",
    "TokenF1": "pytest_llmeval.metrics",
    "SemanticSimilarity": "pytest_llmeval.metrics",
    "Constraints": "pytest_llmeval.metrics",
    "exact_match": "pytest_llmeval.metrics",
    "token_f1": "pytest_llmeval.metrics",
    "semantic_similarity": "pytest_llmeval.metrics",
    "check_constraints": "pytest_llmeval.metrics",
    "assert_exact_match": "pytest_llmeval.metrics",
    "assert_token_f1": "pytest_llmeval.metrics",
    "assert_semantic_similarity": "pytest_llmeval.metrics",
    "assert_constraints": "pytest_llmeval.metrics",
    "ConstraintChecker": "pytest_llmeval.constraints",
    "JudgeScore": "pytest_llmeval.judge",
    "Preferred": "pytest_llmeval.judge",
    "Faithfulness": "pytest_llmeval.judge",
    "judge_score": "pytest_llmeval.judge",
    "pairwise": "pytest_llmeval.judge",
    "faithfulness": "pytest_llmeval.judge",
    "assert_judge_score": "pytest_llmeval.judge",
    "assert_preferred": "pytest_llmeval.judge",
    "assert_faithful": "pytest_llmeval.judge",
    # errors and warnings
    "LLMEvalAssertionError": "pytest_llmeval.errors",
    "LLMEvalWarning": "pytest_llmeval.errors",
    "LLMCallError": "pytest_llmeval.errors",
    "DatasetError": "pytest_llmeval.errors",
    "Record": "pytest_llmeval.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_llmeval' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
