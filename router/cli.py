"""The `referral-router` command: serve, route, rules, status, outbox, reprocess, journal and
inbox."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from router.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, load_rules_or_fail
from router.settings import Settings

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CommandError", "main"]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read ROUTER_* settings; an unknown ROUTER_* variable or a bad value is one clear line.

    Raises:
        CommandError: naming the variable, what is wrong and a good value (status 2).
    """
    from router.settings_problems import describe_errors, unknown_variables

    unknown = unknown_variables(os.environ if environ is None else environ)
    if unknown:
        raise CommandError(
            f"unknown setting {'; '.join(unknown)}: every ROUTER_* variable must be one the"
            " router knows (see Settings in README.md)"
        )
    try:
        return Settings()
    except ValidationError as exc:
        raise CommandError(f"bad settings: {'; '.join(describe_errors(exc))}") from None


_load_rules = load_rules_or_fail


def cmd_route(args: argparse.Namespace, out: TextIO) -> int:
    from router.core.explain import explain
    from router.core.routing import RoutingEngine
    from router.decide.dryrun import DryRun

    settings = load_settings()
    rules_dir = Path(args.rules) if args.rules else settings.rules_dir
    rules = _load_rules(rules_dir)
    engine = RoutingEngine(rules, review_address=settings.review_address)
    status = EXIT_OK
    # Read in the daemon's worker, under its time and memory limits (SPEC section 7).
    with DryRun(settings, engine, one_shot=True) as dry_run:
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
    from router.core.rules.loader import check_rules, rule_warnings

    directory = Path(args.dir)
    problems = check_rules(directory)
    for warning in rule_warnings(directory):
        located = warning.model_copy(update={"file": str(directory / warning.file)})
        print(f"warning: {located}", file=sys.stderr)
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
    from router.core.rules.loader import rules_schema

    out.write(json.dumps(rules_schema(args.kind), indent=2) + "\n")
    return EXIT_OK


def cmd_rules_test(args: argparse.Namespace, out: TextIO) -> int:
    """`rules test DIR FILE...`: route with a candidate rules directory, same engine as route."""
    args.rules = args.dir
    return cmd_route(args, out)


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    from router.settings_problems import serve_problems

    settings = load_settings()
    problems = serve_problems(settings)
    if problems:
        raise CommandError(f"bad settings: {'; '.join(problems)}")
    # The daemon loads with the cyclic collector off: its modules, classes and schemas live
    # as long as the process, so they are frozen out of every later collection, which then
    # scans only what the daemon allocates as it runs. About a fifth of the start's CPU.
    gc.disable()
    try:
        from router.decide import forkserver

        forkserver.start()  # the workers' readers load while the daemon imports
        from router.logs import configure_logging
        from router.service.process import serve

        configure_logging(settings.log_level, settings.log_format)  # ROUTER_LOG_LEVEL, _FORMAT
        gc.freeze()
    finally:
        gc.enable()
    return serve(settings)


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from router.commands.status import status

    return status(load_settings(), out, as_json=args.json)


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    """`show REF|ID [--json]`: one message's audit trail (SPEC section 7)."""
    from router.commands.journal_access import open_journal
    from router.commands.show import render_trail
    from router.journal.audit import parse_wanted

    if parse_wanted(args.reference) is None:
        raise CommandError(
            f"{args.reference!r} is neither a message id (20261121-9F2C3A1B) nor a reference"
            " (PR-20261121-9F2C3A1B-1)",
            EXIT_FAILED,
        )
    journal = open_journal(load_settings())
    try:
        trail = journal.audit_trail(args.reference)
    finally:
        journal.close()
    if trail is None:
        raise CommandError(f"nothing in the journal matches {args.reference}", EXIT_FAILED)
    if args.json:
        out.write(json.dumps(trail.as_json(), ensure_ascii=False) + "\n")
    else:
        out.write(render_trail(trail))
    return EXIT_OK


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    """`report --from --to [--format] [--exact] [--out FILE]`: statistics (SPEC section 7)."""
    from datetime import date

    from router.commands.journal_access import open_journal
    from router.commands.report import load_report
    from router.core.report_render import render

    try:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError:
        raise CommandError("--from and --to take dates as YYYY-MM-DD") from None
    if end < start:
        raise CommandError(f"--to {end} is before --from {start}")
    settings = load_settings()
    areas: tuple[str, ...] = ()
    if settings.rules_dir.is_dir():  # list every area of the rules, even with no referral
        areas = tuple(area.id for area in _load_rules(settings.rules_dir).areas)
    journal = open_journal(settings)
    try:
        report = load_report(journal, start, end, exact=args.exact, areas=areas)
    finally:
        journal.close()
    text = render(report, args.format)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {args.out}: {exc.strerror}", EXIT_FAILED) from None
    else:
        out.write(text)
    return EXIT_OK


def cmd_outbox(args: argparse.Namespace, out: TextIO) -> int:
    """`outbox [--dir DIR] [--json]`: the mail the Maildir relay wrote, with kind, To, Cc."""
    from dataclasses import asdict

    from router.commands.outbox import format_outbox, read_outbox

    if args.dir:
        directory = Path(args.dir)
    else:
        endpoint = load_settings().relay_endpoint
        if endpoint.path is None:
            raise CommandError(
                f"ROUTER_RELAY sends to {endpoint.scheme}://{endpoint.host}, not to a Maildir:"
                " there is no outbox to list (give --dir for another Maildir)",
                EXIT_FAILED,
            )
        directory = endpoint.path
    try:
        mails = read_outbox(directory)
    except FileNotFoundError:
        raise CommandError(
            f"no Maildir at {directory} (nothing sent yet, or ROUTER_STATE_DIR / ROUTER_RELAY"
            " differ from the daemon's)",
            EXIT_FAILED,
        ) from None
    if args.json:
        for mail in mails:
            out.write(json.dumps(asdict(mail), ensure_ascii=False) + "\n")
    else:
        format_outbox(directory, mails, out)
    return EXIT_OK


def cmd_reprocess(args: argparse.Namespace, out: TextIO) -> int:
    from router.commands.reprocess import reprocess

    return reprocess(load_settings(), args.reference, out)


def cmd_journal_migrate(args: argparse.Namespace, out: TextIO) -> int:
    from router.commands.journal import migrate

    return migrate(load_settings(), out)


def cmd_journal_copy(args: argparse.Namespace, out: TextIO) -> int:
    from router.commands.journal import copy

    return copy(load_settings(), args.to, out)


def cmd_inbox_check(args: argparse.Namespace, out: TextIO) -> int:
    from router.commands.inbox_check import inbox_check

    return inbox_check(load_settings(), out)


# What `--json` prints is the whole decision, personal details included.
_JSON_HELP = (
    "JSON Lines, one per decision; prints every form value (name, date of birth, concern):"
    " for admins testing rules on their own mail"
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("referral-router")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="referral-router",
        description="Route Prevent referral forms from a council mailbox (see README.md).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the daemon (settings from ROUTER_* variables)")
    serve.set_defaults(handler=cmd_serve)

    route = commands.add_parser("route", help="dry run: decide for .eml files, send nothing")
    route.add_argument("files", nargs="+", metavar="FILE.eml")
    route.add_argument("--json", action="store_true", help=_JSON_HELP)
    route.add_argument("--rules", help="rules directory (default: ROUTER_RULES_DIR or ./rules)")
    route.set_defaults(handler=cmd_route)

    rules = commands.add_parser("rules", help="check, describe or try a rules directory")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_commands.add_parser("check", help="validate a rules directory")
    check.add_argument("dir", nargs="?", default="rules")
    check.set_defaults(handler=cmd_rules_check)
    schema = rules_commands.add_parser("schema", help="print the JSON Schema of rules files")
    schema.add_argument(
        "--kind", choices=("area", "forms", "acknowledgments", "sectors"), default="area"
    )
    schema.set_defaults(handler=cmd_rules_schema)
    test = rules_commands.add_parser("test", help="route .eml files with a candidate rules dir")
    test.add_argument("dir")
    test.add_argument("files", nargs="+", metavar="FILE.eml")
    test.add_argument("--json", action="store_true", help=_JSON_HELP)
    test.set_defaults(handler=cmd_rules_test)

    status = commands.add_parser("status", help="journal counts, pending and quarantine")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    show = commands.add_parser("show", help="the audit trail of one message or referral")
    show.add_argument("reference", metavar="REF|ID", help="PR-... reference or journal id")
    show.add_argument("--json", action="store_true", help="one JSON object with the events")
    show.set_defaults(handler=cmd_show)

    report = commands.add_parser("report", help="referral statistics for a Prevent board")
    report.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD")
    report.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD")
    report.add_argument("--format", choices=("text", "csv", "json", "html"), default="text")
    report.add_argument("--exact", action="store_true", help="show counts 1 to 4 (not <5)")
    report.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    report.set_defaults(handler=cmd_report)

    outbox = commands.add_parser(
        "outbox", help="list the mail the Maildir relay wrote: kind, To, Cc, Subject"
    )
    outbox.add_argument("--dir", help="a Maildir (default: from ROUTER_RELAY / ROUTER_STATE_DIR)")
    outbox.add_argument("--json", action="store_true", help="JSON Lines, one per mail")
    outbox.set_defaults(handler=cmd_outbox)

    reprocess = commands.add_parser("reprocess", help="put a quarantined message back in the queue")
    reprocess.add_argument("reference", help="a message id or a referral reference")
    reprocess.set_defaults(handler=cmd_reprocess)

    journal = commands.add_parser("journal", help="migrate the journal, or copy it to PostgreSQL")
    journal_commands = journal.add_subparsers(dest="journal_command", required=True)
    migrate = journal_commands.add_parser("migrate", help="bring the journal's schema up to date")
    migrate.set_defaults(handler=cmd_journal_migrate)
    copy = journal_commands.add_parser("copy", help="copy the SQLite journal into PostgreSQL")
    copy.add_argument("--to", required=True, metavar="postgresql://USER@HOST:PORT/DB")
    copy.set_defaults(handler=cmd_journal_copy)

    inbox = commands.add_parser("inbox", help="check the mailbox and relay settings")
    inbox_commands = inbox.add_subparsers(dest="inbox_command", required=True, metavar="ACTION")
    inbox_check = inbox_commands.add_parser(
        "check", help="connect, authenticate and look, changing nothing; exit 1 if it cannot run"
    )
    inbox_check.set_defaults(handler=cmd_inbox_check)
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
