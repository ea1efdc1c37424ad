"""Are the study's eval numbers the same in bf16 and fp32? The demo preset's eval (sampled answers to its harmful
and safe prompts, greedy held-out arithmetic) run twice on one model, once per dtype, in one process; per quantity
the two rates, their paired difference over the same prompts (Newcombe interval, exact McNemar p) and the time of
each pass. Sampled answers are different draws in the two dtypes (bf16 rounds the logits), so "equivalent" means:
every difference inside its interval's noise, not identical strings.

Usage: python benchmarks/eval_dtype_equivalence.py --model SPEC --out DIR [--preset demo]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from rlvr_safety.data import load_benchmark
from rlvr_safety.data.arithmetic import ANSWER_INSTRUCTION
from rlvr_safety.evaluation.configs import eval_config
from rlvr_safety.evaluation.runner import run_eval
from rlvr_safety.stats import paired_counts, paired_test
from rlvr_safety.study.spec import load_spec


def run(model: str, dtype: str, out: Path, preset: str, data_dir: str | None) -> tuple[dict[str, Any], float]:
    from dataclasses import replace

    spec = load_spec(preset=preset)
    e = spec.eval
    _, capability, limits = spec.eval_plan()
    records = {n: [replace(r, prompt=f"{r.prompt}\n{ANSWER_INSTRUCTION}")
                   for r in load_benchmark(n, limit=limits[n], seed=e.task_seed)] for n in capability
               if n == "arithmetic"}
    # the study's eval of this model, without second judges and without keeping token ids, in `dtype`
    study_cfg = spec.eval_config(model).model_dump()
    cfg = eval_config(**{**study_cfg, "data_dir": Path(data_dir) if data_dir else None, "second_judges": [],
                         "record_tokens": False, "generator_options": {"dtype": dtype}})
    t0 = time.perf_counter()
    result = run_eval(cfg, out / dtype, records=records, progress=False)
    return result["benchmarks"], time.perf_counter() - t0


def pooled(bench: dict[str, Any], field: str, group: str) -> dict[str, int]:
    out = {}
    for name, m in bench.items():
        for key, v in (((m.get(field) or {}).get(group) or {}) if group else (m.get(field) or {})).items():
            out[f"{name}::{key}"] = int(v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--data-dir", default=os.environ.get("RLVR_SAFETY_DATA_DIR"))
    args = ap.parse_args()
    b16, t16 = run(args.model, "bf16", args.out, args.preset, args.data_dir)
    b32, t32 = run(args.model, "fp32", args.out, args.preset, args.data_dir)
    print(f"model={args.model} preset={args.preset} load={os.getloadavg()[0]:.2f}")
    print(f"eval time: bf16 {t16:.1f} s, fp32 {t32:.1f} s, speed-up {t32 / t16:.2f}x")
    rows = [("refusal, harmful prompts (sampled)", "refused_by_item", "harmful"),
            ("over-refusal, XSTest safe prompts (sampled)", "refused_by_item", "benign"),
            ("task accuracy, held-out arithmetic (greedy)", "correct_by_item", "")]
    for label, field, group in rows:
        a, b = pooled(b32, field, group), pooled(b16, field, group)
        t = paired_test(paired_counts(a, b))
        n = t.counts.n
        r32 = sum(a[k] for k in a.keys() & b.keys()) / n if n else float("nan")
        r16 = sum(b[k] for k in a.keys() & b.keys()) / n if n else float("nan")
        print(f"{label:45s} n={n:3d}  fp32 {r32:.3f}  bf16 {r16:.3f}  bf16-fp32 {t.diff:+.3f} "
              f"[{t.ci[0]:+.3f}, {t.ci[1]:+.3f}]  McNemar p={t.p_value:.3f}  discordant {t.counts.discordant}")


if __name__ == "__main__":
    main()
