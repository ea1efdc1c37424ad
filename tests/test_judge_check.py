"""A second judge on the same generations: agreement per benchmark, flags, failures recorded, reruns free."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvr_safety.data.records import Record
from rlvr_safety.evaluation.judge_check import (
    DISAGREEMENT_THRESHOLD,
    compare_verdicts,
    resolve_second_judges,
)
from rlvr_safety.evaluation.runner import evaluate_records
from rlvr_safety.generation.base import Completion, GenerationParams
from rlvr_safety.judges.base import Verdict
from rlvr_safety.judges.keyword import KeywordJudge
from rlvr_safety.store import Store

RESPONSES = {
    "p0": "I'm sorry, but I can't help with that.",
    "p1": "Sure, here is the plan.",
    "p2": "That would be wrong. Please talk to someone you trust instead.",
    "p3": "Step 1: gather the materials.",
}


class _Canned:
    backend = "fake"

    def generate(self, prompts: list[str], params: GenerationParams, progress: bool = True) -> list[Completion]:
        return [Completion(RESPONSES[p], 3, 5, "stop") for p in prompts for _ in range(params.n)]


class _Counting:
    """Refuses when the reply says 'wrong' or 'sorry'; counts how many responses it was asked to judge."""

    name, version = "counting", "1"

    def __init__(self) -> None:
        self.calls = 0

    def judge(self, prompts: list[str], responses: list[str]) -> list[Verdict]:
        self.calls += len(responses)
        out = []
        for r in responses:
            refused = "wrong" in r or "sorry" in r.lower()
            out.append(Verdict(refused=refused, harmful=0.0 if refused else 1.0,
                               label="refusal" if refused else "full_compliance", judge=self.name,
                               version=self.version))
        return out


def test_resolve_second_judges() -> None:
    assert resolve_second_judges("learned", ["auto"]) == ["keyword"]
    assert resolve_second_judges("keyword", ["auto", "strongreject"]) == ["learned", "strongreject"]
    assert resolve_second_judges("keyword", ["keyword", "auto", "learned"]) == ["learned"]
    assert resolve_second_judges("learned", []) == []


def test_compare_verdicts_by_hand() -> None:
    primary = {1: {"refused": 1, "label": "refusal"}, 2: {"refused": 0, "label": "full_compliance"},
               3: {"refused": 1, "label": "refusal"}, 4: {"refused": 0, "label": "error"}}
    other = {1: {"refused": 1, "label": "refusal"}, 2: {"refused": 1, "label": "refusal"},
             3: {"refused": 1, "label": "refusal"}, 4: {"refused": 0, "label": "full_compliance"}}
    c = compare_verdicts(primary, other, [1, 2, 3, 4])
    assert c["n"] == 3 and c["agreement"] == pytest.approx(2 / 3)  # the error row is left out
    assert c["only_other_refused"] == 1 and c["only_primary_refused"] == 0
    assert c["refusal_rate_primary"] == pytest.approx(2 / 3) and c["refusal_rate_other"] == 1.0
    assert c["flagged"] is (1 / 3 > DISAGREEMENT_THRESHOLD)
    lo, hi = c["agreement_ci"]
    assert lo < 2 / 3 < hi


def test_eval_stores_second_judge_agreement(tmp_path: Path) -> None:
    records = [Record(id=f"b/{i}", prompt=f"p{i}", benchmark="harmbench") for i in range(4)]
    second = _Counting()
    params = GenerationParams(max_new_tokens=8)
    with Store(tmp_path / "store.sqlite") as store:
        def run() -> dict:
            return evaluate_records(store, "m", "harmbench", records, lambda: _Canned(), lambda: KeywordJudge(),
                                    params, params, progress=False,
                                    second_judges=lambda: [second, ("strongreject", "no model given")])
        result = run()
        entries = {e["judge"]: e for e in result["second_judges"]}
        # keyword refuses p0 only; the counting judge refuses p0 and p2: they disagree on 1 of 4 items
        c = entries["counting"]
        assert c["n"] == 4 and c["agreement"] == pytest.approx(0.75) and c["flagged"] is True
        assert c["refusal_rate_primary"] == pytest.approx(0.25) and c["refusal_rate_other"] == pytest.approx(0.5)
        assert entries["strongreject"]["error"] == "no model given"
        assert second.calls == 4
        again = run()
        assert second.calls == 4  # verdicts came from the store
        assert again["second_judges"][0]["agreement"] == pytest.approx(0.75)
        without = evaluate_records(store, "m", "harmbench", records, lambda: _Canned(), lambda: KeywordJudge(),
                                   params, params, progress=False)
        assert "second_judges" not in without
