"""Read attachments as referral forms: pick a reader by content kind, never raise.

`read_attachment` is the one entry point. Readers are chosen by `Attachment.kind` (sniffed
from the bytes by the mail parser, never from the file name):

| kind | result |
|---|---|
| PDF | AcroForm fields, else the text layer (`router.core.forms.pdf`) |
| DOCX | tables and paragraphs (`router.core.forms.docx`) |
| TEXT | "Label: value" lines, so a form pasted into a text file counts (`router.core.forms.text`) |
| IMAGE | SKIPPED when inline (logos, signatures), else UNREADABLE |
| DOC, XLS, ODT, ZIP, OTHER | UNREADABLE with a reason that says what to send instead |
| MSG | UNREADABLE: only a .msg that could not be opened gets here (the mail parser opens
  the others like attached emails, `router.core.mail.outlook`) |

Each reading is bounded by `limits.READ_CPU_SECONDS` of processor time (`budget`): past it,
the attachment is UNREADABLE ("pdf took longer than 5 s to read") and goes to review,
rather than holding the one worker while referrals queue behind it.

FORM needs labels of at least two distinct canonical fields (see `router.core.forms.collect`);
a readable attachment with fewer is SUPPORTING. Reasons never contain document content.
"""

from __future__ import annotations

import structlog

from router.core.forms import limits
from router.core.forms.budget import ReadingOverrun, cpu_budget
from router.core.forms.collect import ReadResult
from router.core.forms.fields import LabelMap, clean_fields, missing_fields, normalise_label
from router.core.forms.text import read_text
from router.core.rules.model import FormRules
from router.models import Attachment, AttachmentKind, FormReading, FormStatus

log = structlog.get_logger(__name__)

_UNSUPPORTED = {
    AttachmentKind.DOC: "legacy Word .doc is not supported; please send PDF or .docx",
    AttachmentKind.MSG: "Outlook message (.msg) that could not be opened",
    AttachmentKind.XLS: "Excel spreadsheet (.xls) is not supported; please send PDF or .docx",
    AttachmentKind.ODT: "OpenDocument (.odt) is not supported; please send PDF or .docx",
    AttachmentKind.ZIP: "zip archive (not opened); please send PDF or .docx",
    AttachmentKind.OTHER: "unsupported attachment type; please send PDF or .docx",
    AttachmentKind.IMAGE: "image attachment (cannot be read)",
}
# An OLE2 container holding an "EncryptedPackage" stream is a password-protected .docx/.xlsx.
_ENCRYPTED_OFFICE = "EncryptedPackage".encode("utf-16-le")

_label_maps: dict[int, tuple[FormRules, LabelMap]] = {}


def label_map_for(form_rules: FormRules) -> LabelMap:
    """The `LabelMap` of a `FormRules`, built once per rules object."""
    cached = _label_maps.get(id(form_rules))
    if cached is not None and cached[0] is form_rules:
        return cached[1]
    label_map = LabelMap(form_rules)
    if len(_label_maps) > 16:
        _label_maps.clear()
    _label_maps[id(form_rules)] = (form_rules, label_map)
    return label_map


def read_attachment(attachment: Attachment, form_rules: FormRules) -> FormReading:
    """Read one attachment as a referral form; never raises.

    Args:
        attachment: the attachment, with its kind already sniffed from its bytes.
        form_rules: the label lists of the loaded rules.

    Returns:
        A `FormReading`: FORM with canonical fields (placeholders kept as found),
        SUPPORTING, UNREADABLE with a reason free of personal data, or SKIPPED.
    """
    try:
        with cpu_budget(limits.READ_CPU_SECONDS):
            result = _read(attachment, form_rules)
    except ReadingOverrun:
        log.info("form_reader_overran", kind=attachment.kind.value)
        result = ReadResult.unreadable(
            f"{attachment.kind.value} took longer than {limits.READ_CPU_SECONDS:g} s to read"
        )
    except RecursionError:
        result = ReadResult.unreadable(f"corrupt {attachment.kind.value}: RecursionError")
    except Exception as exc:  # a reader bug must not lose the referral: it goes to review
        log.warning("form_reader_failed", kind=attachment.kind.value, error=type(exc).__name__)
        result = ReadResult.unreadable(
            f"could not read {attachment.kind.value}: {type(exc).__name__}"
        )
    return FormReading(
        attachment_index=attachment.index,
        filename=attachment.filename,
        kind=attachment.kind,
        status=result.status,
        fields=result.fields,
        reason=result.reason,
    )


def _read(attachment: Attachment, form_rules: FormRules) -> ReadResult:
    """Dispatch on the attachment kind."""
    kind = attachment.kind
    if kind == AttachmentKind.IMAGE and attachment.inline:
        return ReadResult(FormStatus.SKIPPED, {}, "inline image")
    if kind == AttachmentKind.DOC and _ENCRYPTED_OFFICE in attachment.data:
        return ReadResult.unreadable("encrypted Office document")
    if kind in _UNSUPPORTED:
        return ReadResult.unreadable(_UNSUPPORTED[kind])
    label_map = label_map_for(form_rules)
    # The PDF and Word readers are imported when first needed (pypdf with its crypto
    # backends, python-docx with lxml: a few tenths of a second), so that a one-shot
    # `route` of a PDF never loads Word's; the daemon's worker has both preloaded.
    if kind == AttachmentKind.PDF:
        from router.core.forms.pdf import read_pdf

        return read_pdf(attachment.data, label_map)
    if kind == AttachmentKind.DOCX:
        from router.core.forms.docx import read_docx

        return read_docx(attachment.data, label_map)
    if kind == AttachmentKind.TEXT:
        return read_text(attachment.data, label_map)
    return ReadResult.unreadable("unsupported attachment type; please send PDF or .docx")


__all__ = [
    "LabelMap",
    "clean_fields",
    "label_map_for",
    "missing_fields",
    "normalise_label",
    "read_attachment",
]
