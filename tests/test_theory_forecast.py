"""Forecast: per-prompt tilt of the empirical reference, dual-use flags, prompt bootstrap, JSON output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlvr_safety.theory import drift, forecast


def _toy() -> tuple[list[np.ndarray], list[np.ndarray]]:
    g = [
        np.array([0.0, 0.0, 0.0, 0.0]),  # harmful prompt: no verifiable reward -> untouched
        np.array([1.0, 0.0, 1.0, 0.0]),  # dual-use: successes are less safe
        np.array([1.0, 1.0, 0.0, 0.0, 1.0]),  # successes safer, K differs
        np.array([1.0, 0.0, 1.0, 0.0]),  # s constant -> no drift
    ]
    s = [
        np.array([0.0, 1.0, 0.0, 1.0]),
        np.array([0.2, 1.0, 0.2, 1.0]),
        np.array([1.0, 0.9, 0.1, 0.3, 1.0]),
        np.array([0.7, 0.7, 0.7, 0.7]),
    ]
    return g, s


def test_per_prompt_values_match_exact_tilt() -> None:
    g, s = _toy()
    f = forecast(g, s, beta=0.5, prompt_ids=["a", "b", "c", "d"], n_resamples=200)
    for i, (gi, si) in enumerate(zip(g, s, strict=True)):
        uniform = np.full(gi.size, 1 / gi.size)
        assert f.drift[i] == pytest.approx(drift(uniform, gi, si, 0.5), abs=1e-12)
        assert f.ref_safety[i] == pytest.approx(si.mean())
        assert f.cov[i] == pytest.approx(float(np.mean((si - si.mean()) * (gi - gi.mean()))))
        w = np.exp(gi / 0.5)
        assert f.cov_tilt[i] == pytest.approx(float(np.mean((si - si.mean()) * (w - w.mean())) / w.mean()), abs=1e-12)
        assert f.cov_tilt[i] == pytest.approx(f.drift[i], abs=1e-12)  # Cov(s, e^{g/beta}) / Z is the drift
        assert f.optimum_bound[i] >= abs(f.drift[i]) - 1e-12
    assert f.drift[0] == 0 and f.drift[3] == pytest.approx(0, abs=1e-12)
    # prompt b is the hand-computed case: drift = -0.304638
    assert f.drift[1] == pytest.approx(-0.304638, abs=1e-6)
    assert f.drift[2] > 0
    assert list(f.dual_use) == [False, True, True, False]
    assert f.dual_use_fraction == 0.5
    assert [t["prompt_id"] for t in f.top_dual_use] == ["b", "c"]  # |Cov(s, e^{g/beta})/Z| 0.305 > 0.243
    assert f.mean_drift == pytest.approx(float(f.drift.mean()))
    assert f.drift_ci[0] <= f.mean_drift <= f.drift_ci[1]
    assert f.mean_optimum_bound >= abs(f.mean_drift)
    assert list(f.n_samples) == [4, 4, 5, 4]
    d = f.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["per_prompt"]["dual_use"] == [False, True, True, False] and d["n_prompts"] == 4


def test_dual_use_from_the_tilt_not_from_cov_s_g() -> None:
    """Non-binary reward: Cov(s, g) = 0, yet the optimum drifts (+0.258), so the prompt must be flagged dual-use;
    the reverse case (s varies, g constant) is not flagged and does not drift."""
    g = [np.array([0.0, 0.5, 1.0]), np.array([0.5, 0.5, 0.5])]
    s = [np.array([1.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.0])]
    f = forecast(g, s, beta=0.2, n_resamples=50)
    assert f.cov[0] == pytest.approx(0.0, abs=1e-15)
    assert f.drift[0] == pytest.approx(drift(np.full(3, 1 / 3), g[0], s[0], 0.2), abs=1e-12)
    assert f.drift[0] == pytest.approx(0.257945, abs=1e-6)
    assert list(f.dual_use) == [True, False] and f.drift[1] == 0.0
    assert f.top_dual_use[0]["cov_tilt"] == pytest.approx(0.257945, abs=1e-6)
    assert f.top_dual_use[0]["cov"] == pytest.approx(0.0, abs=1e-15)


def test_top_k_limits_and_orders() -> None:
    g, s = _toy()
    f = forecast(g, s, beta=1.0, top_k=1, n_resamples=50)
    assert len(f.top_dual_use) == 1 and f.top_dual_use[0]["index"] == 1
    assert f.top_dual_use[0]["prompt_id"] is None


def test_large_k_recovers_theory() -> None:
    rng = np.random.default_rng(0)
    p = np.array([0.25, 0.25, 0.5])
    g_path = np.array([1.0, 1.0, 0.0])
    s_path = np.array([0.2, 0.6, 1.0])
    idx = rng.choice(3, size=(5, 20000), p=p)
    f = forecast(g_path[idx], s_path[idx], beta=0.5, n_resamples=200)
    truth = drift(p, g_path, s_path, 0.5)
    assert f.mean_drift == pytest.approx(truth, abs=0.01)
    assert f.drift_ci[0] - 0.01 <= truth <= f.drift_ci[1] + 0.01
    assert f.dual_use.all()


def test_seeded_and_notes_small_k() -> None:
    g, s = _toy()
    a = forecast(g, s, beta=0.5, n_resamples=100, seed=3)
    b = forecast(g, s, beta=0.5, n_resamples=100, seed=3)
    assert a.drift_ci == b.drift_ci
    assert any("< 8 samples" in n for n in a.notes)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"g": [[1.0, 0.0]], "s": [[1.0]]}, "samples"),
        ({"g": [[1.0]], "s": [[1.0], [0.0]]}, "prompts"),
        ({"g": [[2.0]], "s": [[1.0]]}, r"\[0, 1\]"),
        ({"g": [[1.0]], "s": [[1.0]], "beta": 0.0}, "beta"),
        ({"g": [], "s": []}, "at least one"),
        ({"g": np.zeros(3), "s": np.zeros(3)}, "2-D"),
        ({"g": [[1.0]], "s": [[1.0]], "prompt_ids": ["a", "b"]}, "prompt_ids"),
    ],
)
def test_invalid_inputs(kwargs: dict, match: str) -> None:
    kwargs.setdefault("beta", 1.0)
    with pytest.raises(ValueError, match=match):
        forecast(**kwargs)
