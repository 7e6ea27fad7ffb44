"""The four source tables and the contract columns read from each. Nothing else is read:
other columns may hold personal data."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

RECORD_COLUMNS = [
    "org_id",
    "call_report_num",
    "contact_form",
    "report_version",
    "started_at",
    "status",
    "deleted",
    "postal_code",
]
ANSWER_COLUMNS = ["org_id", "call_report_num", "question", "answer"]
NEED_COLUMNS = ["org_id", "call_report_num", "taxonomy_code", "unmet"]
REFERRAL_COLUMNS = ["org_id", "call_report_num", "referrals"]


@dataclass(frozen=True)
class SourceTables:
    """What one run reads: records of its orgs and dates, and the rows attached to them.
    `referrals` is already counted per record."""

    records: pd.DataFrame
    answers: pd.DataFrame
    needs: pd.DataFrame
    referrals: pd.DataFrame

    @classmethod
    def empty(cls) -> SourceTables:
        return cls(
            pd.DataFrame(columns=RECORD_COLUMNS),
            pd.DataFrame(columns=ANSWER_COLUMNS),
            pd.DataFrame(columns=NEED_COLUMNS),
            pd.DataFrame(columns=REFERRAL_COLUMNS),
        )

    @classmethod
    def concat(cls, parts: list[SourceTables]) -> SourceTables:
        if not parts:
            return cls.empty()
        return cls(
            *(
                pd.concat([getattr(p, name) for p in parts], ignore_index=True)
                for name in ("records", "answers", "needs", "referrals")
            )
        )
