"""Shared reading helpers for the benchmark loaders.

Every loader reads either a local folder laid out like ``shared/data`` or the Hugging Face hub. Both paths fail the
same way: a `UserError` whose one line names the file (and row) at fault and how to fix it, so a user never sees a
raw KeyError or a hang on a missing network.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlvr_safety.errors import UserError

log = logging.getLogger(__name__)

DATA_FIX = "pass --data-dir or set RLVR_SAFETY_DATA_DIR to a folder laid out like shared/data"
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")

# A row is (1-based row number as a user would count it in the file, the row's fields).
Row = tuple[int, Mapping[str, Any]]


def require_file(root: Path, rel: str) -> Path:
    """The file `root/rel`, or a UserError naming it (a wrong --data-dir is the usual cause)."""
    path = root / rel
    if not path.is_file():
        raise UserError(f"data file not found: {path}; {DATA_FIX} (see its MANIFEST.md)")
    return path


def _open_text(path: Path):
    """Text handle for plain or gzip files; gzip is recognised by suffix, as the upstream files are named."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8", newline="")


def read_csv(path: Path, delimiter: str = ",") -> list[Row]:
    """CSV rows as dicts; row numbers count the header as line 1, like a spreadsheet does."""
    try:
        with _open_text(path) as fh:
            return [(i, row) for i, row in enumerate(csv.DictReader(fh, delimiter=delimiter), start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {path}: {exc}; replace it with the file listed in MANIFEST.md") from exc


def read_jsonl(path: Path) -> list[Row]:
    """JSON-lines rows (plain or .gz); blank lines are skipped, a bad line is reported by number."""
    rows: list[Row] = []
    try:
        with _open_text(path) as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path} row {i}: invalid JSON ({exc.msg}); fix or replace the file") from exc
                if not isinstance(obj, dict):
                    raise UserError(f"{path} row {i}: expected a JSON object; fix or replace the file")
                rows.append((i, obj))
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise UserError(f"cannot read {path}: {exc}; replace it with the file listed in MANIFEST.md") from exc
    return rows


def read_json(path: Path) -> Any:
    """A whole JSON document."""
    try:
        with _open_text(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg}); fix or replace the file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}; replace it with the file listed in MANIFEST.md") from exc


def get(row: Mapping[str, Any], key: str, where: str, rownum: int, *, allow_empty: bool = False) -> Any:
    """A required field; missing (or empty, unless allowed) -> UserError naming source and row."""
    value = row.get(key)
    if value is None or (not allow_empty and isinstance(value, str) and not value.strip()):
        raise UserError(f"{where} row {rownum}: required field {key!r} is missing or empty; fix or replace the file")
    return value


def is_offline() -> bool:
    """True when the user asked Hugging Face libraries not to touch the network."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in OFFLINE_ENV)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def hub_rows(
    name: str,
    hub_id: str,
    *,
    split: str,
    config: str | None = None,
    gated: bool = False,
    **kwargs: Any,
) -> list[Row]:
    """Rows of one hub split via `datasets.load_dataset`, or a UserError saying how to get the data another way.

    Offline mode is refused up front rather than attempted, so a missing network never shows up as a hang.
    """
    fix = DATA_FIX
    terms = f"accept the terms at https://huggingface.co/datasets/{hub_id} and set HF_TOKEN"
    if gated:
        fix = f"it is gated: {terms}, or {DATA_FIX}"
    if is_offline():
        raise UserError(f"cannot load {name} from the Hugging Face hub ({hub_id}) in offline mode (HF_HUB_OFFLINE); {fix}")
    try:
        import datasets

        ds = datasets.load_dataset(hub_id, config, split=split, **kwargs)
        return [(i, row) for i, row in enumerate(ds, start=1)]
    except Exception as exc:  # any hub failure becomes one actionable line
        if not gated and is_access_error(exc):  # gated without our knowing, or a token without access
            fix = f"access was refused, so it is probably gated: {terms}, or {DATA_FIX}"
        raise UserError(f"cannot load {name} from the Hugging Face hub ({hub_id}): {_one_line(exc)}; {fix}") from exc


def is_access_error(exc: BaseException) -> bool:
    """A hub refusal for lack of access (gated repo, 401/403), as opposed to a missing repo or a network failure."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if type(cur).__name__ == "GatedRepoError":
            return True
        status = getattr(getattr(cur, "response", None), "status_code", None)
        if status in (401, 403):
            return True
        text = str(cur).lower()
        if "gated" in text or re.search(r"\b(401|403)\b", text) or "unauthorized" in text or "forbidden" in text:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def fetch_url(name: str, url: str, cache: Path) -> Path:
    """Download `url` once into `cache` (atomic rename), honouring offline mode like `hub_rows`."""
    if cache.is_file():
        return cache
    if is_offline():
        raise UserError(f"cannot download {name} from {url} in offline mode (HF_HUB_OFFLINE); {DATA_FIX}")
    import urllib.request

    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(cache.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            tmp.write_bytes(resp.read())
        tmp.replace(cache)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot download {name} from {url}: {_one_line(exc)}; {DATA_FIX}") from exc
    return cache

