"""The baseline file: one run's cases, stored to compare later runs with.

Layout (``schema_version`` 1), written with sorted keys so a re-saved baseline
diffs only where a case changed::

    {"cases": {"<nodeid>": {"judge": {"relevance": "<judge identity>"},
                            "outcome": "passed",
                            "partition": "golden",
                            "scores": {"relevance": 4.0}}},
     "kind": "pytest-llmeval baseline",
     "schema_version": 1}

A case is keyed by its item's node id (relative to the rootdir, so the file is
the same on every machine). Nothing that changes between identical runs is
stored: no durations, timestamps or absolute paths. Only the controller writes,
through :func:`write_atomic` (temp file, then ``os.replace``), so a reader never
sees half a file, even when a run is killed mid-write.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_llmeval.records import Record

SCHEMA_VERSION = 1
KIND = "pytest-llmeval baseline"
REPORT_KIND = "pytest-llmeval report"  # report.py's files; named here so either file can be read as cases
SAVE_HINT = "run once with --llmeval-save-baseline"

Case = dict[str, Any]


class BaselineError(Exception):
    """A baseline (or report) that cannot be used; the message says what to run.

    ``problem`` and ``fix`` are the two halves of the message, for callers that
    reword the fix for their own context.
    """

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(f"{problem}; {fix}" if fix else problem)
        self.problem = problem
        self.fix = fix


class BaselineMissing(BaselineError):
    """No file where the baseline should be."""


def case_of(record: Record) -> Case:
    """The part of a record a baseline keeps: partition, outcome, scores and judge identities.

    Scores are the metrics with a finite number; a judge identity is the
    ``judge`` string a judge metric puts on its entry.
    """
    scores: dict[str, float] = {}
    judges: dict[str, str] = {}
    for name, entry in record.metrics.items():
        value = entry.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            scores[name] = float(value)
        if isinstance(entry.get("judge"), str):
            judges[name] = entry["judge"]
    return {"partition": record.partition, "outcome": record.outcome, "scores": scores, "judge": judges}


def cases_from_records(records: Iterable[Record]) -> dict[str, Case]:
    """Cases keyed by node id, in node id order."""
    return {record.nodeid: case_of(record) for record in sorted(records, key=lambda r: r.nodeid)}


def dumps(document: Mapping[str, Any]) -> str:
    """Stored JSON: sorted keys, one key per line (small diffs), a final newline."""
    return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` all at once: a temp file beside it, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def save(path: Path, cases: Mapping[str, Case]) -> None:
    """Write a baseline holding ``cases``."""
    write_atomic(path, dumps({"kind": KIND, "schema_version": SCHEMA_VERSION, "cases": dict(cases)}))


def read_json(path: Path, shown: str, source: str) -> dict[str, Any]:
    """A stored pytest-llmeval file as a dict, or a :class:`BaselineError` saying what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineMissing(f"{source}: no file at {shown}") from None
    except OSError as exc:
        raise BaselineError(f"{source}: cannot read {shown} ({exc.strerror})", "check the path and its permissions") \
            from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        where = f" ({exc.msg} at line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise BaselineError(f"{source}: {shown} is not valid JSON{where}") from None
    if not isinstance(document, dict):
        raise BaselineError(f"{source}: {shown} holds a JSON {type(document).__name__}, not a pytest-llmeval file")
    return document


def load(path: Path, shown: str, source: str = "--llmeval-baseline") -> dict[str, Case]:
    """The cases of the baseline at ``path`` (``shown`` is how messages name it).

    Raises :class:`BaselineMissing` or :class:`BaselineError`, whose messages end
    with what to run.
    """
    try:
        document = read_json(path, shown, source)
    except BaselineMissing:
        raise BaselineMissing(f"{source}: no baseline at {shown}", SAVE_HINT) from None
    except BaselineError as exc:
        raise BaselineError(exc.problem, exc.fix or f"delete it or {SAVE_HINT} to write a new one") from None
    kind = document.get("kind")
    if kind == REPORT_KIND:
        raise BaselineError(f"{source}: {shown} is a pytest-llmeval report, not a baseline",
                            f"pass the baseline file (default .llmeval/baseline.json), or {SAVE_HINT}")
    if kind != KIND:
        raise BaselineError(f"{source}: {shown} is not a pytest-llmeval baseline (kind {kind!r})",
                            f"{SAVE_HINT} to write one")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BaselineError(
            f"{source}: {shown} has schema version {version!r} but this pytest-llmeval reads version {SCHEMA_VERSION}",
            f"{SAVE_HINT} to write it anew",
        )
    return validate_cases(document.get("cases"), f"{source}: {shown}")


def validate_cases(cases: Any, where: str) -> dict[str, Case]:
    """Check the shape of stored cases (a hand-edited file fails here, not deep in a test)."""
    if not isinstance(cases, dict):
        raise BaselineError(f"{where}: 'cases' is missing or not an object", f"{SAVE_HINT} to write a new baseline")
    for case_id, case in cases.items():
        problem = _case_problem(case)
        if problem:
            raise BaselineError(f"{where}: case {case_id!r} {problem}", f"fix the entry or {SAVE_HINT}")
    return dict(cases)


def _case_problem(case: Any) -> str:
    if not isinstance(case, dict):
        return "is not an object"
    if not isinstance(case.get("partition"), str):
        return "has no partition"
    if case.get("outcome") not in ("passed", "failed", "error", "skipped"):
        return f"has outcome {case.get('outcome')!r}, not passed, failed, error or skipped"
    scores = case.get("scores", {})
    if not isinstance(scores, dict) or not all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in scores.values()
    ):
        return "has scores that are not numbers"
    if not isinstance(case.get("judge", {}), dict):
        return "has a judge entry that is not an object"
    return ""


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (messages and reports hold no absolute paths)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
