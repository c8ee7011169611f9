"""Admin commands through the real CLI: `status`, `reprocess` and `rules test`, beside a daemon."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from router.commands.status import redact
from tests.conftest import ROOT, submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email

MET = "preventreferrals@met.pnn.police.uk"
SENDER = "teacher@school.example"
SUBJECT = "Prevent referral about a pupil"


def _referral() -> bytes:
    pdf = fillable_pdf(labelled(complete_referral()))
    return build_email(
        sender=SENDER, subject=SUBJECT, attachments=[("referral.pdf", pdf, "application/pdf")]
    )


async def cli(*args: str, state_dir: Path, journal: str = "") -> subprocess.CompletedProcess[str]:
    """Run `python -m router ARGS` with only ROUTER_STATE_DIR (and ROUTER_JOURNAL, for a
    PostgreSQL journal) set, off the event loop."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROUTER_")}
    env["ROUTER_STATE_DIR"] = str(state_dir)
    env["ROUTER_JOURNAL"] = journal
    command = [sys.executable, "-m", "router", *args]
    return await asyncio.to_thread(
        subprocess.run, command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def _assert_nothing_personal(text: str) -> None:
    assert SENDER not in text and "teacher@" not in text
    assert SUBJECT not in text
    for value in complete_referral().values():
        if len(value) > 3:
            assert value not in text


async def _quarantined_forward(daemon_factory: Any, smtp_capture: Any) -> tuple[Any, Any]:
    """A daemon whose first forward the relay refused for good (550): quarantined."""
    relay = smtp_capture()
    relay.fail_with(550, f"<{MET}> no such user", at="RCPT", times=1, recipients={MET})
    daemon = await daemon_factory(relay=relay.url)
    await submit(daemon, _referral(), sender=SENDER)
    await daemon.run_once()
    await relay.wait_for_async(1, timeout=10)  # the alert (the ack is held back)
    [row] = daemon.journal.query("SELECT state FROM messages")
    assert row["state"] == "quarantined"
    return daemon, relay


async def test_status_counts_by_state_and_outcome_without_personal_data(
    daemon_factory, smtp_capture, tmp_path
):
    """After a referral flowed, `status` (text and --json) counts it as done and forwarded,
    and prints no subject, form value or sender address."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    await submit(daemon, _referral(), sender=SENDER)
    await daemon.run_once()
    await relay.wait_for_async(2, timeout=10)

    text = await cli("status", state_dir=tmp_path / "state", journal=daemon.settings.journal)
    assert text.returncode == 0, text.stderr
    assert "messages    received 0, decided 0, done 1, quarantined 0" in text.stdout
    assert "decisions   forward 1, incomplete 0, needs_review 0, ignored 0" in text.stdout
    assert "quarantine  0" in text.stdout
    _assert_nothing_personal(text.stdout + text.stderr)

    result = await cli(
        "status", "--json", state_dir=tmp_path / "state", journal=daemon.settings.journal
    )
    report = json.loads(result.stdout)
    assert report["messages"]["done"] == 1 and report["outcomes"]["forward"] == 1
    assert report["outbox_pending"] == 0 and report["outbox_failed"] == 0
    assert report["oldest_unsent_seconds"] is None
    assert report["last_rules_version"] == daemon.rules.version
    _assert_nothing_personal(result.stdout)


@pytest.mark.slow
async def test_quarantined_forward_is_listed_then_reprocessed_and_delivered(
    daemon_factory, smtp_capture, tmp_path
):
    """A forward refused with 550 shows in `status` with its id, reference and reason; after
    `reprocess PR-...` the daemon sends it and the quarantine is empty."""
    daemon, relay = await _quarantined_forward(daemon_factory, smtp_capture)
    [message] = daemon.journal.query("SELECT id FROM messages")
    reference = f"PR-{message['id']}-1"

    result = await cli(
        "status", "--json", state_dir=tmp_path / "state", journal=daemon.settings.journal
    )
    [item] = json.loads(result.stdout)["quarantine"]
    assert item["id"] == message["id"] and item["references"] == [reference]
    assert "550" in item["reason"] and "...@met.pnn.police.uk" in item["reason"]
    assert "preventreferrals@" not in item["reason"]
    text = await cli("status", state_dir=tmp_path / "state", journal=daemon.settings.journal)
    assert message["id"] in text.stdout and "referral-router reprocess ID" in text.stdout

    result = await cli(
        "reprocess",
        reference.lower(),
        state_dir=tmp_path / "state",
        journal=daemon.settings.journal,
    )
    assert result.returncode == 0, result.stderr
    assert f"{message['id']} is queued again" in result.stdout
    await daemon.run_once()
    captured = await relay.wait_for_async(3, timeout=10)
    assert any(MET in c.rcpt_tos for c in captured)
    [row] = daemon.journal.query("SELECT state FROM messages")
    assert row["state"] == "done"
    status = json.loads(
        (
            await cli(
                "status", "--json", state_dir=tmp_path / "state", journal=daemon.settings.journal
            )
        ).stdout
    )
    assert status["quarantine"] == [] and status["messages"]["done"] == 1


@pytest.mark.slow
async def test_reprocess_refuses_what_it_cannot_requeue(daemon_factory, smtp_capture, tmp_path):
    """Unknown ids and references and messages not in quarantine exit 1 with a clear message;
    something that is not an id at all is a usage error (2)."""
    daemon, _ = await _quarantined_forward(daemon_factory, smtp_capture)
    [message] = daemon.journal.query("SELECT id FROM messages")
    state_dir = tmp_path / "state"

    unknown = await cli(
        "reprocess", "20990101-00000000", state_dir=state_dir, journal=daemon.settings.journal
    )
    assert unknown.returncode == 1 and "no message 20990101-00000000" in unknown.stderr
    unknown_ref = await cli(
        "reprocess", "PR-20990101-00000000-1", state_dir=state_dir, journal=daemon.settings.journal
    )
    assert (
        unknown_ref.returncode == 1 and "no referral PR-20990101-00000000-1" in unknown_ref.stderr
    )
    garbage = await cli("reprocess", "hello", state_dir=state_dir, journal=daemon.settings.journal)
    assert garbage.returncode == 2 and "neither a message id" in garbage.stderr

    assert (
        await cli("reprocess", message["id"], state_dir=state_dir, journal=daemon.settings.journal)
    ).returncode == 0
    again = await cli(
        "reprocess", message["id"], state_dir=state_dir, journal=daemon.settings.journal
    )
    assert again.returncode == 1 and "not quarantined" in again.stderr
    assert "Traceback" not in unknown.stderr + garbage.stderr + again.stderr


async def test_admin_commands_without_a_journal_say_so(tmp_path):
    """Pointed at a directory with no journal, `status` exits 1 naming the path, and creates
    nothing there."""
    result = await cli("status", state_dir=tmp_path / "nowhere")
    assert result.returncode == 1 and "no journal at" in result.stderr
    assert not (tmp_path / "nowhere").exists()


async def test_rules_test_routes_with_a_candidate_directory(tmp_path):
    """`rules test DIR FILE.eml --json` decides with the candidate rules, so a changed `to`
    shows before it is deployed; the bundled rules still say the Met."""
    candidate = Path(shutil.copytree(ROOT / "rules", tmp_path / "candidate"))
    lewisham = candidate / "areas" / "lewisham.yaml"
    lewisham.write_text(lewisham.read_text().replace(f"to: {MET}", "to: new@force.example"))
    mail = tmp_path / "referral.eml"
    mail.write_bytes(_referral())

    result = await cli("rules", "test", str(candidate), str(mail), "--json", state_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    [decision] = [json.loads(line) for line in result.stdout.splitlines()]
    assert decision["outcome"] == "forward" and decision["area"] == "lewisham"
    assert decision["to"] == ["new@force.example"]

    bundled = await cli(
        "rules", "test", str(ROOT / "rules"), str(mail), "--json", state_dir=tmp_path
    )
    assert json.loads(bundled.stdout)["to"] == [MET]
    readable = await cli("rules", "test", str(candidate), str(mail), state_dir=tmp_path)
    assert readable.returncode == 0 and "lewisham" in readable.stdout


def test_redact_keeps_domains_only():
    """Addresses in error texts keep their domain; long texts are cut to one short line."""
    assert redact("550 <a.b@x.example> refused\nmore") == "550 <...@x.example> refused more"
    assert len(redact("x" * 1000)) == 200
