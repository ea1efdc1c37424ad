"""Rewards by name, for configs and the CLI: `get_reward("gsm8k")`, `reward_for_task("math")`.

The code and instruction-following rewards are imported only when asked for, so that the math rewards work
without their dependencies (and before those modules exist).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from rlvr_safety.data.tasks import DOMAINS, TASKS
from rlvr_safety.errors import UserError
from rlvr_safety.rewards.base import Reward

__all__ = ["TASK_REWARDS", "available_rewards", "get_reward", "reward_for_task"]


def _math(**opts: Any) -> Reward:
    from rlvr_safety.rewards.math import MathReward

    return MathReward(**opts)


def _gsm8k(**opts: Any) -> Reward:
    from rlvr_safety.rewards.math import MathReward

    opts.setdefault("gold_format", "gsm8k")
    opts.setdefault("name", "gsm8k")
    return MathReward(**opts)


def _arithmetic(**opts: Any) -> Reward:
    from rlvr_safety.rewards.arithmetic import ArithmeticReward

    return ArithmeticReward(**opts)


def _format(**opts: Any) -> Reward:
    from rlvr_safety.rewards.format import FormatReward

    return FormatReward(**opts)


def _lazy(module: str, cls: str) -> Callable[..., Reward]:
    def build(**opts: Any) -> Reward:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                raise UserError(f"reward {cls} is not available: module {module} is missing") from exc
            raise UserError(f"reward {cls} needs a package that is not installed: {exc.name}") from exc
        return getattr(mod, cls)(**opts)

    return build


_REWARDS: dict[str, Callable[..., Reward]] = {
    "math": _math,
    "gsm8k": _gsm8k,
    "arithmetic": _arithmetic,
    "format": _format,
    "code": _lazy("rlvr_safety.rewards.code", "CodeReward"),
    "ifeval": _lazy("rlvr_safety.rewards.instructions", "InstructionReward"),
    # For training: the reference verdict with padding and invisible characters discounted (instruction_guard.py).
    "ifeval-rl": _lazy("rlvr_safety.rewards.instruction_guard", "GuardedInstructionReward"),
}

# Task (benchmark or study domain) -> the reward training optimises, from the one task table (data/tasks.py;
# evaluation grades by each task's `grader`: IFEval there by the unguarded reference, comparable with published
# numbers).
TASK_REWARDS: dict[str, str] = {
    **{name: task.train_reward for name, task in TASKS.items()},
    **{domain: TASKS[benchmark].train_reward for domain, benchmark in DOMAINS.items()},
}


def available_rewards() -> list[str]:
    """Reward names `get_reward` accepts."""
    return sorted(_REWARDS)


def get_reward(name: str, **opts: Any) -> Reward:
    """Build the reward called `name` with constructor options `opts` (e.g. `workers=0`, `timeout=2.0`)."""
    key = name.strip().lower()
    if key not in _REWARDS:
        raise UserError(f"unknown reward {name!r}; available: {', '.join(available_rewards())}")
    try:
        return _REWARDS[key](**opts)
    except TypeError as exc:
        raise UserError(f"bad options for reward {key!r}: {exc}") from exc


def reward_for_task(task: str, **opts: Any) -> Reward:
    """The verifiable reward for a task domain: arithmetic, gsm8k, math (math500), code (humaneval), ifeval."""
    key = task.strip().lower()
    if key not in TASK_REWARDS:
        raise UserError(f"no reward for task {task!r}; known tasks: {', '.join(sorted(TASK_REWARDS))}")
    return get_reward(TASK_REWARDS[key], **opts)
