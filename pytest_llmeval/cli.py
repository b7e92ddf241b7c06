"""The ``pytest-llmeval`` command.

One function registers each subcommand (``_add_<name>_command``) and is listed in
``_COMMANDS``; each sets ``run`` to the function that does the work and returns
the exit status.

Exit status: 0 on success, 1 when ``compare`` finds a regression or ``show`` or
``merge`` finds a failed verdict (so CI can gate on a merged report), 2 on a
usage or input error (argparse's convention), with a message on stderr that
names the thing, the value and the fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
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


# -- compare, show, merge ---------------------------------------------------------------


def _compare(args: argparse.Namespace) -> int:
    from pytest_llmeval.compare import compare_runs, format_comparison_table
    from pytest_llmeval.report import ReportError, cases_of_file

    try:
        baseline, _ = cases_of_file(Path(args.baseline), args.baseline)
        current, facts = cases_of_file(Path(args.report), args.report)
    except ReportError as exc:
        raise CommandError(str(exc)) from None
    # The plugin's rule: only the cases the current run ran are compared, and by
    # default with the settings that run used, so the table is the one pytest printed.
    baseline = {case_id: case for case_id, case in baseline.items() if case_id in current}
    alpha = args.alpha if args.alpha is not None else facts.alpha if facts else 0.05
    min_effect = args.min_effect if args.min_effect is not None else facts.min_effect if facts else None
    try:
        rows = compare_runs(baseline, current, alpha=alpha, min_effect=min_effect)
    except ValueError as exc:
        raise CommandError(f"compare: {exc}") from None
    from pytest_llmeval.summary import comparison_header

    print(comparison_header(args.baseline, len(baseline)))
    for line in format_comparison_table(rows):
        print(line)
    regressions = sum(row.conclusion == "regression" for row in rows)
    if regressions:
        print(f"{regressions} regression{'s' if regressions != 1 else ''}")
    return 1 if regressions else 0


def _print_summary(facts: Any, verbosity: int) -> int:
    """Print the summary of ``facts``; the exit status follows the verdict."""
    from pytest_llmeval.report import summarize
    from pytest_llmeval.summary import render

    summary = summarize(facts)
    for line in render(summary, verbosity):
        print(line)
    return 0 if summary.verdict.passed else 1


def _load_report(path: str) -> Any:
    from pytest_llmeval.report import ReportError, load

    try:
        return load(Path(path), path)
    except ReportError as exc:
        raise CommandError(str(exc)) from None


def _show(args: argparse.Namespace) -> int:
    return _print_summary(_load_report(args.report), args.verbose - args.quiet)


def _merge(args: argparse.Namespace) -> int:
    from pytest_llmeval.report import ReportError, merge, summarize, write

    try:
        merged = merge([(path, _load_report(path)) for path in args.reports])
    except ReportError as exc:
        raise CommandError(str(exc)) from None
    output = Path(args.output)
    try:
        write(output, merged, summarize(merged))
    except OSError as exc:
        raise CommandError(f"merge: cannot write {args.output} ({exc.strerror}); choose a writable path for -o") \
            from None
    status = _print_summary(merged, args.verbose - args.quiet)
    print(f"wrote {args.output}: {len(merged.records)} records from {len(args.reports)} reports")
    return status


def _verbosity_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="count", default=0, help="one line per partition and the verdict")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="add the per-metric table")


def _add_verdict_commands(commands: _Subparsers) -> None:
    from pytest_llmeval.settings import parse_min_effect, parse_probability

    def typed(parse: Callable[[str], Any]) -> Callable[[str], Any]:
        def convert(text: str) -> Any:
            try:
                return parse(text)
            except ValueError as exc:  # argparse shows this message, naming the option
                raise argparse.ArgumentTypeError(f"invalid value {text!r}: {exc}") from None
        convert.__name__ = parse.__name__
        return convert

    compare = commands.add_parser(
        "compare", help="compare a report with a baseline (exit 1 on a regression)",
        description="Print the baseline comparison table of pytest's llmeval summary, outside pytest. "
                    "Either file may be a baseline or a report; only the cases of REPORT are compared.",
    )
    compare.add_argument("baseline", metavar="BASELINE.json")
    compare.add_argument("report", metavar="REPORT.json")
    compare.add_argument("--alpha", type=typed(parse_probability), default=None,
                         help="family-wise significance level (default: the report's, else 0.05)")
    compare.add_argument("--min-effect", type=typed(parse_min_effect), default=None, metavar="EFFECT",
                         help="smallest change that counts: a number, or METRIC=VALUE,... "
                              "(default: the report's, else pass_rate=0.05 and 0.25 for scores)")
    compare.set_defaults(run=_compare)

    show = commands.add_parser("show", help="print the llmeval summary of a report (exit 1 if its verdict failed)",
                               description="Print the llmeval summary of a --llmeval-report file, recomputed "
                                           "from its records.")
    show.add_argument("report", metavar="REPORT.json")
    _verbosity_options(show)
    show.set_defaults(run=_show)

    merge = commands.add_parser(
        "merge", help="join the reports of a suite split across jobs (exit 1 if the verdict failed)",
        description="Join the --llmeval-report files of the shards of one suite (pytest-split, -k slices) "
                    "into one report whose summary and verdict are those of one unsplit run.",
    )
    merge.add_argument("reports", nargs="+", metavar="SHARD.json")
    merge.add_argument("-o", "--output", required=True, metavar="ALL.json", help="where to write the merged report")
    _verbosity_options(merge)
    merge.set_defaults(run=_merge)


# Defaults of options declared with default=SUPPRESS (see main()).
_SHARED_DEFAULTS: dict[str, Any] = {"cache_dir": DEFAULT_CACHE_DIR}

# One registrar per subcommand (or family of them).
_COMMANDS: tuple[Callable[[_Subparsers], None], ...] = (_add_cache_command, _add_verdict_commands)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pytest-llmeval`` with every subcommand."""
    parser = argparse.ArgumentParser(prog=PROG, description="Companion commands of the pytest-llmeval plugin.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _COMMANDS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pytest-llmeval``; returns the exit status (0 ok, 1 regression or failed verdict, 2 usage or input error)."""
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
