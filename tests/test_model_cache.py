"""The per-process cache of merged CPU loads (models._load_causal_lm): every load is an independent deep copy, and a
model folder whose files change is loaded again."""

from __future__ import annotations

from pathlib import Path

import torch

from rlvr_safety import models


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_cached_load_is_an_independent_copy(tiny_model_dir: Path) -> None:
    first = models.resolve_model(str(tiny_model_dir), device="cpu", dtype="fp32").model
    before = _weights(first)
    with torch.no_grad():
        for p in first.parameters():
            p.add_(1.0)  # a caller (training) changes its model in place...
    second = models.resolve_model(str(tiny_model_dir), device="cpu", dtype="fp32").model
    for name, value in second.state_dict().items():  # ...which the next load does not see
        assert torch.equal(value, before[name]), name
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(first.parameters(), second.parameters(), strict=True))


def test_a_changed_folder_is_loaded_again(tiny_model_dir: Path, tmp_path: Path) -> None:
    loaded = models.resolve_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    folder = tmp_path / "copy"
    loaded.model.save_pretrained(folder, safe_serialization=True)
    loaded.tokenizer.save_pretrained(folder)
    original = _weights(models.resolve_model(str(folder), device="cpu", dtype="fp32").model)
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.mul_(0.5)
    loaded.model.save_pretrained(folder, safe_serialization=True)  # new weights, new file mtime and size or both
    again = models.resolve_model(str(folder), device="cpu", dtype="fp32").model
    assert any(not torch.equal(v, original[k]) for k, v in again.state_dict().items())
    for k, v in again.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k]), k
