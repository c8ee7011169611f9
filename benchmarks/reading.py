"""Reading time per attachment, and how fast `referral-router route` answers one file.

    python -m benchmarks.reading [--route-runs N] [--also DIR ...]

Prints p50 / p99 / max of the time `read_attachment` takes per attachment (wall and
processor time, in-process, readers warm) over:

- the real-world files in ../shared/realworld/ (the PDFs of `pdf/`, and every attachment of
  the emails in `mail/` and `pdf-mail/`), skipped when that directory is absent;
- the layout corpus of the tests (`tests/core/forms/corpus.py`, 400+ generated forms);
- any other directory of files given with `--also` (PDF, Word, text), e.g. pdf.js's test PDFs;

then the wall time of `referral-router route FILE` on the bundled sample referral, a fresh
process each run, as a user runs it (median and best of `--route-runs`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from benchmarks.harness import ROOT, p99

REALWORLD = ROOT.parent / "shared" / "realworld"


def _attachments_of_emails(directory: Path) -> Iterable[tuple[str, bytes]]:
    """(name, bytes) of every attachment of the .eml files under `directory`."""
    from router.core.mail.parse import parse_message

    for path in sorted(directory.glob("*.eml")):
        message = parse_message(path.read_bytes(), router_from="referrals@router.example")
        for attachment in message.attachments:
            yield f"{path.name}#{attachment.index}", attachment.data


def realworld_files() -> list[tuple[str, bytes]]:
    """The real-world attachments (empty when ../shared/realworld is absent)."""
    if not REALWORLD.is_dir():
        return []
    files = [(p.name, p.read_bytes()) for p in sorted((REALWORLD / "pdf").glob("*.pdf"))]
    for folder in ("mail", "pdf-mail"):
        if (REALWORLD / folder).is_dir():
            files += list(_attachments_of_emails(REALWORLD / folder))
    return files


def corpus_files() -> list[tuple[str, bytes]]:
    """The tests' layout corpus, written in memory."""
    from tests.core.forms.corpus import CASES

    return [(name, case.write()) for name, case in CASES.items()]


def time_reading(files: list[tuple[str, bytes]]) -> list[tuple[float, float, str]]:
    """(wall seconds, processor seconds, name) of reading each file, slowest first."""
    from router.core.forms.read import read_attachment
    from router.core.mail.sniff import sniff
    from router.core.rules.loader import load_rules
    from router.models import Attachment

    rules = load_rules(ROOT / "rules").forms
    timings = []
    for index, (name, data) in enumerate(files):
        attachment = Attachment(
            index=index, filename=None, declared_type="", kind=sniff(data), data=data
        )
        wall, cpu = time.perf_counter(), time.process_time()
        read_attachment(attachment, rules)
        timings.append((time.perf_counter() - wall, time.process_time() - cpu, name))
    return sorted(timings, reverse=True)


def time_route(runs: int) -> list[float]:
    """Wall seconds of `referral-router route` on the sample referral, one process a run."""
    from router.sample import sample_email

    with tempfile.TemporaryDirectory() as directory:
        sample = Path(directory) / "sample.eml"
        sample.write_bytes(sample_email())
        command = [sys.executable, "-m", "router", "route", str(sample)]
        env = {
            **os.environ,
            "ROUTER_RULES_DIR": str(ROOT / "rules"),
            "ROUTER_REVIEW_ADDRESS": "review@router.example",
        }
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
            times.append(time.perf_counter() - started)
    return times


def _report(label: str, timings: list[tuple[float, float, str]]) -> None:
    if not timings:
        print(f"{label:<26} (none)")
        return
    walls = [t[0] * 1000 for t in timings]
    cpus = [t[1] * 1000 for t in timings]
    print(
        f"{label:<26} n={len(timings):<4} wall p50 {statistics.median(walls):7.1f} ms"
        f"  p99 {p99(walls):7.1f} ms  max {max(walls):7.1f} ms"
        f"  | cpu p50 {statistics.median(cpus):7.1f}  p99 {p99(cpus):7.1f}  max {max(cpus):7.1f}"
    )
    for wall, cpu, name in timings[:3]:
        print(f"{'':<26} slowest: {wall * 1000:8.1f} ms wall {cpu * 1000:8.1f} ms cpu  {name}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--route-runs", type=int, default=5)
    parser.add_argument("--also", type=Path, action="append", default=[])
    parser.add_argument("--corpus-limit", type=int, default=None, help="read the first N only")
    args = parser.parse_args(argv)
    print("READING TIME PER ATTACHMENT (in-process, readers warm)")
    _report("realworld", time_reading(realworld_files()))
    _report("layout corpus", time_reading(corpus_files()[: args.corpus_limit]))
    for directory in args.also:
        files = [(p.name, p.read_bytes()) for p in sorted(directory.iterdir()) if p.is_file()]
        _report(directory.name, time_reading(files))
    if args.route_runs:
        times = time_route(args.route_runs)
        print(
            f"route sample.eml (fresh process) median {statistics.median(times):.2f} s"
            f"  best {min(times):.2f} s  ({len(times)} runs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
