"""Which item the code running now belongs to (no heavy imports: the plugin entry uses it)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_llmeval.client import LLMClient
    from pytest_llmeval.dataset import EvalExample
    from pytest_llmeval.records import Record


@dataclass
class ItemContext:
    """What code running for one item can find out about it."""

    nodeid: str
    record: Record | None = None
    example: EvalExample | None = None
    llm: LLMClient | None = None
    baseline: dict[str, Any] | None = None  # this case's entry in the loaded baseline


# The item a call is made for: set while a test body runs and inside the pipeline's
# job for each item. Context variables follow asyncio tasks and (through
# run_coroutine_threadsafe) calls from worker threads, so nested calls see it.
current_item: contextvars.ContextVar[ItemContext | None] = contextvars.ContextVar(
    "pytest_llmeval_current_item", default=None
)
