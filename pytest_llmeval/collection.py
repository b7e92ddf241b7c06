"""``@pytest.mark.llmeval``: validating the marker and turning examples into items."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmeval.errors import LLMEvalUsageError, MarkerError

if TYPE_CHECKING:
    from pytest_llmeval.dataset import EvalExample

MARKER = "llmeval"
ALLOWED_KEYWORDS: tuple[str, ...] = ("dataset", "partitions", "tags", "task", "metrics")
# The argument that carries each item's example (a direct parameter of each item).
EXAMPLE_ARG = "eval_example"


@dataclass(frozen=True)
class LLMEvalSpec:
    """The validated keywords of one ``@pytest.mark.llmeval``."""

    dataset: str
    partitions: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    task: Callable[..., Any] | None = None
    metrics: tuple[Any, ...] = ()


def parse_marker(mark: pytest.Mark, where: str) -> LLMEvalSpec:
    """Validate a marker's arguments; raise :class:`MarkerError` naming what is allowed."""
    allowed = ", ".join(ALLOWED_KEYWORDS)
    if mark.args:
        raise MarkerError(
            f"{where}: @pytest.mark.llmeval takes keyword arguments only, got positional {mark.args[0]!r}; "
            f"write @pytest.mark.llmeval(dataset={mark.args[0]!r}). Allowed keywords: {allowed}"
        )
    unknown = sorted(set(mark.kwargs) - set(ALLOWED_KEYWORDS))
    if unknown:
        raise MarkerError(
            f"{where}: @pytest.mark.llmeval got unknown keyword {unknown[0]!r}. Allowed keywords: {allowed}"
        )
    dataset = mark.kwargs.get("dataset")
    if dataset is None:
        raise MarkerError(
            f"{where}: @pytest.mark.llmeval needs dataset=, the path of a .jsonl/.json/.yaml/.csv file "
            f"relative to the test file. Allowed keywords: {allowed}"
        )
    if not isinstance(dataset, (str, os.PathLike)):
        raise MarkerError(f"{where}: @pytest.mark.llmeval(dataset=...) must be a path, got {type(dataset).__name__}")
    task = mark.kwargs.get("task")
    if task is not None and not callable(task):
        raise MarkerError(
            f"{where}: @pytest.mark.llmeval(task=...) must be a callable (example, llm) -> output, "
            f"got {type(task).__name__}"
        )
    metrics = mark.kwargs.get("metrics") or ()
    if not isinstance(metrics, (list, tuple)):
        metrics = (metrics,)
    for metric in metrics:
        if not callable(getattr(metric, "aevaluate", None)):
            raise MarkerError(
                f"{where}: @pytest.mark.llmeval(metrics=[...]) takes metric objects such as JudgeScore(min_score=4), "
                f"ExactMatch() or TokenF1(min_f1=0.6); got {metric!r}"
            )
    return LLMEvalSpec(
        dataset=os.fspath(dataset),
        partitions=_names(mark.kwargs.get("partitions"), "partitions", where),
        tags=_names(mark.kwargs.get("tags"), "tags", where),
        task=task,
        metrics=tuple(metrics),
    )


def _names(value: Any, keyword: str, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise MarkerError(f"{where}: @pytest.mark.llmeval({keyword}=...) must be a string or a list of strings, got {value!r}")


def has_marker(collector: pytest.Collector, obj: object) -> bool:
    """Whether a function about to be collected carries (or inherits) the llmeval marker."""
    own = getattr(obj, "pytestmark", [])
    if not isinstance(own, list):
        own = [own]
    if any(getattr(m, "name", None) == MARKER for m in own):
        return True
    return collector.get_closest_marker(MARKER) is not None


def select(examples: Sequence[EvalExample], spec: LLMEvalSpec, where: str, known: Sequence[str]) -> list[EvalExample]:
    """Apply the marker's ``partitions=`` and ``tags=`` filters."""
    chosen = list(examples)
    if spec.partitions is not None:
        bad = [p for p in spec.partitions if p not in known]
        if bad:
            raise MarkerError(
                f"{where}: @pytest.mark.llmeval(partitions=...) names unknown partition {bad[0]!r}; "
                f"use one of: {', '.join(known)} (ini llmeval_partitions sets the list)"
            )
        chosen = [e for e in chosen if e.partition in spec.partitions]
    if spec.tags is not None:
        wanted = set(spec.tags)
        chosen = [e for e in chosen if wanted.intersection(e.tags)]
    return chosen


def dataset_path(test_file: Path, dataset: str) -> Path:
    """Dataset paths are relative to the test file that names them."""
    path = Path(dataset)
    return path if path.is_absolute() else test_file.parent / path


class InvalidLLMEvalTest(pytest.Item):
    """Stands in for a test whose marker or dataset is unusable.

    It errors with the problem and its fix when run, so the rest of the session
    still runs (a true collection error would interrupt everything).
    """

    def __init__(self, *, error: LLMEvalUsageError, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:  # pragma: no cover - setup always raises first
        raise self.error

    def setup(self) -> None:
        raise self.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, LLMEvalUsageError):
            return f"pytest-llmeval: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name
