"""`rlvr-safety eval --inspect-log LOG`: judge and grade the outputs of an inspect eval log like our own generations.

The log must come from one of the `rlvr_safety/<benchmark>` inspect tasks (integrations/inspect_tasks.py): each of
its samples carries the normalised record in its metadata. Its outputs go into the store as the generations of a
model named after the log (`inspect:<model>:<eval id>`, one sample per epoch), and from there the ordinary eval
path judges safety benchmarks with `--judge`, grades capability ones with their verifier and writes
metrics.json, so numbers from inspect runs and from `rlvr-safety eval` runs are computed the same way. Samples
that errored in inspect (no output) are left out and counted. Needs the `inspect` extra (inspect_ai).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..data.records import Record
from ..data.tasks import eval_prompt
from ..errors import UserError
from ..evaluation.runner import evaluate_records
from ..generation.base import GenerationParams, Generator
from ..judges.base import Judge
from ..store import Store

EXTRA_HINT = "reading an inspect log needs the inspect extra: pip install 'rlvr-safety[inspect]'"


def read_log(path: Path) -> Any:
    """The inspect EvalLog at `path` (.eval or .json), with samples; UserError for a missing extra or a bad file."""
    try:
        from inspect_ai.log import read_eval_log
    except ImportError as exc:
        raise UserError(EXTRA_HINT) from exc
    if not path.is_file():
        raise UserError(f"inspect log not found: {path}")
    try:
        log = read_eval_log(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad input file
        raise UserError(f"{path} is not a readable inspect eval log: {type(exc).__name__}: {exc}") from exc
    if not log.samples:
        raise UserError(f"{path} holds no samples (status {log.status}); run inspect eval with samples logged")
    return log


def log_outputs(log: Any, where: str) -> tuple[dict[str, list[Record]], dict[tuple[str, int], str], int, int]:
    """(benchmark -> records, (item id, sample index) -> output, epochs, samples left out) of a log's samples."""
    records: dict[str, dict[str, Record]] = defaultdict(dict)
    outputs: dict[tuple[str, int], str] = {}
    errored = 0
    for sample in log.samples:
        raw = (sample.metadata or {}).get("record")
        if not isinstance(raw, dict):
            raise UserError(f"{where}: sample {sample.id!r} carries no rlvr_safety record; only logs of "
                            "rlvr_safety/<benchmark> inspect tasks can be read")
        record = Record(**raw)
        if sample.error is not None or sample.output is None or not sample.output.choices:
            errored += 1
            continue
        records[record.benchmark][record.id] = record
        outputs[(record.id, int(sample.epoch) - 1)] = sample.output.completion
    epochs = max([s for _, s in outputs] + [0]) + 1
    out: dict[str, list[Record]] = {}
    left_out = errored
    for benchmark, by_id in records.items():
        have = {r.id: sum((r.id, s) in outputs for s in range(epochs)) for r in by_id.values()}
        left_out += sum(n for n in have.values() if n < epochs)  # items missing an epoch are left out whole
        complete = [r for r in by_id.values() if have[r.id] == epochs]
        if complete:
            out[benchmark] = complete
    if not out:
        raise UserError(f"{where}: no sample has an output in every epoch; nothing to judge or grade")
    return out, outputs, epochs, left_out


def _no_generation() -> Generator:
    raise UserError("an inspect log is judged as it is: it lacks a generation that the evaluation asked for")


def eval_inspect_log(path: Path, out: Path, judge: str = "learned",
                     judge_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Judge and grade the samples of the inspect log at `path`; write OUT/store.sqlite and OUT/metrics.json."""
    log = read_log(path)
    by_benchmark, outputs, epochs, left_out = log_outputs(log, str(path))
    from ..judges.registry import build_judge

    built: list[Judge] = []

    def get_judge() -> Judge:
        if not built:
            built.append(build_judge(judge, **(judge_options or {})))
        return built[0]

    model = str(log.eval.model)
    model_key = f"inspect:{model}:{log.eval.eval_id}"
    params = GenerationParams(n=epochs)  # stands for "as the log has them": n samples per item
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with Store(out / "store.sqlite") as store:
        store.start_run("eval", "eval", {"inspect_log": str(path), "model": model, "task": log.eval.task,
                                         "benchmarks": sorted(by_benchmark), "judge": judge})
        for benchmark, records in by_benchmark.items():
            store.add_generations([
                {"model": model_key, "benchmark": benchmark, "item_id": r.id, "sample": s, "params": params.key(),
                 "prompt": eval_prompt(r), "response": outputs[(r.id, s)], "prompt_tokens": 0,
                 "completion_tokens": 0, "finish_reason": "stop", "backend": "inspect"}
                for r in records for s in range(epochs)])
            results[benchmark] = evaluate_records(store, model_key, benchmark, records, _no_generation, get_judge,
                                                  params, params, progress=False)
        store.finish_run("eval")
    scores = {s.name: {k: m.value for k, m in s.metrics.items()} for s in (log.results.scores if log.results else [])}
    payload = {"model": model, "model_key": model_key, "limit": None, "benchmarks": results,
               "inspect": {"log": str(path), "task": log.eval.task, "eval_id": log.eval.eval_id, "epochs": epochs,
                           "samples_left_out": left_out, "scores": scores}}
    write_json_atomic(out / "metrics.json", payload)
    return payload
