"""Forecast and certificate with the default model (SmolLM2-135M-Instruct): short responses, a handful of prompts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlvr_safety.evaluation.certify import run_certify
from rlvr_safety.evaluation.forecast import run_forecast

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _local_data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))


def test_forecast_arithmetic_default_model(tmp_path: Path) -> None:
    res = run_forecast("default", "arithmetic", beta=0.1, out=tmp_path, k=4, limit=3, max_new_tokens=32,
                       n_resamples=200, progress=False)
    s = res["summary"]
    assert s["n_prompts"] == 3 and all(p["n_samples"] == 4 for p in res["per_prompt"])
    assert 0.0 <= s["mean_success_rate"] <= 1.0
    # benign verifiable data scored by a compliance judge: zero drift by construction
    assert s["mean_drift"] == 0.0 and s["drift_ci"] == [0.0, 0.0] and s["dual_use_fraction"] == 0.0
    assert (tmp_path / "forecast.json").exists() and (tmp_path / "store.sqlite").exists()


@pytest.fixture(scope="module")
def perturbed_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model with small weight noise: close to it, but not equal."""
    from rlvr_safety.models import resolve_model

    loaded = resolve_model("default")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * (0.02 * float(p.std())))
    out = tmp_path_factory.mktemp("default-perturbed")
    loaded.model.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    return out


def test_certify_default_against_itself_and_a_perturbed_copy(tmp_path: Path, perturbed_default: Path) -> None:
    kw = {"suite": "harmbench", "limit": 3, "k": 2, "max_new_tokens": 32, "n_resamples": 200, "progress": False}
    same = run_certify("default", "default", tmp_path / "same", measure=True, **kw)
    cert = same["overall"]["certificate"]
    assert cert["kl_k1"] == 0.0 and same["overall"]["floor"] == pytest.approx(cert["s_ref"])
    assert same["violations"] == [] and same["overall"]["measured"]["drift"] == 0.0

    diff = run_certify(str(perturbed_default), "default", tmp_path / "diff", **kw)
    cert = diff["overall"]["certificate"]
    assert cert["kl_k1_ci"][1] > 0 and cert["kl_k3"] > 0
    assert diff["overall"]["floor"] <= cert["s_ref"]
