"""The HF classifier judges by short name, and which prompt format a classifier id speaks (no model code here:
the registry and judges/hf_classifiers.py both read it)."""

from __future__ import annotations

__all__ = ["HF_JUDGE_IDS", "hf_family"]

# Short name -> HF model id of the classifier families in judges.hf_classifiers.
HF_JUDGE_IDS: dict[str, str] = {
    "llama-guard-3-1b": "meta-llama/Llama-Guard-3-1B",
    "llama-guard-3-8b": "meta-llama/Llama-Guard-3-8B",
    "wildguard": "allenai/wildguard",
    "harmbench-cls": "cais/HarmBench-Llama-2-13b-cls",
    "harmbench-cls-mistral": "cais/HarmBench-Mistral-7b-val-cls",
}


def hf_family(model_id: str) -> str | None:
    """Which prompt format a classifier id speaks ("llama-guard", "wildguard", "harmbench"), from its name."""
    lowered = model_id.lower()
    for family in ("llama-guard", "wildguard", "harmbench"):
        if family in lowered.replace("_", "-"):
            return family
    return None
