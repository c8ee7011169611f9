"""The README and the pages in docs/: every relative link leads to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) outside code; external links and in-page anchors are not checked here.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    targets = (match.group(1).split("#", 1)[0] for match in LINK.finditer(text))
    return [t for t in targets if t and not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_resolve(page: Path) -> None:
    """Each relative link in a page names a file or folder of the repository."""
    missing = [t for t in _relative_links(page) if not (page.parent / t).exists()]
    assert missing == [], f"{page.name} links to missing {missing}"


def test_readme_links_every_docs_page() -> None:
    """A newcomer can reach every page in docs/ from the README."""
    linked = {(ROOT / t).resolve() for t in _relative_links(ROOT / "README.md")}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert unlinked == []
