"""One email in, its readings and decisions out: the pure work shared by `route` and the daemon."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from router.core.mail.parse import ParsedMessage, parse_message
from router.core.routing import RoutingEngine
from router.models import AttachmentKind, Decision, FormReading, FormStatus


@dataclass(frozen=True)
class Analysis:
    """Everything learnt from one email, before anything is sent."""

    message: ParsedMessage
    readings: list[FormReading]
    decisions: list[Decision]


def analyse(
    raw: bytes,
    engine: RoutingEngine,
    *,
    router_from: str,
    envelope_recipients: tuple[str, ...] = (),
    max_attachments: int = 20,
    trusted_authserv_ids: Sequence[str] = (),
) -> Analysis:
    """Parse `raw`, read every attachment and decide. Never raises for bad input.

    Args:
        raw: the email exactly as received.
        engine: the routing engine for the rules version in force.
        router_from: the router's own address (to recognise its mail coming back).
        envelope_recipients: RCPT TO addresses from the SMTP inbox (count as inbox addresses).
        max_attachments: attachments beyond this many are not read.
        trusted_authserv_ids: whose Authentication-Results to believe (`router.core.mail.auth`).

    Returns:
        The parsed message, one reading per attachment and the decisions.
    """
    message = parse_message(
        raw,
        envelope_recipients=envelope_recipients,
        router_from=router_from,
        max_attachments=max_attachments,
        trusted_authserv_ids=trusted_authserv_ids,
    )
    if message.automatic.ignore:
        return Analysis(message, [], engine.decide(message, []))
    from router.core.forms.read import read_attachment  # the readers: the worker has them preloaded

    readings = [read_attachment(a, engine.rules.forms) for a in message.attachments]
    return Analysis(message, readings, engine.decide(message, readings))


_HEADER_LIMIT = 256 * 1024


def unread_analysis(
    raw: bytes,
    engine: RoutingEngine,
    reason: str,
    *,
    router_from: str,
    envelope_recipients: tuple[str, ...] = (),
    trusted_authserv_ids: Sequence[str] = (),
) -> Analysis:
    """The analysis of a message whose reading failed (time or memory limit, dead worker).

    It is decided from its headers alone (who sent it, to which inbox) with one unreadable
    reading carrying `reason`, so it ends as `needs_review` saying why.
    """
    head = raw[:_HEADER_LIMIT].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0] + b"\r\n\r\n"
    message = parse_message(
        head,
        envelope_recipients=envelope_recipients,
        router_from=router_from,
        trusted_authserv_ids=trusted_authserv_ids,
    )
    unreadable = FormReading(
        attachment_index=-1,
        filename=None,
        kind=AttachmentKind.OTHER,
        status=FormStatus.UNREADABLE,
        reason=reason,
    )
    return Analysis(message, [], engine.decide(message, [unreadable]))
