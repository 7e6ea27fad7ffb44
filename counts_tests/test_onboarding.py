"""Onboarding: the go-live check against the store, and a new file going live end to end."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from counts_assets.core.source.reader import read_source
from counts_assets.defs.organizations.sensors import org_registry_sensor
from counts_assets.onboarding import check_org, main
from counts_tests.factories import make_org
from counts_tests.platform import platform_on
from counts_tests.store import record, sqlite_url, write_store

TODAY = dt.date(2026, 11, 25)


def _store(tmp_path):
    records = [
        record(f"r{i}", f"2026-{10 + i % 2}-{10 + i % 15:02d} 18:00:00", org="neworg")
        for i in range(40)
    ]
    answers = [
        ("neworg", f"r{i}", "Caller Age", ["Under 18", "18 to 24", "Unknown"][i % 3])
        for i in range(40)
    ]
    answers += [("neworg", f"r{i}", "Notes", f"free text number {i}") for i in range(40)]
    url = sqlite_url(tmp_path)
    return write_store(url, records, answers), url


def test_go_live_check_reports_every_gap(tmp_path):
    engine, _ = _store(tmp_path)
    org = make_org(
        id="neworg",
        share_from="2026-10-01",
        contact_forms=["211 Contact", "211 Chat"],
        interaction_filter={"any_of": [{"question": "Line Called", "answers": ["2-1-1"]}]},
        demographics={
            "age": {"question": "caller age", "values": {"Under 18": "0-17", "18 to 24": "18-24"}},
            "source": {"question": "Notes"},
        },
    )
    tables = read_source(engine, [org], TODAY - dt.timedelta(days=90), TODAY)
    report = check_org(org, tables, TODAY, 90)
    assert report.problems == [
        "contact_forms: no record on form '211 Chat' in the last 90 days (forms seen: 211 Contact)",
        "interaction_filter.any_of[0]: question 'Line Called' has no answer in the store",
        "demographics.age: answer 'Unknown' (13 times) is not in the value map and would be "
        "sent empty",
        "demographics.source: 'Notes' is passed through but has 40 distinct answers: it looks "
        "like free text, which could send personal data; give it a value map",
    ]
    assert not any("free text number" in p for p in report.problems)
    assert report.records_per_month == {"2026-10": 0, "2026-11": 0}  # no 2-1-1 line answers


def test_go_live_check_counts_records_per_month(tmp_path):
    engine, _ = _store(tmp_path)
    org = make_org(id="neworg", share_from="2026-10-01")
    report = check_org(org, read_source(engine, [org], dt.date(2026, 8, 27), TODAY), TODAY, 90)
    assert report.problems == []
    assert report.records_per_month == {"2026-10": 20, "2026-11": 20}


def test_command_exit_codes(tmp_path, monkeypatch, capsys):
    _, url = _store(tmp_path)
    monkeypatch.setenv("COUNTS_SOURCE_URL", url)
    monkeypatch.setenv("COUNTS_ORGS_DIR", str(tmp_path))
    good = tmp_path / "neworg.yaml"
    good.write_text(
        "id: neworg\nname: New\ntimezone: America/Chicago\nshare_from: 2026-10-01\n"
        "contact_forms: [211 Contact]\ninteraction_filter:\n  all_211: true\n"
    )
    assert main([str(good), "--days", "400"]) == 0
    # No permission block: "ready" says what still holds delivery back.
    assert capsys.readouterr().out.splitlines()[-1] == (
        "ready to go live, but nothing will be delivered until a permission is in force "
        "(no permission: the organization file has no signed permission letter)"
    )
    future = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)
    good.write_text(
        good.read_text().replace("share_from: 2026-10-01", f"share_from: {future}")
        + "permission:\n  signed_on: 2026-09-01\n  document: LTR-1\n"
    )
    assert main([str(good), "--days", "400"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"ready to go live, but sharing starts on {future} (share_from is in the future)"
    )
    bad = tmp_path / "bad.yml"
    bad.write_text("id: neworg\n")
    assert main([str(bad)]) == 1
    assert "timezone" in capsys.readouterr().out


def test_a_new_file_goes_live_without_a_code_change(tmp_path):
    with platform_on(tmp_path, registered=("testorg",)) as platform:
        context = dg.build_sensor_context(instance=platform.instance, resources=platform.resources)
        result = org_registry_sensor(context)
        for request in result.dynamic_partitions_requests:
            platform.instance.add_dynamic_partitions(
                request.partitions_def_name, request.partition_keys
            )
        assert platform.instance.get_dynamic_partitions("orgs") == ["testorg", "otherorg"]
        # Backfill from its share_from (2026-03-01).
        assert platform.run(
            "daily_export_job", "2026-03-01|otherorg", "2026-03-10|otherorg"
        ).success
        made = sorted(p.name for p in (platform.export_dir / "otherorg" / "daily").iterdir())
        assert len(made) == 20 and made[0] == "otherorg_daily_2026-03-01_needs.csv"
