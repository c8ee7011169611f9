"""`referral-router outbox`: what the Maildir relay wrote, one entry per mail with its kind."""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import TextIO

from router.core.kinds import ACK, ALERT, FORWARD, INCOMPLETE_NOTICE, REVIEW

_KIND_BY_OUTCOME = {"forward": FORWARD, "incomplete": INCOMPLETE_NOTICE, "needs_review": REVIEW}
_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class OutboxMail:
    """One mail in the Maildir: when it was written, its kind and its addressing."""

    file: str
    written: str
    kind: str
    to: list[str]
    cc: list[str]
    subject: str


def read_outbox(directory: Path) -> list[OutboxMail]:
    """The mail in a Maildir's `new/` and `cur/`, oldest first.

    Raises:
        FileNotFoundError: there is no Maildir there.
    """
    if not (directory / "new").is_dir():
        raise FileNotFoundError(directory)
    paths = [p for sub in ("new", "cur") for p in (directory / sub).glob("*") if p.is_file()]
    paths.sort(key=lambda p: (p.stat().st_mtime, p.name))
    return [_read(path, directory) for path in paths]


def _read(path: Path, directory: Path) -> OutboxMail:
    with path.open("rb") as file:
        head = file.read(_HEAD_BYTES)
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(head)
    written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return OutboxMail(
        file=str(path.relative_to(directory)),
        written=f"{written:%Y-%m-%d %H:%M:%S}Z",
        kind=mail_kind(headers.get("Auto-Submitted"), headers.get("X-Referral-Outcome")),
        to=_addresses(headers.get_all("To", [])),
        cc=_addresses(headers.get_all("Cc", [])),
        subject=" ".join(str(headers.get("Subject", "")).split()),
    )


def mail_kind(auto_submitted: object, outcome: object) -> str:
    """The kind of a mail the router wrote, from the headers it gives each kind."""
    if str(auto_submitted or "").startswith("auto-replied"):
        return ACK
    return _KIND_BY_OUTCOME.get(str(outcome or "").strip(), ALERT)


def _addresses(values: list[object]) -> list[str]:
    return [address for _, address in getaddresses([str(v) for v in values]) if address]


def format_outbox(directory: Path, mails: list[OutboxMail], out: TextIO) -> None:
    """Print each mail as a kind, a time and a subject, then its To and Cc."""
    out.write(f"{directory}: {len(mails)} mail(s)\n")
    width = max((len(mail.kind) for mail in mails), default=0)
    for mail in mails:
        out.write(f"{mail.kind:<{width}}  {mail.written}  {mail.subject}\n")
        out.write(f"{'':<{width}}  To: {', '.join(mail.to) or '-'}\n")
        if mail.cc:
            out.write(f"{'':<{width}}  Cc: {', '.join(mail.cc)}\n")
