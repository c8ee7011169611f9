"""YAML syntax errors point at the line where the problem starts, in plain words; a missing
rules directory is named, with how to choose another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from router.cli import main
from router.logs import configure_logging
from tests.core.rules.conftest import RulesDir
from tests.core.rules.test_loader import area


@pytest.fixture(autouse=True)
def _logging_back_to_default() -> Iterator[None]:
    """`main` sets the log level for a command; later tests get the default back."""
    yield
    configure_logging("info", "json")


TESTSHIRE = "areas/testshire.yaml"


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (
            {"[AB1, AB2, AB3]": "[AB1, AB2, AB3"},
            "areas/testshire.yaml:5: YAML syntax error: a list opened with '[' on this line is"
            " not closed with ']' (the file cannot be read past line 6)",
        ),
        (
            {"  - Testshire": '  - "Testshire'},
            "areas/testshire.yaml:3: YAML syntax error: a text opened with a quote on this line"
            " has no closing quote",
        ),
        (
            {"  areas: [ZE]": "   areas: [ZE]"},
            "areas/testshire.yaml:6: YAML syntax error: this line is not indented like the lines"
            " above it",
        ),
        (
            {"  - mash@testshire.gov.uk": "\t- mash@testshire.gov.uk"},
            "areas/testshire.yaml:11: YAML syntax error: a tab character: indent with spaces only",
        ),
        (
            {"team: prevent@testshire.gov.uk": "team: the team: prevent@testshire.gov.uk"},
            "areas/testshire.yaml:13: YAML syntax error: a second ': ' on one line: put text that"
            " contains ': ' in quotes",
        ),
    ],
)
def test_syntax_error_points_where_the_problem_starts(
    rules_copy: RulesDir, replace: dict[str, str], expected: str
) -> None:
    """Each common mistake is named in plain words at the line that causes it."""
    rules_copy.write(TESTSHIRE, area(**replace))
    problems = rules_copy.problems()
    assert problems[0].startswith(expected), problems
    assert "while parsing" not in problems[0] and "<block end>" not in problems[0]


def test_missing_rules_directory_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`route --rules` naming no directory says which directory and how to choose another."""
    monkeypatch.delenv("ROUTER_RULES_DIR", raising=False)
    (tmp_path / "x.eml").write_bytes(b"Subject: x\r\n\r\nx\r\n")
    missing = tmp_path / "nowhere"
    status = main(["route", str(tmp_path / "x.eml"), "--rules", str(missing)])
    assert status == 2
    err = capsys.readouterr().err
    assert f"rules directory not found: {missing}" in err
    assert "ROUTER_RULES_DIR" in err and "--rules" in err
