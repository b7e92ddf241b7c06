"""Per-item records: what one llmeval item measured, as plain data.

A record is built on the process that runs the item (an xdist worker or the
only process), rides to the controller on the item's teardown report (pytest
serialises ``report.__dict__``), and is read back there. Only JSON-safe values
cross that boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("passed", "failed", "error", "skipped")

# Attribute on the teardown report that carries the record to the controller.
REPORT_ATTR = "llmeval_record"

# Prefix of the item's JUnit XML properties (``Record.junit_properties``).
PROPERTY_PREFIX = "llmeval."


def plain(value: Any) -> Any:
    """Convert a value to JSON-safe plain Python (no numpy scalars, no pydantic models)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "model_dump"):
        return plain(value.model_dump(mode="json"))
    if hasattr(value, "item"):  # numpy scalar
        return plain(value.item())
    return str(value)


@dataclass
class Record:
    """What one llmeval item produced.

    ``metrics`` maps a metric name to ``{"value": float | None, "passed": bool | None, ...}``;
    extra keys carry details such as the judge identity.
    """

    nodeid: str
    example_id: str
    partition: str
    tags: list[str] = field(default_factory=list)
    outcome: str = "passed"
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    duration_s: float = 0.0
    message: str | None = None

    def add_metric(self, name: str, value: float | None, passed: bool | None = None, **details: Any) -> None:
        """Record a metric for this item (shown in the summary, stored in reports and baselines).

        ``passed`` is optional: a metric may be informational only.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"add_metric: name must be a non-empty string, got {name!r}")
        if value is not None and not isinstance(value, (int, float)):
            raise TypeError(f"add_metric({name!r}): value must be a number or None, got {type(value).__name__}")
        # Made plain here, once, so that to_dict (for every item) only copies.
        entry: dict[str, Any] = plain({"value": None if value is None else float(value), "passed": passed, **details})
        self.metrics[name] = entry

    def junit_properties(self) -> list[tuple[str, Any]]:
        """The item's ``user_properties`` for JUnit XML: partition, then each metric's value and pass."""
        properties: list[tuple[str, Any]] = [(PROPERTY_PREFIX + "partition", self.partition)]
        for name, entry in sorted(self.metrics.items()):
            if entry.get("value") is not None:
                properties.append((PROPERTY_PREFIX + name, entry["value"]))
            if entry.get("passed") is not None:
                properties.append((f"{PROPERTY_PREFIX}{name}.passed", entry["passed"]))
        return properties

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe data (keys sorted when dumped)."""
        return {
            "nodeid": self.nodeid,
            "example_id": self.example_id,
            "partition": self.partition,
            "tags": list(self.tags),
            "outcome": self.outcome,
            "metrics": {name: dict(entry) for name, entry in self.metrics.items()},  # plain since add_metric
            "duration_s": round(float(self.duration_s), 6),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Inverse of :meth:`to_dict`."""
        return cls(
            nodeid=data["nodeid"],
            example_id=data["example_id"],
            partition=data["partition"],
            tags=list(data.get("tags", [])),
            outcome=data.get("outcome", "passed"),
            metrics=dict(data.get("metrics", {})),
            duration_s=float(data.get("duration_s", 0.0)),
            message=data.get("message"),
        )
