"""Referral content goes only to addresses the rules or settings name; acks only to From.

Property tests: whatever a message carries (Reply-To, random To/Cc/Delivered-To, addresses
and header-like text inside form fields, CR/LF anywhere), decisions name only rule or
settings addresses, and the composed mail's headers hold only those addresses, with no
form content or injected header in them.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from router.core.analysis import Analysis, analyse
from router.core.compose import compose_ack, compose_forward
from router.core.routing import RoutingEngine
from router.core.rules.model import Rules
from router.models import CANONICAL_FIELDS, Decision, Outcome
from tests.formfactory import FORM_LABELS, complete_referral, docx_table, fillable_pdf, labelled
from tests.hardening.conftest import REVIEW, ROUTER_FROM
from tests.mailfactory import build_email

PROPERTY = settings(
    max_examples=80,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# What the router may itself write in a header of a forward or an acknowledgment.
OWN_HEADERS = {
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "auto-submitted",
    "x-auto-response-suppress",
    "x-referral-reference",
    "x-referral-outcome",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}
FORWARD_SUBJECT = re.compile(
    r"Prevent referral PR-1-1 \[(?:[a-z0-9-]+|no area)\](?: INCOMPLETE| REVIEW)?(?: INCOMPLETE)?"
)
ACK_SUBJECT = "Prevent referral received: PR-1-1"
PLACEHOLDER = "attachment-name-placeholder.bin"


def rule_addresses(rules: Rules) -> set[str]:
    """Every address the rules name: each area's to, cc, team and condition CCs."""
    named: set[str] = set()
    for area in rules.areas:
        named |= {area.to, *area.cc, *(c for cond in area.conditions for c in cond.cc)}
        if area.team:
            named.add(area.team)
    return named


_LOCAL = st.from_regex(r"[a-z0-9][a-z0-9._%+-]{0,15}", fullmatch=True)
_DOMAIN = st.one_of(
    st.from_regex(r"[a-z0-9-]{1,10}\.(?:example|org|police\.uk|gov\.uk)", fullmatch=True),
    st.sampled_from(["met.pnn.police.uk", "lewisham.gov.uk", "kent.police.uk", "x.example"]),
)
ADDRESS = st.one_of(
    st.builds("{}@{}".format, _LOCAL, _DOMAIN),
    st.emails(),
    st.sampled_from(
        [
            "preventreferrals@evil.police.uk",
            "preventreferrals@met.pnn.police.uk.evil.example",
            "PREVENT@Lewisham.gov.uk",
            '"quoted, local"@school.example',
            "josé@exämple.org",
            "mailer-daemon@x.example",
        ]
    ),
)
INJECTION = st.sampled_from(
    [
        "\r\nBcc: evil@attacker.example",
        "\nTo: evil@attacker.example",
        "\rCc: evil@attacker.example",
        "x\r\n\r\nbody",
        "=?utf-8?q?a=0D=0ABcc:_evil@attacker.example?=",
        "evil@attacker.example, other@attacker.example",
    ]
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@st.composite
def address_header(draw: st.DrawFn) -> str:
    """A raw address header value: lists, display names, garbage and injections."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        address = draw(ADDRESS)
        style = draw(st.sampled_from(["bare", "angle", "named", "quoted"]))
        name = draw(TEXT).replace('"', "")
        parts.append(
            {"bare": address, "angle": f"<{address}>", "named": f"{name} <{address}>"}.get(
                style, f'"{name}" <{address}>'
            )
        )
    value = ", ".join(parts)
    if draw(st.booleans()):
        value += draw(INJECTION)
    return value


FIELD_VALUE = st.one_of(
    TEXT,
    ADDRESS,
    INJECTION,
    st.builds("Send to {} now".format, ADDRESS),
    st.sampled_from(["SE13 6LH", "CT1 2AB", "CV1 1AA", "LS1 4AP", "KT1 1AA", "Kent", "N/A", ""]),
)


def _xml_safe(value: str) -> str:
    return "".join(ch for ch in value if ch in "\t\n" or (ch >= " " and ch != "\x7f"))


@dataclass(frozen=True)
class Referral:
    """The drawn ingredients of one email (built in the test: the email library and the
    form makers use `random`, which hypothesis forbids inside strategies)."""

    fields: dict[str, str]
    kind: str
    filename: str
    sender: str
    headers: dict[str, str]

    def build(self) -> bytes:
        """The email, with the form attached under the drawn file name (RFC 2231)."""
        if self.kind == "pdf":
            # reportlab's standard fonts hold Latin-1 only (it raises KeyError on "Ā").
            safe = {
                k: _xml_safe(v).replace("\n", " ").encode("latin-1", "replace").decode("latin-1")
                for k, v in labelled(self.fields).items()
            }
            attachment = (PLACEHOLDER, fillable_pdf(safe), "application/pdf")
        elif self.kind == "docx":
            rows = [(FORM_LABELS[k], _xml_safe(v)) for k, v in self.fields.items()]
            attachment = (PLACEHOLDER, docx_table(rows), "application/octet-stream")
        else:
            lines = "".join(f"{FORM_LABELS[k]}: {v}\n" for k, v in self.fields.items())
            data = lines.encode("utf-8", "surrogatepass")
            attachment = (PLACEHOLDER, data, "text/plain")
        raw = build_email(sender=None, to=(), attachments=[attachment], headers=self.headers)
        # RFC 2231 lets a filename carry any character, CR and LF included.
        encoded = b"filename*=utf-8''" + quote(self.filename, safe="").encode("ascii")
        return raw.replace(b'filename="' + PLACEHOLDER.encode() + b'"', encoded)


@st.composite
def referral_email(draw: st.DrawFn) -> Referral:
    """A referral whose form fields, file name and headers are partly hostile."""
    fields = complete_referral()
    for name in draw(st.lists(st.sampled_from(CANONICAL_FIELDS), max_size=6, unique=True)):
        fields[name] = draw(FIELD_VALUE)
    kind = draw(st.sampled_from(["text", "text", "pdf", "docx"]))
    filename = draw(st.one_of(TEXT, INJECTION, st.just("Referral - Jane Testperson.pdf")))
    sender = draw(ADDRESS)
    headers = {"From": draw(st.sampled_from([sender, f"Referrer <{sender}>"]))}
    for name in ("To", "Cc", "Reply-To", "Delivered-To", "X-Original-To"):
        if draw(st.booleans()):
            headers[name] = draw(address_header())
    headers["Subject"] = draw(st.one_of(TEXT, INJECTION))
    return Referral(fields, kind, filename, sender, headers)


def _analyse(engine: RoutingEngine, raw: bytes, envelope: tuple[str, ...]) -> Analysis:
    return analyse(raw, engine, router_from=ROUTER_FROM, envelope_recipients=envelope)


def _header_addresses(message: EmailMessage, name: str) -> set[str]:
    """Addresses of one header of a composed mail, as a mail client would read them."""
    values = message.get_all(name) or []
    return {a.addr_spec.lower() for value in values for a in value.addresses}


def _check_composed_headers(data: bytes) -> EmailMessage:
    """The top-level header block holds only the router's own headers, one line each."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8")  # UTF-8 only for RFC 6532 addresses
    names = [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1] not in " \t"]
    assert set(names) <= OWN_HEADERS, names
    assert "bcc" not in names
    parsed = email.message_from_string(data.decode("utf-8"), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert not parsed.defects
    return parsed


def _check_forward(analysis: Analysis, decision: Decision, allowed: set[str]) -> None:
    outgoing = compose_forward(
        decision, "PR-1-1", analysis.message, b"", analysis.readings, sender=ROUTER_FROM
    )
    message = _check_composed_headers(outgoing.data)
    assert FORWARD_SUBJECT.fullmatch(str(message["Subject"])), message["Subject"]
    assert _header_addresses(message, "To") == set(decision.to)
    assert _header_addresses(message, "Cc") == set(decision.cc)
    assert set(outgoing.recipients) == set(decision.to) | set(decision.cc)
    assert set(outgoing.recipients) <= allowed


def _check_ack(analysis: Analysis, decision: Decision, rules: Rules) -> None:
    assert decision.ack_to is not None
    outgoing = compose_ack(
        decision,
        "PR-1-1",
        analysis.message,
        rules.acknowledgments,
        sender=ROUTER_FROM,
        area_name="Lewisham",
    )
    message = _check_composed_headers(outgoing.data)
    assert str(message["Subject"]) == ACK_SUBJECT
    assert _header_addresses(message, "To") == {decision.ack_to}
    assert _header_addresses(message, "Cc") == set()
    assert outgoing.recipients == (decision.ack_to,)


@pytest.mark.slow
@PROPERTY
@given(
    message=referral_email(),
    envelope=st.lists(st.one_of(ADDRESS, st.sampled_from(["prevent@kent.gov.uk"])), max_size=2),
)
def test_only_rule_named_recipients(
    engine: RoutingEngine, bundled_rules: Rules, message: Referral, envelope: list[str]
) -> None:
    """Decisions and composed mail name only rule or settings addresses; acks go to From."""
    raw, sender = message.build(), message.sender
    allowed = rule_addresses(bundled_rules) | {REVIEW}
    analysis = _analyse(engine, raw, tuple(envelope))
    for decision in analysis.decisions:
        event(f"{decision.outcome.value}, acknowledged: {decision.ack_to is not None}")
        assert set(decision.to) | set(decision.cc) <= allowed
        assert decision.ack_to in (None, analysis.message.from_address)
        if decision.ack_to is not None:
            assert decision.ack_to == analysis.message.from_address == sender.lower()
        if decision.outcome is not Outcome.IGNORED:
            _check_forward(analysis, decision, allowed)
        if decision.ack_to is not None:
            _check_ack(analysis, decision, bundled_rules)


@pytest.mark.parametrize(
    "sender",
    [
        "josé@exämple.org",
        '"quoted, local"@school.example',
        '"a\\"b"@school.example',
        "UPPER.Case+tag@School.Example",
    ],
)
def test_unusual_from_addresses_compose_cleanly(
    engine: RoutingEngine, bundled_rules: Rules, sender: str
) -> None:
    """Odd but valid From addresses are acknowledged at exactly that address, or not at all."""
    referral = Referral(
        complete_referral(),
        "text",
        "referral.txt",
        sender,
        {"From": sender, "Reply-To": "evil@attacker.example", "To": "prevent@lewisham.gov.uk"},
    )
    analysis = _analyse(engine, referral.build(), ())
    [decision] = analysis.decisions
    assert decision.outcome is Outcome.FORWARD
    _check_forward(analysis, decision, rule_addresses(bundled_rules))
    assert decision.ack_to in (None, sender.lower())
    if decision.ack_to is not None:
        _check_ack(analysis, decision, bundled_rules)
