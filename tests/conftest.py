"""Shared fixtures: the local data folder (../shared/data or RLVR_SAFETY_DATA_DIR) and an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs derandomised (HYPOTHESIS_PROFILE=ci in .ci/run): a green run must not be luck. Locally the default
# profile draws fresh examples every run, which is how new counterexamples are found (then pin them as cases).
settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    env = os.environ.get("RLVR_SAFETY_DATA_DIR")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not (path / "MANIFEST.md").exists():
        pytest.fail(f"local data folder not found at {path}; set RLVR_SAFETY_DATA_DIR")
    return path


@pytest.fixture(autouse=True, scope="session")
def _offline_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # tests pin numbers in float32; the bf16 CPU path (models.cpu_dtype_name) has its own tests
    os.environ.setdefault("RLVR_SAFETY_CPU_DTYPE", "fp32")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random llama-architecture model with the default model's tokenizer and chat template, saved as a
    folder so it can be passed anywhere a model spec is accepted."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlvr_safety.models import load_tokenizer

    tok = load_tokenizer("default")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out
