"""Study spec validation, grid expansion, stage order and resume logic on a fake stage graph (no models)."""

from __future__ import annotations

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.study.grid import check_order, expand_runs, plan
from rlvr_safety.study.runner import StudyRunner, describe_plan
from rlvr_safety.study.spec import list_presets, load_spec, parse_spec


def spec(**kw):
    base = {"methods": ["sft", "rlhf:grpo", "rlvr:grpo", "rlvr:rloo"], "betas": [0.05, 0.1], "seeds": [0, 1]}
    return parse_spec({**base, **kw}, "test")


def test_grid_expansion_and_stable_ids():
    runs = expand_runs(spec())
    # sft ignores beta: 2 seeds; each RL method: 2 betas x 2 seeds
    assert len(runs) == 2 + 3 * 4
    ids = [r.id for r in runs]
    assert len(set(ids)) == len(ids)
    assert "default_sft_arithmetic_s0" in ids and "default_rlvr-rloo_arithmetic_b0.1_s1" in ids
    # adding a seed keeps every existing id
    more = {r.id for r in expand_runs(spec(seeds=[0, 1, 2]))}
    assert set(ids) <= more


@pytest.mark.parametrize(("bad", "needle"), [
    ({"methods": ["rlvr:nope"]}, "unknown algorithm"),
    ({"methods": ["dpo"]}, "must be 'sft'"),
    ({"betas": [-1.0]}, "betas: Input should be greater than or equal to 0"),
    ({"domains": ["poetry"]}, "domains"),
    ({"typo_key": 1}, "typo_key"),
    ({"eval": {"limit": 0}}, "eval.limit"),
])
def test_spec_validation_errors_are_one_line(bad, needle):
    with pytest.raises(UserError) as exc:
        parse_spec(bad, "test")
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_load_spec_errors(tmp_path):
    with pytest.raises(UserError, match="exactly one"):
        load_spec(None, None)
    with pytest.raises(UserError, match="unknown preset"):
        load_spec("nope", None)
    with pytest.raises(UserError, match="not found"):
        load_spec(None, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods: [sft\n")
    with pytest.raises(UserError, match="YAML"):
        load_spec(None, bad)


def test_presets_validate_and_plan():
    assert {"demo", "paper"} <= set(list_presets())
    demo = load_spec("demo", None)
    assert demo.methods == ["sft", "rlhf:grpo", "rlvr:grpo"] and len(demo.betas) >= 3
    assert demo.certificate.source == "eval" and demo.eval.temperature == 1.0
    runs = expand_runs(demo)
    assert [r.beta for r in runs if r.method == "rlhf"] == demo.method_betas["rlhf:grpo"]
    assert sorted(r.beta for r in runs if r.method == "rlvr") == sorted(demo.betas)
    assert all(demo.run_config(r).kl_mode == "reward" for r in runs if r.method == "rlvr")
    paper = load_spec("paper", None)
    cost = describe_plan(paper)["cost"]
    assert cost["training_runs"] == 3 * 2 * (3 + 6 * 2 * 3) and cost["training_runs"] == len(expand_runs(paper))


def test_stage_order():
    stages = plan(spec())
    check_order(stages)
    kinds = [s.kind for s in stages]
    first = {k: kinds.index(k) for k in set(kinds)}
    last = {k: len(kinds) - 1 - kinds[::-1].index(k) for k in set(kinds)}
    assert last["guard"] < first["forecast"] <= last["forecast"] < first["train"]
    assert last["train"] < first["eval"] and last["eval"] < first["certify"] and kinds[-1] == "report"
    with pytest.raises(ValueError):
        check_order(list(reversed(stages)))


class Boom(Exception):
    pass


def fake_executors(calls, fail_at=None):
    def make(kind):
        def run(stage):
            calls.append(stage.id)
            if stage.id == fail_at:
                raise Boom(stage.id)
            return {"kind": kind, "reference": "default", "model": f"/models/{stage.id}"}
        return run
    return {k: make(k) for k in ("guard", "forecast", "train", "eval", "certify", "report")}


def test_resume_skips_done_stages_and_reruns_failed(tmp_path):
    s = spec(methods=["sft", "rlvr:grpo"], betas=[0.05], seeds=[0])
    out = tmp_path / "study"
    calls: list[str] = []
    failing = "eval:default_rlvr-grpo_arithmetic_b0.05_s0"
    with pytest.raises(Boom):
        StudyRunner(s, out, progress=False, executors=fake_executors(calls, fail_at=failing)).run()
    done_before = calls[:-1]
    assert calls[-1] == failing
    with pytest.raises(UserError, match="--resume"):
        StudyRunner(s, out, progress=False, executors=fake_executors([]))
    calls2: list[str] = []
    result = StudyRunner(s, out, resume=True, progress=False, executors=fake_executors(calls2)).run()
    assert calls2[0] == failing and not set(calls2) & set(done_before)
    assert set(result["stages"]) == {st.id for st in plan(s)}
    calls3: list[str] = []
    StudyRunner(s, out, resume=True, progress=False, executors=fake_executors(calls3)).run()
    assert calls3 == []  # everything done: nothing reruns


def test_resume_refuses_a_different_spec(tmp_path):
    out = tmp_path / "study"
    StudyRunner(spec(methods=["sft"]), out, progress=False, executors=fake_executors([])).run()
    with pytest.raises(UserError, match="different spec"):
        StudyRunner(spec(methods=["sft", "rlvr:grpo"]), out, resume=True, progress=False)


@pytest.mark.parametrize(("bad", "needle"), [
    ({"train": {"bata": 0.1}}, "train.bata: unknown key for the sft recipe"),
    ({"method_overrides": {"rlvr": {"num_generatons": 8}}}, "method_overrides.rlvr.num_generatons: unknown key"),
    ({"method_overrides": {"rlvr:grpo": {"lora": {"alpha": 8}}}}, "renamed lora_alpha"),
    ({"guard": {"config": {"n_harmfull": 3}}}, "guard.config.n_harmfull: unknown key for the guard recipe"),
    ({"train": {"probe": {"judge": "kewyord"}}}, "train.probe.judge: unknown judge 'kewyord'"),
    ({"judge": "nope"}, "judge: unknown judge 'nope'"),
    ({"eval": {"judge": "nope"}}, "eval.judge: unknown judge"),
    ({"method_overrides": {"dpo": {}}}, "method_overrides.dpo: not a method"),
    ({"method_overrides": {"rlvr": {"num_generations": 3}}}, "multiple of num_generations"),
])
def test_every_recipe_config_is_validated_when_the_spec_loads(bad, needle):
    with pytest.raises(UserError) as exc:
        spec(**bad)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_the_study_judge_flows_to_every_stage_unless_one_names_its_own():
    s = spec(judge="learned", certificate={"judge": "keyword"},
             method_overrides={"rlvr:rloo": {"probe": {"judge": "keyword"}}})
    judges = describe_plan(s)["judges"]
    used = {(sid.split(":")[0], role, name) for sid, roles in judges.items() for role, name in roles.items()}
    assert ("guard", "guard", "learned") in used and ("forecast", "forecast", "learned") in used
    assert ("eval", "eval", "learned") in used and ("certify", "certify", "keyword") in used
    assert ("certify", "certify", "learned") not in used
    rloo = next(r for r in expand_runs(s) if r.algorithm == "rloo")
    grpo = next(r for r in expand_runs(s) if r.algorithm == "grpo" and r.method == "rlvr")
    assert s.run_config(rloo).probe_judge == "keyword" and s.run_config(grpo).probe_judge == "learned"
    assert s.guard_config("default").judge == "learned"
    # an explicit judge in guard.config wins over the study's for the guard stage only
    assert spec(guard={"config": {"judge": "keyword"}}, judge="learned").stage_judges("guard", base="default") == {
        "guard": "keyword"}


def test_a_certificate_from_eval_samples_names_the_eval_judge():
    """With certificate.source: eval the certify stage reads the eval's verdicts: the dry run names the eval's judge,
    and a certificate.judge that would be ignored is refused when the spec loads."""
    s = spec(judge="keyword", eval={"temperature": 1.0, "judge": "learned"}, certificate={"source": "eval"})
    assert s.stage_judges("certify") == {"certify": "learned"}
    with pytest.raises(UserError, match="certificate.judge: keyword is not used with certificate.source: eval"):
        spec(eval={"temperature": 1.0, "judge": "learned"}, certificate={"source": "eval", "judge": "keyword"})


def test_run_configs_are_typed_and_merged_in_order():
    from rlvr_safety.training.config import RLVRConfig, SFTConfig

    s = spec(train={"max_steps": 7, "probe": {"every": 3, "n": 2}},
             method_overrides={"rlvr": {"num_generations": 8, "probe": {"n": 5}}, "rlvr:rloo": {"max_steps": 9}})
    runs = {r.id: r for r in expand_runs(s)}
    rloo = s.run_config(runs["default_rlvr-rloo_arithmetic_b0.1_s1"], model="/ref")
    assert isinstance(rloo, RLVRConfig)
    assert (rloo.model, rloo.beta, rloo.seed, rloo.algorithm) == ("/ref", 0.1, 1, "rloo")
    assert (rloo.max_steps, rloo.num_generations, rloo.probe.every, rloo.probe.n) == (9, 8, 3, 5)
    sft = s.run_config(runs["default_sft_arithmetic_s0"])
    assert isinstance(sft, SFTConfig) and sft.max_steps == 7 and sft.task.name == "arithmetic"
    assert describe_plan(s)["cost"]["training_steps"] == sum(s.run_config(r).max_steps for r in runs.values())


def test_the_runner_trains_the_validated_object(tmp_path, monkeypatch):
    """No YAML round trip: the recipe receives the spec's config object, with the guard's reference as model."""
    import rlvr_safety.training as training

    seen = []

    def fake_run_config(cfg, out, resume=False):
        seen.append(cfg)
        return {"model": str(out / "model")}

    monkeypatch.setattr(training, "run_config", fake_run_config)
    s = spec(methods=["rlvr:grpo"], betas=[0.05], seeds=[0], train={"max_steps": 3}, judge="learned")
    executors = fake_executors([])
    executors.pop("train")
    executors["guard"] = lambda stage: {"reference": "/guarded"}
    StudyRunner(s, tmp_path / "st", progress=False, executors=executors).run()
    (cfg,) = seen
    assert cfg.model == "/guarded" and cfg.max_steps == 3 and cfg.judge == "learned" and cfg.beta == 0.05
    folder = tmp_path / "st" / "models" / "default_rlvr-grpo_arithmetic_b0.05_s0"
    assert not (folder / "config.yaml").exists() and (folder / "config.json").exists()


def test_each_stage_releases_accelerator_memory_before_the_next(tmp_path, monkeypatch):
    """Between stages (done or failed) the GPU cache is emptied, so a judge or a vLLM engine loading next sees the
    memory the previous stage's models held (#18)."""
    import torch

    events = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: events.append("empty"))
    calls = []

    def noting(run):
        def wrapped(stage):
            events.append("stage")
            return run(stage)
        return wrapped

    executors = {kind: noting(run) for kind, run in fake_executors(calls).items()}
    StudyRunner(spec(methods=["sft"], betas=[0.05], seeds=[0]), tmp_path / "st", progress=False,
                executors=executors).run()
    assert events and events == ["stage", "empty"] * (len(events) // 2)
