"""The kinds of mail the router sends: one name each in logs, metrics, the journal and `status`."""

from __future__ import annotations

from router.models import Outcome

FORWARD = "forward"  # a referral to a force: the only kind timed by arrival-to-forward
INCOMPLETE_NOTICE = "incomplete_notice"  # an incomplete referral, to the council team
REVIEW = "review"  # a referral a person must look at, to the review address
ACK = "ack"  # the acknowledgment to the referrer
ALERT = "alert"  # something the router could not finish (bounce, failure, quarantine)

MAIL_KINDS = (FORWARD, INCOMPLETE_NOTICE, REVIEW, ACK, ALERT)
# Mail that carries the referral itself; its acknowledgment waits until it is sent.
REFERRAL_KINDS = (FORWARD, INCOMPLETE_NOTICE, REVIEW)

_BY_OUTCOME = {
    Outcome.FORWARD: FORWARD,
    Outcome.INCOMPLETE: INCOMPLETE_NOTICE,
    Outcome.NEEDS_REVIEW: REVIEW,
}


def referral_kind(outcome: Outcome) -> str:
    """The kind of the mail that carries a decision's referral.

    Raises:
        KeyError: an `ignored` decision, which sends no referral.
    """
    return _BY_OUTCOME[outcome]
