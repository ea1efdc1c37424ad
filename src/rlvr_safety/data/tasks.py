"""One definition per capability task: how a record is put to the model in evaluation and in training, which
verifier grades it in evaluation, which reward RL trains on, and the columns a verifier reads.

Training (training/task_data.py), the forecast (evaluation/forecast.py, which must sample exactly the training
prompts) and evaluation (evaluation/runner.py) all render prompts here, so they cannot drift apart. Reward names
are strings: the verifiers themselves live in rewards/ (rewards.registry builds them by name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..config import StrictConfig
from .arithmetic import ANSWER_INSTRUCTION
from .records import Record

__all__ = ["CODE_PREFIX", "DOMAINS", "MATH_SUFFIX", "TASKS", "Task", "TaskConfig", "eval_prompt", "grader_for",
           "grading_example", "task_for", "task_records", "training_prompt", "training_reward"]

ARITHMETIC_TRAIN_N = 256  # generated arithmetic problems when a task sets no limit

MATH_SUFFIX = "\n\nSolve the problem step by step, then give the final answer as \\boxed{ANSWER}."
CODE_PREFIX = "Complete the following Python function. Reply with the whole function in a ```python code block.\n\n"

EvalStyle = Literal["plain", "math", "code_prefix"]


@dataclass(frozen=True)
class Task:
    """A capability benchmark as a task.

    `grader`: the reward that grades it in evaluation. `train_reward`: the reward RL optimises (IFEval trains on a
    guarded variant of its reference grader). `eval_style`: plain (the benchmark text), math (+ MATH_SUFFIX) or
    code_prefix (CODE_PREFIX + text). `answer_instruction`: training appends the one-line answer-format
    instruction (math-like tasks, graded on "The answer is N."); other tasks train on their evaluation prompt.
    """

    name: str
    grader: str
    train_reward: str
    eval_style: EvalStyle = "plain"
    answer_instruction: bool = False


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("arithmetic", "arithmetic", "arithmetic", "plain", answer_instruction=True),
    Task("gsm8k", "gsm8k", "gsm8k", "math", answer_instruction=True),
    Task("gsm8k-train", "gsm8k", "gsm8k", "math", answer_instruction=True),
    Task("math500", "math", "math", "math", answer_instruction=True),
    Task("math-train", "math", "math", "math", answer_instruction=True),
    Task("humaneval", "code", "code", "code_prefix"),
    Task("mbpp", "code", "code"),
    Task("ifeval", "ifeval", "ifeval-rl"),
)}

class TaskConfig(StrictConfig):
    """Which capability data a recipe trains on (and a forecast samples): a benchmark name from rlvr_safety.data,
    or generated arithmetic."""

    name: str = "arithmetic"
    limit: int | None = Field(default=ARITHMETIC_TRAIN_N, ge=1,
                              description="training prompts (arithmetic: how many to generate)")
    level: int = Field(default=1, ge=1, le=3, description="arithmetic difficulty (1 easy, 2 medium, 3 hard)")
    reward: str | None = Field(default=None, description="reward name; None picks the task's training reward")
    system_prompt: str | None = None
    instruction: str | None = Field(default=None, description="appended to each question; None = the task's default "
                                    "(the answer-format hint for math-like tasks)")


# A study's task domain -> the benchmark its runs train on (and the forecast samples).
DOMAINS: dict[str, str] = {"arithmetic": "arithmetic", "gsm8k": "gsm8k-train", "math": "math-train", "code": "mbpp",
                           "ifeval": "ifeval"}


def task_for(benchmark: str) -> Task | None:
    """The task of a capability benchmark (attack suffixes `+rot13` ignored); None for safety benchmarks."""
    return TASKS.get(benchmark.split("+", 1)[0])


def grader_for(benchmark: str) -> str | None:
    """The reward name that grades a capability benchmark in evaluation; None for safety benchmarks."""
    task = task_for(benchmark)
    return task.grader if task else None


def training_reward(name: str) -> str | None:
    """The reward name RL trains a task (benchmark or domain) on; None when there is none."""
    task = task_for(DOMAINS.get(name, name))
    return task.train_reward if task else None


def eval_prompt(record: Record) -> str:
    """How evaluation puts a record to the model (safety prompts verbatim: the benchmark text is the attack)."""
    task = task_for(record.benchmark)
    if task is None or task.eval_style == "plain":
        return record.prompt
    if task.eval_style == "math":
        return record.prompt + MATH_SUFFIX
    return CODE_PREFIX + record.prompt


def training_prompt(record: Record, instruction: str | None = None) -> str:
    """The prompt RL and SFT train on, and the forecast samples. A task record: its text plus `instruction`
    ("" leaves the text bare), or by default the answer-format instruction (math-like tasks) or its evaluation
    prompt (code, IFEval). A safety record (a forecast's dual-use mix): verbatim, like evaluation."""
    task = task_for(record.benchmark)
    if task is None or record.label != "task":
        return eval_prompt(record)
    if instruction is not None:
        return _with(record.prompt, instruction)
    return _with(record.prompt, ANSWER_INSTRUCTION) if task.answer_instruction else eval_prompt(record)


def task_records(task: TaskConfig, seed: int, data_dir: str | Path | None = None,
                 limit: int | None = None) -> list[Record]:
    """The records a task trains on (`limit` overrides `task.limit`): generated arithmetic at `task.level`, or the
    benchmark's first rows. Training and the forecast both call this, with the same seed."""
    n = task.limit if limit is None else limit
    if task.name == "arithmetic":
        from .capability import load_arithmetic

        return load_arithmetic(n=n or ARITHMETIC_TRAIN_N, seed=seed, level=task.level)
    from .registry import load_benchmark

    return load_benchmark(task.name, data_dir=data_dir, limit=n, seed=seed)


def _with(text: str, instruction: str) -> str:
    return f"{text}\n{instruction}" if instruction else text


def grading_example(record: Record) -> dict[str, object]:
    """The columns a Reward.score expects, taken from the normalised record."""
    return {"gold": record.gold, "answer": record.gold, "tests": record.tests, "entry_point": record.entry_point,
            "prompt": record.prompt, "extra": dict(record.extra), **dict(record.extra)}
