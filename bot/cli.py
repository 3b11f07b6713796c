"""The ``helpline-bot`` command line: an entry point only, no logic of its own.

Subcommands:

- ``check-config FILE``: validate a config file without connecting to anything. Problems go
  to stderr, one per entry, and the exit code is 2; a good file prints one OK line.
- ``run --config FILE``: the service, in ``bot.app.run(config, args)``.
- ``demo [--simulate]``: a throw-away local setup, in ``bot.demo.run(args)``.
- ``report --config FILE [--from DATE] [--to DATE] [--out DIR] [--lang nb|en]``: the
  anonymous statistics as CSV files, charts and a summary, in ``bot.report.run``. It
  reads no secret files: it needs none.
- ``identities --config FILE`` and ``reset-identity --config FILE USER``: the pinned
  cross-signing identities, in ``bot.identity``.

Rules: a config problem never shows a traceback, only the problems and exit code 2; nor
does a bad date. The modules behind ``run``, ``demo``, ``report`` and the identity
commands are imported when their command runs, so that ``check-config`` works on a
machine without the bot's heavier dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from bot.config import Config, ConfigErrors, load_config

EXIT_OK = 0
EXIT_CONFIG = 2  # bad config or bad command line, like argparse's own usage errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed by argparse
        return e.code if isinstance(e.code, int) else EXIT_CONFIG
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except BrokenPipeError:
        # The reader went away (`| head`): what it did not read is not ours to report.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="helpline-bot",
        description="An end-to-end-encrypted Matrix bot for a volunteer crisis helpline.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser(
        "check-config",
        help="check a config file without connecting to anything",
        description="Check a config file and list every problem in it, without connecting.",
    )
    check.add_argument("file", metavar="FILE", help="the config file, e.g. config.yaml")
    check.add_argument(
        "--no-secret-files",
        action="store_true",
        help="do not read the *_file secrets (for checking on a machine that lacks them)",
    )
    check.set_defaults(handler=_check_config)

    run = commands.add_parser("run", help="run the bot")
    run.add_argument("--config", required=True, metavar="FILE", help="the config file")
    run.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        type=str.upper,
        help="overrides logging.level from the config file",
    )
    run.set_defaults(handler=_with_config("bot.app", "run"))

    demo = commands.add_parser(
        "demo", help="start a throw-away local homeserver, bot and demo accounts"
    )
    demo.add_argument(
        "--simulate",
        action="store_true",
        help="play a scripted chatter and volunteer, print the flow, exit 0 if it all happened",
    )
    demo.add_argument(
        "--dir",
        default=".demo",
        metavar="DIR",
        help="where the demo keeps its data (default: ./.demo); a second run reuses it",
    )
    demo.add_argument(
        "--fresh",
        action="store_true",
        help="replace the previous demo in DIR instead of reusing it",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=8008,
        help="the homeserver's port on 127.0.0.1 for a new demo (default 8008, or a free one)",
    )
    demo.set_defaults(handler=_demo)

    report = commands.add_parser(
        "report",
        help="anonymous statistics: CSV tables, PNG charts and a summary",
        description="Read the anonymous statistics (read-only, also while the bot runs) and "
        "write a CSV file per table and PNG charts; counts from 1 to 4 are shown as <5.",
    )
    report.add_argument("--config", required=True, metavar="FILE", help="the config file")
    report.add_argument(
        "--from",
        dest="since",
        type=_day,
        metavar="DATE",
        help="the first day, like 2026-03-01 (default: the first one recorded)",
    )
    report.add_argument(
        "--to",
        dest="until",
        type=_day,
        metavar="DATE",
        help="the last day, included (default: the last one recorded)",
    )
    report.add_argument(
        "--out", default="report", metavar="DIR", help="where to write (default: ./report)"
    )
    report.add_argument(
        "--lang",
        choices=["nb", "en"],
        help="the language of the charts and the summary (default: language.default)",
    )
    report.set_defaults(handler=_report)

    identities = commands.add_parser(
        "identities",
        help="list the staff's pinned encryption identities and any pending change",
    )
    identities.add_argument("--config", required=True, metavar="FILE", help="the config file")
    identities.set_defaults(handler=_with_config("bot.identity", "list_pins"))

    reset = commands.add_parser(
        "reset-identity",
        help="accept someone's new encryption identity (after checking it with them)",
        description="Forget the pinned cross-signing identity of USER: the next one the bot "
        "sees is trusted. Do this only after confirming with the person that they reset "
        "their encryption themselves.",
    )
    reset.add_argument("--config", required=True, metavar="FILE", help="the config file")
    reset.add_argument("user", metavar="USER", help="the Matrix ID, like @irene:example.org")
    reset.set_defaults(handler=_with_config("bot.identity", "reset"))
    return parser


def _load(file: str, *, read_secret_files: bool = True) -> Config | None:
    """The config, or None after printing every problem to stderr."""
    try:
        return load_config(file, read_secret_files=read_secret_files)
    except ConfigErrors as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        count = len(e.problems)
        print(f"{file}: {count} problem{'' if count == 1 else 's'} found", file=sys.stderr)
        return None


def _check_config(args: argparse.Namespace) -> int:
    config = _load(args.file, read_secret_files=not args.no_secret_files)
    if config is None:
        return EXIT_CONFIG
    volunteers = len(config.volunteers.members)
    lobbies = len(config.intake.lobby_rooms)
    print(
        f"{args.file}: OK ({volunteers} volunteer{'' if volunteers == 1 else 's'}, "
        f"{lobbies} lobby room{'' if lobbies == 1 else 's'}, "
        f"strategy {config.routing.strategy.value})"
    )
    return EXIT_OK


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date; write it like 2026-03-01"
        ) from None


def _report(args: argparse.Namespace) -> int:
    if args.since and args.until and args.since > args.until:
        print(
            f"helpline-bot report: --from {args.since} is after --to {args.until}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    config = _load(args.config, read_secret_files=False)
    if config is None:
        return EXIT_CONFIG
    from bot.report.run import run

    lang = args.lang or (config.language.default if config.language.default == "nb" else "en")
    return run(config, since=args.since, until=args.until, out=Path(args.out), lang=lang)


def _with_config(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """A handler that loads `--config` (exit 2 on problems), then calls module.function."""

    def handler(args: argparse.Namespace) -> int:
        config = _load(args.config)
        if config is None:
            return EXIT_CONFIG
        run = getattr(importlib.import_module(module), function)
        return int(run(config, args))

    return handler


def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run

    return int(run(args))
