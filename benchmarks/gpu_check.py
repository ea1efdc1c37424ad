"""GPU check: a few rlvr GRPO steps on a random-init Qwen2-shaped ~0.5B model, our recipe vs bare TRL in the same
process (and our recipe with vLLM colocate where vllm is installed). Prints step time, completion tokens/s and the
ratios; writes OUT/gpu_check.json. Meant for a lent GPU machine (benchmarks/gpu_check.sh installs what it needs);
`--tiny` runs the same path on a CPU in seconds, `--dry-run` prints the plan and builds nothing.

    python benchmarks/gpu_check.py [--steps 4] [--completions 64] [--completion-len 256] [--arms ours,trl,vllm]
                                   [--tiny] [--dry-run] [--budget-s 330] [--out DIR]

No weights can be fetched there, so the model is random (Qwen2.5-0.5B's shape, vocabulary shrunk to a word-level
tokenizer trained in-process, with a plain chat template). Both arms get the same GRPOConfig (rlvr.grpo_args, with
kl_mode loss: TRL's k3 penalty at beta 0.04, so both run a reference forward), the same prompts and reward, and the
same precision (fp32 master weights under bf16 autocast, training/precision.py).
Each arm's step time is the median over the steps after the first (warm-up). An arm that fails is reported, not
hidden; arms not started before --budget-s are skipped (the whole check is sized to finish within 6 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
try:  # a checkout without `pip install -e .` (the lent machine): import the package from src/
    import rlvr_safety  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

ARMS = ("ours", "trl", "vllm")
# Qwen2.5-0.5B's shape (vocabulary aside); --tiny: a CPU-sized one
SHAPES = {
    "qwen2-0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                   "num_key_value_heads": 2},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
}
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}answer: {% endif %}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--steps", type=int, default=4, help="GRPO steps per arm (>= 2: the first is warm-up)")
    ap.add_argument("--completions", type=int, default=64, help="completions per step")
    ap.add_argument("--num-generations", type=int, default=8, help="completions per prompt")
    ap.add_argument("--completion-len", type=int, default=256, help="max new tokens per completion")
    ap.add_argument("--arms", default="ours,trl,vllm", help=f"comma list of {', '.join(ARMS)}")
    ap.add_argument("--vllm-memory", type=float, default=0.3, help="vllm_gpu_memory_utilization (colocate)")
    ap.add_argument("--budget-s", type=float, default=330.0, help="start no new arm after this many seconds")
    ap.add_argument("--tiny", action="store_true", help="tiny model on the CPU (smoke test of the same path)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan (and check the configs); run nothing")
    ap.add_argument("--out", default=os.environ.get("OUT") or None, help="results folder (default $OUT or a temp)")
    a = ap.parse_args(argv)
    arms = [x.strip() for x in a.arms.split(",") if x.strip()]
    bad = [x for x in arms if x not in ARMS]
    if bad or not arms:
        ap.error(f"--arms: unknown {bad or 'nothing'}; choose from {', '.join(ARMS)}")
    if a.steps < 2:
        ap.error("--steps must be >= 2 (the first step is warm-up)")
    if a.num_generations < 2 or a.completions % a.num_generations:
        ap.error("--completions must be a multiple of --num-generations (>= 2)")
    if a.completion_len < 1 or not 0 < a.vllm_memory <= 1:
        ap.error("--completion-len must be >= 1 and --vllm-memory in (0, 1]")
    a.arms = arms
    if a.tiny:
        a.completions, a.num_generations, a.completion_len = min(a.completions, 8), min(a.num_generations, 4), \
            min(a.completion_len, 8)
    return a


def overrides(a: argparse.Namespace, model: str, arm: str) -> list[str]:
    """The rlvr config of an arm (the same for ours and bare TRL; vllm adds the colocate engine)."""
    items = [f"model={model}", f"max_steps={a.steps}", f"per_device_train_batch_size={a.completions}",
             f"num_generations={a.num_generations}", f"max_completion_length={a.completion_len}",
             "task.limit=512", "probe.enabled=false", "lora.enabled=false", "learning_rate=1e-6",
             "save_steps=100000", "beta=0.04", "kl_mode=loss", "seed=0"]
    items += ["device=cpu", "dtype=fp32"] if a.tiny else ["dtype=bf16"]
    if arm == "vllm":
        items += ["use_vllm=true", "vllm_mode=colocate", f"vllm_gpu_memory_utilization={a.vllm_memory}"]
    return items


def model_config(a: argparse.Namespace, vocab: int, pad: int, eos: int) -> Any:
    from transformers import Qwen2Config

    shape = SHAPES["tiny" if a.tiny else "qwen2-0.5b"]
    return Qwen2Config(vocab_size=vocab, tie_word_embeddings=True, max_position_embeddings=4096,
                       pad_token_id=pad, eos_token_id=eos, **shape)


def tokenizer(tiny: bool = False) -> Any:
    """A word-level tokenizer over digits, arithmetic and the prompts' common words, with a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Qwen2.5's vocabulary is 151,936: filler words bring the LM head to that size (tiny: a small one)
    filler = 3000 if tiny else 151_000
    words = [str(i) for i in range(1000)] + list("+-*/=?.,:()") + [f"w{i}" for i in range(filler)]
    words += "What is the answer Give final as The Answer Solve compute".split()
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(vocab_size=len(words) + 8, special_tokens=["<unk>", "<pad>", "<eos>"])
    tok.train_from_iterator([" ".join(words)], trainer)
    tk = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    tk.chat_template = CHAT_TEMPLATE
    return tk


def param_count(cfg: Any) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


def build_model(a: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    tk = tokenizer(a.tiny)
    cfg = model_config(a, len(tk), tk.pad_token_id, tk.eos_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)  # fp32; the recipe decides the training precision
    model.generation_config.pad_token_id = tk.pad_token_id
    model.generation_config.eos_token_id = tk.eos_token_id
    model.save_pretrained(folder)
    tk.save_pretrained(folder)
    return {"params": sum(p.numel() for p in model.parameters()), "vocab": len(tk)}


def step_stats(history: list[dict[str, Any]], completions: int) -> dict[str, Any]:
    """Median step time after the first step and completion tokens/s from TRL's per-step logs."""
    steps = [h for h in history if "step_time" in h]
    later = steps[1:] or steps
    if not later:
        return {"error": "no step_time logged"}
    t = statistics.median(h["step_time"] for h in later)
    length = statistics.median(h.get("completions/mean_length", 0.0) for h in later)
    return {"steps": len(steps), "first_step_s": round(steps[0]["step_time"], 3), "step_s": round(t, 3),
            "completion_len_mean": round(length, 1),
            "completion_tokens_per_s": round(completions * length / t, 1) if t > 0 else None}


def run_ours(a: argparse.Namespace, model: str, out: Path, arm: str) -> dict[str, Any]:
    from rlvr_safety.store import Store
    from rlvr_safety.training import run_recipe

    info = run_recipe("rlvr", None, overrides(a, model, arm), out)
    series = Store(out / "store.sqlite").metric_series("rlvr")
    history = [{k: dict(v).get(step) for k, v in series.items() if step in dict(v)} for step, _ in
               series.get("step_time", [])]
    return {**step_stats(history, a.completions), "train_runtime_s": info.get("train_runtime_s")}


def run_bare(a: argparse.Namespace, model: str, out: Path) -> dict[str, Any]:
    """Plain GRPOTrainer: the same GRPOConfig, prompts, reward and starting weights; no subclass, no callbacks."""
    from trl import GRPOConfig, GRPOTrainer

    from rlvr_safety.training import common, load_config
    from rlvr_safety.training.rlvr import grpo_args, prompt_dataset

    cfg = load_config("rlvr", None, overrides(a, model, "trl"))
    loaded = common.load_policy(cfg)
    trainer = GRPOTrainer(model=loaded.model, reward_funcs=[common.task_reward(cfg.task)],
                          args=GRPOConfig(**grpo_args(cfg, out)),
                          train_dataset=prompt_dataset(cfg), processing_class=loaded.tokenizer)
    trainer.train()
    return step_stats(trainer.state.log_history, a.completions)


def vllm_available() -> bool:
    import importlib.util

    import torch

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def plan(a: argparse.Namespace) -> dict[str, Any]:
    """What would run, with each arm's rlvr config validated (no model built)."""
    from rlvr_safety.training import load_config

    tk = tokenizer(a.tiny)
    cfg = model_config(a, len(tk), tk.pad_token_id, tk.eos_token_id)
    arms: dict[str, Any] = {}
    for arm in a.arms:
        if arm == "vllm" and (a.tiny or not vllm_available()):
            arms[arm] = "skipped: needs vllm and CUDA" + (" (not with --tiny)" if a.tiny else "")
            continue
        load_config("rlvr", None, overrides(a, "default", arm))
        arms[arm] = overrides(a, "<random model>", arm)
    return {"model": "tiny" if a.tiny else "qwen2-0.5b", "params": param_count(cfg), "vocab": len(tk),
            "steps": a.steps, "completions_per_step": a.completions, "num_generations": a.num_generations,
            "completion_len": a.completion_len, "budget_s": a.budget_s, "arms": arms}


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    t0 = time.time()
    if a.dry_run:
        print(json.dumps({"dry_run": True, **plan(a)}, indent=1))
        return 0
    import torch

    out = Path(a.out or tempfile.mkdtemp(prefix="gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-runs-"))
    res: dict[str, Any] = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                           "torch": torch.__version__, "plan": plan(a), "arms": {}}
    for name in ("transformers", "trl", "vllm"):
        try:
            res[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - absent or broken: reported as such
            res[name] = None
    res["model"] = build_model(a, work / "model")
    for arm in a.arms:
        if isinstance(res["plan"]["arms"].get(arm), str):
            res["arms"][arm] = {"skipped": res["plan"]["arms"][arm]}
            continue
        if time.time() - t0 > a.budget_s:
            res["arms"][arm] = {"skipped": f"time budget {a.budget_s:g} s spent"}
            continue
        t = time.time()
        try:
            stats = run_bare(a, str(work / "model"), work / arm) if arm == "trl" else \
                run_ours(a, str(work / "model"), work / arm, arm)
        except Exception as exc:  # noqa: BLE001 - report, don't hide
            stats = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                     "traceback": traceback.format_exc()[-2000:]}
        stats["wall_s"] = round(time.time() - t, 1)
        res["arms"][arm] = stats
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    res["ratios"] = ratios(res["arms"])
    res["wall_s"] = round(time.time() - t0, 1)
    (out / "gpu_check.json").write_text(json.dumps(res, indent=1, default=str))
    print(table(res))
    return 0 if not any("error" in v for v in res["arms"].values()) else 1


def ratios(arms: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    def step(arm: str) -> float | None:
        value = arms.get(arm, {}).get("step_s")
        return float(value) if value else None

    ours, bare, vllm = step("ours"), step("trl"), step("vllm")
    return {"ours_step_over_trl": round(ours / bare, 3) if ours and bare else None,
            "vllm_speedup_over_ours": round(ours / vllm, 3) if ours and vllm else None}


def table(res: dict[str, Any]) -> str:
    lines = [f"device {res['device']}, torch {res['torch']}, transformers {res['transformers']}, trl {res['trl']}, "
             f"vllm {res['vllm']}; model {res['plan']['model']} ({res['model']['params'] / 1e6:.1f}M params); "
             f"{res['plan']['completions_per_step']} completions x {res['plan']['completion_len']} tokens a step",
             f"{'arm':<6} {'step s':>8} {'first s':>8} {'tok/s':>10} {'mean len':>9}  note"]
    for arm, s in res["arms"].items():
        note = s.get("skipped") or s.get("error") or ""
        lines.append(f"{arm:<6} {s.get('step_s', ''):>8} {s.get('first_step_s', ''):>8} "
                     f"{s.get('completion_tokens_per_s', ''):>10} {s.get('completion_len_mean', ''):>9}  {note}")
    lines.append("ratios: " + json.dumps(res["ratios"]) + f"; wall {res['wall_s']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
