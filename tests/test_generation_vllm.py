"""The vllm backend and the RL config's vLLM settings against a fake `vllm` module (vLLM needs a GPU).

The fake records what the engine and SamplingParams receive; the real engine is exercised by benchmarks/gpu_check.py
where a GPU is lent.
"""

from __future__ import annotations

import gc
import sys
import types
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.generation.base import GenerationParams

EOS = 2


class FakeVLLM:
    """A stand-in for the vllm package: LLM(model, **options), SamplingParams(**kw), LLM.chat(...)."""

    def __init__(self) -> None:
        self.engines: list[dict[str, Any]] = []
        self.sampling: list[dict[str, Any]] = []
        self.chats: list[tuple[list[Any], list[Any]]] = []
        self.torn_down = 0
        self.live: list[weakref.ref[Any]] = []
        fake = self

        class SamplingParams:
            def __init__(self, **kw: Any) -> None:
                self.kw = kw
                fake.sampling.append(kw)

        class LLM:
            def __init__(self, model: str, **options: Any) -> None:
                fake.engines.append({"model": model, **options})
                fake.live.append(weakref.ref(self))

            def get_tokenizer(self) -> Any:
                return SimpleNamespace(eos_token_id=EOS)

            def chat(self, conversations: list[Any], sampling: list[Any], use_tqdm: bool = True) -> list[Any]:
                fake.chats.append((conversations, sampling))
                outs = []
                for conv, sp in zip(conversations, sampling, strict=True):
                    n = sp.kw["n"]
                    long = "long" in conv[-1]["content"]
                    samples = [SimpleNamespace(index=i, text=f"answer {i}", finish_reason="length" if long else "stop",
                                               stop_reason=None, token_ids=[5, 6, 7] if long else [5, 6, EOS])
                               for i in reversed(range(n))]  # out of order: the backend sorts by index
                    outs.append(SimpleNamespace(prompt_token_ids=[1, 2, 3, 4], outputs=samples))
                return outs

        def destroy() -> None:
            fake.torn_down += 1

        self.module = types.ModuleType("vllm")
        self.module.LLM = LLM  # type: ignore[attr-defined]
        self.module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
        self.parallel = types.ModuleType("vllm.distributed.parallel_state")
        self.parallel.destroy_model_parallel = destroy  # type: ignore[attr-defined]
        self.parallel.destroy_distributed_environment = lambda: None  # type: ignore[attr-defined]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "vllm", self.module)
        monkeypatch.setitem(sys.modules, "vllm.distributed", types.ModuleType("vllm.distributed"))
        monkeypatch.setitem(sys.modules, "vllm.distributed.parallel_state", self.parallel)


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> FakeVLLM:
    fake = FakeVLLM()
    fake.install(monkeypatch)
    return fake


def test_engine_options_pass_through_and_the_models_generation_config_is_off(fake_vllm: FakeVLLM,
                                                                             tiny_model_dir: Path) -> None:
    from rlvr_safety.generation.base import get_generator

    get_generator("vllm", str(tiny_model_dir), gpu_memory_utilization=0.5, dtype="bfloat16", max_model_len=512,
                  device="cuda")
    assert fake_vllm.engines == [{"model": str(tiny_model_dir.resolve()), "generation_config": "vllm",
                                  "gpu_memory_utilization": 0.5, "dtype": "bfloat16", "max_model_len": 512}]


def test_each_prompt_gets_its_own_seed_reproducibly(fake_vllm: FakeVLLM, tiny_model_dir: Path) -> None:
    from rlvr_safety.generation.vllm_backend import VLLMGenerator

    gen = VLLMGenerator(str(tiny_model_dir))
    params = GenerationParams(max_new_tokens=8, temperature=0.7, top_p=0.9, n=2, seed=3)
    out = gen.generate(["a", "b", "c"], params, progress=False)
    seeds = [kw["seed"] for kw in fake_vllm.sampling]
    assert len(set(seeds)) == 3  # not one seed shared by all prompts
    assert all(kw["n"] == 2 and kw["temperature"] == 0.7 and kw["top_p"] == 0.9 and kw["max_tokens"] == 8
               for kw in fake_vllm.sampling)
    assert [c.text for c in out] == ["answer 0", "answer 1"] * 3  # prompt-major, samples in index order
    fake_vllm.sampling.clear()
    gen.generate(["c", "a"], params, progress=False)  # a prompt's seed does not depend on its neighbours
    assert [kw["seed"] for kw in fake_vllm.sampling] == [seeds[2], seeds[0]]
    fake_vllm.sampling.clear()
    gen.generate(["a"], GenerationParams(max_new_tokens=8, temperature=0.7, n=2, seed=4), progress=False)
    assert fake_vllm.sampling[0]["seed"] != seeds[0]


def test_greedy_asks_for_one_sample_and_repeats_it(fake_vllm: FakeVLLM, tiny_model_dir: Path) -> None:
    from rlvr_safety.generation.vllm_backend import VLLMGenerator

    out = VLLMGenerator(str(tiny_model_dir)).generate(["a", "b"], GenerationParams(max_new_tokens=4, n=3),
                                                      progress=False)
    assert fake_vllm.sampling == [{"n": 1, "temperature": 0.0, "max_tokens": 4}] * 2
    assert len(out) == 6 and len({(c.text, c.token_ids) for c in out[:3]}) == 1


def test_eos_is_stripped_like_the_hf_backend(fake_vllm: FakeVLLM, tiny_model_dir: Path) -> None:
    from rlvr_safety.generation.vllm_backend import VLLMGenerator

    stopped, cut = VLLMGenerator(str(tiny_model_dir)).generate(["short", "long"], GenerationParams(), progress=False)
    assert (stopped.token_ids, stopped.completion_tokens, stopped.finish_reason) == ((5, 6), 2, "stop")
    assert (cut.token_ids, cut.completion_tokens, cut.finish_reason) == ((5, 6, 7), 3, "length")
    assert stopped.prompt_tokens == 4


def test_missing_extra_and_base_url_are_one_line_errors(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path,
                                                        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from rlvr_safety.generation.vllm_backend import VLLMGenerator

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(UserError, match=r"pip install 'rlvr-safety\[vllm\]'"):
        VLLMGenerator(str(tiny_model_dir))
    with pytest.raises(UserError, match="--base-url is for --backend openai"):
        VLLMGenerator(str(tiny_model_dir), base_url="http://localhost:8000/v1")
    from test_cli_exit_codes import assert_one_line_exit_2, run_cli

    code, out, err = run_cli(monkeypatch, capsys, "eval", "--model", str(tiny_model_dir), "--benchmark", "xstest",
                             "--backend", "vllm", "--base-url", "http://localhost:8000/v1", "--out",
                             str(tmp_path / "o"))
    assert_one_line_exit_2(code, out, err, "'--base-url': base_url is for backend openai, not vllm")


def test_eval_frees_the_engine_before_the_judge_runs(fake_vllm: FakeVLLM, tiny_model_dir: Path, tmp_path: Path,
                                                     data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from rlvr_safety.evaluation.configs import EvalConfig
    from rlvr_safety.evaluation.runner import run_eval
    from rlvr_safety.judges import registry
    from rlvr_safety.judges.base import Verdict

    emptied: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    seen: list[tuple[bool, int, int]] = []

    class Judge:
        name, version = "stub", "1"

        def judge(self, prompts: list[str], responses: list[str]) -> list[Verdict]:
            gc.collect()
            seen.append((fake_vllm.live[0]() is None, fake_vllm.torn_down, len(emptied)))
            return [Verdict(refused=True, harmful=0.0, label="refusal", judge="stub", version="1")
                    for _ in responses]

    monkeypatch.setattr(registry, "build_judge", lambda name, **kw: Judge())
    cfg = EvalConfig(model=str(tiny_model_dir), benchmarks=["harmbench", "xstest"], limit=3, data_dir=data_dir,
                     backend="vllm")
    payload = run_eval(cfg, tmp_path / "e", progress=False)
    assert set(payload["benchmarks"]) == {"harmbench", "xstest"}
    assert len(fake_vllm.engines) == 1 and len(fake_vllm.chats) == 2  # one engine, both benchmarks generated
    assert seen and all(s == (True, 1, 1) for s in seen)  # engine gone, parallel state torn down, cache emptied


def test_prompts_reach_the_engine_in_large_calls(fake_vllm: FakeVLLM, tiny_model_dir: Path, tmp_path: Path) -> None:
    """ensure_generations hands vLLM its prompts_per_call (not two hf batches of 16) per call; the openai backend
    keeps its connection pool busy the same way."""
    from rlvr_safety.evaluation.sampling import ensure_generations
    from rlvr_safety.generation.openai_backend import OpenAIGenerator
    from rlvr_safety.generation.vllm_backend import VLLMGenerator
    from rlvr_safety.store import Store

    gen = VLLMGenerator(str(tiny_model_dir))
    items = [(f"i{k}", f"prompt {k}") for k in range(70)]
    with Store(tmp_path / "s.sqlite") as store:
        rows = ensure_generations(store, lambda: gen, "m", "b", items, GenerationParams(batch_size=16),
                                  progress=False)
    assert len(rows) == 70 and [len(c) for c, _ in fake_vllm.chats] == [70]
    from rlvr_safety.evaluation.certify import recording_generator  # eval with record_tokens wraps the engine

    with Store(tmp_path / "t.sqlite") as store:
        recording = recording_generator(gen, store.path, "m")
        ensure_generations(store, lambda: recording, "m", "b", items, GenerationParams(batch_size=16, seed=1),
                           progress=False)
    assert [len(c) for c, _ in fake_vllm.chats] == [70, 70]
    assert OpenAIGenerator("m", "http://localhost:1/v1").prompts_per_call >= 8 * 16


def test_cli_engine_options_reach_the_engine(fake_vllm: FakeVLLM, tiny_model_dir: Path, tmp_path: Path,
                                            data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from test_cli_exit_codes import assert_one_line_exit_2, run_cli

    code, out, err = run_cli(monkeypatch, capsys, "eval", "--model", str(tiny_model_dir), "--benchmark", "xstest",
                             "--limit", "2", "--data-dir", str(data_dir), "--backend", "vllm",
                             "--backend-option", "gpu_memory_utilization=0.5", "--backend-option",
                             "enforce_eager=true", "--backend-option", "tokenizer_mode=auto",
                             "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert fake_vllm.engines == [{"model": str(tiny_model_dir.resolve()), "generation_config": "vllm",
                                  "gpu_memory_utilization": 0.5, "enforce_eager": True, "tokenizer_mode": "auto"}]
    code, out, err = run_cli(monkeypatch, capsys, "eval", "--model", str(tiny_model_dir), "--benchmark", "xstest",
                             "--backend", "vllm", "--backend-option", "gpu_memory_utilization",
                             "--out", str(tmp_path / "o2"))
    assert_one_line_exit_2(code, out, err, "use KEY=VALUE")


# ------------------------------------------------------------------------------------------- RL config (TRL side)
def test_rl_config_vllm_settings_reach_grpo_config(tmp_path: Path) -> None:
    from rlvr_safety.training.config import load_config
    from rlvr_safety.training.rlvr import grpo_args

    cfg = load_config("rlvr", None, ["use_vllm=true", "vllm_mode=server", "vllm_server_host=10.0.0.5",
                                     "vllm_server_port=8123", "vllm_gpu_memory_utilization=0.4"])
    kw = grpo_args(cfg, tmp_path)
    assert {k: kw[k] for k in ("use_vllm", "vllm_mode", "vllm_server_host", "vllm_server_port",
                               "vllm_gpu_memory_utilization")} == {
        "use_vllm": True, "vllm_mode": "server", "vllm_server_host": "10.0.0.5", "vllm_server_port": 8123,
        "vllm_gpu_memory_utilization": 0.4}
    from trl import GRPOConfig

    args = GRPOConfig(**{**kw, "use_cpu": True})  # TRL accepts them under its own names
    assert args.use_vllm and args.vllm_mode == "server" and args.vllm_server_port == 8123
    assert grpo_args(load_config("rlvr", None, []), tmp_path)["use_vllm"] is False


def test_rl_config_vllm_is_checked_before_any_model_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    from rlvr_safety.training import run_recipe
    from rlvr_safety.training.config import load_config

    with pytest.raises(UserError, match="vllm_mode"):
        load_config("rlvr", None, ["use_vllm=true", "vllm_mode=remote"])
    with pytest.raises(UserError, match="use_vllm needs a CUDA device"):
        load_config("rlvr", None, ["use_vllm=true", "device=cpu"])
    # the model does not exist: any attempt to load it would fail differently
    args = ["use_vllm=true", "model=/nonexistent/model", "probe.enabled=false"]
    monkeypatch.setitem(sys.modules, "vllm", None)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(UserError, match=r"vllm package is not installed .*rlvr-safety\[vllm\]"):
        run_recipe("rlvr", None, args, tmp_path / "a")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="vLLM needs a CUDA GPU"):
        run_recipe("rlvr", None, args, tmp_path / "b")
    with pytest.raises(UserError, match="vLLM needs a CUDA GPU"):
        run_recipe("rlhf", None, args, tmp_path / "c")
