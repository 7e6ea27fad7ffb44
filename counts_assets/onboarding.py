"""Checks an organization file against the live store before go-live.

    python -m counts_assets.onboarding organizations/neworg.yaml [--days 90]

Reports forms and questions the store does not have, answers of the last N days that the value
maps do not cover, passed-through questions with so many distinct answers that they look like
free text (their values would be sent as typed, so they are counted, never printed), and how
many records would be shared per month. Exits 1 when anything needs fixing."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd

from counts_assets.core import settings
from counts_assets.core.files.periods import plan_targets, targets_frame
from counts_assets.core.orgs.models import Organization, normalize_text
from counts_assets.core.orgs.registry import check_org_file, folders_overlap, load_registry
from counts_assets.core.rules.inclusion import select_included, with_call_dates
from counts_assets.core.source.reader import read_source, source_engine
from counts_assets.core.source.tables import SourceTables
from counts_assets.core.source.values import clean_source
from counts_assets.core.text import as_text, matching_form, shown
from counts_assets.defs.health.view import delivered_before_share_from

FREE_TEXT_DISTINCT_ANSWERS = 25


@dataclass
class OnboardingReport:
    problems: list[str] = field(default_factory=list)
    records_per_month: dict[str, int] = field(default_factory=dict)


def check_org(
    org: Organization, tables: SourceTables, today: dt.date, days: int
) -> OnboardingReport:
    report = OnboardingReport()
    tables, left_out, _ = clean_source(tables)
    if not left_out.empty:
        report.problems.append(
            f"{len(left_out)} records in the last {days} days would be left out: a value that "
            "is not readable text, or no record number"
        )
    records = tables.records[as_text(tables.records["org_id"]) == org.id]
    seen_forms = set(as_text(records["contact_form"]).dropna())
    for form in org.contact_forms:
        if form not in seen_forms:
            report.problems.append(
                f"contact_forms: no record on form {form!r} in the last {days} days "
                f"(forms seen: {', '.join(shown(f) for f in sorted(seen_forms)) or 'none'})"
            )

    answers = tables.answers[as_text(tables.answers["org_id"]) == org.id]
    keyed = pd.DataFrame(
        {
            "question": matching_form(answers["question"]),
            "answer": as_text(answers["answer"]).fillna("").map(str.strip),
        }
    )
    keyed = keyed[keyed["answer"] != ""]
    seen_questions = set(keyed["question"])
    questions = [
        (f"interaction_filter.any_of[{i}]", c.question)
        for i, c in enumerate(org.interaction_filter.any_of or [])
    ] + [(f"demographics.{slot}", spec.question) for slot, spec in org.demographics.items()]
    for where, question in questions:
        if normalize_text(question) not in seen_questions:
            report.problems.append(f"{where}: question {question!r} has no answer in the store")

    for slot, spec in org.demographics.items():
        given = keyed[keyed["question"] == normalize_text(spec.question)]["answer"]
        mapping = spec.normalized_values()
        if mapping is None:
            distinct = given.nunique()
            if distinct > FREE_TEXT_DISTINCT_ANSWERS:
                report.problems.append(
                    f"demographics.{slot}: {spec.question!r} is passed through but has "
                    f"{distinct} distinct answers: it looks like free text, which could send "
                    "personal data; give it a value map"
                )
            continue
        uncovered = given[~given.map(str.casefold).isin(mapping)].value_counts()
        for answer, count in uncovered.items():
            report.problems.append(
                f"demographics.{slot}: answer {shown(answer)!r} ({count} times) is not in the "
                "value map and would be sent empty"
            )

    start = max(org.share_from, today - dt.timedelta(days=days))
    months = sorted(
        {(start + dt.timedelta(days=d)).replace(day=1) for d in range((today - start).days + 1)}
    )
    targets, _ = plan_targets([(org.id, m) for m in months], {org.id: org}, monthly=True)
    dated, _ = with_call_dates(records, {org.id: org})
    included = select_included(dated, answers, {org.id: org}, targets_frame(targets), monthly=True)
    counts = included.groupby("period").size()
    report.records_per_month = {t.period: int(counts.get(t.period, 0)) for t in targets}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("org_file", type=Path)
    parser.add_argument("--days", type=int, default=90, help="how far back to look")
    args = parser.parse_args(argv)

    org, errors = check_org_file(args.org_file, settings.current().first_date)
    if org is None:
        print(f"{args.org_file}: not a valid organization file:")
        for error in errors:
            print(f"  {error}")
        return 1
    registry = load_registry(settings.current().orgs_dir, settings.current().first_date)
    clashes = [e for e in registry.errors if e.field == "id" and org.id in e.reason]
    clashes += [
        f"{args.org_file}: delivery.remote_dir: {org.remote_dir!r} overlaps {other_id}'s "
        f"delivery folder {other.remote_dir!r}: each organization needs its own"
        for other_id, other in registry.orgs.items()
        if other_id != org.id and folders_overlap(org.remote_dir, other.remote_dir)
    ]
    in_folder = args.org_file.resolve().parent == settings.current().orgs_dir.resolve()
    if org.id in registry.orgs and not in_folder:
        clashes.append(f"{args.org_file}: id: {org.id!r} is already registered by another file")
    if args.org_file.suffix != ".yaml":
        clashes.append(f"{args.org_file}: the registry reads only files named <id>.yaml")
    today = dt.datetime.now(dt.UTC).date()
    url = settings.current().source_url
    tables = read_source(source_engine(url), [org], today - dt.timedelta(days=args.days), today)
    report = check_org(org, tables, today, args.days)
    report.problems = [str(e) for e in clashes] + report.problems
    print(f"{org.id} ({org.name}), {org.timezone}, sharing from {org.share_from}")
    print(f"permission: {org.permission_summary(dt.datetime.now(dt.UTC))}")
    print(f"records read for the last {args.days} days: {len(tables.records)}")
    start = today - dt.timedelta(days=args.days)
    # Months seen only in part: the current one, where the look-back or share_from starts.
    partial = {f"{today:%Y-%m}"} | {f"{d:%Y-%m}" for d in (start, org.share_from) if d.day > 1}
    for month, count in report.records_per_month.items():
        part = " (part of the month)" if str(month) in partial else ""
        print(f"  would share {count} records for {month}{part}")
    for problem in report.problems:
        print(f"PROBLEM {problem}")
    early = already_delivered_before_share_from(org)
    if early:
        print(
            f"WARNING {len(early)} pairs already delivered fall before share_from "
            f"{org.share_from} ({', '.join(early[:3])}{' ...' if len(early) > 3 else ''}): "
            "211 Counts still holds them; moving share_from later does not remove them"
        )
    count = len(report.problems)
    print(
        verdict(org, dt.datetime.now(dt.UTC), len(early))
        if not count
        else f"{count} problem{'s' if count > 1 else ''}"
    )
    return 1 if report.problems else 0


def already_delivered_before_share_from(org: Organization) -> list[str]:
    """From the Dagster instance in $DAGSTER_HOME, when there is one: the org's pairs already
    delivered for periods before its share_from."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or not Path(home).is_dir():
        return []
    with dg.DagsterInstance.get() as instance:
        return delivered_before_share_from(instance, org)


def verdict(org: Organization, now: dt.datetime, delivered_before: int = 0) -> str:
    """The last line for a file without problems: "ready" only with what still holds it back."""
    buts = []
    if delivered_before:
        buts.append(f"{delivered_before} pairs already delivered fall before share_from")
    blocked = org.delivery_blocked(now)
    if blocked:
        buts.append(f"nothing will be delivered until a permission is in force ({blocked})")
    today = now.astimezone(org.zone).date()
    if org.share_from > today:
        buts.append(f"sharing starts on {org.share_from} (share_from is in the future)")
    return "ready to go live" + (", but " + "; and ".join(buts) if buts else "")


if __name__ == "__main__":
    sys.exit(main())
