"""Benchmark pytest-llmeval as a user runs it, against the mock server at fixed latency.

The work: N cases, each one call to the model under test (``task=``) plus one
judge call (``metrics=[JudgeScore(...)]``). With C calls in flight in total and
latency L, no run can beat the latency ideal ``2·N·L / C``; the table reports
each run's wall time as a ratio to it, next to the calls the server counted,
the CPU seconds and the peak RSS of the whole process tree.

    python benchmarks/bench.py            # the full table (several minutes)
    python benchmarks/bench.py --quick    # N=200, a smoke run

Ratios are measured within one run, so a busy machine moves them less than it
moves absolute times. This is not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Model names litellm prices, as a real run's are: each call is priced and logged
# as it would be against the provider. (A name litellm cannot price costs it about
# 0.4 ms more per call; docs/benchmarks.md gives that run's figures too.)
APP_MODEL = "openai/gpt-4o-mini"
JUDGE_MODEL = "openai/gpt-4.1-mini"

VERDICT = json.dumps({"score": 4, "reasoning": "Answers the question.", "strengths": ["direct"], "weaknesses": []})

TEST_FILE = """
import pytest
from pytest_llmeval import JudgeScore

def answer(example, llm):
    return llm(example.input).text

@pytest.mark.llmeval(dataset="cases.jsonl", task=answer,
                     metrics=[JudgeScore(criteria=["answers the question"], min_score=3)])
def test_case(eval_output):
    assert eval_output
"""

PLAIN_TEST_FILE = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_case(i):
    assert i >= 0
"""

NO_EVAL_FILE = """
import sys

def test_one():
    assert 1 + 1 == 2

def test_two():
    assert "litellm" not in sys.modules, "the plugin imported litellm in a run with no evals"
"""


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    output: str


def start_mock(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_llmeval.mockserver", "--port", "0", "--latency", str(latency),
         "--json-reply", VERDICT],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("MOCK_URL="):
        proc.kill()
        raise SystemExit(f"mock server did not start: {line!r}")
    return proc, line.split("=", 1)[1]


def mock_call(url: str, path: str, body: dict | None = None) -> dict:
    root = url.rsplit("/v1", 1)[0]
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(root + path, data=data, method="POST" if data else "GET"),
                                timeout=10) as response:
        return json.loads(response.read() or b"{}")


def model_requests(url: str) -> int:
    counts = mock_call(url, "/_mock/stats")["counts"]
    return sum(v for k, v in counts.items() if k.startswith("/v1/"))


def tree_rss_mb(root_pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * resource.getpagesize()
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 2**20


def run_pytest(args: list[str], cwd: Path, env: dict[str, str]) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.1):
            peak = max(peak, tree_rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, peak, proc.returncode, output)


def make_project(root: Path, n: int, *, test_file: str = TEST_FILE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "cases.jsonl", "w") as f:
        for i in range(n):
            partition = "golden" if i % 10 == 0 else "distribution"
            f.write(json.dumps({"id": f"case-{i:05d}", "partition": partition,
                                "input": f"Customer question number {i}: how do I reset my password?"}) + "\n")
    (root / "test_cases.py").write_text(test_file)
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


def check(run: Run, what: str) -> None:
    if run.returncode not in (0,):
        tail = "\n".join(run.output.splitlines()[-25:])
        raise SystemExit(f"{what}: pytest exited {run.returncode}\n{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N=200 only, for a smoke run")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--keep", action="store_true", help="keep the generated projects")
    parser.add_argument("--sizes", type=int, nargs="+", help="N values to run (default 1000 5000)")
    parser.add_argument("--only-cold", action="store_true", help="skip collection and no-eval rows")
    parser.add_argument("--warm-runs", type=int, default=5, metavar="K",
                        help="warm reruns (each paired with a plain pytest run) per size and mode (default 5)")
    args = parser.parse_args()

    latency = args.latency
    sizes = args.sizes or ([200] if args.quick else [1000, 5000])
    work = Path(tempfile.mkdtemp(prefix="llmeval-bench-"))
    mock, url = start_mock(latency)
    env = dict(os.environ, OPENAI_API_KEY="sk-bench", LITELLM_LOCAL_MODEL_COST_MAP="True")
    # Measure as a user runs: with bytecode caching. Without it (some CI images set
    # PYTHONDONTWRITEBYTECODE), every run recompiles and assertion-rewrites every
    # plugin module, which costs the plugin and plain pytest alike about a second.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    common = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--llmeval-model", APP_MODEL,
              "--llmeval-judge-model", JUDGE_MODEL, "--llmeval-api-base", url]
    rows: list[list[str]] = []
    header = ["run", "N", "L s", "workers", "conc/wkr", "in flight", "wall s", "ideal s", "ratio",
              "calls", "CPU s", "peak RSS MiB"]
    notes: list[str] = []
    try:
        for n in sizes:
            ideal = 2 * n * latency / 16
            for workers, conc in ((0, 16), (2, 8)):
                project = make_project(work / f"n{n}-w{workers}", n)
                mock_call(url, "/_mock/reset", {})
                xdist = ["-n", str(workers)] if workers else ["-p", "no:xdist"]
                run = run_pytest([*common, *xdist, "--llmeval-concurrency", str(conc)], project, env)
                check(run, f"cold N={n} workers={workers}")
                calls = model_requests(url)
                rows.append(["cold", str(n), f"{latency:g}", str(workers or 1), str(conc), "16",
                             f"{run.wall_s:.1f}", f"{ideal:.1f}", f"{run.wall_s / ideal:.2f}", str(calls),
                             f"{run.cpu_s:.1f}", f"{run.peak_rss_mb:.0f}"])
                # Warm reruns of the same project, interleaved with plain pytest in the same
                # mode: runs this short move by 10% and more from one to the next on a
                # shared machine, so the ratio is of the medians of several runs each.
                mock_call(url, "/_mock/reset", {})
                plain_dir = make_project(work / f"plain-{n}-w{workers}", n,
                                         test_file=PLAIN_TEST_FILE.format(n=n))
                warms: list[Run] = []
                plains: list[Run] = []
                for _ in range(args.warm_runs):
                    warms.append(run_pytest([*common, *xdist, "--llmeval-concurrency", str(conc)], project, env))
                    check(warms[-1], "warm rerun")
                    plains.append(run_pytest(["-q", "-p", "no:cacheprovider", *xdist], plain_dir, env))
                    check(plains[-1], "plain pytest")
                warm_s = statistics.median(r.wall_s for r in warms)
                plain_s = statistics.median(r.wall_s for r in plains)
                pairs = sorted(w.wall_s / p.wall_s for w, p in zip(warms, plains))
                rows.append(["warm", str(n), f"{latency:g}", str(workers or 1), str(conc), "16",
                             f"{warm_s:.2f}", f"{plain_s:.2f}*", f"{warm_s / plain_s:.2f}",
                             str(model_requests(url)), f"{statistics.median(r.cpu_s for r in warms):.1f}",
                             f"{max(r.peak_rss_mb for r in warms):.0f}"])
                notes.append(f"  warm N={n} workers={workers or 1}: run-by-run ratios {pairs[0]:.2f} to {pairs[-1]:.2f} "
                             f"(median {statistics.median(pairs):.2f}) over {len(pairs)} pairs")
        notes.insert(0, f"* warm: the ideal column is a plain pytest run of N trivial parametrized tests in the "
                        f"same mode (one process, or -n 2); ratio = median warm / median plain, {args.warm_runs} "
                        "interleaved runs each; calls counts the warm runs' model requests (all of them)")

        if args.only_cold:
            return _print(rows, header, notes, latency)
        # Collection of 10,000 examples.
        big = make_project(work / "collect-10000", 10_000)
        collect = run_pytest(["--co", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"], big, env)
        check(collect, "--co")
        rows.append(["--co", "10000", "-", "1", "-", "-", f"{collect.wall_s:.2f}", "2.0 (target)",
                     f"{collect.wall_s / 2.0:.2f}", "0", f"{collect.cpu_s:.1f}", f"{collect.peak_rss_mb:.0f}"])

        # A project with no evals, with and without the plugin.
        noeval = work / "no-evals"
        noeval.mkdir()
        (noeval / "test_plain.py").write_text(NO_EVAL_FILE)
        (noeval / "pytest.ini").write_text("[pytest]\n")
        base = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
        with_plugin, without = [], []
        for _ in range(7):  # interleaved, median: start-up times are noisy
            run = run_pytest(base, noeval, env)
            check(run, "no-evals with plugin")
            with_plugin.append(run.wall_s)
            without.append(run_pytest([*base, "-p", "no:llmeval"], noeval, env).wall_s)
        added_ms = 1000 * (statistics.median(with_plugin) - statistics.median(without))
        rows.append(["no evals", "-", "-", "1", "-", "-", f"{statistics.median(with_plugin):.2f}",
                     f"{statistics.median(without):.2f}**", f"{added_ms:+.0f} ms", "0", "-", "-"])
        notes.append("** no evals: the plugin's cost is the median wall time with it minus without it "
                     "(-p no:llmeval), 7 runs each; the run asserts litellm was not imported")
    finally:
        mock.terminate()
        mock.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    return _print(rows, header, notes, latency)


def _print(rows: list[list[str]], header: list[str], notes: list[str], latency: float) -> int:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"pytest-llmeval benchmark on {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"mock latency {latency:g} s, 16 calls in flight in total")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
