"""The Docker image's own settings start the router: `serve` with exactly the Dockerfile's
ENV (its paths and ports, in a private mount and network namespace as a container has)
reaches /readyz 200, with a self-signed certificate and STARTTLS still required."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Run inside the namespace, chrooted into a root made of the host's folders plus /app and
# an empty /var/lib (as the image has): serve in the background, then the checks.
_SCRIPT = r"""
set -eu
root=$ROOTDIR
for dir in /*; do
    case "$dir" in /old_root|/lost+found|/app) continue;; esac
    [ -d "$dir" ] || continue
    mkdir -p "$root$dir"
    mount --rbind "$dir" "$root$dir"
done
mount -t tmpfs tmpfs "$root/var/lib"
mkdir -p "$root/var/lib/referral-router" "$root/app/rules"
mount --bind "$RULES" "$root/app/rules"
ip link set lo up
exec chroot "$root" /bin/sh -c "cd /app && $SERVE > $LOG 2>&1 & exec $PYTHON $CHECK"
"""

_CHECK = r"""
import json, smtplib, sys, time, urllib.error, urllib.request
from pathlib import Path
deadline = time.monotonic() + 90
status, body = 0, b""
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen("http://127.0.0.1:9181/readyz", timeout=5) as reply:
            status, body = reply.status, reply.read()
        break
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except OSError:
        pass
    time.sleep(0.2)  # the daemon starts in the background of this same shell
with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as client:
    client.ehlo("mail.council.example")
    starttls = client.has_extn("starttls")
    plain_mail = client.mail("teacher@school.example")[0]
certificate = Path("/var/lib/referral-router/tls/selfsigned-cert.pem").exists()
print(json.dumps({"status": status, "readyz": json.loads(body or b"{}"),
                  "starttls": starttls, "plain_mail": plain_mail, "certificate": certificate}))
"""


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    """The ENV of a Dockerfile (one `ENV` instruction, `\\`-continued `KEY=value` pairs)."""
    env: dict[str, str] = {}
    text = dockerfile.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare"
)
def test_serve_starts_on_the_docker_images_own_settings(tmp_path: Path) -> None:
    """With exactly the Dockerfile's ENV (listener on 0.0.0.0:2525, no certificate), serve
    makes a self-signed certificate in its state directory, says so, reaches /readyz 200,
    and still answers plain-text MAIL with 530 (STARTTLS first)."""
    env = dockerfile_env(ROOT / "Dockerfile")
    assert env["ROUTER_INBOX"] == "smtp://0.0.0.0:2525" and "ROUTER_INBOX_TLS_CERT_FILE" not in env
    outside = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    (tmp_path / "root").mkdir()
    check = tmp_path / "check.py"
    check.write_text(_CHECK)
    # Every host folder is bound at its own path inside the root (but /var/lib and /app),
    # so this test's own folder holds the log there too.
    log = tmp_path / "serve.log"
    serve = f"{shlex.quote(sys.executable)} -m router serve"
    done = subprocess.run(
        # A PID namespace too: when the checks end, the daemon left in it is killed.
        ["unshare", "--mount", "--net", "--pid", "--fork", "bash", "-c", _SCRIPT],
        env={
            **outside,
            **env,
            "RULES": str(ROOT / "rules"),
            "SERVE": serve,
            "PYTHON": shlex.quote(sys.executable),
            "CHECK": shlex.quote(str(check)),
            "LOG": shlex.quote(str(log)),
            "ROOTDIR": str(tmp_path / "root"),
        },
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    log_text = log.read_text(errors="replace") if log.exists() else ""
    assert done.returncode == 0, done.stderr + log_text
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 200, (result, log_text)
    assert "self-signed" in result["readyz"]["checks"]["inbox"]["tls"]
    assert result["starttls"] and result["plain_mail"] == 530
    assert result["certificate"]
    assert '"inbox_tls_self_signed"' in log_text
