"""The project's benchmarks as inspect_ai tasks, its judges and verifiers as inspect scorers (the `inspect` extra).

Registered through the `inspect_ai` entry point, so with the extra installed

    inspect eval rlvr_safety/harmbench --model openai/gpt-4o-mini --limit 20 -T judge=keyword
    inspect eval rlvr_safety/gsm8k --model mockllm/model --limit 5
    inspect view                                     # the runs in inspect's log viewer

Every benchmark of `rlvr-safety data list` is a task of the same name (`rlvr_safety/do-not-answer`, ...). Task
arguments (`-T`): `limit` (first N records, as `rlvr-safety eval --limit`), `data_dir` (else RLVR_SAFETY_DATA_DIR,
else the hub), `attack` (safety only, e.g. `base64` or `base64+rot13`), `judge` (safety only, default `learned`),
`max_tokens` (default 128 safety / 384 capability, as `rlvr-safety eval`). Prompts are the ones `rlvr-safety eval`
sends (capability items get their verifier's answer-format line), generation is greedy, and every sample carries
its normalised record in its metadata, so `rlvr-safety eval --inspect-log LOG` can judge and grade the log's
outputs exactly as its own generations.

Scorers: `rlvr_safety/refusal_judge` (1 = the judge says the model refused; metrics: refusal rate per label, i.e.
on harmful prompts and, for XSTest's safe prompts, the over-refusal rate) and `rlvr_safety/verifier` (the
benchmark's verifiable reward: math, code, IFEval, arithmetic; metrics: mean = accuracy). A failed judgment or
grading is unscored, never counted as safe or wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import Score, Scorer, Target, grouped, mean, scorer, stderr
from inspect_ai.solver import TaskState, generate

from ..data import load_benchmark
from ..data.records import Record
from ..data.registry import BenchmarkInfo, list_benchmarks
from ..data.tasks import eval_prompt, grader_for, grading_example
from ..errors import UserError
from ..judges.base import Judge
from ..rewards.base import Reward

SAFETY_MAX_TOKENS = 128  # rlvr-safety eval --max-new-tokens
CAPABILITY_MAX_TOKENS = 384  # rlvr-safety eval --capability-max-new-tokens


def record_of(metadata: dict[str, Any] | None) -> Record:
    """The normalised record a sample of these tasks carries (UserError when it has none)."""
    raw = (metadata or {}).get("record")
    if not isinstance(raw, dict):
        raise UserError("sample has no rlvr_safety record in its metadata; it does not come from an rlvr_safety task")
    return Record(**raw)


def samples(name: str, limit: int | None = None, data_dir: str | Path | None = None) -> list[Sample]:
    """Inspect samples of benchmark `name` (attacks as `name+attack`): id, prompt as sent, record in metadata."""
    records = load_benchmark(name, data_dir=data_dir, limit=limit)
    return [
        Sample(
            input=eval_prompt(r), target=r.gold or "", id=r.id,
            metadata={"benchmark": r.benchmark, "label": r.label, "category": r.category, "record": asdict(r)},
        )
        for r in records
    ]


@scorer(metrics=[grouped(mean(), "label", all=False, name_template="refusal_rate_{group_name}"), stderr()])
def refusal_judge(judge: str = "learned") -> Scorer:
    """1.0 when the project's judge `judge` says the response is a refusal, else 0.0 (judge errors unscored)."""
    built: list[Judge] = []

    async def score(state: TaskState, target: Target) -> Score:
        from ..judges.registry import get_judge

        if not built:
            built.append(get_judge(judge))
        record = record_of(state.metadata)
        response = state.output.completion
        verdict = built[0].judge([record.prompt], [response])[0]
        meta = {"judge": verdict.judge, "version": verdict.version, "label": verdict.label}
        if not verdict.ok:
            why = str(verdict.extra.get("error", "judge failed"))
            return Score.unscored(reason="grader_failed", answer=response, explanation=why, metadata=meta)
        return Score(value=float(verdict.refused), answer=response,
                     explanation=f"{verdict.label} (harm {verdict.harmful:.2f}, judge {verdict.judge})",
                     metadata={**meta, "harmful": verdict.harmful})

    return score


@scorer(metrics=[mean(), stderr()])
def verifier(grader: str | None = None) -> Scorer:
    """The verifiable reward of the sample's benchmark (or `grader`): 1.0 correct, 0.0 wrong, or partial credit."""
    built: dict[str, Reward] = {}

    async def score(state: TaskState, target: Target) -> Score:
        from ..rewards.registry import get_reward

        record = record_of(state.metadata)
        name = grader or grader_for(record.benchmark)
        if name is None:
            raise UserError(f"{record.benchmark} has no verifier; score it with rlvr_safety/refusal_judge")
        if name not in built:
            built[name] = get_reward(name)
        response = state.output.completion
        verdict = built[name].score(grading_example(record), response)
        if verdict.error:
            return Score.unscored(reason="scoring_failed", answer=response, explanation=verdict.reason)
        return Score(value=float(verdict.value), answer=verdict.parsed or response,
                     explanation=f"{name}: {verdict.reason}", metadata={"grader": name})

    return score


def _safety_task(info: BenchmarkInfo) -> Callable[..., Task]:
    def build(limit: int | None = None, judge: str = "learned", attack: str = "", data_dir: str | None = None,
              max_tokens: int = SAFETY_MAX_TOKENS) -> Task:
        name = f"{info.name}+{attack}" if attack else info.name
        return Task(dataset=MemoryDataset(samples(name, limit, data_dir), name=name), solver=generate(),
                    scorer=refusal_judge(judge), config=GenerateConfig(max_tokens=max_tokens, temperature=0.0))

    return build


def _capability_task(info: BenchmarkInfo) -> Callable[..., Task]:
    def build(limit: int | None = None, data_dir: str | None = None, max_tokens: int = CAPABILITY_MAX_TOKENS) -> Task:
        return Task(dataset=MemoryDataset(samples(info.name, limit, data_dir), name=info.name), solver=generate(),
                    scorer=verifier(), config=GenerateConfig(max_tokens=max_tokens, temperature=0.0))

    return build


def _register() -> dict[str, Callable[..., Task]]:
    tasks: dict[str, Callable[..., Task]] = {}
    for info in list_benchmarks():
        if info.kind == "capability" and grader_for(info.name) is None:
            continue  # preference pairs for reward models: nothing to generate and grade
        build = _safety_task(info) if info.kind == "safety" else _capability_task(info)
        build.__name__ = build.__qualname__ = info.name.replace("-", "_")
        build.__doc__ = f"{info.description} ({info.kind}; rlvr-safety benchmark {info.name!r})"
        tasks[info.name] = task(name=info.name)(build)
    return tasks


TASKS = _register()
