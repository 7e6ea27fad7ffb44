"""Where files go. Both targets send a pair over one connection: both files under temporary
names that do not end in `.csv`, both read back and checked, then renamed File 2 before File 1,
so a reader never sees half a file and one that waits for File 1 sees a whole pair."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


class DeliveryError(RuntimeError):
    """A delivery that failed. `transient` failures are retried; the others fail at once."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Receipt:
    location: str  # where the file now is, without credentials
    size: int
    sha256: str


class Connection(Protocol):
    def send(self, remote_dir: str, files: Sequence[tuple[str, bytes]]) -> list[Receipt]:
        """All files written and checked under temporary names, then renamed in order."""
        ...

    def fetch(self, remote_dir: str, name: str) -> bytes | None:
        """A file as the destination holds it, or None when there is none."""
        ...


class DeliveryTarget(Protocol):
    def connect(self) -> contextlib.AbstractContextManager[Connection]: ...

    def describe(self) -> str: ...


def contained_path(base: str, remote_dir: str, name: str) -> str:
    """`<base>/<remote_dir>/<name>`, refusing anything that would leave `<base>`."""
    segments = remote_dir.split("/")
    if (
        remote_dir.startswith("/")
        or not all(_SAFE_NAME.match(s) and s not in {".", ".."} for s in segments)
        or not _SAFE_NAME.match(name)
    ):
        raise DeliveryError(
            f"refusing to deliver {name!r} to remote_dir {remote_dir!r}: it would leave the "
            f"delivery base {base!r}",
            transient=False,
        )
    root = posixpath.normpath(base) if base else "."
    path = posixpath.normpath(posixpath.join(root, remote_dir, name))
    if not path.startswith(root.rstrip("/") + "/"):
        raise DeliveryError(f"refusing {path!r}: outside the delivery base {root!r}", False)
    return path


class HalfRenamed(DeliveryError):
    """The connection or the target failed between the renames of a pair: the recipient holds
    the new File 2 beside the previous File 1 until the pair is delivered again."""

    def __init__(self, renamed: list[str], failed: str, reason: str, transient: bool) -> None:
        super().__init__(
            f"{failed} could not be renamed into place ({reason}) after {', '.join(renamed)} "
            "was: the recipient now holds the new needs file beside the previous summary file "
            "until this pair is delivered again (it stays pending)",
            transient=transient,
        )


def in_words(exc: BaseException) -> str:
    """What an error says, without Python's decoration (error numbers, quotes, class names)."""
    # paramiko's "no valid connections" wraps one error per address tried.
    wrapped = getattr(exc, "errors", None)
    if isinstance(wrapped, dict) and wrapped:
        exc = next(iter(wrapped.values()))
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, EOFError):
        return "the connection was closed"
    return str(exc) or type(exc).__name__


def temporary_name(name: str) -> str:
    """One fixed temporary name per file, so the next upload overwrites a leftover of a broken
    one without listing the folder (a delivery run holds its org's delivery lock, so no two
    runs send one org's files at once)."""
    return f".{name}.part"


class OutboxTarget:
    """`file:///abs/path`: a local outbox folder."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def describe(self) -> str:
        return f"file://{self.base}"

    @contextlib.contextmanager
    def connect(self) -> Iterator[OutboxTarget]:
        yield self

    def fetch(self, remote_dir: str, name: str) -> bytes | None:
        path = Path(contained_path(str(self.base), remote_dir, name))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DeliveryError(f"cannot read {path}: {in_words(exc)}", transient=True) from exc

    def send(self, remote_dir: str, files: Sequence[tuple[str, bytes]]) -> list[Receipt]:
        if not self.base.is_dir():
            raise DeliveryError(
                f"the outbox {self.base} does not exist or is not a folder: create it, or fix "
                "COUNTS_DELIVERY_URL",
                transient=False,
            )
        staged, temps = [], []
        try:
            for name, content in files:
                final = Path(contained_path(str(self.base), remote_dir, name))
                final.parent.mkdir(parents=True, exist_ok=True)
                if not final.parent.resolve().is_relative_to(self.base.resolve()):
                    raise DeliveryError(
                        f"refusing {final}: a link leads out of the outbox {self.base}",
                        transient=False,
                    )
                temp = final.with_name(temporary_name(name))
                temps.append(temp)
                with open(temp, "wb") as handle:
                    handle.write(content)
                    handle.flush()
                    os.fsync(handle.fileno())
                sha = hashlib.sha256(content).hexdigest()
                if hashlib.sha256(temp.read_bytes()).hexdigest() != sha:
                    raise DeliveryError(f"{temp} does not read back as written", transient=True)
                staged.append((temp, final, Receipt(f"file://{final}", len(content), sha)))
        except OSError as exc:
            for temp in temps:
                temp.unlink(missing_ok=True)
            raise DeliveryError(
                f"cannot write {exc.filename or self.base}: {in_words(exc)}", transient=False
            ) from exc
        renamed: list[str] = []
        for temp, final, _ in staged:
            try:
                os.replace(temp, final)
            except OSError as exc:
                for leftover in temps:
                    leftover.unlink(missing_ok=True)
                if renamed:
                    raise HalfRenamed(renamed, final.name, in_words(exc), transient=False) from exc
                raise DeliveryError(f"cannot write {final}: {in_words(exc)}", False) from exc
            renamed.append(final.name)
        return [receipt for _, _, receipt in staged]
