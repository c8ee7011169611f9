"""What an admin sees when a setting is wrong: the real variable, the problem, a good value."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from router.cli import CommandError, load_settings
from router.settings import Settings
from router.settings_problems import known_variables, serve_problems, unknown_variables

SECRET = "s3cret-Value"


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
    assert caught.value.status == 2
    return str(caught.value)


@pytest.mark.parametrize(
    ("typo", "nearest"),
    [
        ("ROUTER_RELAI", "ROUTER_RELAY"),
        ("ROUTER_FROM_ADRESS", "ROUTER_FROM_ADDRESS"),
        ("router_inbox_pasword", "ROUTER_INBOX_PASSWORD"),
        ("ROUTER_RELAY_USER_FILE", "ROUTER_RELAY_USER"),
    ],
)
def test_unknown_variable_names_the_nearest_known_one(
    monkeypatch: pytest.MonkeyPatch, typo: str, nearest: str
) -> None:
    """A misspelt ROUTER_* variable is refused, naming it and the setting it was probably."""
    message = _error(monkeypatch, **{typo: "smtps://relay.example"})
    assert f"unknown setting {typo} (did you mean {nearest}?)" in message
    assert "smtps://relay.example" not in message


def test_every_setting_and_file_variant_is_known() -> None:
    """The `_FILE` variants that are settings, and any case, are not reported as unknown."""
    env = {"ROUTER_INBOX_PASSWORD_FILE": "/x", "router_relay": "", "ROUTER_JOURNAL": ""}
    assert unknown_variables(env) == []
    assert "ROUTER_OAUTH_CLIENT_SECRET_FILE" in known_variables()


def test_unknown_variable_stops_serve_with_one_line(tmp_path: Path, rules_dir: Path) -> None:
    """`serve` with ROUTER_RELAI set exits 2 at once with one line, before doing anything."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve"],
        cwd=tmp_path,
        env={**env, "ROUTER_RULES_DIR": str(rules_dir), "ROUTER_RELAI": "smtps://x.example"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "ROUTER_RELAI (did you mean ROUTER_RELAY?)" in result.stderr
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ROUTER_INBOX": "bogus"}, "ROUTER_INBOX: not an address: it should start with imap://"),
        ({"ROUTER_INBOX": "ftp://h.example:21"}, "ROUTER_INBOX: scheme must be one of"),
        ({"ROUTER_RELAY": "bogus"}, "ROUTER_RELAY: not an address"),
        ({"ROUTER_HTTP": "nonsense"}, "ROUTER_HTTP: expected host:port"),
        ({"ROUTER_IDLE_SECONDS": "1"}, "ROUTER_IDLE_SECONDS: should be greater than"),
        ({"ROUTER_LOG_LEVEL": "loud"}, "ROUTER_LOG_LEVEL: should be 'debug'"),
    ],
)
def test_errors_name_the_real_variable_and_a_good_value(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    """A bad value names its own variable (never ROUTER_SETTINGS), the problem and an example."""
    message = _error(monkeypatch, **env)
    assert expected in message
    assert "ROUTER_SETTINGS" not in message
    [variable] = env
    assert f"(e.g. {variable}=" in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ROUTER_INBOX", f"imaps://user:{SECRET}@mail.example:993/INBOX"),
        ("ROUTER_INBOX", SECRET),
        ("ROUTER_RELAY", f"{SECRET}://relay.example:587"),
        ("ROUTER_RELAY", f"smtp://user@relay.example:{SECRET}"),
        ("ROUTER_INBOX", f"smtp://{SECRET}.example"),
    ],
)
def test_errors_never_echo_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A value that may hold a password is described, never quoted back."""
    message = _error(monkeypatch, **{variable: value})
    assert variable in message
    assert SECRET.lower() not in message.lower()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ROUTER_INBOX", "smtp://127.0.0.1"), ("ROUTER_RELAY", "smtp://relay.example")],
)
def test_smtp_without_port_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """`smtp://host` with no port would silently mean 25: the port must be given."""
    assert f"{variable}: no port" in _error(monkeypatch, **{variable: value})


def test_imap_without_password_says_exactly_that(tmp_path: Path) -> None:
    """With the user given, only the password is reported missing; without both, both are."""
    user_only = Settings(inbox="imaps://router@mail.example.org:993/INBOX")
    [problem] = serve_problems(user_only)
    assert problem.startswith("ROUTER_INBOX_PASSWORD is not set")
    assert "user" not in problem.split(":")[0]
    neither = serve_problems(Settings(inbox="imaps://mail.example.org:993/INBOX"))
    assert [p.split(" ")[0] for p in neither] == ["ROUTER_INBOX", "ROUTER_INBOX_PASSWORD"]
    assert "no user name" in neither[0]
    missing_file = Settings(
        inbox="imaps://router@mail.example.org/INBOX", inbox_password_file=tmp_path / "nope"
    )
    expected = f"ROUTER_INBOX_PASSWORD_FILE: no file at {tmp_path / 'nope'}"
    assert serve_problems(missing_file) == [expected]
    oauth = Settings(
        inbox="imaps://router@mail.example.org/INBOX",
        inbox_auth="oauth2",
        oauth_provider="generic",
        oauth_token_url="https://login.example.org/token",
        oauth_client_id="router",
        oauth_client_secret="s3cret",
    )
    assert serve_problems(oauth) == []


def test_serve_reports_the_missing_imap_password(tmp_path: Path, rules_dir: Path) -> None:
    """`serve` with an IMAP user and no password exits 2 naming ROUTER_INBOX_PASSWORD."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve"],
        cwd=tmp_path,
        env={
            **env,
            "ROUTER_RULES_DIR": str(rules_dir),
            "ROUTER_INBOX": "imaps://router@127.0.0.1:1/INBOX",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "bad settings: ROUTER_INBOX_PASSWORD is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_default_relay_is_the_state_directory_outbox(tmp_path: Path) -> None:
    """With ROUTER_RELAY unset, mail goes to the Maildir `<ROUTER_STATE_DIR>/outbox`."""
    settings = Settings(state_dir=tmp_path / "state")
    assert settings.relay_endpoint.scheme == "maildir"
    assert settings.relay_endpoint.path == tmp_path / "state" / "outbox"


def test_serve_with_only_a_state_directory_writes_its_outbox_there(
    tmp_path: Path, rules_dir: Path
) -> None:
    """`serve` with ROUTER_STATE_DIR and no ROUTER_RELAY writes into <state>/outbox/new."""
    import shutil

    from tests.service.test_lifecycle import MET, RouterProcess, listen_port

    shutil.copytree(rules_dir, tmp_path / "rules")  # the default ./rules
    port = listen_port()
    env = {k: "" for k in os.environ if k.startswith("ROUTER_")}
    # The inbox and HTTP ports are moved off the defaults only so no other router is met.
    env.update(ROUTER_STATE_DIR=str(tmp_path / "state"), ROUTER_INBOX=f"smtp://127.0.0.1:{port}")
    env["ROUTER_HTTP"] = ""
    router = RouterProcess(tmp_path, env, port)
    router.start()
    try:
        subprocess.run(
            [sys.executable, "-m", "router.sample", "--send", f"127.0.0.1:{port}"], check=True
        )
        outbox = tmp_path / "state" / "outbox" / "new"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(outbox.glob("*"))) < 2:
            time.sleep(0.05)  # polling a directory another process writes
        assert any(MET.encode() in path.read_bytes() for path in outbox.iterdir())
        assert not (tmp_path / "var").exists()
    finally:
        assert router.terminate(timeout=10) == 0
