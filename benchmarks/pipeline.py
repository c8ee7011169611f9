"""Benchmark: referrals through a real `referral-router serve` process, SMTP in and SMTP out.

Run from the repository root (it imports the test helpers for forms, mail and the capture
server)::

    python -m benchmarks.pipeline                     # N=200, backlog 2000: about 2 minutes
    python -m benchmarks.pipeline -n 50 --backlog 0   # a quick look

Measured in one run: throughput and arrival-to-forward latency of a burst of N referrals
(from the inbox's 250 to the forward arriving at the relay, matched by the original
Message-ID in the forward's References), the same latency one referral at a time, the drain
of a backlog stored in the journal before the daemon starts, the bare cost of analysing the
same mail in-process and of one SMTP send, and the daemon's peak memory. The benchmark's own
SMTP clients and capture relay share the machine with the daemon, as a local MTA would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness import (
    INBOX_ADDRESS,
    ROOT,
    Referral,
    RouterProcess,
    TimedCapture,
    make_referrals,
    pdf_variants,
    send_referral,
)

Row = tuple[str, str]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=200, help="referrals in the burst (200)")
    parser.add_argument("--backlog", type=int, default=2000, help="queued before start (2000)")
    parser.add_argument("--sequential", type=int, default=20, help="sent one at a time (20)")
    parser.add_argument("--concurrency", type=int, default=4, help="SMTP clients in the burst")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="router-bench-"))
    try:
        rows = asyncio.run(_run(args, workdir))
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(_table(rows))
    return 0


async def _run(args: argparse.Namespace, workdir: Path) -> list[Row]:
    variants = pdf_variants()
    capture = TimedCapture().start()
    try:
        rows = _machine(workdir)
        live, samples = await _live(args, workdir, capture, variants)
        rows += live
        rows += await _bare(args, capture, variants, samples, live_per_referral=samples["per"])
        if args.backlog:
            rows += await _backlog(args, workdir, capture, variants)
    finally:
        capture.stop()
    return rows


async def _live(
    args: argparse.Namespace, workdir: Path, capture: TimedCapture, variants: list[bytes]
) -> tuple[list[Row], dict[str, float]]:
    """One daemon: referrals one at a time, then a burst of N."""
    daemon = RouterProcess(workdir / "live", capture.port, workdir / "live.log")
    daemon.start()
    ready = await asyncio.to_thread(daemon.wait_ready)
    rows: list[Row] = [("", ""), ("LIVE: `serve` process, SMTP inbox -> SMTP relay", "")]
    rows.append(("start-up to /readyz 200", f"{ready:.2f} s"))

    one_by_one = make_referrals(args.sequential + 1, "seq", variants)
    latencies = []  # the first one starts the analysis worker: not counted
    for referral in one_by_one:
        accepted = await send_referral(daemon.inbox_port, referral)
        arrived = await asyncio.to_thread(capture.wait_forwards, [referral.message_id], 60)
        latencies.append(arrived[referral.message_id] - accepted)
    rows.append(
        ("first referral (starts the analysis worker)", f"{latencies.pop(0) * 1000:.0f} ms")
    )
    rows.append((f"latency one at a time ({len(latencies)}) p50 / p99", _percentiles(latencies)))

    burst = make_referrals(args.n, "burst", variants)
    started, accepted_at = await _send_burst(daemon.inbox_port, burst, args.concurrency)
    ids = [r.message_id for r in burst]
    arrived = await asyncio.to_thread(capture.wait_forwards, ids, 60 + args.n * 2)
    elapsed = max(arrived.values()) - started
    first = min(arrived.values()) - started
    rows.append((f"burst of {args.n}, {args.concurrency} SMTP clients: throughput",
                 f"{args.n / elapsed:.1f} referrals/s ({elapsed:.1f} s)"))  # fmt: skip
    rows.append(("burst: first forward arrived after", f"{first:.2f} s"))
    rows.append(("burst arrival-to-forward p50 / p99",
                 _percentiles([arrived[i] - accepted_at[i] for i in ids])))  # fmt: skip
    rows.append(("decisions counted on /metrics", f"{daemon.decisions():.0f}"))
    own, worker = daemon.peak_rss()
    rows.append(("peak RSS daemon / analysis worker (VmHWM)", f"{_mb(own)} / {_mb(worker)}"))
    rows.append(("SIGTERM to exit", f"{daemon.stop():.2f} s"))
    return rows, {"per": elapsed / args.n}


async def _send_burst(
    port: int, referrals: list[Referral], concurrency: int
) -> tuple[float, dict[bytes, float]]:
    """Send every referral with `concurrency` clients; returns the start and each 250 time."""
    queue: asyncio.Queue[Referral] = asyncio.Queue()
    for referral in referrals:
        queue.put_nowait(referral)
    accepted: dict[bytes, float] = {}

    async def client() -> None:
        while not queue.empty():
            referral = queue.get_nowait()
            accepted[referral.message_id] = await send_referral(port, referral)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return started, accepted


async def _bare(
    args: argparse.Namespace,
    capture: TimedCapture,
    variants: list[bytes],
    samples: dict[str, float],
    live_per_referral: float,
) -> list[Row]:
    """The same work without the daemon: analyse in-process, send with aiosmtplib."""
    count = max(10, min(args.n, 100))
    referrals = make_referrals(count, "bare", variants)
    parse = await asyncio.to_thread(_time_analysis, referrals)
    forward = await _time_sends(capture, "forward", count)
    ack = await _time_sends(capture, "other", count)
    bare = statistics.mean(parse) + statistics.mean(forward) + statistics.mean(ack)
    return [
        ("", ""),
        ("BARE COSTS, same run, in-process", ""),
        (f"analyse() one referral ({count}) mean / p99", _ms(parse)),
        (f"aiosmtplib send of a forward ({count}) mean / p99", _ms(forward)),
        (f"aiosmtplib send of an acknowledgment ({count}) mean / p99", _ms(ack)),
        ("bare total per referral (analyse + 2 sends)", f"{bare * 1000:.1f} ms"),
        ("pipeline per referral in the burst (1 / throughput)",
         f"{live_per_referral * 1000:.1f} ms"),
        ("pipeline overhead ratio (burst / bare)", f"{live_per_referral / bare:.2f} x"),
    ]  # fmt: skip


def _time_analysis(referrals: list[Referral]) -> list[float]:
    from router.analysis import analyse
    from router.routing import RoutingEngine
    from router.rules.loader import load_rules

    engine = RoutingEngine(load_rules(ROOT / "rules"), review_address="review@router.example")
    analyse(referrals[0].raw, engine, router_from="referrals@router.example")  # warm up
    timings = []
    for referral in referrals:
        started = time.perf_counter()
        result = analyse(
            referral.raw,
            engine,
            router_from="referrals@router.example",
            envelope_recipients=(INBOX_ADDRESS,),
        )
        timings.append(time.perf_counter() - started)
        assert result.decisions[0].outcome.value == "forward", result.decisions[0].reason
    return timings


async def _time_sends(capture: TimedCapture, kind: str, count: int) -> list[float]:
    import aiosmtplib

    sender, recipients, data = capture.samples[kind]
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        await aiosmtplib.send(
            data,
            sender=sender,
            recipients=recipients,
            hostname="127.0.0.1",
            port=capture.port,
            start_tls=False,
        )
        timings.append(time.perf_counter() - started)
    return timings


async def _backlog(
    args: argparse.Namespace, workdir: Path, capture: TimedCapture, variants: list[bytes]
) -> list[Row]:
    """Store a backlog with Journal.accept_sync, then start a daemon and time the drain."""
    from router.journal.sqlite import SqliteJournal as Journal

    referrals = make_referrals(args.backlog, "backlog", variants)
    state_dir = workdir / "backlog"
    journal = Journal(state_dir)
    started = time.perf_counter()
    for referral in referrals:
        journal.accept_sync(referral.raw, envelope_recipients=[INBOX_ADDRESS])
    stored = time.perf_counter() - started
    journal.close()

    daemon = RouterProcess(state_dir, capture.port, workdir / "backlog.log")
    daemon.start()
    ids = [r.message_id for r in referrals]
    arrived = await asyncio.to_thread(capture.wait_forwards, ids, 60 + args.backlog * 2)
    drained = max(arrived.values()) - daemon.started_at
    own, worker = daemon.peak_rss()
    decisions = daemon.decisions()
    daemon.stop()
    return [
        ("", ""),
        (f"BACKLOG: {args.backlog} referrals in the journal before start", ""),
        ("Journal.accept_sync (fsynced file + row)", f"{args.backlog / stored:.0f} messages/s"),
        ("drain, from process start to the last forward",
         f"{drained:.1f} s = {args.backlog / drained:.1f} referrals/s"),
        ("decisions counted on /metrics", f"{decisions:.0f}"),
        ("peak RSS daemon / analysis worker (VmHWM)", f"{_mb(own)} / {_mb(worker)}"),
    ]  # fmt: skip


def _machine(workdir: Path) -> list[Row]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return [
        ("MACHINE", ""),
        ("nproc / CPU", f"{len(os.sched_getaffinity(0))} / {model}"),
        ("Python / kernel", f"{platform.python_version()} / {platform.release()}"),
        ("state directory filesystem", _filesystem(workdir)),
    ]


def _filesystem(path: Path) -> str:
    best, kind = "", "unknown"
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mount, fstype = line.split()[1:3]
        if str(path).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fstype
    return f"{kind} ({best})"


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{p50 * 1000:.0f} ms / {p99 * 1000:.0f} ms"


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.mean(values) * 1000:.1f} ms / {p99 * 1000:.1f} ms"


def _mb(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def _table(rows: list[Row]) -> str:
    width = max(len(label) for label, _ in rows) + 2
    lines = []
    for label, value in rows:
        if not value:
            lines.append(label)
        else:
            lines.append(f"  {label:<{width}}{value}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
