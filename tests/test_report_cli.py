"""--llmeval-report and the ``pytest-llmeval compare``, ``show`` and ``merge`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmeval.cli import main

pytest_plugins = ["pytester"]

# 12 golden and 12 distribution cases (enough pairs for the paired tests), one
# ordinary test. Scores and failures come from files, so runs can differ.
DATASET = "\n".join(
    f'{{"id": "{p[0]}{i:02d}", "partition": "{p}", "input": "q{i}"}}' for p in ("golden", "distribution")
    for i in range(12)
)

TEST_FILE = """
import json
import pathlib
import pytest

HERE = pathlib.Path(__file__).parent

def read(name, default):
    path = HERE / name
    return json.loads(path.read_text()) if path.exists() else default

@pytest.mark.llmeval(dataset="cases.jsonl")
def test_case(eval_example, llmeval_record):
    llmeval_record.add_metric("quality", read("quality.json", {}).get(eval_example.id, 4.0))
    assert eval_example.id not in read("fail.json", []), "wrong answer"

def test_ordinary():
    assert "test_ordinary" not in read("fail.json", []), "ordinary failure"
"""

ARGS = ("--llmeval-threshold", "distribution=0.8", "--llmeval-fail-on-regression")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with a saved baseline, then a run whose distribution quality dropped by a point."""
    (pytester.path / "cases.jsonl").write_text(DATASET)
    pytester.makepyfile(test_cases=TEST_FILE)
    (pytester.path / "fail.json").write_text(json.dumps(["d03"]))
    assert pytester.runpytest(*ARGS, "--llmeval-save-baseline").ret == pytest.ExitCode.OK
    (pytester.path / "quality.json").write_text(json.dumps({f"d{i:02d}": 3.0 for i in range(12)}))
    return pytester


def summary_section(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "llmeval summary" in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("===")), len(lines))
    return lines[start + 1:end]


def without_notes(lines: list[str]) -> list[str]:
    """Notes say what one run did (saved a file, was merged); everything else must match."""
    kept, in_note = [], False
    for line in lines:
        in_note = line.startswith("note:") or (in_note and line.startswith("    "))
        if not in_note:
            kept.append(line)
    return kept


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    capsys.readouterr()  # drop what inline pytest runs printed
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def test_report_holds_records_summary_comparison_and_verdict(project: pytest.Pytester) -> None:
    result = project.runpytest(*ARGS, "--llmeval-report", "out/report.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = (project.path / "out" / "report.json").read_text()
    report = json.loads(text)
    assert text == json.dumps(report, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    assert report["kind"] == "pytest-llmeval report" and report["schema_version"] == 1
    nodeids = [r["nodeid"] for r in report["records"]]
    assert len(nodeids) == 24 and nodeids == sorted(nodeids)
    d03 = next(r for r in report["records"] if r["example_id"] == "d03")
    assert d03["outcome"] == "failed" and d03["metrics"] == {"quality": {"passed": None, "value": 3.0}}
    assert report["settings"] == {
        "alpha": 0.05, "fail_on_regression": True, "min_effect": None,
        "partitions": ["golden", "regression", "adversarial", "distribution"],
        "thresholds": {"distribution": 0.8, "golden": 1.0},
    }
    partitions = {p["partition"]: p for p in report["summary"]["partitions"]}
    assert partitions["distribution"]["passed"] == 11 and partitions["distribution"]["metrics"]["quality"]["mean"] == 3.0
    assert [g["met"] for g in report["summary"]["gates"]] == [True, True]
    assert report["baseline"]["path"] == ".llmeval/baseline.json" and len(report["baseline"]["cases"]) == 24
    conclusions = {(row["partition"], row["metric"]): row["conclusion"] for row in report["comparison"]}
    assert conclusions[("distribution", "quality")] == "regression"
    assert conclusions[("golden", "quality")] == "no_change"
    assert report["verdict"] == {
        "passed": False, "reasons": ["1 regression against the baseline (distribution quality)"], "tolerated": 1
    }
    assert report["other_failures"] == [] and report["counters"]["records"] == 24.0


def test_show_prints_the_summary_pytest_printed(project: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    result = project.runpytest(*ARGS, "--llmeval-report", "report.json")
    status, out, _ = cli(capsys, "show", "report.json")
    assert status == 1  # the verdict failed: CI can gate on a report
    assert out == summary_section(result)
    status, out, _ = cli(capsys, "show", "-q", "report.json")
    assert [line.split()[0] for line in out] == ["golden", "distribution", "baseline", "verdict:"]


def test_compare_prints_the_same_table_and_fails_on_regression(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    result = project.runpytest(*ARGS, "--llmeval-report", "report.json")
    section = summary_section(result)
    start = next(i for i, line in enumerate(section) if line.startswith("comparison with the baseline"))
    end = section.index("", start)
    status, out, _ = cli(capsys, "compare", ".llmeval/baseline.json", "report.json")
    assert status == 1
    assert out == [*section[start:end], "1 regression"]
    # The minimum effect can be set here too: a one-point drop is then trivial.
    status, out, _ = cli(capsys, "compare", "--min-effect", "quality=1.5", ".llmeval/baseline.json", "report.json")
    assert status == 0 and any(line.endswith("trivial") for line in out)


def test_merged_shards_equal_one_unsplit_run(project: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    whole = project.runpytest(*ARGS, "--llmeval-report", "whole.json")
    golden = project.runpytest(*ARGS, "-k", "golden", "--llmeval-report", "golden.json")
    rest = project.runpytest(*ARGS, "-k", "not golden", "--llmeval-report", "rest.json")
    assert golden.ret == pytest.ExitCode.OK and rest.ret == whole.ret == pytest.ExitCode.TESTS_FAILED

    status, out, _ = cli(capsys, "merge", "golden.json", "rest.json", "-o", "all.json")
    assert status == 1
    assert out[-1] == "wrote all.json: 24 records from 2 reports"
    assert without_notes(out[:-1]) == without_notes(summary_section(whole))
    merged, unsplit = (json.loads((project.path / name).read_text()) for name in ("all.json", "whole.json"))
    for key in ("summary", "comparison", "verdict", "settings", "baseline", "other_failures"):
        assert merged[key] == unsplit[key], key
    strip = lambda records: [{k: v for k, v in r.items() if k != "duration_s"} for r in records]  # noqa: E731
    assert strip(merged["records"]) == strip(unsplit["records"])
    # show and compare work on the merged report as on the unsplit one.
    assert cli(capsys, "show", "all.json")[:2] == cli(capsys, "show", "whole.json")[:2]
    assert cli(capsys, "compare", ".llmeval/baseline.json", "all.json")[0] == 1


def test_a_shard_without_llmeval_items_still_counts(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    (project.path / "fail.json").write_text(json.dumps(["d03", "test_ordinary"]))
    project.runpytest(*ARGS, "-k", "golden or distribution", "--llmeval-report", "evals.json")
    plain = project.runpytest(*ARGS, "-k", "ordinary", "--llmeval-report", "plain.json")
    assert plain.ret == pytest.ExitCode.TESTS_FAILED and "llmeval summary" not in plain.stdout.str()
    assert json.loads((project.path / "plain.json").read_text())["other_failures"] == ["test_cases.py::test_ordinary"]
    status, out, _ = cli(capsys, "merge", "evals.json", "plain.json", "-o", "all.json")
    assert status == 1
    assert "1 other test failed (test_cases.py::test_ordinary)" in " ".join(out)


def test_merge_refuses_overlapping_or_mismatched_shards(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    project.runpytest(*ARGS, "-k", "g00 or g01", "--llmeval-report", "a.json")
    project.runpytest(*ARGS, "-k", "g01 or g02", "--llmeval-report", "b.json")
    project.runpytest("--llmeval-threshold", "distribution=0.5", "-k", "d00", "--llmeval-report", "c.json")
    status, _, err = cli(capsys, "merge", "a.json", "b.json", "-o", "all.json")
    assert status == 2
    assert err.strip() == ("pytest-llmeval: merge: test_cases.py::test_case[g01] is in both a.json and b.json; "
                           "each shard must run different items (check the -k or split options)")
    status, _, err = cli(capsys, "merge", "a.json", "c.json", "-o", "all.json")
    assert status == 2 and "merge: a.json and c.json were run with different thresholds" in err
    assert not (project.path / "all.json").exists()


def test_commands_explain_unusable_files(project: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "show", "missing.json")[2].strip() == (
        "pytest-llmeval: report: no file at missing.json; pass a file written by pytest --llmeval-report")
    assert cli(capsys, "show", ".llmeval/baseline.json")[2].strip() == (
        "pytest-llmeval: report: .llmeval/baseline.json is a baseline, not a report; pass a file written by "
        "pytest --llmeval-report")
    Path("old.json").write_text('{"kind": "pytest-llmeval report", "schema_version": 7}')
    status, _, err = cli(capsys, "compare", ".llmeval/baseline.json", "old.json")
    assert status == 2 and "old.json has schema version 7 but this pytest-llmeval reads version 1" in err
