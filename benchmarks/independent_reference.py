"""An independent, Dagster-free second implementation of the daily 211 Counts files.

It reads the contact-record store (a SQLite file) and the organization YAML files and writes, for
every organization and every Call Date of a range, the two daily CSV files (File 1, the summary
by Report Version; File 2, the needs and demographics by record) under
`<out>/<org>/daily/<org>_daily_<YYYY-MM-DD>_{summary,needs}.csv`.

It is written from the file format's rules, not from the platform's code, and imports nothing
of the platform, so that comparing both outputs byte for byte checks each against the other.
The whole computation is set-based: the four tables are read once for all organizations,
values that need Python's own string semantics (strip, casefold, upper) are normalised once per
distinct value, and the joins, grouping, time zones and sorting run in DuckDB. Python loops
only over organizations, days (to write the files) and distinct values.

    .venv/bin/python benchmarks/independent_reference.py --source store.sqlite \\
        --orgs-dir organizations --first 2025-01-01 --last 2025-12-31 --out /tmp/out
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import numpy as np
import pandas as pd
import yaml

SLOTS = ("age", "gender", "ethnicity", "children_in_household", "income_level", "source")
SUMMARY_HEADER = "Call Date,Total Calls,Total Services,Report Version\n"
NEEDS_HEADER = (
    "Call Date,Zip Code,Taxonomy Code,Count,Need Was Unmet,Age,Gender,Ethnicity,"
    "Children In Household,Income Level,Source,Call Report Num\n"
)
# C0 controls except tab, LF and CR; they are removed from every value as it is read.
CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_TERM = r"[A-Z](?:[A-Z](?:-[0-9]{4}(?:\.[0-9]{4}(?:-[0-9]{3}(?:\.[0-9]{2})?)?)?)?)?"
TAXONOMY_CODE = re.compile(rf"{_TERM}(?: \* {_TERM})*")
ZIP_CODE = re.compile(r"([0-9]{5})(?:-?[0-9]{4})?")
# Date, time, optional fraction of 1 to 6 digits, optional Z or +-HH:MM (white space is stripped
# in Python first, with str.strip's notion of white space).
STARTED_AT = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2}):([0-9]{2})(?:\.[0-9]{1,6})?"
    r"(?:(Z)|([+-])([0-9]{2}):([0-9]{2}))?$"
)
TRUE_TEXT = {"1", "true", "t"}
FALSE_TEXT = {"0", "false", "f"}
UNREADABLE = object()  # a boolean text that is none of the accepted spellings


@dataclass(frozen=True)
class Org:
    """What of an organization file decides its daily files."""

    id: str
    zone: str
    share_from: dt.date
    forms: tuple[str, ...]
    # None: every record on the forms is an interaction; otherwise (question, answers) pairs,
    # both normalised, any of which makes a record one.
    any_of: tuple[tuple[str, frozenset[str]], ...] | None
    # slot -> (normalised question, normalised answer -> value sent, or None to pass through)
    demographics: dict[str, tuple[str, dict[str, str] | None]] = field(default_factory=dict)


def norm(text: str) -> str:
    """The matching key of question names, answers and value-map keys."""
    return text.strip().casefold()


def load_orgs(orgs_dir: Path) -> tuple[dict[str, Org], dict[str, str]]:
    """Every `*.yaml` organization file of the folder; returns the orgs by id and the files that
    could not be used, with why (they make no files; the others are unaffected)."""
    orgs: dict[str, Org] = {}
    rejected: dict[str, str] = {}
    seen: dict[str, list[str]] = {}
    for path in sorted(orgs_dir.glob("*.yaml")):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            org = parse_org(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
            rejected[str(path)] = f"{type(error).__name__}: {error}"
            continue
        orgs.setdefault(org.id, org)
        seen.setdefault(org.id, []).append(str(path))
    for org_id, paths in seen.items():
        if len(paths) > 1:  # an id used by two files rejects both
            del orgs[org_id]
            rejected.update({p: f"id {org_id} used by {len(paths)} files" for p in paths})
    return orgs, rejected


def parse_org(text: str) -> Org:
    """One organization file. BaseLoader resolves no implicit types: every scalar stays the
    characters written (`211`, `Yes`, `01234`, `1:30`)."""
    data = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds no objects
    if not isinstance(data, dict):
        raise ValueError("not a mapping")
    org_id = _text(data["id"], "id")
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,39}", org_id):
        raise ValueError(f"bad id {org_id!r}")
    forms = data["contact_forms"]
    if not isinstance(forms, list) or not forms:
        raise ValueError("contact_forms: a non-empty list is required")
    rule = data["interaction_filter"]
    if not isinstance(rule, dict) or len(rule) != 1:
        raise ValueError("interaction_filter: exactly one of all_211, any_of")
    any_of: tuple[tuple[str, frozenset[str]], ...] | None = None
    if "all_211" in rule:
        if str(rule["all_211"]).lower() != "true":
            raise ValueError("interaction_filter.all_211: only true is allowed")
    else:
        any_of = tuple(_condition(c) for c in rule["any_of"])
    demographics: dict[str, tuple[str, dict[str, str] | None]] = {}
    for slot, spec in (data.get("demographics") or {}).items():
        if slot not in SLOTS:
            raise ValueError(f"demographics: unknown slot {slot!r}")
        values = spec.get("values")
        mapping = None if values is None else {norm(_text(k)): _text(v) for k, v in values.items()}
        demographics[slot] = (norm(_text(spec["question"], "question")), mapping)
    return Org(
        id=org_id,
        zone=_zone(_text(data["timezone"], "timezone")),
        share_from=dt.date.fromisoformat(_text(data["share_from"], "share_from")),
        forms=tuple(_text(f, "contact_forms") for f in forms),
        any_of=any_of,
        demographics=demographics,
    )


def _condition(condition: dict) -> tuple[str, frozenset[str]]:
    """One `any_of` condition: its question and answers, as matching keys."""
    answers = frozenset(norm(_text(a, "answers")) for a in condition["answers"])
    return norm(_text(condition["question"], "question")), answers


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError) as error:
        raise ValueError(f"timezone: {name!r} is not an IANA time zone") from error
    return name


def _text(value: Any, name: str = "value") -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name}: text expected, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------------
# Reading the store


def _decode_loosely(raw: bytes) -> str:
    # Undecodable bytes become lone surrogates, found afterwards by `_has_surrogate`.
    return raw.decode("utf-8", "surrogateescape")


def read_query(
    path: Path, sql: str, params: list[Any], columns: list[str], keep: tuple[str, ...] = ()
) -> pd.DataFrame:
    """One query into an object-dtype frame (Python strings, so pandas' .str methods keep
    Python's own semantics). Adds `undecodable`: a value of the row could not be read as text;
    such values become NULL. Control characters are removed from every text value (the `keep`
    columns stay as stored: counts, and org ids, which equal the ids asked for)."""
    raw = read_raw(path, sql, params, columns)
    bad = np.zeros(len(raw), dtype=bool)
    for column in columns:
        if column not in keep:
            raw[column], unreadable = _as_text(raw[column])
            bad |= unreadable
    raw["undecodable"] = bad
    return raw


def read_raw(path: Path, sql: str, params: list[Any], columns: list[str]) -> pd.DataFrame:
    """The rows as stored (invalid UTF-8 kept as lone surrogates), as Python objects."""
    uri = path.resolve().as_uri() + "?mode=ro"
    connection = sqlite3.connect(uri, uri=True)
    try:
        try:
            rows = connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError as error:
            if "decode" not in str(error).lower():
                raise
            # Rare path: read again keeping invalid UTF-8 visible instead of failing the query.
            connection.text_factory = _decode_loosely
            rows = connection.execute(sql, params).fetchall()
    finally:
        connection.close()
    return pd.DataFrame(rows, columns=columns, dtype=object)


def _as_text(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Text values with control characters removed; non-text SQLite values (integers, reals,
    blobs) as their text. Returns the values and which of them could not be decoded."""
    unreadable = np.zeros(len(series), dtype=bool)
    if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
        series = each(series, _to_text)
    if not len(series):
        return series, unreadable
    # One search over all values at once; str(None) is "None", which holds neither.
    joined = "".join(map(str, series.to_numpy(dtype=object)))
    if _SURROGATE.search(joined):
        unreadable = each(series, _has_surrogate).to_numpy(dtype=bool)
        series = series.where(~unreadable, None)
    if CONTROLS.search(joined):
        series = each(series, lambda v: v if v is None else CONTROLS.sub("", v))
    return series, unreadable


_SURROGATE = re.compile("[\udc80-\udcff]")


def _has_surrogate(value: str | None) -> bool:
    return value is not None and _SURROGATE.search(value) is not None


def each(series: pd.Series, function: Callable[[Any], Any]) -> pd.Series:
    """`function` of every value, kept as Python objects (Series.map would infer pandas' string
    dtype and turn None into NaN)."""
    values = np.empty(len(series), dtype=object)
    values[:] = [function(v) for v in series.to_numpy(dtype=object)]
    return pd.Series(values, index=series.index, dtype=object)


def _to_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, float) and np.isnan(value):
        return None
    return str(value)


def by_distinct(series: pd.Series, function: Callable[[Any], Hashable]) -> pd.Series:
    """`function` applied once per distinct value (answers, codes and zips repeat a lot)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    mapped = np.array([function(v) for v in uniques] + [function(None)], dtype=object)
    return pd.Series(mapped[codes], index=series.index, dtype=object)


def boolean(value: str | None) -> Any:
    """A stored boolean: None stays None (the caller gives NULL its meaning)."""
    if value is None:
        return None
    text = value.strip().casefold()
    if text in TRUE_TEXT:
        return True
    if text in FALSE_TEXT:
        return False
    return UNREADABLE


def _written_date(prefix: str | None) -> str | None:
    return prefix if prefix is not None and _WRITTEN.fullmatch(prefix) else None


_WRITTEN = re.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}")


def zip_code(value: str | None) -> str:
    match = ZIP_CODE.fullmatch(value.strip()) if value is not None else None
    return match.group(1) if match else ""


def taxonomy(value: str | None) -> str | None:
    """The normalised code when it is valid, else None (the need is left out)."""
    if value is None:
        return None
    code = value.strip().upper()
    return code if TAXONOMY_CODE.fullmatch(code) else None


# ---------------------------------------------------------------------------------------------
# The computation


def make_daily_files(
    source_db: Path, orgs_dir: Path, first: dt.date, last: dt.date, out_dir: Path
) -> dict:
    """Writes every org's daily pair for each Call Date from max(first, share_from) through
    `last`; returns the number of files and the wall seconds of reading, computing and
    writing."""
    started = time.perf_counter()
    orgs, rejected = load_orgs(Path(orgs_dir))
    source_db, out_dir = Path(source_db), Path(out_dir)
    if not source_db.is_file():
        raise FileNotFoundError(f"no source store at {source_db}")
    starts = {o.id: max(first, o.share_from) for o in orgs.values()}
    active = sorted(i for i in orgs if starts[i] <= last)
    laps = Laps()
    db = duckdb.connect()
    try:
        # No progress bar: it would mix with the figures printed on stdout.
        db.execute("SET enable_progress_bar = false")
        db.execute("SET TimeZone = 'UTC'")
        files = _compute(db, source_db, {i: orgs[i] for i in active}, starts, last, laps)
    finally:
        db.close()
    written = _write(out_dir, files, {i: starts[i] for i in active}, last)
    laps("write")
    return {
        "files": written,
        "orgs": len(active),
        "rejected_org_files": rejected,
        "seconds": time.perf_counter() - started,
        "phases": laps.seconds,
    }


class Laps:
    """Wall seconds per phase, to see where the time goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + now - self._last, 3)
        self._last = now


def _org_table(orgs: dict[str, Org], starts: dict[str, dt.date], last: dt.date) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "org_id": list(orgs),
            "zone": [o.zone for o in orgs.values()],
            "first_day": [starts[i] for i in orgs],
            "last_day": [last] * len(orgs),
            "all_211": [o.any_of is None for o in orgs.values()],
        }
    )


def _compute(
    db: duckdb.DuckDBPyConnection,
    source: Path,
    orgs: dict[str, Org],
    starts: dict[str, dt.date],
    last: dt.date,
    laps: Laps,
) -> dict[tuple[str, dt.date], tuple[str, str]]:
    """(org, Call Date) -> (summary body, needs body) for every date that has records."""
    if not orgs:
        return {}
    ids = list(orgs)
    marks = ",".join("?" * len(ids))
    _table(db, "orgs", _org_table(orgs, starts, last))
    _table(
        db,
        "forms",
        pd.DataFrame(
            [(o.id, f) for o in orgs.values() for f in o.forms], columns=["org_id", "form"]
        ),
    )

    # Records: text and booleans interpreted in Python (strip, casefold), the rest in DuckDB.
    records = read_query(
        source,
        "SELECT org_id, call_report_num, contact_form, report_version, started_at, status,"
        f" deleted, postal_code FROM contact_records WHERE org_id IN ({marks})",
        ids,
        ["org_id", "crn", "form", "version", "started_at", "status", "deleted", "postal"],
        keep=("org_id",),
    )
    records["rid"] = np.arange(len(records))
    # The record's written date, as the stored text begins (controls removed, not stripped): it
    # places the record in the read windows of the Call Dates two days around it. A value that
    # does not begin with a date is in every window, and so is a record row that could not
    # be decoded (it is read, whatever its date).
    records["written"] = by_distinct(records["started_at"].str.slice(0, 10), _written_date)
    records.loc[records["undecodable"].to_numpy(), "written"] = None
    # A number of only white space is no number.
    crn = records["crn"]
    records["crn"] = crn.where(crn.notna() & (crn.str.strip() != ""), None)
    started_at = records["started_at"]
    records["started_at"] = started_at.str.strip().where(started_at.notna(), None)
    deleted = by_distinct(records["deleted"], boolean)
    records["deleted"] = deleted.map(lambda v: v is True)
    records["deleted_unreadable"] = deleted.map(lambda v: v is UNREADABLE)
    records["zip"] = by_distinct(records["postal"], zip_code)
    records = records.drop(columns=["postal"])
    _table(db, "records_raw", records)
    del records, crn, started_at, deleted  # DuckDB holds its copy: keep the peak memory down
    laps("records")

    # Answers: only those to questions the orgs use. The used questions are found among the
    # distinct stored names in Python (cleaned, then strip + casefold on both sides), then read
    # by their stored (raw) names.
    questions = read_raw(
        source,
        f"SELECT DISTINCT org_id, question FROM contact_answers WHERE org_id IN ({marks})",
        ids,
        ["org_id", "stored"],
    )
    questions["question_raw"], unreadable = _as_text(questions["stored"])
    questions = questions[~unreadable & questions["question_raw"].notna()]
    questions["key"] = questions["question_raw"].map(norm)
    used = questions.merge(_question_uses(orgs), on=["org_id", "key"])
    pairs = sorted(set(zip(used["org_id"], used["stored"], strict=True)))
    answers = _read_answers(source, pairs)
    answers["value"] = by_distinct(answers["answer"], lambda a: None if a is None else a.strip())
    answers["key"] = by_distinct(answers["value"], lambda a: None if a is None else a.casefold())
    answers = answers.merge(
        used[["org_id", "stored", "key"]].rename(columns={"key": "question_key"}),
        on=["org_id", "stored"],
    )
    _table(db, "answers", answers.drop(columns=["answer", "stored"]))
    del answers
    _table(db, "filter_answers", _filter_answers(orgs))
    _table(db, "value_maps", _value_maps(orgs))
    laps("answers")

    needs = read_query(
        source,
        "SELECT org_id, call_report_num, taxonomy_code, unmet FROM contact_needs"
        f" WHERE org_id IN ({marks})",
        ids,
        ["org_id", "crn", "taxonomy_code", "unmet"],
        keep=("org_id",),
    )
    needs["code"] = by_distinct(needs["taxonomy_code"], taxonomy)
    unmet = by_distinct(needs["unmet"], boolean)
    needs["unmet"] = unmet.map(lambda v: "True" if v is True else "False")
    # A need whose unmet flag is none of the boolean spellings is not a valid need.
    needs.loc[unmet.map(lambda v: v is UNREADABLE).to_numpy(dtype=bool), "code"] = None
    _table(db, "needs", needs.drop(columns=["taxonomy_code"]))

    referrals = read_query(
        source,
        "SELECT org_id, call_report_num, count(*) FROM contact_referrals"
        f" WHERE org_id IN ({marks}) GROUP BY org_id, call_report_num",
        ids,
        ["org_id", "crn", "services"],
        keep=("org_id", "services"),
    )
    referrals["services"] = referrals["services"].astype("int64")
    _table(db, "referrals", referrals)
    laps("needs and referrals")

    db.execute(RECORDS_SQL, [STARTED_AT])
    laps("included records")
    summary = db.execute(SUMMARY_SQL).fetchall()
    needs_out = db.execute(NEEDS_SQL).fetchall()
    laps("file bodies")
    bodies: dict[tuple[str, dt.date], list[str]] = {}
    for org_id, day, text in summary:
        bodies[(org_id, day)] = [text, ""]
    for org_id, day, text in needs_out:
        bodies[(org_id, day)][1] = text
    return {key: (s, n) for key, (s, n) in bodies.items()}


def _table(db: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    """A frame copied into DuckDB once: scanning pandas' Python strings again in every query
    that reads it would convert them again."""
    db.register(f"{name}_frame", frame)
    db.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_frame")
    db.unregister(f"{name}_frame")


def _question_uses(orgs: dict[str, Org]) -> pd.DataFrame:
    """(org, normalised question) for every question an org reads."""
    rows = []
    for org in orgs.values():
        keys = {q for q, _ in org.any_of or ()} | {q for q, _ in org.demographics.values()}
        rows += [(org.id, k) for k in keys]
    return pd.DataFrame(rows, columns=["org_id", "key"], dtype=object)


def _filter_answers(orgs: dict[str, Org]) -> pd.DataFrame:
    rows = [
        (o.id, question, answer)
        for o in orgs.values()
        for question, answers in o.any_of or ()
        for answer in answers
    ]
    return pd.DataFrame(rows, columns=["org_id", "question_key", "answer_key"], dtype=object)


def _value_maps(orgs: dict[str, Org]) -> pd.DataFrame:
    """One row per (org, slot): its question and whether it maps; plus one per map entry."""
    rows = []
    for o in orgs.values():
        for slot, (question, mapping) in o.demographics.items():
            rows.append((o.id, slot, question, mapping is not None, None, None))
            rows += [(o.id, slot, question, True, k, v) for k, v in (mapping or {}).items()]
    columns = ["org_id", "slot", "question_key", "mapped", "answer_key", "sent"]
    return pd.DataFrame(rows, columns=columns, dtype=object)


def _read_answers(source: Path, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    columns = ["org_id", "crn", "stored", "answer"]
    if not pairs:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        frame["undecodable"] = pd.Series(dtype=bool)
        return frame
    frames = []
    # Chunks keep the number of SQL parameters far below SQLite's limit.
    for start in range(0, len(pairs), 400):
        chunk = pairs[start : start + 400]
        values = ",".join("(?, ?)" for _ in chunk)
        frames.append(
            read_query(
                source,
                "SELECT org_id, call_report_num, question, answer FROM contact_answers"
                f" WHERE (org_id, question) IN (VALUES {values})",
                [v for pair in chunk for v in pair],
                columns,
                # exactly the ids and stored names asked for: cleaned once, in `questions`
                keep=("org_id", "stored"),
            )
        )
    return pd.concat(frames, ignore_index=True)


# Every record read for the orgs, with its instant, Call Date and why it is left out (if so).
RECORDS_SQL = """
CREATE OR REPLACE TEMP TABLE rec AS
WITH parsed AS (
    SELECT r.*, regexp_extract(coalesce(r.started_at, ''), $1,
                               ['d', 'hm', 'ss', 'z', 'sign', 'oh', 'om']) AS m
    FROM records_raw r
), instants AS (
    -- Second 60 is ISO 8601's leap second: counted as the next minute's first (the POSIX
    -- normalisation), so 23:59:60 falls on the next day. Year 0000 is no date.
    SELECT p.*,
           CASE WHEN m.d <> '' AND m.d[1:4] <> '0000' AND try_cast(m.ss AS INT) <= 60
                     AND (m.sign = '' OR (try_cast(m.oh AS INT) < 24
                                          AND try_cast(m.om AS INT) < 60))
                THEN try_strptime(m.d || ' ' || m.hm, '%Y-%m-%d %H:%M')
                     + to_seconds(try_cast(m.ss AS INT))
                     - to_minutes(CASE m.sign WHEN '+' THEN 1 WHEN '-' THEN -1 ELSE 0 END
                                  * coalesce(try_cast(m.oh AS INT) * 60
                                             + try_cast(m.om AS INT), 0))
           END AS utc
    FROM parsed p
), dated AS (
    SELECT i.*, o.first_day, o.last_day, o.all_211,
           CAST(timezone(o.zone, i.utc::TIMESTAMPTZ) AS DATE) AS call_date
    FROM instants i JOIN orgs o USING (org_id)
    WHERE i.crn IS NOT NULL
), candidates AS (
    SELECT * FROM dated WHERE call_date BETWEEN first_day AND last_day
), windowed AS (
    -- the copies of each candidate's number among the records read for its Call Date
    SELECT c.rid, count(*) AS copies
    FROM candidates c JOIN dated a ON a.org_id = c.org_id AND a.crn = c.crn
    WHERE a.written IS NULL
       OR a.written BETWEEN CAST(c.call_date - 2 AS VARCHAR) AND CAST(c.call_date + 2 AS VARCHAR)
    GROUP BY c.rid
), bad_children AS (
    SELECT DISTINCT org_id, crn FROM answers WHERE undecodable
    UNION SELECT DISTINCT org_id, crn FROM needs WHERE undecodable
), interactions AS (
    SELECT DISTINCT a.org_id, a.crn
    FROM answers a JOIN filter_answers f
      ON a.org_id = f.org_id AND a.question_key = f.question_key AND a.key = f.answer_key
    WHERE a.value <> ''
)
SELECT w.org_id, w.crn, w.version, w.call_date, w.zip
FROM candidates w JOIN windowed USING (rid)
WHERE windowed.copies = 1
  AND NOT w.undecodable
  AND NOT w.deleted_unreadable
  AND NOT w.deleted
  AND w.status = 'finalized'
  AND EXISTS (SELECT 1 FROM forms f WHERE f.org_id = w.org_id AND f.form = w.form)
  AND (w.all_211 OR EXISTS (SELECT 1 FROM interactions i
                            WHERE i.org_id = w.org_id AND i.crn = w.crn))
  AND NOT EXISTS (SELECT 1 FROM bad_children b WHERE b.org_id = w.org_id AND b.crn = w.crn)
"""


def _quoted(column: str) -> str:
    """A CSV field: quoted when, and only when, it holds , " CR or LF."""
    return (
        f"""(CASE WHEN regexp_matches({column}, '[,"\\r\\n]')"""
        f""" THEN '"' || replace({column}, '"', '""') || '"' ELSE {column} END)"""
    )


_SLOT_VALUES = ",\n".join(
    f"           string_agg(DISTINCT sent, ';' ORDER BY sent) FILTER (slot = '{s}') AS {s}"
    for s in SLOTS
)
_SLOT_COLUMNS = ",\n".join(f"           coalesce(d.{s}, '') AS {s}" for s in SLOTS)
_SLOT_FIELDS = ", ".join(_quoted(s) for s in SLOTS)

SUMMARY_SQL = f"""
WITH services AS (
    SELECT org_id, crn, sum(services) AS services FROM referrals GROUP BY ALL
), rows AS (
    SELECT r.org_id, r.call_date, coalesce(r.version, '') AS version,
           count(*) AS calls, coalesce(sum(s.services), 0) AS services
    FROM rec r LEFT JOIN services s USING (org_id, crn)
    GROUP BY ALL
)
SELECT org_id, call_date,
       string_agg(strftime(call_date, '%Y-%m-%d') || ',' || calls::VARCHAR || ','
                  || services::VARCHAR || ',' || {_quoted("version")}, chr(10)
                  ORDER BY version) || chr(10)
FROM rows GROUP BY org_id, call_date
"""

NEEDS_SQL = f"""
WITH valid AS (
    SELECT org_id, crn, code, unmet, count(*) AS n
    FROM needs WHERE code IS NOT NULL GROUP BY ALL
), demo_values AS (
    -- one sent value per answer to a slot's question: mapped (empty when unmapped) or stripped
    SELECT a.org_id, a.crn, v.slot,
           CASE WHEN v.mapped THEN coalesce(m.sent, '') ELSE a.value END AS sent
    FROM answers a
    JOIN value_maps v
      ON v.org_id = a.org_id AND v.question_key = a.question_key AND v.answer_key IS NULL
    LEFT JOIN value_maps m
      ON m.org_id = a.org_id AND m.slot = v.slot AND m.answer_key = a.key
    WHERE a.value IS NOT NULL AND a.value <> ''
), demographics AS (
    SELECT org_id, crn,
{_SLOT_VALUES}
    FROM demo_values WHERE sent <> '' GROUP BY org_id, crn
), rows AS (
    SELECT r.org_id, r.call_date, r.crn, r.zip,
           coalesce(v.code, '') AS code, coalesce(v.n, 0) AS n,
           coalesce(v.unmet, '') AS unmet,
{_SLOT_COLUMNS}
    FROM rec r
    LEFT JOIN valid v USING (org_id, crn)
    LEFT JOIN demographics d USING (org_id, crn)
)
SELECT org_id, call_date,
       string_agg(concat_ws(',', strftime(call_date, '%Y-%m-%d'), zip, code, n::VARCHAR, unmet,
                            {_SLOT_FIELDS}, {_quoted("crn")}),
                  chr(10) ORDER BY crn, code, unmet) || chr(10)
FROM rows GROUP BY org_id, call_date
"""


def _write(
    out_dir: Path,
    bodies: dict[tuple[str, dt.date], tuple[str, str]],
    starts: dict[str, dt.date],
    last: dt.date,
) -> int:
    written = 0
    for org_id, first in starts.items():
        folder = out_dir / org_id / "daily"
        folder.mkdir(parents=True, exist_ok=True)
        for offset in range((last - first).days + 1):
            day = first + dt.timedelta(days=offset)
            summary, needs = bodies.get((org_id, day), ("", ""))
            stem = f"{org_id}_daily_{day.isoformat()}"
            (folder / f"{stem}_summary.csv").write_bytes((SUMMARY_HEADER + summary).encode())
            (folder / f"{stem}_needs.csv").write_bytes((NEEDS_HEADER + needs).encode())
            written += 2
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="the SQLite store")
    parser.add_argument("--orgs-dir", type=Path, required=True)
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    figures = make_daily_files(args.source, args.orgs_dir, args.first, args.last, args.out)
    status = Path("/proc/self/status").read_text().splitlines()
    figures["peak_rss_mb"] = next(int(s.split()[1]) for s in status if s.startswith("VmHWM")) / 1024
    print(json.dumps(figures, default=str))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
