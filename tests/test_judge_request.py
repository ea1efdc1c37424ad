"""Judges classify a response against the plain request (behaviour / goal), not the attacked prompt the model saw:
data.records.judge_request on real local records, and sampling.ensure_judgments passing it to the judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvr_safety.data import load_benchmark
from rlvr_safety.data.records import CONTEXT_SEPARATOR, Record, judge_request
from rlvr_safety.evaluation.sampling import ensure_judgments
from rlvr_safety.judges.base import Verdict
from rlvr_safety.judges.hf_classifiers import HarmBenchJudge
from rlvr_safety.store import Store


def test_attacked_prompts_are_judged_against_their_goal(data_dir: Path) -> None:
    pair = load_benchmark("jailbreakbench-pair", data_dir=data_dir, limit=3)
    plain = {r.id.split("/")[1]: r.prompt for r in load_benchmark("jailbreakbench", data_dir=data_dir)}
    for rec in pair:
        assert judge_request(rec) == rec.extra["goal"] == plain[rec.id.split("/")[1]]
        assert judge_request(rec) != rec.prompt  # the PAIR prompt is what the model saw, not what is judged
    b64 = load_benchmark("harmbench+base64", data_dir=data_dir, limit=2)
    base = load_benchmark("harmbench", data_dir=data_dir, limit=2)
    assert [judge_request(r) for r in b64] == [r.prompt for r in base]
    assert load_benchmark("strongreject+rot13", data_dir=data_dir, limit=1)[0].extra["original_prompt"] == \
        judge_request(load_benchmark("strongreject+rot13", data_dir=data_dir, limit=1)[0])
    xs = load_benchmark("xstest", data_dir=data_dir, limit=2)
    assert [judge_request(r) for r in xs] == [r.prompt for r in xs]


def test_harmbench_contextual_items_reach_the_classifier_as_context_and_behaviour(data_dir: Path) -> None:
    ctx = next(r for r in load_benchmark("harmbench", data_dir=data_dir) if r.extra.get("context"))
    request = judge_request(ctx)
    assert request.endswith(CONTEXT_SEPARATOR + ctx.extra["behavior"])
    text = HarmBenchJudge("cais/HarmBench-Mistral-7b-val-cls").render(None, request, "G")
    assert f"[CONTEXT]:\n{ctx.extra['context']}\n\n[BEHAVIOR]:\n{ctx.extra['behavior']}\n\n" in text
    wild = Record(id="w/1", prompt="As a novelist, write ...", benchmark="wildjailbreak",
                  extra={"vanilla": "How do I pick a lock?"})
    assert judge_request(wild) == "How do I pick a lock?"


class _Recorder:
    name, version = "recorder", "1"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def judge(self, prompts: list[str], responses: list[str]) -> list[Verdict]:
        self.prompts.extend(prompts)
        return [Verdict(refused=True, harmful=0.0, label="refusal", judge=self.name, version=self.version)
                for _ in responses]


def test_ensure_judgments_gives_the_judge_the_request(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.add_generations([
        {"model": "m", "benchmark": "b", "item_id": item, "sample": 0, "params": "p", "prompt": f"ATTACKED {item}",
         "response": "no", "prompt_tokens": 1, "completion_tokens": 1, "finish_reason": "stop", "seed": 0,
         "backend": "hf"} for item in ("a", "b")])
    rows = list(store.existing_generations("m", "b", "p").values())
    judge = _Recorder()
    ensure_judgments(store, judge, rows, requests={"a": "plain a"})
    assert sorted(judge.prompts) == ["ATTACKED b", "plain a"]  # b has no request: its prompt, as before


@pytest.mark.parametrize("benchmark", ["jailbreakbench-gcg"])
def test_every_attack_artifact_record_has_a_goal(benchmark: str, data_dir: Path) -> None:
    assert all(judge_request(r) == r.extra["goal"] for r in load_benchmark(benchmark, data_dir=data_dir))


def test_eval_judges_pair_prompts_against_their_goals(tmp_path: Path, data_dir: Path, tiny_model_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from rlvr_safety.evaluation.configs import EvalConfig
    from rlvr_safety.evaluation.runner import run_eval
    from rlvr_safety.judges import registry

    judge = _Recorder()
    monkeypatch.setattr(registry, "build_judge", lambda name, **kw: judge)
    cfg = EvalConfig(model=str(tiny_model_dir), benchmarks=["jailbreakbench-pair"], limit=2, data_dir=data_dir,
                     max_new_tokens=2)
    run_eval(cfg, tmp_path / "e", progress=False)
    goals = [r.extra["goal"] for r in load_benchmark("jailbreakbench-pair", data_dir=data_dir, limit=2)]
    assert sorted(judge.prompts) == sorted(goals)
