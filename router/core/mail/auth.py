"""Read DMARC results from `Authentication-Results` headers (RFC 8601), tolerantly.

Why: an acknowledgment goes to the message's From address. A forged From would make the
router send mail to someone who never wrote to it (backscatter), so when the receiving
mail server says the From domain failed DMARC, the router routes the referral as usual
(a forged sender can still carry a real referral) but sends no acknowledgment.

Which headers are believed: anyone can write an `Authentication-Results` header into a
message before sending it. With trusted authserv-ids configured
(`ROUTER_TRUSTED_AUTHSERV_IDS`, the ids the council's own mail servers write), only
headers carrying one of those ids count. With none configured, only the topmost header
counts: it is the one added last, by the server closest to the mailbox. Believing too
much is safe here by design: the only effect of a "fail" is one acknowledgment not sent,
so a sender who writes a false "dmarc=fail" into their own message only silences their
own reply, and a false "dmarc=pass" changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from router.core.mail import headers

_METHOD_RESULT = re.compile(r"^\s*([a-z0-9_-]+)(?:\s*/\s*\d+)?\s*=\s*([a-z0-9_-]+)", re.IGNORECASE)
_MAX_HEADERS = 50
_MAX_CHARS = 8192


def dmarc_failed(values: Sequence[str], trusted_ids: Iterable[str] = ()) -> bool:
    """True when a believed `Authentication-Results` header reports `dmarc=fail`.

    Args:
        values: the raw `Authentication-Results` header values, topmost first.
        trusted_ids: authserv-ids of the council's own servers (any case). Empty: believe
            the topmost header only.

    Returns:
        Whether the message's From failed DMARC by a header we believe. Garbage headers
        are ignored; this never raises.
    """
    trusted = {value.strip().lower() for value in trusted_ids if value.strip()}
    candidates = list(values[:_MAX_HEADERS]) if trusted else list(values[:1])
    for value in candidates:
        authserv_id, results = parse_authentication_results(value)
        if trusted and authserv_id not in trusted:
            continue
        if any(method == "dmarc" and result == "fail" for method, result in results):
            return True
    return False


def parse_authentication_results(value: str) -> tuple[str, list[tuple[str, str]]]:
    """Split one header value into its authserv-id and its (method, result) pairs.

    Comments are removed, quoted strings respected, method versions (`dkim/1`) dropped.
    Everything is lower case. A malformed part is skipped rather than rejected.

    Returns:
        ("", []) when the value has no authserv-id.
    """
    text = _strip_comments(headers.clean_text(headers.to_text(value))[:_MAX_CHARS])
    parts = _split_semicolons(text)
    if not parts:
        return "", []
    # The authserv-id may be followed by a version number ("mx.example.org 1").
    first = parts[0].strip()
    if first.startswith('"'):
        authserv_id = first[1:].partition('"')[0].strip().lower()
    else:
        authserv_id = first.split(" ", 1)[0].lower()
    results: list[tuple[str, str]] = []
    for part in parts[1:]:
        match = _METHOD_RESULT.match(part)
        if match:
            results.append((match.group(1).lower(), match.group(2).lower()))
    return authserv_id, results


def _strip_comments(text: str) -> str:
    """Remove (possibly nested) parenthesised comments outside quoted strings."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if char == '"' and depth == 0:
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
            continue
        elif not quoted and char == ")" and depth > 0:
            depth -= 1
            continue
        if depth == 0:
            out.append(char)
    return "".join(out)


def _split_semicolons(text: str) -> list[str]:
    """Split on semicolons outside quoted strings; empty pieces are dropped."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in (p.strip() for p in parts) if part]
