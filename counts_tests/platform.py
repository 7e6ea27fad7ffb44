"""The whole platform on temporary folders: golden store, org files, exports, an outbox or SFTP
target, and a real Dagster instance in a temporary DAGSTER_HOME."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from counts_assets.definitions import build_defs
from counts_assets.defs.delivery.resources import DeliveryResource
from counts_assets.defs.exports.resources import SourceReader
from counts_assets.defs.health.resources import AlertHook
from counts_assets.defs.shared.resources import ExportFiles, OrgRegistry
from counts_assets.defs.shared.runs import RANGE_END_TAG, RANGE_START_TAG
from counts_tests.dagster_processes import REPO, dagster_home
from counts_tests.golden_store import build_golden_store, write_org_files
from counts_tests.store import sqlite_url


@dataclass
class Platform:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    export_dir: Path
    orgs_dir: Path
    home: Path
    source_url: str
    resources: dict

    def set_delivery(self, **changes) -> None:
        """Changes delivery settings for the sensor and the runs alike."""
        current = self.resources["delivery"]
        self.resources["delivery"] = type(current)(**(current.model_dump() | changes))
        self.defs = build_defs(self.resources)

    def run(self, job_name: str, start: str, end: str | None = None) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(job_name)
        if end is None:
            return job.execute_in_process(
                instance=self.instance, partition_key=start, raise_on_error=False
            )
        return job.execute_in_process(
            instance=self.instance,
            tags={RANGE_START_TAG: start, RANGE_END_TAG: end},
            raise_on_error=False,
        )

    def first_attempt(self, job_name: str, partition: str, timeout: float = 120) -> list:
        """The step events of a run up to its step's first end: success, failure, or a request
        to be retried. A retry waits a minute or more before it starts; the run is left to it
        in the background rather than waited for."""
        run_id = str(uuid.uuid4())
        job = self.defs.resolve_job_def(job_name)
        run = threading.Thread(
            target=job.execute_in_process,
            kwargs={
                "instance": self.instance,
                "partition_key": partition,
                "raise_on_error": False,
                "run_id": run_id,
            },
            daemon=True,
        )
        run.start()
        ends = {"STEP_SUCCESS", "STEP_FAILURE", "STEP_UP_FOR_RETRY"}
        deadline = time.monotonic() + timeout
        while True:
            events = [e.dagster_event for e in self.instance.all_logs(run_id) if e.is_dagster_event]
            if any(e.event_type_value in ends for e in events) or not run.is_alive():
                break
            assert time.monotonic() < deadline, f"{job_name} did not end its step in {timeout} s"
            time.sleep(0.1)
        if not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in events):
            run.join(timeout)
        return events

    def execute(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """Runs a sensor's RunRequest in process, as the daemon would launch it."""
        job = self.defs.resolve_job_def(request.job_name)
        # The daemon tags a sensor's run with its request's run key.
        keyed = {"dagster/run_key": request.run_key} if request.run_key else {}
        return job.execute_in_process(
            instance=self.instance,
            partition_key=request.partition_key,
            asset_selection=list(request.asset_selection) if request.asset_selection else None,
            run_config=request.run_config,
            tags=request.tags | keyed,
            raise_on_error=False,
        )


@contextmanager
def platform_on(
    tmp_path: Path,
    delivery: DeliveryResource | None = None,
    registered: tuple[str, ...] = ("testorg", "otherorg"),
    repository_instance: bool = False,
):
    url = sqlite_url(tmp_path)
    build_golden_store(url)
    orgs_dir = write_org_files(tmp_path / "orgs")
    export_dir = tmp_path / "exports"
    resources = {
        "org_registry": OrgRegistry(orgs_dir=str(orgs_dir), first_date="2025-01-01"),
        "source": SourceReader(url=url),
        "export_files": ExportFiles(export_dir=str(export_dir)),
        "delivery": delivery or DeliveryResource(url=f"file://{tmp_path / 'outbox'}"),
        "alerts": AlertHook(url=f"file://{tmp_path / 'alerts.jsonl'}"),
    }
    (tmp_path / "outbox").mkdir()
    home = tmp_path / "dagster_home"
    home.mkdir()
    with _instance(home, repository_instance) as instance:
        instance.add_dynamic_partitions("orgs", list(registered))
        yield Platform(build_defs(resources), instance, export_dir, orgs_dir, home, url, resources)


@contextmanager
def _instance(home: Path, repository_instance: bool):
    """Dagster's test instance, or the one the repository's dagster.yaml configures."""
    if not repository_instance:
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            yield instance
        return
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with dagster_home(home), dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance
