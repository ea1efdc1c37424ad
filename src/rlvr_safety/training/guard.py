"""Guard stage: a short safety SFT that gives an unaligned small model guardrails, so there is safety to lose.

Harmful prompts from a training-only source (default AdvBench, kept out of every evaluation suite) are answered
with varied in-house refusals; benign prompts are answered with the model's *own* greedy replies, so the SFT teaches
"refuse these" without teaching new content elsewhere (helpfulness is kept). Training stops as soon as the refusal
rate on held-out prompts of the same source reaches the target (checked greedily every `check_every` steps).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from rlvr_safety.errors import UserError

from . import common
from .callbacks import JudgedProbe, greedy_responses
from .config import GuardConfig, TaskConfig

# Varied, in-house refusals: variety keeps the model from learning one string; each opens with a phrase a refusal
# judge recognises, and most offer a safe alternative, as aligned assistants do.
REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that.",
    "I can't assist with this request because it could cause serious harm.",
    "I won't provide instructions for that. If you're dealing with a difficult situation, I'm happy to talk about "
    "safer options.",
    "I'm not able to help with that. It could put people at risk, and that's not something I'll contribute to.",
    "Sorry, but I can't do that. Is there something else I can help you with?",
    "I cannot help with this. If you have a legitimate need, consider contacting a qualified professional.",
    "I must decline this request. Helping with it could lead to real harm to others or to you.",
    "I'm sorry, I can't provide that information. I can, however, share general safety resources if that helps.",
    "I will not assist with that. Let me know if you'd like help with something else.",
    "I'm unable to help with this request, as it involves activities that could hurt people.",
    "I can't help create or plan anything like this. If someone is in danger, please contact local emergency "
    "services.",
    "I'm sorry, but this is something I won't help with. I'd be glad to help with a different question.",
    "I apologize, but I can't support this request. It goes against my commitment to safety.",
    "I cannot provide guidance on that. Causing harm or breaking the law isn't something I can assist with.",
    "I'm not going to help with that request. If you're curious about the topic from a safety or research angle, I "
    "can point you to general, responsible information.",
)


def split_harmful(cfg: GuardConfig) -> tuple[list[str], list[str]]:
    """(training prompts, held-out prompts), a fixed seeded split of the training-only harmful source."""
    from rlvr_safety.data import load_benchmark

    prompts = [r.prompt for r in load_benchmark(cfg.harmful, data_dir=cfg.data_dir) if r.label == "harmful"]
    random.Random(f"guard:{cfg.seed}").shuffle(prompts)
    if len(prompts) < cfg.heldout + 1:
        raise UserError(f"guard: {cfg.harmful} has {len(prompts)} harmful prompts; lower heldout ({cfg.heldout})")
    heldout, train = prompts[: cfg.heldout], prompts[cfg.heldout: cfg.heldout + cfg.n_harmful]
    return train, heldout


def benign_prompts(cfg: GuardConfig) -> list[str]:
    """`n_benign` prompts from each benign source (task prompts, so the guard keeps task behaviour intact)."""
    out: list[str] = []
    for name in cfg.benign:
        items = common.task_items(TaskConfig(name=name, limit=cfg.n_benign), seed=cfg.seed + 7919,
                                  data_dir=cfg.data_dir)
        out.extend(it.prompt for it in items[: cfg.n_benign])
    return out


def guard_dataset(cfg: GuardConfig, model: Any, tokenizer: Any) -> tuple[Any, list[str]]:
    """Prompt-completion rows (refusals + the model's own benign answers) and the held-out harmful prompts."""
    from datasets import Dataset

    train, heldout = split_harmful(cfg)
    benign = benign_prompts(cfg)
    answers = greedy_responses(model, tokenizer, benign, cfg.benign_max_new_tokens, batch_size=64)
    rng = random.Random(f"guard-refusals:{cfg.seed}")
    rows = [{"prompt": common.messages(p), "completion": [{"role": "assistant", "content": rng.choice(REFUSALS)}]}
            for p in train]
    rows += [{"prompt": common.messages(p), "completion": [{"role": "assistant", "content": a}]}
             for p, a in zip(benign, answers, strict=True) if a.strip()]
    rng.shuffle(rows)
    return Dataset.from_list(rows), heldout


def run(cfg: GuardConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    from rlvr_safety.judges.registry import build_judge

    from .sft import run_sft_trainer

    judge = build_judge(cfg.judge)
    probe = common.probe_monitor(cfg)
    loaded = common.load_policy(cfg)
    dataset, heldout = guard_dataset(cfg, loaded.model, loaded.tokenizer)
    loaded.model.train()
    stop_rule = JudgedProbe(heldout, judge, every=cfg.check_every, max_new_tokens=cfg.check_max_new_tokens,
                            name="guard", stop_at_refusal=cfg.target_refusal)

    def final_check(model: Any, tokenizer: Any) -> dict[str, Any]:
        rate = stop_rule(-1, model, tokenizer, None).metrics.get("refusal_rate")
        return {"heldout_refusal_rate": rate, "reached_target": rate is not None and rate >= cfg.target_refusal}

    return run_sft_trainer(cfg, out, resume, "guard", dataset, loaded, [stop_rule, probe],
                           {"examples": len(dataset), "heldout": len(heldout)}, final_check=final_check)
