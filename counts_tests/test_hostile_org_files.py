"""Hostile and careless organization files: each is reported with its path, its field or line
and a reason in the project's words; none stops the other organizations, whose files are still
made byte for byte; and a canary planted in the bad file never reaches the files, the outbox or
the Dagster instance."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import dagster as dg
import pytest

from counts_assets.onboarding import main as onboarding
from counts_assets.orgs.registry import load_registry
from counts_assets.resources import OrgRegistry
from counts_assets.sensors.delivery import delivery_sensor
from counts_assets.sensors.org_registry import org_registry_sensor
from counts_tests.golden_store import GOLDEN_DIR, OTHER_ORG_YAML
from counts_tests.platform import platform_on

FIRST = dt.date(2025, 1, 1)
CANARY = "CANARY-ORG-FILE-555-0147"
BOMB = "\n".join(
    ["a: &a [CANARY-ORG-FILE-555-0147, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
)


def bad_org(text: str) -> str:
    return OTHER_ORG_YAML.replace("otherorg", "badorg") + text


def write(path, content) -> None:
    path.write_text(content, encoding="utf-8")


CASES = {
    "folder named like a file": (
        lambda d: (d / "folder.yaml").mkdir(),
        "folder.yaml",
        "(file)",
        "a folder, not an organization file",
    ),
    "broken link": (
        lambda d: os.symlink(d / "nowhere", d / "dangling.yaml"),
        "dangling.yaml",
        "(file)",
        "a broken link",
    ),
    ".yml name": (
        lambda d: write(d / "newco211.yml", bad_org("")),
        "newco211.yml",
        "(file)",
        "name it <id>.yaml",
    ),
    "alias bomb": (lambda d: write(d / "bomb.yaml", BOMB), "bomb.yaml", "line 1", "anchor"),
    "alias": (
        lambda d: write(d / "alias.yaml", bad_org("x: &n CANARY-ORG-FILE-555-0147\ny: *n\n")),
        "alias.yaml",
        "line",
        "anchor",
    ),
    "tag": (
        lambda d: write(d / "tag.yaml", bad_org("name2: !!python/object CANARY-ORG-FILE\n")),
        "tag.yaml",
        "line 11",
        "a YAML tag",
    ),
    "10 MB file": (
        lambda d: write(d / "huge.yaml", bad_org(f"# {CANARY}" + "x" * 10_000_000 + "\n")),
        "huge.yaml",
        "(file)",
        "at most 64 KiB",
    ),
    "YAML syntax error": (
        lambda d: write(d / "syntax.yaml", bad_org("demographics: [unclosed\n")),
        "syntax.yaml",
        "line",
        "not valid YAML",
    ),
    "duplicate key": (
        lambda d: write(d / "dup.yaml", bad_org("name: again\n")),
        "dup.yaml",
        "line 11",
        "duplicate key 'name'",
    ),
    "all_211: yes": (
        lambda d: write(d / "yes.yaml", bad_org("").replace("all_211: true", "all_211: yes")),
        "yes.yaml",
        "interaction_filter.all_211",
        "only `true` is allowed",
    ),
    "unknown key": (
        lambda d: write(d / "unknown.yaml", bad_org(f"notes: {CANARY}\n")),
        "unknown.yaml",
        "notes",
        "unknown key",
    ),
    "not UTF-8": (
        lambda d: (d / "latin.yaml").write_bytes(bad_org("").encode() + b"name2: caf\xe9\n"),
        "latin.yaml",
        "line 11",
        "not UTF-8 text",
    ),
}


@pytest.fixture
def time_limit():
    """Fails the test after 20 s instead of letting a bad parser run for minutes."""

    def expired(signum, frame):
        raise TimeoutError("the test ran past its 20 s time limit")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_file_is_reported_and_stops_nothing_else(tmp_path, case, time_limit):
    make, name, where, reason = CASES[case]
    with platform_on(tmp_path) as platform:
        make(platform.orgs_dir)
        started = time.perf_counter()
        registry = load_registry(platform.orgs_dir, FIRST)
        assert time.perf_counter() - started < 2  # rejected before anything is expanded
        assert sorted(registry.orgs) == ["otherorg", "testorg"]
        (error,) = [e for e in registry.errors if e.path.endswith(name)]
        assert error.field.startswith(where) and reason in error.reason, error
        assert "pydantic" not in error.reason and "http" not in error.reason

        resources = {"org_registry": platform.resources["org_registry"]}
        context = dg.build_sensor_context(instance=platform.instance, resources=resources)
        result = org_registry_sensor(context)  # reports, never raises
        for event in result.asset_events:
            platform.instance.report_runless_asset_event(event)
        (shown,) = platform.instance.fetch_observations(
            dg.AssetKey("organization_files"), limit=1
        ).records
        metadata = {k: v.value for k, v in shown.asset_observation.metadata.items()}
        assert metadata["registered"] == 2 and metadata["rejected"] == 1
        assert f"| {name} | {error.field} |" in metadata["rejected_files"]
        context = dg.build_sensor_context(instance=platform.instance, resources=platform.resources)
        delivery_sensor(context)

        assert platform.run("daily_export_job", "2026-03-08|testorg").success
        made = platform.export_dir / "testorg" / "daily"
        for golden in GOLDEN_DIR.glob("testorg_daily_2026-03-08_*.csv"):
            assert (made / golden.name).read_bytes() == golden.read_bytes()
    leaked = [
        p
        for root in (platform.export_dir, platform.home)
        for p in root.rglob("*")
        if p.is_file() and CANARY.encode() in p.read_bytes()
    ]
    assert leaked == []


def test_the_onboarding_command_prints_the_same_reasons_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    write(path, bad_org("name: again\n"))
    assert onboarding([str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: line 11: not valid YAML" in out and "duplicate key 'name'" in out
    assert "Traceback" not in out

    unsigned = bad_org("").split("permission:")[0]
    write(path, unsigned.replace("share_from: 2026-03-01", "share_from: 2019-01-01"))
    assert onboarding([str(path)]) == 1
    out = capsys.readouterr().out
    assert "share_from" in out and "COUNTS_FIRST_DATE" in out


def test_rejections_are_logged_once_not_at_every_tick(tmp_path, capfd):
    orgs = tmp_path / "orgs"
    orgs.mkdir()
    write(orgs / "dup.yaml", bad_org("name: again\n"))
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        cursor = None
        logged = []
        for _ in range(3):
            context = dg.build_sensor_context(
                instance=instance,
                cursor=cursor,
                resources={
                    "org_registry": OrgRegistry(orgs_dir=str(orgs), first_date="2025-01-01")
                },
            )
            org_registry_sensor(context)
            cursor = context.cursor
            logged.append(capfd.readouterr().err.count("organization file rejected"))
        assert logged == [1, 0, 0]
