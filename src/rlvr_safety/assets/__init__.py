"""Files shipped with the package: the demo's guard adapter (guard/<base>/: adapter + provenance.json)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["guard_adapter"]


def guard_adapter(base: str) -> Path | None:
    """The shipped guard adapter for base model spec `base` (only `default` has one), or None."""
    if base != "default":
        return None
    folder = Path(str(resources.files("rlvr_safety.assets") / "guard" / "default"))
    return folder if (folder / "adapter_config.json").is_file() else None
