"""Concurrency slots that cover the model request itself, not litellm's work around it.

``--llmeval-concurrency C`` promises at most C requests in flight at the provider.
A slot held for a whole litellm call is also held through litellm's own work on
the client before and after the request: building it, parsing the answer, pricing
and logging it (about 3 ms of CPU a call, longer while other calls queue for the
event loop). At 100 ms of provider latency that kept each slot busy for ~112 ms
per call, so C slots delivered only ~0.89 C requests in flight.

So once a model's requests are seen to go through httpx (litellm sends every HTTP
provider's requests with it), that model's later calls take their slot inside
``httpx.AsyncClient.send``, for the request and its response body only. A model
whose calls never reach httpx (the embedded local model, a custom provider) keeps
holding its slot for the whole call. Either way no more than C requests are in
flight. A second, wider bound (2 C) limits how many calls are inside litellm at
once, so preparing the next requests overlaps the ones in flight without every
queued call starting at once.

The hook acts only inside a call made by pytest-llmeval (a context variable marks
it); any other use of httpx in the process passes straight through.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable
from typing import Any


class SlotUse:
    """What the httpx hook does for the requests of one litellm call.

    ``take`` is false when the caller already holds a slot for the whole call (the
    hook then only notes that the model speaks HTTP); ``admit`` runs once a slot is
    taken and may refuse the request (the budget), which the caller re-raises as is.
    """

    __slots__ = ("admit", "refused", "seen", "semaphore", "take", "waited_s")

    def __init__(self, semaphore: asyncio.Semaphore, *, take: bool,
                 admit: Callable[[], None] | None = None) -> None:
        self.semaphore = semaphore
        self.take = take
        self.admit = admit
        self.seen = False
        self.refused: BaseException | None = None
        self.waited_s = 0.0  # queued for a slot: not part of the call's latency


CURRENT: contextvars.ContextVar[SlotUse | None] = contextvars.ContextVar("llmeval_slot_use", default=None)

_installed = False


def install() -> None:
    """Wrap ``httpx.AsyncClient.send`` once per process (idempotent)."""
    global _installed
    if _installed:
        return
    import httpx

    original = httpx.AsyncClient.send

    @functools.wraps(original)
    async def send(self: Any, request: Any, **kwargs: Any) -> Any:
        use = CURRENT.get()
        if use is None:
            return await original(self, request, **kwargs)
        use.seen = True
        if not use.take:
            return await original(self, request, **kwargs)
        semaphore = use.semaphore
        queued = time.perf_counter()
        await semaphore.acquire()
        use.waited_s += time.perf_counter() - queued
        try:
            if use.admit is not None:
                try:
                    use.admit()
                except BaseException as exc:
                    use.refused = exc
                    raise
            response = await original(self, request, **kwargs)
        except BaseException:
            semaphore.release()
            raise
        if not kwargs.get("stream"):
            semaphore.release()  # send() has read the whole body
            return response
        _release_on_close(response, semaphore)
        return response

    send.__llmeval_slots__ = True  # type: ignore[attr-defined]
    httpx.AsyncClient.send = send  # type: ignore[method-assign]
    _installed = True


def _release_on_close(response: Any, semaphore: asyncio.Semaphore) -> None:
    """A streamed body is still in flight until the response is closed."""
    close = response.aclose
    released = False

    async def aclose() -> None:
        nonlocal released
        try:
            await close()
        finally:
            if not released:
                released = True
                semaphore.release()

    response.aclose = aclose
