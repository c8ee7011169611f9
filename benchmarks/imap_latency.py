"""Arrival-to-forward latency over IMAP IDLE on a real Dovecot: p50 and p99.

Starts a throwaway Dovecot (as the tests do), a capture SMTP relay and the daemon
in-process, then appends N referrals one at a time to the IMAP inbox and measures, for
each, the time from the APPEND completing to the forward reaching the relay.

    python3 benchmarks/imap_latency.py [-n 50]

Needs `dovecot` (apt-get install dovecot-imapd). Run from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.daemon import Daemon  # noqa: E402
from router.logs import configure_logging  # noqa: E402
from router.rules.loader import load_rules  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.formfactory import complete_referral, fillable_pdf, labelled  # noqa: E402
from tests.mailfactory import build_email  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from tests.servers.smtp import CaptureServer  # noqa: E402

MET = "preventreferrals@met.pnn.police.uk"


async def measure(count: int) -> list[float]:
    """Append `count` referrals one by one; return each one's latency in seconds."""
    dovecot = Dovecot()
    dovecot.start()
    relay = CaptureServer().start()
    state = Path(tempfile.mkdtemp(prefix="router-bench-"))
    settings = make_settings(
        state,
        inbox=f"imap://{dovecot.user}@127.0.0.1:{dovecot.imap_port}/INBOX",
        inbox_password=dovecot.password,
        relay=relay.url,
        idle_seconds=300,
    )
    daemon = Daemon(settings, load_rules(ROOT / "rules"))
    await daemon.start()
    worker = asyncio.create_task(daemon.run())
    pdf = fillable_pdf(labelled(complete_referral()))
    latencies = []
    try:
        while daemon.inbox is None or daemon.inbox.state != "idle":  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # the inbox's state has no event to wait on
        for number in range(count):
            raw = build_email(
                attachments=[("referral.pdf", pdf, "application/pdf")],
                message_id=f"<bench-{number}@school.example>",
            )
            seen = sum(MET in c.rcpt_tos for c in relay.messages)
            await asyncio.to_thread(dovecot.append, raw)
            started = time.perf_counter()
            while sum(MET in c.rcpt_tos for c in relay.messages) <= seen:
                await relay.wait_for_async(len(relay.messages) + 1, timeout=30)
            latencies.append(time.perf_counter() - started)
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(worker, 15)
        await daemon.close()
        relay.stop()
        dovecot.close()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="referrals to send (default 50)")
    parser.add_argument("-v", action="store_true", help="debug logs")
    args = parser.parse_args()
    configure_logging("debug" if "-v" in sys.argv else "warning", "console")
    latencies = sorted(asyncio.run(measure(args.n)))
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(f"IMAP IDLE arrival-to-forward latency over {len(latencies)} referrals (Dovecot)")
    print(f"  p50  {statistics.median(latencies) * 1000:8.1f} ms")
    print(f"  p99  {p99 * 1000:8.1f} ms")
    print(f"  max  {latencies[-1] * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
