"""ConstraintChecker: every built-in passing and failing, custom checks, raising checks, the metric."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from pytest_llmeval.constraints import CheckResult, ConstraintChecker, ConstraintReport
from pytest_llmeval.errors import LLMEvalAssertionError
from pytest_llmeval.metrics import Constraints, assert_constraints, check_constraints


class Ticket(BaseModel):
    order_id: int
    reason: str


def only(checker: ConstraintChecker, output: object) -> CheckResult:
    """The single check's result."""
    (result,) = checker.check(output).results
    return result


# -- built-ins: pass and fail --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checker", "output", "name", "reason"),
    [
        (ConstraintChecker().max_words(3), "one two three four", "max_words(3)", "4 words > 3"),
        (ConstraintChecker().min_words(3), "one two", "min_words(3)", "2 words < 3"),
        (ConstraintChecker().max_chars(5), "abcdef", "max_chars(5)", "6 chars > 5"),
        (ConstraintChecker().min_chars(5), "abcd", "min_chars(5)", "4 chars < 5"),
        (ConstraintChecker().must_contain_any("let me know", "happy to help"), "Bye.",
         "must_contain_any('let me know', 'happy to help')", "none of 'let me know', 'happy to help' found"),
        (ConstraintChecker().matches(r"\d{3}-\d{4}"), "call us", r"matches(/\d{3}-\d{4}/)",
         r"no match for /\d{3}-\d{4}/"),
    ],
)
def test_builtin_fails_with_name_and_reason(checker: ConstraintChecker, output: str, name: str, reason: str) -> None:
    assert only(checker, output) == CheckResult(name=name, passed=False, reason=reason)


@pytest.mark.parametrize(
    ("checker", "output"),
    [
        (ConstraintChecker().max_words(3), "one  two\nthree"),  # any whitespace separates words
        (ConstraintChecker().max_words(0), ""),
        (ConstraintChecker().min_words(3), "one two three"),
        (ConstraintChecker().max_chars(5), "abcde"),  # bounds are inclusive
        (ConstraintChecker().min_chars(5), "abcde"),
        (ConstraintChecker().must_contain_any("let me know", "happy to help"), "I'm HAPPY to help."),
        (ConstraintChecker().must_not_contain("CompetitorA"), "We are the best."),
        (ConstraintChecker().matches(r"\d{3}-\d{4}"), "call 555-1234 now"),
        (ConstraintChecker().matches(r"^refund", re.IGNORECASE), "Refunds take 5 days"),
        (ConstraintChecker().valid_json(), '{"a": [1, 2]}'),
        (ConstraintChecker().json_matches(Ticket), '{"order_id": 42, "reason": "late"}'),
    ],
)
def test_builtin_passes(checker: ConstraintChecker, output: str) -> None:
    result = only(checker, output)
    assert result.passed and result.reason is None and result.error is None


def test_must_contain_any_case_sensitive() -> None:
    checker = ConstraintChecker().must_contain_any("SKU", case_sensitive=True)
    assert not only(checker, "the sku is 12").passed
    assert only(checker, "the SKU is 12").passed


def test_must_not_contain_is_case_insensitive_and_names_every_phrase_found() -> None:
    checker = ConstraintChecker().must_not_contain("CompetitorA", "OtherBrand", "JIRA")
    result = only(checker, "Unlike competitora and OTHERBRAND, we ship fast.")
    assert result.name == "must_not_contain('CompetitorA', 'OtherBrand', 'JIRA')"
    assert not result.passed
    assert result.reason == (
        # 30 characters either side of each phrase: here the whole 48-character output.
        "found 'CompetitorA' in 'Unlike competitora and OTHERBRAND, we ship fast.'; "
        "'OtherBrand' in 'Unlike competitora and OTHERBRAND, we ship fast.'"
    )
    assert "JIRA" not in result.reason


def test_valid_json_reason_and_code_fence_hint() -> None:
    checker = ConstraintChecker().valid_json()
    plain = only(checker, "{'a': 1}")
    assert plain.name == "valid_json"
    assert plain.reason is not None
    assert plain.reason.startswith("invalid JSON: Expecting property name enclosed in double quotes")
    fenced = only(checker, '```json\n{"a": 1}\n```')
    assert fenced.reason is not None and fenced.reason.endswith("(the output is wrapped in a ``` code fence)")


def test_json_matches_reports_pydantic_errors() -> None:
    checker = ConstraintChecker().json_matches(Ticket)
    result = only(checker, '{"order_id": "forty-two"}')
    assert result.name == "json_matches(Ticket)"
    assert result.reason == (
        "2 validation errors for Ticket: order_id: Input should be a valid integer, unable to parse string "
        "as an integer (got 'forty-two'); reason: Field required"
    )
    assert only(checker, "not json").reason == "invalid JSON: Expecting value: line 1 column 1 (char 0)"


def test_json_matches_requires_a_pydantic_model() -> None:
    with pytest.raises(TypeError, match="json_matches.*pydantic BaseModel class, got <class 'dict'>"):
        ConstraintChecker().json_matches(dict)  # type: ignore[arg-type]


def test_builtin_names_can_be_overridden() -> None:
    checker = ConstraintChecker().max_words(200, name="short").must_not_contain("x", name="no_x").valid_json(name="j")
    assert checker.names == ["short", "no_x", "j"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda c: c.max_words(-1), r"max_words\(n\): n must be a non-negative integer, got -1"),
        (lambda c: c.min_chars(2.5), r"min_chars\(n\): n must be a non-negative integer, got 2.5"),
        (lambda c: c.must_contain_any(), r"must_contain_any\(\*phrases\): give one or more non-empty strings"),
        (lambda c: c.must_not_contain(""), r"must_not_contain\(\*phrases\): give one or more non-empty strings"),
        (lambda c: c.max_words(1).max_words(1), r"a check named 'max_words\(1\)' already exists"),
        (lambda c: c.add("", bool), r"name must be a non-empty string"),
    ],
)
def test_bad_definitions_fail_early(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(ConstraintChecker())  # type: ignore[operator]


def test_bad_regex_fails_at_definition() -> None:
    with pytest.raises(re.error):
        ConstraintChecker().matches("(unclosed")


def test_builtins_on_non_text_fail_with_a_type_error() -> None:
    result = only(ConstraintChecker().max_words(3), {"answer": "hi"})
    assert not result.passed
    assert result.error is not None
    assert result.error.startswith("TypeError: max_words(3) checks text, got dict;")


# -- custom checks --------------------------------------------------------------------------------


def test_custom_checks_bool_string_and_description() -> None:
    checker = (
        ConstraintChecker()
        .add("yes", lambda text: True)
        .add("no", lambda text: False)
        .add("no_described", lambda text: False, "a polite closing")
        .add("with_reason", lambda text: "too shouty")
        .add("forgot_return", lambda text: None)  # type: ignore[arg-type,return-value]
    )
    report = checker.check("HELLO")
    assert [r.passed for r in report.results] == [True, False, False, False, False]
    assert [r.line() for r in report.failed] == [
        "no: check returned False",
        "no_described: check returned False (expected a polite closing)",
        "with_reason: too shouty",
        "forgot_return: the check returned None; return True/False, or a string giving the failure reason",
    ]


def test_a_raising_check_fails_with_its_error_and_the_others_still_run() -> None:
    def needs_int(output: object) -> bool:
        return output + 1 > 0  # type: ignore[operator]

    report = ConstraintChecker().add("arith", needs_int).max_chars(10).check("text")
    arith, chars = report.results
    assert arith == CheckResult(
        name="arith", passed=False, error='TypeError: can only concatenate str (not "int") to str'
    )
    assert arith.line() == 'arith: raised TypeError: can only concatenate str (not "int") to str'
    assert chars.passed
    assert not report.all_passed
    assert report.failed == [arith]


def test_report_properties() -> None:
    empty = ConstraintReport(results=[])
    assert empty.all_passed and empty.failed == []
    checker = ConstraintChecker().max_words(1).min_words(1)
    assert checker.check("one").all_passed
    assert len(checker) == 2 and list(checker) == ["max_words(1)", "min_words(1)"]
    assert repr(checker) == "ConstraintChecker(['max_words(1)', 'min_words(1)'])"


def test_completion_like_outputs_are_checked_by_their_text() -> None:
    class Completion:
        text = "one two three"

    assert only(ConstraintChecker().max_words(3), Completion()).passed


# -- the metric -----------------------------------------------------------------------------------


def support_checker() -> ConstraintChecker:
    return (
        ConstraintChecker()
        .min_words(2)
        .max_words(8)
        .must_not_contain("CompetitorA", "OtherBrand", name="no_competitors")
        .must_contain_any("let me know", "happy to help", name="closing")
        .matches(r"\d+ days", name="mentions_days")
        .add("no_jargon", lambda text: "JIRA" not in text)
    )


def test_constraints_metric_value_summary_and_report() -> None:
    output = "Unlike CompetitorA we refund within 5 days, let me know!"
    result = Constraints(support_checker()).evaluate(output)
    # 10 words > 8 and a competitor named: 4 of 6 pass.
    assert result.value == pytest.approx(4 / 6)
    assert result.passed is False and result.verdict == "fail"
    assert result.summary == "2 of 6 constraints failed: max_words(8), no_competitors"
    assert result.details == {"checks": 6, "failed": ["max_words(8)", "no_competitors"]}
    assert result.report().splitlines() == [
        "2 of 6 constraints failed: max_words(8), no_competitors",
        "  failed: - max_words(8): 10 words > 8",
        "          - no_competitors: found 'CompetitorA' in 'Unlike CompetitorA we refund within 5 days, let ...'",
        "  passed: min_words(2), closing, mentions_days, no_jargon",
        f"  output: {output}",
    ]


def test_constraints_metric_passes_when_all_pass() -> None:
    result = check_constraints("Refunds take 5 days, let me know.", support_checker())
    assert (result.value, result.passed, result.summary) == (1.0, True, "all 6 constraints passed")


def test_assert_constraints_lists_every_failed_check() -> None:
    checker = support_checker()
    with pytest.raises(LLMEvalAssertionError) as excinfo:
        assert_constraints("JIRA", checker)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, AssertionError)
    assert message.startswith("4 of 6 constraints failed: min_words(2), closing, mentions_days, no_jargon\n")
    for line in [
        "- min_words(2): 1 words < 2",
        "- closing: none of 'let me know', 'happy to help' found",
        r"- mentions_days: no match for /\d+ days/",
        "- no_jargon: check returned False",
    ]:
        assert line in message


def test_assert_constraints_returns_the_result_when_all_pass() -> None:
    assert assert_constraints("ok then", ConstraintChecker().max_words(3)).passed is True


def test_constraints_metric_needs_checks_and_a_checker() -> None:
    with pytest.raises(ValueError, match=r"constraints: the checker has no checks; add some, e\.g\."):
        Constraints(ConstraintChecker()).evaluate("text")
    with pytest.raises(TypeError, match="expected a ConstraintChecker, got list"):
        Constraints([])  # type: ignore[arg-type]


def test_constraints_metric_shows_structured_output_as_repr() -> None:
    checker = ConstraintChecker().add("has_answer", lambda out: "answer" in out)
    result = Constraints(checker).evaluate({"answer": 1})
    assert result.passed
    assert ("output", "{'answer': 1}") in result.sections
