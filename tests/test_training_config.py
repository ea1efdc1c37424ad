"""Config validation: bad configs fail fast with one line, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlvr_safety.errors import UserError
from rlvr_safety.training.config import RECIPES, RLVRConfig, load_config
from rlvr_safety.training.kl import per_token_estimators, sequence_kl

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_validate_for_every_recipe() -> None:
    for recipe in RECIPES:
        cfg = load_config(recipe, None, [])
        assert cfg.model == "default"
    assert RLVRConfig().beta > 0  # explicit KL control is on by default


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_load(path: Path) -> None:
    recipe = path.stem.split("_")[0]
    assert recipe in RECIPES
    load_config(recipe, path, [])


def test_unknown_key_is_rejected_with_its_name(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("bata: 0.1\n")
    with pytest.raises(UserError, match="unknown key 'bata'"):
        load_config("rlvr", f, [])
    with pytest.raises(UserError, match="unknown key 'lora.rank'"):
        load_config("sft", None, ["lora.rank=4"])


def test_overrides_are_typed_and_nested() -> None:
    cfg = load_config("rlvr", None, ["beta=0", "algorithm=dr_grpo", "lora.enabled=false", "probe.benchmarks=[xstest]"])
    assert cfg.beta == 0.0 and cfg.algorithm == "dr_grpo" and not cfg.lora.enabled
    assert cfg.probe.benchmarks == ["xstest"]


@pytest.mark.parametrize("override,needle", [
    ("beta=-1", "beta"), ("algorithm=sac", "algorithm"), ("num_generations=3", "multiple of num_generations"),
    ("max_steps=0", "max_steps"), ("nonsense", "key=value")])
def test_bad_values_give_one_line(override: str, needle: str) -> None:
    with pytest.raises(UserError, match=needle) as err:
        load_config("rlvr", None, [override])
    assert "\n" not in str(err.value)


def test_ppo_explains_why_it_is_unavailable() -> None:
    with pytest.raises(UserError, match="no PPO trainer"):
        load_config("rlvr", None, ["algorithm=ppo"])


def test_bad_yaml_and_wrong_recipe(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("beta: [0.1\n")
    with pytest.raises(UserError, match="invalid YAML"):
        load_config("rlvr", f, [])
    f.write_text("recipe: sft\n")
    with pytest.raises(UserError, match="not 'rlvr'"):
        load_config("rlvr", f, [])
    with pytest.raises(UserError, match="not found"):
        load_config("rlvr", tmp_path / "missing.yaml", [])
    with pytest.raises(UserError, match="unknown recipe"):
        load_config("dpo", None, [])


def test_kl_estimators_match_hand_computation() -> None:
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -0.3, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-0.2, -0.1, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    tok = per_token_estimators(logp, ref)
    assert torch.allclose(tok["k3"], torch.exp(ref - logp) - 1 - (ref - logp))
    got = sequence_kl(logp, ref, mask)
    # sequence 1: l = [0.5, -1, 0]; sequence 2: l = [0, -0.2] (third token masked)
    k1 = ((0.5 - 1.0) + (-0.2)) / 2
    k2 = ((0.125 + 0.5) + 0.02) / 2
    k3_terms = [pow(2.718281828459045, -x) - 1 + x for x in (0.5, -1.0, 0.0, 0.0, -0.2)]
    k3 = (sum(k3_terms[:3]) + sum(k3_terms[3:])) / 2
    assert got["k1"] == pytest.approx(k1, abs=1e-6)
    assert got["k2"] == pytest.approx(k2, abs=1e-6)
    assert got["k3"] == pytest.approx(k3, abs=1e-6)
    assert got["k3"] >= 0


@pytest.mark.parametrize(("override", "needle"), [
    ("lora.alpha=8", "renamed lora_alpha"), ("lora.dropout=0.1", "renamed lora_dropout"),
    ("max_prompt_length=128", "never used")])
def test_retired_keys_are_rejected_with_a_hint(override: str, needle: str) -> None:
    with pytest.raises(UserError, match=needle) as err:
        load_config("rlvr", None, [override])
    assert "\n" not in str(err.value)


def test_lora_takes_peft_names() -> None:
    from rlvr_safety.training.common import peft_config

    cfg = load_config("sft", None, ["lora.lora_alpha=8", "lora.lora_dropout=0.1"])
    peft = peft_config(cfg.lora)
    assert (peft.lora_alpha, peft.lora_dropout) == (8, 0.1)


def test_one_judge_per_recipe_flows_to_its_sections() -> None:
    cfg = load_config("rlvr", None, ["judge=learned"])
    assert cfg.probe_judge == "learned" and cfg.certificate_judge == "learned"
    cfg = load_config("rlvr", None, ["judge=learned", "probe.judge=keyword"])
    assert cfg.probe_judge == "keyword" and cfg.certificate_judge == "learned"
    with pytest.raises(UserError, match="unknown judge 'kewyord'"):
        load_config("guard", None, ["judge=kewyord"])
    with pytest.raises(UserError, match="probe.judge"):
        load_config("sft", None, ["probe.judge=nope"])


def test_torch_and_numpy_kl_estimators_agree() -> None:
    """generation/logprobs.py (torch, training) and theory.estimators (numpy, the certificate) define k1 the same."""
    import numpy as np

    from rlvr_safety.theory import sequence_kl as theory_sequence_kl

    rng = np.random.default_rng(0)
    logp = -rng.uniform(0.05, 3.0, size=(5, 7))
    ref = -rng.uniform(0.05, 3.0, size=(5, 7))
    got = sequence_kl(torch.tensor(logp), torch.tensor(ref), torch.ones(5, 7))
    want = theory_sequence_kl(list(logp), list(ref))
    for k in ("k1", "k2", "k3"):
        assert abs(got[k] - float(np.mean(getattr(want, k)))) < 1e-4 * max(1.0, abs(got[k]))
