"""When a Dagster internal the event-log module uses differs (after a Dagster upgrade), the
platform falls back to Dagster's public behaviour: the export and delivery tests pass that way,
and the change is announced once."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import dagster as dg

from counts_assets.defs.shared import event_log
from counts_tests.dagster_processes import REPO


def test_the_export_and_delivery_tests_pass_on_dagsters_public_behaviour():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "counts_tests/test_dagster_exports.py",
            "counts_tests/test_delivery_states.py",
        ],
        cwd=REPO,
        env=os.environ | {"COUNTS_DAGSTER_INTERNALS": "false"},
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_an_internal_that_differs_is_announced_once_and_left_alone(monkeypatch):
    def asset_materialization(step_context, materialization):  # no batch_metadata any more
        raise AssertionError("not called")

    monkeypatch.setattr(dg.DagsterEvent, "asset_materialization", asset_materialization)
    event_log._batch_metadata_type.cache_clear()
    event_log.announce_fallback.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert event_log._batch_metadata_type() is None
            event_log._batch_metadata_type.cache_clear()
            assert event_log._batch_metadata_type() is None
        said = [str(w.message) for w in caught if w.category is event_log.DagsterInternalsWarning]
        assert len(said) == 1 and "takes no batch_metadata" in said[0]
    finally:
        event_log._batch_metadata_type.cache_clear()
        event_log.announce_fallback.cache_clear()
