"""ROUTER_JOURNAL, a libpq URL: checked, redacted, and given bounded waits by default.

Any URL libpq takes works: several hosts (`h1:5432,h2:5432`, tried in order, with
`target_session_attrs=read-write` to find the primary), the `host=`/`port=` query form,
Unix sockets (`host=/run/postgresql`), `service=`. The URL is never parsed as one host:
libpq parses it (`conninfo_to_dict`), and the redacted form only drops what is secret.

Three settings of the router's own may be given in the query (libpq does not know them; they
are taken out before it sees the URL): `statement_timeout`, `lock_timeout` and
`idle_in_transaction_session_timeout`, in PostgreSQL's units (`15s`, `500ms`). They are set
with `SET LOCAL` at the start of every transaction, not as session state, so that they hold
through a transaction pooler too. libpq's own TCP settings (`keepalives*`,
`tcp_user_timeout`, `connect_timeout`) get defaults here unless the URL gives them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode

# Set at the start of each transaction (SET LOCAL): the longest any statement, lock wait or
# idle open transaction may last. The journal's statements take milliseconds.
SESSION_DEFAULTS = {
    "statement_timeout": "15s",
    "lock_timeout": "10s",
    "idle_in_transaction_session_timeout": "30s",
}
# libpq connection parameters: a server that vanishes without a reset (a network black
# hole) is noticed in seconds, not after the ~15 minutes of TCP retries. Below the 20 s
# lease, so a node cut off from the database stops before its claims are taken over.
LIBPQ_DEFAULTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",  # milliseconds: unacknowledged data this long ends it
    "application_name": "referral-router",
}
SECRETS = ("password", "sslpassword")
_SCHEMES = ("postgresql://", "postgres://")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?")
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
USAGE = "must be empty (SQLite) or postgresql://user@host:port/dbname (any libpq URL)"


@dataclass(frozen=True)
class JournalUrl:
    """A checked ROUTER_JOURNAL."""

    conninfo: str  # what libpq is given: the URL without the router's own settings
    libpq_defaults: dict[str, str] = field(default_factory=dict)  # absent from the URL
    session: dict[str, str] = field(default_factory=dict)  # SET LOCAL in every transaction
    redacted: str = ""  # safe to print

    def seconds(self, name: str) -> float:
        """One of the `session` limits in seconds (0: none)."""
        return duration_seconds(self.session[name])

    def begin_sql(self) -> str:
        """The statements that open a transaction with its time limits (one round trip)."""
        settings = "".join(
            f"; SET LOCAL {name} = '{value}'" for name, value in self.session.items()
        )
        return f"BEGIN{settings}"


def parse_journal_url(url: str) -> JournalUrl:
    """Check a ROUTER_JOURNAL and split it into what libpq and the router each take.

    Raises:
        ValueError: one line saying what is wrong (to follow the variable's name), never
            echoing the URL (it may hold a password).
    """
    url = url.strip()
    if not url.startswith(_SCHEMES):
        raise ValueError(USAGE)
    base, _, query = url.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    session = dict(SESSION_DEFAULTS)
    kept = []
    for name, value in params:
        if name in SESSION_DEFAULTS:
            if not _DURATION.fullmatch(value.strip()):
                raise ValueError(f"{name} must be a duration such as 15s or 500ms")
            session[name] = value.strip()
        else:
            kept.append((name, value))
    conninfo = base + ("?" + urlencode(kept, quote_via=quote) if kept else "")
    parsed = _libpq_parse(conninfo)
    if any(secret in parsed for secret in SECRETS):
        raise ValueError(
            "must not contain a password: use ROUTER_JOURNAL_PASSWORD_FILE"
            " or ROUTER_JOURNAL_PASSWORD"
        )
    defaults = {name: value for name, value in LIBPQ_DEFAULTS.items() if name not in parsed}
    return JournalUrl(conninfo, defaults, session, redact_url(url))


def duration_seconds(value: str) -> float:
    """A PostgreSQL duration (`15s`, `500ms`, `2min`; no unit: milliseconds) in seconds."""
    found = _DURATION.fullmatch(value.strip())
    if not found:
        raise ValueError(f"not a duration: {value!r}")
    return float(found[1]) * _UNIT_SECONDS[found[2] or "ms"]


def _libpq_parse(conninfo: str) -> dict[str, str]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        parsed = conninfo_to_dict(conninfo)
    except psycopg.Error:
        raise ValueError(f"{USAGE} (libpq cannot read it)") from None
    return {name: str(value) for name, value in parsed.items()}


def redact_url(url: str) -> str:
    """The URL with any password (in the user part or the query) left out, safe to print.

    Done on the text, not by parsing one host: `h1:5432,h2:5432` and `host=` queries stay
    as written."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(not a URL)"
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}@{hosts}"
    path, qmark, query = tail.partition("?")
    if qmark:
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in SECRETS]
        query = urlencode(kept, quote_via=quote, safe="/,:")
        qmark = "?" if query else ""
    return f"{scheme}://{netloc}{path}{qmark}{query}"
