"""What an export run found, as the UI shows it: the asset checks of the four assets of a
cadence, and the run's log lines. Record numbers, codes and counts: never a value's text
beyond what the findings quote (cut, with control characters removed)."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from counts_assets.core.exports.run import RunOutcome
from counts_assets.defs.shared.cadence import Cadence
from counts_assets.defs.shared.metadata import markdown_table

CHECK_UNREADABLE = "source_values_readable"
CHECK_UNMAPPED = "demographic_answers_mapped"
CHECK_NEEDS = "taxonomy_codes_valid"
CHECK_ZIPS = "zip_codes_valid"
CHECK_SCHEMA = "files_pass_schema"
CHECK_INTACT = "published_bytes_intact"
CHECK_CLEAN = "source_values_clean"
NO_NUMBER = "(no usable number)"


def check_specs(cadence: Cadence) -> list[dg.AssetCheckSpec]:
    """The checks of a cadence's four assets."""
    return [
        dg.AssetCheckSpec(
            CHECK_UNREADABLE,
            asset=cadence.raw,
            description="Records left out, by organization and record number: an unreadable "
            "started_at or deleted, a value that is not readable text, no record number, or a "
            "number on two records of one period. A warning (docs/file-format.md).",
        ),
        dg.AssetCheckSpec(
            CHECK_CLEAN,
            asset=cadence.raw,
            description="Values read with control characters (removed before use), and values "
            "sent that start with = + - or @, which a spreadsheet would take for a formula "
            "(sent as they are): a finding for the organization's form, not an error.",
        ),
        dg.AssetCheckSpec(
            CHECK_UNMAPPED,
            asset=cadence.mapped,
            description="Answers to a question with a value map that the map does not cover: "
            "sent empty, counted per organization, period and distinct answer (cut to 40 "
            "characters). A warning.",
        ),
        dg.AssetCheckSpec(
            CHECK_NEEDS,
            asset=cadence.needs,
            description="Needs left out for a missing or invalid taxonomy code, or an "
            "unreadable unmet flag, by record number and code. A warning.",
        ),
        dg.AssetCheckSpec(
            CHECK_ZIPS,
            asset=cadence.needs,
            description="Zip codes that are not NNNNN, NNNNN-NNNN or NNNNNNNNN (sent empty), "
            "counted per file. A warning.",
        ),
        dg.AssetCheckSpec(
            CHECK_SCHEMA,
            asset=cadence.summary,
            blocking=True,
            description="The pandera gate every pair passes before it is published (header, "
            "Call Date window, counts, codes, zips, uniqueness, records per Call Date equal "
            "Total Calls). An error: a failing pair is not published and the previous one "
            "stays (docs/file-format.md).",
        ),
        dg.AssetCheckSpec(
            CHECK_INTACT,
            asset=cadence.summary,
            description="The pair on disk is the pair published: checked by every delivery run "
            "before sending; a failure names the path and the expected and found SHA-256.",
        ),
    ]


def _warning(cadence_key: dg.AssetKey, name: str, frame: pd.DataFrame, what: str):
    return dg.AssetCheckResult(
        asset_key=cadence_key,
        check_name=name,
        passed=frame.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"findings": len(frame), what: dg.MetadataValue.md(markdown_table(frame))},
    )


def check_results(cadence: Cadence, outcome: RunOutcome, failed: dict) -> Iterator:
    findings = outcome.findings
    unreadable = pd.concat(
        [
            findings.unreadable.assign(
                call_report_num=findings.unreadable["call_report_num"].fillna(NO_NUMBER)
            ),
            findings.duplicates.assign(
                column="call_report_num on "
                + findings.duplicates["rows"].astype(str)
                + " records read for "
                + findings.duplicates["period"].astype(str)
            )[["org_id", "call_report_num", "column"]],
        ],
        ignore_index=True,
    )
    yield _warning(cadence.raw, CHECK_UNREADABLE, unreadable, "records_left_out")
    clean = pd.concat(
        [
            findings.control_characters.assign(finding="values with control characters (removed)"),
            findings.formula_like.assign(
                finding="values starting with = + - @ in " + findings.formula_like["column"]
            ),
        ],
        ignore_index=True,
    ).reindex(columns=["org_id", "period", "finding", "values"])
    yield _warning(cadence.raw, CHECK_CLEAN, clean, "values")
    yield _warning(cadence.mapped, CHECK_UNMAPPED, findings.unmapped, "unmapped_answers")
    yield _warning(cadence.needs, CHECK_NEEDS, findings.invalid_needs, "needs_left_out")
    yield _warning(cadence.needs, CHECK_ZIPS, findings.invalid_zips, "invalid_zips_per_file")
    failures = pd.DataFrame(
        [(org, period, line) for (org, period), lines in failed.items() for line in lines],
        columns=["org_id", "period", "failure"],
    )
    published = sum(1 for f in outcome.files.values() if f.published)
    yield dg.AssetCheckResult(
        asset_key=cadence.summary,
        check_name=CHECK_INTACT,
        passed=True,
        metadata={"pairs_published": published},
    )
    yield dg.AssetCheckResult(
        asset_key=cadence.summary,
        check_name=CHECK_SCHEMA,
        passed=failures.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failed_files": len(failures),
            "failures": dg.MetadataValue.md(markdown_table(failures)),
        },
    )


def _listed(items: list[str], total: int) -> str:
    """The first items of a long list, and how many more there are."""
    return ", ".join(items) + (f" and {total - len(items)} more" if total > len(items) else "")


def log_findings(context: dg.AssetExecutionContext, outcome: RunOutcome) -> None:
    findings = outcome.findings
    if not findings.unreadable.empty:
        context.log.warning(
            f"{len(findings.unreadable)} records left out, unreadable values: "
            + _listed(
                [
                    f"{r.org_id}/{r.call_report_num or NO_NUMBER} ({r.column})"
                    for r in findings.unreadable.head(20).itertuples()
                ],
                len(findings.unreadable),
            )
        )
    if not findings.invalid_needs.empty:
        context.log.warning(
            f"{len(findings.invalid_needs)} needs left out: "
            + _listed(
                [
                    f"{r.org_id}/{r.call_report_num} code "
                    + (f'"{r.taxonomy_code}"' if isinstance(r.taxonomy_code, str) else "(empty)")
                    + f" ({r.reason})"
                    for r in findings.invalid_needs.head(20).itertuples()
                ],
                len(findings.invalid_needs),
            )
        )
    if not findings.unmapped.empty:
        totals = findings.unmapped.groupby(["org_id", "slot", "answer"])["count"].sum()
        context.log.warning(
            "answers sent empty, not in the value map: "
            + _listed(
                [f'{o}/{s} "{a}" x{n}' for (o, s, a), n in totals.head(20).items()], len(totals)
            )
        )
    if not findings.invalid_zips.empty:
        context.log.warning(
            f"{int(findings.invalid_zips['count'].sum())} included records have a zip code that "
            "is not NNNNN, NNNNN-NNNN or NNNNNNNNN (sent empty)"
        )
