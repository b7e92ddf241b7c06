"""Shared fixtures for pytest-llmeval's own tests.

No test reaches the network: model calls go to the mock OpenAI-compatible
server on 127.0.0.1 (see ``pytest_llmeval.mockserver``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pytest_llmeval.mockserver import MockLLMServer

# litellm fetches a cost map from the internet at import; no machine here can
# reach it and the failed fetch costs seconds. The plugin sets the same default.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    # Import litellm once in the outer process. Imported for the first time inside an
    # inline pytester run, it is dropped again by pytester's sys.modules snapshot, and
    # the next inline run then fails to load the xdist plugin ("unrecognized -n").
    import litellm  # noqa: F401

    # Same for numpy and scipy (the statistics module imports them lazily): numpy cannot
    # be imported twice in one process, and pytester would drop it after a run that
    # imported it first.
    import numpy  # noqa: F401
    import scipy.stats  # noqa: F401


@pytest.fixture(scope="session")
def mock_llm_server() -> Iterator[MockLLMServer]:
    """One mock OpenAI-compatible server on 127.0.0.1 for the whole session.

    Starting a server costs a thread and an event loop; sharing one keeps tests
    fast. Tests should use ``mock_llm``, which resets it; use this directly only
    for read-only checks such as ``mock_llm_server.base_url``.
    """
    with MockLLMServer() as server:
        yield server


@pytest.fixture
def mock_llm(mock_llm_server: MockLLMServer) -> Iterator[MockLLMServer]:
    """A started mock OpenAI-compatible server, reset for this test.

    Point litellm at ``mock_llm.base_url`` (``api_key`` may be any string).
    Script replies with ``mock_llm.script(...)`` or ``mock_llm.responder``,
    inject faults with ``mock_llm.fail_next(...)`` or ``mock_llm.fault_rates``,
    and inspect ``mock_llm.requests`` / ``mock_llm.count(path)``. Requests,
    scripts, faults and configuration are reset before each test.
    """
    mock_llm_server.reset()
    yield mock_llm_server
    # Reset afterwards too, so a hang or script left by this test cannot leak
    # into a test that uses mock_llm_server directly.
    mock_llm_server.reset()
