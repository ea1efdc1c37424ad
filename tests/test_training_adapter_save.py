"""`save_adapter`: DIR/model holds only the LoRA adapter over the model training started from; loading it (also
over a base that is itself an adapter) gives the same log-probs as the merged save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlvr_safety.models import model_fingerprint, resolve_model
from rlvr_safety.training import run_recipe


@pytest.fixture(autouse=True)
def _local_data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))


def _sft(model: str, out: Path, *extra: str) -> dict:
    return run_recipe("sft", None, [f"model={model}", "max_steps=2", "per_device_train_batch_size=2",
                                    "task.limit=4", "probe.enabled=false", "learning_rate=0.05", "seed=3", *extra],
                      out)


def _logits(spec: str) -> torch.Tensor:
    loaded = resolve_model(spec, device="cpu", dtype="fp32")
    ids = torch.tensor([[1, 5, 9, 200, 17, 4]])
    with torch.no_grad():
        return loaded.model(input_ids=ids).logits.float()


def test_adapter_save_loads_like_the_merged_save(tiny_model_dir: Path, tmp_path: Path) -> None:
    merged = _sft(str(tiny_model_dir), tmp_path / "merged")
    adapter = _sft(str(tiny_model_dir), tmp_path / "adapter", "save_adapter=true")
    folder = Path(adapter["model"])
    cfg = json.loads((folder / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_model_dir.resolve())
    assert not (folder / "model.safetensors").exists()
    assert sum(f.stat().st_size for f in folder.glob("*.safetensors")) < 0.5 * (
        Path(merged["model"]) / "model.safetensors").stat().st_size
    base, a, m = _logits(str(tiny_model_dir)), _logits(str(folder)), _logits(merged["model"])
    assert torch.allclose(a, m, atol=1e-4)
    assert not torch.allclose(a, base, atol=1e-3)  # training moved it: the comparison has teeth

    # an adapter over an adapter: trained from the adapter folder, loaded through both
    second = _sft(str(folder), tmp_path / "second", "save_adapter=true", "seed=4")
    assert json.loads((Path(second["model"]) / "adapter_config.json").read_text())[
        "base_model_name_or_path"] == str(folder.resolve())
    chained = _logits(second["model"])
    assert chained.shape == a.shape and not torch.allclose(chained, a, atol=1e-3)
    unmerged = resolve_model(second["model"], device="cpu", dtype="fp32", merge_adapter=False)
    assert hasattr(unmerged.model, "peft_config")
    with torch.no_grad():
        again = unmerged.model(input_ids=torch.tensor([[1, 5, 9, 200, 17, 4]])).logits.float()
    assert torch.allclose(again, chained, atol=1e-4)
    assert model_fingerprint(second["model"]) != model_fingerprint(str(folder))


def test_rlhf_from_an_adapter_folder_builds_its_reward_model_from_the_root(tiny_model_dir: Path,
                                                                          tmp_path: Path) -> None:
    from rlvr_safety.models import root_model

    adapter = _sft(str(tiny_model_dir), tmp_path / "adapter", "save_adapter=true")["model"]
    assert root_model(adapter) == str(tiny_model_dir.resolve())
    assert root_model(str(tiny_model_dir)) == str(tiny_model_dir)
    info = run_recipe("rlhf", None, [f"model={adapter}", "max_steps=1", "per_device_train_batch_size=2",
                                     "num_generations=2", "max_completion_length=4", "task.limit=4",
                                     "probe.enabled=false", "reward_model.limit=4", "reward_model.max_steps=1",
                                     "reward_model.max_length=400", "reward_model.per_device_train_batch_size=2",
                                     "reward_model.lora.enabled=true", "save_adapter=true"], tmp_path / "rlhf")
    assert info["steps"] == 1
    assert json.loads((Path(info["model"]) / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        str(Path(adapter).resolve())
