"""verl custom reward function: point `custom_reward_function.path` at this file, `name` at `compute_score`.

training/verl.py (`backend: verl`) exports task data with data_source `rlvr_safety/<reward>` and points verl here.

verl calls `compute_score(data_source, solution_str, ground_truth, extra_info)` once per response; rewards are
built once per process and reused, so the math verifier's worker pool is started only once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from rlvr_safety.rewards.base import Reward

__all__ = ["DATA_SOURCES", "compute_score", "reward_name_for"]

# data_source (lower-cased) -> reward name in rlvr_safety.rewards.registry.
DATA_SOURCES: dict[str, str] = {
    "openai/gsm8k": "gsm8k",
    "gsm8k": "gsm8k",
    "huggingfaceh4/math-500": "math",
    "math-500": "math",
    "math500": "math",
    "math": "math",
    "lighteval/math": "math",
    "digitallearninggmbh/math-lighteval": "math",
    "hendrycks/competition_math": "math",
    "arithmetic": "arithmetic",
    "rlvr_safety/arithmetic": "arithmetic",
    "humaneval": "code",
    "openai/openai_humaneval": "code",
    "openai_humaneval": "code",
    "code": "code",
    "ifeval": "ifeval",
    "google/ifeval": "ifeval",
}

_cache: dict[str, Reward] = {}
_cache_lock = threading.Lock()


def reward_name_for(data_source: str) -> str:
    """The reward for a verl data_source; ValueError (verl's convention) when there is none.

    `rlvr_safety/<reward>` names any registered reward (what training/verl.py exports), else the dataset
    spellings above."""
    key = data_source.strip().lower()
    prefix, _, name = key.partition("/")
    if prefix == "rlvr_safety" and name:
        from rlvr_safety.rewards.registry import available_rewards

        if name in available_rewards():
            return name
    if key not in DATA_SOURCES:
        raise ValueError(
            f"no reward for data_source {data_source!r}; known: {', '.join(sorted(DATA_SOURCES))}"
        )
    return DATA_SOURCES[key]


def _reward(name: str) -> Reward:
    with _cache_lock:
        if name not in _cache:
            from rlvr_safety.rewards.registry import get_reward

            _cache[name] = get_reward(name)
        return _cache[name]


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None
) -> float:
    """Score one response. `ground_truth` is the gold answer (math, arithmetic), the tests (code) or the
    instruction spec (ifeval); `extra_info` fields (entry_point, kwargs, ...) are passed on to the reward."""
    reward = _reward(reward_name_for(data_source))
    example: dict[str, Any] = dict(extra_info or {})
    if isinstance(ground_truth, Mapping):
        example.update(ground_truth)
    else:
        example.setdefault("gold", ground_truth)
        example.setdefault("tests", ground_truth)
    return float(reward.score(example, solution_str).value)
