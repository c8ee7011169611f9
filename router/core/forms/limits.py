"""Bounds that keep one hostile attachment from using unbounded time or memory."""

from __future__ import annotations

# Largest attachment a reader will open at all.
MAX_INPUT_BYTES = 30 * 1024 * 1024
# PDF pages whose text is extracted (forms are short; the rest is supporting material).
MAX_PDF_PAGES = 50
# A PDF whose first pages hold no form label is not read further: a form starts early.
PDF_LABEL_PAGES = 4
# A page whose content stream decodes to more than this is not searched for text: a form
# page is tens of kilobytes; megabytes of drawing operators take pypdf seconds a page.
MAX_PAGE_CONTENT_BYTES = 1024 * 1024
# Objects in one PDF object stream: pypdf parses a whole stream to reach one object of it
# (65,000 objects, as some generators write, take it ten seconds).
MAX_OBJSTM_OBJECTS = 20_000
# Processor time one attachment's reading may use, whatever it is doing (`budget`), well
# under the worker's time limit (ROUTER_PARSE_TIMEOUT_SECONDS, 20 s by default).
READ_CPU_SECONDS = 5.0
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
