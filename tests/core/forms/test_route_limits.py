"""`referral-router route` reads under the daemon's worker time limit: a slow form never hangs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.formfactory import complete_referral, labelled, text_pdf
from tests.formlayouts import slow_pdf
from tests.mailfactory import build_email


@pytest.mark.slow
def test_slow_document_gives_needs_review_not_a_hang(tmp_path: Path) -> None:
    """A PDF that takes far longer than ROUTER_PARSE_TIMEOUT_SECONDS ends as needs_review."""
    slow = tmp_path / "slow.eml"
    slow.write_bytes(build_email(attachments=[("form.pdf", slow_pdf(), "application/pdf")]))
    lines = [f"{label}: {value}" for label, value in labelled(complete_referral()).items()]
    fine = tmp_path / "fine.eml"
    fine.write_bytes(build_email(attachments=[("form.pdf", text_pdf(lines), "application/pdf")]))
    env = {
        **os.environ,
        "ROUTER_RULES_DIR": str(ROOT / "rules"),
        "ROUTER_REVIEW_ADDRESS": "review@router.example",
        "ROUTER_PARSE_TIMEOUT_SECONDS": "4",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "router", "route", "--json", str(slow), str(fine)],
        capture_output=True,
        text=True,
        timeout=100,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert first["file"] == str(slow)
    assert first["outcome"] == "needs_review"
    assert "longer than 4 s" in first["reason"]
    assert first["to"] == ["prevent@lewisham.gov.uk"]  # the inbox area's team reviews it
    assert second["outcome"] == "forward"  # the worker is replaced; the next file is read
    assert elapsed < 60
