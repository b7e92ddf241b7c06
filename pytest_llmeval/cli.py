"""The ``pytest-llmeval`` command.

One function registers each subcommand (``_add_<name>_command``) and is listed in
``_COMMANDS``; each sets ``run`` to the function that does the work and returns
the exit status. Adding ``compare``, ``show`` or ``merge`` means one more
registrar in that tuple.

Exit status: 0 on success, 2 on a usage or input error (argparse's convention),
with a message on stderr that names the thing, the value and the fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from pytest_llmeval.cache import DEFAULT_CACHE_DIR, ResponseCache, cache_exists, parse_duration

PROG = "pytest-llmeval"

# argparse's subparsers object; its class is private, so name it once here.
_Subparsers = Any


class CommandError(Exception):
    """A problem to report on stderr with exit status 2 (no traceback)."""


# -- cache ------------------------------------------------------------------


def _format_size(size: float) -> str:
    """Bytes as a short human size: ``512 B``, ``48.1 KiB``, ``3.0 MiB``."""
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def _format_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in counts.items())


def _open_existing(directory: str) -> ResponseCache | None:
    """The cache in ``directory``, or ``None`` (after saying so) when there is none.

    Reading commands must not create an empty cache where a user mistyped a path.
    """
    if not cache_exists(directory):
        print(f"no cache at {directory}; pass --cache-dir if it lives elsewhere")
        return None
    return ResponseCache(directory)


def _cache_stats(args: argparse.Namespace) -> int:
    cache = _open_existing(args.cache_dir)
    if cache is None:
        return 0
    with cache:
        stats = cache.stats()
    kinds = f" ({_counts(stats['by_kind'])})" if stats["by_kind"] else ""
    print(f"{_entries(stats['entries'])}, {_format_size(stats['size_bytes'])}{kinds} in {args.cache_dir}")
    if stats["by_model"]:
        print(f"  models: {_counts(stats['by_model'])}")
    if stats["oldest"] is not None:
        print(f"  recorded {_format_time(stats['oldest'])} .. {_format_time(stats['newest'])}")
    return 0


def _cache_clear(args: argparse.Namespace) -> int:
    cache = _open_existing(args.cache_dir)
    if cache is None:
        return 0
    with cache:
        removed = cache.clear()
    print(f"cleared {_entries(removed)} from {args.cache_dir}")
    return 0


def _cache_prune(args: argparse.Namespace) -> int:
    try:
        older_than_s = parse_duration(args.older_than)
    except ValueError as exc:
        raise CommandError(f"--older-than: {exc}") from None
    cache = _open_existing(args.cache_dir)
    if cache is None:
        return 0
    with cache:
        removed = cache.prune(older_than_s)
        left = len(cache)
    print(f"pruned {_entries(removed)} older than {args.older_than} from {args.cache_dir} ({_entries(left)} left)")
    return 0


def _transfer(args: argparse.Namespace, move: Callable[[ResponseCache, str], int], file_problem: str) -> int:
    """Run ``move(cache, args.file)`` (export or import); errors become ``CommandError``.

    ``file_problem`` explains an unreadable or unwritable file; it may use
    ``{file}`` and ``{reason}``.
    """
    with ResponseCache(args.cache_dir) as cache:
        try:
            return move(cache, args.file)
        except OSError as exc:
            problem = file_problem.format(file=args.file, reason=exc.strerror)
            raise CommandError(f"cache {args.action}: {problem}") from None
        except ValueError as exc:  # a bad line, or an entry that may not leave
            raise CommandError(f"cache {args.action}: {exc}") from None


def _cache_export(args: argparse.Namespace) -> int:
    if not cache_exists(args.cache_dir):
        raise CommandError(f"cache export: no cache at {args.cache_dir}; "
                           "pass --cache-dir, or record one with pytest --llmeval-cache=use")
    count = _transfer(args, ResponseCache.export,
                      "cannot write {file} ({reason}); choose a path in an existing, writable folder")
    print(f"exported {_entries(count)} from {args.cache_dir} to {args.file}")
    return 0


def _cache_import(args: argparse.Namespace) -> int:
    count = _transfer(args, ResponseCache.import_,
                      "cannot read {file} ({reason}); pass the JSONL file written by `pytest-llmeval cache export`")
    print(f"imported {_entries(count)} from {args.file} into {args.cache_dir}")
    return 0


def _add_cache_command(commands: _Subparsers) -> None:
    # --cache-dir is accepted before and after the action (``cache --cache-dir D
    # stats`` and ``cache stats --cache-dir D``). SUPPRESS keeps a subparser's
    # default from overwriting a value given at the outer level; the default
    # comes from _SHARED_DEFAULTS.
    cache_dir = argparse.ArgumentParser(add_help=False)
    cache_dir.add_argument("--cache-dir", default=argparse.SUPPRESS, metavar="DIR",
                           help=f"the response cache directory (default: {DEFAULT_CACHE_DIR}, "
                                "as the plugin's --llmeval-cache-dir)")

    cache = commands.add_parser("cache", parents=[cache_dir], help="inspect and move recorded model responses",
                                description="Inspect, prune and move the response cache.")
    actions = cache.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, run: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, parents=[cache_dir], help=help, description=help)
        parser.set_defaults(run=run)
        return parser

    action("stats", _cache_stats, "entries, size, kinds and models in the cache")
    action("clear", _cache_clear, "remove every entry")
    prune = action("prune", _cache_prune, "remove entries recorded longer ago than --older-than")
    prune.add_argument("--older-than", required=True, metavar="AGE", help="an age such as 30d, 12h, 90m or 45s")
    export = action("export", _cache_export, "write every entry to a reviewable JSONL file, sorted by key")
    export.add_argument("file", metavar="FILE")
    import_ = action("import", _cache_import, "load entries from a file written by export")
    import_.add_argument("file", metavar="FILE")


# Defaults of options declared with default=SUPPRESS (see main()).
_SHARED_DEFAULTS: dict[str, Any] = {"cache_dir": DEFAULT_CACHE_DIR}

# One registrar per subcommand; the lead adds compare, show, merge here.
_COMMANDS: tuple[Callable[[_Subparsers], None], ...] = (_add_cache_command,)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pytest-llmeval`` with every subcommand."""
    parser = argparse.ArgumentParser(prog=PROG, description="Companion commands of the pytest-llmeval plugin.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _COMMANDS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pytest-llmeval``; returns the exit status (0 ok, 2 usage or input error)."""
    parser = build_parser()
    try:
        # Defaults of options accepted at several levels start in the namespace:
        # their parsers use SUPPRESS so an inner level cannot reset an outer value.
        args = parser.parse_args(argv, namespace=argparse.Namespace(**_SHARED_DEFAULTS))
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.run(args))
    except CommandError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
