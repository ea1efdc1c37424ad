"""Errors are not final answers: a grader or judge failure is stored as an error and redone on resume.

A sandbox that could not start, a timeout while waiting for a CPU, or a judge endpoint that failed says nothing
about the response; storing it as a fail (or as safe) would make a rerun unable to correct it.
"""

from __future__ import annotations

import sqlite3

from rlvr_safety.evaluation.sampling import ensure_grades, ensure_judgments
from rlvr_safety.judges.base import Verdict
from rlvr_safety.rewards import code as code_mod
from rlvr_safety.rewards.base import Reward, RewardVerdict
from rlvr_safety.rewards.code import CodeResult, CodeReward
from rlvr_safety.store import GenerationRow, Store


def _rows(store: Store, n: int = 3) -> list[GenerationRow]:
    store.add_generations([
        {"model": "m", "benchmark": "b", "item_id": f"i{i}", "sample": 0, "params": "p", "prompt": f"q{i}",
         "response": f"r{i}", "prompt_tokens": 1, "completion_tokens": 1, "finish_reason": "stop"}
        for i in range(n)
    ])
    have = store.existing_generations("m", "b", "p")
    return [have[(f"i{i}", 0)] for i in range(n)]


class FlakyReward(Reward):
    """Fails (error=True) on the responses listed in `broken`, grades 1.0 otherwise; counts what it was asked."""

    name = "flaky"

    def __init__(self, broken: set[str]) -> None:
        self.broken = broken
        self.asked: list[str] = []

    def score(self, example, completion):
        self.asked.append(completion)
        if completion in self.broken:
            return RewardVerdict(0.0, None, "infra_error: timeout under load", error=True)
        return RewardVerdict(1.0, completion, "passed")


def test_grader_errors_are_stored_as_errors_and_redone_on_resume(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        rows = _rows(store)
        examples = [{} for _ in rows]
        first = FlakyReward(broken={"r1"})
        grades = ensure_grades(store, "flaky", first, rows, examples)
        assert grades == {rows[0].id: 1.0, rows[2].id: 1.0}  # the error is no 0.0
        stored = store.existing_grades([r.id for r in rows], "flaky")
        assert stored[rows[1].id]["error"] == 1 and "under load" in stored[rows[1].id]["reason"]

        again = FlakyReward(broken=set())  # the resume: only the error is graded again
        grades = ensure_grades(store, "flaky", again, rows, examples)
        assert again.asked == ["r1"] and grades == {r.id: 1.0 for r in rows}
        assert store.existing_grades([rows[1].id], "flaky")[rows[1].id]["error"] == 0

        final = FlakyReward(broken={"r0", "r1", "r2"})  # a final grade is never replaced
        assert ensure_grades(store, "flaky", final, rows, examples) == {r.id: 1.0 for r in rows}
        assert final.asked == []


class FlakyJudge:
    name = "flaky-judge"
    version = "1"

    def __init__(self, fail: set[str]) -> None:
        self.fail = fail
        self.asked: list[str] = []

    def judge(self, prompts, responses):
        self.asked += list(responses)
        return [
            Verdict.error(self.name, self.version, None, "HTTP 503")
            if r in self.fail
            else Verdict(refused=True, harmful=0.0, label="refusal", judge=self.name, version=self.version)
            for r in responses
        ]


def test_judge_errors_are_redone_on_resume_and_verdicts_are_final(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        rows = _rows(store)
        first = ensure_judgments(store, FlakyJudge(fail={"r2"}), rows)
        assert first[rows[2].id]["label"] == "error" and first[rows[0].id]["label"] == "refusal"
        again = FlakyJudge(fail=set())
        second = ensure_judgments(store, again, rows)
        assert again.asked == ["r2"] and {v["label"] for v in second.values()} == {"refusal"}
        later = FlakyJudge(fail={"r0", "r1", "r2"})
        assert {v["label"] for v in ensure_judgments(store, later, rows).values()} == {"refusal"}
        assert later.asked == []


def test_a_store_from_before_gets_the_error_column(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE grades (id INTEGER PRIMARY KEY AUTOINCREMENT, generation_id INTEGER NOT NULL, grader TEXT NOT"
        " NULL, value REAL NOT NULL, parsed TEXT, reason TEXT, created REAL NOT NULL, UNIQUE (generation_id, grader))"
    )
    conn.execute("INSERT INTO grades(generation_id, grader, value, parsed, reason, created) VALUES (1,'g',0.0,'','',0)")
    conn.commit()
    conn.close()
    with Store(path) as store:
        row = store.existing_grades([1], "g")[1]
        assert row["error"] == 0 and row["value"] == 0.0  # old grades stay final


def test_code_reward_marks_sandbox_failures_as_errors(monkeypatch):
    def broken_sandbox(*args, **kwargs):
        return CodeResult(False, "infra_error", "", 0.1, "timeout under load: waited 3.0s for a CPU")

    monkeypatch.setattr(code_mod, "run_tests", broken_sandbox)
    verdict = CodeReward().score({"tests": ["assert f() == 1"]}, "def f():\n    return 1\n")
    assert verdict.error and verdict.value == 0.0 and verdict.reason.startswith("infra_error")
    monkeypatch.setattr(
        code_mod, "run_tests", lambda *a, **k: CodeResult(False, "timeout", "", 5.0, "wall-clock timeout")
    )
    assert not CodeReward().score({"tests": ["assert f() == 1"]}, "def f():\n    while True: pass\n").error
