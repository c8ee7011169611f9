"""`referral-router outbox` lists what the Maildir relay wrote, each mail with its kind;
`--version` prints the installed version; `--json` help warns that it prints form values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from router.cli import main
from router.logs import configure_logging
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.mailfactory import build_email


@pytest.fixture(autouse=True)
def _logging_back_to_default() -> Iterator[None]:
    """`main` sets the log level for a command; later tests get the default back."""
    yield
    configure_logging("info", "json")


def _incomplete() -> bytes:
    pdf = fillable_pdf(labelled(complete_referral(person_dob=None)))
    return build_email(attachments=[("referral.pdf", pdf, "application/pdf")])


async def test_outbox_lists_kind_to_cc_and_subject(
    daemon_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After an incomplete referral, the listing shows the notice to the team and the ack."""
    outbox = tmp_path / "outbox"
    daemon = await daemon_factory(relay=f"maildir:{outbox}")
    await submit(daemon, _incomplete())
    await daemon.run_once()
    await daemon.run_once()  # the ack goes once its referral's mail is sent
    capsys.readouterr()  # the daemon's own log lines

    assert main(["outbox", "--dir", str(outbox)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == f"{outbox}: 2 mail(s)"
    assert lines[1].startswith("incomplete_notice  ") and "INCOMPLETE" in lines[1]
    assert lines[2].strip() == "To: prevent@lewisham.gov.uk"
    assert lines[3].startswith("ack  ") and "Prevent referral received" in lines[3]
    assert lines[4].strip() == "To: teacher@school.example"
    assert len(lines) == 5  # neither mail has a Cc

    assert main(["outbox", "--dir", str(outbox), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in records] == ["incomplete_notice", "ack"]
    assert records[0]["to"] == ["prevent@lewisham.gov.uk"]


def test_outbox_without_a_maildir_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outbox that does not exist yet, or a relay that is not a Maildir, is one line."""
    monkeypatch.setenv("ROUTER_STATE_DIR", str(tmp_path / "state"))
    assert main(["outbox"]) == 1
    assert f"no Maildir at {tmp_path / 'state' / 'outbox'}" in capsys.readouterr().err
    monkeypatch.setenv("ROUTER_RELAY", "smtp://relay.example:587")
    assert main(["outbox"]) == 1
    assert "not to a Maildir" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`--version` prints the installed package's version and exits 0."""
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"referral-router {version('referral-router')}\n"


@pytest.mark.parametrize("command", [["route", "--help"], ["rules", "test", "--help"]])
def test_json_help_says_it_prints_form_values(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`route --json` and `rules test --json` say they print every form value."""
    with pytest.raises(SystemExit):
        main(command)
    help_text = " ".join(capsys.readouterr().out.split())
    assert "prints every form value (name, date of birth, concern)" in help_text
