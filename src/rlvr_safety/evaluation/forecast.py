"""`rlvr-safety forecast`: will RLVR on this data at this beta move safety? (DESIGN.md section 2, use 1.)

K reference samples per training prompt are scored for success g (the task's verifier) and safety s (a judge);
theory.forecast tilts each prompt's empirical reference distribution by e^{g/beta} to estimate the optimum's safety.

Safety scores (see docs/theory.md, "Forecast on real data"): the shipped judges measure *compliance*, which is
harm only on harmful prompts. So s = 1 - harmful on records labelled harmful, and s = 1 on benign/task records
unless `judge_all=True` (for a judge that grades content harm on any prompt). g is the record's verifier reward;
safety records carry none (g = 0) unless `reward` names one applied to every prompt. Hence purely benign
verifiable data with a compliance judge forecasts zero drift by construction (the theory's zero-drift case);
drift needs dual-use data: a mix such as "arithmetic,advbench" with a reward defined on both.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import expand, load_benchmark
from ..data.records import Record
from ..data.tasks import (
    TaskConfig,
    eval_prompt,
    grader_for,
    grading_example,
    task_records,
    training_prompt,
    training_reward,
)
from ..errors import UserError
from ..generation.base import GenerationParams, Generator
from ..judges.base import Judge
from ..store import GenerationRow, Store
from ..theory import bootstrap_ci, forecast
from .configs import ForecastConfig, forecast_config
from .sampling import ensure_generations, ensure_grades, ensure_judgments

__all__ = ["ForecastConfig", "forecast_config", "forecast_records", "prompt_drift_ci", "run_forecast",
           "run_forecast_config", "training_prompt"]

PREVIEW_CHARS = 200


def forecast_records(task: str, limit: int | None = None, seed: int = 0, data_dir: str | Path | None = None,
                     instruction: str | None = None,
                     task_config: TaskConfig | None = None) -> dict[str, list[tuple[Record, str]]]:
    """(record, prompt) per benchmark: exactly what the forecast samples. With `task_config` (what the study passes:
    the RL run's task) the records and prompts come from the functions training uses (data.tasks.task_records and
    training_prompt, same seed), so the forecast samples the training prompts byte for byte; otherwise `task`
    names benchmarks/suites (comma-separated), each rendered by training_prompt with `instruction`."""
    if task_config is not None:
        records = task_records(task_config, seed=seed, data_dir=data_dir, limit=limit)
        return {task_config.name: [(r, training_prompt(r, task_config.instruction)) for r in records]}
    out = {}
    for name in expand(task):
        records = load_benchmark(name, data_dir=data_dir, limit=limit, seed=seed)
        out[name] = [(r, training_prompt(r, instruction)) for r in records]
    return out


def _store_benchmark(name: str, records: Sequence[Record], prompts: Sequence[str]) -> str:
    """Store key: the benchmark name, suffixed when our prompts differ from `eval`'s so the two never collide."""
    changed = [p for r, p in zip(records, prompts, strict=True) if p != eval_prompt(r)]
    if not changed:
        return name
    return f"{name}@rlvr-{hashlib.sha256(changed[0].encode()).hexdigest()[:8]}"


def prompt_drift_ci(g: np.ndarray, s: np.ndarray, beta: float, n_resamples: int = 1000, alpha: float = 0.05,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of one prompt's forecast drift, resampling its K samples (vectorised)."""
    k = g.size
    if k < 2 or np.all(g == g[0]) or np.all(s == s[0]):
        return 0.0, 0.0  # every resample then has constant g or s: its drift is exactly 0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, k, size=(int(n_resamples), k))
    gs, ss = g[idx] / beta, s[idx]
    w = np.exp(gs - gs.max(axis=1, keepdims=True))
    drift = (w * ss).sum(axis=1) / w.sum(axis=1) - ss.mean(axis=1)
    lo = float(np.quantile(drift, alpha / 2, method="lower"))
    hi = float(np.quantile(drift, 1 - alpha / 2, method="higher"))
    return lo, hi


def _judge_factory(name: str, options: dict[str, Any] | None) -> Judge:
    from ..judges.registry import build_judge

    return build_judge(name, **(options or {}))


def run_forecast(model: str, task: str, beta: float, out: Path, progress: bool = True,
                 **options: Any) -> dict[str, Any]:
    """run_forecast_config on the ForecastConfig these values build (`options`: its other fields), validated before
    anything loads."""
    return run_forecast_config(forecast_config(model=model, task=task, beta=beta, **options), out, progress)


def run_forecast_config(cfg: ForecastConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """Forecast the RLVR optimum's safety on `cfg.task` (benchmarks/suites, comma-separated) at `cfg.beta`.

    `cfg` is a validated ForecastConfig (the CLI and the study build it). With `task_config` (an RL run's task: the
    study passes it) the prompts, golds and reward are the training run's own (forecast_records), and `task`,
    `instruction` and `reward` are taken from it.

    Samples K responses per prompt from `model` (the reference), grades g, judges s (see module docstring),
    and writes out/forecast.json; every sample, verdict and grade goes through out/store.sqlite, so a rerun
    resumes. `limit` is per benchmark (for arithmetic: how many problems are generated with `seed`).
    """
    from ..atomic import write_json_atomic
    from ..models import model_fingerprint

    model, task, beta = cfg.model, cfg.task, cfg.beta
    k, limit, judge, data_dir, seed = cfg.k, cfg.limit, cfg.judge, cfg.data_dir, cfg.seed
    max_new_tokens, temperature, reward = cfg.max_new_tokens, cfg.temperature, cfg.reward
    instruction, judge_all, batch_size, top_k = cfg.instruction, cfg.judge_all, cfg.batch_size, cfg.top_k
    n_resamples, alpha, judge_options, task_config = cfg.n_resamples, cfg.alpha, cfg.judge_options, cfg.task_config
    t0 = time.perf_counter()
    sampled = forecast_records(task, limit, seed, data_dir, instruction, task_config)
    names = list(sampled)
    if task_config is not None:
        task = task_config.name
        reward = task_config.reward or training_reward(task_config.name)
    the_reward = None
    if reward is not None:
        from ..rewards.registry import get_reward

        the_reward = get_reward(reward)
    graders: dict[str, str | None] = {n: reward if reward is not None else grader_for(n) for n in names}
    j = _judge_factory(judge, judge_options)
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0, n=k, seed=seed,
                              batch_size=batch_size)
    gen_cache: list[Generator] = []

    def generator() -> Generator:
        if not gen_cache:
            from ..generation.base import get_generator

            gen_cache.append(get_generator("hf", model))
        return gen_cache[0]

    model_key = model_fingerprint(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    prompt_rows: list[dict[str, Any]] = []
    g_rows: list[np.ndarray] = []
    s_rows: list[np.ndarray] = []
    dropped = {"judge_errors": 0, "grade_errors": 0, "prompts_without_scores": 0}
    with Store(out / "store.sqlite") as store:
        store.start_run("forecast", "forecast", {"model": model, "task": task, "beta": beta, "k": k, "limit": limit,
                                                 "judge": judge, "seed": seed, "reward": reward,
                                                 "temperature": temperature, "max_new_tokens": max_new_tokens})
        for name in names:
            records = [r for r, _ in sampled[name]]
            if not records:
                notes.append(f"{name}: no records")
                continue
            prompts = [p for _, p in sampled[name]]
            bench_key = _store_benchmark(name, records, prompts)
            rows = ensure_generations(store, generator, model_key, bench_key,
                                      [(r.id, p) for r, p in zip(records, prompts, strict=True)], params,
                                      progress=progress)
            by_item: dict[str, list[GenerationRow]] = {}
            for row in rows:
                by_item.setdefault(row.item_id, []).append(row)
            grader = graders[name]
            grades: dict[int, float] = {}
            if grader is not None:
                rw = the_reward
                if rw is None:
                    from ..rewards.registry import get_reward

                    rw = get_reward(grader)
                examples = {r.id: grading_example(r) for r in records}
                grades = ensure_grades(store, grader, rw, rows, [examples[row.item_id] for row in rows])
            to_judge = [row for rec in records if judge_all or rec.label == "harmful" for row in by_item[rec.id]]
            verdicts = ensure_judgments(store, j, to_judge) if to_judge else {}
            for rec, prompt in zip(records, prompts, strict=True):
                judged = judge_all or rec.label == "harmful"
                g, s = [], []
                for row in by_item[rec.id]:
                    if grader is not None and row.id not in grades:  # a grader error, redone on resume
                        dropped["grade_errors"] += 1
                        continue
                    if judged:
                        v = verdicts.get(row.id)
                        if v is None or v["label"] == "error":
                            dropped["judge_errors"] += 1
                            continue
                        s.append(1.0 - float(v["harmful"]))
                    else:
                        s.append(1.0)
                    g.append(grades[row.id] if grader is not None else 0.0)
                if not g:
                    dropped["prompts_without_scores"] += 1
                    continue
                g_rows.append(np.clip(np.asarray(g, dtype=float), 0.0, 1.0))
                s_rows.append(np.clip(np.asarray(s, dtype=float), 0.0, 1.0))
                prompt_rows.append({"prompt_id": rec.id, "benchmark": name, "label": rec.label,
                                    "prompt": prompt[:PREVIEW_CHARS], "s_source": "judge" if judged else "constant",
                                    "g_source": grader or "none"})
        store.finish_run("forecast")
    if not prompt_rows:
        raise UserError("no prompt has usable scores (every verdict was a judge error?); nothing to forecast")

    fc = forecast(g_rows, s_rows, beta, prompt_ids=[p["prompt_id"] for p in prompt_rows], top_k=top_k,
                  n_resamples=n_resamples, alpha=alpha, seed=seed)
    for i, entry in enumerate(prompt_rows):
        lo, hi = prompt_drift_ci(g_rows[i], s_rows[i], fc.beta, n_resamples, alpha, seed + i)
        entry.update({"n_samples": int(g_rows[i].size), "success_rate": float(g_rows[i].mean()),
                    "ref_safety": float(fc.ref_safety[i]), "optimum_safety": float(fc.optimum_safety[i]),
                    "drift": float(fc.drift[i]), "drift_ci": [min(lo, fc.drift[i]), max(hi, fc.drift[i])],
                    "cov": float(fc.cov[i]), "cov_tilt": float(fc.cov_tilt[i]), "dual_use": bool(fc.dual_use[i]),
                    "optimum_bound": float(fc.optimum_bound[i])})

    per_bench: dict[str, Any] = {}
    for name in names:
        idx = [i for i, p in enumerate(prompt_rows) if p["benchmark"] == name]
        if not idx:
            continue
        d = fc.drift[idx]
        m, lo, hi = bootstrap_ci(d, np.mean, n_resamples=n_resamples, alpha=alpha, seed=seed)
        per_bench[name] = {
            "n_prompts": len(idx), "grader": graders[name],
            "success_rate": float(np.mean([prompt_rows[i]["success_rate"] for i in idx])),
            "ref_safety": float(fc.ref_safety[idx].mean()), "optimum_safety": float(fc.optimum_safety[idx].mean()),
            "mean_drift": m, "drift_ci": [lo, hi], "dual_use_fraction": float(fc.dual_use[idx].mean()),
            "s_scored_by": sorted({prompt_rows[i]["s_source"] for i in idx})}

    top = []
    for t in fc.top_dual_use:
        chosen = prompt_rows[t["index"]]
        top.append({k2: chosen[k2] for k2 in ("prompt_id", "benchmark", "label", "prompt", "cov", "cov_tilt", "drift",
                                              "drift_ci", "success_rate", "ref_safety", "optimum_safety")})

    if fc.dual_use_fraction == 0:
        notes.append("no prompt has Cov(s, e^(g/beta)) != 0, so the forecast drift is 0 by construction (DESIGN.md "
                     "zero-drift case): success and safety never vary together on these samples.")
    if not judge_all and any(p["s_source"] == "constant" for p in prompt_rows):
        notes.append(f"{judge!r} measures compliance, not content harm: benign/task prompts get s = 1 (not judged); "
                     "pass judge_all for a content-harm judge.")
    if any(graders[n] is None for n in names):
        notes.append("benchmarks without a verifier (safety sets) get g = 0: constant g means zero drift there, "
                     "unless a reward is named that scores every prompt.")
    if dropped["judge_errors"] or dropped["grade_errors"]:
        notes.append(f"{dropped['judge_errors']} samples had judge errors and {dropped['grade_errors']} grader errors "
                     f"and were left out, to be redone on resume ({dropped['prompts_without_scores']} prompts lost "
                     "every sample).")
    if k < 8:
        notes.append("K < 8: per-prompt forecasts are noisy and biased toward zero drift; raise k until they settle.")

    payload: dict[str, Any] = {
        "model": model, "model_key": model_key, "task": task, "benchmarks": names, "beta": fc.beta, "k": k,
        "limit": limit, "seed": seed, "temperature": temperature, "max_new_tokens": max_new_tokens,
        "judge": {"name": j.name, "version": j.version}, "judge_all": judge_all, "reward": reward,
        "graders": graders,
        "summary": {
            "n_prompts": fc.n_prompts, "mean_ref_safety": fc.mean_ref_safety,
            "mean_optimum_safety": fc.mean_optimum_safety, "mean_drift": fc.mean_drift,
            "drift_ci": list(fc.drift_ci), "dual_use_fraction": fc.dual_use_fraction,
            "mean_success_rate": float(np.mean([p["success_rate"] for p in prompt_rows])),
            "mean_optimum_bound": fc.mean_optimum_bound, "alpha": alpha},
        "per_benchmark": per_bench,
        "top_dual_use": top,
        "per_prompt": prompt_rows,
        "dropped": dropped,
        "notes": notes + list(fc.notes),
        "timing": {"total_s": time.perf_counter() - t0},
    }
    write_json_atomic(out / "forecast.json", payload)
    return payload
