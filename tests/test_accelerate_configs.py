"""configs/accelerate/*.yaml: each parses as an accelerate config, and the environment `accelerate launch` builds from
it (read through accelerate's own launch helpers, no GPU needed) is what the recipe's rank rules read: ZeRO-3 and
FSDP are seen as sharding engines (models load on the CPU, saves go through trainer.save_model), with the settings
that save path needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rlvr_safety.training import distributed

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


def launch_env(name: str) -> dict[str, str]:
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / f"{name}.yaml"), "-m", "rlvr_safety",
                                               "train"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command does
        return prepare_deepspeed_cmd_env(args)[1]
    return prepare_multi_gpu_env(args)


@pytest.mark.parametrize("name,engine", [("ddp", None), ("zero2", None), ("zero3", "deepspeed3"), ("fsdp", "fsdp")])
def test_launch_environment_is_read_as_intended(name: str, engine: str | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    env = launch_env(name)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    for key in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO_STAGE", "ACCELERATE_USE_FSDP"):
        monkeypatch.delenv(key, raising=False)
        if key in env:
            monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "5")
    assert distributed.sharding_engine() == engine
    assert distributed.load_device("cuda") == ("cpu" if engine else "cuda:5")
    if name == "zero3":  # the gathered 16-bit save our DIR/model needs
        assert env["ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL"] == "true"
    if name == "fsdp":
        assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"


def test_every_config_documents_its_model_sizes() -> None:
    for path in sorted(CONFIGS.glob("*.yaml")):
        head = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
        assert re.search(r"\d+(\.\d+)?B\b", head) and "accelerate launch --config_file" in head, path.name
