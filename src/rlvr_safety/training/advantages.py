"""Per-sequence advantages from per-sequence rewards: the baselines and normalisers of every rlvr algorithm.

Pure torch on 1-D tensors laid out as TRL lays out a generation batch: `num_generations` consecutive completions per
prompt. A NaN reward marks a completion that could not be scored (every reward function returned None) or, with the
KL in the reward, one whose tokens the loss never sees (a truncated completion masked out): it is left out of its
group's baseline and of every statistic, and its advantage is 0.

Baselines:
  mean   r_i - mean_j r_j over the scored completions of the group (GRPO's; the mean includes r_i itself, which only
         scales the expected gradient by (n-1)/n, so the stationary point is unchanged);
  loo    RLOO's leave-one-out baseline r_i - mean_{j != i} r_j = (r_i - mean_j r_j) * n / (n - 1), with n the number of
         *scored* completions of that group (not num_generations), and 0 where n < 2.
Scales (applied after the baseline):
  none     nothing (the only one under which the stationary point of the KL-in-reward objective is exactly the tilt);
  group    divide by the group's std of the rewards (GRPO; TRL's scale_rewards="group");
  batch    divide by the std of the raw rewards over the whole batch (TRL's scale_rewards="batch");
  centred  divide by the std over the whole batch of the *centred* advantages (REINFORCE++-baseline).
Stds are NaN-aware with Bessel's correction, plus 1e-4, as TRL computes them.
`ALGORITHMS` maps each rlvr algorithm to its baseline, scale and TRL loss type under each kl_mode (the table in
training/rlvr.py's docstring); both backends (rlvr.py, verl.py) read it through `advantage_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

if TYPE_CHECKING:
    from .config import RLConfig

Baseline = Literal["mean", "loo"]
Scale = Literal["none", "group", "batch", "centred"]
BASELINES: tuple[Baseline, ...] = ("mean", "loo")
SCALES: tuple[Scale, ...] = ("none", "group", "batch", "centred")
EPS = 1e-4


@dataclass(frozen=True)
class AlgorithmSpec:
    """One rlvr algorithm: its advantage baseline, and scaling and TRL loss type under each kl_mode."""

    baseline: Baseline
    scale: Scale  # with kl_mode "loss"
    loss_type: str  # with kl_mode "loss"
    reward_scale: Scale = "none"
    reward_loss_type: str = "dr_grpo"
    epsilon_high: float | None = None


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "grpo": AlgorithmSpec("mean", "group", "grpo"),
    "dr_grpo": AlgorithmSpec("mean", "none", "dr_grpo"),
    "dapo": AlgorithmSpec("mean", "group", "dapo", reward_loss_type="dapo", epsilon_high=0.28),
    "bnpo": AlgorithmSpec("mean", "group", "bnpo", reward_loss_type="dapo"),
    "rloo": AlgorithmSpec("loo", "none", "grpo"),
    "reinforce_pp": AlgorithmSpec("mean", "centred", "dapo", reward_scale="centred", reward_loss_type="dapo"),
}


def advantage_settings(cfg: RLConfig) -> tuple[Baseline, Scale]:
    """(baseline, scale) the recipe uses for `cfg`: the algorithm's for its kl_mode, or `scale_rewards` if set."""
    spec = ALGORITHMS[cfg.algorithm]
    scale: Scale = spec.reward_scale if cfg.kl_mode == "reward" else spec.scale
    if cfg.scale_rewards is not None:
        scale = cfg.scale_rewards
    return spec.baseline, scale


def nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Standard deviation ignoring NaNs, with Bessel's correction; NaN where fewer than two values are present."""
    if dim is None:
        x, dim = x.reshape(-1), 0
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim)
    ss = torch.nansum((x - mean) ** 2, dim=dim)
    var = torch.where(count > 1, ss / (count - 1).clamp(min=1), torch.full_like(ss, float("nan")))
    return torch.sqrt(var)


def group_advantages(rewards: torch.Tensor, num_generations: int, baseline: Baseline = "mean",
                     scale: Scale = "none") -> torch.Tensor:
    """Advantages (B,) for rewards (B,), B a multiple of `num_generations`; NaN rewards get advantage 0."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    r = rewards.float()
    if r.dim() != 1 or r.numel() % num_generations:
        raise ValueError(f"rewards must be 1-D with a multiple of {num_generations} entries, got {tuple(r.shape)}")
    grouped = r.view(-1, num_generations)
    n = (~torch.isnan(grouped)).sum(dim=1, keepdim=True)
    mean = torch.nansum(grouped, dim=1, keepdim=True) / n.clamp(min=1)
    adv = grouped - mean
    if baseline == "loo":
        factor = torch.where(n > 1, n / (n - 1).clamp(min=1), torch.zeros_like(n, dtype=adv.dtype))
        adv = adv * factor
    if scale == "group":
        adv = adv / (nanstd(grouped, dim=1).unsqueeze(1) + EPS)
    elif scale == "batch":
        adv = adv / (nanstd(r) + EPS)
    elif scale == "centred":
        adv = adv / (nanstd(adv.reshape(-1)) + EPS)
    return torch.nan_to_num(adv.reshape(-1), nan=0.0)


def kl_penalised(rewards: torch.Tensor, seq_log_ratio: torch.Tensor, beta: float,
                 seen: torch.Tensor | None = None) -> torch.Tensor:
    """r - beta * sum_t (log pi - log pi_ref) per sequence: the reward whose optimum is the exponential tilt.

    `seq_log_ratio` is the k1 sum over the completion tokens the loss sees; completions with no such token
    (`seen` False) get NaN, so they leave every baseline and get advantage 0.
    """
    out = rewards.float() - beta * seq_log_ratio.float()
    if seen is not None:
        out = torch.where(seen.bool(), out, torch.full_like(out, float("nan")))
    return out
