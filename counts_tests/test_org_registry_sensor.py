"""`org_registry_sensor` keeps the `orgs` partitions in step with the organization files."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import dagster as dg
import pytest

from counts_assets.definitions import build_defs
from counts_assets.defs.organizations.sensors import org_registry_sensor, periods_before_share_from
from counts_assets.defs.shared.records import latest_records, metadata_of
from counts_assets.defs.shared.resources import OrgRegistry
from counts_assets.defs.shared.runs import RANGE_END_TAG, RANGE_START_TAG
from counts_tests.golden_store import write_org_files
from counts_tests.platform import platform_on


def _tick(instance, orgs_dir):
    """One evaluation as the daemon runs it: the cursor kept, the results applied."""
    context = dg.build_sensor_context(
        instance=instance,
        cursor=CURSORS.get(str(orgs_dir)),
        resources={"org_registry": OrgRegistry(orgs_dir=str(orgs_dir), first_date="2025-01-01")},
    )
    result = org_registry_sensor(context)
    CURSORS[str(orgs_dir)] = context.cursor
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
    return result


CURSORS: dict[str, str | None] = {}


def _observed(instance) -> list[dict]:
    records = instance.fetch_observations(dg.AssetKey("organization_files"), limit=10).records
    return [{k: v.value for k, v in r.asset_observation.metadata.items()} for r in records]


def test_new_files_add_partitions_and_removed_files_keep_history(tmp_path):
    orgs_dir = write_org_files(tmp_path / "orgs")
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        first = _tick(instance, orgs_dir)
        assert isinstance(first, dg.SensorResult)
        assert instance.get_dynamic_partitions("orgs") == ["otherorg", "testorg"]
        assert isinstance(_tick(instance, orgs_dir), dg.SkipReason)

        new = (orgs_dir / "otherorg.yaml").read_text().replace("otherorg", "neworg")
        (orgs_dir / "neworg.yaml").write_text(new)
        (orgs_dir / "broken.yaml").write_text("id: broken\n")
        (orgs_dir / "testorg.yaml").unlink()
        _tick(instance, orgs_dir)
        assert instance.get_dynamic_partitions("orgs") == ["otherorg", "testorg", "neworg"]

        # The UI shows each change of the registry once (broken.yaml lacks 5 fields), newest first.
        observed = _observed(instance)
        assert [(o["registered"], o["rejected"]) for o in observed] == [(2, 5), (2, 0)]
        assert "| broken.yaml |" in observed[0]["rejected_files"]
        assert (
            "| neworg | Other 2-1-1 | in force since 2026-02-20 (letter LTR-TEST-2) |"
            in (observed[0]["organizations"])
        )
        assert isinstance(_tick(instance, orgs_dir), dg.SkipReason)  # nothing new to show


def _trail(instance, org_id: str) -> list[tuple]:
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("organization_permission"), asset_partitions=[org_id]
        ),
        limit=10,
        ascending=True,
    ).records
    return [
        tuple(r.asset_observation.metadata[k].value for k in ("change", "document", "revoked_on"))
        for r in records
    ]


def test_every_change_of_a_permission_letter_is_kept_in_its_audit_trail(tmp_path):
    orgs_dir = write_org_files(tmp_path / "orgs")
    path = orgs_dir / "otherorg.yaml"
    signed = path.read_text()
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        _tick(instance, orgs_dir)
        _tick(instance, orgs_dir)  # nothing changed: nothing recorded
        path.write_text(signed.replace("LTR-TEST-2", "LTR-TEST-2b"))
        _tick(instance, orgs_dir)
        path.write_text(
            signed.replace(
                "  document: LTR-TEST-2", "  document: LTR-TEST-2b\n  revoked_on: 2027-01-31"
            )
        )
        _tick(instance, orgs_dir)
        path.write_text(signed.split("permission:")[0])
        _tick(instance, orgs_dir)
        assert _trail(instance, "otherorg") == [
            ("first seen", "LTR-TEST-2", "-"),
            ("changed", "LTR-TEST-2b", "-"),
            ("changed", "LTR-TEST-2b", "2027-01-31"),
            ("letter removed", "-", "-"),
        ]
        assert [t[0] for t in _trail(instance, "testorg")] == ["first seen"]


def _registry_tick(platform, cursor=None) -> tuple[dg.SensorResult | dg.SkipReason, str | None]:
    context = dg.build_sensor_context(
        instance=platform.instance,
        cursor=cursor,
        resources={"org_registry": platform.resources["org_registry"]},
    )
    result = org_registry_sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests:
            platform.instance.add_dynamic_partitions(
                request.partitions_def_name, request.partition_keys
            )
    return result, context.cursor


def _requested(result) -> list[tuple[str, str, str]]:
    if not isinstance(result, dg.SensorResult):
        return []
    return sorted(
        (r.job_name, r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in result.run_requests
    )


def test_periods_before_share_from_are_recorded_once_so_only_real_gaps_look_missing(tmp_path):
    with platform_on(tmp_path, registered=()) as platform:
        platform.resources["org_registry"] = OrgRegistry(
            orgs_dir=str(platform.orgs_dir), first_date="2026-02-01"
        )
        platform.defs = build_defs(platform.resources)
        result, cursor = _registry_tick(platform)
        # testorg shares from 2026-03-07, otherorg from 2026-03-01: one run per cadence each.
        assert _requested(result) == [
            ("daily_export_job", "2026-02-01|otherorg", "2026-02-28|otherorg"),
            ("daily_export_job", "2026-02-01|testorg", "2026-03-06|testorg"),
            ("monthly_reconciliation_job", "2026-02-01|otherorg", "2026-02-01|otherorg"),
            ("monthly_reconciliation_job", "2026-02-01|testorg", "2026-02-01|testorg"),
        ]
        for request in result.run_requests:
            assert platform.execute(request).success
        assert not list(platform.export_dir.rglob("*.csv"))  # no file before share_from
        summaries = latest_records(
            platform.instance,
            dg.AssetKey("daily_summary_file"),
            [f"2026-02-{d:02d}|otherorg" for d in range(1, 29)]
            + [f"2026-02-{d:02d}|testorg" for d in range(1, 29)]
            + [f"2026-03-0{d}|testorg" for d in range(1, 7)],
        )
        assert len(summaries) == 28 + 34
        assert {metadata_of(r)["status"] for r in summaries.values()} == {"skipped"}
        for asset in ("daily_raw_contacts", "daily_mapped_demographics", "daily_needs_file"):
            assert len(platform.instance.get_materialized_partitions(dg.AssetKey(asset))) == 62
        assert isinstance(_registry_tick(platform, cursor)[0], dg.SkipReason)
        # A daemon with a lost cursor finds them recorded: nothing requested again.
        assert _requested(_registry_tick(platform)[0]) == []

        # share_from moved later: only the days not yet recorded are requested.
        path = platform.orgs_dir / "testorg.yaml"
        path.write_text(
            path.read_text().replace("share_from: 2026-03-07", "share_from: 2026-03-10")
        )
        result, cursor = _registry_tick(platform, cursor)
        assert _requested(result) == [
            ("daily_export_job", "2026-02-01|testorg", "2026-03-09|testorg")
        ]


@pytest.mark.parametrize(
    "share_from, spans",
    [
        ("2025-01-01", []),  # shares from the first partition: nothing before it
        ("2025-01-02", [(False, "2025-01-01", "2025-01-01")]),
        ("2025-03-01", [(False, "2025-01-01", "2025-02-28"), (True, "2025-01-01", "2025-02-01")]),
        ("2026-01-15", [(False, "2025-01-01", "2026-01-14"), (True, "2025-01-01", "2025-12-01")]),
    ],
)
def test_periods_before_share_from(share_from, spans):
    org = SimpleNamespace(share_from=dt.date.fromisoformat(share_from))
    found = periods_before_share_from(org, dt.date(2025, 1, 1))
    assert [(m, a.isoformat(), b.isoformat()) for m, a, b in found] == spans
