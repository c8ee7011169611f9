"""Bounds that keep one hostile attachment from using unbounded time or memory."""

from __future__ import annotations

# Largest attachment a reader will open at all.
MAX_INPUT_BYTES = 30 * 1024 * 1024
# PDF pages whose text is extracted (forms are short; the rest is supporting material).
MAX_PDF_PAGES = 50
# AcroForm fields examined.
MAX_PDF_FIELDS = 2_000
# Characters of extracted text kept per document.
MAX_TEXT_CHARS = 2 * 1024 * 1024
# Wall-clock budget for extracting a PDF's text layer, checked between pages: pages after
# the budget is spent are not read (a worker process enforces the hard limit).
PDF_TEXT_SECONDS = 8.0
# DOCX (a zip): total uncompressed size, member count and compression ratio allowed.
MAX_DOCX_UNCOMPRESSED = 64 * 1024 * 1024
MAX_DOCX_MEMBERS = 5_000
MAX_DOCX_RATIO = 200
# Paragraphs and table cells read from a DOCX body.
MAX_DOCX_BLOCKS = 20_000
