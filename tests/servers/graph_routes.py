"""The loopback Graph server's reading endpoints: folders, delta, messages, move, delete
(tests/servers/graph.py says what they model; graph_sending.py has the sending ones)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.servers.graph_store import (
    MESSAGE_PROPERTIES,
    DeltaRound,
    Mailbox,
    folder_json,
    message_json,
)

if TYPE_CHECKING:
    from tests.servers.graph import GraphServer

GRAPH: web.AppKey[GraphServer] = web.AppKey("graph")
ROLES = web.RequestKey("roles", set)  # the token's application permissions
EARLY = web.ResponseKey("early", bool)  # a request sent before Retry-After passed
CROWDED = web.ResponseKey("crowded", bool)  # over the mailbox concurrency limit
_FILTER = re.compile(r"^displayName eq '((?:[^']|'')*)'$")
_SIZE_EXPAND = re.compile(r"^singleValueExtendedProperties\(\$filter=id eq 'Integer 0x0?[eE]08'\)$")


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


def graph_of(request: web.Request) -> GraphServer:
    return request.app[GRAPH]


def box_of(request: web.Request) -> Mailbox:
    return graph_of(request).mailboxes[request.match_info["user"].lower()]


def needs(request: web.Request, role: str) -> web.Response | None:
    roles = request.get(ROLES, set())
    if role in roles or (role == "Mail.Read" and "Mail.ReadWrite" in roles):
        return None
    return error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def not_found() -> web.Response:
    return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")


# -- folders -----------------------------------------------------------------------------


async def list_folders(request: web.Request) -> web.Response:
    refused = needs(request, "Mail.Read")
    if refused:
        return refused
    graph, box = graph_of(request), box_of(request)
    parent = box.root
    if "folder" in request.match_info:
        found = box.folder(request.match_info["folder"])
        if found is None:
            return not_found()
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
    refused = needs(request, "Mail.Read")
    if refused:
        return refused
    box = box_of(request)
    with graph_of(request).lock:
        found = box.folder(request.match_info["folder"])
        return not_found() if found is None else web.json_response(folder_json(box, found))


async def create_folder(request: web.Request) -> web.Response:
    refused = needs(request, "Mail.ReadWrite")
    if refused:
        return refused
    box = box_of(request)
    body = await request.json()
    name = body.get("displayName") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        return error(400, "ErrorInvalidRequest", "displayName is required.")
    with graph_of(request).lock:
        parent = box.root
        if "folder" in request.match_info:
            found = box.folder(request.match_info["folder"])
            if found is None:
                return not_found()
            parent = found.id
        if any(f.display_name.lower() == name.lower() for f in box.children(parent)):
            return error(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )
        return web.json_response(folder_json(box, box.add_folder(name, parent)), status=201)


# -- delta -------------------------------------------------------------------------------


async def delta(request: web.Request) -> web.Response:
    refused = needs(request, "Mail.Read")
    if refused:
        return refused
    graph, box = graph_of(request), box_of(request)
    with graph.lock:
        folder = box.folder(request.match_info["folder"])
        if folder is None:
            return not_found()
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
    base = f"{graph_of(request).base_url}/users/{box.address}/mailFolders/{round_.folder_id}"
    body: dict[str, Any] = {"value": items}
    if rest.pending:
        body["@odata.nextLink"] = f"{base}/messages/delta?$skiptoken={tokens.issue(rest)}"
    else:
        rest.pending, rest.removed = [], set()
        body["@odata.deltaLink"] = f"{base}/messages/delta?$deltatoken={tokens.issue(rest)}"
    return web.json_response(body)


# -- messages ----------------------------------------------------------------------------


async def get_message(request: web.Request) -> web.StreamResponse:
    refused = needs(request, "Mail.Read")
    if refused:
        return refused
    box = box_of(request)
    with graph_of(request).lock:
        message = box.messages.get(request.match_info["id"])
        if message is None:
            return not_found()
        if request.path.endswith("/$value"):
            return web.Response(body=message.mime, content_type="message/rfc822")
        return web.json_response(message_json(message, None, False))


async def delete_message(request: web.Request) -> web.Response:
    refused = needs(request, "Mail.ReadWrite")
    if refused:
        return refused
    box = box_of(request)
    with graph_of(request).lock:
        if request.match_info["id"] not in box.messages:
            return not_found()
        box.remove(request.match_info["id"])
    return web.Response(status=204)


async def move(request: web.Request) -> web.Response:
    refused = needs(request, "Mail.ReadWrite")
    if refused:
        return refused
    box = box_of(request)
    body = await request.json()
    destination = body.get("destinationId") if isinstance(body, dict) else None
    if not isinstance(destination, str):
        return error(400, "ErrorInvalidRequest", "destinationId is required.")
    with graph_of(request).lock:
        folder = box.folder(destination)
        if request.match_info["id"] not in box.messages or folder is None:
            return not_found()
        moved = box.move(request.match_info["id"], folder.id)
        return web.json_response(message_json(moved, None, False), status=201)
