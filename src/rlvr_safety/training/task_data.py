"""The training items of a task: prompts rendered by data/tasks.py (the same function the forecast samples
with), golds, reference solutions for SFT, the columns the verifier reads, and the task's reward."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from rlvr_safety.data.arithmetic import worked_solution
from rlvr_safety.data.tasks import TaskConfig, grading_example, task_records, training_prompt, training_reward
from rlvr_safety.errors import UserError
from rlvr_safety.rewards.base import TASK_EXAMPLE_COLUMN

__all__ = ["TASK_EXAMPLE_COLUMN", "TaskItem", "gsm8k_rationale", "messages", "task_items", "task_reward"]

# rewards that grade from tests or instruction ids rather than a gold answer
_GOLDLESS_REWARDS = ("code", "ifeval", "ifeval-rl")


@dataclass(frozen=True)
class TaskItem:
    """One training prompt with what the verifier and SFT need (gold answer, reference solution, the grading
    example's columns)."""

    id: str
    prompt: str
    gold: str | None
    solution: str | None
    example: dict[str, Any] = field(default_factory=dict, compare=False)

    def example_json(self) -> str:
        return json.dumps(self.example, default=str)


_CALC = re.compile(r"<<[^>]*>>")


def gsm8k_rationale(solution: str) -> str:
    """GSM8K's rationale without calculator annotations, ending in the phrase our graders and prompts use."""
    body, _, answer = solution.rpartition("####")
    return f"{_CALC.sub('', body).strip()}\nThe answer is {answer.strip().replace(',', '')}."


def task_items(task: TaskConfig, seed: int, data_dir: str | None = None, limit: int | None = None) -> list[TaskItem]:
    """Training items for a task: generated arithmetic (seeded, at `task.level`), or a benchmark's records, each
    prompt rendered by data.tasks.training_prompt."""
    reward = task.reward or training_reward(task.name)
    items = []
    for r in task_records(task, seed=seed, data_dir=data_dir, limit=limit):
        if r.gold is None and reward not in _GOLDLESS_REWARDS:
            raise UserError(f"task {task.name!r}: record {r.id} has no gold answer; pick a capability task")
        sol: Any = r.extra.get("solution")
        if r.benchmark == "arithmetic" and r.extra.get("expression"):
            sol = worked_solution(r.extra)
        elif isinstance(sol, str) and "####" in sol:
            sol = gsm8k_rationale(sol)
        items.append(TaskItem(r.id, training_prompt(r, task.instruction), None if r.gold is None else str(r.gold),
                              sol if isinstance(sol, str) and sol else None, grading_example(r)))
    if not items:
        raise UserError(f"task {task.name!r} gave no training prompts; raise task.limit")
    return items


def task_reward(task: TaskConfig) -> Any:
    """The task's training reward (or the named one)."""
    from rlvr_safety.rewards.registry import get_reward

    name = task.reward or training_reward(task.name)
    if name is None:
        raise UserError(f"task {task.name!r} has no verifiable reward; set task.reward (e.g. math, format)")
    return get_reward(name)


def messages(prompt: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "user", "content": prompt}]
    if system_prompt:
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs
