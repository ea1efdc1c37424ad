"""Arithmetic generator and exact grader, and the format reward."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr_safety.errors import UserError
from rlvr_safety.rewards.arithmetic import (
    ANSWER_INSTRUCTION,
    ArithmeticReward,
    evaluate_expression,
    generate_problems,
    parse_final_integer,
    worked_solution,
)
from rlvr_safety.rewards.format import FormatReward, has_final_answer
from rlvr_safety.rewards.math import MathReward

LEVELS = ("easy", "medium", "hard")


def _independent_eval(expression: str) -> int:
    """Python's own evaluator, on a string checked to hold only digits, + - * and parentheses."""
    assert re.fullmatch(r"[\d\s+\-*()]+", expression), expression
    return eval(expression, {"__builtins__": {}})  # noqa: S307 - validated above


@pytest.mark.parametrize("level", LEVELS)
def test_deterministic_by_seed(level):
    assert generate_problems(30, 7, level) == generate_problems(30, 7, level)
    assert generate_problems(30, 7, level) != generate_problems(30, 8, level)


@pytest.mark.parametrize("level", LEVELS)
def test_golds_are_correct(level):
    problems = generate_problems(300, 3, level)
    kinds = {p["kind"] for p in problems}
    assert kinds == {"expression", "word"}
    for p in problems:
        assert set(p) >= {"id", "question", "answer", "level", "prompt", "expression"}
        assert isinstance(p["answer"], int) and p["answer"] >= 0
        assert p["answer"] == _independent_eval(p["expression"]) == evaluate_expression(p["expression"])
        assert p["prompt"].endswith(ANSWER_INSTRUCTION)
        if p["kind"] == "expression":
            assert p["expression"] in p["question"]
        else:  # every operand of the hidden expression is stated in the story
            for number in re.findall(r"\d+", p["expression"]):
                assert re.search(rf"\b{number}\b", p["question"]), (number, p["question"])


def test_levels_control_difficulty():
    easy = generate_problems(200, 0, "easy", kind="expression")
    assert all(len(re.findall(r"[+\-*]", p["expression"])) == 1 for p in easy)
    assert all(int(n) <= 20 for p in easy for n in re.findall(r"\d+", p["expression"]))
    medium = generate_problems(200, 0, 2, kind="expression")
    assert all(
        len(re.findall(r"[+\-*]", p["expression"])) == 2 and "(" not in p["expression"] for p in medium
    )
    assert any("*" in p["expression"] for p in medium)
    hard = generate_problems(200, 0, 3, kind="expression")
    assert all(len(re.findall(r"[+\-*]", p["expression"])) == 3 and "(" in p["expression"] for p in hard)
    assert all(len(n) == 3 for p in hard for n in re.findall(r"\d+", p["expression"]))
    assert {p["level"] for p in medium} == {"medium"}


def test_bad_arguments():
    with pytest.raises(UserError, match="level"):
        generate_problems(1, 0, "impossible")
    with pytest.raises(UserError):
        generate_problems(1, 0, 4)
    with pytest.raises(UserError):
        generate_problems(1, 0, kind="poem")
    assert generate_problems(0, 0) == []


@given(seed=st.integers(0, 10**6), level=st.sampled_from(LEVELS))
@settings(max_examples=60, deadline=None)
def test_generated_golds_property(seed, level):
    for p in generate_problems(3, seed, level):
        assert p["answer"] == _independent_eval(p["expression"])


@pytest.mark.parametrize("level", LEVELS)
def test_worked_solution_grades_correct(level):
    reward, fmt = ArithmeticReward(), FormatReward("answer_is")
    problems = generate_problems(50, 11, level)
    for p in problems:
        solution = worked_solution(p)
        assert solution.endswith(f"The answer is {p['answer']}.")
        assert reward.score(p, solution).value == 1.0
        assert fmt.score(p, solution).value == 1.0
    math_scores = MathReward(workers=0).score_batch(
        problems[:10], [worked_solution(p) for p in problems[:10]]
    )
    assert all(v.value == 1.0 for v in math_scores)


def test_worked_solution_steps():
    text = worked_solution({"expression": "(2 + 3) * 4 - 1"})
    assert text.splitlines() == [
        "We need to compute (2 + 3) * 4 - 1.",
        "Step 1: 2 + 3 = 5.",
        "Step 2: 5 * 4 = 20.",
        "Step 3: 20 - 1 = 19.",
        "The answer is 19.",
    ]
    with pytest.raises(UserError):
        worked_solution({"expression": "__import__('os')"})


@pytest.mark.parametrize(
    ("completion", "value", "reason"),
    [
        (r"so \boxed{19}", 1.0, "correct (boxed)"),
        ("The answer is 19.", 1.0, "correct (phrase)"),
        ("The answer is 19 apples.", 1.0, "correct (phrase)"),
        ("The answer is 20.", 0.0, "wrong (phrase)"),
        ("The answer is 19.5.", 0.0, "answer is not an integer (phrase)"),
        ("nineteen", 0.0, "no answer found"),
    ],
)
def test_arithmetic_reward(completion, value, reason):
    v = ArithmeticReward().score({"answer": 19}, completion)
    assert (v.value, v.reason) == (value, reason)


def test_arithmetic_fallback_commas_and_string_gold():
    v = ArithmeticReward().score({"gold": "1234"}, "I added them and got 1,234")
    assert v.value == 1.0 and "fallback" in v.reason
    assert parse_final_integer(r"\boxed{-7}") == (-7, "boxed")
    with pytest.raises(UserError):
        ArithmeticReward().score({"answer": "x/2"}, "1")


def test_arithmetic_trl_call():
    reward = ArithmeticReward()
    problems = generate_problems(4, 0)
    completions = [[{"role": "assistant", "content": worked_solution(p)}] for p in problems]
    completions[-1] = [{"role": "assistant", "content": "The answer is -1."}]
    scores = reward(
        prompts=[p["prompt"] for p in problems],
        completions=completions,
        answer=[p["answer"] for p in problems],
        level=[p["level"] for p in problems],
    )
    assert scores == [1.0, 1.0, 1.0, 0.0]
    assert reward.__name__ == "arithmetic"


@pytest.mark.parametrize(
    ("text", "style", "expected"),
    [
        (r"\boxed{4}", "any", True),
        (r"\boxed{4}", "answer_is", False),
        ("The answer is 4.", "any", True),
        ("the final answer is: 4", "answer_is", True),
        ("The answer is", "any", False),
        (r"\boxed{}", "boxed", False),
        ("4", "any", False),
    ],
)
def test_format_reward(text, style, expected):
    assert has_final_answer(text, style) is expected
    assert FormatReward(style).score({}, text).value == float(expected)


def test_format_reward_bad_style():
    with pytest.raises(UserError):
        FormatReward("xml")  # type: ignore[arg-type]
