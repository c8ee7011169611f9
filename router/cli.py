"""The `referral-router` command: serve, route, rules, status and reprocess."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from router.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A problem the user can fix, reported as one clear message (never a traceback)."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def load_settings() -> Settings:
    """Read ROUTER_* settings, turning validation errors into one readable message."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"ROUTER_{'_'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors()
        )
        raise CommandError(f"bad settings: {problems}") from None


def _load_rules(directory: Path):  # type: ignore[no-untyped-def]
    from router.rules.loader import RulesError, load_rules

    try:
        return load_rules(directory)
    except RulesError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise CommandError(f"rules in {directory} are not valid:\n{lines}") from None


def cmd_route(args: argparse.Namespace, out: TextIO) -> int:
    from router.dryrun import DryRun
    from router.explain import explain
    from router.routing import RoutingEngine

    settings = load_settings()
    rules_dir = Path(args.rules) if args.rules else settings.rules_dir
    rules = _load_rules(rules_dir)
    engine = RoutingEngine(rules, review_address=settings.review_address)
    status = EXIT_OK
    # Read in the daemon's worker, under its time and memory limits (SPEC section 7).
    with DryRun(settings, engine) as dry_run:
        for name in args.files:
            try:
                raw = Path(name).read_bytes()
            except OSError as exc:
                print(
                    f"referral-router: cannot read {name}: {exc.strerror or exc}", file=sys.stderr
                )
                status = EXIT_FAILED
                continue
            result = dry_run.analyse(raw)
            if args.json:
                for decision in result.decisions:
                    record = {"file": name, **decision.model_dump(mode="json")}
                    record["rules_version"] = rules.version
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                out.write(explain(name, result, rules) + "\n")
    return status


def cmd_rules_check(args: argparse.Namespace, out: TextIO) -> int:
    from router.rules.loader import check_rules

    directory = Path(args.dir)
    problems = check_rules(directory)
    if problems:
        for problem in problems:
            # Paths relative to the directory given, so an editor can jump to file:line.
            located = problem.model_copy(update={"file": str(directory / problem.file)})
            print(located, file=sys.stderr)
        print(f"{len(problems)} problem(s) in {directory}", file=sys.stderr)
        return EXIT_FAILED
    rules = _load_rules(directory)
    out.write(f"{directory}: {len(rules.areas)} areas, valid (version {rules.version[:12]})\n")
    return EXIT_OK


def cmd_rules_schema(args: argparse.Namespace, out: TextIO) -> int:
    from router.rules.loader import rules_schema

    out.write(json.dumps(rules_schema(args.kind), indent=2) + "\n")
    return EXIT_OK


def cmd_rules_test(args: argparse.Namespace, out: TextIO) -> int:
    """`rules test DIR FILE...`: route with a candidate rules directory, same engine as route."""
    args.rules = args.dir
    return cmd_route(args, out)


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    from router.daemon import serve
    from router.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)  # ROUTER_LOG_LEVEL, _FORMAT
    return serve(settings)


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from router.admin import status

    return status(load_settings(), out, as_json=args.json)


def cmd_reprocess(args: argparse.Namespace, out: TextIO) -> int:
    from router.admin import reprocess

    return reprocess(load_settings(), args.reference, out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="referral-router",
        description="Route Prevent referral forms from a council mailbox (see README.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the daemon (settings from ROUTER_* variables)")
    serve.set_defaults(handler=cmd_serve)

    route = commands.add_parser("route", help="dry run: decide for .eml files, send nothing")
    route.add_argument("files", nargs="+", metavar="FILE.eml")
    route.add_argument("--json", action="store_true", help="JSON Lines, one per decision")
    route.add_argument("--rules", help="rules directory (default: ROUTER_RULES_DIR or ./rules)")
    route.set_defaults(handler=cmd_route)

    rules = commands.add_parser("rules", help="check, describe or try a rules directory")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_commands.add_parser("check", help="validate a rules directory")
    check.add_argument("dir", nargs="?", default="rules")
    check.set_defaults(handler=cmd_rules_check)
    schema = rules_commands.add_parser("schema", help="print the JSON Schema of rules files")
    schema.add_argument("--kind", choices=("area", "forms", "acknowledgments"), default="area")
    schema.set_defaults(handler=cmd_rules_schema)
    test = rules_commands.add_parser("test", help="route .eml files with a candidate rules dir")
    test.add_argument("dir")
    test.add_argument("files", nargs="+", metavar="FILE.eml")
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler=cmd_rules_test)

    status = commands.add_parser("status", help="journal counts, pending and quarantine")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    reprocess = commands.add_parser("reprocess", help="put a quarantined message back in the queue")
    reprocess.add_argument("reference", help="a message id or a referral reference")
    reprocess.set_defaults(handler=cmd_reprocess)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    from router.logs import configure_logging

    level = "info"
    try:
        handler = args.handler
        if args.command != "serve":
            # Dry runs and admin commands keep stdout for their output and log warnings only.
            level = "warning"
        configure_logging(level, "auto")
        return int(handler(args, sys.stdout))
    except CommandError as exc:
        print(f"referral-router: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
