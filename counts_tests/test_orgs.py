"""Organization files (§1): validation, YAML 1.1 traps, clear errors, isolation of bad files."""

from __future__ import annotations

import datetime as dt
import textwrap

from counts_assets.core.orgs.registry import load_registry

FIRST = dt.date(2025, 1, 1)
GOOD = """\
id: gateway211
name: Gateway 2-1-1
timezone: America/Chicago
share_from: 2026-10-05
contact_forms: [211 Contact]
interaction_filter:
  all_211: true
"""


def _load(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return load_registry(tmp_path, FIRST)


def _errors(registry):
    return [(e.path.rsplit("/", 1)[-1], e.field, e.reason) for e in registry.errors]


def test_good_file_loads(tmp_path):
    registry = _load(tmp_path, {"gateway.yaml": GOOD})
    assert registry.errors == []
    org = registry.orgs["gateway211"]
    assert org.share_from == dt.date(2026, 10, 5)
    assert org.remote_dir == "gateway211"
    assert org.interaction_filter.all_records


def test_yaml_1_1_scalars_stay_text(tmp_path):
    text = GOOD.replace(
        "interaction_filter:\n  all_211: true\n",
        "interaction_filter:\n  any_of:\n    - question: 211\n      answers: [Yes, No, On, 211, "
        "01234, 1:30, 08:00, ~x]\n"
        "demographics:\n  children_in_household:\n    question: Kids?\n    values:\n"
        "      Yes: True\n      No: no\n      01234: 1:30\n      2-1-1: 0x1F\n",
    )
    registry = _load(tmp_path, {"gateway.yaml": text})
    assert registry.errors == []
    org = registry.orgs["gateway211"]
    condition = org.interaction_filter.any_of[0]
    assert condition.question == "211"
    assert condition.answers == ["Yes", "No", "On", "211", "01234", "1:30", "08:00", "~x"]
    assert org.demographics["children_in_household"].values == {
        "Yes": "True",
        "No": "no",
        "01234": "1:30",
        "2-1-1": "0x1F",
    }


def test_unknown_key_is_an_error_naming_file_and_field(tmp_path):
    registry = _load(
        tmp_path,
        {"bad.yaml": GOOD + "colour: blue\n", "good.yaml": GOOD.replace("gateway211", "other211")},
    )
    assert list(registry.orgs) == ["other211"]
    assert _errors(registry) == [("bad.yaml", "colour", "unknown key")]


def test_each_bad_field_is_named(tmp_path):
    bad = (
        GOOD.replace("gateway211", "Gateway-211")
        .replace("America/Chicago", "America/Chicagoo")
        .replace("2026-10-05", "2026-13-05")
        .replace("[211 Contact]", "[]")
        .replace("all_211: true", "all_211: false")
        + "demographics:\n  shoe_size:\n    question: Shoes\n"
        + "delivery:\n  remote_dir: ../elsewhere\n"
    )
    fields = {f for _, f, _ in _errors(_load(tmp_path, {"bad.yaml": bad}))}
    assert fields == {
        "id",
        "timezone",
        "share_from",
        "contact_forms",
        "interaction_filter.all_211",
        "demographics.shoe_size.[key]",
        "delivery.remote_dir",
    }


def test_filter_needs_exactly_one_key(tmp_path):
    both = GOOD.replace(
        "  all_211: true\n",
        "  all_211: true\n  any_of:\n    - question: Line\n      answers: [2-1-1]\n",
    )
    neither = GOOD.replace("  all_211: true\n", "  {}\n").replace(
        "interaction_filter:\n  {}", "interaction_filter: {}"
    )
    for text in (both, neither):
        errors = _errors(_load(tmp_path, {"f.yaml": text}))
        assert errors[0][1] == "interaction_filter"
        assert "exactly one of `all_211` and `any_of`" in errors[0][2]


def test_value_map_keys_that_match_each_other_must_agree(tmp_path):
    text = (
        GOOD + "demographics:\n  age:\n    question: Age\n    values:\n      Teen: '0-17'\n"
        "      ' teen': '13-17'\n"
    )
    errors = _errors(_load(tmp_path, {"f.yaml": text}))
    assert errors[0][1] == "demographics.age.values"
    assert "match each other but map to different values" in errors[0][2]


def test_duplicate_id_rejects_both_files(tmp_path):
    registry = _load(
        tmp_path, {"a.yaml": GOOD, "b.yaml": GOOD, "c.yaml": GOOD.replace("gateway211", "c211")}
    )
    assert list(registry.orgs) == ["c211"]
    assert [(p, f) for p, f, _ in _errors(registry)] == [("a.yaml", "id"), ("b.yaml", "id")]
    assert "used by several files" in registry.errors[0].reason


def test_a_stray_copy_does_not_take_the_live_centre_out(tmp_path):
    registry = _load(tmp_path, {"gateway211.yaml": GOOD, "gateway211-new.yaml": GOOD})
    assert list(registry.orgs) == ["gateway211"]
    ((path, field, reason),) = _errors(registry)
    assert (path, field) == ("gateway211-new.yaml", "id")
    assert "belongs to" in reason and "gateway211.yaml" in reason


def test_a_link_leading_out_of_the_folder_is_refused_without_showing_its_target(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root_password_hash: CANARY-SECRET-1\n")
    folder = tmp_path / "orgs"
    folder.mkdir()
    (folder / "gateway211.yaml").write_text(GOOD)
    (folder / "shadow.yaml").symlink_to(secret)
    (folder / "..data").mkdir()
    (folder / "..data" / "c211.yaml").write_text(GOOD.replace("gateway211", "c211"))
    (folder / "c211.yaml").symlink_to(folder / "..data" / "c211.yaml")  # as a ConfigMap mounts
    registry = load_registry(folder, dt.date(2025, 1, 1))
    assert sorted(registry.orgs) == ["c211", "gateway211"]
    (error,) = registry.errors
    assert error.path.endswith("shadow.yaml")
    assert error.reason == "a link leading out of the organizations folder"
    assert "CANARY" not in str(registry.errors)


def test_share_from_before_first_date_is_a_config_error(tmp_path):
    errors = _errors(_load(tmp_path, {"a.yaml": GOOD.replace("2026-10-05", "2024-12-31")}))
    assert errors == [("a.yaml", "share_from", "2024-12-31 is before COUNTS_FIRST_DATE 2025-01-01")]


def test_unreadable_yaml_and_duplicate_keys_are_reported(tmp_path):
    registry = _load(
        tmp_path,
        {"a.yaml": "id: [unclosed\n", "b.yaml": GOOD + "name: again\n", "c.yaml": "- a list\n"},
    )
    errors = _errors(registry)
    # YAML errors name the line (1-based) where the problem is.
    assert [(p, f) for p, f, _ in errors] == [
        ("a.yaml", "line 2"),
        ("b.yaml", "line 8"),
        ("c.yaml", "(file)"),
    ]
    assert "duplicate key 'name'" in errors[1][2]
    assert "mapping" in errors[2][2]


def test_only_yaml_files_are_read(tmp_path):
    registry = _load(tmp_path, {"a.yaml": GOOD, "notes.txt": "not an org", "b.yml": GOOD})
    # A `.yml` file is not read, but reported: someone meant it as an organization file.
    assert list(registry.orgs) == ["gateway211"]
    assert _errors(registry) == [("b.yml", "(file)", "not read: name it <id>.yaml, not .yml")]


def test_two_orgs_may_not_share_a_delivery_folder(tmp_path):
    other = GOOD.replace("gateway211", "other211")
    registry = _load(
        tmp_path,
        {
            "gateway.yaml": GOOD,
            "other.yaml": other + "delivery:\n  remote_dir: gateway211/sub\n",
            "third.yaml": GOOD.replace("gateway211", "third211"),
        },
    )
    assert list(registry.orgs) == ["third211"]
    assert sorted((p, f) for p, f, _ in _errors(registry)) == [
        ("gateway.yaml", "delivery.remote_dir"),
        ("other.yaml", "delivery.remote_dir"),
    ]
    assert "each organization needs its own" in registry.errors[0].reason
