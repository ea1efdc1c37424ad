"""Arithmetic verifier: exact integer match of the completion's final answer against the gold.

The problems themselves (generator, levels, worked solutions, the answer instruction) live in data/arithmetic.py;
their names are re-exported here for callers of the old location.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rlvr_safety.data.arithmetic import (
    ANSWER_INSTRUCTION,
    LEVELS,
    evaluate_expression,
    generate_problems,
    worked_solution,
)
from rlvr_safety.errors import UserError
from rlvr_safety.rewards.base import Reward, RewardVerdict
from rlvr_safety.rewards.math import example_gold, extract_answer

__all__ = [
    "ANSWER_INSTRUCTION",
    "LEVELS",
    "ArithmeticReward",
    "evaluate_expression",
    "generate_problems",
    "parse_final_integer",
    "worked_solution",
]


_INT_TOKEN_RE = re.compile(r"-?\d+(?:\.\d+)?")


def parse_final_integer(text: str) -> tuple[int | None, str]:
    """The completion's final integer and how it was found (extraction method, or why there is none)."""
    found = extract_answer(text)
    if found.answer is None:
        return None, "no answer found"
    numbers = _INT_TOKEN_RE.findall(found.answer.replace(",", ""))
    if not numbers:
        return None, f"no integer in answer ({found.method})"
    value = float(numbers[-1])
    if not value.is_integer():
        return None, f"answer is not an integer ({found.method})"
    return int(value), found.method


class ArithmeticReward(Reward):
    """Exact integer match against `example["answer"]` (or "gold"): 1.0 or 0.0, no symbolic algebra needed."""

    name = "arithmetic"

    def score(self, example: Mapping[str, Any], completion: str) -> RewardVerdict:
        raw = example_gold(example)
        try:
            gold = (
                int(raw)
                if not isinstance(raw, str)
                else int(raw.rsplit("####", 1)[-1].strip().replace(",", ""))
            )
        except ValueError as exc:
            raise UserError(f"arithmetic gold must be an integer, got {raw!r}") from exc
        value, how = parse_final_integer(completion)
        if value is None:
            return RewardVerdict(0.0, None, how)
        reason = f"{'correct' if value == gold else 'wrong'} ({how})"
        if how == "last_number":
            reason += "; fallback: no explicit final answer, graded the last number"
        return RewardVerdict(1.0 if value == gold else 0.0, str(value), reason)
