"""A real OpenID Connect provider on loopback: npm's `oidc-provider` run with Debian's nodejs.

`tests/servers/oidc_provider.mjs` is the provider; its npm packages are installed by `npm ci`
in tools/console (as .ci/run does). Its development sign-in page takes any login name: the
name picks an account of `users`, whose email and groups become the ID token's claims.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.servers.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "tools" / "console" / "node_modules"
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
CLIENT_ID = "referral-router-console"
CLIENT_SECRET = "console-client-secret-for-tests"


@dataclass
class OidcProvider:
    """A running provider: its issuer URL and the one client registered with it."""

    issuer: str
    redirect_uri: str
    users: dict[str, dict[str, object]]
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    process: subprocess.Popen[str] | None = field(default=None, repr=False)


def start_provider(
    directory: Path, redirect_uri: str, users: dict[str, dict[str, object]]
) -> OidcProvider:
    """Start the provider and wait for its `ready` line.

    Raises:
        RuntimeError: it did not start (its output is in the message).
    """
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None or not (NODE_MODULES / "oidc-provider").is_dir():
        pytest.skip("needs nodejs and `npm ci` in tools/console (installed by .ci/run)")
    port = free_port()
    config = directory / "oidc.json"
    config.write_text(
        json.dumps(
            {
                "port": port,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uri": redirect_uri,
                "users": users,
            }
        ),
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [node, str(SCRIPT), str(NODE_MODULES), str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # blocks until the provider speaks: no polling
        seen.append(line)
        if line.startswith("ready "):
            break
    else:
        process.kill()
        process.wait(timeout=10)
        process.stdout.close()
        raise RuntimeError("oidc-provider did not start: " + "".join(seen))
    # Its later output (warnings, errors) is drained so that a full pipe never stalls it.
    threading.Thread(target=_drain, args=(process.stdout, seen), daemon=True).start()
    return OidcProvider(f"http://127.0.0.1:{port}", redirect_uri, users, process=process)


def _drain(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)
    stream.close()


def stop_provider(provider: OidcProvider) -> None:
    """Stop the provider's process."""
    if provider.process is not None:
        provider.process.kill()
        provider.process.wait(timeout=10)


@pytest.fixture(scope="session")
def console_port() -> int:
    """The console's port for the whole session: the provider knows its callback URL."""
    return free_port()


@pytest.fixture(scope="session")
def oidc_provider(
    tmp_path_factory: pytest.TempPathFactory, console_port: int
) -> Iterator[OidcProvider]:
    """One provider for the session, with a viewer, an admin (by group) and an outsider."""
    users: dict[str, dict[str, object]] = {
        "viewer": {"email": "Coordinator@Council.example", "groups": ["prevent-team"]},
        "admin": {"email": "it-admin@council.example", "groups": ["router-admins"]},
        "outsider": {"email": "someone@elsewhere.example", "groups": ["other"]},
    }
    provider = start_provider(
        tmp_path_factory.mktemp("oidc"), f"http://127.0.0.1:{console_port}/auth/callback", users
    )
    yield provider
    stop_provider(provider)
