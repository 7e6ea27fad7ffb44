"""Proof of delivery (§6): `delivery_audit` reads back what the real SFTP server holds and names
what diverges from the ledger, per organization: a removed pair, an edited file, a pair made
mixed by hand, an older version put back. Report-only by default; with repair on, each is
delivered again and the next audit is clean."""

from __future__ import annotations

import sqlalchemy as sa

from counts_tests.delivery_helpers import (
    add_record,
    deliver,
    local_files,
    mixed_pairs,
    remote_files,
    tick,
)


def add_record_on(platform, crn: str, started_at: str) -> None:
    with sa.create_engine(platform.source_url).begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO contact_records (org_id, call_report_num, contact_form, "
                "report_version, started_at, status) VALUES ('testorg', :crn, '211 Contact', "
                "'v2', :at, 'finalized')"
            ),
            {"crn": crn, "at": started_at},
        )
        connection.execute(
            sa.text("INSERT INTO contact_answers VALUES ('testorg', :crn, 'Line Called', '2-1-1')"),
            {"crn": crn},
        )


def audit(platform) -> tuple[dict, object]:
    result = platform.run("delivery_audit_job", None)
    assert result.success
    (record,) = [
        m
        for m in result.asset_materializations_for_node("delivery_audit")
        if m.asset_key.path == ["delivery_audit"]
    ]
    (check,) = result.get_asset_check_evaluations()
    return {k: v.value for k, v in record.metadata.items()}, check


def file_of(base, day: str, kind: str):
    return base / "testorg" / f"testorg_daily_2026-03-{day}_{kind}.csv"


def test_the_audit_names_each_divergence_and_repair_sends_it_again(sftp_platform):
    platform, base = sftp_platform
    platform.set_delivery(audit_days=400)  # the golden store's days are in March 2026
    assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-10|testorg").success
    deliver(platform, tick(platform))
    metadata, check = audit(platform)
    assert metadata["findings"] == 0 and check.passed
    assert "| testorg | 4 | 4 | 0 | 0 | 0 | 0 | 0 | 2026-03-10 |" in metadata["per_organization"]

    older = {
        day: {k: file_of(base, day, k).read_bytes() for k in ("summary", "needs")}
        for day in ("08", "10")
    }
    add_record(platform, "2101")  # a late record on 03-08
    add_record_on(platform, "2102", "2026-03-10 18:00:00")
    assert platform.run("daily_export_job", "2026-03-07|testorg", "2026-03-10|testorg").success
    deliver(platform, tick(platform))
    assert remote_files(base) == local_files(platform)

    file_of(base, "07", "summary").unlink()  # removed
    file_of(base, "07", "needs").unlink()
    file_of(base, "08", "summary").write_bytes(older["08"]["summary"])  # mixed
    with open(file_of(base, "09", "summary"), "ab") as edited:  # foreign bytes
        edited.write(b"2026-03-09,1,0,v9\n")
    for kind in ("summary", "needs"):  # an older version put back
        file_of(base, "10", kind).write_bytes(older["10"][kind])

    metadata, check = audit(platform)
    assert metadata["findings"] == 4 and not check.passed
    assert "| testorg | 4 | 0 | 0 | 1 | 1 | 1 | 1 | - |" in metadata["per_organization"]
    for period, finding in (
        ("2026-03-07", "missing"),
        ("2026-03-08", "mixed"),
        ("2026-03-09", "foreign"),
        ("2026-03-10", "stale"),
    ):
        assert f"| testorg | daily | {period} | {finding} |" in metadata["divergent_pairs"]
    assert metadata["repaired"] == []
    assert tick(platform) == []  # report-only: nothing is sent again

    platform.set_delivery(audit_repair=True)
    metadata, _ = audit(platform)
    assert len(metadata["repaired"]) == 4
    deliver(platform, tick(platform))
    assert remote_files(base) == local_files(platform) and mixed_pairs(base) == 0
    metadata, check = audit(platform)
    assert metadata["findings"] == 0 and check.passed
    assert tick(platform) == []
