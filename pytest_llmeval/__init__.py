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
    "EvalExample": "pytest_llmeval.dataset",
    "EvalDataset": "pytest_llmeval.dataset",
    "load_dataset": "pytest_llmeval.dataset",
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
