"""Rewards by name, for configs and the CLI: `get_reward("gsm8k")`, `reward_for_task("math")`.

Entries are lazy (rlvr_safety.registry): a reward's module is imported only when it is asked for, so the math
rewards work without the code and instruction-following rewards' dependencies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlvr_safety.data.tasks import DOMAINS, TASKS
from rlvr_safety.errors import UserError
from rlvr_safety.registry import Registry
from rlvr_safety.rewards.base import Reward

__all__ = ["REWARDS", "TASK_REWARDS", "available_rewards", "get_reward", "reward_for_task"]


REWARDS: Registry[Callable[..., Reward]] = Registry("reward")
REWARDS.add("math", "rlvr_safety.rewards.math:MathReward")
REWARDS.add("gsm8k", "rlvr_safety.rewards.math:MathReward", gold_format="gsm8k", name="gsm8k")
REWARDS.add("arithmetic", "rlvr_safety.rewards.arithmetic:ArithmeticReward")
REWARDS.add("format", "rlvr_safety.rewards.format:FormatReward")
REWARDS.add("code", "rlvr_safety.rewards.code:CodeReward")
REWARDS.add("ifeval", "rlvr_safety.rewards.instructions:InstructionReward")
# For training: the reference verdict with padding and invisible characters discounted (instruction_guard.py).
REWARDS.add("ifeval-rl", "rlvr_safety.rewards.instruction_guard:GuardedInstructionReward")

# Task (benchmark or study domain) -> the reward training optimises, from the one task table (data/tasks.py;
# evaluation grades by each task's `grader`: IFEval there by the unguarded reference, comparable with published
# numbers).
TASK_REWARDS: dict[str, str] = {
    **{name: task.train_reward for name, task in TASKS.items()},
    **{domain: TASKS[benchmark].train_reward for domain, benchmark in DOMAINS.items()},
}


def available_rewards() -> list[str]:
    """Reward names `get_reward` accepts."""
    return REWARDS.names()


def get_reward(name: str, **opts: Any) -> Reward:
    """Build the reward called `name` with constructor options `opts` (e.g. `workers=0`, `timeout=2.0`)."""
    reward: Reward = REWARDS.build(name, **opts)
    return reward


def reward_for_task(task: str, **opts: Any) -> Reward:
    """The verifiable reward for a task domain: arithmetic, gsm8k, math (math500), code (humaneval), ifeval."""
    key = task.strip().lower()
    if key not in TASK_REWARDS:
        raise UserError(f"no reward for task {task!r}; known tasks: {', '.join(sorted(TASK_REWARDS))}")
    return get_reward(TASK_REWARDS[key], **opts)
