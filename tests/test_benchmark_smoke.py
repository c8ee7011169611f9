"""The benchmark runs end to end on a handful of referrals (the real run is not a test)."""

from __future__ import annotations

import pytest

from benchmarks.pipeline import main


@pytest.mark.slow
def test_benchmark_runs_on_a_few_referrals(capsys):
    """`benchmarks.pipeline` with N=3 and a backlog of 3 prints every section of its table."""
    assert main(["-n", "3", "--backlog", "3", "--sequential", "1"]) == 0
    table = capsys.readouterr().out
    for expected in (
        "referrals/s",
        "p50 / p99",
        "overhead ratio",
        "BACKLOG",
        "VmHWM",
        "TARGETS",
        "/healthz",
    ):
        assert expected in table


@pytest.mark.slow
def test_reading_benchmark_prints_its_figures(capsys, tmp_path):
    """`benchmarks.reading` on a few corpus forms, an extra folder and one route run prints
    each line of its table."""
    from benchmarks.reading import main as reading
    from tests.formfactory import complete_referral, labelled, text_pdf

    (tmp_path / "form.pdf").write_bytes(
        text_pdf([f"{k}: {v}" for k, v in labelled(complete_referral()).items()])
    )
    assert reading(["--corpus-limit", "5", "--also", str(tmp_path), "--route-runs", "1"]) == 0
    table = capsys.readouterr().out
    assert "layout corpus              n=5 " in table
    assert f"{tmp_path.name}" in table and "n=1 " in table
    assert "route sample.eml (fresh process) median" in table
