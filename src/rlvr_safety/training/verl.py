"""`backend: verl`: an rlvr run on verl (Ray, FSDP actors, vLLM rollouts), for multi-node RLVR and for PPO.

We write adapters, not engines (DESIGN.md section 3). A run becomes three files under DIR/verl/:
  train.parquet, val.parquet   the task's prompts in verl's schema: data_source, prompt (a chat message list),
                               ability, reward_model {style: rule, ground_truth}, extra_info {split, index, id}
  run.sh                       `python3 -m verl.trainer.main_ppo key=value ...`, then verl's model merger into DIR/model
Rewards are ours: verl calls rewards/verl_adapter.py's `compute_score(data_source, solution_str, ground_truth,
extra_info)`, and data_source `rlvr_safety/<reward>` names exactly the reward the TRL backend would use.

The settings map onto verl's (verl/trainer/config/ppo_trainer.yaml):
  kl_mode loss     actor.use_kl_loss=true, kl_loss_coef=beta, kl_loss_type=low_var_kl (k3, as TRL's loss term)
  kl_mode reward   algorithm.use_kl_in_reward=true, kl_penalty=kl (k1 per token, summed into the sequence's
                   reward by the outcome estimators), kl_ctrl fixed at beta; no std scaling
                   (norm_adv_by_std_in_grpo=false): the tilt objective, as on the TRL backend
  algorithm        grpo/dr_grpo/dapo/bnpo -> adv_estimator grpo (dapo: clip_ratio_high 0.28), rloo -> rloo,
                   reinforce_pp -> reinforce_plus_plus_baseline, ppo -> gae with a critic (value model from the
                   policy's weights, one rollout per prompt)
  loss_type        grpo -> seq-mean-token-mean, dr_grpo -> seq-mean-token-sum-norm, dapo/bnpo -> token-mean
The trained model lands in DIR/model (Hugging Face format), so eval, certify and the study take it as any model spec.
"""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from rlvr_safety.errors import UserError

from . import common
from .advantages import ALGORITHMS, advantage_settings
from .config import RLConfig

VERL_HINT = "pip install 'rlvr-safety[verl]'"
SUBDIR = "verl"
ADV_ESTIMATORS = {"grpo": "grpo", "dr_grpo": "grpo", "dapo": "grpo", "bnpo": "grpo", "rloo": "rloo",
                  "reinforce_pp": "reinforce_plus_plus_baseline", "ppo": "gae"}
LOSS_AGG = {"grpo": "seq-mean-token-mean", "dr_grpo": "seq-mean-token-sum-norm", "dapo": "token-mean",
            "bnpo": "token-mean"}
ABILITY = {"arithmetic": "math", "gsm8k": "math", "math": "math", "code": "code", "ifeval": "instruction_following",
           "ifeval-rl": "instruction_following"}


def reward_name(cfg: RLConfig) -> str:
    """The reward the TRL backend would train this task with."""
    from rlvr_safety.rewards.registry import TASK_REWARDS

    if cfg.task.reward:
        return cfg.task.reward
    key = cfg.task.name.removesuffix("-train")
    if key not in TASK_REWARDS:
        raise UserError(f"no reward for task {cfg.task.name!r}; set task.reward")
    return TASK_REWARDS[key]


def rows(cfg: RLConfig, split: str = "train") -> list[dict[str, Any]]:
    """The task's prompts as verl rows (see the module docstring for the schema)."""
    name = reward_name(cfg)
    items = common.task_items(cfg.task, seed=cfg.seed, data_dir=cfg.data_dir)
    return [{"data_source": f"rlvr_safety/{name}",
             "prompt": common.messages(it.prompt, cfg.task.system_prompt),
             "ability": ABILITY.get(name, "other"),
             "reward_model": {"style": "rule", "ground_truth": it.gold},
             "extra_info": {"split": split, "index": i, "id": it.id}}
            for i, it in enumerate(items)]


def export_data(cfg: RLConfig, folder: Path) -> dict[str, Path]:
    """Write train.parquet and val.parquet (the first `verl.val_size` rows; validation is off) under `folder`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    train = rows(cfg, "train")
    val = [{**r, "extra_info": {**r["extra_info"], "split": "val"}} for r in train[: cfg.verl.val_size]]
    paths = {"train": folder / "train.parquet", "val": folder / "val.parquet"}
    for split, data in (("train", train), ("val", val)):
        tmp = paths[split].with_suffix(".parquet.tmp")
        pq.write_table(pa.Table.from_pylist(data), tmp)
        tmp.replace(paths[split])
    return paths


def reward_module() -> Path:
    from rlvr_safety.rewards import verl_adapter

    return Path(verl_adapter.__file__).resolve()


def _bool(value: bool) -> str:
    return "true" if value else "false"


def train_batch_prompts(cfg: RLConfig) -> int:
    """Prompts per step: the TRL backend's global batch of completions divided by completions per prompt."""
    v = cfg.verl
    completions = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * v.n_gpus_per_node * v.nnodes
    return max(1, completions // rollouts_per_prompt(cfg))


def rollouts_per_prompt(cfg: RLConfig) -> int:
    return 1 if cfg.algorithm == "ppo" else cfg.num_generations


def algorithm_settings(cfg: RLConfig) -> tuple[str, bool, float]:
    """(TRL loss type, per-group std scaling, upper clip) as the TRL backend would use them (advantages.ALGORITHMS)."""
    if cfg.algorithm == "ppo":  # gae: no group statistics; verl's token-mean
        return cfg.loss_type or "dapo", False, cfg.epsilon_high or cfg.epsilon
    spec = ALGORITHMS[cfg.algorithm]
    loss_type = cfg.loss_type or (spec.reward_loss_type if cfg.kl_mode == "reward" else spec.loss_type)
    _, scale = advantage_settings(cfg)
    if scale == "batch":
        raise UserError("scale_rewards 'batch' has no verl counterpart; use 'none' or 'group' with backend verl")
    # "centred" (reinforce_pp) is done by verl's reinforce_plus_plus_baseline estimator itself
    high = cfg.epsilon_high if cfg.epsilon_high is not None else (spec.epsilon_high or cfg.epsilon)
    return loss_type, scale == "group", high


def overrides(cfg: RLConfig, out: Path, data: dict[str, Path], model_path: str, reward_path: Path) -> list[str]:
    """verl's Hydra overrides for this run."""
    v = cfg.verl
    reward_mode = cfg.kl_mode == "reward" and cfg.beta > 0
    loss_mode = cfg.kl_mode == "loss" and cfg.beta > 0
    loss_type, std_scaling, clip_high = algorithm_settings(cfg)
    batch = train_batch_prompts(cfg)
    micro = cfg.per_device_train_batch_size
    a = "actor_rollout_ref"
    args = [
        f"algorithm.adv_estimator={ADV_ESTIMATORS[cfg.algorithm]}",
        f"algorithm.norm_adv_by_std_in_grpo={_bool(std_scaling)}",
        f"algorithm.use_kl_in_reward={_bool(reward_mode)}",
        "algorithm.kl_penalty=kl",
        "algorithm.kl_ctrl.type=fixed",
        f"algorithm.kl_ctrl.kl_coef={cfg.beta:g}",
        f"data.train_files={data['train']}",
        f"data.val_files={data['val']}",
        "data.prompt_key=prompt",
        f"data.max_prompt_length={v.max_prompt_length}",
        f"data.max_response_length={cfg.max_completion_length}",
        "data.filter_overlong_prompts=true",
        f"data.train_batch_size={batch}",
        f"{a}.model.path={model_path}",
        f"{a}.model.lora_rank={cfg.lora.r if cfg.lora.enabled else 0}",
        f"{a}.model.lora_alpha={cfg.lora.lora_alpha}",
        f"{a}.model.target_modules={_list(cfg.lora.target_modules)}",
        f"{a}.model.enable_gradient_checkpointing={_bool(cfg.gradient_checkpointing)}",
        f"{a}.actor.optim.lr={cfg.learning_rate:g}",
        f"{a}.actor.ppo_mini_batch_size={batch}",
        f"{a}.actor.ppo_micro_batch_size_per_gpu={micro}",
        f"{a}.actor.ppo_epochs={cfg.num_iterations}",
        f"{a}.actor.clip_ratio_low={cfg.epsilon:g}",
        f"{a}.actor.clip_ratio_high={clip_high:g}",
        f"{a}.actor.loss_agg_mode={LOSS_AGG.get(loss_type, 'token-mean')}",
        f"{a}.actor.grad_clip={cfg.max_grad_norm:g}",
        f"{a}.actor.use_kl_loss={_bool(loss_mode)}",
        f"{a}.actor.kl_loss_coef={cfg.beta:g}",
        f"{a}.actor.kl_loss_type=low_var_kl",
        f"{a}.rollout.name=vllm",
        f"{a}.rollout.n={rollouts_per_prompt(cfg)}",
        f"{a}.rollout.temperature={cfg.temperature:g}",
        f"{a}.rollout.top_p={cfg.top_p:g}",
        f"{a}.rollout.gpu_memory_utilization={cfg.vllm_gpu_memory_utilization:g}",
        f"{a}.rollout.tensor_model_parallel_size={v.tensor_model_parallel_size}",
        f"{a}.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        f"{a}.ref.log_prob_micro_batch_size_per_gpu={micro}",
        f"custom_reward_function.path={reward_path}",
        "custom_reward_function.name=compute_score",
        f"trainer.n_gpus_per_node={v.n_gpus_per_node}",
        f"trainer.nnodes={v.nnodes}",
        f"trainer.total_training_steps={cfg.max_steps}",
        f"trainer.save_freq={cfg.save_steps}",
        f"trainer.default_local_dir={out / SUBDIR / 'checkpoints'}",
        "trainer.resume_mode=auto",
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        "trainer.logger=[console]",
        "trainer.project_name=rlvr-safety",
        f"trainer.experiment_name={out.name or 'run'}",
    ]
    if cfg.lora.enabled:  # verl's LoRA path loads the rollout weights from safetensors
        args.append(f"{a}.rollout.load_format=safetensors")
    if cfg.algorithm == "ppo":
        args += [f"critic.model.path={model_path}", f"critic.optim.lr={v.critic_learning_rate:g}",
                 f"critic.ppo_micro_batch_size_per_gpu={micro}"]
    return args


def _list(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "[" + ",".join(value) + "]"


def commands(cfg: RLConfig, out: Path, data: dict[str, Path], model_path: str,
             reward_path: Path | None = None) -> list[list[str]]:
    """[training command, merge command]: verl.trainer.main_ppo, then verl.model_merger to DIR/model (HF format)."""
    train = ["python3", "-m", "verl.trainer.main_ppo",
             *overrides(cfg, out, data, model_path, reward_path or reward_module())]
    actor = out / SUBDIR / "checkpoints" / f"global_step_{cfg.max_steps}" / "actor"
    merge = ["python3", "-m", "verl.model_merger", "merge", "--backend", "fsdp", "--local_dir", str(actor),
             "--target_dir", str(out / common.MODEL_SUBDIR)]
    return [train, merge]


def script(cmds: list[list[str]]) -> str:
    lines = ["#!/usr/bin/env bash", "# written by rlvr-safety (backend: verl); rerun it to resume (resume_mode=auto)",
             "set -euo pipefail"]
    for cmd in cmds:
        head, rest = cmd[:3], cmd[3:]
        if all("=" in part for part in rest):  # Hydra overrides: one per line
            lines.append(" \\\n    ".join([" ".join(head), *(shlex.quote(part) for part in rest)]))
        else:
            lines.append(" ".join(shlex.quote(part) for part in cmd))
    return "\n".join(lines) + "\n"


def describe(cfg: RLConfig) -> str:
    """One line for `study --dry-run` and the run summary."""
    extra = ", critic (value model) from the policy, 1 rollout per prompt" if cfg.algorithm == "ppo" else ""
    kl = ("no KL" if cfg.beta == 0 else "KL in the reward (k1, fixed beta)" if cfg.kl_mode == "reward"
          else "KL in the loss (low_var_kl)")
    return (f"verl: adv_estimator={ADV_ESTIMATORS[cfg.algorithm]}{extra}; {kl}; "
            f"{cfg.verl.nnodes} node(s) x {cfg.verl.n_gpus_per_node} GPU(s)")


def prepare(cfg: RLConfig, out: Path) -> tuple[Path, list[list[str]]]:
    """Export the data and write DIR/verl/run.sh; returns (script path, commands)."""
    from rlvr_safety.models import resolve_source

    data = export_data(cfg, out / SUBDIR)
    cmds = commands(cfg, out, data, resolve_source(cfg.model))
    path = out / SUBDIR / "run.sh"
    path.write_text(script(cmds))
    path.chmod(0o755)
    return path, cmds


def run(cfg: RLConfig, out: Path, resume: bool = False, kind: str = "rlvr") -> dict[str, Any]:
    """Prepare the run and launch it when verl is installed (else a one-line error naming the script)."""
    t0 = time.time()
    path, cmds = prepare(cfg, out)
    if importlib.util.find_spec("verl") is None:
        raise UserError(f"backend verl: verl is not installed ({VERL_HINT}); the data and the command are ready "
                        f"in {path.parent}: run bash {path} where verl and GPUs are")
    for cmd in cmds:
        result = subprocess.run(cmd, check=False)
        if result.returncode != 0:
            raise UserError(f"backend verl: {' '.join(cmd[:3])} exited with {result.returncode}; fix it and rerun "
                            f"(bash {path} resumes from verl's last checkpoint)")
    return {"out": str(out), "model": str(out / common.MODEL_SUBDIR), "recipe": kind, "backend": "verl",
            "algorithm": cfg.algorithm, "beta": cfg.beta, "kl_mode": cfg.kl_mode, "verl": describe(cfg),
            "script": str(path), "steps": cfg.max_steps, "wall_s": round(time.time() - t0, 1)}
