"""xdist support, by xdist's own protocol (registered only when xdist is installed).

Per-item records ride on each item's teardown report. Run-level figures go the
documented way: the worker puts plain data in ``config.workeroutput`` and the
controller reads it in ``pytest_testnodedown``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_llmeval.session import LLMEvalSession

WORKEROUTPUT_KEY = "llmeval"


class XdistHooks:
    """Hooks that exist only under xdist."""

    def __init__(self, session: LLMEvalSession) -> None:
        self.session = session
        # Decided up front: xdist configures the nodes (pytest_configure_node) before
        # it asks for a scheduler, and the workers must know which rule is in force.
        self.static_share = session.config.getoption("dist", "no") == "load"

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        # Under --dist load (what -n implies), hand each worker a fixed share of the
        # items up front, so it can compute all of its outputs concurrently instead
        # of learning its next items a few at a time. Other --dist modes are left alone.
        if not self.static_share:
            return None
        from pytest_llmeval.xdist_scheduling import StaticShareScheduling

        return StaticShareScheduling(config, log)

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["llmeval"] = {"static_share": self.static_share}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        if hasattr(config, "workeroutput"):
            config.workeroutput[WORKEROUTPUT_KEY] = self.session.worker_output()

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        if output is not None:
            self.session.merge_worker_output(output)
