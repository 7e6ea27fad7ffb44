"""Loads `$COUNTS_ORGS_DIR/*.yaml`. A bad file is reported (path, field, reason) and skipped;
the other organizations keep working."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from counts_assets.orgs.models import Organization


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


def parse_org_file(path: Path) -> Organization:
    """Parse one organization file; raises ValueError / ValidationError on a bad file."""
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_TextLoader)  # noqa: S506
    if not isinstance(document, dict):
        raise ValueError("the file must hold a mapping of organization settings")
    return Organization.model_validate(_drop_unset(document))


def _field_name(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "(file)"


_cache: dict[tuple[str, dt.date], tuple[tuple, Registry]] = {}


def load_registry(directory: Path, first_date: dt.date) -> Registry:
    """The registry, parsed again only when a file in the folder was added, removed or
    changed (name, size, modification time): sensors and runs call this at every tick."""
    paths = sorted(directory.glob("*.yaml"))
    stamp = tuple(_file_stamp(path) for path in paths)
    key = (str(directory.resolve()), first_date)
    cached = _cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    registry = _parse_registry(paths, first_date)
    _cache[key] = (stamp, registry)
    return registry


def _file_stamp(path: Path) -> tuple:
    try:
        info = path.stat()
    except OSError:
        return (path.name, None)
    return (path.name, info.st_size, info.st_mtime_ns, info.st_ino)


def _parse_registry(paths: list[Path], first_date: dt.date) -> Registry:
    registry = Registry()
    parsed: dict[str, list[tuple[str, Organization]]] = {}
    for path in paths:
        shown = str(path)
        try:
            org = parse_org_file(path)
        except ValidationError as exc:
            for error in exc.errors():
                registry.errors.append(OrgFileError(shown, _field_name(error["loc"]), error["msg"]))
            continue
        except (yaml.YAMLError, ValueError, UnicodeDecodeError) as exc:
            registry.errors.append(OrgFileError(shown, "(file)", str(exc).replace("\n", " ")))
            continue
        if org.share_from < first_date:
            registry.errors.append(
                OrgFileError(
                    shown,
                    "share_from",
                    f"{org.share_from} is before COUNTS_FIRST_DATE {first_date}",
                )
            )
            continue
        parsed.setdefault(org.id, []).append((shown, org))
    for org_id, files in sorted(parsed.items()):
        if len(files) > 1:
            names = ", ".join(p for p, _ in files)
            for shown, _ in files:
                registry.errors.append(
                    OrgFileError(shown, "id", f"{org_id!r} is used by several files: {names}")
                )
            continue
        registry.orgs[org_id] = files[0][1]
    return registry
