"""Format reward: did the completion state a final answer in the form the prompt asked for?

Kept separate from correctness so that a run can weight it (a small shaping bonus that teaches a weak model to
answer parseably) or report it on its own (how often answers are extractable at all).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from rlvr_safety.errors import UserError
from rlvr_safety.rewards.base import Reward, RewardVerdict
from rlvr_safety.rewards.math import extract_boxed

__all__ = ["FormatReward", "FormatStyle", "has_final_answer"]

FormatStyle = Literal["any", "boxed", "answer_is"]
_ANSWER_IS_RE = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\s*:?\s*[^\s.]", re.IGNORECASE)


def has_final_answer(text: str, style: FormatStyle = "any") -> bool:
    """True when `text` has a non-empty `\\boxed{...}` ("boxed"), a "The answer is X" ("answer_is"), or either."""
    if style not in ("any", "boxed", "answer_is"):
        raise UserError(f"unknown format style {style!r}; use any, boxed or answer_is")
    if style in ("any", "boxed"):
        boxed = extract_boxed(text)
        if boxed is not None and boxed.strip():
            return True
    return style in ("any", "answer_is") and _ANSWER_IS_RE.search(text) is not None


class FormatReward(Reward):
    """1.0 when the completion contains its final answer in the expected form, else 0.0 (correctness ignored)."""

    name = "format"

    def __init__(self, style: FormatStyle = "any") -> None:
        has_final_answer("", style)  # validate early
        self.style: FormatStyle = style

    def score(self, example: Mapping[str, Any], completion: str) -> RewardVerdict:
        ok = has_final_answer(completion, self.style)
        return RewardVerdict(
            1.0 if ok else 0.0, None, "final answer present" if ok else f"no {self.style} final answer"
        )
