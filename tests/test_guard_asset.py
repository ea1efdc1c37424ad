"""The shipped guard adapter: small, over the default model, and trained with exactly the demo preset's guard.config
(its provenance says so); its provenance records data hashes and held-out refusal."""

from __future__ import annotations

import hashlib
import json

from rlvr_safety.assets import guard_adapter
from rlvr_safety.study.spec import load_spec


def test_shipped_adapter_matches_the_demo_preset() -> None:
    folder = guard_adapter("default")
    assert folder is not None and guard_adapter("Qwen/Qwen2.5-0.5B-Instruct") is None
    cfg = json.loads((folder / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "default"
    weights = folder / "adapter_model.safetensors"
    assert weights.stat().st_size < 5.5e6
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["adapter"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    demo = load_spec(preset="demo")
    trained = prov["config"]
    for key, value in demo.guard_config("default").model_dump(mode="json").items():
        if key not in ("data_dir", "model", "save_adapter"):
            assert trained[key] == value, key
    assert {h["dtype"] for h in prov["heldout_refusal"]} == {"fp32", "bf16"}
    assert all(h["n"] >= 32 and h["rate"] >= 0.9 for h in prov["heldout_refusal"])
    assert all("sha256" in d or d.get("generated") for d in prov["data"].values())
    assert prov["sampled_refusal_safety5"]["pooled"]["n"] == 60
