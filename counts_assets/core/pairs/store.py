"""Pairs on disk: publishing that survives a crash at any instant, and reading a pair as one.

Every look at a pair that acts on it (a publish, a delivery, a repair) holds the pair's lock, a
`flock` on a lock file under `<exports>/.pairs/` (beside the exports, out of the folders people
read), so two runs never interleave. (The monthly diff reads the month's daily files without
their locks: it only informs, and an unreadable file leaves it out.) A publish writes both files
under temporary names and syncs them, then writes a journal naming both files and their
SHA-256s, then renames File 2 and File 1 into place. Whoever takes the lock next finds a journal
left by a publish that was cut short and finishes it (the temporary files were complete before
the journal existed), or, without a journal, removes temporary files that never made it. The
journal stays until the caller has recorded the publish, so a pair on disk that was never
recorded is still vouched for by its journal and can be recorded by the next look. A delivery
run also holds its organization's delivery lock from start to end. An error names the path it
is about and says in words what happened."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from counts_assets.core.files.layout import file_path

# File 2 before File 1: a reader that takes File 1 as the sign of a complete pair sees one.
KINDS = ("needs", "summary")


class PairPathError(OSError):
    """A pair's folder or file path is taken by something that is not a regular file."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(reason)
        self.filename = str(path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.args[0]}"


@dataclass(frozen=True)
class DiskFailure:
    """What a file system error on a pair means: the path, what happened in words, and whether
    a later try may succeed."""

    path: str
    reason: str
    may_pass: bool


def disk_failure(exc: OSError) -> DiskFailure:
    """A full disk or an I/O error may pass; a path taken by something else, a refusal or a
    read-only file system stays until someone fixes it."""
    path = str(exc.filename) if exc.filename is not None else "(no path)"
    if isinstance(exc, PairLockTimeout):
        return DiskFailure(path, exc.strerror, True)
    if isinstance(exc, PairPathError):
        return DiskFailure(path, exc.args[0], False)
    if isinstance(exc, IsADirectoryError):
        # A rename onto a folder names the folder second.
        return DiskFailure(str(exc.filename2 or path), "it is a folder where a file must be", False)
    if isinstance(exc, NotADirectoryError):
        return DiskFailure(
            str(_file_in_the_way(Path(path))), "it exists and is not a folder", False
        )
    if isinstance(exc, FileExistsError):
        return DiskFailure(path, "it exists and is not a folder", False)
    if isinstance(exc, PermissionError):
        return DiskFailure(path, "permission denied", False)
    if exc.errno == errno.EROFS:
        return DiskFailure(path, "the file system is read-only", False)
    if exc.errno == errno.ENOSPC:
        return DiskFailure(path, f"the disk is full ({exc.strerror})", True)
    if exc.errno == errno.EDQUOT:
        return DiskFailure(path, f"the disk quota is used up ({exc.strerror})", True)
    return DiskFailure(path, f"the file system failed ({exc.strerror or type(exc).__name__})", True)


def _file_in_the_way(path: Path) -> Path:
    """The first part of `path` that exists and is not a folder (what "not a directory" is
    about), or `path` itself."""
    for part in (*reversed(path.parents), path):
        if part.exists() and not part.is_dir():
            return part
    return path


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """OSErrors raised here name `path`: a write or a sync does not name its file."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


@dataclass(frozen=True)
class PublishedFile:
    kind: str
    path: Path
    size: int
    sha256: str
    rows: int


@dataclass(frozen=True)
class PairVersion:
    """The two SHA-256s that identify one publish of a pair."""

    summary_sha256: str
    needs_sha256: str

    def sha256(self, kind: str) -> str:
        return self.summary_sha256 if kind == "summary" else self.needs_sha256


@dataclass(frozen=True)
class PairBytes:
    """Both files of a pair as read under its lock."""

    paths: dict[str, Path]
    contents: dict[str, bytes]
    journal: PairVersion | None  # a publish found unrecorded-or-unfinished, now rolled forward

    @functools.cached_property
    def version(
        self,
    ) -> PairVersion:  # hashed once: delivery and recovery ask again
        return PairVersion(*(sha256(self.contents[k]) for k in ("summary", "needs")))


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class PairHandle:
    """A pair under its lock (from `PairStore.locked`)."""

    def __init__(self, store: PairStore, org_id: str, period: str) -> None:
        self.paths = {kind: file_path(store.root, org_id, period, kind) for kind in KINDS}
        self.folder = self.paths["summary"].parent
        # The pair's lock and publish journal, out of the folder the recipient's files are in.
        self.control_dir = store.root / ".pairs" / self.folder.relative_to(store.root)
        self.lock_path = self.control_dir / f"{period}.lock"
        self._journal = self.control_dir / f"{period}.journal"
        self._temps = {k: self.folder / f".{path.name}.part" for k, path in self.paths.items()}
        self.journal: PairVersion | None = None

    def repair(self) -> None:
        """Finish a publish that was cut short, or undo one that never reached its journal."""
        entry = _read_journal(self._journal)
        if entry is None:
            self._journal.unlink(missing_ok=True)
            for temp in self._temps.values():
                temp.unlink(missing_ok=True)
            return
        for kind in KINDS:
            temp = self._temps[kind]
            if temp.is_file() and sha256(temp.read_bytes()) == entry.sha256(kind):
                os.replace(temp, self.paths[kind])
            else:
                temp.unlink(missing_ok=True)
        _sync(self.folder)
        self.journal = entry

    def publish(self, contents: dict[str, tuple[bytes, int]]) -> list[PublishedFile]:
        """{kind: (bytes, data rows)}: both written and synced, journalled, then renamed."""
        for path in self.paths.values():
            if path.exists() and not path.is_file():
                raise PairPathError(path, "it exists and is not a regular file")
        journalled = False
        try:
            for kind, temp in self._temps.items():
                _write_synced(temp, contents[kind][0])
            version = PairVersion(*(sha256(contents[k][0]) for k in ("summary", "needs")))
            staged = self._journal.with_suffix(".journal.part")
            _write_synced(staged, json.dumps(version.__dict__).encode())
            os.replace(staged, self._journal)
            journalled = True
            _sync(self.control_dir)
        except OSError:
            for temp in (*self._temps.values(), self._journal.with_suffix(".journal.part")):
                temp.unlink(missing_ok=True)
            # Only this publish's journal: one found by the repair still vouches for the pair
            # on disk, whose record may be missing.
            if journalled:
                self._journal.unlink(missing_ok=True)
            raise
        for kind in KINDS:
            os.replace(self._temps[kind], self.paths[kind])
        _sync(self.folder)
        self.journal = version
        return [
            PublishedFile(kind, self.paths[kind], len(content), sha256(content), rows)
            for kind, (content, rows) in contents.items()
        ]

    def read(self) -> PairBytes:
        contents = {}
        for kind, path in self.paths.items():
            if not path.is_file():
                raise PairPathError(path, "it is missing or not a regular file")
            contents[kind] = path.read_bytes()
        return PairBytes(dict(self.paths), contents, self.journal)

    def drop_journal(self) -> None:
        """The publish on disk is recorded: its journal is no longer needed."""
        if self.journal is not None:
            self._journal.unlink(missing_ok=True)
            self.journal = None


class PairLockTimeout(BlockingIOError):
    """A pair's lock was not free within the bound: that pair fails alone, naming its holder."""

    def __init__(self, path: Path, seconds: float) -> None:
        holder = _lock_holder(path)
        super().__init__(
            errno.EWOULDBLOCK,
            f"its lock is held by {holder} and was not free within {seconds:g} seconds",
        )
        self.filename = str(path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


class PairStore:
    """Published pairs under `COUNTS_EXPORT_DIR`. `holder` names who takes the locks (a run),
    so one who waits in vain can say who held the pair; `lock_wait` bounds every wait."""

    def __init__(self, root: Path, lock_wait: float = 60.0, holder: str = "") -> None:
        self.root = root
        self.lock_wait = lock_wait
        self.holder = holder

    @contextlib.contextmanager
    def locked(self, org_id: str, period: str, wait: bool = True) -> Iterator[PairHandle]:
        """The pair under its lock, repaired first. The lock waits for another holder at most
        `lock_wait` seconds (then PairLockTimeout), or (`wait=False`) raises BlockingIOError
        at once."""
        handle = PairHandle(self, org_id, period)
        for folder in (handle.folder, handle.control_dir):
            _folder(folder)
        with _naming(handle.lock_path), open(handle.lock_path, "a+b") as lock:
            _take(lock, handle.lock_path, self.lock_wait if wait else 0.0)
            try:
                self._say_who(lock)
                handle.repair()
                yield handle
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def delivering(self, org_id: str, wait: bool = True) -> Iterator[Path]:
        """The org's delivery lock, held by a delivery run for the whole run (and by the audit
        while it reads the org's destination): two runs would send the org's files under the same
        temporary names on the server, one renaming the other's away. Waits at most
        `lock_wait` seconds (then PairLockTimeout, naming the holder), or (`wait=False`)
        raises BlockingIOError at once."""
        control_dir = self.root / ".pairs" / org_id
        _folder(control_dir)
        path = control_dir / "delivery.lock"
        with contextlib.ExitStack() as held:
            with _naming(path):  # only taking the lock: the run's own errors are its own
                lock = held.enter_context(open(path, "a+b"))
                _take(lock, path, self.lock_wait if wait else 0.0)
                self._say_who(lock)
            yield path

    def _say_who(self, lock) -> None:
        """Who holds a lock, for anyone who waits in vain (the lock file holds nothing else).
        Best effort: a full disk must not stop the holder. Written only when it says something
        else (a delivery run takes each pair's lock twice)."""
        said = f"process {os.getpid()} {self.holder}".strip().encode()
        with contextlib.suppress(OSError):
            lock.seek(0)
            if lock.read(len(said) + 1) == said:
                return
            lock.truncate(0)
            lock.write(said)
            lock.flush()

    def journalled(self, org_ids: Iterable[str]) -> Iterator[tuple[str, str, str]]:
        """(org_id, cadence, period) of every pair of these orgs with a journal on disk: a
        publish in progress, or one whose run ended before recording it."""
        for org_id in org_ids:
            for cadence in ("daily", "monthly"):
                for journal in (self.root / ".pairs" / org_id / cadence).glob("*.journal"):
                    yield org_id, cadence, journal.stem


def _take(lock, path: Path, seconds: float) -> None:
    """An exclusive flock within `seconds` (0: now or never, BlockingIOError)."""
    deadline = time.monotonic() + seconds
    pause = 0.01
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if seconds <= 0:
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise PairLockTimeout(path, seconds) from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.25)


def _lock_holder(path: Path) -> str:
    """The process holding a lock file's flock, from the kernel's table of locks, and the run
    it said it was (written into the lock file by `locked`)."""
    try:
        info = path.stat()
        said = path.read_text(errors="replace").strip()
        with open("/proc/locks") as table:
            lines = table.read().splitlines()
    except OSError:
        return "another process"
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    pids = sorted({f[4] for f in (line.split() for line in lines) if len(f) > 5 and f[5] == device})
    if len(pids) == 1 and (said + " ").startswith(f"process {pids[0]} "):
        return said  # the process and the run it named
    if not pids and said:
        return f"{said} (as its lock file says; its process is not visible here)"
    return " or ".join(f"process {pid}" for pid in pids) or "another process"


def _read_journal(path: Path) -> PairVersion | None:
    try:
        entry = json.loads(path.read_bytes())
        return PairVersion(entry["summary_sha256"], entry["needs_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no journal (or one that never finished its rename): nothing to finish


def _folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise PairPathError(folder, "it exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)


def _sync(folder: Path) -> None:
    with _naming(folder):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_synced(path: Path, content: bytes) -> None:
    with _naming(path), open(path, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
