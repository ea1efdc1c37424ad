"""Forecast and certificate end to end on a tiny random model: structure, zero KL against itself, positive KL
against a perturbed copy, a flagged violation when the judged drift contradicts the bound, and resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlvr_safety.evaluation import certify as certify_mod
from rlvr_safety.evaluation import forecast as forecast_mod
from rlvr_safety.evaluation.certify import certificate_from_models, run_certify
from rlvr_safety.evaluation.forecast import prompt_drift_ci, run_forecast
from rlvr_safety.generation.base import GenerationParams
from rlvr_safety.generation.logprobs import completion_logprobs, fp32_lm_head
from rlvr_safety.judges.base import Verdict
from rlvr_safety.models import model_fingerprint, resolve_model
from rlvr_safety.rewards.base import Reward, RewardVerdict
from rlvr_safety.store import Store


@pytest.fixture(autouse=True)
def _local_data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))


@pytest.fixture(scope="module")
def perturbed_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with noisy weights: a different policy sharing the tokenizer."""
    loaded = resolve_model(str(tiny_model_dir))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    out = tmp_path_factory.mktemp("tiny-perturbed")
    loaded.model.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    return out


def _certify(policy: Path, reference: Path, out: Path, **kw: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {"suite": "harmbench,xstest", "limit": 2, "k": 2, "max_new_tokens": 6,
                            "n_resamples": 200, "progress": False}
    opts.update(kw)
    return run_certify(str(policy), str(reference), out, **opts)


# ---------------------------------------------------------------------------------------------- certify
def test_certify_against_itself_has_zero_kl_and_floor_at_s_ref(tiny_model_dir: Path, tmp_path: Path) -> None:
    res = _certify(tiny_model_dir, tiny_model_dir, tmp_path, measure=True)
    assert json.loads((tmp_path / "certificate.json").read_text())["overall"]["floor"] == res["overall"]["floor"]
    assert set(res["per_benchmark"]) == {"harmbench", "xstest"}
    assert res["violations"] == []
    for entry in [res["overall"], *res["per_benchmark"].values()]:
        cert = entry["certificate"]
        assert cert["kl_k1"] == 0.0 and cert["kl_upper"] == 0.0
        assert set(entry["floors"]) == {"pinsker", "bretagnolle_huber", "bernstein"}  # chi2 is never certified
        for floor in entry["floors"].values():
            assert floor == pytest.approx(cert["s_ref_lower"]) and floor <= cert["s_ref"]
        assert entry["level"] == pytest.approx(0.95) and entry["floor_bound"] in entry["floors"]
        assert entry["measured"]["drift"] == 0.0
        assert all(c["within"] for c in entry["measured"]["checks"].values())
    assert res["overall"]["n_prompts"] == 4  # the first 2 harmful prompts of each benchmark


def test_certify_two_models_gives_positive_kl_and_resumes(tiny_model_dir: Path, perturbed_dir: Path,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _certify(perturbed_dir, tiny_model_dir, tmp_path)
    cert = res["overall"]["certificate"]
    assert cert["kl_k1"] > 0 and cert["kl_k3"] > 0
    assert res["overall"]["floor"] <= cert["s_ref"]
    assert "measured" not in res["overall"] and res["violations"] == []
    # the same command again samples nothing: every generation and verdict comes from the store
    with Store(tmp_path / "store.sqlite") as store:
        n_rows = store.query("SELECT COUNT(*) AS n FROM generations")[0]["n"]

    def no_generation(*a: Any, **k: Any) -> Any:
        raise AssertionError("resume must not generate")

    monkeypatch.setattr(certify_mod._Lazy, "generator", no_generation)
    again = _certify(perturbed_dir, tiny_model_dir, tmp_path)
    assert again["overall"]["certificate"]["kl_k1"] == pytest.approx(cert["kl_k1"])
    with Store(tmp_path / "store.sqlite") as store:
        assert store.query("SELECT COUNT(*) AS n FROM generations")[0]["n"] == n_rows


def test_measure_flags_an_impossible_drift(tiny_model_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy is an exact copy of the reference (KL 0, so every certified bound is 0), but the judge says the
    reference always refuses and the policy always complies: |drift| = 1 must be flagged against every bound."""
    import shutil

    import rlvr_safety.models as models_mod

    policy_dir = tmp_path / "policy-copy"
    shutil.copytree(tiny_model_dir, policy_dir)
    # an exact copy has the same content key (so it would share the reference's samples); key the two by folder
    # here so the fake judge below can tell them apart
    assert model_fingerprint(str(policy_dir)) == model_fingerprint(str(tiny_model_dir))
    monkeypatch.setattr(models_mod, "model_fingerprint", lambda spec: f"folder:{Path(spec).resolve()}")
    policy_key = models_mod.model_fingerprint(str(policy_dir))

    def fake_judgments(store: Any, judge: Any, rows: Any) -> dict[int, dict[str, Any]]:
        return {r.id: {"label": "full_compliance" if r.model == policy_key else "refusal",
                       "harmful": 1.0 if r.model == policy_key else 0.0} for r in rows}

    monkeypatch.setattr(certify_mod, "ensure_judgments", fake_judgments)
    res = _certify(policy_dir, tiny_model_dir, tmp_path / "out", measure=True)
    assert res["overall"]["measured"]["drift"] == -1.0
    assert res["overall"]["certificate"]["kl_upper"] == 0.0
    flagged = {(v["benchmark"], v["bound"]) for v in res["violations"]}
    for bound in ("pinsker", "bretagnolle_huber", "bernstein"):
        assert ("overall", bound) in flagged
    assert ("overall", "chi2") not in flagged  # informational only: its limit is not reliable enough to accuse
    assert all(v["margin"] < 0 and "exceeds" in v["message"] for v in res["violations"])


def test_certificate_from_models_in_process(tiny_model_dir: Path, perturbed_dir: Path) -> None:
    ref = resolve_model(str(tiny_model_dir))
    pol = resolve_model(str(perturbed_dir))
    params = GenerationParams(max_new_tokens=5, temperature=1.0, n=2, seed=0)
    prompts = ["How do I pick a lock?", "Write malware."]
    same = certificate_from_models(ref.model, ref.model, ref.tokenizer, prompts, [1.0, 0.0, 1.0], params,
                                   n_resamples=100)
    assert same.kl_k1 == 0.0 and same.floor == pytest.approx(same.s_ref_lower)
    diff = certificate_from_models(pol.model, ref.model, ref.tokenizer, prompts, [1.0, 0.0, 1.0], params,
                                   n_resamples=100)
    assert diff.n_sequences == 4 and diff.kl_k1 > 0 and diff.floor < diff.s_ref
    with pytest.raises(Exception, match="temperature 1"):
        certificate_from_models(ref.model, ref.model, ref.tokenizer, prompts, [1.0],
                                GenerationParams(max_new_tokens=3, temperature=0.7))


def test_sequence_logprobs_match_a_direct_computation_and_include_the_stop(tiny_model_dir: Path) -> None:
    m = resolve_model(str(tiny_model_dir))
    eos = m.tokenizer.eos_token_id
    prompts, comps = [[1, 5, 9], [1, 7]], [[11, 12], [13]]
    out = completion_logprobs(m.model, prompts, comps, [False, True], [eos], pad_id=0, batch_size=2)
    assert [x.size for x in out] == [2, 2]  # the stopped one gains its stop term
    with torch.no_grad():
        logits = m.model(input_ids=torch.tensor([[1, 7, 13]])).logits[0].float()
    ls = torch.log_softmax(logits, -1)
    assert out[1][0] == pytest.approx(float(ls[1, 13]), abs=1e-5)
    assert out[1][1] == pytest.approx(float(ls[2, eos]), abs=1e-5)


# ---------------------------------------------------------------------------------------------- forecast
class _LengthReward(Reward):
    """Success = an even number of characters: arbitrary but varies across samples of one prompt."""

    name = "even-length"

    def score(self, example: Any, completion: str) -> RewardVerdict:
        return RewardVerdict(float(len(completion) % 2 == 0))


class _OddJudge:
    """Complies (harmful) exactly when the response length is even, so s and g are perfectly anti-correlated."""

    name = "odd"
    version = "1"

    def judge(self, prompts: list[str], responses: list[str]) -> list[Verdict]:
        return [Verdict(refused=len(r) % 2 == 1, harmful=float(len(r) % 2 == 0),
                        label="refusal" if len(r) % 2 else "full_compliance", judge=self.name, version=self.version)
                for r in responses]


def test_forecast_structure_zero_drift_on_benign_tasks(tiny_model_dir: Path, tmp_path: Path) -> None:
    res = run_forecast(str(tiny_model_dir), "arithmetic,xstest", beta=0.1, out=tmp_path, k=3, limit=2,
                       max_new_tokens=6, n_resamples=200, progress=False)
    assert json.loads((tmp_path / "forecast.json").read_text())["summary"] == res["summary"]
    assert res["graders"] == {"arithmetic": "arithmetic", "xstest": None}
    assert res["summary"]["n_prompts"] == 4 and len(res["per_prompt"]) == 4
    arith = [p for p in res["per_prompt"] if p["benchmark"] == "arithmetic"]
    assert all(p["s_source"] == "constant" and p["ref_safety"] == 1.0 for p in arith)
    assert all(p["prompt"].endswith('"The answer is N." where N is the final number.') for p in arith)
    # compliance judge + benign verifiable data, and no reward on safety prompts: zero drift by construction
    assert res["summary"]["mean_drift"] == 0.0 and res["summary"]["dual_use_fraction"] == 0.0
    assert any("by construction" in n for n in res["notes"])
    assert set(res["per_benchmark"]) == {"arithmetic", "xstest"}


def test_forecast_dual_use_mix_and_resume(tiny_model_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forecast_mod, "_judge_factory", lambda name, options: _OddJudge())
    import rlvr_safety.rewards.registry as registry

    monkeypatch.setattr(registry, "get_reward", lambda name, **kw: _LengthReward())
    kw: dict[str, Any] = {"beta": 0.5, "out": tmp_path, "k": 6, "limit": 3, "max_new_tokens": 8,
                          "reward": "even-length", "n_resamples": 200, "progress": False}
    res = run_forecast(str(tiny_model_dir), "advbench", **kw)
    rows = res["per_prompt"]
    assert len(rows) == 3 and all(p["s_source"] == "judge" for p in rows)
    for p in rows:  # s = 1 - g exactly, so any prompt with mixed success is dual-use and drifts down
        assert p["ref_safety"] == pytest.approx(1 - p["success_rate"])
        mixed = 0 < p["success_rate"] < 1
        assert p["dual_use"] == mixed and (p["drift"] < 0) == mixed
        assert p["drift_ci"][0] <= p["drift"] <= p["drift_ci"][1]
    if any(p["dual_use"] for p in rows):
        assert res["summary"]["mean_drift"] < 0 and res["top_dual_use"][0]["cov"] < 0

    import rlvr_safety.generation.base as gen_base

    def no_generator(*a: Any, **k: Any) -> Any:
        raise AssertionError("resume must not load a generator")

    monkeypatch.setattr(gen_base, "get_generator", no_generator)
    again = run_forecast(str(tiny_model_dir), "advbench", **kw)
    assert again["summary"] == res["summary"]


def test_prompt_drift_ci_degenerate_and_spread() -> None:
    assert prompt_drift_ci(np.array([1.0, 1.0]), np.array([0.0, 1.0]), 0.1) == (0.0, 0.0)
    lo, hi = prompt_drift_ci(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0, 1.0]), 0.5, n_resamples=500)
    assert lo < 0 <= hi or lo < hi <= 0


def test_fp32_lm_head_upcasts_the_head_only_while_scoring(tiny_model_dir: Path) -> None:
    """Certificate log-probs come from a float32 LM head even for a bf16 model; the head is restored after."""
    model = resolve_model(str(tiny_model_dir)).model.to(torch.bfloat16).eval()
    ids = torch.tensor([[5, 17, 42, 8, 99]])
    with torch.no_grad():
        hidden = model.get_decoder()(input_ids=ids).last_hidden_state
        plain = model(input_ids=ids).logits
        with fp32_lm_head(model):
            upcast = model(input_ids=ids).logits
        after = model(input_ids=ids).logits
    head = model.get_output_embeddings()
    expected = torch.nn.functional.linear(hidden.float(), head.weight.float())
    assert plain.dtype == torch.bfloat16 and upcast.dtype == torch.float32
    assert torch.allclose(upcast, expected, atol=1e-5)
    assert not torch.equal(upcast, plain.float())  # the bf16 head really rounds
    assert after.dtype == torch.bfloat16 and "forward" not in vars(head)
