"""Mail folders by display name: finding the inbox folder, and the Processed and Failed
folders at the mailbox's top level (created when missing)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from router.graph.client import GraphClient, GraphError


def user_path(mailbox: str) -> str:
    """`/users/{mailbox}`, quoted for a URL."""
    return f"/users/{quote(mailbox, safe='@')}"


def _odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def _child(client: GraphClient, base: str, name: str) -> dict[str, Any] | None:
    response = await client.request(
        "GET", base, params={"$filter": f"displayName eq {_odata_string(name)}"}
    )
    found = response.json().get("value") or []
    return found[0] if found and isinstance(found[0], dict) else None


async def find_folder(client: GraphClient, mailbox: str, path: str) -> dict[str, Any] | None:
    """The folder at `path` (display names, `/` between nested folders), or None.

    Raises:
        GraphError: Graph refused or could not be reached.
    """
    folder: dict[str, Any] | None = None
    for name in filter(None, path.split("/")):
        base = user_path(mailbox) + "/mailFolders"
        if folder is not None:
            base += f"/{quote(str(folder['id']), safe='')}/childFolders"
        folder = await _child(client, base, name)
        if folder is None:
            return None
    return folder


async def ensure_folder(client: GraphClient, mailbox: str, path: str) -> str:
    """The id of the folder at `path` from the mailbox's top level, each level created when
    missing (a folder another router created meanwhile is found, not made twice).

    Raises:
        GraphError: Graph refused or could not be reached.
    """
    folder: dict[str, Any] | None = None
    for name in filter(None, path.split("/")):
        base = user_path(mailbox) + "/mailFolders"
        if folder is not None:
            base += f"/{quote(str(folder['id']), safe='')}/childFolders"
        found = await _child(client, base, name)
        if found is None:
            try:
                found = (await client.request("POST", base, json={"displayName": name})).json()
            except GraphError as exc:
                if exc.status != 409:  # ErrorFolderExists: made by someone else just now
                    raise
                found = await _child(client, base, name)
        if not isinstance(found, dict):
            raise GraphError(None, "ErrorFolderNotFound", "the folder vanished while created")
        folder = found
    if folder is None:
        raise GraphError(None, "ErrorInvalidFolder", "an empty folder name")
    return str(folder["id"])
