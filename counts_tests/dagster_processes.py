"""Starts the real `dagster-webserver` and `dagster-daemon` on a temporary DAGSTER_HOME, talks
to the webserver's GraphQL API as the UI does, and stops every process it started by pid
(process group, so the runs they launched go too)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

from counts_tests.sftp_server import free_port

REPO = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"


def _tool(name: str) -> str:
    local = BIN / name
    return str(local) if local.exists() else (shutil.which(name) or name)


class Dagster:
    def __init__(self, home: Path, env: Mapping[str, str], instance: Path) -> None:
        self.home = home
        self.instance = instance
        # as scripts/ui.sh starts them
        self.env = {
            **os.environ,
            **env,
            "DAGSTER_HOME": str(home),
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        }
        self.port = free_port()
        self.processes: list[subprocess.Popen] = []
        self.workspace = home / "workspace.yaml"

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.instance, self.home / "dagster.yaml")
        self.workspace.write_text(
            "load_from:\n  - python_module:\n      module_name: counts_assets.definitions\n"
            "      location_name: counts_assets\n"
            f"      attribute: defs\n      working_directory: {REPO}\n"
        )
        # As scripts/ui.sh does: the storage is created once, before the two processes start.
        # Left to them, both create a fresh SQLite instance at once and can stamp its schema
        # version twice, and every later start fails ("more than one head present").
        subprocess.run(
            [_tool("python"), "-c", "import dagster as dg; dg.DagsterInstance.get().dispose()"],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
        )
        for name, args in (
            ("daemon", [_tool("dagster-daemon"), "run", "-w", str(self.workspace)]),
            (
                "webserver",
                [
                    _tool("dagster-webserver"),
                    "-w",
                    str(self.workspace),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
            ),
        ):
            log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
            self.processes.append(
                subprocess.Popen(
                    args,
                    cwd=REPO,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
        self.wait_for(lambda: self._server_info() is not None, 120, "webserver up")

    def stop(self) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes = []

    def _server_info(self) -> dict | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/server_info", timeout=2
            ) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def launch_backfill(self, asset_paths: list[str], partition_names: list[str]) -> str:
        data = self.graphql(
            """
            mutation Launch($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename
                ... on LaunchBackfillSuccess { backfillId }
                ... on PythonError { message }
              }
            }
            """,
            {
                "params": {
                    "assetSelection": [{"path": [p]} for p in asset_paths],
                    "partitionNames": partition_names,
                }
            },
        )
        result = data["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {result}")
        return result["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        data = self.graphql(
            """
            query Status($id: String!) {
              partitionBackfillOrError(backfillId: $id) {
                __typename
                ... on PartitionBackfill { status }
              }
            }
            """,
            {"id": backfill_id},
        )
        return data["partitionBackfillOrError"]["status"]

    def wait_for_backfill(self, backfill_id: str, seconds: float, every: float = 1.0) -> str:
        """The backfill's final status, once it is no longer requested or in progress."""
        return self.wait_for(
            lambda: (
                (s := self.backfill_status(backfill_id)) not in ("REQUESTED", "IN_PROGRESS") and s
            ),
            seconds,
            "the backfill to finish",
            every,
        )

    def logs(self) -> str:
        return "\n".join(
            (self.home / f"{n}.log").read_text(errors="replace")[-3000:]
            for n in ("daemon", "webserver")
        )

    def wait_for(self, condition, seconds: float, what: str, every: float = 1.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"a dagster process exited while waiting for {what}:\n" + self.logs()
                    )
            time.sleep(every)
        raise TimeoutError(f"timed out after {seconds}s waiting for {what}:\n{self.logs()}")


@contextmanager
def dagster_home(home: Path):
    """DAGSTER_HOME set for this process too, as for the processes: the test reads the same
    instance (its event log finds its files through it)."""
    before = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        yield
    finally:
        if before is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = before


@contextmanager
def running_dagster(home: Path, env: Mapping[str, str], instance: Path = REPO / "dagster.yaml"):
    """`instance`: the dagster.yaml to start with (deploy/dagster.postgres.yaml for PostgreSQL)."""
    dagster = Dagster(home, env, instance)
    try:
        with dagster_home(home):
            dagster.start()
            yield dagster
    finally:
        dagster.stop()
