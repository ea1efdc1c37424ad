"""Verifiable rewards: one `Reward` object serves TRL (batched call), evaluation (`score`) and verl."""

from rlvr_safety.rewards.arithmetic import ArithmeticReward, generate_problems, worked_solution
from rlvr_safety.rewards.base import Reward, RewardVerdict, completion_text
from rlvr_safety.rewards.format import FormatReward, has_final_answer
from rlvr_safety.rewards.math import MathReward, VerifierPool, extract_answer, gold_answer
from rlvr_safety.rewards.registry import available_rewards, get_reward, reward_for_task

__all__ = [
    "ArithmeticReward",
    "FormatReward",
    "MathReward",
    "Reward",
    "RewardVerdict",
    "VerifierPool",
    "available_rewards",
    "completion_text",
    "extract_answer",
    "generate_problems",
    "get_reward",
    "gold_answer",
    "has_final_answer",
    "reward_for_task",
    "worked_solution",
]
