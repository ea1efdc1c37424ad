"""The report's building block: one piece of a section, rendered to Markdown and HTML by build.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rlvr_safety.report import analysis as an

__all__ = ["Block"]


@dataclass
class Block:
    """One piece of a section: kind is h2, h3, p, findings, table, img or sample (extra = prompt, body = reply)."""

    kind: str
    text: str = ""
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[object]] = ()
    row_classes: Sequence[str | None] | None = None
    path: Path | None = None
    items: list[an.Finding] = field(default_factory=list)
    extra: str = ""
    body: str = ""
