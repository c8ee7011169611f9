"""ROUTER_JOURNAL as libpq takes it: several hosts, the `host=` query form, Unix sockets and
`service=` all work; passwords in the URL are refused with one settings line and never echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from router.journal.conninfo import parse_journal_url, redact_url
from tests.conftest import ROOT
from tests.servers.postgres import USER, PostgresServer
from tests.servers.smtp import free_port


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("ROUTER_")}
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://router@h1:5432,h2:5432/referrals?target_session_attrs=read-write",
            "postgresql://router@h1:5432,h2:5432/referrals?target_session_attrs=read-write",
        ),
        (
            "postgresql://router:hunter2@[::1]:5432,h2/referrals",
            "postgresql://router@[::1]:5432,h2/referrals",
        ),
        (
            "postgresql:///referrals?host=/run/postgresql&port=5433&password=hunter2&sslmode=disable",
            "postgresql:///referrals?host=/run/postgresql&port=5433&sslmode=disable",
        ),
        ("postgres://?service=journal&sslpassword=hunter2", "postgres://?service=journal"),
    ],
)
def test_redaction_keeps_every_host_and_drops_every_password(url: str, shown: str) -> None:
    """The printable form of any libpq URL keeps its hosts, ports and options as written and
    drops a password from the user part and from the query."""
    assert redact_url(url) == shown


def test_timeouts_and_keepalives_have_defaults_the_url_can_override() -> None:
    """Without query settings every connection gets keepalives, tcp_user_timeout and the
    three time limits; the URL's own values win, and the router's keys never reach libpq."""
    default = parse_journal_url("postgresql://router@db/referrals")
    assert default.libpq_defaults["tcp_user_timeout"] and default.libpq_defaults["keepalives"]
    assert set(default.session) == {
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
    }
    given = parse_journal_url(
        "postgresql://router@db/referrals?tcp_user_timeout=3000&statement_timeout=2s"
        "&sslmode=verify-full"
    )
    assert "tcp_user_timeout" not in given.libpq_defaults
    assert given.session["statement_timeout"] == "2s"
    assert "SET LOCAL statement_timeout = '2s'" in given.begin_sql()
    assert (
        given.conninfo
        == "postgresql://router@db/referrals?tcp_user_timeout=3000&sslmode=verify-full"
    )
    with pytest.raises(ValueError, match="must be a duration"):
        parse_journal_url("postgresql://router@db/referrals?lock_timeout=1';DROP TABLE x")


@pytest.mark.parametrize(
    ("secret", "command"),
    [
        ("password", ["serve"]),
        ("password", ["status", "--json"]),
        ("sslpassword", ["journal", "migrate"]),
    ],
)
def test_a_password_in_the_query_is_refused_and_never_echoed(
    secret: str, command: list[str], tmp_path: Path
) -> None:
    """`?password=` or `?sslpassword=` in ROUTER_JOURNAL stops serve, status, status --json
    and journal migrate with the one-line settings error, exit 2, without the password."""
    env = {
        "ROUTER_JOURNAL": f"postgresql://router@127.0.0.1:1,127.0.0.1:2/db?{secret}=hunter2",
        "ROUTER_STATE_DIR": str(tmp_path),
        "ROUTER_HTTP": "",
    }
    result = _cli(*command, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ROUTER_JOURNAL: must not contain a password" in lines[0], lines
    assert "hunter2" not in result.stderr + result.stdout


def _service_file(tmp_path: Path, server: PostgresServer, database: str) -> Path:
    path = tmp_path / "pg_service.conf"
    path.write_text(
        f"[journal]\nhost=127.0.0.1\nport={server.port}\nuser={USER}\ndbname={database}\n"
    )
    return path


@pytest.mark.slow
def test_every_libpq_url_form_migrates_and_shows_in_status(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    """The same journal reached as several hosts (the first one down), as `host=`/`port=` in
    the query over the server's Unix socket, and through a `service=` entry: `journal
    migrate` and `status --json` work and show the URL as written."""
    database = postgres_url.rsplit("/", 1)[1]
    port = postgres_server.port
    urls = [
        f"postgresql://{USER}@127.0.0.1:{free_port()},127.0.0.1:{port}/{database}"
        "?target_session_attrs=read-write",
        f"postgresql:///{database}?host={postgres_server.root}&port={port}&user={USER}",
        "postgresql://?service=journal",
    ]
    service = _service_file(tmp_path, postgres_server, database)
    for number, url in enumerate(urls):
        env = {
            "ROUTER_JOURNAL": url,
            "ROUTER_STATE_DIR": str(tmp_path / f"state{number}"),
            "PGSERVICEFILE": str(service),
        }
        if number == 0:  # (status migrates a new journal too)
            migrated = _cli("journal", "migrate", env=env)
            assert migrated.returncode == 0, migrated.stderr
            assert f"journal {redact_url(url)} is at schema version" in migrated.stdout
        status = _cli("status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        assert redact_url(url) in status.stdout
