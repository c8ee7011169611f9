"""Real files from the openpreserve format corpus (tests/data, CC0): read for what they are."""

from __future__ import annotations

from pathlib import Path

from router.core.mail.sniff import sniff
from router.models import AttachmentKind, Outcome
from tests.core.forms.decide import decide

DATA = Path(__file__).resolve().parents[2] / "data"


def test_acrobat_aes_owner_password_pdf_is_read() -> None:
    """Acrobat's "no copying" AES-128 PDF opens without a password and is read as a document."""
    data = (DATA / "format-corpus__encryption_nocopy.pdf").read_bytes()
    decision = decide("nocopy.pdf", data, "application/pdf")
    assert decision.outcome == Outcome.NEEDS_REVIEW  # a letter, not a referral form
    assert decision.reason.startswith("no referral form found (1 readable")


def test_acrobat_aes_open_password_pdf_is_encrypted() -> None:
    """Acrobat's AES-128 PDF that needs a password to open is "encrypted PDF"."""
    data = (DATA / "format-corpus__encryption_openpassword.pdf").read_bytes()
    decision = decide("locked.pdf", data, "application/pdf")
    assert decision.outcome == Outcome.NEEDS_REVIEW
    assert decision.reason == "encrypted PDF"


def test_word_97_document_is_legacy_doc() -> None:
    """A real Word 97-2003 file is told apart by its OLE2 directory as legacy Word."""
    data = (DATA / "format-corpus__text_only.doc").read_bytes()
    assert sniff(data) is AttachmentKind.DOC
    assert "legacy Word .doc" in decide("text_only.doc", data, "application/msword").reason
