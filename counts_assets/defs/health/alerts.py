"""Optional alert hook: every failed run is written as one JSON line to `COUNTS_ALERT_URL`,
a `file:///path` (appended) or an `http(s)://` webhook (POSTed). Messages carry job, partition,
run id and the failure reason (org ids, record numbers, file paths), never record contents."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from counts_assets.defs.health.resources import AlertHook


def failure_alert(run: dg.DagsterRun, message: str) -> dict:
    return {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "job": run.job_name,
        "run_id": run.run_id,
        "partition": run.tags.get("dagster/partition")
        or " .. ".join(
            filter(
                None,
                [
                    run.tags.get("dagster/asset_partition_range_start"),
                    run.tags.get("dagster/asset_partition_range_end"),
                ],
            )
        ),
        "reason": message,
    }


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes every failed run to COUNTS_ALERT_URL (a log file or a webhook).",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertHook) -> None:
    reasons = [
        context.failure_event.message or "",
        failure_reasons(context.get_step_failure_events()),
    ]
    alerts.send(failure_alert(context.dagster_run, "\n".join(r for r in reasons if r)))


def failure_reasons(events: Sequence[dg.DagsterEvent]) -> str:
    """What the failed steps said: the `Failure` descriptions (they name org, file and reason,
    never record contents), else Dagster's own message."""
    reasons = []
    for event in events:
        error = event.step_failure_data
        user = error.user_failure_data if error else None
        reasons.append(user.description if user and user.description else event.message)
    return "\n".join(r for r in reasons if r)
