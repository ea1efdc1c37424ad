"""Shared fixtures: the local data folder (../shared/data or RLVR_SAFETY_DATA_DIR) and an isolated cache."""

from __future__ import annotations

import gc
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

# Test tiers (markers; `make test` runs all three, `make test-fast` unit + integration):
#   slow         the default model (SmolLM2-135M) end to end, marked in the test files themselves, and the tests
#                below that take long by design (hangs and timeouts, a Ray runtime, torchrun, a browser, the
#                whole algorithm x KL-mode matrix of the recipes: one case of each stays in the fast loop, the
#                demo's whole study path on a tiny model: four trainings, five evals, four certificates, the
#                report, 27 of the fast tier's 186 s; the fast loop keeps a one-run study through the CLI
#                (test_cli_keeps_library_output_in_the_log) and the stages' own tests);
#   integration  real engines at toy size: tiny random models, TRL trainers, the code sandbox, local HTTP servers,
#                inspect_ai, the learned judge's embedding model: any test using a tiny-model fixture, and every
#                test of the files below;
#   unit         everything else: pure functions, configs, the store, fake stage graphs.
INTEGRATION_FILES = frozenset({
    "test_certificate_callback.py", "test_cli_exit_codes.py", "test_evaluation.py", "test_forecast_certify.py",
    "test_generation.py", "test_generation_openai.py", "test_generation_sampler.py", "test_generation_vllm.py",
    "test_inspect_integration.py", "test_judges_hf.py", "test_judges_learned.py", "test_judges_strongreject.py",
    "test_models_dtype.py", "test_openai_client.py", "test_reward_hacking.py", "test_rewards_code.py",
    "test_rewards_instructions.py", "test_rewards_math.py", "test_rewards_registry.py", "test_sandbox_escape.py",
    "test_training_objective.py", "test_training_recipes.py", "test_training_toy_tilt.py",
})
SLOW_FILES = frozenset({"test_study_ray.py", "test_training_distributed.py", "test_report_browser.py"})
SLOW_TESTS = frozenset({  # FILE::NAME (every parameter) or FILE::NAME[PARAMS] (that case)
    "test_rewards_math.py::test_timeout_returns_zero_and_pool_recovers",
    "test_rewards_math.py::test_timeout_off_main_thread",
    "test_rewards_math.py::test_clock_starts_when_a_worker_picks_the_item_up",
    "test_rewards_math.py::test_large_batch_with_hangs_keeps_order",
    "test_rewards_math.py::test_pathological_expression_times_out",
    "test_training_recipes.py::test_every_rlvr_algorithm_runs[bnpo]",
    "test_training_recipes.py::test_every_rlvr_algorithm_runs[dapo]",
    "test_training_recipes.py::test_every_rlvr_algorithm_runs[dr_grpo]",
    "test_training_recipes.py::test_every_rlvr_algorithm_runs[reinforce_pp]",
    "test_training_recipes.py::test_logged_kl_matches_direct_computation[False-0.0-reward]",
    "test_training_recipes.py::test_logged_kl_matches_direct_computation[False-0.1-loss]",
    "test_study_demo_path.py::test_tiny_demo_path",
})
TINY_MODEL_FIXTURES = frozenset({"tiny_model_dir", "tiny"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test exactly one tier: slow (its own mark or the lists above), else integration or unit."""
    for item in items:
        name = item.path.name
        own = f"{name}::{getattr(item, 'originalname', item.name)}"
        if item.get_closest_marker("slow") is not None:
            continue
        if name in SLOW_FILES or own in SLOW_TESTS or f"{name}::{item.name}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        elif name in INTEGRATION_FILES or set(getattr(item, "fixturenames", ())) & TINY_MODEL_FIXTURES:
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


# Garbage collection: every full collection (each study stage calls models.release_memory, which runs one; Python
# runs others itself) walks every live object, and a test session holds millions that live to its end (torch,
# transformers, TRL, our modules, loaded models): measured, 100 s of the 280 s fast tier. So what is alive when
# collection ends and again when each test module starts is collected first and then frozen (gc.freeze: out of the
# collector's sight); objects a test creates are collected as before, and reference counting still frees frozen
# objects. Only a reference cycle among objects that were alive at a freeze and die later stays in memory.
_frozen_for: list[object] = [None]


def _collect_and_freeze() -> None:
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.get_closest_marker(tier) for item in session.items for tier in ("integration", "slow")):
        import torch  # noqa: F401  (imported once here, frozen with the rest)
        import transformers  # noqa: F401
        import trl  # noqa: F401
    _collect_and_freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the first test of each module (after the last module's fixtures were torn down)."""
    module = getattr(item, "module", None)
    if module is not _frozen_for[0]:
        _frozen_for[0] = module
        _collect_and_freeze()


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
