"""The bare work of one referral, measured in-process in the same run as the daemon.

Bare work: read the form (`analyse`), compose the forward and the acknowledgment, write the
raw message durably (one fsynced file), and hand both mails to the relay over one kept SMTP
connection. Whatever the daemon spends beyond this is the pipeline's own cost.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import aiosmtplib

from benchmarks.harness import INBOX_ADDRESS, ROOT, Referral

SENDER = "referrals@router.example"


def time_analysis_and_compose(referrals: list[Referral]) -> tuple[list[float], list[float]]:
    """Per referral: seconds to analyse, and seconds to compose its forward and ack."""
    from router.core.analysis import analyse
    from router.core.compose import compose_ack, compose_forward
    from router.core.routing import RoutingEngine
    from router.core.rules.loader import load_rules

    rules = load_rules(ROOT / "rules")
    engine = RoutingEngine(rules, review_address="review@router.example")
    analyse(referrals[0].raw, engine, router_from=SENDER)  # warm up
    reading, composing = [], []
    for referral in referrals:
        started = time.perf_counter()
        result = analyse(
            referral.raw, engine, router_from=SENDER, envelope_recipients=(INBOX_ADDRESS,)
        )
        read = time.perf_counter()
        [decision] = result.decisions
        assert decision.outcome.value == "forward", decision.reason
        compose_forward(
            decision, "PR-1-1", result.message, referral.raw, result.readings, sender=SENDER
        )
        compose_ack(
            decision, "PR-1-1", result.message, rules.acknowledgments, sender=SENDER, area_name="L"
        )
        reading.append(read - started)
        composing.append(time.perf_counter() - read)
    return reading, composing


def time_durable_writes(referrals: list[Referral]) -> list[float]:
    """Seconds to write each raw message to a new file with fsync (file and directory)."""
    timings = []
    with tempfile.TemporaryDirectory(prefix="router-bare-", dir=ROOT) as directory:
        folder = Path(directory)
        for number, referral in enumerate(referrals):
            started = time.perf_counter()
            path = folder / f"{number}.eml"
            with path.open("wb") as file:
                file.write(referral.raw)
                file.flush()
                os.fsync(file.fileno())
            descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(descriptor)
            os.close(descriptor)
            timings.append(time.perf_counter() - started)
    return timings


async def time_kept_connection_sends(
    port: int, forward: tuple[str, list[str], bytes], ack: tuple[str, list[str], bytes], count: int
) -> list[float]:
    """Seconds per referral to send its forward and its ack over one kept connection."""
    timings = []
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
    async with client:
        for _ in range(count):
            started = time.perf_counter()
            for sender, recipients, data in (forward, ack):
                await client.rset()
                await client.sendmail(sender, recipients, data)
            timings.append(time.perf_counter() - started)
    return timings


def mean_ms(values: list[float]) -> float:
    return statistics.mean(values) * 1000
