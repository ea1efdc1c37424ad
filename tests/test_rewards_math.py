"""Math verifier: extraction, gold parsing, agreement with real GSM8K / MATH-500 golds, and the timeout pool."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from pathlib import Path

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.rewards.math import (
    MathReward,
    VerifierPool,
    clean_answer,
    extract_answer,
    extract_boxed,
    gold_answer,
    grade_answer,
)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def reward():
    with MathReward(workers=2, timeout=10.0) as r:
        yield r


# ------------------------------------------------------------------------------------------- extraction


def test_nested_boxed_takes_last_and_matches_braces():
    text = r"first \boxed{1} then \boxed{\frac{1}{\sqrt{2}}} done"
    assert extract_boxed(text) == r"\frac{1}{\sqrt{2}}"
    assert extract_answer(text).method == "boxed"


def test_unterminated_last_box_falls_back_to_earlier_box():
    assert extract_boxed(r"\boxed{3} and then \boxed{4") == "3"
    assert extract_boxed(r"\fbox{7}") == "7"
    assert extract_boxed("no box") is None


@pytest.mark.parametrize(
    ("text", "answer", "method"),
    [
        ("She makes $18.\n#### 18", "18", "hashes"),
        ("#### 1,000", "1000", "hashes"),
        ("So the answer is 42.", "42", "phrase"),
        ("The answer is: **18 dollars**.", "18", "phrase"),
        ("Final answer: $\\frac{3}{4}$", "\\frac{3}{4}", "phrase"),
        ("The final answer is 3.5.", "3.5", "phrase"),
        ("I think it is 3, or maybe 4.5 or so", "4.5", "last_number"),
        ("no digits here", None, "none"),
    ],
)
def test_extract_answer(text, answer, method):
    found = extract_answer(text)
    assert (found.answer, found.method) == (answer, method)


def test_boxed_wins_over_phrase():
    assert extract_answer(r"The answer is 5. Actually \boxed{6}").answer == "6"


def test_clean_answer():
    assert clean_answer(" **42**. ") == "42"
    assert clean_answer("$1,234,567$") == "1234567"
    assert clean_answer("[1,2)") == "[1,2)"


def test_gold_answer_formats():
    assert gold_answer("Janet sells 9 eggs.\n#### 1,080", "gsm8k") == "1080"
    assert (
        gold_answer(r"so it is $\boxed{\left( 3, \frac{\pi}{2} \right)}$.")
        == r"\left( 3, \frac{\pi}{2} \right)"
    )
    assert gold_answer(12) == "12"
    with pytest.raises(UserError):
        gold_answer("")


def test_missing_gold_is_user_error():
    with pytest.raises(UserError, match="gold"):
        MathReward(workers=0).score({"question": "q"}, r"\boxed{1}")


# ------------------------------------------------------------------------------------------- grading


def test_grade_answer_equivalences():
    assert grade_answer(r"\frac{1}{2}", "0.5") == (True, "")
    assert grade_answer(r"\{1,2\}", r"\{2,1\}")[0]
    assert grade_answer("[1,2)", "[1,2)")[0]
    assert not grade_answer("[1,2)", "(1,2)")[0]
    assert not grade_answer("18", "19")[0]


def test_fallback_reason_and_sequential_path():
    r = MathReward(workers=0)
    v = r.score({"gold": "7"}, "3 + 4 gives 7")
    assert v.value == 1.0 and "fallback" in v.reason
    assert r.score({"gold": "7"}, "nothing").reason == "no answer found"
    assert r.score({"answer": "#### 7"}, r"\boxed{8}").value == 0.0


def test_trl_call_with_columns(reward):
    completions = [[{"role": "assistant", "content": r"\boxed{5}"}], [{"role": "assistant", "content": "6"}]]
    assert reward(prompts=["p", "p"], completions=completions, answer=["5", "5"], extra=3) == [1.0, 0.0]
    assert reward.__name__ == "math"


def test_gsm8k_gold_rationales_all_correct(reward, data_dir):
    rows = _rows(data_dir / "gsm8k" / "test.jsonl")
    assert len(rows) == 1319
    verdicts = reward.score_batch([{"gold": r["answer"]} for r in rows], [r["answer"] for r in rows])
    wrong = [(r["answer"][-40:], v) for r, v in zip(rows, verdicts, strict=True) if v.value != 1.0]
    assert not wrong, wrong[:5]


def test_gsm8k_perturbed_answers_wrong(reward, data_dir):
    rows = random.Random(0).sample(_rows(data_dir / "gsm8k" / "test.jsonl"), 200)
    completions = []
    for r in rows:
        gold = int(gold_answer(r["answer"], "gsm8k"))
        completions.append(re.sub(r"#### .*$", f"#### {gold + 1}", r["answer"]))
    verdicts = reward.score_batch([{"gold": r["answer"]} for r in rows], completions)
    assert all(v.value == 0.0 for v in verdicts)


def test_math500_gold_answers_correct(reward, data_dir):
    rows = _rows(data_dir / "math500" / "test.jsonl")
    assert len(rows) == 500
    completions = [f"Working omitted. Therefore the result is $\\boxed{{{r['answer']}}}$." for r in rows]
    verdicts = reward.score_batch([{"answer": r["answer"]} for r in rows], completions)
    failures = [
        (r["unique_id"], r["answer"], v.reason) for r, v in zip(rows, verdicts, strict=True) if v.value != 1.0
    ]
    if failures:
        print("MATH-500 exceptions:", failures)
    assert len(failures) <= 2, failures  # target >= 99.5%


def test_math500_solution_column_as_gold(reward, data_dir):
    rows = _rows(data_dir / "math500" / "test.jsonl")[:50]
    verdicts = reward.score_batch(
        [{"solution": r["solution"]} for r in rows], [rf"\boxed{{{r['answer']}}}" for r in rows]
    )
    assert sum(v.value for v in verdicts) >= 49


def test_math500_perturbed_answers_wrong(reward, data_dir):
    rows = _rows(data_dir / "math500" / "test.jsonl")
    rng = random.Random(1)
    sample = rng.sample(rows, 150)
    examples, completions = [], []
    for r in sample:
        answer = r["answer"]
        if re.fullmatch(r"-?\d+", answer):
            wrong = str(int(answer) + 1)
        else:  # another problem's (different-looking) LaTeX answer
            wrong = rng.choice(
                [o["answer"] for o in rows if o["answer"].replace(" ", "") != answer.replace(" ", "")]
            )
            if grade_answer(answer, wrong, None)[0]:
                continue  # the same value spelt differently: not a perturbation
        examples.append({"answer": answer})
        completions.append(rf"\boxed{{{wrong}}}")
    verdicts = reward.score_batch(examples, completions)
    assert len(verdicts) > 140
    assert all(v.value == 0.0 for v in verdicts), [
        (e, c) for e, c, v in zip(examples, completions, verdicts, strict=True) if v.value
    ]


# ------------------------------------------------------------------------------------------- timeouts


def _hang_on_marker(gold: str, pred: str) -> tuple[bool, str]:
    """Injected worker: behaves like the real one except that the answer "999999" hangs."""
    if pred == "999999":
        time.sleep(120)
    return grade_answer(gold, pred)


def _slow_on_marker(gold: str, pred: str) -> tuple[bool, str]:
    """Injected worker: the answer "888888" takes 0.7 s, within a 1.5 s limit but not two of them back to back."""
    if pred == "888888":
        time.sleep(0.7)
    return _hang_on_marker(gold, pred)


def _timeout_batch(r: MathReward) -> list:
    return r.score_batch(
        [{"gold": "5"}] * 4, [r"\boxed{999999}", r"\boxed{5}", r"\boxed{6}", "The answer is 5."]
    )


def test_timeout_returns_zero_and_pool_recovers():
    with MathReward(workers=2, timeout=1.0, worker_fn=_hang_on_marker) as r:
        start = time.monotonic()
        verdicts = _timeout_batch(r)
        assert time.monotonic() - start < 30
        assert [v.value for v in verdicts] == [0.0, 1.0, 0.0, 1.0]
        assert verdicts[0].reason == "timeout"
        assert r.pool is not None and r.pool.restarts >= 1
        assert r.score({"gold": "7"}, r"\boxed{7}").value == 1.0  # the recreated pool works


def test_timeout_off_main_thread():
    out: list = []
    with MathReward(workers=1, timeout=1.0, worker_fn=_hang_on_marker) as r:
        thread = threading.Thread(target=lambda: out.append(_timeout_batch(r)))
        thread.start()
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert [v.reason for v in out[0]][0] == "timeout"
    assert [v.value for v in out[0]] == [0.0, 1.0, 0.0, 1.0]


def test_clock_starts_when_a_worker_picks_the_item_up():
    with MathReward(workers=1, timeout=1.5, worker_fn=_slow_on_marker) as r:
        verdicts = r.score_batch([{"gold": "888888"}] * 3, [r"\boxed{888888}"] * 3)
    assert [v.reason for v in verdicts] == ["correct (boxed)"] * 3


def test_large_batch_with_hangs_keeps_order():
    answers = [str(i) for i in range(40)]
    completions = [rf"\boxed{{{a}}}" for a in answers]
    completions[5] = completions[23] = r"\boxed{999999}"
    completions[30] = r"\boxed{-1}"
    with MathReward(workers=2, timeout=1.0, worker_fn=_hang_on_marker) as r:
        verdicts = r.score_batch([{"gold": a} for a in answers], completions)
        assert r.pool is not None and r.pool.restarts == 2
    assert [i for i, v in enumerate(verdicts) if v.reason == "timeout"] == [5, 23]
    assert [i for i, v in enumerate(verdicts) if v.value == 0.0] == [5, 23, 30]


def test_pathological_expression_times_out():
    with MathReward(workers=1, timeout=2.0) as r:
        assert r.score({"gold": "5"}, r"\boxed{9^{9^{9^{9}}}}").reason == "timeout"
        assert r.score({"gold": "5"}, r"\boxed{5}").value == 1.0


def test_pool_close_and_reuse():
    pool = VerifierPool(workers=1, timeout=5.0)
    with pool:
        assert pool.grade([("2", "2"), ("2", "3")])[0].correct
    assert pool._executor is None
    assert [o.correct for o in pool.grade([("1", "1")])] == [True]  # restarts lazily
    pool.close()
    with pytest.raises(UserError):
        VerifierPool(workers=0)
