"""The console's two actions, for admins: reprocess a quarantined referral, try a message.

A reprocess is recorded in the referral's audit trail with who did it; a dry run, which
belongs to no referral, in the journal's `console_actions`. Both are logged with who, what and
the reference, never with anything of the referral or the message tried.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from router.console.security import checked_form
from router.core.explain import explain
from router.core.routing import RoutingEngine
from router.decide.dryrun import DryRun

if TYPE_CHECKING:
    from router.console.app import Console
    from router.console.auth import User
    from router.settings import Settings

log = structlog.get_logger(__name__)

DRY_RUN = "dry_run"
REPROCESS = "reprocess"


class Actions:
    """Handlers of the admin actions."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.context = console.context

    async def _quarantined(self, reference: str) -> str:
        """The quarantined message a reference names.

        Raises:
            HTTPException: 404 when there is none, 409 when it is not quarantined.
        """
        queries = self.context.queries
        message_id = await asyncio.to_thread(queries.message_of, reference)
        if message_id is None:
            raise HTTPException(404, f"No referral {reference}.")
        rows = await asyncio.to_thread(queries.message_rows, message_id)
        if not rows or rows[0].state != "quarantined":
            raise HTTPException(409, f"{reference} is not quarantined: nothing to reprocess.")
        return message_id

    async def confirm(self, request: Request, user: User) -> Response:
        """The confirmation step before reprocessing."""
        reference = request.path_params["reference"]
        message_id = await self._quarantined(reference)
        values = {"section": "referrals", "reference": reference, "message_id": message_id}
        return self.console.render(request, "confirm.html", values)

    async def reprocess(self, request: Request, user: User) -> Response:
        """Put the quarantined message back in the queue, wake the router. The journal's
        audit trail records who did it, in the same transaction."""
        await checked_form(request)
        reference = request.path_params["reference"]
        message_id = await self._quarantined(reference)
        queued = await asyncio.to_thread(  # the audit trail says who: the signed-in admin
            self.context.journal.reprocess, message_id, by=f"{user.email} (console)"
        )
        result = "queued again" if queued else "refused: nothing to send again"
        log.info("console_action", user=user.email, action=REPROCESS, message=message_id,
                 reference=reference, result=result)  # fmt: skip
        if queued:
            self.context.wake()
        done = "reprocessed" if queued else "refused"
        return RedirectResponse(f"/referrals/{reference}?done={done}", status_code=303)

    async def try_message(self, request: Request, user: User) -> Response:
        """Decide an uploaded .eml as `route` would, in the daemon's worker under its limits.

        Nothing is stored or sent; the upload is read into memory and dropped. The journal
        records that a dry run was made, by whom, and its outcomes, not the message.
        """
        limit = self.context.settings.max_message_bytes
        form = await checked_form(request, max_part_size=limit + 1)
        upload = form.get("message")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise HTTPException(400, "Choose an .eml file to try.")
        raw = await upload.read(limit + 1)
        await upload.close()
        if len(raw) > limit or not raw:
            raise HTTPException(400, f"The file must hold a message of at most {limit} bytes.")
        rules = self.context.rules()
        engine = RoutingEngine(rules, review_address=self.context.settings.review_address)
        text, outcomes = await asyncio.to_thread(_dry_run, self.context.settings, engine, raw)
        await asyncio.to_thread(
            self.context.queries.record_action, user.email, DRY_RUN, None, outcomes
        )
        log.info("console_action", user=user.email, action=DRY_RUN, result=outcomes)
        values = {"section": "rules", "explained": text, "outcomes": outcomes}
        return self.console.render(request, "tried.html", values)


def _dry_run(settings: Settings, engine: RoutingEngine, raw: bytes) -> tuple[str, str]:
    """The `route` explanation of one message and its outcomes, in words."""
    with DryRun(settings, engine) as dry_run:
        analysis = dry_run.analyse(raw)
    text = explain("uploaded message", analysis, engine.rules)
    outcomes = ", ".join(decision.outcome for decision in analysis.decisions) or "no decision"
    return text, outcomes
