"""Hostile and careless organization files: each is reported with its path, its field or line
and a reason in the project's words; none stops the other organizations, whose files are still
made byte for byte; and a canary planted in the bad file never reaches the files, the outbox or
the Dagster instance."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time

import dagster as dg
import pytest

from counts_assets.core.orgs.registry import check_org_file, load_registry
from counts_assets.defs.delivery.sensors import delivery_sensor
from counts_assets.defs.organizations.sensors import org_registry_sensor
from counts_assets.defs.shared.resources import OrgRegistry
from counts_assets.onboarding import main as onboarding
from counts_tests.golden_store import GOLDEN_DIR, OTHER_ORG_YAML
from counts_tests.platform import platform_on

FIRST = dt.date(2025, 1, 1)
CANARY = "CANARY-ORG-FILE-555-0147"
BOMB = "\n".join(
    ["a: &a [CANARY-ORG-FILE-555-0147, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
)


def bad_org(text: str) -> str:
    return OTHER_ORG_YAML.replace("otherorg", "badorg") + text


def write(path, content) -> None:
    path.write_text(content, encoding="utf-8")


CASES = {
    "folder named like a file": (
        lambda d: (d / "folder.yaml").mkdir(),
        "folder.yaml",
        "(file)",
        "a folder, not an organization file",
    ),
    "broken link": (
        lambda d: os.symlink(d / "nowhere", d / "dangling.yaml"),
        "dangling.yaml",
        "(file)",
        "a broken link",
    ),
    ".yml name": (
        lambda d: write(d / "newco211.yml", bad_org("")),
        "newco211.yml",
        "(file)",
        "name it <id>.yaml",
    ),
    "alias bomb": (lambda d: write(d / "bomb.yaml", BOMB), "bomb.yaml", "line 1", "anchor"),
    "alias": (
        lambda d: write(d / "alias.yaml", bad_org("x: &n CANARY-ORG-FILE-555-0147\ny: *n\n")),
        "alias.yaml",
        "line",
        "anchor",
    ),
    "tag": (
        lambda d: write(d / "tag.yaml", bad_org("name2: !!python/object CANARY-ORG-FILE\n")),
        "tag.yaml",
        "line 11",
        "a YAML tag",
    ),
    "10 MB file": (
        lambda d: write(d / "huge.yaml", bad_org(f"# {CANARY}" + "x" * 10_000_000 + "\n")),
        "huge.yaml",
        "(file)",
        "at most 64 KiB",
    ),
    "YAML syntax error": (
        lambda d: write(d / "syntax.yaml", bad_org("demographics: [unclosed\n")),
        "syntax.yaml",
        "line",
        "not valid YAML",
    ),
    "duplicate key": (
        lambda d: write(d / "dup.yaml", bad_org("name: again\n")),
        "dup.yaml",
        "line 11",
        "duplicate key 'name'",
    ),
    "all_211: yes": (
        lambda d: write(d / "yes.yaml", bad_org("").replace("all_211: true", "all_211: yes")),
        "yes.yaml",
        "interaction_filter.all_211",
        "only `true` is allowed",
    ),
    "unknown key": (
        lambda d: write(d / "unknown.yaml", bad_org(f"notes: {CANARY}\n")),
        "unknown.yaml",
        "notes",
        "unknown key",
    ),
    "not UTF-8": (
        lambda d: (d / "latin.yaml").write_bytes(bad_org("").encode() + b"name2: caf\xe9\n"),
        "latin.yaml",
        "line 11",
        "not UTF-8 text",
    ),
}


@pytest.fixture
def time_limit():
    """Fails the test after 20 s instead of letting a bad parser run for minutes."""

    def expired(signum, frame):
        raise TimeoutError("the test ran past its 20 s time limit")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_file_is_reported_and_stops_nothing_else(tmp_path, case, time_limit):
    make, name, where, reason = CASES[case]
    with platform_on(tmp_path) as platform:
        make(platform.orgs_dir)
        started = time.perf_counter()
        registry = load_registry(platform.orgs_dir, FIRST)
        assert time.perf_counter() - started < 2  # rejected before anything is expanded
        assert sorted(registry.orgs) == ["otherorg", "testorg"]
        (error,) = [e for e in registry.errors if e.path.endswith(name)]
        assert error.field.startswith(where) and reason in error.reason, error
        assert "pydantic" not in error.reason and "http" not in error.reason

        resources = {"org_registry": platform.resources["org_registry"]}
        context = dg.build_sensor_context(instance=platform.instance, resources=resources)
        result = org_registry_sensor(context)  # reports, never raises
        for event in result.asset_events:
            platform.instance.report_runless_asset_event(event)
        (shown,) = platform.instance.fetch_observations(
            dg.AssetKey("organization_files"), limit=1
        ).records
        metadata = {k: v.value for k, v in shown.asset_observation.metadata.items()}
        assert metadata["registered"] == 2 and metadata["rejected"] == 1
        assert f"| {name} | {error.field} |" in metadata["rejected_files"]
        context = dg.build_sensor_context(instance=platform.instance, resources=platform.resources)
        delivery_sensor(context)

        assert platform.run("daily_export_job", "2026-03-08|testorg").success
        made = platform.export_dir / "testorg" / "daily"
        for golden in GOLDEN_DIR.glob("testorg_daily_2026-03-08_*.csv"):
            assert (made / golden.name).read_bytes() == golden.read_bytes()
    leaked = [
        p
        for root in (platform.export_dir, platform.home)
        for p in root.rglob("*")
        if p.is_file() and CANARY.encode() in p.read_bytes()
    ]
    assert leaked == []


def test_the_onboarding_command_prints_the_same_reasons_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    write(path, bad_org("name: again\n"))
    assert onboarding([str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: line 11: not valid YAML" in out and "duplicate key 'name'" in out
    assert "Traceback" not in out

    unsigned = bad_org("").split("permission:")[0]
    write(path, unsigned.replace("share_from: 2026-03-01", "share_from: 2019-01-01"))
    assert onboarding([str(path)]) == 1
    out = capsys.readouterr().out
    assert "share_from" in out and "COUNTS_FIRST_DATE" in out


def test_rejections_are_logged_once_not_at_every_tick(tmp_path, capfd):
    orgs = tmp_path / "orgs"
    orgs.mkdir()
    write(orgs / "dup.yaml", bad_org("name: again\n"))
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        cursor = None
        logged = []
        for _ in range(3):
            context = dg.build_sensor_context(
                instance=instance,
                cursor=cursor,
                resources={
                    "org_registry": OrgRegistry(orgs_dir=str(orgs), first_date="2025-01-01")
                },
            )
            org_registry_sensor(context)
            cursor = context.cursor
            logged.append(capfd.readouterr().err.count("organization file rejected"))
        assert logged == [1, 0, 0]


# Files that once raised out of the loader (TypeError, RecursionError) and so stopped every
# organization: each is now rejected alone, with its line and reason, before YAML builds it.
CORPUS = {
    "complex.yaml": ("id: zzorg\n? [a, b]\n: c\n", "line 2", "a list or block used as a key"),
    "mapkey.yaml": ("id: zzorg\n? {a: b}\n: c\n", "line 2", "a list or block used as a key"),
    "blockkey.yaml": ("id: zzorg\n? a: b\n: c\n", "line 2", "a list or block used as a key"),
    "deep.yaml": ("v: " + "[" * 400 + "]" * 400 + "\n", "line 1", "nested more than 10"),
    "deepmap.yaml": (
        "v:" + "".join(f"\n{' ' * i}k:" for i in range(1, 60)) + " x\n",
        "line",
        "nested",
    ),
    "many.yaml": ("v: [" + ",".join(["a"] * 10_001) + "]\n", "line 1", "more than 10000 values"),
    "bigger.yaml": ("v: [" + ",".join(["a"] * 100_000) + "]\n", "(file)", "at most 64 KiB"),
    "tag_local.yaml": ("id: !local x\n", "line 1", "a YAML tag"),
    "tag_core.yaml": ("id: !!str x\n", "line 1", "a YAML tag"),
    "tag_verbatim.yaml": ("id: !<tag:yaml.org,2002:str> x\n", "line 1", "a YAML tag"),
    "tag_nonspecific.yaml": ("id: ! x\n", "line 1", "a YAML tag"),
    "tag_directive.yaml": ("%TAG !e! tag:example.com,2000:\n---\nid: !e!x y\n", "line 1", "tag"),
    "tag_on_list.yaml": ("contact_forms: !!seq [a]\n", "line 1", "a YAML tag"),
    "tag_on_key.yaml": ("!!str id: x\n", "line 1", "a YAML tag"),
    "two_documents.yaml": ("id: a\n---\nid: b\n", "line 2", "a single document"),
    "a_list.yaml": ("[a, b]\n", "(file)", "must hold a mapping"),
    "utf16.yaml": ("\ufeffid: x\n".encode("utf-16"), "line 1", "not UTF-8 text"),
}


def _write_corpus(folder) -> None:
    for name, (content, _, _) in CORPUS.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (folder / name).write_bytes(data)


def test_a_corpus_of_hostile_yaml_is_rejected_file_by_file_and_the_others_are_delivered(
    tmp_path, time_limit
):
    with platform_on(tmp_path) as platform:
        _write_corpus(platform.orgs_dir)
        # A BOM and CRLF line ends are ordinary text: such a file is read like any other.
        testorg = platform.orgs_dir / "testorg.yaml"
        testorg.write_bytes(b"\xef\xbb\xbf" + testorg.read_bytes().replace(b"\n", b"\r\n"))
        undecodable_name = os.fsdecode(b"\xff\xfe.yaml")
        (platform.orgs_dir / undecodable_name).write_text("[a]\n")

        started = time.perf_counter()
        registry = load_registry(platform.orgs_dir, FIRST)
        assert time.perf_counter() - started < 2
        assert sorted(registry.orgs) == ["otherorg", "testorg"]
        for name, (_, where, reason) in CORPUS.items():
            (error,) = [e for e in registry.errors if e.path.endswith("/" + name)]
            assert error.field.startswith(where) and reason in error.reason, (name, error)
        (shown_name,) = [e.path for e in registry.errors if e.path.endswith("\ufffd.yaml")]
        shown_name.encode("utf-8")  # storable and printable

        resources = {"org_registry": platform.resources["org_registry"]}
        context = dg.build_sensor_context(instance=platform.instance, resources=resources)
        for event in org_registry_sensor(context).asset_events:
            platform.instance.report_runless_asset_event(event)
        assert platform.run("daily_export_job", "2026-03-08|testorg").success
        context = dg.build_sensor_context(instance=platform.instance, resources=platform.resources)
        requests = list(delivery_sensor(context).run_requests)
        assert requests and all(platform.execute(r).success for r in requests)
        delivered = platform.export_dir.parent / "outbox" / "testorg"
        for golden in GOLDEN_DIR.glob("testorg_daily_2026-03-08_*.csv"):
            assert (delivered / golden.name).read_bytes() == golden.read_bytes()

    assert onboarding([str(platform.orgs_dir / "complex.yaml")]) == 1


def test_a_file_rewritten_while_the_registry_reads_it_never_stops_the_registry(tmp_path):
    with platform_on(tmp_path) as platform:
        changing = platform.orgs_dir / "changing.yaml"
        versions = [bad_org(""), "id: zzorg\n? [a, b]\n: c\n", "", "v: " + "[" * 400]
        stop = threading.Event()

        def rewrite() -> None:
            n = 0
            while not stop.is_set():
                # Written in place, not renamed: a reader may see any prefix of any version.
                with open(changing, "w", encoding="utf-8") as handle:
                    text = versions[n % len(versions)]
                    handle.write(text[: len(text) // 2])
                    handle.flush()
                    handle.write(text[len(text) // 2 :])
                n += 1

        writer = threading.Thread(target=rewrite)
        writer.start()
        try:
            for _ in range(300):
                registry = load_registry(platform.orgs_dir, FIRST)
                assert {"otherorg", "testorg"} <= set(registry.orgs)
        finally:
            stop.set()
            writer.join()


def test_an_unexpected_error_while_reading_one_file_rejects_that_file_alone(tmp_path):
    # A path Python refuses before the file system sees it raises ValueError, not OSError.
    org, errors = check_org_file(tmp_path / "nul\x00.yaml", FIRST)
    assert org is None
    (error,) = errors
    assert error.field == "(file)" and "could not be read (ValueError)" in error.reason
