"""Fixtures for the rules tests: the bundled rules, and copies of them to break."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from router.core.rules.loader import check_rules, load_rules
from router.core.rules.model import Rules

BUNDLED_RULES = Path(__file__).resolve().parents[3] / "rules"


class RulesDir:
    """A copy of the bundled rules in a temporary directory, for a test to edit."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, relative: str, text: str) -> Path:
        """Write (or overwrite) one file of the rules directory."""
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return target

    def edit(self, relative: str, old: str, new: str) -> None:
        """Replace `old` (which must occur) with `new` in one file."""
        target = self.path / relative
        text = target.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {relative}"
        target.write_text(text.replace(old, new, 1), encoding="utf-8")

    def remove(self, relative: str) -> None:
        """Delete one file or folder of the rules directory."""
        target = self.path / relative
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    def problems(self) -> list[str]:
        """Return the problems `check_rules` finds, as the lines `rules check` prints."""
        return [str(problem) for problem in check_rules(self.path)]

    def load(self) -> Rules:
        """Load the rules (raises RulesError)."""
        return load_rules(self.path)


@pytest.fixture(scope="session")
def bundled_rules() -> Rules:
    """The rules shipped in the repository (frozen, so one load serves every test)."""
    return load_rules(BUNDLED_RULES)


@pytest.fixture
def rules_copy(tmp_path: Path) -> RulesDir:
    """A fresh copy of the bundled rules, to break in one way or another."""
    path = tmp_path / "rules"
    shutil.copytree(BUNDLED_RULES, path)
    return RulesDir(path)
