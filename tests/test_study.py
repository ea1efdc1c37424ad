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
    ({"betas": [-1.0]}, "betas must be >= 0"),
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
    assert demo.methods == ["sft", "rlhf:grpo", "rlvr:grpo", "rlvr:rloo"] and demo.betas == [0.05]
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
