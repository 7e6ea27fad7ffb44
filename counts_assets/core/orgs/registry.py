"""Loads `$COUNTS_ORGS_DIR/*.yaml`. A bad file is reported (path, field or line, reason) and
skipped; the other organizations keep working. Files arrive from many centres by ticket, so
each is checked before YAML builds anything: a regular file, at most 64 KiB, UTF-8, plain
mappings with plain keys, lists and values only (no anchors, aliases or tags: an alias bomb of
a few hundred bytes could otherwise take minutes and gigabytes to expand), at most 10 levels
deep and 10,000 values. Whatever else goes wrong while reading one file rejects that file."""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from counts_assets.core.orgs.models import Organization
from counts_assets.core.text import shown


@dataclass(frozen=True)
class OrgFileError:
    path: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.reason}"


@dataclass
class Registry:
    orgs: dict[str, Organization] = field(default_factory=dict)
    errors: list[OrgFileError] = field(default_factory=list)


MAX_ORG_FILE_BYTES = 64 * 1024

# libyaml's parser where it is installed (the same rules, several times faster).
_Base = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


class _TextLoader(_Base):
    """BaseLoader keeps every scalar as the characters written (no YAML 1.1 booleans,
    integers, sexagesimals or dates); duplicate keys are refused instead of silently dropped."""


def _construct_mapping(loader: _TextLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


def _construct_scalar(loader: _TextLoader, node: yaml.ScalarNode) -> str | None:
    # A plain empty value or `~` is "not given"; a quoted "" stays an empty string.
    if node.style is None and node.value in ("", "~"):
        return None
    return loader.construct_scalar(node)


_TextLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_TextLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG, _construct_scalar)


def _drop_unset(value: object) -> object:
    """Keys written without a value count as not given."""
    if isinstance(value, dict):
        return {k: _drop_unset(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_unset(v) for v in value]
    return value


class OrgFileRejected(ValueError):
    """An organization file that is not read at all; `where` is a field or `line N`."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


def _read_text(path: Path) -> str:
    if path.is_symlink():
        # A link may only lead to a file in the same folder (as Kubernetes mounts a ConfigMap):
        # one leading out would let a file dropped here show another file's lines in reports.
        folder = path.parent.resolve()
        target = path.resolve()
        if folder not in target.parents:
            raise OrgFileRejected("(file)", "a link leading out of the organizations folder")
    try:
        info = path.stat()  # follows a link: a link to a regular file counts as that file
    except FileNotFoundError:
        reason = "a broken link: it points to nothing" if path.is_symlink() else "does not exist"
        raise OrgFileRejected("(file)", reason) from None
    except OSError as exc:
        raise OrgFileRejected("(file)", f"cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise OrgFileRejected("(file)", "a folder, not an organization file")
    if not stat.S_ISREG(info.st_mode):
        raise OrgFileRejected("(file)", "not a regular file")
    if info.st_size > MAX_ORG_FILE_BYTES:
        raise OrgFileRejected(
            "(file)", f"{info.st_size} bytes; an organization file holds at most 64 KiB"
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_ORG_FILE_BYTES + 1)
    except OSError as exc:
        raise OrgFileRejected("(file)", f"cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_ORG_FILE_BYTES:
        raise OrgFileRejected("(file)", "an organization file holds at most 64 KiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise OrgFileRejected(f"line {line}", "not UTF-8 text") from None


# An organization file needs a depth of 5 (interaction_filter > any_of > item > answers >
# answer) and a few hundred nodes; these bounds leave room and stop a file that would make the
# builder recurse or allocate without end.
MAX_DEPTH = 10
MAX_NODES = 10_000
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
_END_EVENTS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _refuse_unsafe_constructs(text: str) -> None:
    """Walks YAML's event stream, which builds and expands nothing, before anything is built:
    only plain mappings with plain keys, lists and scalars, within the depth and node bounds."""
    # One entry per open collection: for a mapping, whether its next node is a key.
    open_collections: list[bool | None] = []
    nodes = 0
    for event in yaml.parse(text, Loader=_Base):
        line = f"line {event.start_mark.line + 1}"
        if isinstance(event, yaml.AliasEvent):
            raise OrgFileRejected(line, "a YAML alias (*name); write the value out instead")
        if getattr(event, "anchor", None):
            raise OrgFileRejected(line, "a YAML anchor (&name); write each value out instead")
        if getattr(event, "tag", None) or getattr(event, "tags", None):
            raise OrgFileRejected(line, "a YAML tag (!name); organization files use none")
        if isinstance(event, _END_EVENTS):
            open_collections.pop()
            continue
        if not isinstance(event, _NODE_EVENTS):
            continue
        nodes += 1
        if nodes > MAX_NODES:
            raise OrgFileRejected(line, f"more than {MAX_NODES} values; not an organization file")
        if open_collections and open_collections[-1] is not None:
            if open_collections[-1] and not isinstance(event, yaml.ScalarEvent):
                raise OrgFileRejected(
                    line, "a list or block used as a key; keys are plain names like `name:`"
                )
            open_collections[-1] = not open_collections[-1]
        if isinstance(event, yaml.MappingStartEvent):
            open_collections.append(True)
        elif isinstance(event, yaml.SequenceStartEvent):
            open_collections.append(None)
        if len(open_collections) > MAX_DEPTH:
            raise OrgFileRejected(
                line, f"nested more than {MAX_DEPTH} levels deep; not an organization file"
            )


def _yaml_reason(exc: yaml.YAMLError, text: str) -> OrgFileRejected:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text[: exc.position].count("\n") + 1
        return OrgFileRejected(f"line {line}", f"a control character (code {exc.character:#x})")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}" if mark is not None else "(file)"
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    reason = f"{context}, {problem}" if context else problem
    return OrgFileRejected(where, f"not valid YAML: {reason}")


def parse_org_file(path: Path) -> Organization:
    """Parse one organization file; raises OrgFileRejected or ValidationError."""
    text = _read_text(path)
    try:
        _refuse_unsafe_constructs(text)
        document = yaml.load(text, Loader=_TextLoader)  # noqa: S506 - text-only loader
    except yaml.YAMLError as exc:
        raise _yaml_reason(exc, text) from None
    if not isinstance(document, dict):
        raise OrgFileRejected("(file)", "must hold a mapping of organization settings")
    return Organization.model_validate(_drop_unset(document))


def shown_path(path: Path) -> str:
    """A path as reports show it: a file name that is not UTF-8 (undecodable bytes) is shown
    with replacement characters, since the instance, logs and alerts store UTF-8 text."""
    return os.fsencode(path).decode("utf-8", errors="replace")


def _field_name(location: tuple) -> str:
    # Key names come from the file: cut like any value a report shows.
    return shown(".".join(str(part) for part in location)) or "(file)"


def _pydantic_reason(error: dict) -> str:
    """The validator's reason in the project's words (no library wording or links)."""
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required, missing"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a block of `key: value` lines, not a single value"
    if kind == "list_type":
        return "must be a list, like [a, b]"
    if kind == "string_type":
        return "must be text, not a list or a block"
    return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")


def check_org_file(path: Path, first_date: dt.date) -> tuple[Organization | None, list]:
    """(the organization, []) or (None, its errors): the one check every caller uses (the
    registry, the onboarding command, the runs). It never raises."""
    named = shown_path(path)
    try:
        org = parse_org_file(path)
    except ValidationError as exc:
        errors = [
            OrgFileError(named, _field_name(e["loc"]), _pydantic_reason(e)) for e in exc.errors()
        ]
        return None, errors
    except OrgFileRejected as exc:
        return None, [OrgFileError(named, exc.where, exc.reason)]
    except Exception as exc:  # noqa: BLE001 - one file's surprise must not stop the registry
        # The exception's type only: its text could quote the file.
        reason = f"could not be read ({type(exc).__name__}); the other files are unaffected"
        return None, [OrgFileError(named, "(file)", reason)]
    if org.share_from < first_date:
        reason = f"{org.share_from} is before COUNTS_FIRST_DATE {first_date}"
        return None, [OrgFileError(named, "share_from", reason)]
    return org, []


def candidate_files(directory: Path) -> tuple[list[Path], list[OrgFileError]]:
    """The `*.yaml` entries of the folder (names starting with `.` ignored), and an error for
    every entry that looks like an organization file but is not named like one."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        return [], [
            OrgFileError(shown_path(directory), "(folder)", f"cannot be listed ({exc.strerror})")
        ]
    paths, errors = [], []
    for name in names:
        if name.startswith("."):
            continue
        if name.endswith(".yaml"):
            paths.append(directory / name)
        elif name.endswith(".yml"):
            errors.append(
                OrgFileError(
                    shown_path(directory / name), "(file)", "not read: name it <id>.yaml, not .yml"
                )
            )
    return paths, errors


_cache: dict[tuple[str, dt.date], tuple[tuple, Registry]] = {}


def load_registry(directory: Path, first_date: dt.date) -> Registry:
    """The registry, parsed again only when an entry of the folder was added, removed or
    changed (name, size, modification time): sensors and runs call this at every tick, and a
    delivery run before every pair."""
    stamp = _folder_stamp(directory)
    key = (os.path.abspath(directory), first_date)
    cached = _cache.get(key)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]
    paths, naming_errors = candidate_files(directory)
    registry = _parse_registry(paths, first_date)
    registry.errors = naming_errors + registry.errors
    if stamp is not None:
        _cache[key] = (stamp, registry)
    return registry


def _folder_stamp(directory: Path) -> tuple | None:
    """Every entry of the folder (dot names aside) with its mode, size, mtime, ctime (a rewrite
    of the same size within one mtime tick) and inode; None when the folder cannot be listed.
    One directory scan, no Paths: this runs for every pair sent."""
    try:
        with os.scandir(directory) as entries:
            found = [entry for entry in entries if not entry.name.startswith(".")]
    except OSError:
        return None
    stamps = []
    for entry in found:
        try:
            info = entry.stat()  # follows a symlink, as reading the file would
        except OSError:
            stamps.append((entry.name, None))
            continue
        stamp = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
        stamps.append((entry.name, *stamp))
    return tuple(sorted(stamps, key=lambda s: s[0]))


def _parse_registry(paths: list[Path], first_date: dt.date) -> Registry:
    registry = Registry()
    parsed: dict[str, list[tuple[str, Organization]]] = {}
    for path in paths:
        org, errors = check_org_file(path, first_date)
        registry.errors += errors
        if org is not None:
            parsed.setdefault(org.id, []).append((shown_path(path), org))
    unique: dict[str, tuple[str, Organization]] = {}
    for org_id, files in sorted(parsed.items()):
        if len(files) > 1:
            # The file named after the id keeps it: a stray copy must not take a live centre
            # out. With no such file, nobody can tell which is meant: all are refused.
            owner = [(p, org) for p, org in files if Path(p).name == f"{org_id}.yaml"]
            names = ", ".join(p for p, _ in files)
            for path, _ in files:
                if owner and path == owner[0][0]:
                    continue
                reason = (
                    f"{org_id!r} belongs to {owner[0][0]}; name each file after its own id"
                    if owner
                    else f"{org_id!r} is used by several files: {names}"
                )
                registry.errors.append(OrgFileError(path, "id", reason))
            if not owner:
                continue
            files = owner
        unique[org_id] = files[0]
    clashing = {
        (a, b)
        for a, (_, org_a) in unique.items()
        for b, (_, org_b) in unique.items()
        if a != b and folders_overlap(org_a.remote_dir, org_b.remote_dir)
    }
    for a, b in sorted(clashing):
        registry.errors.append(
            OrgFileError(
                unique[a][0],
                "delivery.remote_dir",
                f"{unique[a][1].remote_dir!r} overlaps {b}'s delivery folder "
                f"{unique[b][1].remote_dir!r} ({unique[b][0]}): each organization needs its own",
            )
        )
    for org_id, (_, org) in unique.items():
        if not any(org_id in pair for pair in clashing):
            registry.orgs[org_id] = org
    return registry


def folders_overlap(a: str, b: str) -> bool:
    """The same delivery folder, or one inside the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")
