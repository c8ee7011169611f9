"""The loopback Graph server's endpoints (tests/servers/graph.py says what they model)."""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import re
import secrets
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.servers.graph_store import (
    MESSAGE_PROPERTIES,
    DeltaRound,
    Mailbox,
    Sent,
    folder_json,
    message_json,
    recipients_of,
)

if TYPE_CHECKING:
    from tests.servers.graph import GraphServer

GRAPH: web.AppKey[GraphServer] = web.AppKey("graph")
ROLES = web.RequestKey("roles", set)  # the token's application permissions
EARLY = web.ResponseKey("early", bool)  # a request sent before Retry-After passed
CROWDED = web.ResponseKey("crowded", bool)  # over the mailbox concurrency limit
UPLOAD_CHUNK_MAX = 4 * 1024 * 1024
_FILTER = re.compile(r"^displayName eq '((?:[^']|'')*)'$")
_SIZE_EXPAND = re.compile(r"^singleValueExtendedProperties\(\$filter=id eq 'Integer 0x0?[eE]08'\)$")
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def error(status: int, code: str, message: str) -> web.Response:
    """Graph's error body."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).isoformat(),
                "request-id": secrets.token_hex(8),
            },
        }
    }
    return web.json_response(body, status=status)


def _graph(request: web.Request) -> GraphServer:
    return request.app[GRAPH]


def _box(request: web.Request) -> Mailbox:
    return _graph(request).mailboxes[request.match_info["user"].lower()]


def _needs(request: web.Request, role: str) -> web.Response | None:
    roles = request.get(ROLES, set())
    if role in roles or (role == "Mail.Read" and "Mail.ReadWrite" in roles):
        return None
    return error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def _not_found() -> web.Response:
    return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")


# -- folders -----------------------------------------------------------------------------


async def list_folders(request: web.Request) -> web.Response:
    refused = _needs(request, "Mail.Read")
    if refused:
        return refused
    graph, box = _graph(request), _box(request)
    parent = box.root
    if "folder" in request.match_info:
        found = box.folder(request.match_info["folder"])
        if found is None:
            return _not_found()
        parent = found.id
    query = request.query.get("$filter")
    match = _FILTER.match(query) if query is not None else None
    if query is not None and match is None:
        return error(400, "ErrorInvalidUrlQueryFilter", "The query filter is not supported here.")
    with graph.lock:
        folders = box.children(parent)
        if match is not None:
            wanted = match.group(1).replace("''", "'").lower()
            folders = [f for f in folders if f.display_name.lower() == wanted]
        return web.json_response({"value": [folder_json(box, f) for f in folders]})


async def get_folder(request: web.Request) -> web.Response:
    refused = _needs(request, "Mail.Read")
    if refused:
        return refused
    box = _box(request)
    with _graph(request).lock:
        found = box.folder(request.match_info["folder"])
        return _not_found() if found is None else web.json_response(folder_json(box, found))


async def create_folder(request: web.Request) -> web.Response:
    refused = _needs(request, "Mail.ReadWrite")
    if refused:
        return refused
    box = _box(request)
    body = await request.json()
    name = body.get("displayName") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        return error(400, "ErrorInvalidRequest", "displayName is required.")
    with _graph(request).lock:
        parent = box.root
        if "folder" in request.match_info:
            found = box.folder(request.match_info["folder"])
            if found is None:
                return _not_found()
            parent = found.id
        if any(f.display_name.lower() == name.lower() for f in box.children(parent)):
            return error(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )
        return web.json_response(folder_json(box, box.add_folder(name, parent)), status=201)


# -- delta -------------------------------------------------------------------------------


async def delta(request: web.Request) -> web.Response:
    refused = _needs(request, "Mail.Read")
    if refused:
        return refused
    graph, box = _graph(request), _box(request)
    with graph.lock:
        folder = box.folder(request.match_info["folder"])
        if folder is None:
            return _not_found()
        tokens = graph.delta
        token = request.query.get("$skiptoken") or request.query.get("$deltatoken")
        if token is not None:
            round_ = tokens.rounds.get(token)
            if round_ is None or round_.generation != tokens.generation:
                return error(410, "SyncStateNotFound", "The sync state generation is not found.")
            if "$deltatoken" in request.query:  # a new round from where that one ended
                round_ = _next_round(box, round_, tokens.generation)
        else:
            round_ = _first_round(request, box, folder.id, tokens.generation)
            if isinstance(round_, web.Response):
                return round_
        return _page(request, box, round_, tokens)


def _first_round(
    request: web.Request, box: Mailbox, folder_id: str, generation: int
) -> DeltaRound | web.Response:
    select = request.query.get("$select")
    fields = [s.strip() for s in select.split(",")] if select else None
    unknown = [f for f in fields or [] if f not in MESSAGE_PROPERTIES]
    if unknown:
        return error(
            400,
            "RequestBroker--ParseUri",
            f"Could not find a property named '{unknown[0]}' on type 'microsoft.graph.message'.",
        )
    expand = request.query.get("$expand")
    if expand is not None and not _SIZE_EXPAND.match(expand):
        return error(400, "ErrorInvalidRequest", "This $expand is not supported here.")
    prefer = request.headers.get("Prefer", "")
    size = re.search(r"odata\.maxpagesize=(\d+)", prefer)
    return DeltaRound(
        box.address,
        folder_id,
        box.sequence,
        generation,
        pending=[m.id for m in box.in_folder(folder_id)],
        select=fields,
        expand_size=expand is not None,
        page_size=max(1, int(size.group(1))) if size else 10,
    )


def _next_round(box: Mailbox, done: DeltaRound, generation: int) -> DeltaRound:
    changed = box.changed_since(done.folder_id, done.sequence)
    present = [
        i for i in changed if i in box.messages and box.messages[i].folder_id == done.folder_id
    ]
    return DeltaRound(
        done.mailbox,
        done.folder_id,
        box.sequence,
        generation,
        pending=changed,
        removed={i for i in changed if i not in present},
        select=done.select,
        expand_size=done.expand_size,
        page_size=done.page_size,
    )


def _page(request: web.Request, box: Mailbox, round_: DeltaRound, tokens: Any) -> web.Response:
    items = []
    taken = round_.pending[: round_.page_size]
    for message_id in taken:
        message = box.messages.get(message_id)
        if message_id in round_.removed or message is None or message.folder_id != round_.folder_id:
            items.append({"id": message_id, "@removed": {"reason": "deleted"}})
        else:
            items.append(message_json(message, round_.select, round_.expand_size))
    rest = DeltaRound(**{**round_.__dict__, "pending": round_.pending[len(taken) :]})
    base = f"{_graph(request).base_url}/users/{box.address}/mailFolders/{round_.folder_id}"
    body: dict[str, Any] = {"value": items}
    if rest.pending:
        body["@odata.nextLink"] = f"{base}/messages/delta?$skiptoken={tokens.issue(rest)}"
    else:
        rest.pending, rest.removed = [], set()
        body["@odata.deltaLink"] = f"{base}/messages/delta?$deltatoken={tokens.issue(rest)}"
    return web.json_response(body)


# -- messages ----------------------------------------------------------------------------


async def get_message(request: web.Request) -> web.StreamResponse:
    refused = _needs(request, "Mail.Read")
    if refused:
        return refused
    box = _box(request)
    with _graph(request).lock:
        message = box.messages.get(request.match_info["id"])
        if message is None:
            return _not_found()
        if request.path.endswith("/$value"):
            return web.Response(body=message.mime, content_type="message/rfc822")
        return web.json_response(message_json(message, None, False))


async def delete_message(request: web.Request) -> web.Response:
    refused = _needs(request, "Mail.ReadWrite")
    if refused:
        return refused
    box = _box(request)
    with _graph(request).lock:
        if request.match_info["id"] not in box.messages:
            return _not_found()
        box.remove(request.match_info["id"])
    return web.Response(status=204)


async def move(request: web.Request) -> web.Response:
    refused = _needs(request, "Mail.ReadWrite")
    if refused:
        return refused
    box = _box(request)
    body = await request.json()
    destination = body.get("destinationId") if isinstance(body, dict) else None
    if not isinstance(destination, str):
        return error(400, "ErrorInvalidRequest", "destinationId is required.")
    with _graph(request).lock:
        folder = box.folder(destination)
        if request.match_info["id"] not in box.messages or folder is None:
            return _not_found()
        moved = box.move(request.match_info["id"], folder.id)
        return web.json_response(message_json(moved, None, False), status=201)


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
    graph = _graph(request)
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
    refused = _needs(request, "Mail.Send")
    mime = await _mime_body(request)
    if refused or isinstance(mime, web.Response):
        return refused or mime  # type: ignore[return-value]
    refusal = _send_refusal(request, mime)
    if refusal is not None:
        return refusal
    graph = _graph(request)
    with graph.lock:
        box = _box(request)
        graph.sent.append(Sent(box.address, mime, recipients_of(mime)))
        box.add_message(box.folder("sentitems").id, mime)  # type: ignore[union-attr]
    return web.Response(status=202)


async def create_draft(request: web.Request) -> web.Response:
    refused = _needs(request, "Mail.ReadWrite")
    mime = await _mime_body(request)
    if refused or isinstance(mime, web.Response):
        return refused or mime  # type: ignore[return-value]
    with _graph(request).lock:
        box = _box(request)
        draft = box.add_message(box.folder("drafts").id, mime, draft=True)  # type: ignore[union-attr]
        return web.json_response(message_json(draft, None, False), status=201)


async def upload_session(request: web.Request) -> web.Response:
    refused = _needs(request, "Mail.ReadWrite")
    if refused:
        return refused
    graph, box = _graph(request), _box(request)
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
            return _not_found()
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
    graph = _graph(request)
    if "Authorization" in request.headers:  # Microsoft: the URL carries its own token
        return error(
            401, "InvalidAuthenticationToken", "Do not send Authorization to an upload URL."
        )
    state = graph.uploads.get(request.match_info["session"])
    if state is None:
        return _not_found()
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
    refused = _needs(request, "Mail.Send")
    if refused:
        return refused
    graph, box = _graph(request), _box(request)
    with graph.lock:
        draft = box.messages.get(request.match_info["id"])
        if draft is None or not draft.is_draft:
            return _not_found()
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
