"""The graph:// relay: sends as one Microsoft 365 mailbox through Microsoft Graph. See `Relay`.

A message goes byte for byte as MIME, base64-encoded, in `POST /users/{mailbox}/sendMail`
(`Content-Type: text/plain`; 202 means Exchange took it). Graph reads the recipients from the
To, Cc and Bcc headers, so an envelope recipient the headers do not name is added as Bcc.
A request body over Graph's 4 MB limit goes another way: a draft made from the MIME without
its largest attachments (`POST /users/{mailbox}/messages`), each of those attached through an
upload session (ranges of at most 4 MB, `PUT` without the bearer token, as Microsoft says),
then `POST .../messages/{id}/send`. A draft left by a failure half-way is deleted.

Graph's answers are classified like SMTP replies, so retries, backoff, alerts and sent marks
are the SMTP relay's (router.send.sender): no answer, throttling (429/503/504, after the
client waited out short `Retry-After`s) and 5xx are transient; 401, 403 (the application may
not send, or not as that From) and 404 (no such mailbox) are the set-up's fault, kept and
alerted on; any other 4xx (a refused recipient, a message Graph will not take) is that mail's
permanent failure.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
from collections.abc import Sequence
from email.message import Message
from email.utils import getaddresses
from urllib.parse import quote

import structlog

from router.graph.client import GraphClient, GraphError
from router.graph.folders import user_path
from router.oauth.base import OAuthError
from router.send.relay import (
    DeliveryError,
    PermanentDeliveryError,
    RelaySecurityError,
    TransientDeliveryError,
)

log = structlog.get_logger(__name__)

REQUEST_LIMIT = 4 * 1024 * 1024  # Graph refuses larger request bodies (413)
BODY_LIMIT = REQUEST_LIMIT - 64 * 1024  # what a sendMail body may be, with room to spare
UPLOAD_CHUNK = 3 * 1024 * 1024  # below the 4 MB an upload session takes per PUT


def classify(exc: GraphError) -> DeliveryError:
    """The `DeliveryError` for a Graph error, as the SMTP relay classifies replies."""
    detail = f"{exc.code}: {exc.detail}" if exc.detail else exc.code
    if exc.transient:
        return TransientDeliveryError(exc.status, f"Graph: {detail}")
    if exc.status in (401, 403, 404):
        return RelaySecurityError(exc.status, f"Graph refused the application: {detail}")
    return PermanentDeliveryError(exc.status, f"Graph refused the message: {detail}")


def with_envelope(message: bytes, recipients: Sequence[str]) -> bytes:
    """`message` with a Bcc header for envelope recipients its To, Cc and Bcc do not name
    (Graph sends to the headers' addresses only); unchanged when they name them all."""
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(message)
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in parsed.get_all(name, [])]
    named = {address.lower() for _, address in getaddresses(fields)}
    missing = [r for r in recipients if r.lower() not in named]
    if not missing:
        return message
    return f"Bcc: {', '.join(missing)}\r\n".encode() + message


def split_attachments(message: bytes, limit: int) -> tuple[bytes, list[tuple[str, str, bytes]]]:
    """The MIME without its largest attachments, until its base64 fits in `limit`, and those
    attachments as (file name, content type, bytes)."""
    parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(message)
    parts: list[tuple[Message, Message]] = []  # (parent, attachment)
    for parent in parsed.walk():
        if parent.is_multipart():
            for child in parent.get_payload():
                if isinstance(child, Message) and not child.is_multipart() and child.get_filename():
                    parts.append((parent, child))
    parts.sort(key=lambda pair: len(pair[1].as_bytes()), reverse=True)
    taken: list[tuple[str, str, bytes]] = []
    reduced = message
    for parent, child in parts:
        if len(base64.b64encode(reduced)) <= limit:
            break
        payload = parent.get_payload()
        assert isinstance(payload, list)
        payload.remove(child)
        data = child.get_payload(decode=True)
        taken.append(
            (
                str(child.get_filename()),
                child.get_content_type(),
                data if isinstance(data, bytes) else b"",
            )
        )
        reduced = parsed.as_bytes()
    return reduced, taken


class GraphRelay:
    """Sends as `mailbox` through Microsoft Graph. See `Relay`."""

    def __init__(self, mailbox: str, client: GraphClient) -> None:
        self.mailbox = mailbox
        self._client = client

    def describe(self) -> str:
        """See `Relay`."""
        return f"graph://{self.mailbox} ({self._client.base_url})"

    async def close(self) -> None:
        """See `Relay`."""
        await self._client.close()

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> None:
        """See `Relay`. `sender` is the From the message already carries (Graph sends as it)."""
        if not recipients:
            raise ValueError("send() needs at least one recipient")
        mime = with_envelope(message, recipients)
        try:
            body = base64.b64encode(mime)
            if len(body) <= BODY_LIMIT:
                await self._client.request(
                    "POST",
                    f"{user_path(self.mailbox)}/sendMail",
                    content=body,
                    headers={"Content-Type": "text/plain"},
                )
            else:
                await self._send_large(mime)
        except GraphError as exc:
            error = classify(exc)
            log.warning(
                "relay.failed",
                relay=self.describe(),
                kind=type(error).__name__,
                code=exc.status,
                graph_code=exc.code,
            )
            raise error from None
        except OAuthError as exc:  # logged once by the token source, with the cause
            raise RelaySecurityError(None, f"no OAuth token: {exc.cause.short}") from None
        log.debug("relay.sent", relay=self.describe(), recipients=len(recipients))

    async def _send_large(self, mime: bytes) -> None:
        reduced, attachments = split_attachments(mime, BODY_LIMIT)
        if len(base64.b64encode(reduced)) > BODY_LIMIT:
            raise GraphError(413, "RequestBodyTooLarge", "too large even without attachments")
        drafts = f"{user_path(self.mailbox)}/messages"
        draft = await self._client.request(
            "POST",
            drafts,
            content=base64.b64encode(reduced),
            headers={"Content-Type": "text/plain"},
        )
        draft_path = f"{drafts}/{quote(str(draft.json()['id']), safe='')}"
        try:
            for name, content_type, data in attachments:
                await self._upload(draft_path, name, content_type, data)
            await self._client.request("POST", f"{draft_path}/send")
        except BaseException:
            await self._discard(draft_path)
            raise
        log.info("relay.sent_by_upload", attachments=len(attachments))

    async def _upload(self, draft_path: str, name: str, content_type: str, data: bytes) -> None:
        item = {
            "attachmentType": "file",
            "name": name,
            "size": len(data),
            "contentType": content_type,
        }
        session = await self._client.request(
            "POST",
            f"{draft_path}/attachments/createUploadSession",
            json={"AttachmentItem": item},
        )
        url = str(session.json()["uploadUrl"])
        for start in range(0, len(data), UPLOAD_CHUNK):
            await self._client.upload(url, data[start : start + UPLOAD_CHUNK], start, len(data))

    async def _discard(self, draft_path: str) -> None:
        try:
            await self._client.request("DELETE", draft_path)
        except (GraphError, OAuthError) as exc:
            log.warning("relay.draft_left", error=type(exc).__name__)

    async def probe(self) -> str:
        """A token for Graph, and the application's permission to send (its `roles` claim).

        Raises:
            DeliveryError: no token, or the token lacks Mail.Send.
        """
        try:
            token = await self._client.tokens.token()
        except OAuthError as exc:
            raise RelaySecurityError(None, f"no OAuth token: {exc.cause.short}") from None
        roles = token_roles(token.value)
        if roles is not None and "Mail.Send" not in roles:
            raise RelaySecurityError(
                None, "the application lacks the Mail.Send application permission"
            )
        return "Graph token" + ("" if roles is None else ", Mail.Send")


def token_roles(token: str) -> set[str] | None:
    """The `roles` claim of a JWT access token (read, not verified: Graph verifies it), or
    None when the token is not a JWT that says."""
    import json

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return {str(role) for role in roles} if isinstance(roles, list) else None
