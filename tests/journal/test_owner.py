"""One owner for a local journal: two real `serve` processes on one state directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.test_lifecycle import RouterProcess, listen_port


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        cwd=cwd,
        env={**os.environ, "ROUTER_HTTP": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_second_serve_on_a_state_dir_in_use_exits_2_naming_the_holder(
    router_process, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A second `serve` on a state directory in use exits 2 with one line naming the PID
    that holds it; `status` and `reprocess` still work beside the first; after the first is
    SIGKILLed a new `serve` starts (the lock dies with its holder)."""
    first_port = listen_port()
    first = router_process(
        {"ROUTER_INBOX": f"smtp://127.0.0.1:{first_port}", "ROUTER_HTTP": ""}, first_port
    )
    first.start()
    assert first.process is not None

    second = subprocess.run(
        [sys.executable, "-m", "router", "serve"],
        cwd=tmp_path,
        env={**os.environ, "ROUTER_INBOX": f"smtp://127.0.0.1:{listen_port()}", "ROUTER_HTTP": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"in use by process {first.process.pid}" in lines[0]

    status = _cli(tmp_path, "status")
    assert status.returncode == 0, status.stderr
    assert "messages" in status.stdout
    reprocess = _cli(tmp_path, "reprocess", "20261121-9F2C3A1B")
    assert reprocess.returncode == 1 and "no message" in reprocess.stderr

    first.kill()
    again = RouterProcess(tmp_path, first.env, first.port)
    try:
        again.start()
    finally:
        again.stop()
