"""Resumable sampling and judging: ask the store what exists, do only the rest, commit batch by batch.

Used by eval, forecast, certify and the study, so every one of them resumes after a kill without redoing work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..generation.base import GenerationParams, Generator, derive_seed
from ..judges.base import Judge
from ..store import GenerationRow, Store


def ensure_generations(store: Store, get_generator: Callable[[], Generator], model_key: str, benchmark: str,
                       items: Sequence[tuple[str, str]], params: GenerationParams,
                       chunk: int | None = None, progress: bool = True) -> list[GenerationRow]:
    """Return rows for every (item_id, prompt) x params.n samples, generating only the missing ones.

    `get_generator` is called lazily, so a fully cached run never loads a model. Each chunk samples on its own
    random stream, named by the model, benchmark and the chunk's item ids: chunks, and the same items under another
    model (policy and reference), never share noise. A chunk is `chunk` prompts, else what the generator asks for
    (`prompts_per_call`: an engine that schedules its own batches, vLLM, or a server pool, wants many prompts per
    call), else two of its batches; each chunk is committed to the store before the next is generated.
    """
    key = params.key()
    have = store.existing_generations(model_key, benchmark, key)
    missing = [(item_id, prompt) for item_id, prompt in items
               if any((item_id, s) not in have for s in range(params.n))]
    if missing:
        generator = get_generator()
        step = chunk or getattr(generator, "prompts_per_call", None) or max(params.batch_size * 2, 1)
        for start in range(0, len(missing), step):
            part = missing[start:start + step]
            stream = f"{derive_seed(params.stream, model_key, benchmark, [item_id for item_id, _ in part]):x}"
            outs = generator.generate([p for _, p in part], replace(params, stream=stream), progress=progress)
            rows = []
            for j, (item_id, prompt) in enumerate(part):
                for s in range(params.n):
                    c = outs[j * params.n + s]
                    rows.append({"model": model_key, "benchmark": benchmark, "item_id": item_id, "sample": s,
                                 "params": key, "prompt": prompt, "response": c.text,
                                 "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                                 "finish_reason": c.finish_reason, "seed": params.seed,
                                 "backend": getattr(generator, "backend", "?")})
            store.add_generations(rows)
        have = store.existing_generations(model_key, benchmark, key)
    return [have[(item_id, s)] for item_id, _ in items for s in range(params.n)]


def ensure_judgments(store: Store, judge: Judge, rows: Sequence[GenerationRow], chunk: int = 64,
                     requests: Mapping[str, str] | None = None) -> dict[int, dict[str, Any]]:
    """Judge rows that have no verdict from this judge+version yet, or only an "error" verdict (a judge endpoint
    failure is no safe/unsafe call: it is redone on every resume); return {generation_id: verdict row}.

    `requests` maps item ids to the plain request the judge classifies against (data.records.judge_request: the
    behaviour or goal, not the attacked prompt the model saw); rows without one are judged on their prompt."""
    ids = [r.id for r in rows]
    have = store.existing_judgments(ids, judge.name, judge.version)
    todo = [r for r in rows if r.id not in have or have[r.id]["label"] == "error"]
    asked = requests or {}
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        verdicts = judge.judge([asked.get(r.item_id, r.prompt) for r in part], [r.response for r in part])
        store.add_judgments([
            {"generation_id": r.id, "judge": v.judge, "judge_version": v.version, "label": v.label,
             "refused": int(v.refused), "harmful": _finite(v.harmful), "raw": v.raw}
            for r, v in zip(part, verdicts, strict=True)])
    have = store.existing_judgments(ids, judge.name, judge.version)
    return {gid: dict(row) for gid, row in have.items()}


def ensure_grades(store: Store, grader_name: str, reward: Any, rows: Sequence[GenerationRow],
                  examples: Sequence[dict[str, Any]]) -> dict[int, float]:
    """Grade rows with a verifier (a Reward) once; grades are deterministic so the grader name is the key.

    A verdict with `error` set (the grader's machinery failed, e.g. a sandbox timeout under load) is stored as an
    error, left out of the returned grades, and graded again on the next call (a resume)."""
    ids = [r.id for r in rows]
    have = store.existing_grades(ids, grader_name)
    todo = [(r, ex) for r, ex in zip(rows, examples, strict=True) if r.id not in have or have[r.id]["error"]]
    if todo:
        verdicts = reward.score_batch([ex for _, ex in todo], [r.response for r, _ in todo])
        store.add_grades([{"generation_id": r.id, "grader": grader_name, "value": float(v.value),
                           "parsed": v.parsed, "reason": v.reason, "error": int(getattr(v, "error", False))}
                          for (r, _), v in zip(todo, verdicts, strict=True)])
        have = store.existing_grades(ids, grader_name)
    return {gid: float(row["value"]) for gid, row in have.items() if not row["error"]}


def _finite(value: float) -> float | None:
    """Judge errors carry NaN scores; store them as NULL (metrics drop error verdicts by label anyway)."""
    f = float(value)
    return f if math.isfinite(f) else None
