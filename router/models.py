"""The typed values that flow through the router: attachments, form readings and decisions."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Outcome(StrEnum):
    """The one recorded end of a referral (SPEC section 3)."""

    FORWARD = "forward"
    INCOMPLETE = "incomplete"
    NEEDS_REVIEW = "needs_review"
    IGNORED = "ignored"


class MessageState(StrEnum):
    """Where a stored message is in the journal: received -> decided -> done, or set aside."""

    RECEIVED = "received"  # stored, not yet decided
    DECIDED = "decided"  # decisions recorded, mail still to send
    DONE = "done"  # nothing more will happen to it (settled when its inbox copy moves)
    QUARANTINED = "quarantined"  # set aside with its error for a person (see `reprocess`)


class MailState(StrEnum):
    """The fate of one outgoing mail in the outbox."""

    PENDING = "pending"  # waiting to be sent (or to be retried)
    SENT = "sent"  # the relay accepted it
    FAILED = "failed"  # refused for good; `reprocess` sends it again


class AttachmentKind(StrEnum):
    """What an attachment is, decided from its first bytes, never from its name."""

    PDF = "pdf"
    DOCX = "docx"
    DOC = "doc"  # legacy OLE2 Word (and OLE2 files whose directory cannot be read)
    MSG = "msg"  # an Outlook message saved as a file (OLE2): opened like an attached email
    XLS = "xls"  # a legacy Excel workbook (OLE2)
    ODT = "odt"  # OpenDocument
    ZIP = "zip"  # a zip that is neither DOCX nor ODT
    IMAGE = "image"
    TEXT = "text"
    OTHER = "other"


class FormStatus(StrEnum):
    """What reading an attachment found."""

    FORM = "form"  # a referral form: canonical fields were found
    SUPPORTING = "supporting"  # readable, no referral fields: travels with forwards
    UNREADABLE = "unreadable"  # encrypted, image-only, corrupt or unsupported: needs review
    SKIPPED = "skipped"  # not a candidate at all (inline logo, signature image)


# Canonical form fields, in the order of SPEC section 5.
CANONICAL_FIELDS: tuple[str, ...] = (
    "person_name",
    "person_dob",
    "person_gender",
    "person_address",
    "person_postcode",
    "local_authority",
    "concern",
    "referrer_name",
    "referrer_organisation",
    "referrer_email",
    "referrer_phone",
    "consent",
)

# Fields that identify or describe the referred person: never logged, never acknowledged.
PERSONAL_FIELDS: frozenset[str] = frozenset(
    {"person_name", "person_dob", "person_gender", "person_address", "person_postcode", "concern"}
)


class Attachment(BaseModel):
    """One MIME leaf that might be a form, with its bytes exactly as received.

    `index` is the position among all attachments of the email (nested messages included,
    depth first), so a decision can point back at the attachment it was made for.
    """

    model_config = ConfigDict(frozen=True)

    index: int
    filename: str | None
    declared_type: str
    kind: AttachmentKind
    data: bytes = Field(repr=False)
    inline: bool = False


class FormReading(BaseModel):
    """The result of reading one attachment.

    `fields` holds canonical field name -> value as found on the form (stripped, but
    placeholders such as "N/A" are kept: completeness decides what they mean).
    `reason` is a short human-readable explanation free of personal data, e.g.
    "encrypted PDF", "image-only PDF (no text layer)", "legacy Word .doc is not supported".
    """

    attachment_index: int
    filename: str | None
    kind: AttachmentKind
    status: FormStatus
    fields: dict[str, str] = Field(default_factory=dict)
    reason: str = ""


class Decision(BaseModel):
    """One routing decision: the JSON Lines contract of `route --json` (SPEC section 7)."""

    outcome: Outcome
    area: str | None
    to: list[str]
    cc: list[str]
    ack_to: str | None
    missing: list[str]
    reason: str
    fields: dict[str, str]
    # Extra context, not part of the contract but useful to the daemon and to `route`.
    form: str | None = None  # filename of the form attachment the decision is about
    form_index: int | None = None
    signal: str | None = None  # which signal found the area: postcode, local_authority, inbox
    flagged: bool = False  # forwarded to the force despite missing fields (area policy)
    automatic: str | None = None  # why the message is automatic (ignored or not acknowledged)
    bounce_of: list[str] = Field(default_factory=list)  # Message-IDs a DSN reports on
