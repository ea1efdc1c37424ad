"""Advantages by hand: REINFORCE++-baseline, RLOO with unscorable (NaN) completions, GRPO as TRL computes it, and
the KL-penalised reward; plus the algorithm -> GRPOConfig mapping per kl_mode, pinned field by field."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rlvr_safety.errors import UserError
from rlvr_safety.training.advantages import group_advantages, kl_penalised, nanstd
from rlvr_safety.training.config import RLConfig, load_config
from rlvr_safety.training.rlvr import ALGORITHMS, advantage_settings, grpo_args, objective

NAN = float("nan")


def test_reinforce_pp_baseline_by_hand() -> None:
    """Group-mean baseline on the KL-penalised reward, then divided by the batch std of the centred values."""
    r = torch.tensor([1.0, 0.0, 3.0, 3.0])
    k1 = torch.tensor([0.2, -0.4, 1.0, 0.0])
    shaped = kl_penalised(r, k1, beta=0.5)
    assert torch.allclose(shaped, torch.tensor([0.9, 0.2, 2.5, 3.0]))
    centred = torch.tensor([0.35, -0.35, -0.25, 0.25])  # group means 0.55 and 2.75
    std = math.sqrt((2 * 0.35**2 + 2 * 0.25**2) / 3)  # Bessel, batch mean of centred values is 0
    expected = centred / (std + 1e-4)
    assert torch.allclose(group_advantages(shaped, 2, "mean", "centred"), expected, atol=1e-6)
    # TRL's scale_rewards="batch" divides by the std of the *raw* rewards instead: a different number
    raw_std = float(nanstd(shaped))
    assert raw_std == pytest.approx(math.sqrt(((0.9 - 1.65) ** 2 + 1.45**2 + 0.85**2 + 1.35**2) / 3), rel=1e-6)
    assert not torch.allclose(group_advantages(shaped, 2, "mean", "batch"), expected, atol=1e-3)


def test_rloo_with_an_unscorable_completion_by_hand() -> None:
    """n/(n-1) per group from its scored count: r_i - mean of the OTHER scored rewards; a group with one scored
    completion has no leave-one-out baseline (0); NaN rows get 0."""
    r = torch.tensor([1.0, NAN, 0.0, 1.0,  # 3 scored
                      NAN, NAN, 1.0, NAN,  # 1 scored
                      0.0, 0.0, 1.0, 1.0])  # 4 scored
    adv = group_advantages(r, 4, "loo", "none")
    expected = torch.tensor([1 - 0.5, 0.0, 0 - 1.0, 1 - 0.5,
                             0.0, 0.0, 0.0, 0.0,
                             0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3, 1 - 1 / 3])
    assert torch.allclose(adv, expected, atol=1e-6)
    # the old factor G/(G-1) = 4/3 on the first group would give (1 - 2/3) * 4/3 = 0.444, not 0.5
    assert adv[0].item() == pytest.approx(0.5)


def test_grpo_group_scaling_matches_trl_formula() -> None:
    from trl.trainer.utils import nanstd as trl_nanstd

    torch.manual_seed(0)
    r = torch.rand(12)
    r[5] = NAN
    grouped = r.view(-1, 4)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(4)
    std = trl_nanstd(grouped, dim=1).repeat_interleave(4)
    expected = torch.nan_to_num((r - mean) / (std + 1e-4), nan=0.0)
    assert torch.allclose(group_advantages(r, 4, "mean", "group"), expected, atol=1e-6)
    batch = torch.nan_to_num((r - mean) / (trl_nanstd(r) + 1e-4), nan=0.0)
    assert torch.allclose(group_advantages(r, 4, "mean", "batch"), batch, atol=1e-6)
    assert torch.allclose(group_advantages(r, 4, "mean", "none"), torch.nan_to_num(r - mean, nan=0.0))


def test_kl_penalised_masks_unseen_completions() -> None:
    out = kl_penalised(torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([2.0, 0.0, 0.0, 0.0]), 0.25,
                       seen=torch.tensor([True, True, False, True]))
    assert out[0].item() == 0.5 and out[1].item() == 1.0 and math.isnan(out[2].item())
    adv = group_advantages(out, 2, "mean", "none")
    assert adv.tolist() == pytest.approx([-0.25, 0.25, 0.0, 0.0])  # the masked row leaves its group's baseline


@pytest.mark.parametrize("bad", [{"scale": "sideways"}, {"baseline": "median"}])
def test_group_advantages_rejects_unknown_modes(bad: dict) -> None:
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(4), 2, **bad)


# algorithm -> (baseline, scale, GRPOConfig loss_type, scale_rewards, epsilon_high, TRL beta) per kl_mode, beta=0.1
EXPECTED = {
    ("grpo", "loss"): ("mean", "group", "grpo", "group", None, 0.1),
    ("dr_grpo", "loss"): ("mean", "none", "dr_grpo", "none", None, 0.1),
    ("dapo", "loss"): ("mean", "group", "dapo", "group", 0.28, 0.1),
    ("bnpo", "loss"): ("mean", "group", "bnpo", "group", None, 0.1),
    ("rloo", "loss"): ("loo", "none", "grpo", "none", None, 0.1),
    ("reinforce_pp", "loss"): ("mean", "centred", "dapo", "none", None, 0.1),
    ("grpo", "reward"): ("mean", "none", "dr_grpo", "none", None, 0.0),
    ("dr_grpo", "reward"): ("mean", "none", "dr_grpo", "none", None, 0.0),
    ("dapo", "reward"): ("mean", "none", "dapo", "none", 0.28, 0.0),
    ("bnpo", "reward"): ("mean", "none", "dapo", "none", None, 0.0),
    ("rloo", "reward"): ("loo", "none", "dr_grpo", "none", None, 0.0),
    ("reinforce_pp", "reward"): ("mean", "centred", "dapo", "none", None, 0.0),
}


@pytest.mark.parametrize(("algorithm", "kl_mode"), sorted(EXPECTED))
def test_algorithm_maps_onto_grpo_config(algorithm: str, kl_mode: str, tmp_path: Path) -> None:
    cfg = load_config("rlvr", None, [f"algorithm={algorithm}", f"kl_mode={kl_mode}", "beta=0.1", "device=cpu"])
    baseline, scale, loss_type, scale_rewards, eps_high, trl_beta = EXPECTED[(algorithm, kl_mode)]
    assert advantage_settings(cfg) == (baseline, scale)  # type: ignore[arg-type]
    kw = grpo_args(cfg, tmp_path)
    assert kw["loss_type"] == loss_type and kw["scale_rewards"] == scale_rewards and kw["beta"] == trl_beta
    assert kw.get("epsilon_high") == eps_high
    assert objective(cfg.kl_mode) == ("tilt" if kl_mode == "reward" else "trl_k3_loss")


def test_expected_table_covers_every_algorithm() -> None:
    assert {a for a, _ in EXPECTED} == set(ALGORITHMS)


def test_kl_mode_default_is_defined_by_the_config_class() -> None:
    assert load_config("rlvr", None, []).kl_mode == RLConfig.model_fields["kl_mode"].default == "reward"


@pytest.mark.parametrize(("override", "match"), [("scale_rewards=group", "scale_rewards 'group'"),
                                                 ("loss_type=grpo", "loss_type 'grpo'"),
                                                 ("kl_mode=both", "kl_mode")])
def test_reward_mode_rejects_settings_that_move_the_optimum(override: str, match: str) -> None:
    with pytest.raises(UserError, match=match):
        load_config("rlvr", None, [override])
    if override != "kl_mode=both":  # the same settings are TRL's objective, allowed with kl_mode: loss
        assert load_config("rlvr", None, [override, "kl_mode=loss"]).kl_mode == "loss"


def test_user_overrides_reach_grpo_config(tmp_path: Path) -> None:
    cfg = load_config("rlvr", None, ["algorithm=grpo", "kl_mode=reward", "scale_rewards=batch", "loss_type=dapo",
                                     "epsilon_high=0.3", "device=cpu"])
    kw = grpo_args(cfg, tmp_path)
    assert advantage_settings(cfg) == ("mean", "batch")
    assert (kw["scale_rewards"], kw["loss_type"], kw["epsilon_high"]) == ("batch", "dapo", 0.3)


def test_one_algorithm_list() -> None:
    """The config's Literal is the one list: the study's methods accept it and the recipe has a spec for each
    algorithm TRL can run (ppo: only the verl backend)."""
    from rlvr_safety.study.spec import RL_ALGORITHMS
    from rlvr_safety.training.config import ALGORITHMS as CONFIG_ALGORITHMS

    assert RL_ALGORITHMS == CONFIG_ALGORITHMS
    assert set(ALGORITHMS) == set(CONFIG_ALGORITHMS) - {"ppo"}
