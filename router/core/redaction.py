"""Error texts made safe to show or log: one line, every email address reduced to its domain."""

from __future__ import annotations

import re

# An address with a plain or a quoted local part ("a b"@x, "victim"@x), up to its domain.
_ADDRESS = re.compile(r"""(?:"(?:[^"\\]|\\.)*"|[^\s<>()\[\],;:"@]+)@([\w-]+(?:\.[\w-]+)+)""")
REASON_LIMIT = 200


def redact(text: str, limit: int = REASON_LIMIT) -> str:
    """One line of `text`, addresses reduced to their domain (`...@met.pnn.police.uk`),
    cut to `limit` characters."""
    line = " ".join(text.split())
    line = _ADDRESS.sub(lambda match: f"...@{match.group(1)}", line)
    return line if len(line) <= limit else line[: limit - 3] + "..."
