"""Reading attachments as referral forms; the entry point is `router.core.forms.read`.

Kept empty so that the daemon, which needs only the field names and wordings
(`router.core.forms.fields`), does not import the readers (pypdf, python-docx, lxml): only the
analysis worker reads attachments, and it has them preloaded (`router.decide.forkserver`).
"""
