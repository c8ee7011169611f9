"""Rules hot reload: a valid change is swapped in, an invalid one is refused, SIGHUP forces it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from structlog.testing import capture_logs

from tests.conftest import ROOT, make_settings, submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email
from tests.servers.smtp import free_port

MET = "preventreferrals@met.pnn.police.uk"
LEWISHAM = Path("areas") / "lewisham.yaml"


def _referral() -> bytes:
    pdf = fillable_pdf(labelled(complete_referral()))
    return build_email(attachments=[("referral.pdf", pdf, "application/pdf")])


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled rules that a test may edit."""
    return Path(shutil.copytree(ROOT / "rules", tmp_path / "rules"))


@pytest.fixture
def relay(smtp_capture):  # type: ignore[no-untyped-def]
    """The capture server the watched daemon sends to."""
    return smtp_capture()


@pytest.fixture
async def watched_daemon(tmp_path: Path, rules_copy: Path, bundled_rules, relay):  # type: ignore[no-untyped-def]
    """A started daemon routing with `rules_copy`, polled every 50 ms, sending to `relay`."""
    from router.service.daemon import Daemon

    daemon = Daemon(make_settings(tmp_path, rules_dir=rules_copy, relay=relay.url), bundled_rules)
    daemon.rules_watcher.interval = daemon.rules_watcher.settle = 0.05
    await daemon.start()
    yield daemon
    await daemon.close()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


async def _reloaded(daemon: Any) -> str:
    await asyncio.wait_for(daemon.rules_watcher.attempted.wait(), 10)
    return str(daemon.rules_watcher.last_result)


def _reloads(daemon: Any, result: str) -> float:
    value = daemon.metrics.registry.get_sample_value(
        "router_rules_reloads_total", {"result": result}
    )
    return value or 0.0


async def test_valid_change_is_swapped_in(watched_daemon, relay, rules_copy):
    """A new `to` for Lewisham is picked up without a restart: the next referral goes there,
    and its decision records the new rules version."""
    old_version = watched_daemon.rules.version
    _edit(rules_copy / LEWISHAM, f"to: {MET}", "to: prevent@newforce.police.example")
    assert await _reloaded(watched_daemon) == "ok"
    assert watched_daemon.rules.version != old_version
    assert _reloads(watched_daemon, "ok") == 1

    await submit(watched_daemon, _referral())
    await watched_daemon.run_once()
    captured = await relay.wait_for_async(2, timeout=10)
    assert any("prevent@newforce.police.example" in c.rcpt_tos for c in captured)
    assert all(MET not in c.rcpt_tos for c in captured)
    [row] = watched_daemon.journal.query("SELECT rules_version FROM messages")
    assert row["rules_version"] == watched_daemon.rules.version


async def test_invalid_change_keeps_the_old_rules(watched_daemon, relay, rules_copy):
    """A broken edit is refused: every problem is logged with file and line, the reload is
    counted as invalid, and referrals still go where the old rules say."""
    old_version = watched_daemon.rules.version
    with capture_logs() as logs:
        _edit(rules_copy / LEWISHAM, "districts: [SE4, SE6, SE13, SE23]", "districts: [SE4, XX9]")
        _edit(rules_copy / LEWISHAM, f"to: {MET}", "to: not an address")
        assert await _reloaded(watched_daemon) == "invalid"
    assert watched_daemon.rules.version == old_version
    assert _reloads(watched_daemon, "invalid") >= 1
    problems = [e for e in logs if e["event"] == "rules_problem"]
    assert {p["file"] for p in problems} == {"areas/lewisham.yaml"}
    assert len(problems) >= 2 and all(p["line"] for p in problems)
    assert any(p["field"] == "to" for p in problems)

    await submit(watched_daemon, _referral())
    await watched_daemon.run_once()
    captured = await relay.wait_for_async(2, timeout=10)
    assert any(MET in c.rcpt_tos for c in captured)


async def test_a_touch_without_change_swaps_nothing(watched_daemon, rules_copy):
    """Saving a file unchanged is noticed but keeps the same rules object and counts no reload."""
    rules = watched_daemon.rules
    os.utime(rules_copy / LEWISHAM)
    assert await _reloaded(watched_daemon) == "unchanged"
    assert watched_daemon.rules is rules
    assert _reloads(watched_daemon, "ok") == 0


async def test_sighup_reloads_a_change_polling_cannot_see(tmp_path, rules_copy):
    """`serve` reloads on SIGHUP even when an edit kept each file's size and mtime (as
    `rsync -t` can), and routes the next referral with the new rules."""
    lewisham = rules_copy / LEWISHAM
    before = lewisham.stat()
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROUTER_")}
    env.update(
        ROUTER_STATE_DIR=str(tmp_path / "state"),
        ROUTER_RULES_DIR=str(rules_copy),
        ROUTER_INBOX=f"smtp://127.0.0.1:{port}",
        ROUTER_RELAY=f"maildir:{tmp_path / 'outbox'}",
        ROUTER_HTTP="",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "serve", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await _log_event(process, "started")
        with lewisham.open("r+") as file:  # in place: same inode, size and mtime
            text = file.read().replace(f"to: {MET}", "to: preventreferral2@met.pnn.police.uk")
            file.seek(0)
            file.write(text)
        os.utime(lewisham, ns=(before.st_atime_ns, before.st_mtime_ns))
        process.send_signal(signal.SIGHUP)
        reloaded = await _log_event(process, "rules_reloaded")
        assert reloaded["trigger"] == "sighup"

        await aiosmtplib.send(
            _referral(), sender="teacher@school.example", recipients=["prevent@lewisham.gov.uk"],
            hostname="127.0.0.1", port=port, start_tls=False,
        )  # fmt: skip
        while (await _log_event(process, "sent")).get("kind") != "forward":
            pass
        forwards = [
            p.read_text() for p in (tmp_path / "outbox" / "new").iterdir() if "To:" in p.read_text()
        ]
        assert any("preventreferral2@met.pnn.police.uk" in text for text in forwards)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _log_event(process: asyncio.subprocess.Process, event: str) -> dict[str, Any]:
    """Read the daemon's JSON log lines until one with `event`; returns it."""
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while True:
            line = await process.stderr.readline()
            assert line, f"the daemon exited (status {await process.wait()})"
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line from a third-party logger
            if record.get("event") == event:
                return dict(record)


async def test_a_new_sector_domain_counts_from_the_next_referral(watched_daemon, rules_copy):
    """A school domain added to sectors.yaml is picked up without a restart: the next
    referral from it counts as education; a domain under two sectors is refused."""
    sectors = rules_copy / "sectors.yaml"
    original = sectors.read_text()
    sectors.write_text(original.replace("  community: []", "  community:\n    - nhs.net"))
    assert await _reloaded(watched_daemon) == "invalid"
    watched_daemon.rules_watcher.attempted.clear()
    sectors.write_text(original.replace("    - sch.uk", "    - sch.uk\n    - example.org"))
    assert await _reloaded(watched_daemon) == "ok"
    await submit(watched_daemon, _referral())  # the form's referrer is ...@example.org
    await watched_daemon.run_once()
    [row] = watched_daemon.journal.query("SELECT sector FROM referral_stats")
    assert row["sector"] == "education"
