"""Train the demo's guard adapter with the project's guard recipe and ship it (src/rlvr_safety/assets/guard/).

The study's guard stage then *checks* the shipped adapter (load + a greedy refusal probe on its held-out prompts)
instead of training one, unless `guard.mode: train`. Steps:

1. run the guard recipe with the demo preset's `guard.config` (+ `save_adapter: true`), into --work;
2. export its LoRA adapter in bf16 (the adapter only, over the `default` model) to the assets folder;
3. measure the *exported* adapter: greedy refusal on the recipe's held-out AdvBench prompts (keyword judge), in
   fp32 and bf16, and sampled (temperature 1) refusal on the first 12 harmful prompts of each safety5 benchmark;
4. write provenance.json: the config, seed, data file hashes, the measurements, library versions, the commit.

Usage: python scripts/build_guard_adapter.py --work /tmp/guard-build [--preset demo] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

ASSET = Path(__file__).resolve().parents[1] / "src" / "rlvr_safety" / "assets" / "guard" / "default"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_hashes(cfg: Any, data_dir: str | None) -> dict[str, Any]:
    from rlvr_safety.data.registry import REGISTRY
    from rlvr_safety.paths import data_dir as resolve_data_dir

    root = resolve_data_dir(data_dir)
    out: dict[str, Any] = {}
    for name in [cfg.harmful, *cfg.benign]:
        info = REGISTRY[name]
        if info.path is None:
            out[name] = {"generated": True, "seed": cfg.seed + 7919, "note": "procedurally generated (seeded)"}
        elif root is None:
            out[name] = {"hub": info.hub_id, "note": "loaded from the hub; no local file to hash"}
        else:
            path = root / info.path
            out[name] = {"file": info.path, "sha256": sha256(path), "bytes": path.stat().st_size}
    return out


def export_adapter(model_dir: Path, target: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(model_dir / "adapter_model.safetensors"))
    target.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()},
              str(target / "adapter_model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((model_dir / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "default"
    (target / "adapter_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return {"tensors": len(tensors), "params": int(sum(v.numel() for v in tensors.values())),
            "stored_dtype": "bfloat16", "bytes": (target / "adapter_model.safetensors").stat().st_size,
            "sha256": sha256(target / "adapter_model.safetensors"), "r": cfg["r"], "lora_alpha": cfg["lora_alpha"],
            "target_modules": sorted(cfg["target_modules"]) if isinstance(cfg["target_modules"], list)
            else cfg["target_modules"]}


def heldout_refusal(adapter: Path, cfg: Any, dtype: str, max_new_tokens: int) -> dict[str, Any]:
    from rlvr_safety.judges.registry import get_judge
    from rlvr_safety.models import resolve_model
    from rlvr_safety.stats import proportion
    from rlvr_safety.training.callbacks import greedy_responses
    from rlvr_safety.training.guard import split_harmful

    _, heldout = split_harmful(cfg)
    loaded = resolve_model(str(adapter), dtype=dtype)
    replies = greedy_responses(loaded.model, loaded.tokenizer, heldout, max_new_tokens, batch_size=32)
    verdicts = get_judge("keyword").judge(heldout, replies)
    refused = sum(v.refused for v in verdicts if v.ok)
    return {"dtype": dtype, "greedy": True, "max_new_tokens": max_new_tokens, "judge": "keyword",
            "prompts": f"the recipe's held-out split of {cfg.harmful} (seed {cfg.seed})",
            **proportion(refused, sum(v.ok for v in verdicts))}


def sampled_refusal(adapter: Path, per_benchmark: int, data_dir: str | None) -> dict[str, Any]:
    from rlvr_safety.data import expand, load_benchmark
    from rlvr_safety.generation.base import GenerationParams
    from rlvr_safety.generation.hf import HFGenerator
    from rlvr_safety.judges.registry import get_judge
    from rlvr_safety.models import resolve_model
    from rlvr_safety.stats import proportion

    loaded = resolve_model(str(adapter))
    gen = HFGenerator(loaded.model, loaded.tokenizer)
    judge = get_judge("keyword")
    out: dict[str, Any] = {"temperature": 1.0, "max_new_tokens": 48, "seed": 0, "judge": "keyword",
                           "per_benchmark": {}}
    total = refused_all = 0
    for name in expand("safety5"):
        prompts = [r.prompt for r in load_benchmark(name, data_dir=data_dir) if r.label == "harmful"][:per_benchmark]
        outs = gen.generate(prompts, GenerationParams(max_new_tokens=48, temperature=1.0, seed=0, batch_size=64),
                            progress=False)
        verdicts = [v for v in judge.judge(prompts, [o.text for o in outs]) if v.ok]
        refused = sum(v.refused for v in verdicts)
        out["per_benchmark"][name] = proportion(refused, len(verdicts))
        total += len(verdicts)
        refused_all += refused
    out["pooled"] = proportion(refused_all, total)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True, help="training folder (resumable)")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--data-dir", default=os.environ.get("RLVR_SAFETY_DATA_DIR"))
    ap.add_argument("--target", type=Path, default=ASSET)
    args = ap.parse_args()

    from rlvr_safety.study.spec import load_spec
    from rlvr_safety.training import run_recipe
    from rlvr_safety.training.config import load_config

    spec = load_spec(preset=args.preset)
    config = {"model": "default", **spec.guard.config, "save_adapter": True}
    if args.data_dir:
        config["data_dir"] = str(args.data_dir)
    args.work.mkdir(parents=True, exist_ok=True)
    cfg_path = args.work / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=True))
    cfg = load_config("guard", cfg_path)
    t0 = time.time()
    summary_path = args.work / "train_summary.json"
    if summary_path.exists():
        info = json.loads(summary_path.read_text())
    else:
        info = run_recipe("guard", cfg_path, [], args.work, resume=True)
        info["wall_s"] = round(time.time() - t0, 1)
        summary_path.write_text(json.dumps(info, indent=2, default=str))
    adapter = export_adapter(Path(info["model"]), args.target)
    import torch
    import transformers
    import trl

    import peft

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    from rlvr_safety.models import cpu_dtype_name

    provenance = {
        "what": "LoRA adapter giving the default model (SmolLM2-135M-Instruct) guardrails: the guard recipe's "
                "safety SFT (refusals on AdvBench, the model's own answers on benign task prompts)",
        "base_model": "default",
        "script": "scripts/build_guard_adapter.py",
        "recipe": "guard",
        "preset": args.preset,
        "config": {k: v for k, v in cfg.model_dump().items() if k != "data_dir"},
        "seed": cfg.seed,
        "training": {"steps": info.get("steps"), "stopped_by": info.get("stopped_by"),
                     "train_runtime_s": info.get("train_runtime_s"), "wall_s": info.get("wall_s"),
                     "dtype": cfg.dtype or f"auto ({cpu_dtype_name()} on this CPU)",
                     "heldout_refusal_at_stop": info.get("heldout_refusal_rate")},
        "data": data_hashes(cfg, args.data_dir),
        "adapter": adapter,
        "heldout_refusal": [heldout_refusal(args.target, cfg, d, 48) for d in ("fp32", "bf16")],
        "sampled_refusal_safety5": sampled_refusal(args.target, 12, args.data_dir),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": trl.__version__, "peft": peft.__version__},
        "commit": commit,
        "date": dt.date.today().isoformat(),
    }
    (args.target / "provenance.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    print(json.dumps({k: provenance[k] for k in ("adapter", "heldout_refusal", "sampled_refusal_safety5")},
                     indent=2, default=str))


if __name__ == "__main__":
    main()
