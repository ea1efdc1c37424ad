"""The one normalised record every loader returns, so evaluation and training never see raw file formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Label = Literal["harmful", "benign", "task"]


@dataclass(frozen=True)
class Record:
    """A prompt and what is known about it.

    `label` is "harmful" for prompts a safe model should refuse, "benign" for prompts it should answer (XSTest's safe
    prompts), "task" for capability items graded by a verifier. Task fields: `gold` (reference answer as text),
    `tests` (code tests), `entry_point` (function under test), `extra` (anything loader-specific, e.g. IFEval kwargs).
    """

    id: str
    prompt: str
    benchmark: str
    category: str = ""
    label: Label = "harmful"
    gold: str | None = None
    tests: str | list[str] | None = None
    entry_point: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
