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

    @property
    def option(self) -> str:
        return "--llmeval-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "llmeval_" + self.name


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


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise ValueError("must be between 0 and 1 (exclusive)")
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
    Setting("concurrency", "Model calls in flight at once in this process.", parse=_positive_int, default=8,
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
)

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
            parser.addini(setting.dest, setting.help, type=ini_type, default=None)


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
        raw = config.getini(setting.dest)
        if raw not in (None, "", []):
            return _parse(setting, raw, f"ini {setting.dest}")
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
