"""The pytest entry point (``pytest11: llmeval``): options, markers, fixtures.

Deliberately thin: it registers things and delegates to :mod:`pytest_llmeval.session`
(where ``eval_output`` is defined, on the session object: see there).
Importing it must not import litellm, scipy, numpy, diskcache or pydantic, so a
project with no evals pays next to nothing for having the plugin installed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from pytest_llmeval import settings
from pytest_llmeval.session import SESSION_KEY, LLMEvalSession, get_session

if TYPE_CHECKING:
    from pytest_llmeval.client import LLMClient
    from pytest_llmeval.dataset import EvalExample
    from pytest_llmeval.records import Record

# litellm downloads a model cost map when it is imported; no CI box we know of
# should pay a network timeout for that. Set here, at plugin import, so it also
# covers a conftest that imports litellm itself. A user's own setting wins.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def pytest_addoption(parser: pytest.Parser) -> None:
    settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "llmeval(dataset, partitions=None, tags=None, task=None, metrics=None): run the test once per "
        "example of an eval dataset (pytest-llmeval). Keywords only.",
    )
    session = LLMEvalSession(config)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "llmeval-session")
    from pytest_llmeval.verdict import VerdictPlugin

    config.pluginmanager.register(VerdictPlugin(session), "llmeval-verdict")
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_llmeval.xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(session), "llmeval-xdist")


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    # `assert result.score >= 4`: the score is a float that knows its result. Anything
    # else returns at once, without importing the metric machinery.
    if type(left).__name__ != "Score" and type(right).__name__ != "Score":
        return None
    from pytest_llmeval.metric import assertrepr

    return assertrepr(op, left, right)


@pytest.fixture
def eval_example() -> EvalExample:
    """The :class:`~pytest_llmeval.EvalExample` this item runs (tests marked ``@pytest.mark.llmeval``).

    Fields: ``id``, ``partition``, ``input``, ``expected_output``, ``context``,
    ``criteria``, ``tags``, ``metadata``.
    """
    # Marked tests get their example as a parameter, which overrides this fixture. No
    # `request` argument: it would join the fixture closure of every marked item, and
    # pytest builds a fixture definition for `request` at each setup (pytest names the
    # item above this error anyway).
    pytest.fail(
        "the eval_example fixture is only available in tests marked @pytest.mark.llmeval(dataset=...)",
        pytrace=False,
    )


@pytest.fixture
def llmeval_record(request: pytest.FixtureRequest, eval_example: EvalExample) -> Record:
    """This item's record: add your own metrics with ``llmeval_record.add_metric(name, value, passed=None)``.

    Records appear in the ``llmeval summary``, in ``--llmeval-report`` files and in baselines.
    """
    return get_session(request.config).record_for(request.node)


@pytest.fixture
def llm(request: pytest.FixtureRequest) -> LLMClient:
    """The model client, bound to the model under test (``--llmeval-model``).

    ``llm(prompt_or_messages, model=None, **params)`` returns a ``Completion`` with
    ``.text``, ``.model``, ``.cached``, ``.latency_s``, ``.usage``, ``.cost_usd``;
    ``await llm.acomplete(...)`` from async code; ``llm.embed(texts)`` for vectors.
    Calls are cached, retried and bounded by ``--llmeval-concurrency``.
    """
    return get_session(request.config).client


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> LLMClient:
    """The model client bound to the judge model (``--llmeval-judge-model``; default: the model under test)."""
    return get_session(request.config).client.judge()
