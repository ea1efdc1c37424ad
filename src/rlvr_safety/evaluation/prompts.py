"""How a capability item is put to the model, and which verifier grades it.

Safety prompts go to the model verbatim (the benchmark text is the attack); capability prompts get the one-line
answer-format instruction their verifier expects.
"""

from __future__ import annotations

from ..data.records import Record

MATH_SUFFIX = "\n\nSolve the problem step by step, then give the final answer as \\boxed{ANSWER}."
CODE_PREFIX = "Complete the following Python function. Reply with the whole function in a ```python code block.\n\n"

GRADERS = {
    "gsm8k": "gsm8k", "gsm8k-train": "gsm8k", "math500": "math", "math-train": "math",
    "humaneval": "code", "mbpp": "code", "ifeval": "ifeval", "arithmetic": "arithmetic",
}


def grader_for(benchmark: str) -> str | None:
    """The reward name that grades a capability benchmark; None for safety benchmarks."""
    return GRADERS.get(benchmark.split("+", 1)[0])


def model_prompt(record: Record) -> str:
    grader = grader_for(record.benchmark)
    if grader in ("gsm8k", "math"):
        return record.prompt + MATH_SUFFIX
    if grader == "code" and record.benchmark == "humaneval":
        return CODE_PREFIX + record.prompt
    return record.prompt


def grading_example(record: Record) -> dict[str, object]:
    """The columns a Reward.score expects, taken from the normalised record."""
    return {"gold": record.gold, "answer": record.gold, "tests": record.tests, "entry_point": record.entry_point,
            "prompt": record.prompt, "extra": dict(record.extra), **dict(record.extra)}
