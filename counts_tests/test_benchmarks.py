"""Every benchmark runs at a tiny size (its --smoke mode), so none can break unnoticed: it
finishes and prints its table. The figures themselves are measured by hand (README, Speed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from counts_tests.dagster_processes import REPO

# Not a benchmark: the independent computation fleet_year.py measures the platform against
# (counts_tests/test_independent_reference.py proves it makes the platform's files).
MODULES = {"__init__.py", "independent_reference.py"}
BENCHMARKS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py") if p.name not in MODULES)


def test_every_benchmark_is_listed():
    assert BENCHMARKS == [
        "audit.py",
        "backfill.py",
        "delivery.py",
        "exports.py",
        "fleet_year.py",
        "steady_state.py",
    ]


@pytest.mark.parametrize("script", BENCHMARKS)
def test_a_benchmark_runs_in_its_smoke_mode(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "|---" in done.stdout, done.stdout[-3000:]
