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
