"""The loopback Graph server's sending endpoints: sendMail, drafts, upload sessions, send
(tests/servers/graph.py says what they model)."""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import re
import secrets
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Any

from aiohttp import web

from tests.servers.graph_routes import (
    box_of,
    create_folder,
    delete_message,
    delta,
    error,
    get_folder,
    get_message,
    graph_of,
    list_folders,
    move,
    needs,
    not_found,
)
from tests.servers.graph_store import Sent, message_json, recipients_of

UPLOAD_CHUNK_MAX = 4 * 1024 * 1024
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


async def _mime_body(request: web.Request) -> bytes | web.Response:
    if request.content_type != "text/plain":
        return error(400, "ErrorInvalidRequest", "Only MIME (text/plain, base64) is modelled.")
    try:
        mime = base64.b64decode(await request.read(), validate=True)
    except (binascii.Error, ValueError):
        return error(
            400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
        )
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(mime)
    if not mime.strip() or not parsed.keys():
        return error(400, "ErrorMimeContentInvalid", "The MIME content is not valid.")
    return mime


def _send_refusal(request: web.Request, mime: bytes) -> web.Response | None:
    graph = graph_of(request)
    mailbox = request.match_info["user"].lower()
    if not recipients_of(mime):
        return error(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(mime)
    sender = parseaddr(str(parsed.get("From", "")))[1].lower()
    if sender and sender != mailbox and sender not in graph.send_as.get(mailbox, set()):
        return error(
            403,
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right"
            " to send mail on behalf of the specified sending account.",
        )
    return None


async def send_mail(request: web.Request) -> web.Response:
    refused = needs(request, "Mail.Send")
    mime = await _mime_body(request)
    if refused or isinstance(mime, web.Response):
        return refused or mime  # type: ignore[return-value]
    refusal = _send_refusal(request, mime)
    if refusal is not None:
        return refusal
    graph = graph_of(request)
    with graph.lock:
        box = box_of(request)
        graph.sent.append(Sent(box.address, mime, recipients_of(mime)))
        box.add_message(box.folder("sentitems").id, mime)  # type: ignore[union-attr]
    return web.Response(status=202)


async def create_draft(request: web.Request) -> web.Response:
    refused = needs(request, "Mail.ReadWrite")
    mime = await _mime_body(request)
    if refused or isinstance(mime, web.Response):
        return refused or mime  # type: ignore[return-value]
    with graph_of(request).lock:
        box = box_of(request)
        draft = box.add_message(box.folder("drafts").id, mime, draft=True)  # type: ignore[union-attr]
        return web.json_response(message_json(draft, None, False), status=201)


async def upload_session(request: web.Request) -> web.Response:
    refused = needs(request, "Mail.ReadWrite")
    if refused:
        return refused
    graph, box = graph_of(request), box_of(request)
    body = await request.json()
    item = body.get("AttachmentItem") if isinstance(body, dict) else None
    if not isinstance(item, dict) or item.get("attachmentType") != "file":
        return error(400, "ErrorInvalidRequest", "AttachmentItem with attachmentType file needed.")
    size, name = item.get("size"), item.get("name")
    if not isinstance(size, int) or not isinstance(name, str) or not 0 < size <= 150 * 1024**2:
        return error(400, "ErrorInvalidRequest", "AttachmentItem needs a name and a size.")
    with graph.lock:
        message = box.messages.get(request.match_info["id"])
        if message is None or not message.is_draft:
            return not_found()
        session = secrets.token_urlsafe(16)
        graph.uploads[session] = {
            "box": box.address,
            "message": message.id,
            "name": name,
            "size": size,
            "type": str(item.get("contentType") or "application/octet-stream"),
            "data": b"",
        }
    expires = (datetime.now(UTC) + timedelta(minutes=15)).isoformat()
    return web.json_response(
        {
            "uploadUrl": f"{graph.origin}/upload/{session}",
            "expirationDateTime": expires,
            "nextExpectedRanges": ["0"],
        },
        status=201,
    )


async def upload(request: web.Request) -> web.Response:
    graph = graph_of(request)
    if "Authorization" in request.headers:  # Microsoft: the URL carries its own token
        return error(
            401, "InvalidAuthenticationToken", "Do not send Authorization to an upload URL."
        )
    state = graph.uploads.get(request.match_info["session"])
    if state is None:
        return not_found()
    chunk = await request.read()
    match = _RANGE.match(request.headers.get("Content-Range", ""))
    if match is None or len(chunk) > UPLOAD_CHUNK_MAX:
        return error(400, "InvalidRange", "Content-Range is required; at most 4 MB per request.")
    start, end, total = (int(g) for g in match.groups())
    if start != len(state["data"]) or end - start + 1 != len(chunk) or total != state["size"]:
        return error(416, "InvalidRange", "The range is not the next expected range.")
    state["data"] += chunk
    if len(state["data"]) < total:
        return web.json_response(
            {
                "expirationDateTime": datetime.now(UTC).isoformat(),
                "nextExpectedRanges": [str(len(state["data"]))],
            }
        )
    with graph.lock:
        message = graph.mailboxes[state["box"]].messages[state["message"]]
        message.attachments.append((state["name"], state["type"], state["data"]))
        del graph.uploads[request.match_info["session"]]
    return web.Response(status=201, headers={"Location": f"{graph.base_url}/attachments/x"})


async def send_draft(request: web.Request) -> web.Response:
    refused = needs(request, "Mail.Send")
    if refused:
        return refused
    graph, box = graph_of(request), box_of(request)
    with graph.lock:
        draft = box.messages.get(request.match_info["id"])
        if draft is None or not draft.is_draft:
            return not_found()
    refusal = _send_refusal(request, draft.mime)
    if refusal is not None:
        return refusal
    with graph.lock:
        box.remove(draft.id)
        graph.sent.append(
            Sent(box.address, draft.mime, recipients_of(draft.mime), draft.attachments, "draft")
        )
    return web.Response(status=202)


_USER = "/v1.0/users/{user}"
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", _USER + "/mailFolders", list_folders),
    ("POST", _USER + "/mailFolders", create_folder),
    ("GET", _USER + "/mailFolders/{folder}", get_folder),
    ("GET", _USER + "/mailFolders/{folder}/childFolders", list_folders),
    ("POST", _USER + "/mailFolders/{folder}/childFolders", create_folder),
    ("GET", _USER + "/mailFolders/{folder}/messages/delta", delta),
    ("GET", _USER + "/messages/{id}", get_message),
    ("GET", _USER + "/messages/{id}/$value", get_message),
    ("DELETE", _USER + "/messages/{id}", delete_message),
    ("POST", _USER + "/messages/{id}/move", move),
    ("POST", _USER + "/messages", create_draft),
    ("POST", _USER + "/messages/{id}/attachments/createUploadSession", upload_session),
    ("POST", _USER + "/messages/{id}/send", send_draft),
    ("POST", _USER + "/sendMail", send_mail),
    ("PUT", "/upload/{session}", upload),
]
