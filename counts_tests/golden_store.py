"""A small hand-built store around Chicago's spring-forward day (2026-03-08), with the files it
must produce written out by hand from the contract in counts_tests/golden/."""

from __future__ import annotations

from pathlib import Path

from counts_tests.store import record, write_store

GOLDEN_DIR = Path(__file__).parent / "golden"

ORG_YAML = """\
id: testorg
name: Test 2-1-1
timezone: America/Chicago
share_from: 2026-03-07
contact_forms: [211 Contact]
interaction_filter:
  any_of:
    - question: Line Called
      answers: [2-1-1, 211 Text]
demographics:
  age:
    question: Caller Age
    values:
      Under 18: "0-17"
      18 to 24: "18-24"
      Refused: ""
  gender:
    question: Gender
  source:
    question: How Reached
    values:
      Phone: Call
      Text: SMS "text"
permission:
  signed_on: 2026-02-20
  document: LTR-TEST-1
"""

OTHER_ORG_YAML = """\
id: otherorg
name: Other 2-1-1
timezone: Pacific/Honolulu
share_from: 2026-03-01
contact_forms: [211 Contact]
interaction_filter:
  all_211: true
permission:
  signed_on: 2026-02-20
  document: LTR-TEST-2
"""

ORG = "testorg"
LINE = "Line Called"


def build_golden_store(url: str) -> None:
    records = [
        # 05:59:59 UTC is 23:59:59 CST on the 7th.
        record("1001", "2026-03-08 05:59:59"),
        # Local midnight of the 8th, in CST.
        record("1002", "2026-03-08T06:00:00Z", postal=" 60601-1234 "),
        # 23:59:59 CDT on the 8th (clocks went forward at 02:00).
        record("999", "2026-03-09T04:59:59+00:00", version=None, postal="123456789"),
        record("1003", "2026-03-08 15:00:00", status="draft"),
        record("1004", "2026-03-08 15:00:00", deleted="T"),
        record("1005", "2026-03-08 15:00:00", form="211 contact"),
        record("1006", "2026-03-08 15:00:00"),
        record("1007", " 2026-03-08T23:00:00.5-06:00 ", postal="02134"),
        # A timestamptz column cannot hold "garbage": NULL is unreadable the same way.
        record("1008", None if url.startswith("postgresql") else "garbage"),
        record("1009", "2026-03-06 18:00:00"),
        record("10010", "2026-03-08 12:00:00-05:00", version="v10", postal="6060", deleted="0"),
        record("1002", "2026-03-08 12:00:00", org="otherorg"),
    ]
    answers = [
        (ORG, "1001", LINE, "2-1-1"),
        (ORG, "1001", "Caller Age", "18 to 24"),
        (ORG, "1002", LINE, " 211 text "),
        (ORG, "1002", "Caller Age", "Under 18"),
        (ORG, "1002", "caller age ", "under 18 "),
        (ORG, "1002", "Gender", "Female"),
        (ORG, "1002", "Gender", "female"),
        (ORG, "1002", "How Reached", "Phone"),
        (ORG, "1002", "Caller Notes", "CANARY-ANSWER-call-me-at-555-0123"),
        (ORG, "999", LINE, "2-1-1"),
        (ORG, "999", "Caller Age", "Refused"),
        (ORG, "999", "Gender", "   "),
        (ORG, "999", "Gender", None),
        (ORG, "999", "How Reached", "Carrier pigeon"),
        (ORG, "1003", LINE, "2-1-1"),
        (ORG, "1004", LINE, "2-1-1"),
        (ORG, "1005", LINE, "2-1-1"),
        (ORG, "1006", LINE, "Crisis"),
        (ORG, "1007", LINE, "2-1-1"),
        (ORG, "1008", LINE, "2-1-1"),
        (ORG, "1009", LINE, "2-1-1"),
        (ORG, "10010", LINE, "2-1-1"),
        (ORG, "10010", "Gender", "Male, other"),
        (ORG, "10010", "How Reached", "text"),
        ("otherorg", "1002", "Gender", "CANARY-OTHER-ORG"),
    ]
    needs = [
        (ORG, "1001", "RP-1400.8000-020.15", None),
        (ORG, "1002", "bd-1800.2000", None),
        (ORG, "1002", "BD-1800.2000", "0"),
        (ORG, "1002", "BH-1800.8500 * YB-8000", "true"),
        (ORG, "1002", "BD1800", "1"),
        (ORG, "1002", None, "0"),
        (ORG, "1003", "BD-1800.2000", None),
        (ORG, "1007", " b ", "0"),
        (ORG, "10010", "LN-5000", "1"),
        (ORG, "10010", "LN-5000", "t"),
        (ORG, "10010", "ln-5000", "f"),
        ("otherorg", "1002", "BD-1800.2000", None),
    ]
    referrals = [
        (ORG, "1002", "R1"),
        (ORG, "1002", "R2"),
        (ORG, "10010", "R3"),
        (ORG, "1007", "R4"),
        (ORG, "1003", "R5"),
        ("otherorg", "1002", "R6"),
    ]
    write_store(url, records, answers, needs, referrals)


def write_org_files(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "testorg.yaml").write_text(ORG_YAML, encoding="utf-8")
    (directory / "otherorg.yaml").write_text(OTHER_ORG_YAML, encoding="utf-8")
    return directory
