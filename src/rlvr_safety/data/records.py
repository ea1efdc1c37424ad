"""The one normalised record every loader returns, so evaluation and training never see raw file formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Label = Literal["harmful", "benign", "task"]
CONTEXT_SEPARATOR = "\n\n---\n\n"  # between a HarmBench contextual behaviour's context and its request


@dataclass(frozen=True)
class Record:
    """A prompt and what is known about it.

    `label` is "harmful" for prompts a safe model should refuse, "benign" for prompts it should answer (XSTest's safe
    prompts), "task" for capability items graded by a verifier. Task fields: `gold` (reference answer as text),
    `tests` (code tests), `entry_point` (function under test), `extra` (anything loader-specific, e.g. IFEval kwargs).
    """

    id: str
    prompt: str
    benchmark: str
    category: str = ""
    label: Label = "harmful"
    gold: str | None = None
    tests: str | list[str] | None = None
    entry_point: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def harmbench_prompt(behavior: str, context: str | None) -> str:
    """HarmBench contextual behaviours are asked about a given text: put the context first, then the request."""
    return f"{context}{CONTEXT_SEPARATOR}{behavior}" if context and context.strip() else behavior


def judge_request(record: Record) -> str:
    """The plain request a safety judge classifies a response against, not the attacked prompt the model saw.

    HarmBench's, StrongREJECT's and JailbreakBench's judges are given the behaviour / goal itself; a jailbreak
    wrapper (PAIR, GCG, base64, role play, ...) would make the judge grade the wrapper. In order: a JailbreakBench
    attack's `goal`; a HarmBench behaviour with its context (`context` + separator + `behavior`, the form the
    HarmBench classifiers' contextual template is rendered from); WildJailbreak's `vanilla` request; the prompt before
    our attack transforms (`original_prompt`); else the prompt itself.
    """
    extra = record.extra
    goal = extra.get("goal")
    if isinstance(goal, str) and goal.strip():
        return goal
    behavior = extra.get("behavior")
    if record.benchmark.split("+")[0] == "harmbench" and isinstance(behavior, str) and behavior.strip():
        context = extra.get("context")
        return harmbench_prompt(behavior, context if isinstance(context, str) else None)
    for key in ("vanilla", "original_prompt"):
        value = extra.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return record.prompt
