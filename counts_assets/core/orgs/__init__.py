"""Organization registry: one validated YAML file per 2-1-1 organization."""

from counts_assets.core.orgs.models import SLOTS, Organization, normalize_text
from counts_assets.core.orgs.registry import OrgFileError, Registry, load_registry

__all__ = ["SLOTS", "OrgFileError", "Organization", "Registry", "load_registry", "normalize_text"]
