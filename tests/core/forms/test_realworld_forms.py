"""Real third-party PDFs through `route --json`: each decided in time, with its real cause.

The files are in ../shared/realworld (see its SOURCES.md), read in place; the test skips
when the folder is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REALWORLD, ROOT

PDF_MAIL = sorted((REALWORLD / "pdf-mail").glob("*.eml"))
# file stem -> words the reason must contain (the real cause)
CAUSES = {
    "pypdf__crazyones-encrypted-256": "encrypted PDF",
    "sample-files__libreoffice-writer-password": "encrypted PDF",
    "sample-files__imagemagick-CCITTFaxDecode": "image-only PDF",
    "qpdf__bad-xref": "corrupt PDF",
    "qpdf__pages-loop": "corrupt PDF",
}

pytestmark = pytest.mark.skipif(not PDF_MAIL, reason="no ../shared/realworld/pdf-mail")


@pytest.mark.slow
def test_real_pdfs_get_their_real_cause() -> None:
    """Every real PDF is decided under the worker's limits; known cases name their cause."""
    env = {
        **os.environ,
        "ROUTER_RULES_DIR": str(ROOT / "rules"),
        "ROUTER_REVIEW_ADDRESS": "review@router.example",
        "ROUTER_PARSE_TIMEOUT_SECONDS": "20",
    }
    done = subprocess.run(
        [sys.executable, "-m", "router", "route", "--json", *map(str, PDF_MAIL)],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    records = {json.loads(line)["file"]: json.loads(line) for line in done.stdout.splitlines()}
    assert set(records) == {str(path) for path in PDF_MAIL}
    for path in PDF_MAIL:
        record = records[str(path)]
        assert "could not read" not in record["reason"], record  # a reader bug, not a cause
        if path.stem in CAUSES:
            assert record["outcome"] == "needs_review"
            assert CAUSES[path.stem] in record["reason"], (path.stem, record["reason"])
