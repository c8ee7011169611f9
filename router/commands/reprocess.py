"""`referral-router reprocess REF`: put a quarantined message back in the queue."""

from __future__ import annotations

from typing import TextIO

from router.commands.journal_access import message_id_for, open_journal
from router.errors import EXIT_FAILED, EXIT_OK, CommandError
from router.models import MessageState
from router.settings import Settings


def reprocess(settings: Settings, reference: str, out: TextIO) -> int:
    """`referral-router reprocess REF`: put a quarantined message back in the queue.

    Args:
        settings: where the journal is.
        reference: a journal message id (`20261121-9F2C3A1B`) or a decision reference
            (`PR-20261121-9F2C3A1B-1`).
        out: where the confirmation goes.

    Returns:
        0 when the message was queued again.

    Raises:
        CommandError: not an id or reference (status 2); unknown, or not quarantined (1).
    """
    wanted = reference.strip()
    journal = open_journal(settings)
    try:
        message_id = message_id_for(journal, wanted)
        state = journal.message_state(message_id)
        if state is None:
            raise CommandError(f"no message {message_id} in the journal", EXIT_FAILED)
        if state is not MessageState.QUARANTINED:
            raise CommandError(
                f"message {message_id} is {state}, not quarantined: nothing to reprocess",
                EXIT_FAILED,
            )
        if not journal.reprocess(message_id):
            raise CommandError(
                f"message {message_id} is quarantined after its decision and has no failed mail"
                " to send again; handle it by hand",
                EXIT_FAILED,
            )
    finally:
        journal.close()
    out.write(f"{message_id} is queued again; the running daemon takes it up within 30 seconds\n")
    return EXIT_OK
