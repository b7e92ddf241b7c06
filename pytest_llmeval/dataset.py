"""Eval datasets: the example model, loaders for four formats, and their errors.

Every problem in a file becomes a :class:`~pytest_llmeval.errors.DatasetError`
that names the file, the line (or record, or row), the field and the fix, e.g.
``evals/support.jsonl:17: duplicate id 'refund-03' (first defined on line 4)``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pytest_llmeval.errors import DatasetError
from pytest_llmeval.settings import DEFAULT_PARTITIONS
SUPPORTED_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".yaml", ".yml", ".csv")

# Tags become pytest markers, so they must survive `-m` expressions.
_TAG_RE = re.compile(r"^[A-Za-z_][\w\-.]*$")


class EvalExample(BaseModel):
    """One evaluation case.

    ``input`` is what the application receives (a string, or a dict of named
    fields); ``expected_output`` is a reference answer when one exists;
    ``context`` holds the grounding documents; ``criteria`` the judge criteria
    specific to this case.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    partition: str = "distribution"
    input: str | dict[str, Any]
    expected_output: str | None = None
    context: str | list[str] | None = None
    criteria: list[str] | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None

    @field_validator("tags")
    @classmethod
    def _tags_are_marker_names(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not _TAG_RE.match(tag):
                raise ValueError(
                    f"tag {tag!r} cannot be a pytest marker; use letters, digits, '_', '-' or '.',"
                    " starting with a letter"
                )
        return tags

    @field_validator("created_at")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO 8601 time such as 2026-01-31T12:00:00Z") from None
        return value

    @property
    def context_text(self) -> str | None:
        """The grounding documents as one string (documents separated by blank lines)."""
        if self.context is None:
            return None
        if isinstance(self.context, str):
            return self.context
        return "\n\n".join(self.context)

    @property
    def input_text(self) -> str:
        """The input as text: the string itself, or the dict as sorted JSON."""
        if isinstance(self.input, str):
            return self.input
        return json.dumps(self.input, sort_keys=True, ensure_ascii=False)


_FIELDS = tuple(EvalExample.model_fields)


class EvalDataset:
    """A named, ordered collection of :class:`EvalExample` with unique ids."""

    def __init__(self, name: str, examples: Sequence[EvalExample], path: Path | None = None) -> None:
        self.name = name
        self.examples: list[EvalExample] = list(examples)
        self.path = path
        seen: dict[str, int] = {}
        for index, example in enumerate(self.examples):
            if example.id in seen:
                raise ValueError(
                    f"duplicate id {example.id!r} (examples {seen[example.id] + 1} and {index + 1})"
                )
            seen[example.id] = index

    def __iter__(self) -> Iterator[EvalExample]:
        return iter(self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __repr__(self) -> str:
        return f"EvalDataset({self.name!r}, {len(self.examples)} examples)"

    def partition(self, name: str) -> EvalDataset:
        """The examples of one partition, as a dataset of their own."""
        return EvalDataset(f"{self.name}:{name}", [e for e in self.examples if e.partition == name])

    def stats(self) -> dict[str, Any]:
        """Counts: ``total``, per ``partitions`` and per ``tags`` (sorted, plain data)."""
        partitions = Counter(e.partition for e in self.examples)
        tags = Counter(t for e in self.examples for t in e.tags)
        return {
            "total": len(self.examples),
            "partitions": dict(sorted(partitions.items())),
            "tags": dict(sorted(tags.items())),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the dataset in the format its suffix names; the write is atomic."""
        target = Path(path)
        suffix = target.suffix.lower()
        records = [e.model_dump(exclude_defaults=True, mode="json") for e in self.examples]
        for record, example in zip(records, self.examples):
            record["id"] = example.id  # always explicit, even if a default ever appears
            record["input"] = example.input
        if suffix == ".jsonl":
            text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
        elif suffix == ".json":
            text = json.dumps({"name": self.name, "examples": records}, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        elif suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump({"name": self.name, "examples": records}, allow_unicode=True, sort_keys=True)
        elif suffix == ".csv":
            text = _records_to_csv(records)
        else:
            raise ValueError(_unsupported_suffix_message(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, target)
        return target

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        partitions: Sequence[str] = DEFAULT_PARTITIONS,
        display_path: str | None = None,
    ) -> EvalDataset:
        """Load a dataset file (.jsonl, .json, .yaml/.yml, .csv).

        Raises :class:`DatasetError` naming the file, line, field and fix.
        ``display_path`` is how the file is named in messages (default: as given).
        """
        return load_dataset(path, partitions=partitions, display_path=display_path)


def load_dataset(
    path: str | os.PathLike[str],
    *,
    partitions: Sequence[str] = DEFAULT_PARTITIONS,
    display_path: str | None = None,
) -> EvalDataset:
    """Load a dataset file; see :meth:`EvalDataset.load`."""
    file = Path(path)
    shown = display_path or str(path)
    suffix = file.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DatasetError(shown, None, f"unsupported dataset format {file.suffix or '(no suffix)'!r}",
                           f"Use one of {', '.join(SUPPORTED_SUFFIXES)}")
    if not file.is_file():
        raise DatasetError(shown, None, "no such dataset file",
                           "Check the path: it is relative to the test file that names it")
    text = file.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise DatasetError(shown, None, "the dataset file is empty",
                           "Add at least one example, or remove the marker that names this file")
    if suffix == ".jsonl":
        located = _read_jsonl(text, shown)
    elif suffix == ".json":
        located = _read_json(text, shown)
    elif suffix in (".yaml", ".yml"):
        located = _read_yaml(text, shown)
    else:
        located = _read_csv(text, shown)
    if not located:
        raise DatasetError(shown, None, "the dataset has no examples",
                           "Add at least one example, or remove the marker that names this file")
    examples = _validate(located, shown, tuple(partitions))
    return EvalDataset(file.stem, examples, path=file)


# --- readers: each returns [(location, raw record)] -------------------------------------


def _read_jsonl(text: str, shown: str) -> list[tuple[str, Any]]:
    located: list[tuple[str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            located.append((f"{lineno}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DatasetError(shown, f"{lineno}", f"invalid JSON ({exc.msg} at column {exc.colno})",
                               "Each line must hold one JSON object") from None
    return located


def _read_json(text: str, shown: str) -> list[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(shown, f"{exc.lineno}", f"invalid JSON ({exc.msg} at column {exc.colno})",
                           "Fix the syntax; the file must hold a list of examples or {\"examples\": [...]}"
                           ) from None
    records = _top_level_records(data, shown)
    lines = _json_array_lines(text, isinstance(data, dict))
    if len(lines) != len(records):  # could not locate reliably: fall back to record numbers
        lines = [None] * len(records)
    return [(f"{line}" if line else f"record {i}", r) for i, (line, r) in enumerate(zip(lines, records), start=1)]


def _read_yaml(text: str, shown: str) -> list[tuple[str, Any]]:
    import yaml

    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DatasetError(shown, where, f"invalid YAML ({problem})",
                           "Fix the syntax; the file must hold a list of examples or a mapping with 'examples'"
                           ) from None
    records = _top_level_records(data, shown)
    seq = node
    if isinstance(node, yaml.MappingNode):
        seq = next((v for k, v in node.value if getattr(k, "value", None) == "examples"), None)
    lines = [item.start_mark.line + 1 for item in seq.value] if isinstance(seq, yaml.SequenceNode) else []
    if len(lines) != len(records):
        return [(f"record {i}", r) for i, r in enumerate(records, start=1)]
    return [(f"{line}", r) for line, r in zip(lines, records)]


def _read_csv(text: str, shown: str) -> list[tuple[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise DatasetError(shown, "1", "no header row", "The first row must name the columns, e.g. id,partition,input")
    located: list[tuple[str, Any]] = []
    for row in reader:
        lineno = reader.line_num
        if None in row:
            raise DatasetError(shown, f"{lineno}", "the row has more cells than the header has columns",
                               "Quote cells that contain commas")
        located.append((f"{lineno}", _csv_row_to_record(row, shown, lineno)))
    return located


def _csv_row_to_record(row: dict[str, str], shown: str, lineno: int) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for column, cell in row.items():
        if cell is None or cell == "":
            continue
        if "." in column:
            head, _, key = column.partition(".")
            if head not in ("input", "metadata"):
                raise DatasetError(shown, "1", f"column {column!r}: only input.<name> and metadata.<name> columns may be dotted",
                                   "Rename the column")
            record.setdefault(head, {})[key] = cell
        elif column in ("tags", "criteria", "context"):
            record[column] = _csv_list(cell, column, shown, lineno)
        else:
            record[column] = cell
    return record


def _csv_list(cell: str, column: str, shown: str, lineno: int) -> Any:
    """A list cell: a JSON array, or values separated by '|'. A plain context stays a string."""
    stripped = cell.strip()
    if stripped.startswith("["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DatasetError(shown, f"{lineno}", f"field '{column}': invalid JSON array ({exc.msg})",
                               "Write a JSON array like [\"a\", \"b\"] or separate values with '|'") from None
    if column == "context" and "|" not in stripped:
        return cell
    return [part.strip() for part in stripped.split("|") if part.strip()]


def _top_level_records(data: Any, shown: str) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get("examples"), list):
        return data["examples"]
    if data is None:
        raise DatasetError(shown, None, "the dataset file is empty",
                           "Add at least one example, or remove the marker that names this file")
    raise DatasetError(shown, None, f"expected a list of examples or an object with 'examples', got {type(data).__name__}",
                       "Wrap the examples in a list, or in {\"examples\": [...]}")


def _json_array_lines(text: str, nested: bool) -> list[int]:
    """Line numbers of the elements of the examples array, found by decoding them in place."""
    decoder = json.JSONDecoder()
    start = 0
    if nested:
        match = re.search(r'"examples"\s*:\s*\[', text)
        if match is None:
            return []
        start = match.end()
    else:
        start = text.index("[") + 1
    lines: list[int] = []
    pos = start
    length = len(text)
    while pos < length:
        while pos < length and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= length or text[pos] == "]":
            break
        lines.append(text.count("\n", 0, pos) + 1)
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return []
    return lines


# --- validation ------------------------------------------------------------------------


def _validate(located: list[tuple[str, Any]], shown: str, partitions: tuple[str, ...]) -> list[EvalExample]:
    examples: list[EvalExample] = []
    first_seen: dict[str, str] = {}
    for location, raw in located:
        if not isinstance(raw, dict):
            raise DatasetError(shown, location, f"expected an object (an example), got {type(raw).__name__}",
                               "Each example is an object with at least 'id' and 'input'")
        if "id" not in raw:
            raise DatasetError(shown, location, "missing field 'id'", "Give every example a unique 'id'")
        raw = dict(raw)
        if isinstance(raw["id"], int) and not isinstance(raw["id"], bool):
            raw["id"] = str(raw["id"])  # numeric ids are common in CSV-born data; they are still ids
        try:
            example = EvalExample.model_validate(raw)
        except pydantic.ValidationError as exc:
            raise _pydantic_error(exc, shown, location) from None
        if example.partition not in partitions:
            raise DatasetError(
                shown, location, f"field 'partition': unknown partition {example.partition!r}",
                f"Use one of: {', '.join(partitions)} (set ini llmeval_partitions to change the list)",
            )
        if example.id in first_seen:
            raise DatasetError(shown, location,
                               f"duplicate id {example.id!r} (first defined on {_where(first_seen[example.id])})",
                               "Ids must be unique within a dataset; rename one of them")
        first_seen[example.id] = location
        examples.append(example)
    return examples


def _where(location: str) -> str:
    return location if location.startswith(("record", "row")) else f"line {location}"


_TYPE_HINTS = {
    "id": "a non-empty string",
    "partition": "a string",
    "input": "a string or an object of named fields",
    "expected_output": "a string or null",
    "context": "a string, a list of strings, or null",
    "criteria": "a list of strings or null",
    "tags": "a list of strings",
    "metadata": "an object",
    "created_at": "an ISO 8601 time string",
}


def _pydantic_error(exc: pydantic.ValidationError, shown: str, location: str) -> DatasetError:
    error = exc.errors()[0]
    loc = error.get("loc") or ()
    field = str(loc[0]) if loc else "?"
    if error.get("type") == "extra_forbidden":
        return DatasetError(shown, location, f"unknown field {field!r}",
                            f"Allowed fields: {', '.join(_FIELDS)}; put anything else under 'metadata'")
    if error.get("type") == "missing":
        return DatasetError(shown, location, f"missing field {field!r}", f"Add '{field}' ({_TYPE_HINTS.get(field, 'required')})")
    value = error.get("input")
    shown_value = repr(value)
    if len(shown_value) > 60:
        shown_value = shown_value[:57] + "..."
    message = error.get("msg", "invalid value")
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return DatasetError(shown, location, f"field {field!r}: {message} (got {shown_value})",
                        f"'{field}' must be {_TYPE_HINTS.get(field, 'valid')}")


def _records_to_csv(records: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    rows: list[dict[str, str]] = []
    for record in records:
        row: dict[str, str] = {}
        for key, value in record.items():
            if key in ("input", "metadata") and isinstance(value, dict):
                for sub, subvalue in value.items():
                    row[f"{key}.{sub}"] = subvalue if isinstance(subvalue, str) else json.dumps(subvalue)
            elif isinstance(value, list):
                row[key] = json.dumps(value, ensure_ascii=False)
            else:
                row[key] = "" if value is None else str(value)
        for key in row:
            if key not in columns:
                columns.append(key)
        rows.append(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _unsupported_suffix_message(path: Path) -> str:
    return f"{path}: unsupported dataset format {path.suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}"
