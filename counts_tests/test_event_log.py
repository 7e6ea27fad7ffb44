"""A ranged run hands its records to the instance in batches; the embedded instance's event
log (counts_assets/defs/shared/dagster_internals.py) writes each batch in one transaction per
database, and what it writes reads back exactly as Dagster's own one-by-one writes would: every
partition, its own record, the asset's newest record."""

from __future__ import annotations

import dagster as dg

from counts_assets.defs.shared.dagster_internals import BatchedSqliteEventLogStorage
from counts_assets.defs.shared.records import latest_ids, latest_records
from counts_tests.platform import platform_on

RANGE = ("2026-03-05|testorg", "2026-03-10|otherorg")
OTHER_THREE = ("daily_raw_contacts", "daily_mapped_demographics", "daily_needs_file")


def _recorded(platform) -> dict:
    instance = platform.instance
    keys = [f"2026-03-{d:02d}|{org}" for d in range(5, 11) for org in ("testorg", "otherorg")]
    out = {}
    for asset in (*OTHER_THREE, "daily_summary_file"):
        key = dg.AssetKey(asset)
        records = latest_records(instance, key, keys)
        out[asset] = {
            "partitions": sorted(instance.get_materialized_partitions(key)),
            "latest": sorted(records),
            "by_partition": sorted(latest_ids(instance, key)),
            "has_last_event": instance.get_latest_materialization_event(key) is not None,
            "metadata": sorted(
                (p, sorted(r.asset_materialization.metadata)) for p, r in records.items()
            ),
        }
    return out


def test_batched_writes_read_back_like_dagsters_own(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    (tmp_path / "batched").mkdir()
    (tmp_path / "one_by_one").mkdir()
    with platform_on(tmp_path / "batched", repository_instance=True) as platform:
        assert isinstance(platform.instance.event_log_storage, BatchedSqliteEventLogStorage)
        assert platform.run("daily_export_job", *RANGE).success
        batched = _recorded(platform)
    with platform_on(tmp_path / "one_by_one") as platform:
        assert type(platform.instance.event_log_storage) is not BatchedSqliteEventLogStorage
        assert platform.run("daily_export_job", *RANGE).success
        one_by_one = _recorded(platform)
    assert batched == one_by_one
    for asset in OTHER_THREE:
        assert len(batched[asset]["partitions"]) == 12  # 6 days x 2 orgs, skipped days too


def test_a_ranged_runs_records_reach_the_event_log_in_batches(tmp_path, monkeypatch):
    """3 assets x 12 partitions arrive as one batch per asset; the summary file's records as one
    batch of the periods without a file, then one per organization's pairs (the run's planned
    events arrive as one more batch, of another kind, which Dagster's writer stores)."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    with platform_on(tmp_path, repository_instance=True) as platform:
        storage = platform.instance.event_log_storage
        batches = []
        store = storage.store_event_batch
        monkeypatch.setattr(
            storage,
            "store_event_batch",
            lambda events: (
                batches.append(
                    (
                        events[0].dagster_event_type.value,
                        {e.dagster_event.asset_key.to_user_string() for e in events},
                        len(events),
                    )
                )
                or store(events)
            ),
        )
        assert platform.run("daily_export_job", *RANGE).success
    assert [b[1:] for b in batches if b[0] == "ASSET_MATERIALIZATION"] == [
        ({"daily_raw_contacts"}, 12),
        ({"daily_mapped_demographics"}, 12),
        ({"daily_summary_file"}, 2),  # testorg's 2 days before share_from: no file
        ({"daily_summary_file"}, 6),  # otherorg's 6 pairs, published together
        ({"daily_summary_file"}, 4),  # testorg's 4
        ({"daily_needs_file"}, 12),
    ]
