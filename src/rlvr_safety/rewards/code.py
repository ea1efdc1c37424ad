"""Code reward: extract the program from a completion and run the task's tests in the sandbox.

Grading is all-or-nothing (1.0 only when every test passed), because partial credit per assert rewards
special-casing the visible tests. The sandbox itself (isolation, unforgeable verdict) lives in `sandbox.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rlvr_safety.errors import UserError
from rlvr_safety.rewards.base import Reward, RewardVerdict
from rlvr_safety.rewards.sandbox import (
    CodeResult,
    CodeTask,
    SandboxLimits,
    run_batch,
    run_tests,
    sandbox_capabilities,
)

__all__ = [
    "CodeResult",
    "CodeReward",
    "CodeTask",
    "SandboxLimits",
    "build_program",
    "example_tests",
    "extract_code",
    "run_batch",
    "run_tests",
    "sandbox_capabilities",
]

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PY_LANGS = {"", "python", "py", "python3", "py3"}


def extract_code(completion: str, entry_point: str | None = None) -> str:
    """The program in a completion: a fenced Python block, else the raw text.

    With several blocks, the last one defining `entry_point` wins (models often show usage after the
    solution), else the last Python block. An unterminated fence (a truncated generation) still counts.
    """
    blocks = [body for lang, body in _FENCE_RE.findall(completion) if lang.lower() in _PY_LANGS]
    if not blocks:
        return completion
    if entry_point:
        defining = [
            b for b in blocks if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", b, re.M)
        ]
        if defining:
            return defining[-1]
    return blocks[-1]


def _defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.M) is not None


def build_program(example: Mapping[str, Any], completion: str) -> str:
    """Program text for an example: HumanEval-style completions that are only a body get the prompt prepended.

    A full definition also gets the prompt first (for its imports and helper functions); the completion's
    `def` then replaces the prompt's docstring-only stub.
    """
    entry = example.get("entry_point")
    code = extract_code(completion, entry)
    prompt = example.get("prompt")
    setup = example.get("test_setup_code") or ""
    if isinstance(prompt, str) and prompt and entry:
        first = next((line for line in code.splitlines() if line.strip()), "")
        if first[:1] in (" ", "\t") or not _defines(code, entry):
            code = prompt + code if prompt.endswith("\n") else prompt + "\n" + code
        else:
            code = prompt.rstrip("\n") + "\n\n" + code
    return setup + ("\n" if setup and not setup.endswith("\n") else "") + code


def example_tests(example: Mapping[str, Any]) -> str | list[str]:
    """The tests of an example: `tests`, HumanEval's `test` or MBPP's `test_list` (top level or under `extra`)."""
    extra = example.get("extra") if isinstance(example.get("extra"), Mapping) else {}
    for source in (example, extra):
        for key in ("tests", "test", "test_list"):
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value
            if isinstance(value, list | tuple) and value:
                return [str(v) for v in value]
    raise UserError("code example has no tests: expected a 'tests', 'test' or 'test_list' field")


class CodeReward(Reward):
    """1.0 when the extracted program passes all the example's tests in the sandbox, else 0.0.

    `score_batch` runs up to `workers` sandboxes at once (default: the CPU count).
    """

    name = "code"

    def __init__(
        self,
        timeout: float = 5.0,
        workers: int | None = None,
        limits: SandboxLimits | None = None,
        guard_returns: bool = True,
    ) -> None:
        if timeout <= 0:
            raise UserError(f"timeout must be positive, got {timeout}")
        self.timeout = float(timeout)
        self.workers = workers
        self.limits = limits or SandboxLimits()
        self.guard_returns = guard_returns

    def _task(self, example: Mapping[str, Any], completion: str) -> CodeTask:
        extra = example.get("extra") if isinstance(example.get("extra"), Mapping) else {}
        merged = {**extra, **example}
        return CodeTask(
            build_program(merged, completion), example_tests(merged), merged.get("entry_point"), self.timeout
        )

    @staticmethod
    def _verdict(task: CodeTask, result: CodeResult) -> RewardVerdict:
        return RewardVerdict(1.0 if result.passed else 0.0, task.program, f"{result.status}: {result.reason}")

    def score(self, example: Mapping[str, Any], completion: str) -> RewardVerdict:
        task = self._task(example, completion)
        result = run_tests(
            task.program,
            task.tests,
            task.entry_point,
            task.timeout_s,
            limits=self.limits,
            guard_returns=self.guard_returns,
        )
        return self._verdict(task, result)

    def score_batch(self, examples: list[Mapping[str, Any]], completions: list[str]) -> list[RewardVerdict]:
        tasks = [self._task(ex, c) for ex, c in zip(examples, completions, strict=True)]
        results = run_batch(tasks, self.workers, limits=self.limits, guard_returns=self.guard_returns)
        return [self._verdict(t, r) for t, r in zip(tasks, results, strict=True)]
