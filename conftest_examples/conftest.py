"""Project settings for the example, kept next to it so that `pytest conftest_examples` needs no flags.

In your own project, put the same values in your ini file instead:

    [tool.pytest.ini_options]
    llmeval_thresholds = ["golden=1.0", "regression=1.0", "adversarial=0.5", "distribution=0.6"]
    llmeval_baseline = "evals/baseline.json"

(This repository's pyproject.toml configures the plugin's own tests, so the example
sets its defaults here.) Anything given on the command line still wins:
`--llmeval-threshold distribution=0.9`, `--llmeval-baseline other.json`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# The pass rate each partition needs for the run to pass (see README.md, "Gates").
THRESHOLDS = {
    "golden": 1.0,  # the minimum bar: every example, every time
    "regression": 1.0,  # a past failure that comes back fails the run
    "adversarial": 0.5,  # the tiny local model handles 6 of these 10; raise with a real model
    "distribution": 0.6,  # the tiny local model gets about 2 in 3 right; raise with a real model
}

# The committed baseline: a plain run compares itself with it.
BASELINE = Path(__file__).parent / "baseline.json"


@pytest.hookimpl(tryfirst=True)  # before pytest-llmeval reads its settings
def pytest_configure(config: pytest.Config) -> None:
    # A partition named in the ini file or on the command line keeps that value.
    given = [*(config.getini("llmeval_thresholds") or []), *(config.getoption("llmeval_threshold") or [])]
    named = {str(entry).partition("=")[0].strip() for entry in given}
    defaults = [f"{partition}={rate}" for partition, rate in THRESHOLDS.items() if partition not in named]
    config.option.llmeval_threshold = defaults + list(config.getoption("llmeval_threshold") or [])
    # The committed baseline, unless another one is named (or it is missing and not being saved).
    named_baseline = config.getoption("llmeval_baseline") or config.getini("llmeval_baseline")
    if not named_baseline and (BASELINE.exists() or config.getoption("llmeval_save_baseline")):
        config.option.llmeval_baseline = str(BASELINE)


# The embedded judge (SmolLM2-135M) runs every judge path for real, but its verdicts carry no
# signal: on this project it gives every reply 1 out of 5 (the empty reply too), answers "A"
# whatever the order of a pairwise comparison, labels claims at random, and now and then
# runs out of tokens mid-JSON. No threshold could pass the golden set and fail a bad reply.
# So the judge-based checks keep a real judge's bar everywhere, and on the embedded judge
# they are *expected* failures (xfail): they run (calls, JSON, reports), and an XPASS
# shows when the tiny judge happens to agree. With any other judge they gate as usual.
WEAK_JUDGES = {"local/smollm2"}


@pytest.fixture
def needs_a_real_judge(request: pytest.FixtureRequest, judge) -> None:
    """Use on a test whose checks are judge verdicts (see WEAK_JUDGES above)."""
    if judge.model in WEAK_JUDGES:
        from pytest_llmeval import LLMCallError

        request.applymarker(pytest.mark.xfail(
            reason=f"the judge {judge.model} is too small to judge; rerun with --llmeval-judge-model "
                   "(docs/hosted-providers.md)",
            raises=(AssertionError, LLMCallError, pytest.fail.Exception),  # a wrong verdict, or a malformed one
        ))
