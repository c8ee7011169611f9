"""Encrypted PDFs: owner-password-only ones are read; a real user password means "encrypted"."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

from router.models import Outcome
from tests.conftest import ROOT
from tests.core.forms.decide import LEWISHAM_CC, MET, decide
from tests.formfactory import complete_referral, labelled
from tests.formlayouts import encrypted_form

ALGORITHMS = ["AES-256", "AES-128", "RC4-128"]


def test_cryptography_is_a_runtime_dependency() -> None:
    """pypdf needs `cryptography` for AES: it is installed with the router, not only in dev."""
    requires = importlib.metadata.requires("referral-router") or []
    runtime = [r for r in requires if "extra ==" not in r]
    assert any(r.lower().startswith("cryptography") for r in runtime)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_owner_password_only_pdf_is_read(algorithm: str) -> None:
    """A PDF anyone can open (empty user password) is read and forwarded like any other."""
    decision = decide("form.pdf", encrypted_form(labelled(complete_referral()), algorithm))
    assert decision.outcome == Outcome.FORWARD
    assert (decision.area, decision.to, decision.cc) == ("lewisham", [MET], LEWISHAM_CC)
    assert decision.fields == complete_referral()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_user_password_pdf_is_encrypted_not_corrupt(algorithm: str) -> None:
    """A PDF that needs a password goes to review as "encrypted", never as "corrupt"."""
    data = encrypted_form(labelled(complete_referral()), algorithm, user_password="user-secret")
    decision = decide("form.pdf", data)
    assert decision.outcome == Outcome.NEEDS_REVIEW
    assert "encrypted" in decision.reason
    assert "corrupt" not in decision.reason
    assert decision.fields == {}


_WITHOUT_CRYPTOGRAPHY = """
import builtins, sys
real = builtins.__import__
def refuse(name, *args, **kwargs):
    if name.startswith("cryptography"):
        raise ImportError(name)
    return real(name, *args, **kwargs)
builtins.__import__ = refuse
from router.core.forms.read import read_attachment
from router.core.rules.loader import load_rules
from tests.formfactory import attachment
from router.models import AttachmentKind
rules = load_rules(__import__("pathlib").Path("rules")).forms
data = sys.stdin.buffer.read()
print(read_attachment(attachment(data, AttachmentKind.PDF), rules).reason)
"""


def test_aes_without_its_backend_is_still_encrypted() -> None:
    """Where AES cannot be decrypted at all, the reason still says "encrypted PDF"."""
    data = encrypted_form(labelled(complete_referral()), "AES-256", user_password="user-secret")
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CRYPTOGRAPHY],
        input=data,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    reason = done.stdout.decode().strip().splitlines()[-1]
    assert reason.startswith("encrypted PDF"), json.dumps(reason)
