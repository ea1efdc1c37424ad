"""Where the project keeps its caches and finds local data."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "RLVR_SAFETY_DATA_DIR"
CACHE_DIR_ENV = "RLVR_SAFETY_CACHE_DIR"


def cache_dir() -> Path:
    """User cache folder (XDG); overridable so tests and CI never touch the real home."""
    if os.environ.get(CACHE_DIR_ENV):
        root = Path(os.environ[CACHE_DIR_ENV])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlvr-safety"
    root.mkdir(parents=True, exist_ok=True)
    return root


def data_dir(explicit: str | Path | None = None) -> Path | None:
    """The local data folder from a flag or RLVR_SAFETY_DATA_DIR; None means load from the Hugging Face hub."""
    value = explicit if explicit is not None else os.environ.get(DATA_DIR_ENV)
    if value in (None, ""):
        return None
    return Path(value).expanduser()
