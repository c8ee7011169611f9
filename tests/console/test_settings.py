"""The console's settings: off by default, no sign-in only on loopback, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from router.cli import CommandError, load_settings
from router.settings import Settings
from router.settings_problems import known_variables

OIDC = {
    "ROUTER_CONSOLE": "0.0.0.0:9182",
    "ROUTER_CONSOLE_URL": "https://router.council.example",
    "ROUTER_CONSOLE_ISSUER": "https://login.microsoftonline.com/tenant/v2.0",
    "ROUTER_CONSOLE_CLIENT_ID": "client",
    "ROUTER_CONSOLE_CLIENT_SECRET": "s3cret-Value",
    "ROUTER_CONSOLE_GROUPS": "prevent-team",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no ROUTER_* variable of the runner's own."""
    for name in list(os.environ):
        if name.upper().startswith("ROUTER_"):
            monkeypatch.delenv(name)


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(CommandError) as caught:
        load_settings()
    return str(caught.value)


def test_console_is_off_by_default_and_its_settings_are_known() -> None:
    """With no settings there is no console; every ROUTER_CONSOLE* variable is known."""
    assert Settings().console_bind is None
    for name in ("ROUTER_CONSOLE", "ROUTER_CONSOLE_AUTH", "ROUTER_CONSOLE_CLIENT_SECRET_FILE",
                 "ROUTER_CONSOLE_ADMINS", "ROUTER_CONSOLE_IDLE_MINUTES"):  # fmt: skip
        assert name in known_variables()


def test_no_sign_in_is_refused_off_loopback_with_one_line(tmp_path: Path, rules_dir: Path) -> None:
    """`serve` with ROUTER_CONSOLE_AUTH=none on a public address exits 2 with one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env |= {"ROUTER_RULES_DIR": str(rules_dir), **OIDC, "ROUTER_CONSOLE_AUTH": "none"}
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "ROUTER_CONSOLE_AUTH=none is allowed only on loopback" in result.stderr


def test_no_sign_in_is_allowed_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """On loopback the no-sign-in try-out needs nothing else."""
    monkeypatch.setenv("ROUTER_CONSOLE", "127.0.0.1:9182")
    monkeypatch.setenv("ROUTER_CONSOLE_AUTH", "none")
    settings = load_settings()
    assert settings.console_bind == ("127.0.0.1", 9182)
    assert settings.console_public_url == "http://127.0.0.1:9182"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"ROUTER_CONSOLE_ISSUER": ""}, "needs ROUTER_CONSOLE_ISSUER"),
        ({"ROUTER_CONSOLE_CLIENT_SECRET": ""}, "needs ROUTER_CONSOLE_CLIENT_SECRET"),
        ({"ROUTER_CONSOLE_GROUPS": ""}, "ROUTER_CONSOLE_USERS, ROUTER_CONSOLE_GROUPS or"),
        ({"ROUTER_CONSOLE_ISSUER": "http://idp.example"}, "must be an https:// URL"),
        ({"ROUTER_CONSOLE_URL": "http://router.example"}, "ROUTER_CONSOLE_URL must be https"),
        ({"ROUTER_CONSOLE_URL": ""}, "ROUTER_CONSOLE_URL is needed"),
        ({"ROUTER_CONSOLE": "nonsense"}, "ROUTER_CONSOLE: expected host:port"),
    ],
)
def test_incomplete_sign_in_settings_name_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, str], expected: str
) -> None:
    """Each missing or unsafe part of the sign-in is named, and the secret never echoed."""
    env = {**OIDC, **change}
    if not env["ROUTER_CONSOLE_CLIENT_SECRET"]:
        del env["ROUTER_CONSOLE_CLIENT_SECRET"]
    message = _error(monkeypatch, **env)
    assert expected in message
    assert "s3cret-Value" not in message


def test_roles_come_from_addresses_and_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admins by address or group, viewers by address or group, anyone else refused."""
    from router.console.auth import Role, role_for

    env = {**OIDC, "ROUTER_CONSOLE_USERS": "Lead@Council.example",
           "ROUTER_CONSOLE_ADMINS": "it@council.example,router-admins"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert role_for(settings, "it@council.example", []) is Role.ADMIN
    assert role_for(settings, "x@council.example", ["Router-Admins"]) is Role.ADMIN
    assert role_for(settings, "lead@council.example", []) is Role.VIEWER
    assert role_for(settings, "y@council.example", ["prevent-team"]) is Role.VIEWER
    assert role_for(settings, "z@council.example", ["other"]) is None
