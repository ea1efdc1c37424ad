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


def check_text_file(path: Path, option: str) -> None:
    """An input file that exists must be readable UTF-8 text; a missing one is left to its loader's message."""
    from .errors import UserError

    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; pass a file")
    if not path.exists():
        return
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{option} {path} is not UTF-8 text (undecodable byte at offset {exc.start}); "
                        "pass a text file") from None
    except OSError as exc:
        raise UserError(f"{option} {path} cannot be read ({exc.strerror or exc})") from None


def writable_dir(path: Path, option: str = "--out") -> Path:
    """An output folder that exists (created when missing) and takes new files, else a one-line UserError."""
    import tempfile

    from .errors import UserError

    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file, not a folder; pass a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UserError(f"{option} {path} is not a writable folder ({exc.strerror or exc}); pass one you can "
                        "write to") from None
    return path


def writable_file(path: Path, option: str = "--out") -> Path:
    """An output file path whose folder is writable (created when missing) and that is not itself a folder."""
    from .errors import UserError

    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; pass a file path")
    writable_dir(path.parent, option=f"{option} folder")
    return path
