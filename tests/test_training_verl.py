"""backend: verl: the data export read back against verl's schema, our reward as verl's compute_score, the launch
command against golden files (KL settings mapped, ppo as gae with a critic), and the study's dry-run naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.rewards.verl_adapter import compute_score
from rlvr_safety.training import verl
from rlvr_safety.training.config import RLConfig, load_config

GOLDEN = Path(__file__).with_name("golden")
OUT = Path("/runs/verl-run")
DATA = {"train": OUT / "verl" / "train.parquet", "val": OUT / "verl" / "val.parquet"}
REWARD = Path("/site-packages/rlvr_safety/rewards/verl_adapter.py")
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def _cfg(*overrides: str) -> RLConfig:
    cfg = load_config("rlvr", None, ["backend=verl", "probe.enabled=false", f"model={MODEL}", *overrides])
    assert isinstance(cfg, RLConfig)
    return cfg


def _args(cfg: RLConfig) -> dict[str, str]:
    train, _ = verl.commands(cfg, OUT, DATA, MODEL, REWARD)
    return dict(part.split("=", 1) for part in train[3:])


def test_export_reads_back_in_verls_schema_and_our_reward_scores_it(tmp_path: Path, data_dir: Path) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = _cfg("task.limit=12", "verl.val_size=4", "task.system_prompt=Be brief.")
    paths = verl.export_data(cfg, tmp_path)
    table = pq.read_table(paths["train"])
    schema = table.schema
    assert schema.names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert schema.field("data_source").type == pa.string() and schema.field("ability").type == pa.string()
    message = schema.field("prompt").type.value_type  # prompt: a chat list of {role, content}
    assert pa.types.is_list(schema.field("prompt").type) and {f.name for f in message} == {"role", "content"}
    rm = schema.field("reward_model").type
    assert {f.name: f.type for f in rm} == {"style": pa.string(), "ground_truth": pa.string()}
    assert {f.name for f in schema.field("extra_info").type} == {"split", "index", "id"}
    assert table.num_rows == 12 and pq.read_table(paths["val"]).num_rows == 4

    rows = datasets.load_dataset("parquet", data_files={"train": str(paths["train"])}, split="train")
    first = rows[0]
    assert first["data_source"] == "rlvr_safety/arithmetic" and first["ability"] == "math"
    assert [m["role"] for m in first["prompt"]] == ["system", "user"]
    assert first["prompt"][0]["content"] == "Be brief." and first["extra_info"]["split"] == "train"
    for row in list(rows)[:6]:
        gold = row["reward_model"]["ground_truth"]
        args = (row["data_source"], row["reward_model"]["ground_truth"], row["extra_info"])
        assert compute_score(args[0], f"The answer is {gold}.", args[1], args[2]) == 1.0
        assert compute_score(args[0], f"The answer is {int(gold) + 1}.", args[1], args[2]) == 0.0


def test_data_source_names_the_reward_the_trl_backend_uses() -> None:
    from rlvr_safety.rewards.verl_adapter import reward_name_for

    assert verl.reward_name(_cfg("task.name=gsm8k-train")) == "gsm8k"
    assert verl.reward_name(_cfg("task.reward=format")) == "format"
    assert reward_name_for("rlvr_safety/ifeval-rl") == "ifeval-rl"
    with pytest.raises(ValueError, match="no reward for data_source"):
        reward_name_for("rlvr_safety/nope")


@pytest.mark.parametrize("name,overrides", [
    ("verl_grpo_kl_reward", ["algorithm=grpo", "beta=0.05", "kl_mode=reward", "verl.n_gpus_per_node=8"]),
    ("verl_dapo_kl_loss", ["algorithm=dapo", "beta=0.02", "kl_mode=loss", "lora.enabled=false"]),
    ("verl_ppo_gae", ["algorithm=ppo", "beta=0.05", "kl_mode=reward", "verl.nnodes=2", "verl.n_gpus_per_node=8"]),
])
def test_command_matches_golden(name: str, overrides: list[str]) -> None:
    cfg = _cfg("max_steps=100", "save_steps=25", "per_device_train_batch_size=8", "num_generations=4",
               "max_completion_length=512", *overrides)
    text = verl.script(verl.commands(cfg, OUT, DATA, MODEL, REWARD))
    golden = GOLDEN / f"{name}.sh"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


def test_kl_settings_map_onto_verls() -> None:
    reward = _args(_cfg("beta=0.05", "kl_mode=reward"))
    assert reward["algorithm.use_kl_in_reward"] == "true" and reward["algorithm.kl_penalty"] == "kl"
    assert reward["algorithm.kl_ctrl.type"] == "fixed" and reward["algorithm.kl_ctrl.kl_coef"] == "0.05"
    assert reward["actor_rollout_ref.actor.use_kl_loss"] == "false"
    assert reward["algorithm.norm_adv_by_std_in_grpo"] == "false"  # the tilt: no per-group std scaling
    assert reward["actor_rollout_ref.actor.loss_agg_mode"] == "seq-mean-token-sum-norm"  # dr_grpo's constant
    loss = _args(_cfg("beta=0.02", "kl_mode=loss"))
    assert loss["algorithm.use_kl_in_reward"] == "false" and loss["actor_rollout_ref.actor.use_kl_loss"] == "true"
    assert loss["actor_rollout_ref.actor.kl_loss_type"] == "low_var_kl"
    assert loss["actor_rollout_ref.actor.kl_loss_coef"] == "0.02"
    assert loss["algorithm.norm_adv_by_std_in_grpo"] == "true"
    off = _args(_cfg("beta=0"))
    assert off["algorithm.use_kl_in_reward"] == off["actor_rollout_ref.actor.use_kl_loss"] == "false"
    assert _args(_cfg("algorithm=rloo"))["algorithm.adv_estimator"] == "rloo"
    assert _args(_cfg("algorithm=reinforce_pp"))["algorithm.adv_estimator"] == "reinforce_plus_plus_baseline"
    assert _args(_cfg("algorithm=dapo"))["actor_rollout_ref.actor.clip_ratio_high"] == "0.28"
    with pytest.raises(UserError, match="no verl counterpart"):
        _args(_cfg("scale_rewards=batch"))


def test_ppo_runs_on_verl_only_as_gae_with_a_critic() -> None:
    with pytest.raises(UserError, match="set backend: verl"):
        load_config("rlvr", None, ["algorithm=ppo"])
    cfg = _cfg("algorithm=ppo")
    args = _args(cfg)
    assert args["algorithm.adv_estimator"] == "gae" and args["critic.model.path"] == MODEL
    assert args["actor_rollout_ref.rollout.n"] == "1"
    assert "adv_estimator=gae" in verl.describe(cfg) and "critic" in verl.describe(cfg)
    with pytest.raises(UserError, match="backend verl runs outside this process"):
        _cfg("certificate.enabled=true")


def test_run_without_verl_writes_the_data_and_script_then_says_so(tmp_path: Path, data_dir: Path,
                                                                  tiny_model_dir: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("verl") is not None:
        pytest.skip("verl is installed here: the run would launch")
    from rlvr_safety.training import run_recipe

    with pytest.raises(UserError, match=r"verl is not installed .*bash .*run.sh"):
        run_recipe("rlvr", None, ["backend=verl", f"model={tiny_model_dir}", "task.limit=8",
                                  "probe.enabled=false"], tmp_path)
    script = (tmp_path / "verl" / "run.sh").read_text()
    assert "verl.trainer.main_ppo" in script and "verl.model_merger" in script
    assert f"--target_dir {tmp_path / 'model'}" in script
    assert (tmp_path / "verl" / "train.parquet").exists()
    with pytest.raises(UserError, match="rlhf's learned reward runs on backend trl"):
        run_recipe("rlhf", None, ["backend=verl", f"model={tiny_model_dir}"], tmp_path / "h")


def test_study_dry_run_names_the_verl_engine_for_ppo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from rlvr_safety.study.runner import describe_plan
    from rlvr_safety.study.spec import load_spec

    spec_file = tmp_path / "study.yaml"
    spec_file.write_text(yaml.safe_dump({
        "base_models": [MODEL], "guard": {"mode": "off"}, "methods": ["rlvr:grpo", "rlvr:ppo"],
        "method_overrides": {"rlvr:ppo": {"backend": "verl"}}}))
    plan = describe_plan(load_spec(config=spec_file))
    (ppo_stage,) = [s for s in plan["stages"] if s.startswith("train:") and "ppo" in s]
    assert "adv_estimator=gae" in plan["backends"][ppo_stage]
    assert not [s for s in plan["backends"] if "grpo" in s]  # the TRL runs carry no engine note
    from test_cli_exit_codes import run_cli

    code, out, err = run_cli(monkeypatch, capsys, "study", "--config", str(spec_file), "--out", str(tmp_path / "o"),
                             "--dry-run")
    assert code == 0, err
    assert "[verl: adv_estimator=gae" in out
