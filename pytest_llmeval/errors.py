"""Exceptions and warnings shared across the plugin.

Kept free of heavy imports: the plugin entry point imports this module.
"""

from __future__ import annotations

import pytest


class LLMEvalWarning(pytest.PytestWarning):
    """A soft problem worth a user's attention (e.g. a judge of the same model family)."""


class LLMEvalUsageError(Exception):
    """Base for problems in a user's test files or data, reported at collection.

    The message always names the thing (file and line, or marker), the value,
    and the fix.
    """


class DatasetError(LLMEvalUsageError):
    """A dataset file that cannot be loaded.

    ``str()`` gives ``<path>:<location>: <problem>. <fix>``, the form pytest
    users know from compiler and linter output.
    """

    def __init__(self, path: str, location: str | None, problem: str, fix: str) -> None:
        self.path = path
        self.location = location
        self.problem = problem
        self.fix = fix
        where = f"{path}:{location}" if location else path
        super().__init__(f"{where}: {problem}. {fix}")


class MarkerError(LLMEvalUsageError):
    """``@pytest.mark.llmeval`` used with arguments it does not take."""


class LLMCallError(Exception):
    """A model or judge call that failed for good (retries exhausted, malformed reply,
    budget spent, cache miss in replay mode).

    An item that raises it ends as an *error*, not a failure: nothing was measured,
    so nothing may be scored.
    """

    def __init__(self, message: str, *, model: str | None = None, kind: str = "provider") -> None:
        self.model = model
        self.kind = kind
        super().__init__(message)


class LLMEvalAssertionError(AssertionError):
    """A metric's verdict was not met. The message is the report: verdict line first,
    then criteria, input, output, reasoning and (when a baseline exists) the baseline score.
    """
