"""Failure isolation and the alert hook: one org's bad config fails only that org's files,
and the failure reaches the alert log or webhook with its reason."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg

from counts_assets.defs.health.alerts import run_failure_alert_sensor
from counts_assets.defs.health.resources import AlertHook
from counts_tests.platform import platform_on


def _failed_run(platform):
    """A run of two orgs in which one pair cannot be written: a folder where its file goes."""
    (platform.export_dir / "testorg/daily/testorg_daily_2026-03-08_summary.csv").mkdir(parents=True)
    result = platform.run("daily_export_job", "2026-03-08|testorg", "2026-03-08|otherorg")
    assert not result.success
    (failure,) = platform.instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return result, failure.dagster_event


def _alert(platform, result, failure, hook):
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=platform.instance,
        dagster_run=result.dagster_run,
        dagster_event=failure,
        resources={"alerts": hook},
    ).for_run_failure()
    run_failure_alert_sensor(context)


def test_failure_is_written_to_the_alert_log(tmp_path):
    with platform_on(tmp_path) as platform:
        result, failure = _failed_run(platform)
        _alert(platform, result, failure, AlertHook(url=f"file://{tmp_path}/alerts.jsonl"))
        # The other orgs of that run were still published.
        assert (platform.export_dir / "otherorg/daily/otherorg_daily_2026-03-08_needs.csv").exists()
    alert = json.loads((tmp_path / "alerts.jsonl").read_text().splitlines()[0])
    assert alert["job"] == "daily_export_job"
    assert alert["partition"] == "2026-03-08|testorg .. 2026-03-08|otherorg"
    assert alert["run_id"] == result.run_id
    assert "testorg 2026-03-08: " in alert["reason"] and "not published" in alert["reason"]


def test_failure_is_posted_to_a_webhook(tmp_path):
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        with platform_on(tmp_path) as platform:
            result, failure = _failed_run(platform)
            _alert(
                platform,
                result,
                failure,
                AlertHook(url=f"http://127.0.0.1:{server.server_port}/hook"),
            )
        thread.join(timeout=10)
    finally:
        server.server_close()
    assert [a["run_id"] for a in received] == [result.run_id]


def test_no_url_means_no_alert(tmp_path):
    AlertHook(url=None).send({"job": "x"})
    assert list(tmp_path.iterdir()) == []
