"""An xdist scheduler that gives every worker a fixed share of the items at the start.

Worker ``gwN`` of K runs the items whose index in the collection satisfies
``index % K == N``: the same rule the worker applies to its own ``session.items``
to know, before its first item starts, which outputs to compute. Sending all
items at once costs the load balancing of ``--dist load``; for eval items of
similar cost, prefetching concurrently is worth far more.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScheduling


class StaticShareScheduling(LoadScheduling):
    """``--dist load`` with the whole collection distributed round-robin by worker number."""

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:  # a node was added or replaced: fall back to load balancing
            super().schedule()
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = next(iter(self.node2collection.values()))
        self.pending[:] = range(len(self.collection))
        if not self.collection:
            return
        count = len(self.nodes)
        total = len(self.collection)
        # The first nodes are always gw0..gw{K-1}; each takes every K-th item from its number.
        for node in self.nodes:
            share = list(range(_worker_number(node) % count, total, count))
            self.node2pending[node].extend(share)
            if share:
                node.send_runtest_some(share)
        self.pending[:] = []
        for node in self.nodes:
            node.shutdown()


def _worker_number(node: Any) -> int:
    return int(str(node.gateway.id).lstrip("gw") or 0)
