"""Deterministic and embedding metrics: exact match, token F1, semantic similarity, constraints.

Each metric has one implementation (a :class:`~pytest_llmeval.metric.Metric`
subclass) and three uses::

    @pytest.mark.llmeval(dataset="qa.jsonl", task=answer, metrics=[TokenF1(min_f1=0.6)])
    def test_qa(eval_output): ...                         # declared

    result = token_f1(output, "Paris")                    # function: a MetricResult
    assert_token_f1(output, min_f1=0.6)                   # assert: raises the report

References default to the running example's ``expected_output``.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_llmeval.constraints import ConstraintChecker, output_text
from pytest_llmeval.metric import (
    Metric,
    MetricResult,
    bullet_list,
    check,
    measure,
    record_result,
    shorten,
)

if TYPE_CHECKING:
    from pytest_llmeval.client import LLMClient
    from pytest_llmeval.dataset import EvalExample

__all__ = [
    "Constraints",
    "ExactMatch",
    "SemanticSimilarity",
    "TokenF1",
    "assert_constraints",
    "assert_exact_match",
    "assert_semantic_similarity",
    "assert_token_f1",
    "check_constraints",
    "cosine",
    "exact_match",
    "normalize_answer",
    "semantic_similarity",
    "token_f1",
    "token_scores",
]

_TOKENS_SHOWN = 20  # missing/extra tokens listed in a token F1 report

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


# -- pure cores -----------------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD answer normalisation: lower-case, drop punctuation, drop a/an/the, collapse whitespace.

    Punctuation is SQuAD's ASCII set plus every Unicode punctuation character:
    chat models write curly quotes and dashes (``don’t``, ``—``) where references
    have straight ones, and the two must normalise alike.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCTUATION and not unicodedata.category(ch).startswith("P"))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_scores(prediction: str, reference: str) -> tuple[float, float, float]:
    """``(precision, recall, f1)`` over the multisets of normalised tokens.

    Both empty: 1.0 each (nothing expected, nothing said); one empty: 0.0 each.
    """
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    if not pred and not ref:
        return 1.0, 1.0, 1.0
    if not pred or not ref:
        return 0.0, 0.0, 0.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0, 0.0, 0.0
    precision = common / len(pred)
    recall = common / len(ref)
    return precision, recall, 2 * precision * recall / (precision + recall)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors; 0.0 when either has zero length (no direction to compare)."""
    if len(a) != len(b):
        raise ValueError(f"cosine: vectors of different lengths ({len(a)} and {len(b)})")
    norm_a = math.sqrt(math.fsum(x * x for x in a))
    norm_b = math.sqrt(math.fsum(y * y for y in b))
    if norm_a == 0.0 or norm_b == 0.0:
        return 0.0
    value = math.fsum(x * y for x, y in zip(a, b)) / (norm_a * norm_b)
    # Rounding can land a hair outside [-1, 1] (1.0000000000000002 for identical vectors).
    return max(-1.0, min(1.0, value))


def _versus(value: float, threshold: float) -> str:
    """``0.42 < 0.60`` or ``0.91 >= 0.85``, with enough digits that the comparison reads true.

    Two decimals would print 0.8499 against 0.85 as ``0.85 < 0.85``.
    """
    op = ">=" if value >= threshold else "<"
    digits = 2
    while value != threshold and digits < 6 and f"{value:.{digits}f}" == f"{threshold:.{digits}f}":
        digits += 1
    return f"{value:.{digits}f} {op} {threshold:.{digits}f}"


def _check_range(metric: str, param: str, value: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{metric}: {param} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _reference(metric: str, given: str | None, example: EvalExample | None) -> str:
    """The reference to compare with: the one given, else the example's ``expected_output``."""
    if given is not None:
        return given
    if example is not None and example.expected_output is not None:
        return example.expected_output
    which = f"example {example.id!r} has no expected_output" if example is not None else "no example is running"
    raise ValueError(
        f"{metric}: no reference to compare with ({which}); pass reference=..., or give the example an "
        "expected_output"
    )


def _text_sections(output: str, reference: str | None, example: EvalExample | None) -> list[tuple[str, str]]:
    """The input (when an example is known), the reference and the output, shortened."""
    sections = [("input", shorten(example.input_text))] if example is not None else []
    if reference is not None:
        sections.append(("reference", shorten(reference)))
    sections.append(("output", shorten(output)))
    return sections


def _ordered(counter: Counter[str], tokens: list[str]) -> list[str]:
    """The tokens of ``counter`` in the order they first appear in ``tokens``, ``xN`` for repeats."""
    seen: list[str] = []
    for token in tokens:
        if counter[token] > 0 and token not in seen:
            seen.append(token)
    shown = [t if counter[t] == 1 else f"{t} x{counter[t]}" for t in seen[:_TOKENS_SHOWN]]
    if len(seen) > _TOKENS_SHOWN:
        shown.append(f"... [+{len(seen) - _TOKENS_SHOWN} more]")
    return shown


# -- exact match ------------------------------------------------------------------------------------


class ExactMatch(Metric):
    """1.0 when the output equals the reference, else 0.0.

    For labels, extracted entities and other structured answers; free text
    almost never matches exactly (use :class:`TokenF1` or
    :class:`SemanticSimilarity`). ``normalize=True`` compares after SQuAD
    normalisation (:func:`normalize_answer`). The reference defaults to the
    example's ``expected_output``.
    """

    name: ClassVar[str] = "exact_match"

    def __init__(self, normalize: bool = False, reference: str | None = None) -> None:
        self.normalize = normalize
        self.reference = reference

    def compute(self, output: Any, *, example: EvalExample | None) -> MetricResult:
        text = output_text(output, self.name)
        reference = _reference(self.name, self.reference, example)
        got, want = (normalize_answer(text), normalize_answer(reference)) if self.normalize else (text, reference)
        passed = got == want
        mode = " (normalized)" if self.normalize else ""
        sections = _text_sections(text, reference, example)
        if not passed:
            sections.extend(_mismatch_sections(got, want, normalized=self.normalize))
        return MetricResult(
            name=self.name, value=1.0 if passed else 0.0, passed=passed, verdict="pass" if passed else "fail",
            summary=f"exact match{mode}" if passed else f"exact match failed{mode}", threshold=1.0,
            sections=sections, details={"normalize": self.normalize},
        )


def _mismatch_sections(got: str, want: str, *, normalized: bool) -> list[tuple[str, str]]:
    """Where the compared strings part, and a hint when only normalisation separates them."""
    at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    label = "normalized text differs" if normalized else "differs"
    sections = [(label, f"at char {at}: reference {want[at:at + 30]!r}, output {got[at:at + 30]!r}")]
    if not normalized and normalize_answer(got) == normalize_answer(want):
        sections.append(("hint", "equal after normalisation (case, punctuation, articles, whitespace); "
                                 "use normalize=True if those differences do not matter"))
    return sections


def exact_match(output: Any, reference: str | None, *, normalize: bool = False) -> MetricResult:
    """Exact match of ``output`` and ``reference`` as a :class:`MetricResult` (value 1.0 or 0.0)."""
    return measure(ExactMatch(normalize=normalize, reference=reference), output)


def assert_exact_match(output: Any, reference: str | None = None, *, normalize: bool = False) -> MetricResult:
    """Fail with a report unless ``output`` equals the reference (default: the example's ``expected_output``)."""
    __tracebackhide__ = True  # the failure is the caller's line, not this helper
    return check(ExactMatch(normalize=normalize, reference=reference), output)


# -- token F1 ------------------------------------------------------------------------------------------


class TokenF1(Metric):
    """SQuAD token F1 of output and reference; passes when F1 >= ``min_f1``.

    Both texts are normalised (:func:`normalize_answer`) and split on whitespace;
    precision is the share of output tokens found in the reference, recall the
    share of reference tokens found in the output (as multisets). The reference
    defaults to the example's ``expected_output``.
    """

    name: ClassVar[str] = "token_f1"

    def __init__(self, min_f1: float = 0.5, reference: str | None = None) -> None:
        self.min_f1 = _check_range("TokenF1", "min_f1", min_f1, 0.0, 1.0)
        self.reference = reference

    def compute(self, output: Any, *, example: EvalExample | None) -> MetricResult:
        text = output_text(output, self.name)
        reference = _reference(self.name, self.reference, example)
        precision, recall, f1 = token_scores(text, reference)
        passed = f1 >= self.min_f1
        sections = _text_sections(text, reference, example)
        if not passed:
            pred, ref = normalize_answer(text).split(), normalize_answer(reference).split()
            missing = _ordered(Counter(ref) - Counter(pred), ref)
            extra = _ordered(Counter(pred) - Counter(ref), pred)
            sections.append(("missing tokens", ", ".join(missing) or "(none)"))
            sections.append(("extra tokens", ", ".join(extra) or "(none)"))
        return MetricResult(
            name=self.name, value=f1, passed=passed, verdict="pass" if passed else "fail",
            summary=f"token F1 {_versus(f1, self.min_f1)} (precision {precision:.2f}, recall {recall:.2f})",
            threshold=self.min_f1, sections=sections, details={"precision": precision, "recall": recall},
        )


def token_f1(output: Any, reference: str | None, *, min_f1: float = 0.5) -> MetricResult:
    """Token F1 of ``output`` against ``reference``; passes at ``min_f1`` (0.5 unless given)."""
    return measure(TokenF1(min_f1=min_f1, reference=reference), output)


def assert_token_f1(output: Any, reference: str | None = None, *, min_f1: float = 0.5) -> MetricResult:
    """Fail with a report unless token F1 >= ``min_f1`` (reference default: the example's ``expected_output``)."""
    __tracebackhide__ = True  # the failure is the caller's line, not this helper
    return check(TokenF1(min_f1=min_f1, reference=reference), output)


# -- semantic similarity ------------------------------------------------------------------------------


class SemanticSimilarity(Metric):
    """Cosine similarity of the output's and the reference's embeddings; passes at ``threshold``.

    Embeddings come from the client's embedding model (``--llmeval-embedding-model``)
    or ``model``; each text's vector is cached, so a rerun sends no requests.
    0.85 is a common starting point, but calibrate it on your golden set:
    what counts as "similar" depends on the embedding model and the task.
    """

    name: ClassVar[str] = "semantic_similarity"

    def __init__(self, threshold: float = 0.85, reference: str | None = None, model: str | None = None) -> None:
        self.threshold = _check_range("SemanticSimilarity", "threshold", threshold, -1.0, 1.0)
        self.reference = reference
        self.model = model

    async def acompute(self, output: Any, *, example: EvalExample | None, llm: LLMClient) -> MetricResult:
        text = output_text(output, self.name)
        reference = _reference(self.name, self.reference, example)
        output_vector, reference_vector = await llm.aembed([text, reference], model=self.model)
        similarity = cosine(output_vector, reference_vector)
        passed = similarity >= self.threshold
        embedding_model = self.model or llm.settings.embedding_model
        sections = _text_sections(text, reference, example)
        sections.append(("similarity", f"cosine {similarity:.3f}, threshold {self.threshold:.2f}"
                                       + (f", embeddings from {embedding_model}" if embedding_model else "")))
        zero = [what for what, vector in (("output", output_vector), ("reference", reference_vector))
                if not any(vector)]
        if zero:
            # A zero vector has no direction: the similarity is undefined, and 0 is the honest floor.
            sections.append(("note", f"the {' and '.join(zero)} embedding is a zero vector; similarity taken as 0"))
        details: dict[str, Any] = {"embedding_model": embedding_model} if embedding_model else {}
        return MetricResult(
            name=self.name, value=similarity, passed=passed, verdict="pass" if passed else "fail",
            summary=f"semantic similarity {_versus(similarity, self.threshold)}", threshold=self.threshold,
            sections=sections, details=details,
        )


def semantic_similarity(output: Any, reference: str | None, *, threshold: float = 0.85, model: str | None = None,
                        llm: LLMClient | None = None) -> MetricResult:
    """Embedding similarity of ``output`` and ``reference``; passes at ``threshold``.

    ``llm`` defaults to the running item's client (outside pytest, one configured
    from ``LLMEVAL_EMBEDDING_MODEL`` and ``LLMEVAL_API_BASE``).
    """
    return measure(SemanticSimilarity(threshold=threshold, reference=reference, model=model), output, llm)


def assert_semantic_similarity(output: Any, reference: str | None = None, threshold: float = 0.85, *,
                               model: str | None = None, llm: LLMClient | None = None) -> MetricResult:
    """Fail with a report unless the embedding similarity reaches ``threshold``
    (reference default: the example's ``expected_output``)."""
    __tracebackhide__ = True  # the failure is the caller's line, not this helper
    return check(SemanticSimilarity(threshold=threshold, reference=reference, model=model), output, llm=llm)


# -- constraints --------------------------------------------------------------------------------------


class Constraints(Metric):
    """Every check of a :class:`~pytest_llmeval.constraints.ConstraintChecker`.

    The value is the share of checks passed; the metric passes only when all
    pass, and its report lists every failed check with its reason or error.
    """

    name: ClassVar[str] = "constraints"

    def __init__(self, checker: ConstraintChecker) -> None:
        if not isinstance(checker, ConstraintChecker):
            raise TypeError(f"Constraints(checker): expected a ConstraintChecker, got {type(checker).__name__}")
        self.checker = checker

    def compute(self, output: Any, *, example: EvalExample | None) -> MetricResult:
        if not len(self.checker):
            raise ValueError("constraints: the checker has no checks; add some, e.g. "
                             "ConstraintChecker().max_words(200).valid_json()")
        report = self.checker.check(output)
        total, failed = len(report.results), report.failed
        passed = not failed
        if passed:
            summary = f"all {total} constraints passed"
        else:
            summary = f"{len(failed)} of {total} constraints failed: {', '.join(r.name for r in failed)}"
        sections: list[tuple[str, str]] = []
        if failed:
            sections.append(("failed", bullet_list([r.line() for r in failed])))
        sections.append(("passed", ", ".join(r.name for r in report.passed) or "(none)"))
        try:
            shown = output_text(output, self.name)
        except TypeError:
            shown = repr(output)  # a custom check may take structured output; show it as it is
        sections.extend(_text_sections(shown, None, example))
        return MetricResult(
            name=self.name, value=(total - len(failed)) / total, passed=passed,
            verdict="pass" if passed else "fail", summary=summary, threshold=1.0, sections=sections,
            details={"checks": total, "failed": [r.name for r in failed]},
        )


def check_constraints(output: Any, checker: ConstraintChecker) -> MetricResult:
    """Every check of ``checker`` on ``output``, as a :class:`MetricResult` (value: share passed)."""
    return measure(Constraints(checker), output)


def assert_constraints(output: Any, checker: ConstraintChecker) -> MetricResult:
    """Fail with a report listing every failed check unless all of ``checker``'s checks pass."""
    __tracebackhide__ = True  # the failure is the caller's line, not this helper
    return check(Constraints(checker), output)
