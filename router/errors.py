"""Problems a person can fix, each reported as one line with an exit status (never a traceback)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.core.rules.model import Rules

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A problem the user can fix, reported as one clear message (never a traceback)."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def load_rules_or_fail(directory: Path) -> Rules:
    """Load a rules directory, or raise `CommandError` listing every problem found."""
    from router.core.rules.loader import NOT_FOUND_HINT, RulesError, load_rules

    if not directory.is_dir():
        raise CommandError(f"rules directory not found: {directory.absolute()}{NOT_FOUND_HINT}")
    try:
        return load_rules(directory)
    except RulesError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise CommandError(f"rules in {directory} are not valid:\n{lines}") from None
