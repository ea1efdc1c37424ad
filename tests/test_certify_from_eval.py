"""A certificate built from an eval's own samples (certify_from_eval) equals the one `certify` builds by drawing
the same samples itself, without generating anything; missing samples are a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from rlvr_safety.data import load_benchmark
from rlvr_safety.evaluation import certify as certify_mod
from rlvr_safety.evaluation.certify import certify_from_eval, run_certify
from rlvr_safety.evaluation.configs import EvalConfig
from rlvr_safety.evaluation.runner import run_eval
from rlvr_safety.generation.base import GenerationParams
from rlvr_safety.models import resolve_model

PARAMS = GenerationParams(max_new_tokens=6, temperature=1.0, top_p=1.0, n=1, seed=0, batch_size=16)


@pytest.fixture(autouse=True)
def _local_data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))


@pytest.fixture(scope="module")
def perturbed(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    loaded = resolve_model(str(tiny_model_dir))
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    out = tmp_path_factory.mktemp("tiny-perturbed-eval")
    loaded.model.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    return out


def _eval(model: Path, out: Path, data_dir: Path) -> dict[str, Any]:
    cfg = EvalConfig(model=str(model), benchmarks=["harmbench", "xstest"], data_dir=data_dir,
                     limits={"harmbench": 3, "xstest": 4}, max_new_tokens=PARAMS.max_new_tokens,
                     temperature=PARAMS.temperature, seed=PARAMS.seed, batch_size=PARAMS.batch_size,
                     max_padding=PARAMS.max_padding, record_tokens=True)
    assert cfg.safety_params() == PARAMS  # the certificate is given the params the eval sampled with
    return run_eval(cfg, out, progress=False)


def test_certificate_from_eval_samples_equals_certify_on_the_same_samples(
        tiny_model_dir: Path, perturbed: Path, tmp_path: Path, data_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ref_eval, pol_eval = _eval(tiny_model_dir, tmp_path / "ref", data_dir), _eval(perturbed, tmp_path / "pol",
                                                                                   data_dir)
    harmful = {name: [r.id for r in load_benchmark(name, data_dir=data_dir, limit=n) if r.label == "harmful"]
               for name, n in (("harmbench", 3), ("xstest", 4))}
    assert [len(v) for v in harmful.values()] == [3, 2]

    def no_generation(*a: Any, **k: Any) -> Any:
        raise AssertionError("a certificate from eval samples must not generate")

    drawing = certify_mod._Lazy.generator
    monkeypatch.setattr(certify_mod._Lazy, "generator", no_generation)
    res = certify_from_eval(str(perturbed), str(tiny_model_dir), tmp_path / "pol", tmp_path / "ref", harmful,
                            PARAMS, tmp_path / "cert", n_resamples=200)
    assert (tmp_path / "cert" / "certificate.json").exists()
    assert not any("re-tokenised" in n for n in res["notes"])  # the eval recorded the sampled ids
    # ...and, sampling in float32 at temperature 1, their log-probs: the policy was not scored again (the
    # comparison with `certify` below, which scores by a forward pass, pins the two equal)
    assert any("recorded while its eval sampled" in n for n in res["notes"])
    overall = res["overall"]
    assert overall["n_policy_samples"] == 5 and overall["n_prompts"] == 5
    cert = overall["certificate"]
    assert cert["kl_k1"] > 0
    # S_ref and the measured policy safety are the evals' own verdicts on the harmful items
    ref_h = ref_eval["benchmarks"]["harmbench"]["harmful_rate"]
    assert res["per_benchmark"]["harmbench"]["certificate"]["s_ref"] == pytest.approx(1 - ref_h["rate"])
    pol_h = pol_eval["benchmarks"]["harmbench"]["harmful_rate"]
    assert res["per_benchmark"]["harmbench"]["measured"]["s_policy"] == pytest.approx(1 - pol_h["rate"])

    # harmbench alone: the eval's chunks are certify's chunks, so certify draws exactly these samples
    monkeypatch.setattr(certify_mod._Lazy, "generator", drawing)  # not undo(): that also drops the data folder
    direct = run_certify(str(perturbed), str(tiny_model_dir), tmp_path / "direct", suite="harmbench", limit=3,
                         k=1, seed=0, max_new_tokens=6, batch_size=16, n_resamples=200, measure=True,
                         progress=False)
    via_eval = res["per_benchmark"]["harmbench"]
    for key in ("kl_k1", "kl_k3", "s_ref", "kl_upper"):
        assert via_eval["certificate"][key] == pytest.approx(direct["overall"]["certificate"][key], abs=1e-6), key
    assert via_eval["floor"] == pytest.approx(direct["overall"]["floor"], abs=1e-6)


def test_certificate_from_eval_needs_the_samples(tiny_model_dir: Path, tmp_path: Path, data_dir: Path) -> None:
    _eval(tiny_model_dir, tmp_path / "ref", data_dir)
    other = GenerationParams(max_new_tokens=7, temperature=1.0, top_p=1.0, n=1, seed=0)
    with pytest.raises(Exception, match="run its eval stage first"):
        certify_from_eval(str(tiny_model_dir), str(tiny_model_dir), tmp_path / "ref", tmp_path / "ref",
                          {"harmbench": ["harmbench/0"]}, other, tmp_path / "cert")
