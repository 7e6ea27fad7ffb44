"""Demographic slots (§1)."""

from __future__ import annotations

import pandas as pd

from counts_assets.core.rules.demographics import map_demographics
from counts_tests.factories import answers_frame, make_org

ORG = make_org(
    demographics={
        "age": {
            "question": "Caller Age",
            "values": {"Under 18": "0-17", "18 to 24": "18-24", "Refused": "", "Yes": "Y;es"},
        },
        "gender": {"question": "Gender"},
        "source": {"question": "How Reached", "values": {"Phone": "Call", "Text": "Text, SMS"}},
    }
)


def _map(answers, records=("r1",)):
    included = pd.DataFrame(
        {"org_id": "testorg", "call_report_num": list(records), "period": "2026-10-15"},
        dtype=object,
    )
    demographics, unmapped = map_demographics(included, answers_frame(answers), {ORG.id: ORG})
    return demographics.set_index("call_report_num"), unmapped


def test_value_map_matches_after_strip_and_casefold_and_sends_the_value_as_written():
    got, unmapped = _map([("r1", " caller AGE", " UNDER 18 ")])
    assert got.loc["r1", "age"] == "0-17"
    assert unmapped.empty


def test_pass_through_is_sent_stripped():
    got, _ = _map([("r1", "Gender", "  Non-binary ")])
    assert got.loc["r1", "gender"] == "Non-binary"


def test_unmapped_answer_is_sent_empty_and_counted_per_distinct_answer():
    got, unmapped = _map(
        [
            ("r1", "Caller Age", "Unknown"),
            ("r2", "Caller Age", "Unknown"),
            ("r2", "How Reached", "Pigeon"),
        ],
        records=("r1", "r2"),
    )
    assert got.loc["r1", "age"] == "" and got.loc["r2", "source"] == ""
    assert unmapped[["slot", "answer", "count"]].values.tolist() == [
        ["age", "Unknown", 2],
        ["source", "Pigeon", 1],
    ]


def test_empty_answers_are_ignored_and_mapped_empty_values_dropped():
    got, unmapped = _map(
        [
            ("r1", "Caller Age", "   "),
            ("r1", "Caller Age", None),
            ("r1", "Caller Age", "Refused"),
            ("r1", "Caller Age", "18 to 24"),
        ]
    )
    assert got.loc["r1", "age"] == "18-24"
    assert unmapped.empty


def test_multi_answers_deduplicated_sorted_in_plain_string_order_and_joined():
    got, _ = _map(
        [
            ("r1", "Gender", "female"),
            ("r1", "Gender", "Female"),
            ("r1", "Gender", " Female"),
            ("r1", "Gender", "Éa"),
            ("r1", "Gender", "Z"),
            ("r1", "How Reached", "Phone"),
            ("r1", "How Reached", "phone"),
            ("r1", "How Reached", "Text"),
        ]
    )
    assert got.loc["r1", "gender"] == "Female;Z;female;Éa"
    assert got.loc["r1", "source"] == "Call;Text, SMS"


def test_slots_not_shared_stay_empty_and_other_questions_are_ignored():
    got, _ = _map([("r1", "Ethnicity", "Hispanic"), ("r1", "Notes", "private text")])
    assert got.loc["r1"].tolist() == ["testorg", "", "", "", "", "", ""]


def test_answers_of_other_orgs_are_not_used():
    got, _ = _map([("otherorg", "r1", "Gender", "Other")])
    assert got.loc["r1", "gender"] == ""
