"""`org_registry_sensor` keeps the `orgs` partitions in step with the organization files."""

from __future__ import annotations

import dagster as dg

from counts_assets.resources import OrgRegistry
from counts_assets.sensors.org_registry import org_registry_sensor
from counts_tests.golden_store import write_org_files


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
