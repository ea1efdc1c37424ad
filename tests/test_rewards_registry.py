"""Reward registry and the verl adapter."""

from __future__ import annotations

import importlib.util

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.rewards import verl_adapter
from rlvr_safety.rewards.arithmetic import ArithmeticReward, generate_problems, worked_solution
from rlvr_safety.rewards.format import FormatReward
from rlvr_safety.rewards.math import MathReward
from rlvr_safety.rewards.registry import TASK_REWARDS, available_rewards, get_reward, reward_for_task


def test_names_and_types():
    assert {"math", "gsm8k", "arithmetic", "format", "code", "ifeval"} <= set(available_rewards())
    math = get_reward("math", workers=0)
    gsm8k = get_reward("GSM8K", workers=0)
    assert isinstance(math, MathReward) and math.name == "math"
    assert isinstance(gsm8k, MathReward) and gsm8k.name == "gsm8k" and gsm8k.gold_format == "gsm8k"
    assert isinstance(get_reward("arithmetic"), ArithmeticReward)
    assert isinstance(get_reward("format", style="boxed"), FormatReward)


def test_unknown_name_lists_available():
    with pytest.raises(UserError, match="arithmetic") as info:
        get_reward("nope")
    assert "unknown reward 'nope'" in str(info.value)


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="options"):
        get_reward("arithmetic", colour="red")


@pytest.mark.parametrize(("name", "module"), [("code", "code"), ("ifeval", "instructions")])
def test_lazy_rewards(name, module):
    if importlib.util.find_spec(f"rlvr_safety.rewards.{module}") is None:
        with pytest.raises(UserError, match="not available"):
            get_reward(name)
    else:
        assert get_reward(name).name  # built by the module that provides it


def test_reward_for_task():
    assert isinstance(reward_for_task("arithmetic"), ArithmeticReward)
    assert reward_for_task("gsm8k", workers=0).name == "gsm8k"
    assert reward_for_task("MATH500", workers=0).name == "math"
    assert set(TASK_REWARDS.values()) <= set(available_rewards())
    with pytest.raises(UserError, match="known tasks"):
        reward_for_task("poetry")


def test_verl_compute_score():
    compute = verl_adapter.compute_score
    assert compute("openai/gsm8k", "so 3 + 4 = 7\n#### 7", "7") == 1.0
    assert compute("gsm8k", "#### 8", "7") == 0.0
    assert compute("HuggingFaceH4/MATH-500", r"\boxed{\frac{2}{4}}", r"\frac12") == 1.0
    assert compute("math500", r"\boxed{3}", r"\frac12", extra_info={"index": 3}) == 0.0
    p = generate_problems(1, 0)[0]
    assert compute("arithmetic", worked_solution(p), p["answer"]) == 1.0
    assert verl_adapter.reward_name_for("openai/openai_humaneval") == "code"
    assert verl_adapter.reward_name_for("google/IFEval") == "ifeval"


def test_verl_unknown_data_source():
    with pytest.raises(ValueError, match="data_source"):
        verl_adapter.compute_score("somewhere/else", "1", "1")
