"""Generates a realistic contact-record store in any SQLAlchemy database.

Several orgs in different time zones, several forms and versions, drafts and deletions,
multi-need records, referrals, real-looking taxonomy and zip codes (some malformed), timestamps
in the mixed forms CRMs produce, and extra columns holding personal data that must never leave
the store (caller names, phone numbers, notes)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa

from counts_assets.core.source.reader import RECOMMENDED_INDEXES

SCHEMA = """
CREATE TABLE contact_records (
    org_id TEXT NOT NULL, call_report_num TEXT NOT NULL, contact_form TEXT NOT NULL,
    report_version TEXT, started_at TEXT, status TEXT NOT NULL, deleted TEXT,
    postal_code TEXT, caller_name TEXT, caller_phone TEXT, specialist_notes TEXT
);
CREATE TABLE contact_answers (
    org_id TEXT NOT NULL, call_report_num TEXT NOT NULL, question TEXT NOT NULL, answer TEXT
);
CREATE TABLE contact_needs (
    org_id TEXT NOT NULL, call_report_num TEXT NOT NULL, taxonomy_code TEXT, unmet TEXT,
    need_notes TEXT
);
CREATE TABLE contact_referrals (
    org_id TEXT NOT NULL, call_report_num TEXT NOT NULL, resource_id TEXT NOT NULL,
    resource_name TEXT
);
"""
SCHEMA += "".join(f"CREATE INDEX {name} ON {on};\n" for name, on in RECOMMENDED_INDEXES.items())

TAXONOMY = [
    "BD-1800.2000",  # food pantries
    "BD-5000.8300",  # soup kitchens
    "BH-1800.8500",  # rent payment assistance
    "BH-3800.7000",  # homeless shelter
    "BV-8900.9300-180",  # electric service payment assistance
    "BV-8900.9300-250",  # gas service payment assistance
    "BH-1800.8500 * YB-8000",  # rent assistance for families with children
    "LN-5000",  # medical care
    "RP-1400.8000-020.15",
    "NL-6000.2000",
    "BM-6500.1500-250",
    " bd-1800.2000 ",  # typed in lower case with spaces: valid once normalised
    "BD1800",  # malformed
    None,
]
TAXONOMY_WEIGHTS = [18, 6, 16, 8, 10, 5, 4, 6, 2, 3, 3, 2, 1, 1]

ORG_PROFILES = {
    "gateway211": {
        "zone": "America/Chicago",
        "forms": [("211 Contact", ["v3", "v4"]), ("Crisis Contact", ["v1"])],
        "zips": ["63101", "63103-2104", "631181234", "62201", "6310", "N/A", None],
        "questions": {
            "Caller Age": [
                "Under 18",
                "18 to 24",
                "25 to 59",
                "25 to 59",
                "60 and over",
                "Refused",
                "unknown",
            ],
            "Gender": ["Female", "Male", "Female", "Non-binary", "  Female "],
            "Children in Household": ["Yes", "No", "no"],
            "How did you reach us": ["Phone", "Phone", "Text", "Chat", "Web search"],
        },
    },
    "empire211": {
        "zone": "America/New_York",
        "forms": [("211 Contact", ["2026.1", "2026.2"]), ("211 Text Contact", [None])],
        "zips": ["10001", "11201", "07302", "10451-0001", "12207", None],
        "questions": {
            "Line Called": ["2-1-1", "2-1-1", "211 Text", "Mental Health Line"],
            "Age Range": ["18-24", "25-34", "35-54", "55+"],
            "Household Income": [
                "Under $25,000",
                "$25,000 - $49,999",
                "$50,000 or more",
                "Don't know",
            ],
            "Ethnicity": ["Hispanic or Latino", "Not Hispanic or Latino"],
        },
    },
    "aloha211": {
        "zone": "Pacific/Honolulu",
        "forms": [("AUW 211 Call Form", ["3"])],
        "zips": ["96813", "96817", "96720", "96813-1234"],
        "questions": {
            "Gender": ["Female", "Male", "Wahine"],
            "Contact Method": ["Phone", "Text", "Chat, web"],
        },
    },
}

FIRST_NAMES = ["Maria", "James", "Aiko", "Darnell", "Sofia", "Keoni", "Linh", "Robert"]


def _timestamps(rng: np.random.Generator, utc: pd.Series) -> list[str]:
    """The mixed forms a CRM export produces: naive UTC, `Z`, local offsets, fractions."""
    forms = rng.integers(0, 4, len(utc))
    out = []
    for instant, form in zip(utc, forms, strict=True):
        if form == 0:
            out.append(instant.strftime("%Y-%m-%d %H:%M:%S"))
        elif form == 1:
            out.append(instant.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
        elif form == 2:
            out.append(instant.tz_convert("America/Chicago").isoformat())
        else:
            out.append(" " + instant.strftime("%Y-%m-%dT%H:%M:%S") + "+00:00 ")
    return out


def generate_store(
    engine: sa.Engine,
    first: dt.date,
    last: dt.date,
    per_day: int = 40,
    seed: int = 211,
    profiles: dict[str, dict] | None = None,
) -> dict[str, int]:
    """Create the four tables and fill them; returns row counts per table. `profiles` maps
    org ids to one of ORG_PROFILES' shapes (default: the three demo orgs)."""
    rng = np.random.default_rng(seed)
    records, answers, needs, referrals = [], [], [], []
    days = pd.date_range(first, last, freq="D")
    for org_id, profile in (profiles or ORG_PROFILES).items():
        count = len(days) * per_day
        day = rng.integers(0, len(days), count)
        seconds = rng.integers(0, 86400, count)
        local = (days[day] + pd.to_timedelta(seconds, unit="s")).tz_localize(
            profile["zone"], ambiguous="NaT", nonexistent="shift_forward"
        )
        keep = ~local.isna()
        local = local[keep]
        utc = pd.Series(local.tz_convert("UTC"))
        n = len(utc)
        form_pick = rng.choice(len(profile["forms"]), n, p=_form_weights(len(profile["forms"])))
        frame = pd.DataFrame(
            {
                "org_id": org_id,
                "call_report_num": [f"{org_id[:2].upper()}{100000 + i}" for i in range(n)],
                "contact_form": [profile["forms"][k][0] for k in form_pick],
                "report_version": [
                    profile["forms"][k][1][rng.integers(len(profile["forms"][k][1]))]
                    for k in form_pick
                ],
                "started_at": _timestamps(rng, utc),
                "status": rng.choice(["finalized", "draft"], n, p=[0.93, 0.07]),
                "deleted": rng.choice(
                    [None, "0", "1", "false", "t"], n, p=[0.8, 0.1, 0.03, 0.05, 0.02]
                ),
                "postal_code": rng.choice(np.array(profile["zips"], dtype=object), n),
                "caller_name": rng.choice(FIRST_NAMES, n),
                "caller_phone": [f"555-01{i % 100:02d}" for i in range(n)],
                "specialist_notes": "caller shared private details",
            }
        )
        records.append(frame)
        for question, choices in profile["questions"].items():
            answered = rng.random(n) < 0.9
            answers.append(
                pd.DataFrame(
                    {
                        "org_id": org_id,
                        "call_report_num": frame["call_report_num"][answered].values,
                        "question": question,
                        "answer": rng.choice(np.array(choices, dtype=object), answered.sum()),
                    }
                )
            )
        # A second answer on some multi-select questions, and a free-text question.
        multi = rng.random(n) < 0.08
        first_question = next(iter(profile["questions"]))
        answers.append(
            pd.DataFrame(
                {
                    "org_id": org_id,
                    "call_report_num": frame["call_report_num"][multi].values,
                    "question": first_question,
                    "answer": rng.choice(
                        np.array(profile["questions"][first_question], dtype=object), multi.sum()
                    ),
                }
            )
        )
        answers.append(
            pd.DataFrame(
                {
                    "org_id": org_id,
                    "call_report_num": frame["call_report_num"].values,
                    "question": "Caller Notes",
                    "answer": "Caller " + frame["caller_name"] + " at " + frame["caller_phone"],
                }
            )
        )
        need_count = rng.choice([0, 1, 2, 3], n, p=[0.15, 0.5, 0.25, 0.1])
        owners = np.repeat(frame["call_report_num"].values, need_count)
        needs.append(
            pd.DataFrame(
                {
                    "org_id": org_id,
                    "call_report_num": owners,
                    "taxonomy_code": rng.choice(
                        np.array(TAXONOMY, dtype=object),
                        len(owners),
                        p=np.array(TAXONOMY_WEIGHTS) / sum(TAXONOMY_WEIGHTS),
                    ),
                    "unmet": rng.choice(
                        [None, "0", "1", "true", "F"], len(owners), p=[0.5, 0.2, 0.1, 0.1, 0.1]
                    ),
                    "need_notes": "needs help paying rent at home address",
                }
            )
        )
        referral_count = rng.choice([0, 1, 2, 3], n, p=[0.3, 0.4, 0.2, 0.1])
        owners = np.repeat(frame["call_report_num"].values, referral_count)
        referrals.append(
            pd.DataFrame(
                {
                    "org_id": org_id,
                    "call_report_num": owners,
                    "resource_id": [f"R{k:05d}" for k in rng.integers(0, 3000, len(owners))],
                    "resource_name": "Neighbourhood pantry",
                }
            )
        )
    tables = {
        "contact_records": pd.concat(records, ignore_index=True),
        "contact_answers": pd.concat(answers, ignore_index=True),
        "contact_needs": pd.concat(needs, ignore_index=True),
        "contact_referrals": pd.concat(referrals, ignore_index=True),
    }
    with engine.begin() as connection:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                connection.exec_driver_sql(statement)
    for name, frame in tables.items():
        frame.to_sql(name, engine, if_exists="append", index=False, chunksize=5000)
    return {name: len(frame) for name, frame in tables.items()}


def _form_weights(forms: int) -> list[float]:
    return [0.85, 0.15] if forms == 2 else [1.0 / forms] * forms


def apply_late_edits(engine: sa.Engine, seed: int = 212) -> dict[str, int]:
    """What happens after the daily files went out: drafts finalized late, records deleted or
    edited. The monthly reconciliation then restates the month."""
    rng = np.random.default_rng(seed)
    with engine.begin() as connection:
        rows = connection.execute(
            sa.text("SELECT org_id, call_report_num, status FROM contact_records")
        ).all()
        drafts = [r[:2] for r in rows if r[2] == "draft"]
        finals = [r[:2] for r in rows if r[2] == "finalized"]
        picks = {
            "finalized late": [drafts[i] for i in rng.permutation(len(drafts))[: len(drafts) // 2]],
            "deleted": [finals[i] for i in rng.permutation(len(finals))[:40]],
            "edited": [finals[i] for i in rng.permutation(len(finals))[40:100]],
        }
        statements = {
            "finalized late": "UPDATE contact_records SET status = 'finalized'",
            "deleted": "UPDATE contact_records SET deleted = '1'",
            "edited": "UPDATE contact_records SET postal_code = '10001'",
        }
        for change, keys in picks.items():
            connection.execute(
                sa.text(f"{statements[change]} WHERE org_id = :o AND call_report_num = :n"),
                [{"o": o, "n": n} for o, n in keys],
            )
    return {change: len(keys) for change, keys in picks.items()}
