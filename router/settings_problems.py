"""What is wrong with the settings, told to an admin: unknown ROUTER_* variables (with the
nearest known name), validation errors as one line per variable with a good value, and what
`serve` would trip over that the settings alone can tell."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr, ValidationError

from router.settings import Settings
from router.settings_console import CONSOLE_EXAMPLES

# A good value of each setting, shown with its error; settings not listed show their default.
_EXAMPLES = {
    "inbox": "imaps://referrals@mail.council.example:993/INBOX, graph://referrals@council.example"
    "/Inbox or smtp://127.0.0.1:2525",
    "relay": "smtp://smtp.council.example:587, graph://referrals@council.example"
    " or maildir:/var/lib/referral-router/outbox",
    "http": "127.0.0.1:9181 (or empty to turn it off)",
    "from_address": "referrals@council.example",
    "review_address": "prevent-review@council.example",
    "allow_insecure": "true",
    "journal": "postgresql://router@db1:5432,db2:5432/referrals?target_session_attrs=read-write",
    **CONSOLE_EXAMPLES,
}

ENV_PREFIX = "ROUTER_"


def known_variables() -> list[str]:
    """Every ROUTER_* variable the router reads (the `_FILE` variants that exist included)."""
    return sorted(ENV_PREFIX + name.upper() for name in Settings.model_fields)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`NAME (did you mean KNOWN?)` for each ROUTER_* variable that is not a setting.

    Names compare without regard to case, as pydantic-settings reads them.
    """
    known = known_variables()
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known:
            nearest = difflib.get_close_matches(upper, known, n=1, cutoff=0.0)
            found.append(f"{name} (did you mean {nearest[0]}?)" if nearest else name)
    return found


def describe_errors(error: ValidationError) -> list[str]:
    """One line per problem: the real variable, what is wrong, and a good value.

    Values given are never quoted: the settings include passwords.
    """
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        if message.startswith("Input should be"):
            message = "should be" + message.removeprefix("Input should be")
        loc = item["loc"]
        if not loc:
            lines.append(message)
            continue
        name = str(loc[0])
        variable = ENV_PREFIX + name.upper()
        example = _example(name)
        good = f" (e.g. {variable}={example})" if example else ""
        lines.append(f"{variable}: {message}{good}")
    return lines


def _example(name: str) -> str | None:
    if name in _EXAMPLES:
        return _EXAMPLES[name]
    field = Settings.model_fields.get(name)
    default: Any = None if field is None else field.default
    if default is None or default == "" or isinstance(default, SecretStr):
        return None
    return f"{str(default).lower() if isinstance(default, bool) else default}, the default"


def serve_problems(settings: Settings) -> list[str]:
    """What `serve` would trip over later that the settings alone can tell now.

    Each says exactly what is missing: the user, the password, or the password's file.
    """
    problems = []
    inbox = settings.inbox_endpoint
    if inbox.scheme in ("imap", "imaps") and settings.inbox_auth == "password":
        if not inbox.user:
            problems.append(
                "ROUTER_INBOX has no user name: IMAP logs in as the user before the @"
                " (e.g. ROUTER_INBOX=imaps://referrals@mail.council.example:993/INBOX)"
            )
        if settings.inbox_password is None and settings.inbox_password_file is None:
            problems.append(
                "ROUTER_INBOX_PASSWORD is not set (nor ROUTER_INBOX_PASSWORD_FILE):"
                " IMAP needs the password of the user in ROUTER_INBOX"
            )
    for variable, path in (
        ("ROUTER_INBOX_PASSWORD_FILE", settings.inbox_password_file),
        ("ROUTER_RELAY_PASSWORD_FILE", settings.relay_password_file),
    ):
        if path is not None and not path.is_file():
            problems.append(f"{variable}: no file at {path}")
    return problems
