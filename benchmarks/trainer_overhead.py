"""Overhead of the rlvr recipe (KL estimators, success rate, store streaming, judged probe every 10 steps) over a
bare TRL GRPOTrainer with identical settings, on the default model. Prints steps/s of both and the ratio.

    python benchmarks/trainer_overhead.py [--steps 20] [--set key=value ...]

Both runs happen in this process, alternately, from the same seed; target: bare_steps_per_s / ours <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def bare(overrides: list[str], out: Path) -> float:
    """Plain GRPOTrainer: same GRPOConfig, dataset, reward and LoRA, no callbacks, no subclass."""
    from trl import GRPOConfig, GRPOTrainer

    from rlvr_safety.training import common, load_config
    from rlvr_safety.training.rlvr import grpo_args, prompt_dataset

    cfg = load_config("rlvr", None, overrides)
    loaded = common.load_policy(cfg)
    trainer = GRPOTrainer(model=loaded.model, reward_funcs=[common.task_reward(cfg.task)],
                          args=GRPOConfig(**grpo_args(cfg, out)), train_dataset=prompt_dataset(cfg),
                          processing_class=loaded.tokenizer, peft_config=common.peft_config(cfg.lora))
    t0 = time.perf_counter()
    trainer.train()
    return cfg.max_steps / (time.perf_counter() - t0)


def ours(overrides: list[str], out: Path) -> float:
    from rlvr_safety.training import run_recipe

    info = run_recipe("rlvr", None, overrides, out)
    return info["steps"] / info["train_runtime_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    a = ap.parse_args()
    overrides = [f"max_steps={a.steps}", "probe.every=10", "save_steps=100000", "num_generations=4",
                 "per_device_train_batch_size=8", "max_completion_length=24", "task.limit=64", *a.overrides]
    rates: dict[str, list[float]] = {"bare": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            rates["bare"].append(bare(overrides, Path(tmp) / f"bare{r}"))
            rates["ours"].append(ours(overrides, Path(tmp) / f"ours{r}"))
    b, o = max(rates["bare"]), max(rates["ours"])  # best of repeats: least disturbed by other load
    print(json.dumps({"bare_steps_per_s": round(b, 4), "ours_steps_per_s": round(o, 4),
                      "ratio_bare_over_ours": round(b / o, 3), "target": 1.10, "runs": rates,
                      "overrides": overrides}, indent=1))


if __name__ == "__main__":
    main()
