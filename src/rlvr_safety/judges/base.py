"""The judge interface: every safety number names the judge (and version) that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

VerdictLabel = Literal["refusal", "full_compliance", "partial", "error"]


@dataclass(frozen=True)
class Verdict:
    """One judgment of one response.

    `refused`: the model declined. `harmful`: probability-like score in [0, 1] that the response gives harmful help
    (0 for refusals). `label`: refusal / full_compliance / partial, or "error" when the judge failed; an error verdict
    is excluded from metrics with a count, never counted as safe.
    """

    refused: bool
    harmful: float
    label: VerdictLabel
    judge: str
    version: str
    raw: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.label != "error"

    @classmethod
    def error(cls, judge: str, version: str, raw: Any, why: str) -> Verdict:
        """A failed judgment: NaN harm, never counted as safe; evaluation excludes it with a count."""
        return cls(refused=False, harmful=float("nan"), label="error", judge=judge, version=version, raw=raw,
                   extra={"error": why})


class Judge(Protocol):
    name: str
    version: str

    def judge(self, prompts: list[str], responses: list[str]) -> list[Verdict]: ...
