"""Verifier throughput: math grading through the worker pool vs sequential in-process math-verify calls.

The workload is built from real golds (GSM8K rationales ending `#### n`, MATH-500 answers in `\\boxed{}`), half
of them perturbed so that both the "equal" and the "different" paths of math-verify are exercised. The code
sandbox section times `rlvr_safety.rewards.code` on HumanEval's canonical and broken solutions (sequential
latency and `run_batch` throughput), and is skipped with a message if that module is missing (or with
--skip-code).

    python benchmarks/verifier_throughput.py [--n 2000] [--workers N] [--skip-code] [--code-workers N]
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import os
import random
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

from rlvr_safety.rewards.math import MathReward, gold_answer

REPO = Path(__file__).resolve().parents[1]


def _data_dir(arg: str | None) -> Path:
    path = Path(arg or os.environ.get("RLVR_SAFETY_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (path / "gsm8k" / "test.jsonl").exists():
        sys.exit(f"data folder not found at {path}; pass --data-dir or set RLVR_SAFETY_DATA_DIR")
    return path


def _jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def build_math_workload(data_dir: Path, n: int, seed: int = 0) -> tuple[list[dict[str, Any]], list[str]]:
    """`n` (example, completion) pairs alternating GSM8K and MATH-500, every other one perturbed to be wrong."""
    rng = random.Random(seed)
    gsm8k = _jsonl(data_dir / "gsm8k" / "test.jsonl")
    math500 = _jsonl(data_dir / "math500" / "test.jsonl")
    examples: list[dict[str, Any]] = []
    completions: list[str] = []
    for i in range(n):
        perturb = (i // 2) % 2 == 1
        if i % 2 == 0:
            row = gsm8k[(i // 2) % len(gsm8k)]
            text = row["answer"]
            if perturb:
                text = re.sub(r"#### .*$", f"#### {int(gold_answer(text, 'gsm8k')) + 1}", text)
            examples.append({"gold": row["answer"]})
            completions.append(text)
        else:
            row = math500[(i // 2) % len(math500)]
            answer = row["answer"]
            if perturb:
                answer = (
                    str(int(answer) + 1) if re.fullmatch(r"-?\d+", answer) else rng.choice(math500)["answer"]
                )
            examples.append({"answer": row["answer"]})
            completions.append(f"Reasoning omitted. The result is $\\boxed{{{answer}}}$.")
    return examples, completions


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_math(data_dir: Path, n: int, workers: int, seed: int) -> dict[str, float]:
    examples, completions = build_math_workload(data_dir, n, seed)

    sequential = MathReward(workers=0)
    sequential.score_batch(examples[:20], completions[:20])  # math-verify's lazy set-up, as the workers do
    start, cpu = time.perf_counter(), time.process_time()
    seq_values = [v.value for v in sequential.score_batch(examples, completions)]
    seq_s, seq_cpu = time.perf_counter() - start, time.process_time() - cpu

    cpu = _children_cpu()
    with MathReward(workers=workers) as idle:  # start-up CPU alone, to subtract below
        idle.score({"gold": "1"}, r"\boxed{1}")
    startup_cpu = _children_cpu() - cpu

    with MathReward(workers=workers) as pooled:
        start = time.perf_counter()
        pooled.score({"gold": "1"}, r"\boxed{1}")  # start the workers; reported separately
        startup_s = time.perf_counter() - start
        start, cpu = time.perf_counter(), _children_cpu()
        pool_values = [v.value for v in pooled.score_batch(examples, completions)]
        pool_s = time.perf_counter() - start
    pool_cpu = _children_cpu() - cpu - startup_cpu  # workers are reaped (and counted) at close

    disagree = sum(a != b for a, b in zip(seq_values, pool_values, strict=True))
    result = {
        "n": n,
        "workers": workers,
        "sequential_per_s": n / seq_s,
        "pool_per_s": n / pool_s,
        "speedup": seq_s / pool_s,
        "pool_startup_s": startup_s,
        "sequential_cpu_ms": seq_cpu / n * 1e3,
        "pool_cpu_ms": pool_cpu / n * 1e3,
        "accuracy": sum(pool_values) / n,
        "disagreements": disagree,
    }
    print(f"math: {n} completions ({result['accuracy']:.1%} correct by construction ~50%)")
    print(f"  sequential in-process : {result['sequential_per_s']:8.1f} completions/s ({seq_s:.2f} s)")
    print(
        f"  pool, {workers} workers        : {result['pool_per_s']:8.1f} completions/s ({pool_s:.2f} s; "
        f"+{startup_s:.2f} s one-off start)"
    )
    print(
        f"  CPU per completion    : sequential {seq_cpu / n * 1e3:.2f} ms, pool workers "
        f"{pool_cpu / n * 1e3:.2f} ms (start-up excluded); machine load {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cpus"
    )
    print(f"  ratio pool/sequential : {result['speedup']:.2f}x; verdict disagreements: {disagree}")
    return result


def bench_code(data_dir: Path, n: int, workers: int | None = None) -> dict[str, float] | None:
    """Time the code sandbox on HumanEval: canonical solutions (must pass) and broken ones (must fail).

    Sequential `run_tests` calls give the per-program latency (launcher start-up, namespaces, harness); the
    bounded `run_batch` pool gives the throughput a trainer sees. Skipped until rlvr_safety.rewards.code exists.
    """
    try:
        module = importlib.import_module("rlvr_safety.rewards.code")
        run_tests, run_batch, code_task = module.run_tests, module.run_batch, module.CodeTask
    except (ModuleNotFoundError, AttributeError):
        print("code sandbox: skipped (rlvr_safety.rewards.code.run_tests is not available yet)")
        return None
    rows = _jsonl(data_dir / "humaneval" / "HumanEval.jsonl.gz")[:n]
    caps = module.sandbox_capabilities()
    seq_rows = rows[: min(len(rows), 32)]
    start = time.perf_counter()
    seq_passed = sum(
        run_tests(r["prompt"] + r["canonical_solution"], r["test"], r["entry_point"]).passed for r in seq_rows
    )
    seq_s = time.perf_counter() - start
    # The grading path runs HumanEval's prompt on the trusted side as test context (where the API has it).
    ctx = (lambda r: {"context": r["prompt"]}) if "context" in code_task.__dataclass_fields__ else (lambda r: {})
    good = [code_task(r["prompt"] + r["canonical_solution"], r["test"], r["entry_point"], 10.0, **ctx(r)) for r in rows]
    broken = [code_task(r["prompt"] + "    return None\n", r["test"], r["entry_point"], 10.0, **ctx(r)) for r in rows]
    start, cpu = time.perf_counter(), _children_cpu()
    results = run_batch(good + broken, max_workers=workers)
    batch_s, batch_cpu = time.perf_counter() - start, _children_cpu() - cpu
    passed = sum(r.passed for r in results[: len(rows)])
    broken_passed = sum(r.passed for r in results[len(rows) :])
    pool = workers or os.cpu_count() or 1
    print(f"code sandbox (isolation: {', '.join(sorted(caps.features))})")
    print(
        f"  sequential run_tests  : {seq_s / len(seq_rows) * 1e3:.0f} ms/program over {len(seq_rows)} programs "
        f"({seq_passed} passed)"
    )
    print(
        f"  run_batch ({pool} workers) : {2 * len(rows) / batch_s:.1f} programs/s; canonical {passed}/{len(rows)} "
        f"passed, broken {broken_passed}/{len(rows)} passed; machine load {os.getloadavg()[0]:.1f}"
    )
    print(f"  CPU per program       : {batch_cpu / (2 * len(rows)) * 1e3:.0f} ms (all processes of a run)")
    return {
        "n": len(rows),
        "per_s": 2 * len(rows) / batch_s,
        "latency_ms": seq_s / len(seq_rows) * 1e3,
        "passed": passed,
        "broken_passed": broken_passed,
        "cpu_ms": batch_cpu / (2 * len(rows)) * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="math completions to grade")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="pool workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-code", action="store_true", help="skip the code sandbox section")
    parser.add_argument("--code-n", type=int, default=164, help="HumanEval programs for the code section")
    parser.add_argument("--code-workers", type=int, default=None, help="sandboxes at once (default: CPUs)")
    args = parser.parse_args(argv)
    data_dir = _data_dir(args.data_dir)
    bench_math(data_dir, args.n, args.workers, args.seed)
    if not args.skip_code:
        bench_code(data_dir, args.code_n, args.code_workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
