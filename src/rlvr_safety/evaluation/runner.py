"""`rlvr-safety eval`: generate, judge or grade, store, and write metrics.json with Wilson intervals.

What a run does is an EvalConfig (evaluation/configs.py: its defaults and range checks), built by the CLI from its
flags and by the study's eval stage from the spec's `eval` settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..data import expand, load_benchmark
from ..data.records import Record, judge_request
from ..data.tasks import eval_prompt, grader_for, grading_example
from ..generation.base import GenerationParams, Generator, get_generator
from ..judges.base import Judge
from ..models import model_fingerprint
from ..store import Store
from .configs import EvalConfig
from .metrics import SafetyItem, accuracy_metrics, safety_metrics
from .sampling import ensure_generations, ensure_grades, ensure_judgments


def _judge_agreement(judge: Judge) -> dict[str, Any] | None:
    try:
        from ..judges.agreement import known_agreement
    except ImportError:
        return None
    return known_agreement(judge.name, judge.version)


def generation_job(benchmark: str, records: Sequence[Record], safety_params: GenerationParams,
                   capability_params: GenerationParams) -> tuple[list[tuple[str, Any]], GenerationParams]:
    """(item id, prompt) pairs and sampling params of one benchmark: capability params where a grader scores it."""
    params = capability_params if grader_for(benchmark) else safety_params
    return [(r.id, eval_prompt(r)) for r in records], params


def evaluate_records(store: Store, model_key: str, benchmark: str, records: Sequence[Record],
                     generator: Callable[[], Generator], judge: Callable[[], Judge],
                     safety_params: GenerationParams, capability_params: GenerationParams,
                     progress: bool = True,
                     second_judges: Callable[[], Sequence[Judge | tuple[str, str]]] | None = None) -> dict[str, Any]:
    """Metrics for one benchmark; every generation, verdict and grade goes through the store first."""
    grader = grader_for(benchmark)
    items, params = generation_job(benchmark, records, safety_params, capability_params)
    rows = ensure_generations(store, generator, model_key, benchmark, items, params, progress=progress)
    if grader:
        from ..rewards.registry import get_reward

        reward = get_reward(grader)
        grades = ensure_grades(store, grader, reward, rows, [grading_example(r) for r in records])
        result = accuracy_metrics([grades[row.id] for row in rows if row.id in grades])
        # per item (1 = correct), so two models graded on the same items can be compared paired
        result["correct_by_item"] = {(row.item_id if row.sample == 0 else f"{row.item_id}#{row.sample}"):
                                     int(grades[row.id] >= 0.5) for row in rows if row.id in grades}
        result["grade_errors"] = sum(row.id not in grades for row in rows)  # redone on resume, never a 0
        result["grader"] = grader
        return result
    j = judge()
    # judges classify against the plain request (behaviour / goal), not the attacked prompt the model saw
    requests = {r.id: judge_request(r) for r in records}
    verdicts = ensure_judgments(store, j, rows, requests=requests)
    by_id = {r.id: r for r in records}
    items_s = []
    for row in rows:
        v = verdicts[row.id]
        err = v["label"] == "error"
        key = row.item_id if row.sample == 0 else f"{row.item_id}#{row.sample}"  # pairs match item and sample
        items_s.append(SafetyItem(label=by_id[row.item_id].label, refused=None if err else bool(v["refused"]),
                                  harmful=None if err else float(v["harmful"]), item_id=key))
    result = safety_metrics(items_s)
    result["judge"] = {"name": j.name, "version": j.version, "agreement": _judge_agreement(j)}
    if second_judges is not None:
        from .judge_check import second_judge_agreement

        result["second_judges"] = second_judge_agreement(store, rows, verdicts, second_judges(),
                                                          requests=requests)
    return result


def release_generator(cache: list[Generator]) -> None:
    """Close (free the engine of) a generator that can be closed, and drop it from the cache."""
    for gen in cache:
        close = getattr(gen, "close", None)
        if callable(close):
            close()
    cache.clear()


def model_key_for(cfg: EvalConfig) -> str:
    """Store key of the model: a served model named like a local one must never share cached outputs with it."""
    if cfg.backend == "hf":
        return model_fingerprint(cfg.model)
    where = cfg.base_url or cfg.generator_options.get("base_url") or os.environ.get("OPENAI_BASE_URL", "")
    return f"{cfg.backend}:{where}:{cfg.model}"


def run_eval(cfg: EvalConfig, out: Path, records: Mapping[str, Sequence[Record]] | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Evaluate `cfg.model` on `cfg.benchmarks` into `out` (store.sqlite, metrics.json); `records` gives a
    benchmark's items directly (e.g. held-out generated task items) instead of loading them."""
    out = Path(out)
    given = dict(records or {})
    names = expand(cfg.benchmarks)
    datasets = {name: list(given[name]) if name in given else
                load_benchmark(name, data_dir=cfg.data_dir, limit=cfg.limits.get(name, cfg.limit))
                for name in names}
    from ..judges.registry import build_judge

    judge_cache: list[Judge] = []

    def judge() -> Judge:
        if not judge_cache:
            judge_cache.append(build_judge(cfg.judge, **cfg.judge_options))
        return judge_cache[0]

    if any(grader_for(n) is None for n in names):
        judge()  # fail fast on an unknown or unreachable judge before any generation
    gen_cache: list[Generator] = []
    model_key = model_key_for(cfg)
    out.mkdir(parents=True, exist_ok=True)
    safety_params, capability_params = cfg.safety_params(), cfg.capability_params()

    def generator() -> Generator:
        if not gen_cache:
            gen = get_generator(cfg.backend, cfg.model, **cfg.generator_kwargs())
            if cfg.record_tokens and cfg.backend == "hf":
                from .certify import recording_generator

                gen = recording_generator(gen, out / "store.sqlite", model_key)
            gen_cache.append(gen)
        return gen_cache[0]

    second: list[Judge | tuple[str, str]] | None = None

    def second_judges() -> list[Judge | tuple[str, str]]:
        nonlocal second
        if second is None:
            from .judge_check import build_second_judges

            second = build_second_judges(cfg.judge, cfg.second_judges)
        return second

    results: dict[str, Any] = {}
    with Store(out / "store.sqlite") as store:
        store.start_run("eval", "eval", {"model": cfg.model, "benchmarks": names, "limit": cfg.limit,
                                         "judge": cfg.judge})
        # Generate everything first, then free the generator (a vLLM engine holds most of the GPU) before any
        # judge or grader model loads in this process; the loop below then finds every generation in the store.
        for name in names:
            items, params = generation_job(name, datasets[name], safety_params, capability_params)
            ensure_generations(store, generator, model_key, name, items, params, progress=progress)
        release_generator(gen_cache)
        for name in names:
            results[name] = evaluate_records(store, model_key, name, datasets[name], generator, judge,
                                             safety_params, capability_params, progress=progress,
                                             second_judges=second_judges if cfg.second_judges else None)
        store.finish_run("eval")
    payload = {"model": cfg.model, "model_key": model_key, "limit": cfg.limit, "limits": dict(cfg.limits),
               "benchmarks": results}
    write_json_atomic(out / "metrics.json", payload)
    return payload
