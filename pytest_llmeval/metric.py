"""What every metric shares: the result model, its report, and evaluation in three forms.

A metric object (``JudgeScore(min_score=4)``, ``ExactMatch()``, ...) has one
implementation and three uses:

- declared in ``@pytest.mark.llmeval(metrics=[...])``: the pipeline awaits
  :meth:`Metric.aevaluate` right after the item's task;
- called as a function (``judge_score(...)``) returning a :class:`MetricResult`;
- through an ``assert_*`` function, which evaluates it inline with
  :func:`check` and raises :class:`~pytest_llmeval.errors.LLMEvalAssertionError`
  carrying the report.

Every result computed inside an item lands on that item's record.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from pytest_llmeval.errors import LLMEvalAssertionError
from pytest_llmeval.context import current_item

if TYPE_CHECKING:
    from pytest_llmeval.client import LLMClient
    from pytest_llmeval.dataset import EvalExample

Verdict = Literal["pass", "fail", "inconclusive", "info"]

OUTPUT_LIMIT = 600  # characters of input/output shown in a report: enough to act on, never a flood


def shorten(text: str | None, limit: int = OUTPUT_LIMIT) -> str:
    """Text cut to ``limit`` characters, saying how much was left out."""
    if text is None:
        return "(none)"
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [+{len(text) - limit} chars]"


class Score(float):
    """A float that remembers the result it came from.

    ``assert result.score >= 4`` then gets the full report through
    ``pytest_assertrepr_compare`` (pytest only sees the two operands).
    """

    result: MetricResult

    def __new__(cls, value: float, result: MetricResult) -> Score:
        obj = super().__new__(cls, value)
        obj.result = result
        return obj

    def __reduce__(self) -> Any:  # pickles (and copies) as a plain float
        return (float, (float(self),))


class MetricResult(BaseModel):
    """The outcome of one metric on one output.

    ``value`` is the number (a judge's mean score, an F1, a similarity);
    ``passed`` is ``None`` for an inconclusive or informational result;
    ``summary`` is the one-line verdict a report starts with; ``sections`` are
    the labelled parts that follow (criteria, input, output, reasoning, ...);
    ``details`` is plain data stored on the record (samples, judge identity, ...).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    value: float | None
    passed: bool | None
    verdict: Verdict
    summary: str
    threshold: float | None = None
    sections: list[tuple[str, str]] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def score(self) -> Score | None:
        """``value`` as a :class:`Score` (a float), or None when there is no number."""
        return None if self.value is None else Score(self.value, self)

    def report(self, baseline: float | None = None) -> str:
        """The failure report: verdict line first, then one labelled section per part."""
        lines = [self.summary]
        sections = list(self.sections)
        if baseline is not None:
            sections.append(("baseline", f"{baseline:g} ({self.name} of this case in the baseline)"))
        width = max((len(label) for label, _ in sections), default=0) + 1
        for label, text in sections:
            body = str(text).splitlines() or [""]
            lines.append(f"  {label + ':':<{width}} {body[0]}")
            lines.extend(f"  {'':<{width}} {line}" for line in body[1:])
        return "\n".join(lines)

    def record_entry(self) -> dict[str, Any]:
        """Keyword arguments for ``Record.add_metric``."""
        return {"name": self.name, "value": self.value, "passed": self.passed, "verdict": self.verdict,
                **self.details}


def bullet_list(items: Sequence[str]) -> str:
    """Items as ``- item`` lines (for report sections)."""
    return "\n".join(f"- {item}" for item in items) if items else "(none)"


class Metric:
    """Base class of metric objects.

    Subclasses set ``name`` and implement :meth:`compute` (pure, sync) or
    :meth:`acompute` (needs model calls). ``example`` supplies defaults
    (references from ``expected_output``, grounding from ``context``, criteria).
    """

    name: ClassVar[str] = "metric"

    def compute(self, output: Any, *, example: EvalExample | None) -> MetricResult:
        raise NotImplementedError

    async def acompute(self, output: Any, *, example: EvalExample | None, llm: LLMClient) -> MetricResult:
        return self.compute(output, example=example)

    @property
    def needs_llm(self) -> bool:
        return type(self).acompute is not Metric.acompute

    async def aevaluate(self, output: Any, *, example: EvalExample | None = None,
                        llm: LLMClient | None = None) -> MetricResult:
        """Evaluate from async code (the pipeline calls this)."""
        if self.needs_llm:
            return await self.acompute(output, example=example, llm=llm or default_client())
        return self.compute(output, example=example)

    def evaluate(self, output: Any, *, example: EvalExample | None = None,
                 llm: LLMClient | None = None) -> MetricResult:
        """Evaluate synchronously (function and assert forms)."""
        if not self.needs_llm:
            return self.compute(output, example=example)
        client = llm or default_client()
        return client.runtime.run(self.acompute(output, example=example, llm=client))

    def __repr__(self) -> str:
        params = inspect.signature(type(self).__init__).parameters
        shown = [f"{p}={getattr(self, p)!r}" for p in params if p != "self" and hasattr(self, p)]
        return f"{type(self).__name__}({', '.join(shown)})"


def default_client() -> LLMClient:
    """The current item's client inside pytest; outside, a client configured from the environment.

    Outside pytest, ``LLMEVAL_MODEL``, ``LLMEVAL_JUDGE_MODEL``, ``LLMEVAL_EMBEDDING_MODEL``
    and ``LLMEVAL_API_BASE`` configure it.
    """
    ctx = current_item.get()
    if ctx is not None and ctx.llm is not None:
        return ctx.llm
    import os

    from pytest_llmeval.client import ClientSettings, LLMClient

    return LLMClient.create(ClientSettings(
        model=os.environ.get("LLMEVAL_MODEL"), judge_model=os.environ.get("LLMEVAL_JUDGE_MODEL"),
        embedding_model=os.environ.get("LLMEVAL_EMBEDDING_MODEL"), api_base=os.environ.get("LLMEVAL_API_BASE"),
    ))


def current_example() -> EvalExample | None:
    """The example of the item running now, if any."""
    ctx = current_item.get()
    return None if ctx is None else ctx.example


def record_result(result: MetricResult) -> None:
    """Put a result on the current item's record (no-op outside an llmeval item)."""
    ctx = current_item.get()
    if ctx is not None and ctx.record is not None:
        entry = result.record_entry()
        ctx.record.add_metric(entry.pop("name"), entry.pop("value"), entry.pop("passed"), **entry)


def baseline_value(name: str) -> float | None:
    """This case's stored baseline value of a metric, when a baseline is loaded."""
    ctx = current_item.get()
    if ctx is None or not ctx.baseline:
        return None
    value = ctx.baseline.get("scores", {}).get(name)
    return None if value is None else float(value)


def measure(metric: Metric, output: Any, llm: LLMClient | None = None) -> MetricResult:
    """The function form of a metric: evaluate with the current item's example (if any),
    record the result on its record, and return it."""
    result = metric.evaluate(output, example=current_example(), llm=llm)
    record_result(result)
    return result


def check(metric: Metric, output: Any, *, llm: LLMClient | None = None) -> MetricResult:
    """Evaluate inline, record the result, and raise the report if it did not pass.

    This is what every ``assert_*`` function does. An inconclusive result fails
    unless ``--llmeval-inconclusive=pass`` (the metric sets ``passed`` accordingly).
    """
    __tracebackhide__ = True
    result = measure(metric, output, llm)
    if result.passed is False:
        raise LLMEvalAssertionError(result.report(baseline_value(result.name)))
    return result


def assertrepr(op: str, left: object, right: object) -> list[str] | None:
    """``pytest_assertrepr_compare`` for :class:`Score` operands; None at once for anything else."""
    score = left if isinstance(left, Score) else right if isinstance(right, Score) else None
    if score is None:
        return None
    lines = [f"{float(left)!r} {op} {float(right)!r}" if isinstance(left, float) else f"{left!r} {op} {right!r}"]
    lines.extend(score.result.report(baseline_value(score.result.name)).splitlines())
    return lines
