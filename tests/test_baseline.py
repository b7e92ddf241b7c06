"""Baselines: the stored file (unit tests), then save, compare and fail-on-regression in a project."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_llmeval import baseline
from pytest_llmeval.records import Record

pytest_plugins = ["pytester"]


# --- the file -------------------------------------------------------------------------------------


def test_cases_keep_partition_outcome_scores_and_judge() -> None:
    record = Record("t.py::test[b]", "b", "golden", outcome="failed", duration_s=1.5, message="boom")
    record.add_metric("relevance", 4, passed=True, judge="openai/gpt-4o-mini|rubric-v1", samples=[4, 4])
    record.add_metric("note", None, passed=False)
    assert baseline.case_of(record) == {
        "partition": "golden", "outcome": "failed", "scores": {"relevance": 4.0},
        "judge": {"relevance": "openai/gpt-4o-mini|rubric-v1"},
    }


def test_save_is_sorted_versioned_and_without_run_specific_fields(tmp_path: Path) -> None:
    records = [Record(f"t.py::test[{i}]", str(i), "golden", duration_s=0.1 * i) for i in (3, 1, 2)]
    for record in records:
        record.add_metric("zeta", 1.0)
        record.add_metric("alpha", 2.0)
    path = tmp_path / "deep" / "baseline.json"
    baseline.save(path, baseline.cases_from_records(records))
    text = path.read_text()
    document = json.loads(text)
    assert text == json.dumps(document, sort_keys=True, indent=1) + "\n"  # sorted, stable layout
    assert document["schema_version"] == baseline.SCHEMA_VERSION and document["kind"] == baseline.KIND
    assert list(document["cases"]) == ["t.py::test[1]", "t.py::test[2]", "t.py::test[3]"]
    assert "duration" not in text and str(tmp_path) not in text
    assert baseline.load(path, "baseline.json") == document["cases"]


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "baseline.json"
    baseline.save(path, {})
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        baseline.save(path, {"t::x": {"partition": "golden", "outcome": "passed", "scores": {}, "judge": {}}})
    assert path.read_bytes() == before  # the old file is whole
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]  # no temp file left behind


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "--llmeval-baseline: no baseline at b.json; run once with --llmeval-save-baseline"),
        ("{not json", "--llmeval-baseline: b.json is not valid JSON (Expecting property name enclosed in double "
                      "quotes at line 1); delete it or run once with --llmeval-save-baseline to write a new one"),
        ('{"kind": "pytest-llmeval baseline", "schema_version": 99, "cases": {}}',
         "--llmeval-baseline: b.json has schema version 99 but this pytest-llmeval reads version 1; run once "
         "with --llmeval-save-baseline to write it anew"),
        ('{"kind": "pytest-llmeval report", "schema_version": 1}',
         "--llmeval-baseline: b.json is a pytest-llmeval report, not a baseline; pass the baseline file "
         "(default .llmeval/baseline.json), or run once with --llmeval-save-baseline"),
        ('{"kind": "pytest-llmeval baseline", "schema_version": 1, "cases": {"t::x": {"outcome": "passed"}}}',
         "--llmeval-baseline: b.json: case 't::x' has no partition; fix the entry or run once with "
         "--llmeval-save-baseline"),
        ("[]", "--llmeval-baseline: b.json holds a JSON list, not a pytest-llmeval file; delete it or run once "
               "with --llmeval-save-baseline to write a new one"),
    ],
)
def test_unusable_baselines_say_what_to_run(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "b.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(baseline.BaselineError) as excinfo:
        baseline.load(path, "b.json")
    assert str(excinfo.value) == message


# --- in a project -----------------------------------------------------------------------------------

# 12 golden cases: enough pairs (min_pairs=10) for the paired tests. Each case's
# quality comes from quality.json, so two runs can differ; the Quality metric's
# failure report shows the baseline score.
DATASET = "\n".join(f'{{"id": "g{i:02d}", "partition": "golden", "input": "q{i}"}}' for i in range(12))

TEST_FILE = """
import json
import pathlib
import pytest
from pytest_llmeval.metric import Metric, MetricResult, check

QUALITY = pathlib.Path(__file__).with_name("quality.json")

class Quality(Metric):
    name = "quality"

    def __init__(self, value, min_score=2.0):
        self.value, self.min_score = value, min_score

    def compute(self, output, *, example):
        passed = self.value >= self.min_score
        return MetricResult(name=self.name, value=self.value, passed=passed, verdict="pass" if passed else "fail",
                            summary=f"quality {self.value} (needs {self.min_score})", details={"judge": "rubric-v1"})

@pytest.mark.llmeval(dataset="cases.jsonl")
def test_case(eval_example):
    scores = json.loads(QUALITY.read_text()) if QUALITY.exists() else {}
    check(Quality(scores.get(eval_example.id, 4.0)), output="answer")
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "cases.jsonl").write_text(DATASET)
    pytester.makepyfile(test_quality=TEST_FILE)
    return pytester


def flat(result: pytest.RunResult) -> str:
    """The output with wrapped lines joined (notes wrap at 100 columns)."""
    return " ".join(line.strip() for line in result.outlines)


def set_quality(project: pytest.Pytester, scores: dict[str, float]) -> None:
    (project.path / "quality.json").write_text(json.dumps(scores))


def test_save_then_compare_finds_an_injected_regression(project: pytest.Pytester) -> None:
    saved = project.runpytest("--llmeval-save-baseline")
    assert saved.ret == pytest.ExitCode.OK
    saved.stdout.fnmatch_lines(["note: baseline saved to .llmeval/baseline.json: 12 cases"])
    stored = json.loads((project.path / ".llmeval" / "baseline.json").read_text())
    assert stored["cases"]["test_quality.py::test_case[g00]"] == {
        "judge": {"quality": "rubric-v1"}, "outcome": "passed", "partition": "golden", "scores": {"quality": 4.0}
    }

    set_quality(project, {f"g{i:02d}": 3.0 for i in range(12)})  # every case one point worse, still passing
    compared = project.runpytest()
    assert compared.ret == pytest.ExitCode.OK  # a regression informs unless asked to fail the run
    compared.stdout.fnmatch_lines([
        "comparison with the baseline .llmeval/baseline.json (12 cases of this run in it):",
        "golden",
        "  pass_rate  12  100.0%  100.0%  +0.0pt  *  mcnemar   *  no_change",
        "  quality    12   4.000   3.000  -1.000  [[]-1.000, -1.000[]]  wilcoxon  0.001  regression",
    ])

    failing = project.runpytest("--llmeval-fail-on-regression")
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    failing.stdout.fnmatch_lines(["verdict: FAILED: 1 regression against the baseline (golden quality)"])
    # A large minimum effect turns the same change into a trivial one.
    trivial = project.runpytest("--llmeval-fail-on-regression", "--llmeval-min-effect", "quality=1.5")
    assert trivial.ret == pytest.ExitCode.OK
    trivial.stdout.fnmatch_lines(["  quality  * trivial"])


def test_failure_report_shows_the_baseline_score(project: pytest.Pytester) -> None:
    assert project.runpytest("--llmeval-save-baseline").ret == pytest.ExitCode.OK
    set_quality(project, {"g03": 1.0})
    for workers in ("0", "2"):  # workers read the baseline themselves
        result = project.runpytest("-n", workers, "-k", "g03")
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines([
            "*quality 1.0 (needs 2.0)",
            "*baseline: 4 (quality of this case in the baseline)",
        ])


def test_missing_baseline_is_a_note_unless_asked_for(project: pytest.Pytester) -> None:
    quiet = project.runpytest()
    assert quiet.ret == pytest.ExitCode.OK
    assert ("note: --llmeval-baseline: no baseline at .llmeval/baseline.json; run once with "
            "--llmeval-save-baseline to compare later runs with this one") in flat(quiet)
    for args in (["--llmeval-fail-on-regression"], ["--llmeval-baseline", "other/base.json"]):
        result = project.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        shown = args[-1] if args[0] == "--llmeval-baseline" else ".llmeval/baseline.json"
        result.stderr.fnmatch_lines([f"ERROR: --llmeval-baseline: no baseline at {shown}; run once with "
                                     "--llmeval-save-baseline"])


def test_corrupt_or_old_baseline_stops_the_run_with_the_fix(project: pytest.Pytester) -> None:
    path = project.path / ".llmeval" / "baseline.json"
    path.parent.mkdir()
    path.write_text('{"kind": "pytest-llmeval baseline", "schema_version": 0, "cases": {}}')
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llmeval-baseline: .llmeval/baseline.json has schema version 0 but this "
                                 "pytest-llmeval reads version 1; run once with --llmeval-save-baseline*"])
    path.write_text("{")
    result = project.runpytest()
    result.stderr.fnmatch_lines(["ERROR: --llmeval-baseline: .llmeval/baseline.json is not valid JSON*"])
    # Saving replaces the broken file, and says so.
    saved = project.runpytest("--llmeval-save-baseline")
    assert saved.ret == pytest.ExitCode.OK
    assert ("note: --llmeval-baseline: .llmeval/baseline.json is not valid JSON (Expecting property name "
            "enclosed in double quotes at line 1): replaced by this run's baseline") in flat(saved)
    assert json.loads(path.read_text())["schema_version"] == 1


def test_saving_part_of_the_suite_says_what_was_dropped(project: pytest.Pytester) -> None:
    project.runpytest("--llmeval-save-baseline")
    result = project.runpytest("-k", "g00 or g01", "--llmeval-save-baseline")
    result.stdout.fnmatch_lines([
        "note: baseline saved to .llmeval/baseline.json: 2 cases",
        "note: 10 cases of the previous baseline did not run and are not in the new one",
    ])
