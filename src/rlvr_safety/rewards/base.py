"""The reward interface: one object serves TRL (batched callable), evaluation (`score`) and verl (`compute_score`)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TASK_EXAMPLE_COLUMN = "task_example"


@dataclass(frozen=True)
class RewardVerdict:
    """A graded completion: `value` (1.0 correct / 0.0 wrong, or partial credit), what was parsed, and why.

    `error` marks a verdict the grader could not reach (its machinery failed, e.g. a sandbox that could not start
    or a timeout while waiting for a CPU): `value` is then 0.0 for a trainer's sake, but it is no grade, and
    evaluation stores it as an error to redo rather than as a wrong answer.
    """

    value: float
    parsed: str | None = None
    reason: str = ""
    error: bool = False


def completion_text(completion: Any) -> str:
    """TRL passes plain strings for text datasets and message lists for conversational ones; accept both."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], Mapping):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"unsupported completion type: {type(completion).__name__}")


class Reward(ABC):
    """A verifiable reward. Subclasses implement `score`; `score_batch` may be overridden to parallelise."""

    name: str = "reward"

    @abstractmethod
    def score(self, example: Mapping[str, Any], completion: str) -> RewardVerdict:
        """Grade one completion against the example's task fields (gold, tests, entry_point, extra)."""

    def score_batch(self, examples: Sequence[Mapping[str, Any]], completions: Sequence[str]) -> list[RewardVerdict]:
        return [self.score(ex, c) for ex, c in zip(examples, completions, strict=True)]

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: list[Any]) -> list[float]:
        """TRL reward-function signature: extra dataset columns arrive as keyword lists aligned with completions.
        A `task_example` column (JSON text: the grading example of training/task_data.py, with tests, kwargs, ...
        that an Arrow column could not hold) is decoded into the example."""
        n = len(completions)
        examples = [{k: v[i] for k, v in columns.items() if isinstance(v, list) and len(v) == n} for i in range(n)]
        for ex in examples:
            packed = ex.pop(TASK_EXAMPLE_COLUMN, None)
            if isinstance(packed, str):
                ex.update({k: v for k, v in json.loads(packed).items() if k not in ex or ex[k] is None})
        texts = [completion_text(c) for c in completions]
        return [v.value for v in self.score_batch(examples, texts)]

    @property
    def __name__(self) -> str:  # TRL logs reward functions by __name__
        return self.name
