"""Records: built where the item runs, gathered by the controller alone, same with or without xdist."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_llmeval.records import Record

pytest_plugins = ["pytester"]

DATASET = "\n".join(
    f'{{"id": "{pid}-{i:02d}", "partition": "{pid}", "input": "q{i}"}}'
    for pid, n in (("golden", 4), ("regression", 3), ("adversarial", 3), ("distribution", 6))
    for i in range(n)
)

TEST_FILE = """
import pytest

@pytest.mark.llmeval(dataset="cases.jsonl")
def test_case(eval_example, llmeval_record):
    llmeval_record.add_metric("input_len", len(eval_example.input), passed=True)
    if eval_example.id in ("regression-01", "distribution-03"):
        assert False, "wrong answer"
    if eval_example.id == "adversarial-02":
        pytest.skip("not applicable")

@pytest.fixture
def broken():
    raise RuntimeError("setup exploded")

@pytest.mark.llmeval(dataset="cases.jsonl", partitions="golden")
def test_setup_error(eval_example, broken):
    pass

def test_ordinary():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "cases.jsonl").write_text(DATASET)
    pytester.makepyfile(test_cases=TEST_FILE)
    return pytester


def summary_section(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "llmeval summary" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("==="))
    return lines[start:end]


def test_summary_counts_each_outcome(project: pytest.Pytester) -> None:
    result = project.runpytest("-p", "no:xdist")
    table = summary_section(result)[1:10]
    assert table == [
        "partition     items  passed  failed  errored  skipped  pass rate  95% CI",
        "golden            8       4       0        4        0      50.0%  [21.5%, 78.5%]",
        "  mean: input_len 2.000",
        "regression        3       2       1        0        0      66.7%  [20.8%, 93.9%]",
        "  mean: input_len 2.000",
        "adversarial       3       2       0        0        1     100.0%  [34.2%, 100.0%]",
        "  mean: input_len 2.000",
        "distribution      6       5       1        0        0      83.3%  [43.6%, 97.0%]",
        "  mean: input_len 2.000",
    ]


def test_records_carry_metrics_to_the_controller(project: pytest.Pytester) -> None:
    for args in ([], ["-n", "2"]):
        reprec = project.inline_run(*args)
        records = [
            Record.from_dict(r.llmeval_record)
            for r in reprec.getreports("pytest_runtest_logreport")
            if getattr(r, "llmeval_record", None)
        ]
        by_id = {(r.nodeid.split("::")[1].split("[")[0], r.example_id): r for r in records}
        assert len(records) == 20  # 16 examples + 4 golden ones of test_setup_error
        assert by_id[("test_case", "golden-00")].metrics == {"input_len": {"value": 2.0, "passed": True}}
        assert by_id[("test_case", "regression-01")].outcome == "failed"
        assert "wrong answer" in (by_id[("test_case", "regression-01")].message or "")
        assert by_id[("test_case", "adversarial-02")].outcome == "skipped"
        assert by_id[("test_setup_error", "golden-00")].outcome == "error"
        assert all(r.duration_s >= 0 for r in records)


def test_same_summary_with_and_without_xdist(project: pytest.Pytester) -> None:
    serial = project.runpytest("-n", "0")
    parallel = project.runpytest("-n", "2")
    assert summary_section(serial) == summary_section(parallel)
    parallel.assert_outcomes(passed=14, failed=2, skipped=1, errors=4)


def test_workers_do_not_print_the_summary(project: pytest.Pytester) -> None:
    result = project.runpytest("-n", "2")
    assert sum("llmeval summary" in line for line in result.outlines) == 1


def test_no_summary_without_llmeval_items(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:xdist")
    result.assert_outcomes(passed=1)
    assert "llmeval summary" not in result.stdout.str()


def test_add_metric_validates_its_arguments() -> None:
    record = Record("n", "e", "golden")
    with pytest.raises(TypeError, match="must be a number or None, got str"):
        record.add_metric("score", "high")  # type: ignore[arg-type]
    record.add_metric("score", 4, passed=True, judge="m")
    assert Record.from_dict(record.to_dict()) == record


def test_plugin_import_stays_light() -> None:
    code = (
        "import sys, pytest_llmeval, pytest_llmeval.plugin\n"
        "heavy = ['litellm', 'scipy', 'diskcache', 'numpy', 'pydantic', 'llama_cpp']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_public_name_resolves() -> None:
    import pytest_llmeval

    missing = [name for name in pytest_llmeval.__all__ if getattr(pytest_llmeval, name, None) is None]
    assert missing == []
