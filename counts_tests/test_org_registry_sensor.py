"""`org_registry_sensor` keeps the `orgs` partitions in step with the organization files."""

from __future__ import annotations

import dagster as dg

from counts_assets.resources import OrgRegistry
from counts_assets.sensors.org_registry import org_registry_sensor
from counts_tests.golden_store import write_org_files


def _tick(instance, orgs_dir):
    context = dg.build_sensor_context(
        instance=instance,
        resources={"org_registry": OrgRegistry(orgs_dir=str(orgs_dir), first_date="2025-01-01")},
    )
    result = org_registry_sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return result


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
