"""kl_mode="reward" converges to the exponential tilt; kl_mode="loss" (TRL's k3 in the loss) does not.

A bandit over a handful of fixed completions per prompt, with an exact softmax policy (one logit per completion,
Adam, as the recipe trains): each step samples G completions per prompt, scores them with g, and takes the policy-
gradient step the recipe takes with the same functions (`kl_penalised`, `group_advantages`). With one token per
completion and num_iterations = 1, TRL's clipped surrogate has exactly the gradient of -A log pi, which is what
the loss below differentiates. The trained policy is compared with pi_ref e^(g/beta) / Z (total variation), and its
exact safety drift with the forecast's prediction from K reference samples (docs/theory.md, "Toy check").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlvr_safety.evaluation.forecast import prompt_drift_ci
from rlvr_safety.theory import forecast, tilt
from rlvr_safety.training.advantages import Baseline, Scale, group_advantages, kl_penalised

BETA = 0.2
# three prompts x three completions: reference probabilities, success g in [0, 1], safety s
P_REF = np.array([[1 / 3, 1 / 3, 1 / 3],  # non-binary g with Cov(s, g) = 0 that still drifts (+0.258)
                  [0.5, 0.3, 0.2],  # binary g, successes less safe: drifts down
                  [0.4, 0.4, 0.2]])  # g constant (a harmful prompt): the optimum leaves it alone
G_REW = np.array([[0.0, 0.5, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
S_SAFE = np.array([[1.0, 0.0, 1.0], [0.2, 1.0, 0.5], [0.0, 1.0, 1.0]])
TV_TOL = 0.01  # stated tolerance: optimisation noise of 3000 Adam steps, averaged over the last quarter


def train_bandit(kl_mode: str, baseline: Baseline = "mean", scale: Scale | None = None, beta: float = BETA,
                 steps: int = 3000, group: int = 8, lr: float = 0.05, seed: int = 0) -> np.ndarray:
    """The trained policy (prompts x completions), averaged over the last quarter of the steps; `scale` defaults
    to "none" with the KL in the reward and to GRPO's "group" with TRL's k3 in the loss."""
    scale = scale or ("none" if kl_mode == "reward" else "group")
    gen = torch.Generator().manual_seed(seed)
    log_ref = torch.tensor(P_REF, dtype=torch.float64).log()
    g_all = torch.tensor(G_REW, dtype=torch.float64)
    theta = log_ref.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 if i < steps // 2 else 0.2)
    avg, n_avg = torch.zeros_like(log_ref), 0
    for it in range(steps):
        logp = torch.log_softmax(theta, dim=1)
        with torch.no_grad():
            actions = torch.multinomial(logp.exp(), group, replacement=True, generator=gen)  # (prompts, G)
        lp = logp.gather(1, actions)
        log_ratio = lp - log_ref.gather(1, actions)
        g = g_all.gather(1, actions)
        if kl_mode == "reward":  # the recipe's: KL of the sampled sequence in its reward, no KL term in the loss
            shaped = kl_penalised(g.reshape(-1), log_ratio.detach().reshape(-1), beta)
            adv = group_advantages(shaped, group, baseline, scale).view_as(g).to(lp.dtype)
            loss = -(adv * lp).mean()
        else:  # TRL's: advantages of the raw reward (GRPO: group std), per-token k3 penalty in the loss
            adv = group_advantages(g.reshape(-1), group, baseline, scale).view_as(g).to(lp.dtype)
            k3 = torch.expm1(-log_ratio) + log_ratio
            loss = (-(adv * lp) + beta * k3).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it >= 3 * steps // 4:
            avg += torch.softmax(theta.detach(), dim=1)
            n_avg += 1
    return (avg / n_avg).numpy()


def tilted(beta: float = BETA) -> np.ndarray:
    return np.stack([tilt(p, g, beta)[0] for p, g in zip(P_REF, G_REW, strict=True)])


def tv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(a - b).sum(axis=1)


def drift_of(pi: np.ndarray) -> np.ndarray:
    return (pi * S_SAFE).sum(axis=1) - (P_REF * S_SAFE).sum(axis=1)


@pytest.mark.parametrize(("baseline", "scale"), [("mean", "none"), ("loo", "none"), ("mean", "centred")],
                         ids=["grpo/dr_grpo", "rloo", "reinforce_pp"])
def test_reward_mode_converges_to_the_tilt(baseline: Baseline, scale: Scale) -> None:
    pi = train_bandit("reward", baseline, scale)
    dist = tv(pi, tilted())
    assert dist.max() < TV_TOL, dist
    assert tv(pi, P_REF)[:2].min() > 0.1  # it really moved (the tilt is far from the reference on prompts 0, 1)


def test_loss_mode_does_not_converge_to_the_tilt() -> None:
    pi = train_bandit("loss")
    dist = tv(pi, tilted())
    assert dist[0] > 3 * TV_TOL, dist  # the non-binary prompt ends measurably elsewhere
    assert dist[2] < TV_TOL  # constant g: both objectives leave the prompt at the reference


def test_forecast_predicts_the_trained_drift_within_its_ci() -> None:
    """K reference samples per prompt -> forecast drift and its bootstrap CI; the reward-mode policy's exact drift
    lies inside the CI (widened by the optimisation tolerance only where the CI is the point 0: constant g)."""
    rng = np.random.default_rng(0)
    k = 400
    idx = [rng.choice(3, size=k, p=p) for p in P_REF]
    g = [G_REW[i][a] for i, a in enumerate(idx)]
    s = [S_SAFE[i][a] for i, a in enumerate(idx)]
    fc = forecast(g, s, BETA, n_resamples=1000, seed=0)
    measured = drift_of(train_bandit("reward"))
    truth = drift_of(tilted())
    assert list(fc.dual_use) == [True, True, False]  # prompt 0 is dual-use although Cov(s, g) = 0
    assert abs(fc.cov[0]) < 0.05 and truth[0] == pytest.approx(0.257945, abs=1e-5)
    for i in range(3):
        lo, hi = prompt_drift_ci(g[i], s[i], BETA, n_resamples=1000, seed=i)
        widen = TV_TOL if lo == hi else 0.0
        assert lo - widen <= measured[i] <= hi + widen, (i, measured[i], (lo, hi))
        assert lo - widen <= truth[i] <= hi + widen
    assert abs(fc.mean_drift - measured.mean()) < 0.03


def reverse_kl_optimum(beta: float = BETA) -> np.ndarray:
    """argmax E_pi[g] - beta KL(pi_ref || pi): pi = beta pi_ref / (lambda - g), lambda > max g by bisection."""
    out = []
    for p, g in zip(P_REF, G_REW, strict=True):
        lo, hi = g.max() + 1e-12, g.max() + 10.0
        for _ in range(200):
            lam = (lo + hi) / 2
            lo, hi = (lam, hi) if (beta * p / (lam - g)).sum() > 1 else (lo, lam)
        q = beta * p / (lam - g)
        out.append(q / q.sum())
    return np.stack(out)


if __name__ == "__main__":  # the numbers quoted in docs/theory.md ("Toy check")
    q = tilted()
    print("tilt drift (exact):", np.round(drift_of(q), 4))
    for name, mode, b, sc in [("reward grpo/dr_grpo", "reward", "mean", "none"), ("reward rloo", "reward", "loo", "none"),
                              ("reward reinforce_pp", "reward", "mean", "centred"), ("loss grpo (k3)", "loss", "mean", "group"),
                              ("loss dr_grpo (k3)", "loss", "mean", "none")]:
        pi = train_bandit(mode, b, sc)  # type: ignore[arg-type]
        fmt = {"float": "{:.1e}".format}
        print(f"{name:22s} TV to tilt {np.array2string(tv(pi, q), formatter=fmt)}  "
              f"TV to reverse-KL optimum {np.array2string(tv(pi, reverse_kl_optimum()), formatter=fmt)}  "
              f"drift {np.round(drift_of(pi), 4)}")
    rng = np.random.default_rng(0)
    idx = [rng.choice(3, size=400, p=p) for p in P_REF]
    g = [G_REW[i][a] for i, a in enumerate(idx)]
    s = [S_SAFE[i][a] for i, a in enumerate(idx)]
    fc = forecast(g, s, BETA, n_resamples=1000, seed=0)
    print("forecast drift", np.round(fc.drift, 4), "cov(s,g)", np.round(fc.cov, 4), "cov_tilt", np.round(fc.cov_tilt, 4))
    print("per-prompt CI", [tuple(round(x, 4) for x in prompt_drift_ci(g[i], s[i], BETA, seed=i)) for i in range(3)])
    print("mean forecast drift", round(fc.mean_drift, 4), "measured mean",
          round(float(drift_of(train_bandit("reward")).mean()), 4))
