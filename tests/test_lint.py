"""The lint, run by the README's test command beside the other tests (it used to run after
them in `.ci/run`, a quarter of a minute with both cores of a CI machine mostly idle): ruff,
mypy in strict mode, import-linter's layers (docs/architecture.md), hadolint on the
Dockerfile, and the bundled rules checked as an admin would check them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
LINT = {
    "ruff": ["ruff", "check", "."],
    "mypy": ["mypy"],
    "import-linter": ["lint-imports"],
    "hadolint": ["hadolint", "Dockerfile"],
    "rules": ["referral-router", "rules", "check", "rules"],
}


@pytest.mark.slow  # mypy's 9 s of CPU, started while the first slow tests wait on servers
@pytest.mark.parametrize("name", sorted(LINT))
def test_lint_passes(name: str) -> None:
    tool, *args = LINT[name]
    result = subprocess.run(
        [str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
