"""The recorded sweep behind the demo preset's RL learning rate and step count (docs/demo-results.md).

Trains rlvr-grpo on generated arithmetic from the demo's guarded reference (the shipped guard adapter) with the
demo preset's RL settings, once per learning rate, at the preset's smallest beta (the arm that moves most), and
prints per-step sequence KL to the reference (k1, nats), the training success rate and the step time. Nothing is
tuned toward a safety outcome: safety is not measured here, only how far and how fast the policy moves.

    python scripts/demo_sweep.py --out /tmp/sweep --lr 1e-4 3e-4 1e-3 --steps 12 --beta 0.01
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import yaml


def preset_rl_settings() -> dict:
    """The demo preset's train settings merged with its rlvr overrides: the sweep trains what the demo trains."""
    text = resources.files("rlvr_safety.study.presets").joinpath("demo.yaml").read_text()
    spec = yaml.safe_load(text)
    settings = dict(spec.get("train") or {})
    settings.update((spec.get("method_overrides") or {}).get("rlvr") or {})
    return settings


def metric_rows(store: Path) -> dict[int, dict[str, float]]:
    with sqlite3.connect(store) as db:
        rows = db.execute("select step, name, value from metrics").fetchall()
    out: dict[int, dict[str, float]] = {}
    for step, name, value in rows:
        out.setdefault(int(step), {})[name] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--beta", type=float, default=0.01)
    args = ap.parse_args()
    base = preset_rl_settings()
    reference = resources.files("rlvr_safety.assets").joinpath("guard/default")
    summary = []
    for lr in args.lr:
        out = args.out / f"lr{lr:g}"
        sets = {**{k: v for k, v in base.items() if k in ("num_generations", "max_completion_length",
                                                             "per_device_train_batch_size", "save_adapter")},
                "model": str(reference), "beta": args.beta, "learning_rate": lr, "max_steps": args.steps,
                "save_steps": args.steps, "probe.enabled": False, "task.name": "arithmetic"}
        cmd = [sys.executable, "-m", "rlvr_safety", "train", "--recipe", "rlvr", "--out", str(out)]
        for key, value in sets.items():
            cmd += ["--set", f"{key}={value}"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        rows = metric_rows(out / "store.sqlite")
        print(f"\nlr {lr:g}, beta {args.beta:g}, {args.steps} steps, wall {wall:.0f} s")
        print("step  kl_seq/k1  success  step_s")
        for step in sorted(rows):
            r = rows[step]
            if "kl_seq/k1" in r:
                print(f"{step:4d}  {r['kl_seq/k1']:9.3f}  {r.get('success_rate', float('nan')):7.3f}  "
                      f"{r.get('step_time', float('nan')):6.1f}")
        steps = [rows[s] for s in sorted(rows) if "kl_seq/k1" in rows[s]]
        last = steps[-4:]
        summary.append((lr, wall, steps[-1]["kl_seq/k1"],
                        sum(r.get("success_rate", 0.0) for r in steps[:4]) / max(1, len(steps[:4])),
                        sum(r.get("success_rate", 0.0) for r in last) / max(1, len(last))))
    print("\n| lr | wall s | final KL (nats) | success, first 4 steps | success, last 4 steps |")
    print("|---|---:|---:|---:|---:|")
    for lr, wall, kl, s0, s1 in summary:
        print(f"| {lr:g} | {wall:.0f} | {kl:.3f} | {s0:.2f} | {s1:.2f} |")


if __name__ == "__main__":
    main()
