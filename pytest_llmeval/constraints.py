"""Programmatic format and constraint checks: length bounds, phrases, regexes, JSON.

A :class:`ConstraintChecker` holds named checks; :meth:`ConstraintChecker.check`
runs every one of them (a failing or raising check never stops the others) and
returns a :class:`ConstraintReport`. The metric form is
:class:`pytest_llmeval.metrics.Constraints`, the assert form
:func:`pytest_llmeval.metrics.assert_constraints`::

    checker = (ConstraintChecker()
               .max_words(200)
               .must_not_contain("CompetitorA", "OtherBrand", name="no_competitors")
               .add("polite_closing", lambda text: "let me know" in text.lower()))
    checker.check(answer).all_passed
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict

CheckFn = Callable[[Any], "bool | str"]

_SNIPPET = 30  # characters shown either side of a forbidden phrase: enough to find it in the output
_MAX_ERRORS = 5  # pydantic errors listed in a reason before "and N more"


def output_text(output: Any, what: str) -> str:
    """``output`` as text: a string, or the ``.text`` of a ``Completion``.

    Anything else is a ``TypeError`` naming ``what`` needed text, rather than a
    silent ``str(output)`` that would compare a dict's repr with a reference.
    """
    if isinstance(output, str):
        return output
    text = getattr(output, "text", None)
    if isinstance(text, str):
        return text
    raise TypeError(
        f"{what} checks text, got {type(output).__name__}; return a string from task=, "
        "or pass the text field of a structured output (e.g. output['answer'])"
    )


class CheckResult(BaseModel):
    """The outcome of one named check.

    ``reason`` says why a check failed (from the built-in, or the string a custom
    check returned); ``error`` is set instead when the check raised
    (``"TypeError: ..."``).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    reason: str | None = None
    error: str | None = None

    def line(self) -> str:
        """``name: why`` for a report."""
        if self.passed:
            return f"{self.name}: passed"
        if self.error is not None:
            return f"{self.name}: raised {self.error}"
        return f"{self.name}: {self.reason or 'check returned False'}"


class ConstraintReport(BaseModel):
    """Every check's result, in the order the checks were added."""

    model_config = ConfigDict(frozen=True)

    results: list[CheckResult]

    @property
    def all_passed(self) -> bool:
        """True when every check passed (also when there are none)."""
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that failed or raised, in order."""
        return [r for r in self.results if not r.passed]

    @property
    def passed(self) -> list[CheckResult]:
        """The checks that passed, in order."""
        return [r for r in self.results if r.passed]


@dataclass(frozen=True)
class _Check:
    name: str
    fn: CheckFn
    description: str | None


class ConstraintChecker:
    """Named checks on an output, added with chainable methods.

    :meth:`add` takes any ``fn(output)`` returning ``True`` (passed), ``False``
    (failed) or a string (failed, the string being the reason). The built-ins
    (:meth:`max_words`, :meth:`must_not_contain`, :meth:`json_matches`, ...) get a
    default name such as ``max_words(200)``; pass ``name=`` to choose your own.
    Names are unique within a checker: reports list failures by name.
    """

    def __init__(self) -> None:
        self._checks: list[_Check] = []

    # -- general -------------------------------------------------------------------------------

    def add(self, name: str, fn: CheckFn, description: str | None = None) -> ConstraintChecker:
        """Add a check named ``name``; returns the checker, for chaining.

        ``description`` is shown when the check returns ``False`` without a reason.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"ConstraintChecker.add: name must be a non-empty string, got {name!r}")
        if not callable(fn):
            raise TypeError(f"ConstraintChecker.add({name!r}): fn must be callable, got {type(fn).__name__}")
        if any(c.name == name for c in self._checks):
            raise ValueError(
                f"ConstraintChecker.add: a check named {name!r} already exists; pass a different name "
                "(built-ins take name=...)"
            )
        self._checks.append(_Check(name, fn, description))
        return self

    def check(self, output: Any) -> ConstraintReport:
        """Run every check on ``output``; a check that raises counts as failed with its error."""
        return ConstraintReport(results=[_run(c, output) for c in self._checks])

    @property
    def names(self) -> list[str]:
        """The check names, in order."""
        return [c.name for c in self._checks]

    def __len__(self) -> int:
        return len(self._checks)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __repr__(self) -> str:
        return f"ConstraintChecker({self.names!r})"

    # -- built-ins: length -----------------------------------------------------------------------

    def max_words(self, n: int, *, name: str | None = None) -> ConstraintChecker:
        """At most ``n`` whitespace-separated words."""
        return self._bound("max_words", n, name, lambda t: len(t.split()), "words", at_most=True)

    def min_words(self, n: int, *, name: str | None = None) -> ConstraintChecker:
        """At least ``n`` whitespace-separated words."""
        return self._bound("min_words", n, name, lambda t: len(t.split()), "words", at_most=False)

    def max_chars(self, n: int, *, name: str | None = None) -> ConstraintChecker:
        """At most ``n`` characters."""
        return self._bound("max_chars", n, name, len, "chars", at_most=True)

    def min_chars(self, n: int, *, name: str | None = None) -> ConstraintChecker:
        """At least ``n`` characters."""
        return self._bound("min_chars", n, name, len, "chars", at_most=False)

    def _bound(self, kind: str, n: int, name: str | None, measure: Callable[[str], int], unit: str,
               *, at_most: bool) -> ConstraintChecker:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{kind}(n): n must be a non-negative integer, got {n!r}")
        label = name or f"{kind}({n})"

        def fn(output: Any) -> bool | str:
            size = measure(output_text(output, label))
            if at_most and size > n:
                return f"{size} {unit} > {n}"
            if not at_most and size < n:
                return f"{size} {unit} < {n}"
            return True

        return self.add(label, fn, f"{'at most' if at_most else 'at least'} {n} {unit}")

    # -- built-ins: phrases and patterns --------------------------------------------------------

    def must_contain_any(self, *phrases: str, case_sensitive: bool = False,
                         name: str | None = None) -> ConstraintChecker:
        """At least one of ``phrases`` occurs (case-insensitively unless ``case_sensitive``)."""
        _require_phrases("must_contain_any", phrases)
        label = name or f"must_contain_any({', '.join(map(repr, phrases))})"

        def fn(output: Any) -> bool | str:
            text = output_text(output, label)
            if any(_find(text, p, case_sensitive) >= 0 for p in phrases):
                return True
            return f"none of {', '.join(map(repr, phrases))} found"

        return self.add(label, fn, f"contains one of {', '.join(map(repr, phrases))}")

    def must_not_contain(self, *phrases: str, name: str | None = None) -> ConstraintChecker:
        """None of ``phrases`` occurs (case-insensitively); the reason names each phrase found, in context."""
        _require_phrases("must_not_contain", phrases)
        label = name or f"must_not_contain({', '.join(map(repr, phrases))})"

        def fn(output: Any) -> bool | str:
            text = output_text(output, label)
            found = []
            for phrase in phrases:
                at = _find(text, phrase, case_sensitive=False)
                if at >= 0:
                    found.append(f"{phrase!r} in {_snippet(text, at, len(phrase))!r}")
            return f"found {'; '.join(found)}" if found else True

        return self.add(label, fn, f"contains none of {', '.join(map(repr, phrases))}")

    def matches(self, regex: str | re.Pattern[str], flags: int = 0, *,
                name: str | None = None) -> ConstraintChecker:
        """``re.search(regex, output, flags)`` finds a match. The regex is compiled now, so a bad one fails early."""
        pattern = regex if isinstance(regex, re.Pattern) else re.compile(regex, flags)
        # Shown as /pattern/: a repr would double every backslash of the regex.
        label = name or f"matches(/{pattern.pattern}/)"

        def fn(output: Any) -> bool | str:
            return True if pattern.search(output_text(output, label)) else f"no match for /{pattern.pattern}/"

        return self.add(label, fn, f"a match for /{pattern.pattern}/")

    # -- built-ins: JSON -------------------------------------------------------------------------

    def valid_json(self, *, name: str | None = None) -> ConstraintChecker:
        """The output parses as JSON."""
        label = name or "valid_json"

        def fn(output: Any) -> bool | str:
            _value, problem = _parse_json(output_text(output, label))
            return problem or True

        return self.add(label, fn, "valid JSON")

    def json_matches(self, model: type[BaseModel], *, name: str | None = None) -> ConstraintChecker:
        """The output is JSON that validates against the pydantic ``model``; the reason lists the errors."""
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"json_matches(model): model must be a pydantic BaseModel class, got {model!r}")
        label = name or f"json_matches({model.__name__})"

        def fn(output: Any) -> bool | str:
            text = output_text(output, label)
            _value, problem = _parse_json(text)
            if problem:
                return problem
            try:
                # JSON-mode validation: what the model accepts from JSON (not from Python objects).
                model.model_validate_json(text)
            except pydantic.ValidationError as exc:
                return _validation_summary(exc, model.__name__)
            return True

        return self.add(label, fn, f"JSON matching {model.__name__}")


def _run(check: _Check, output: Any) -> CheckResult:
    try:
        verdict = check.fn(output)
    except Exception as exc:  # a broken check is a failed check, and the others still run
        return CheckResult(name=check.name, passed=False, error=f"{type(exc).__name__}: {exc}")
    if isinstance(verdict, str):
        return CheckResult(name=check.name, passed=False, reason=verdict or check.description)
    if verdict is None:
        # Almost always a check that forgot its return statement: say so instead of failing silently.
        return CheckResult(name=check.name, passed=False,
                           reason="the check returned None; return True/False, or a string giving the failure reason")
    if bool(verdict):
        return CheckResult(name=check.name, passed=True)
    reason = f"check returned False (expected {check.description})" if check.description else None
    return CheckResult(name=check.name, passed=False, reason=reason)


def _require_phrases(kind: str, phrases: tuple[str, ...]) -> None:
    if not phrases or not all(isinstance(p, str) and p for p in phrases):
        raise ValueError(f"{kind}(*phrases): give one or more non-empty strings, got {phrases!r}")


def _find(text: str, phrase: str, case_sensitive: bool) -> int:
    # casefold() rather than lower(): "STRASSE" must match "straße". It can change the
    # length of the text, so the position is only exact for case-preserving text.
    if case_sensitive:
        return text.find(phrase)
    return text.casefold().find(phrase.casefold())


def _snippet(text: str, at: int, length: int) -> str:
    start, end = max(at - _SNIPPET, 0), min(at + length + _SNIPPET, len(text))
    return f"{'...' if start else ''}{text[start:end]}{'...' if end < len(text) else ''}"


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _parse_json(text: str) -> tuple[Any, str | None]:
    """The parsed value, or a reason saying why the text is not JSON."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc}"
        if text.lstrip().startswith("```"):
            # The commonest cause with chat models: JSON wrapped in a Markdown fence.
            reason += " (the output is wrapped in a ``` code fence)"
        return None, reason


def _validation_summary(exc: pydantic.ValidationError, model_name: str) -> str:
    errors = exc.errors(include_url=False)
    parts = []
    for error in errors[:_MAX_ERRORS]:
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        got = "" if error["type"] == "missing" else f" (got {_clip(repr(error['input']))})"
        parts.append(f"{where}: {error['msg']}{got}")
    more = f"; and {len(errors) - _MAX_ERRORS} more" if len(errors) > _MAX_ERRORS else ""
    count = f"{len(errors)} validation error{'s' if len(errors) != 1 else ''}"
    return f"{count} for {model_name}: {'; '.join(parts)}{more}"
