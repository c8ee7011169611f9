"""The README's commands, taken from README.md and run as written in a copy of the repository:
a fresh virtual environment, `serve`, the try-out and the dry run; and `.ci/run` runs the
README's test command."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.servers.smtp import free_port

MET = "preventreferrals@met.pnn.police.uk"
# Not copied: what installing and running make, and the console tests' npm packages (30 MB of
# small files that nothing in the README uses).
_COPY_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "var",
    "build",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "node_modules",
)


def readme_blocks(section: str) -> list[str]:
    """The ```sh blocks of one `## section` of README.md, as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", body, re.DOTALL)]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """`.ci/run` contains the README's test command as one line, unchanged."""
    _, test_command = readme_blocks("Two commands")
    assert "\n" not in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "python3 -m venv .venv" in test_command


def _environment(inbox_port: int, http_port: int) -> dict[str, str]:
    """The runner's environment without its virtual environment or ROUTER_* settings; the
    ports moved off the defaults so the test cannot meet another router on this machine."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ROUTER_") and key not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    venv_bin = str(Path(os.environ.get("VIRTUAL_ENV", "/nonexistent")) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    # pip does not compile every installed module to bytecode (tens of seconds of CPU on a
    # loaded two-core runner); Python compiles what the router imports as it starts.
    env["PIP_NO_COMPILE"] = "1"
    env["ROUTER_INBOX"] = f"smtp://127.0.0.1:{inbox_port}"
    env["ROUTER_HTTP"] = f"127.0.0.1:{http_port}"
    return env


def _run_lines(block: str, cwd: Path, env: dict[str, str], port: int) -> str:
    """Run each line of a README block with bash (comments and all); returns the output."""
    output = ""
    for line in block.splitlines():
        line = line.replace("127.0.0.1:2525", f"127.0.0.1:{port}")
        result = subprocess.run(
            ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (line, result.stderr)
        output += result.stdout
    return output


class ServeCommand:
    """The README's install-and-serve command, started with bash in its own process group."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str], port: int) -> None:
        self.log = cwd / f"serve-{time.monotonic_ns()}.log"
        self.port = port
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(errors="replace")[-3000:]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.2)  # pip is installing, or serve is starting: no event to wait on
        raise AssertionError("serve never listened: " + self.log.read_text(errors="replace"))

    def stop(self) -> str:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.log.read_text(errors="replace")


def _wait_for_files(directory: Path, count: int, timeout: float = 60) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(directory.glob("*")) if directory.is_dir() else []
        if len(files) >= count:
            return files
        time.sleep(0.05)  # polling a directory another process writes
    raise AssertionError(f"fewer than {count} files in {directory}")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_commands_work_in_a_fresh_copy(tmp_path: Path) -> None:
    """The README's serve command, run twice in a fresh copy, makes its venv, installs and
    serves; the try-out sends the sample, `outbox` lists the forward to the Met and the ack,
    and the dry run routes the saved sample.eml."""
    serve_command, _ = readme_blocks("Two commands")
    try_out, dry_run = readme_blocks("Try it")
    copy = tmp_path / "referral-router"
    shutil.copytree(ROOT, copy, ignore=_COPY_IGNORE)
    port, http_port = free_port(), free_port()
    env = _environment(port, http_port)
    outbox = copy / "var" / "outbox" / "new"
    for round_number in (1, 2):  # the second time, the venv is there already
        serve = ServeCommand(serve_command, copy, env, port)
        try:
            serve.wait_listening(timeout=600)
            _run_lines(try_out, copy, env, port)
            files = _wait_for_files(outbox, 2 * round_number)
            assert sum(MET.encode() in path.read_bytes() for path in files) == round_number
        finally:
            log = serve.stop()
        assert "Traceback" not in log
        assert (copy / ".venv" / "bin" / "referral-router").exists()
    listing = _run_lines(try_out.splitlines()[1], copy, env, port)
    assert "var/outbox: 4 mail(s)" in listing
    assert listing.count(f"To: {MET}") == 2
    assert "Cc: mashagency@lewisham.gov.uk, prevent@lewisham.gov.uk" in listing
    assert "ack " in listing
    explanation = _run_lines(dry_run, copy, env, port)
    assert (copy / "sample.eml").stat().st_size > 0
    assert MET in explanation
