"""Pairs on disk: publishing survives a process killed at any instant (real SIGKILL), two
processes publishing one pair at once never leave or show a mixed pair, and a pair that cannot
be written fails alone, leaving the previous pair and no temporary file, naming the path and
what happened, and retried only when it may pass; a run's pairs stay locked and journalled
until their batch is recorded."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from counts_assets.core.exports.build import Findings
from counts_assets.core.exports.run import FileOutcome, RunOutcome, publish_pairs
from counts_assets.core.files.periods import Target
from counts_assets.core.pairs.store import KINDS, PairPathError, PairStore, sha256
from counts_tests.mounts import tmpfs

ORG, DAY = "gatewayorg", "2026-10-15"


def contents(tag: str) -> dict[str, tuple[bytes, int]]:
    return {
        "summary": (f"summary {tag}\n".encode(), 1),
        "needs": (f"needs {tag}\n".encode(), 1),
    }


def publish(root: Path, tag: str) -> None:
    with PairStore(root).locked(ORG, DAY) as pair:
        pair.publish(contents(tag))
        pair.drop_journal()


def on_disk(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / ORG / "daily").iterdir() if p.is_file()}


def tag_of(pair_contents: dict[str, bytes]) -> set[str]:
    return {content.decode().split()[1] for content in pair_contents.values()}


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from counts_assets.core.pairs import store

    root, kill_at = Path(sys.argv[1]), sys.argv[2]
    real_replace = os.replace
    renamed = []

    def replace(src, dst):
        if kill_at == "before-journal" and str(dst).endswith(".journal"):
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
        if str(dst).endswith(".csv"):
            renamed.append(dst)
            if kill_at == "between-renames" and len(renamed) == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            if kill_at == "before-record" and len(renamed) == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    store.os.replace = replace
    with store.PairStore(root).locked("gatewayorg", "2026-10-15") as pair:
        pair.publish({"summary": (b"summary new\\n", 1), "needs": (b"needs new\\n", 1)})
        pair.drop_journal()
    """
)


def killed_publish(root: Path, kill_at: str) -> None:
    child = subprocess.run([sys.executable, "-c", CHILD, str(root), kill_at], check=False)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    ("kill_at", "after_repair", "journal_left"),
    [
        ("before-journal", "old", False),  # temps written, never vouched for: rolled back
        ("between-renames", "new", True),  # File 2 renamed, File 1 not: rolled forward
        ("before-record", "new", True),  # both renamed, not recorded: the journal vouches
    ],
)
def test_a_publish_killed_at_any_instant_is_repaired_by_the_next_look(
    tmp_path, kill_at, after_repair, journal_left
):
    publish(tmp_path, "old")
    killed_publish(tmp_path, kill_at)
    with PairStore(tmp_path).locked(ORG, DAY) as pair:
        found = pair.read()
        assert tag_of(found.contents) == {after_repair}
        assert (found.journal is not None) == journal_left
        if found.journal is not None:
            assert found.journal == found.version
        pair.drop_journal()
    assert sorted(on_disk(tmp_path)) == [
        f"{ORG}_daily_{DAY}_needs.csv",
        f"{ORG}_daily_{DAY}_summary.csv",
    ]  # no temporary file left
    assert not list((tmp_path / ".pairs").rglob("*.journal"))


PUBLISHER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from counts_assets.core.pairs.store import PairStore

    root, name, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for i in range(rounds):
        tag = f"{name}{i}"
        with PairStore(root).locked("gatewayorg", "2026-10-15") as pair:
            pair.publish({"summary": (f"summary {tag}\\n".encode(), 1),
                          "needs": (f"needs {tag}\\n".encode(), 1)})
            pair.drop_journal()
    """
)


def test_two_processes_publishing_one_pair_never_mix_it(tmp_path):
    publish(tmp_path, "start")
    writers = [
        subprocess.Popen([sys.executable, "-c", PUBLISHER, str(tmp_path), name, "150"])
        for name in ("a", "b")
    ]
    reads, mixed = 0, 0
    while any(w.poll() is None for w in writers):
        with PairStore(tmp_path).locked(ORG, DAY) as pair:
            mixed += len(tag_of(pair.read().contents)) != 1
            reads += 1
    assert [w.wait() for w in writers] == [0, 0]
    final = on_disk(tmp_path)
    assert reads > 0 and mixed == 0 and len(tag_of(final)) == 1 and len(final) == 2


def test_a_folder_at_a_file_path_fails_that_pair_and_keeps_nothing_half_done(tmp_path):
    publish(tmp_path, "old")
    summary = tmp_path / ORG / "daily" / f"{ORG}_daily_{DAY}_summary.csv"
    summary.unlink()
    summary.mkdir()
    with (
        pytest.raises(PairPathError, match=str(summary)),
        PairStore(tmp_path).locked(ORG, DAY) as pair,
    ):
        pair.publish(contents("new"))
    assert tag_of({"needs": on_disk(tmp_path)[f"{ORG}_daily_{DAY}_needs.csv"]}) == {"old"}
    assert not [p for p in (tmp_path / ORG / "daily").iterdir() if p.name.endswith(".part")]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB file system."""
    with tmpfs(tmp_path / "disk", "size=64k") as disk:
        yield disk


def test_a_full_disk_fails_the_pair_and_keeps_the_previous_one(tiny_disk):
    publish(tiny_disk, "old")
    before = on_disk(tiny_disk)
    big = {"summary": (b"x" * 40_000, 1), "needs": (b"y" * 40_000, 1)}
    with pytest.raises(OSError) as error, PairStore(tiny_disk).locked(ORG, DAY) as pair:
        pair.publish(big)
    assert "No space left" in str(error.value)
    assert on_disk(tiny_disk) == before  # the previous pair, whole; no temporary file
    assert not list((tiny_disk / ".pairs").rglob("*.journal*"))
    publish(tiny_disk, "later")  # space is back for a pair that fits
    assert tag_of(on_disk(tiny_disk)) == {"later"}


def test_a_publish_that_fails_keeps_the_journal_of_an_unrecorded_pair(tiny_disk):
    """A pair published and never recorded (its run ended in between), then a publish of it
    that fails on a full disk: the older journal still vouches for the pair on disk."""
    with PairStore(tiny_disk).locked(ORG, DAY) as pair:
        pair.publish(contents("unrecorded"))  # no record: the journal stays
    big = {"summary": (b"x" * 40_000, 1), "needs": (b"y" * 40_000, 1)}
    with pytest.raises(OSError), PairStore(tiny_disk).locked(ORG, DAY) as pair:
        pair.publish(big)
    with PairStore(tiny_disk).locked(ORG, DAY) as pair:
        found = pair.read()
        assert tag_of(found.contents) == {"unrecorded"}
        assert found.journal == found.version


def test_journal_names_both_files_by_sha256(tmp_path):
    with PairStore(tmp_path).locked(ORG, DAY) as pair:
        pair.publish(contents("v1"))
        journal = json.loads(next((tmp_path / ".pairs").rglob("*.journal")).read_text())
    assert journal == {
        "summary_sha256": sha256(b"summary v1\n"),
        "needs_sha256": sha256(b"needs v1\n"),
    }
    assert os.path.exists(tmp_path / ".pairs" / ORG / "daily" / f"{DAY}.lock")


def test_a_runs_pairs_are_published_in_batches_whose_locks_hold_until_recorded(tmp_path):
    """The caller records a batch while its pairs are still locked and journalled: nobody can
    look at a pair whose record is not written yet, and a crash before the record leaves the
    journal that vouches for it. Once the caller resumes, the journals go and the locks free."""
    days = [dt.date(2026, 10, d) for d in range(1, 6)]
    files = {
        (ORG, str(day)): FileOutcome(Target(ORG, str(day), day, day), contents=contents(str(day)))
        for day in reversed(days)  # published in (org, period) order whatever the run's order
    }
    control_dir = tmp_path / ".pairs" / ORG / "daily"
    seen = []
    for batch in publish_pairs(
        RunOutcome(Findings.concat([]), files), PairStore(tmp_path), per_batch=2
    ):
        periods = [result.target.period for result in batch]
        seen.append(periods)
        for period in periods:
            assert (control_dir / f"{period}.journal").exists()
            with (
                open(control_dir / f"{period}.lock", "a+b") as lock,
                pytest.raises(BlockingIOError),
            ):
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert seen == [[str(d) for d in days[:2]], [str(d) for d in days[2:4]], [str(days[4])]]
    assert not list(control_dir.glob("*.journal"))
    for day in days:
        with open(control_dir / f"{day}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
        assert tag_of(on_disk_day(tmp_path, str(day))) == {str(day)}


def on_disk_day(root: Path, day: str) -> dict[str, bytes]:
    return {k: (root / ORG / "daily" / f"{ORG}_daily_{day}_{k}.csv").read_bytes() for k in KINDS}


def publish_one(root: Path, pair: dict[str, tuple[bytes, int]]) -> FileOutcome:
    """One pair through a run's publish, as an export run does it."""
    day = dt.date.fromisoformat(DAY)
    result = FileOutcome(Target(ORG, DAY, day, day), contents=pair)
    for _ in publish_pairs(RunOutcome(Findings.concat([]), {(ORG, DAY): result}), PairStore(root)):
        pass  # nothing to record
    return result


def test_a_full_disk_names_the_file_it_could_not_write_and_may_pass(tiny_disk):
    publish(tiny_disk, "old")
    before = on_disk(tiny_disk)
    result = publish_one(tiny_disk, {"summary": (b"x" * 40_000, 1), "needs": (b"y" * 40_000, 1)})
    temp = tiny_disk / ORG / "daily" / f".{ORG}_daily_{DAY}_summary.csv.part"  # after File 2
    assert result.failures == [
        f"{temp}: not published, the disk is full (No space left on device); the previous pair "
        "stays"
    ]
    assert result.retryable and not result.published  # space may come back
    assert on_disk(tiny_disk) == before


BOOK = Path(".pairs") / ORG / "daily"
FOLDER = Path(ORG) / "daily"


@pytest.mark.parametrize(
    ("taken", "by", "what"),
    [
        pytest.param(
            FOLDER / f".{ORG}_daily_{DAY}_needs.csv.part",
            "folder",
            "a folder where a file must be",
            id="temporary file",
        ),
        pytest.param(
            FOLDER / f"{ORG}_daily_{DAY}_summary.csv", "folder", "not a regular file", id="File 1"
        ),
        pytest.param(
            BOOK / f"{DAY}.journal", "folder", "a folder where a file must be", id="journal"
        ),
        pytest.param(
            BOOK / f"{DAY}.journal.part",
            "folder",
            "a folder where a file must be",
            id="staged journal",
        ),
        pytest.param(BOOK / f"{DAY}.lock", "folder", "a folder where a file must be", id="lock"),
        pytest.param(BOOK, "file", "not a folder", id="locks folder"),
        pytest.param(BOOK.parent, "file", "not a folder", id="org's locks folder"),
        pytest.param(FOLDER, "file", "not a folder", id="cadence folder"),
        pytest.param(FOLDER.parent, "file", "not a folder", id="org folder"),
    ],
)
def test_a_path_taken_by_something_else_names_it_and_is_not_retried(tmp_path, taken, by, what):
    path = tmp_path / taken
    path.parent.mkdir(parents=True, exist_ok=True)
    if by == "folder":
        path.mkdir()
    else:
        path.write_text("in the way\n")
    result = publish_one(tmp_path, contents("new"))
    (line,) = result.failures
    assert line.startswith(f"{path}: not published, it ") and what in line
    assert line.endswith("; the previous pair stays")
    assert not result.retryable  # it stays in the way until someone moves it
    assert path.is_dir() if by == "folder" else path.read_text() == "in the way\n"


DENIED = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from counts_tests.test_pair_store import contents, publish_one

    result = publish_one(Path(sys.argv[1]), contents("new"))
    print(result.retryable, *result.failures, sep="\\n")
    """
)


def test_a_folder_the_platform_may_not_write_is_named_and_not_retried(tmp_path):
    """Root without the capability to override file permissions (real refusals by the
    kernel), publishing into an exports folder that belongs to someone else."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop the capability")
    publish(tmp_path, "old")
    folder = tmp_path / ORG / "daily"
    os.chown(folder, 65534, 65534)  # nobody's, 0755
    caps = "-dac_override,-dac_read_search"
    child = subprocess.run(
        ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
        + [sys.executable, "-c", DENIED, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    retryable, line = child.stdout.splitlines()
    temp = folder / f".{ORG}_daily_{DAY}_needs.csv.part"
    assert line == f"{temp}: not published, permission denied; the previous pair stays"
    assert retryable == "False" and tag_of(on_disk(tmp_path)) == {"old"}
