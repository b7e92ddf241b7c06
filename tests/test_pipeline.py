"""task= and eval_output: outputs computed ahead, concurrently, once per unique request."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from pytest_llmeval.mockserver import MockLLMServer

pytest_plugins = ["pytester"]

N_GOLDEN, N_OTHER = 4, 8
DATASET = "\n".join(
    [f'{{"id": "g{i}", "partition": "golden", "input": "golden question {i}"}}' for i in range(N_GOLDEN)]
    + [f'{{"id": "d{i}", "input": "traffic question {i}"}}' for i in range(N_OTHER)]
)

TEST_FILE = """
import pytest

def answer(example, llm):
    if example.id == "d3":
        raise RuntimeError("task blew up for d3")
    return llm(example.input, temperature=0).text

@pytest.mark.llmeval(dataset="cases.jsonl", task=answer)
def test_answer(eval_example, eval_output):
    assert eval_output == "Echo: " + eval_example.input

def test_ordinary():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester, mock_llm: MockLLMServer, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (pytester.path / "cases.jsonl").write_text(DATASET)
    pytester.makepyfile(test_cases=TEST_FILE)
    pytester.makeini(
        "[pytest]\n"
        "llmeval_model = openai/mock\n"
        f"llmeval_api_base = {mock_llm.base_url}\n"
        "llmeval_retries = 1\n"
    )
    return pytester


def arrival_recorder() -> tuple[list[float], Any]:
    """A responder that echoes and notes when each request was answered."""
    arrivals: list[float] = []
    lock = threading.Lock()

    def responder(body: dict[str, Any]) -> str:
        with lock:
            arrivals.append(time.monotonic())
        return "Echo: " + body["messages"][-1]["content"]

    return arrivals, responder


def chat_requests(server: MockLLMServer) -> int:
    return server.count("/v1/chat/completions")


@pytest.mark.parametrize("workers", ["0", "2"])
def test_one_request_per_unique_request_and_none_on_rerun(
    project: pytest.Pytester, mock_llm: MockLLMServer, workers: str
) -> None:
    first = project.runpytest("-n", workers)
    first.assert_outcomes(passed=N_GOLDEN + N_OTHER, errors=1)  # 11 answers + test_ordinary; d3 errors
    assert chat_requests(mock_llm) == N_GOLDEN + N_OTHER - 1
    first.stdout.fnmatch_lines(["*ERROR*test_answer[[]d3[]]*task blew up for d3*"])
    rerun = project.runpytest("-n", workers)
    rerun.assert_outcomes(passed=N_GOLDEN + N_OTHER, errors=1)
    assert chat_requests(mock_llm) == N_GOLDEN + N_OTHER - 1  # all from the cache
    rerun.stdout.fnmatch_lines(["calls 0, cache hits 11, *"])


def report_counters(project: pytest.Pytester, *args: str) -> dict[str, float]:
    """Run pytest; the run's counters from its --llmeval-report file."""
    project.runpytest("--llmeval-report", "run.json", *args)
    counters: dict[str, float] = json.loads((project.path / "run.json").read_text())["counters"]
    return counters


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_rerun_reads_ahead_the_entries_each_item_looked_up(
    project: pytest.Pytester, mock_llm: MockLLMServer, workers: str
) -> None:
    first = report_counters(project, "-n", workers)
    assert first["calls"] == N_GOLDEN + N_OTHER - 1 and "cache_read_ahead" not in first
    rerun = report_counters(project, "-n", workers)
    assert rerun["cache_read_ahead"] == rerun["cache_hits"] == N_GOLDEN + N_OTHER - 1
    assert "calls" not in rerun
    # An edited example: its old entry is still read ahead (a stale note costs a read),
    # its new request misses once, and the next run reads the new entry ahead instead.
    edited = DATASET.replace("golden question 0", "golden question zero")
    (project.path / "cases.jsonl").write_text(edited)
    third = report_counters(project, "-n", workers)
    assert (third["calls"], third["cache_hits"]) == (1, N_GOLDEN + N_OTHER - 2)
    fourth = report_counters(project, "-n", workers)
    assert fourth["cache_read_ahead"] == fourth["cache_hits"] == N_GOLDEN + N_OTHER - 1
    assert chat_requests(mock_llm) == N_GOLDEN + N_OTHER


def test_deselected_items_are_never_computed(project: pytest.Pytester, mock_llm: MockLLMServer) -> None:
    project.runpytest("-m", "golden").assert_outcomes(passed=N_GOLDEN, deselected=N_OTHER + 1)
    assert chat_requests(mock_llm) == N_GOLDEN
    asked = sorted(body["messages"][-1]["content"] for _, body in mock_llm.requests)
    assert asked == [f"golden question {i}" for i in range(N_GOLDEN)]
    project.runpytest("-k", "d1 or d2", "-n", "2").assert_outcomes(passed=2)  # xdist does not count deselected
    assert chat_requests(mock_llm) == N_GOLDEN + 2


def test_outputs_are_computed_concurrently_within_the_limit(
    project: pytest.Pytester, mock_llm: MockLLMServer
) -> None:
    arrivals, responder = arrival_recorder()
    mock_llm.latency_s = 0.3
    mock_llm.responder = responder
    project.runpytest("--llmeval-concurrency", "3").assert_outcomes(passed=N_GOLDEN + N_OTHER, errors=1)
    arrivals.sort()
    # Requests leave in waves of at most 3; each wave is answered together, and the next
    # wave cannot be answered sooner than 0.3 s later, so a 0.25 s window holds one wave.
    most_in_window = max(sum(1 for t in arrivals if s <= t < s + 0.25) for s in arrivals)
    assert most_in_window == 3


def test_each_xdist_worker_prefetches_its_share(project: pytest.Pytester, mock_llm: MockLLMServer) -> None:
    arrivals, responder = arrival_recorder()
    mock_llm.latency_s = 0.5
    mock_llm.responder = responder
    result = project.runpytest("-n", "2", "--llmeval-concurrency", "3")
    result.assert_outcomes(passed=N_GOLDEN + N_OTHER, errors=1)
    arrivals.sort()
    # Computing one item at a time, two workers could have at most 2 calls answered
    # together; a wave of 3 shows a worker prefetching its share (3 in flight). Both
    # workers' waves may overlap or not, depending on when each started: at most 6.
    most_in_window = max(sum(1 for t in arrivals if s <= t < s + 0.4) for s in arrivals)
    assert 3 <= most_in_window <= 6


def test_provider_failure_is_an_error_not_a_failure(project: pytest.Pytester, mock_llm: MockLLMServer) -> None:
    mock_llm.fail_next(2, status=500)  # retries=1: the first item's call fails for good
    result = project.runpytest("-p", "no:randomly", "-k", "g0", "-rE")
    result.assert_outcomes(errors=1, deselected=N_GOLDEN + N_OTHER)
    result.stdout.fnmatch_lines(["*call to 'openai/mock' failed*after 1 retry*"])
    assert "g0" not in str(list((project.path / ".llmeval").rglob("*.json")))


def test_eval_output_without_task_is_a_clear_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "cases.jsonl").write_text('{"id": "a", "input": "x"}\n')
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.llmeval(dataset='cases.jsonl')\ndef test_x(eval_output):\n    pass\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*eval_output needs task= on the marker*"])


def test_async_task_and_llm_fixture_in_body(project: pytest.Pytester, mock_llm: MockLLMServer) -> None:
    project.makepyfile(
        test_async="""
        import pytest

        async def answer(example, llm):
            completion = await llm.acomplete(example.input, max_tokens=20)
            return completion.text.upper()

        @pytest.mark.llmeval(dataset="cases.jsonl", partitions="golden", task=answer)
        def test_async(eval_example, eval_output, llm):
            assert eval_output == ("Echo: " + eval_example.input).upper()
            again = llm(eval_example.input, max_tokens=20)
            assert again.cached and again.text == "Echo: " + eval_example.input
        """
    )
    project.runpytest("test_async.py").assert_outcomes(passed=N_GOLDEN)
    assert chat_requests(mock_llm) == N_GOLDEN


def test_progress_line_while_waiting(project: pytest.Pytester, mock_llm: MockLLMServer) -> None:
    mock_llm.latency_s = 0.8
    # A subprocess: output capture of an inline run does not behave as a real one does.
    result = project.runpytest_subprocess("-p", "no:randomly", "-k", "g0 or g1", "-rP")
    result.assert_outcomes(passed=2)
    # Not a TTY here: plain lines, not an updating one; on the terminal, not in an
    # item's captured output (-rP would show that as "Captured stdout setup").
    result.stdout.fnmatch_lines(["*llmeval: */2 outputs, * calls/s, 0 cache hits*"])
    assert "Captured stdout" not in result.stdout.str()


def test_max_cost_stops_paid_calls_and_fails_the_run(project: pytest.Pytester, mock_llm: MockLLMServer) -> None:
    # A model litellm knows the price of, served by the mock: costs are real numbers.
    project.makeini(
        "[pytest]\nllmeval_model = openai/gpt-4o-mini\n"
        f"llmeval_api_base = {mock_llm.base_url}\nllmeval_concurrency = 1\n"
    )
    result = project.runpytest("-p", "no:randomly", "-m", "golden", "--llmeval-max-cost", "0.0000001")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1 and outcomes.get("errors", 0) >= 1
    result.stdout.fnmatch_lines(["*--llmeval-max-cost 1e-07 USD is spent*no new paid calls*"])
    result.stdout.fnmatch_lines(["*budget spent: paid calls stopped*"])
    assert chat_requests(mock_llm) == outcomes["passed"]


def test_every_example_completes_through_injected_faults(
    pytester: pytest.Pytester, mock_llm: MockLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setattr("pytest_llmeval.client.BACKOFF_BASE_S", 0.02)
    (pytester.path / "cases.jsonl").write_text(
        "\n".join(f'{{"id": "c{i:03d}", "input": "question {i}"}}' for i in range(200))
    )
    pytester.makepyfile(TEST_FILE.replace('if example.id == "d3":', 'if False:'))
    mock_llm.fault_rates = {429: 0.10, 500: 0.05}
    mock_llm.retry_after_s = 0.05
    result = pytester.runpytest(
        "-p", "no:xdist", "--llmeval-model", "openai/mock", "--llmeval-api-base", mock_llm.base_url,
        "--llmeval-concurrency", "16", "--llmeval-retries", "8",
    )
    result.assert_outcomes(passed=201)
    faults = mock_llm.faults_served
    assert faults > 10  # about 15% of 200+ requests
    assert chat_requests(mock_llm) == 200 + faults  # every fault was retried, nothing else repeated
    result.stdout.fnmatch_lines([f"*retries {faults}*"])
