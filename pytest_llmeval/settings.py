"""Every setting of the plugin, declared once.

A setting ``foo_bar`` is the flag ``--llmeval-foo-bar`` (dest ``llmeval_foo_bar``)
and the ini key ``llmeval_foo_bar``. Precedence, implemented only in
:func:`resolve`: marker keyword > command line > ini > default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

_MISSING: Any = object()

DEFAULT_PARTITIONS: tuple[str, ...] = ("golden", "regression", "adversarial", "distribution")


@dataclass(frozen=True)
class Setting:
    """One user-facing setting."""

    name: str
    help: str
    parse: Callable[[str], Any] = str
    default: Any = None
    flag: bool = True  # has a command-line flag
    ini: bool = True  # has an ini key
    action: str = "store"  # "store", "store_true" or "append"
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    # The ini key when it is not the dest: a repeatable flag reads better singular
    # (--llmeval-threshold) and its ini list plural (llmeval_thresholds).
    ini_name: str | None = None

    @property
    def option(self) -> str:
        return "--llmeval-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "llmeval_" + self.name

    @property
    def ini_key(self) -> str:
        return self.ini_name or self.dest


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def parse_probability(text: str) -> float:
    """A number strictly between 0 and 1 (``--llmeval-alpha``)."""
    value = float(text)
    if not 0 < value < 1:
        raise ValueError("must be between 0 and 1 (exclusive), e.g. 0.05")
    return value


_MIN_EFFECT_EXAMPLE = "0.1 or pass_rate=0.1,relevance=0.5"


def parse_min_effect(text: str) -> float | dict[str, float]:
    """``0.1`` (every row) or ``pass_rate=0.1,relevance=0.5`` (per metric; others keep their defaults)."""
    if "=" not in text:
        return _effect_size(text)
    minimums: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, number = part.partition("=")
        if not name.strip():
            raise ValueError(f"{part!r} has no metric name before '='; write e.g. {_MIN_EFFECT_EXAMPLE}")
        minimums[name.strip()] = _effect_size(number)
    return minimums


def _effect_size(number: str) -> float:
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{number.strip()!r} is not a number; write e.g. {_MIN_EFFECT_EXAMPLE}") from None
    if not value >= 0:
        raise ValueError(f"{number.strip()} is negative; a minimum effect is a size >= 0, e.g. {_MIN_EFFECT_EXAMPLE}")
    return value


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


SETTINGS: tuple[Setting, ...] = (
    Setting("partitions", "Partition names examples may use (default: golden regression adversarial distribution).",
            flag=False),
    Setting("model", "Model under test, as a litellm model name (e.g. openai/gpt-4o-mini, local/smollm2).",
            metavar="NAME"),
    Setting("judge_model", "Model that judges outputs (default: the model under test).", metavar="NAME"),
    Setting("embedding_model", "Model for embeddings (semantic similarity).", metavar="NAME"),
    Setting("api_base", "API base URL passed to litellm for every call (e.g. a proxy or local server).",
            metavar="URL"),
    Setting("cache", "Response cache mode: use (read and write), off, refresh (write only), "
            "replay (read only; a miss is an error).", default="use", choices=("use", "off", "refresh", "replay")),
    Setting("cache_dir", "Where the response cache lives.", default=".llmeval/cache", metavar="DIR"),
    Setting("concurrency", "Model requests in flight at once in this process.", parse=_positive_int, default=8,
            metavar="N"),
    Setting("retries", "Retries for rate limits, timeouts and server errors.", parse=_non_negative_int,
            default=4, metavar="N"),
    Setting("timeout", "Seconds before one model call times out.", parse=_positive_float, default=60.0,
            metavar="S"),
    Setting("max_cost", "Stop making paid calls once this many USD are spent; the run fails.",
            parse=_positive_float, metavar="USD"),
    Setting("samples", "Judge samples per score (mean, spread and an interval are reported).",
            parse=_positive_int, default=1, metavar="K"),
    Setting("judge_temperature", "Judge temperature (default: 0 for one sample, 0.7 for several).",
            parse=float, metavar="T"),
    Setting("inconclusive", "What a judge verdict whose interval straddles the threshold counts as.",
            default="fail", choices=("fail", "pass")),
    Setting("progress", "Show progress while outputs are computed.", parse=_bool, default=True, flag=False),
    # --- the verdict (docs/verdict.md) ---
    Setting("threshold", "Gate: PARTITION=RATE, the pass rate a partition needs for the run to pass "
            "(repeatable; default golden=1.0). Failures of a partition at or above its rate are tolerated.",
            action="append", metavar="PARTITION=RATE", ini_name="llmeval_thresholds"),
    Setting("baseline", "Baseline file to compare with and to save (relative to the rootdir).",
            default=".llmeval/baseline.json", metavar="PATH"),
    Setting("save_baseline", "Write this run's cases to the baseline file (after comparing with the old one).",
            parse=_bool, action="store_true", ini=False),
    Setting("min_effect", "Smallest change called a regression or improvement: a number for every row, "
            "or METRIC=VALUE,... (pass_rate in rate points as a fraction; default pass_rate=0.05, scores 0.25).",
            parse=parse_min_effect, metavar="EFFECT"),
    Setting("alpha", "Family-wise significance level of the baseline comparison (Holm).", parse=parse_probability,
            default=0.05, metavar="A"),
    Setting("fail_on_regression", "Fail the run when the comparison with the baseline finds a regression.",
            parse=_bool, action="store_true"),
    Setting("report", "Write every record, the summary, the comparison and the verdict to this JSON file.",
            metavar="PATH"),
)

DEFAULT_THRESHOLDS: dict[str, float] = {"golden": 1.0}

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def add_options(parser: pytest.Parser) -> None:
    """Register every flag and ini key."""
    group = parser.getgroup("llmeval", "LLM evaluation (pytest-llmeval)")
    for setting in SETTINGS:
        if setting.flag:
            kwargs: dict[str, Any] = {"dest": setting.dest, "help": setting.help, "default": None}
            if setting.action == "store_true":
                kwargs["action"] = "store_true"
            else:
                kwargs["action"] = setting.action
                kwargs["metavar"] = setting.metavar or setting.name.upper()
                if setting.choices:
                    kwargs["choices"] = setting.choices
            group.addoption(setting.option, **kwargs)
        if setting.ini:
            ini_type = "linelist" if setting.action == "append" else ("args" if setting.name == "partitions" else "string")
            parser.addini(setting.ini_key, setting.help, type=ini_type, default=None)


def resolve(config: pytest.Config, name: str, marker_value: Any = _MISSING) -> Any:
    """The effective value of a setting: marker > command line > ini > default."""
    setting = BY_NAME[name]
    if marker_value is not _MISSING and marker_value is not None:
        return marker_value
    if setting.flag:
        value = config.getoption(setting.dest, default=None)
        if value is not None and value is not False and value != []:
            return _parse(setting, value, setting.option)
    if setting.ini:
        raw = config.getini(setting.ini_key)
        if raw not in (None, "", []):
            return _parse(setting, raw, f"ini {setting.ini_key}")
    return setting.default


def _parse(setting: Setting, value: Any, source: str) -> Any:
    if setting.parse is str or not isinstance(value, str):
        if isinstance(value, list) and setting.parse is not str:
            return [_parse(setting, v, source) for v in value]
        return value
    try:
        return setting.parse(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{source}: invalid value {value!r}: {exc}") from None


def partitions(config: pytest.Config) -> tuple[str, ...]:
    """The configured partition names (ini ``llmeval_partitions``)."""
    raw = config.getini("llmeval_partitions")
    names = tuple(raw) if raw else DEFAULT_PARTITIONS
    for name in names:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise pytest.UsageError(
                f"ini llmeval_partitions: {name!r} cannot be a pytest marker; use letters, digits, '_' or '-'"
            )
    return names


def thresholds(config: pytest.Config) -> dict[str, float]:
    """The gates: partition -> required pass rate, validated.

    Merged per partition, so naming one partition does not drop another's gate:
    the default (``golden=1.0``), then ini ``llmeval_thresholds``, then each
    ``--llmeval-threshold``; a later entry for the same partition wins.
    """
    known = partitions(config)
    merged = dict(DEFAULT_THRESHOLDS)
    setting = BY_NAME["threshold"]
    sources = [(f"ini {setting.ini_key}", config.getini(setting.ini_key) or []),
               (setting.option, config.getoption(setting.dest, default=None) or [])]
    for source, entries in sources:
        for entry in entries:
            partition, rate = parse_threshold(str(entry), known, source)
            merged[partition] = rate
    # The default names golden; a project whose partitions have no golden has no such gate.
    return {p: r for p, r in sorted(merged.items()) if p in known}


def parse_threshold(text: str, known: tuple[str, ...], source: str = "--llmeval-threshold") -> tuple[str, float]:
    """``PARTITION=RATE`` (rate a fraction or a percentage) -> (partition, rate), or a UsageError."""
    name, sep, number = text.strip().partition("=")
    name, number = name.strip(), number.strip()
    example = f"{name or 'golden'}=0.95"
    if not sep or not name or not number:
        raise pytest.UsageError(f"{source}: {text!r} is not PARTITION=RATE; write e.g. {example}")
    try:
        rate = float(number[:-1]) / 100 if number.endswith("%") else float(number)
    except ValueError:
        raise pytest.UsageError(
            f"{source}: rate {number!r} in {text!r} is not a number; write e.g. {example} or {name}=95%"
        ) from None
    if not 0.0 <= rate <= 1.0:
        raise pytest.UsageError(
            f"{source}: rate {number} in {text!r} is outside [0, 1]; write a pass rate such as {example}"
        )
    if name not in known:
        raise pytest.UsageError(
            f"{source}: unknown partition {name!r} in {text!r}; use one of: {', '.join(known)} "
            "(ini llmeval_partitions sets the list)"
        )
    return name, rate
