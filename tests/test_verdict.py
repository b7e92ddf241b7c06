"""The verdict: summary lines, gates and exit status (pytester), and the pure summary functions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_llmeval.records import Record
from pytest_llmeval.stats import wilson_interval
from pytest_llmeval.summary import Gate, build_summary, decide, partition_rows, render

pytest_plugins = ["pytester"]

# 4 golden, 3 regression, 6 distribution examples. Which ones fail or error is read
# from files at run time, so one project serves every gate case.
DATASET = "\n".join(
    f'{{"id": "{pid}-{i:02d}", "partition": "{pid}", "input": "question {i}"}}'
    for pid, n in (("golden", 4), ("regression", 3), ("distribution", 6))
    for i in range(n)
)

TEST_FILE = """
import pathlib
import pytest

HERE = pathlib.Path(__file__).parent

def listed(name):
    path = HERE / name
    return set(path.read_text().split()) if path.exists() else set()

@pytest.fixture
def setup_step(eval_example):
    if eval_example.id in listed("error.txt"):
        raise RuntimeError("setup exploded")

@pytest.mark.llmeval(dataset="cases.jsonl")
def test_case(eval_example, llmeval_record, setup_step):
    llmeval_record.add_metric("length", len(eval_example.input), passed=True)
    llmeval_record.add_metric("score", 4.0 if eval_example.partition != "distribution" else 3.0)
    assert eval_example.id not in listed("fail.txt"), "wrong answer"

def test_ordinary():
    assert "test_ordinary" not in listed("fail.txt"), "ordinary failure"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "cases.jsonl").write_text(DATASET)
    pytester.makepyfile(test_cases=TEST_FILE)
    return pytester


def fail(project: pytest.Pytester, *ids: str, errors: tuple[str, ...] = ()) -> None:
    (project.path / "fail.txt").write_text("\n".join(ids))
    (project.path / "error.txt").write_text("\n".join(errors))


def summary_section(result: pytest.RunResult) -> list[str]:
    """The lines of the llmeval summary, without its title line."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "llmeval summary" in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("===")), len(lines))
    return lines[start + 1:end]


def gate_line(result: pytest.RunResult, partition: str) -> str:
    section = summary_section(result)
    start = next(i for i, line in enumerate(section) if line.startswith("gates"))
    return next(line for line in section[start:] if line.strip().startswith(partition + " "))


# --- gates ----------------------------------------------------------------------------------------


def test_partition_at_its_threshold_tolerates_failures_that_still_show(project: pytest.Pytester) -> None:
    fail(project, "distribution-03")
    result = project.runpytest("--llmeval-threshold", "distribution=0.8")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=13, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_cases.py::test_case[[]distribution-03[]] - AssertionError: wrong answer"])
    assert gate_line(result, "distribution").split() == [
        "distribution", "83.3%", "(5/6)", "threshold", "80.0%", "met", "(1", "failed", "item", "tolerated)"
    ]
    assert summary_section(result)[-1] == "verdict: PASSED (1 failed item tolerated by gates)"


def test_partition_below_its_threshold_fails_the_run(project: pytest.Pytester) -> None:
    fail(project, "distribution-03")
    result = project.runpytest("--llmeval-threshold", "distribution=0.9")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert gate_line(result, "distribution").endswith("threshold 90.0%    FAILED")
    result.stdout.fnmatch_lines(["verdict: FAILED: distribution: pass rate 83.3% is below its threshold 90.0%"])


def test_errored_items_count_against_the_rate(project: pytest.Pytester) -> None:
    fail(project, errors=("distribution-01",))
    tolerated = project.runpytest("--llmeval-threshold", "distribution=80%")
    assert tolerated.ret == pytest.ExitCode.OK
    tolerated.assert_outcomes(passed=13, errors=1)
    fail(project, "distribution-00", errors=("distribution-01",))
    below = project.runpytest("--llmeval-threshold", "distribution=80%")
    assert below.ret == pytest.ExitCode.TESTS_FAILED
    below.stdout.fnmatch_lines(["distribution * 6 * 4 * 1 * 1 * 0 * 66.7%  [[]*[]]"])
    assert "pass rate 66.7% is below its threshold 80.0%" in below.stdout.str()


def test_a_partition_without_threshold_behaves_like_ordinary_tests(project: pytest.Pytester) -> None:
    fail(project, "regression-01")
    result = project.runpytest("--llmeval-threshold", "distribution=0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert gate_line(result, "regression").endswith("no threshold       FAILED")
    assert "regression: 1 of 3 not passed and it has no threshold" in result.stdout.str()
    # The default gate is golden=1.0: one golden failure fails the run.
    fail(project, "golden-02")
    assert project.runpytest().ret == pytest.ExitCode.TESTS_FAILED


def test_ordinary_test_failures_always_fail_the_run(project: pytest.Pytester) -> None:
    fail(project, "distribution-03", "test_ordinary")
    result = project.runpytest("--llmeval-threshold", "distribution=0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "met (1 failed item tolerated)" in gate_line(result, "distribution")
    result.stdout.fnmatch_lines(["verdict: FAILED: 1 other test failed (test_cases.py::test_ordinary)"])


def test_ini_thresholds_merge_with_the_command_line(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nllmeval_thresholds =\n    distribution=0.5\n    regression=0.5\n")
    fail(project, "distribution-03", "regression-01")
    assert project.runpytest().ret == pytest.ExitCode.OK
    # The command line overrides one partition's rate; the other keeps the ini's.
    result = project.runpytest("--llmeval-threshold", "regression=0.9")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "met" in gate_line(result, "distribution") and "FAILED" in gate_line(result, "regression")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("golden=1.5", "--llmeval-threshold: rate 1.5 in 'golden=1.5' is outside [[]0, 1[]]; write a pass rate "
                       "such as golden=0.95"),
        ("golden=-0.1", "*rate -0.1 in 'golden=-0.1' is outside [[]0, 1[]]*"),
        ("nightly=0.9", "--llmeval-threshold: unknown partition 'nightly' in 'nightly=0.9'; use one of: golden, "
                        "regression, adversarial, distribution (ini llmeval_partitions sets the list)"),
        ("golden", "--llmeval-threshold: 'golden' is not PARTITION=RATE; write e.g. golden=0.95"),
        ("golden=high", "*rate 'high' in 'golden=high' is not a number; write e.g. golden=0.95 or golden=95%"),
    ],
)
def test_bad_thresholds_are_usage_errors(project: pytest.Pytester, value: str, message: str) -> None:
    result = project.runpytest("--llmeval-threshold", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + message if message[0] != "*" else message])


def test_bad_ini_threshold_names_the_ini_key(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nllmeval_thresholds = golden=2\n")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini llmeval_thresholds: rate 2 in 'golden=2' is outside*"])


def test_exit_status_is_left_alone_when_not_a_verdict(project: pytest.Pytester) -> None:
    fail(project, "distribution-00")
    # -x stops at the tolerated failure: the run is incomplete, pytest's status stands.
    stopped = project.runpytest("-p", "no:randomly", "-x", "--llmeval-threshold", "distribution=0.5",
                                "-k", "distribution")
    assert stopped.ret == pytest.ExitCode.TESTS_FAILED
    assert "the run stopped early" in stopped.stdout.str()
    assert project.runpytest("-k", "no_such_test").ret == pytest.ExitCode.NO_TESTS_COLLECTED


# --- the summary ---------------------------------------------------------------------------------


def test_summary_rows_carry_the_wilson_interval(project: pytest.Pytester) -> None:
    fail(project, "distribution-03", errors=("golden-01",))
    result = project.runpytest("--llmeval-threshold", "distribution=0.5")
    rows = {line.split()[0]: line for line in summary_section(result)[1:] if line and not line[0].isspace()}
    for partition, passed, ran in (("golden", 3, 4), ("regression", 3, 3), ("distribution", 5, 6)):
        low, high = wilson_interval(passed, ran)
        assert rows[partition].endswith(f"{100 * passed / ran:.1f}%  [{100 * low:.1f}%, {100 * high:.1f}%]")
    section = summary_section(result)
    assert section[0] == "partition     items  passed  failed  errored  skipped  pass rate  95% CI"
    assert "  mean: length 10.000, score 3.000" in section  # distribution: the failed case keeps its scores
    assert "  mean: length 10.000, score 4.000" in section  # golden: the errored case measured nothing
    assert all(len(line) <= 100 for line in section)


def test_quiet_summary_is_one_line_per_partition_and_the_verdict(project: pytest.Pytester) -> None:
    fail(project, "distribution-03")
    result = project.runpytest("-q", "--llmeval-threshold", "distribution=0.8")
    section = summary_section(result)
    assert [line.split()[0] for line in section] == ["golden", "regression", "distribution", "verdict:"]
    assert re.match(r"distribution +5/6 passed +83\.3% \[43\.6%, 97\.0%\] +threshold 80\.0%: met, 1 tolerated$",
                    section[2])


def test_verbose_summary_adds_the_metric_table(project: pytest.Pytester) -> None:
    result = project.runpytest("-v")
    section = summary_section(result)
    header = next(i for i, line in enumerate(section) if line.startswith("partition ") and "metric" in line)
    assert section[header + 1].split() == ["golden", "length", "4", "10.000", "10.000", "10.000", "4", "0"]
    assert section[header + 2].split() == ["golden", "score", "4", "4.000", "4.000", "4.000", "0", "0"]
    assert not any(line.startswith("  mean:") for line in section)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_junit_xml_has_each_metric_as_a_property(project: pytest.Pytester, workers: str) -> None:
    result = project.runpytest("-n", workers, "--junitxml=junit.xml", "-k", "golden-00 or test_ordinary")
    result.assert_outcomes(passed=2)
    xml = (project.path / "junit.xml").read_text()
    case = re.search(r'<testcase [^>]*name="test_case\[golden-00\]".*?</testcase>', xml, re.S)
    assert case is not None
    assert '<property name="llmeval.partition" value="golden"' in case.group(0)
    assert '<property name="llmeval.score" value="4.0"' in case.group(0)
    assert '<property name="llmeval.length.passed" value="True"' in case.group(0)
    ordinary = re.search(r'<testcase [^>]*name="test_ordinary".*?(/>|</testcase>)', xml, re.S)
    assert ordinary is not None and "llmeval." not in ordinary.group(0)


def test_summary_gates_and_baseline_are_identical_under_xdist(project: pytest.Pytester) -> None:
    fail(project, "distribution-03", "regression-00", errors=("golden-02",))
    runs = {}
    for workers in ("0", "2"):
        result = project.runpytest("-n", workers, "--llmeval-threshold", "distribution=0.8",
                                   "--llmeval-save-baseline", "--llmeval-baseline", f"base{workers}.json")
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        section = [line for line in summary_section(result) if not line.startswith("note:")]
        runs[workers] = (section, (project.path / f"base{workers}.json").read_bytes())
    assert runs["0"] == runs["2"]
    assert any(line.startswith("gates") for line in runs["0"][0])


# --- pure parts -----------------------------------------------------------------------------------


def records(partition: str, outcomes: str) -> list[Record]:
    """Records from a string of outcome letters: p(assed), f(ailed), e(rror), s(kipped)."""
    names = {"p": "passed", "f": "failed", "e": "error", "s": "skipped"}
    return [Record(f"t::x[{partition}-{i}]", f"{partition}-{i}", partition, outcome=names[c])
            for i, c in enumerate(outcomes)]


def test_gate_rules() -> None:
    assert Gate("d", 0.8, ran=5, passed=4).met and Gate("d", 0.8, ran=5, passed=4).tolerated == 1
    assert not Gate("d", 0.81, ran=5, passed=4).met
    assert Gate("d", 0.95, ran=20, passed=19).met  # exactly at the threshold
    assert Gate("d", None, ran=3, passed=3).met and not Gate("d", None, ran=3, passed=2).met
    assert Gate("d", 1.0, ran=0, passed=0).met  # everything skipped: no evidence against it


def test_rows_and_verdict_from_records() -> None:
    recs = records("golden", "ppps") + records("distribution", "ppppfe")
    rows = partition_rows(recs, ["golden", "distribution"])
    assert [(r.partition, r.ran, r.passed, r.failed, r.errored, r.skipped) for r in rows] == [
        ("golden", 3, 3, 0, 0, 1), ("distribution", 6, 4, 1, 1, 0)
    ]
    summary = build_summary(recs, ["golden", "distribution"], {"golden": 1.0, "distribution": 0.6})
    assert summary.verdict.passed and summary.verdict.tolerated == 2
    summary = build_summary(recs, ["golden", "distribution"], {"golden": 1.0}, other_failures=["t::plain"])
    assert not summary.verdict.passed
    assert summary.verdict.reasons == (
        "distribution: 2 of 6 not passed and it has no threshold (--llmeval-threshold distribution=RATE would "
        "tolerate some)",
        "1 other test failed (t::plain)",
    )
    assert all(len(line) <= 100 for verbosity in (-1, 0, 1) for line in render(summary, verbosity))


def test_budget_and_unexplained_failures_fail_the_verdict() -> None:
    assert not decide([], budget_exhausted=True).passed
    assert decide([], unexplained_failures=1).reasons == ("1 failure reported outside pytest-llmeval's records",)


def test_position_bias_rate_is_shown() -> None:
    recs = records("golden", "pppp")
    for i, record in enumerate(recs):
        record.add_metric("preferred", 1.0, passed=True, position_bias=i == 0, judge="j")
    lines = render(build_summary(recs, ["golden"], {"golden": 1.0}, counters={"calls": 4, "cache_hits": 1}))
    assert "judge position bias: 1 of 4 pairwise verdicts (25.0%)" in lines
    assert any(line.startswith("calls 4, cache hits 1, tokens 0, cost ") for line in lines)


def test_unknown_cost_stays_unknown() -> None:
    lines = render(build_summary(records("golden", "p"), ["golden"], {},
                                 counters={"calls": 2, "cost_unknown_calls": 2}, latencies=[0.1, 0.3]))
    assert "calls 2, cache hits 0, tokens 0, cost unknown, latency p50 0.10s p95 0.30s" in lines


def test_plugin_module_stays_light() -> None:
    import subprocess
    import sys

    code = ("import sys, pytest_llmeval.plugin, pytest_llmeval.verdict\n"
            "print([m for m in ('numpy', 'scipy', 'pydantic', 'litellm') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent)
    assert out.stdout.strip() == "[]"
