"""Code reward: extraction, program assembly, sandbox verdicts, and HumanEval/MBPP reference solutions."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.rewards.code import (
    CodeReward,
    CodeTask,
    build_program,
    example_tests,
    extract_code,
    run_batch,
    run_tests,
)
from rlvr_safety.rewards.registry import get_reward


@pytest.fixture(scope="module")
def humaneval(data_dir):
    with gzip.open(data_dir / "humaneval" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def mbpp(data_dir):
    with open(data_dir / "mbpp" / "mbpp.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ------------------------------------------------------------------------------------------------ extraction


def test_extract_code_prefers_fenced_python():
    text = "Sure!\n```python\ndef f(x):\n    return x\n```\nThat is all."
    assert extract_code(text) == "def f(x):\n    return x\n"
    assert extract_code("def f(x): return 1") == "def f(x): return 1"  # no fence: raw text
    assert extract_code("```\nprint(1)\n```") == "print(1)\n"  # untagged fence counts as Python
    assert extract_code("```bash\nls\n```") == "```bash\nls\n```"  # non-Python fences are not code


def test_extract_code_picks_the_block_defining_the_entry_point():
    text = "```python\ndef f(x):\n    return 2\n```\nUsage:\n```python\nprint(f(1))\n```"
    assert "def f" in extract_code(text, "f")
    assert extract_code(text) == "print(f(1))\n"  # without an entry point: the last block
    assert extract_code("```python\ndef f():\n    return 1\n", "f") == "def f():\n    return 1\n"  # truncated


def test_build_program_body_and_full_definition():
    ex = {"prompt": "import math\n\ndef f(x):\n    '''doc'''\n", "entry_point": "f"}
    body = build_program(ex, "    return math.floor(x)\n")
    assert body.startswith("import math") and body.endswith("    return math.floor(x)\n")
    full = build_program(ex, "```python\ndef f(x):\n    return math.ceil(x)\n```")
    assert full.startswith("import math") and "return math.ceil(x)" in full
    assert run_tests(body, ["assert f(1.5) == 1"]).passed and run_tests(full, ["assert f(1.5) == 2"]).passed
    assert build_program({"entry_point": "f"}, "def f(): pass") == "def f(): pass"  # no prompt
    assert build_program({"test_setup_code": "X = 1", "tests": []}, "y = X").startswith("X = 1\ny = X")


def test_example_tests_sources():
    assert example_tests({"tests": ["assert 1"]}) == ["assert 1"]
    assert example_tests({"test": "def check(c): pass"}) == "def check(c): pass"
    assert example_tests({"extra": {"test_list": ("assert 1",)}}) == ["assert 1"]
    with pytest.raises(UserError, match="no tests"):
        example_tests({"prompt": "x"})


# ------------------------------------------------------------------------------------------------ sandbox


def test_statuses():
    assert run_tests("def f(x):\n    return x + 1\n", ["assert f(1) == 2"]).status == "passed"
    failed = run_tests("def f(x):\n    return x\n", ["assert f(1) == 2", "assert f(3) == 4"])
    assert failed.status == "failed" and "test 0" in failed.reason and "assert f(1) == 2" in failed.reason
    assert run_tests("def f(:\n", ["assert True"]).status == "error"  # syntax error
    assert (
        run_tests("x = 1", "def check(c):\n    pass\n", entry_point="f").status == "error"
    )  # no entry point
    assert run_tests("while True: pass", ["assert True"], timeout_s=1.0).status == "timeout"
    killed = run_tests("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", ["assert True"])
    assert killed.status == "killed" and killed.reason == "killed by SIGSEGV"


def test_output_is_captured():
    r = run_tests("print('hello')\nimport sys\nprint('oops', file=sys.stderr)", ["assert True"])
    assert r.passed and "hello" in r.output and "oops" in r.output and r.duration_s > 0


def test_humaneval_style_check_and_plain_test_code():
    check = "def check(candidate):\n    assert candidate(2) == 4\n"
    assert run_tests("def sq(x):\n    return x * x\n", check, "sq").passed
    assert not run_tests("def sq(x):\n    return x + x + 1\n", check, "sq").passed
    assert run_tests("def sq(x):\n    return x * x\n", "assert sq(3) == 9\n").passed  # no check(): plain code


def test_plain_data_from_stdlib_passes_the_return_guard():
    program = (
        "from fractions import Fraction\nfrom collections import Counter, OrderedDict, namedtuple\n"
        "def f():\n    return [Fraction(1, 2), Counter('aab'), OrderedDict(a=1), (1.5, None, {'k': {1, 2}})]\n"
    )
    tests = ["assert f()[0] == Fraction(1, 2) and f()[1]['a'] == 2 and f()[3][2]['k'] == {1, 2}"]
    assert run_tests(program, tests).passed
    assert not run_tests("class A:\n    pass\ndef f():\n    return A()\n", ["assert f() is not None"]).passed
    assert run_tests(
        "class A:\n    pass\ndef f():\n    return A()\n", ["assert f()"], guard_returns=False
    ).passed


def test_run_batch_keeps_order_and_accepts_mappings():
    items = [
        CodeTask(f"def f():\n    return {i}\n", [f"assert f() == {i if i % 2 else -1}"]) for i in range(6)
    ]
    items.append({"program": "x = 1", "tests": ["assert x == 1"]})
    results = run_batch(items, max_workers=3)
    assert [r.passed for r in results] == [False, True, False, True, False, True, True]
    assert run_batch([]) == []


# ------------------------------------------------------------------------------------------------ reward


def test_code_reward_score_and_trl_call(humaneval):
    reward = get_reward("code", timeout=5.0)
    assert isinstance(reward, CodeReward) and reward.name == "code"
    ex = humaneval[0]
    good = reward.score(ex, "```python\n" + ex["prompt"] + ex["canonical_solution"] + "```")
    assert good.value == 1.0 and good.reason.startswith("passed") and "def has_close_elements" in good.parsed
    bad = reward.score(ex, "    return False\n")
    assert bad.value == 0.0 and bad.reason.startswith("failed")
    n = 3
    values = reward(
        prompts=[ex["prompt"]] * n,
        completions=[
            ex["canonical_solution"],
            [{"role": "assistant", "content": "    return True\n"}],
            "nonsense(",
        ],
        test=[ex["test"]] * n,
        entry_point=[ex["entry_point"]] * n,
        prompt=[ex["prompt"]] * n,
    )
    assert values == [1.0, 0.0, 0.0]
    mbpp_style = {"extra": {"test_list": ["assert add(2, 3) == 5"]}}
    assert reward.score(mbpp_style, "```python\ndef add(a, b):\n    return a + b\n```").value == 1.0
    with pytest.raises(UserError):
        CodeReward(timeout=0)


@pytest.mark.slow
def test_humaneval_canonical_solutions_pass_and_broken_ones_fail(humaneval):
    t = time.monotonic()
    good = [
        CodeTask(r["prompt"] + r["canonical_solution"], r["test"], r["entry_point"], 10.0) for r in humaneval
    ]
    broken = [
        CodeTask(r["prompt"] + "    return None\n", r["test"], r["entry_point"], 10.0) for r in humaneval
    ]
    raising = [
        CodeTask(r["prompt"] + "    raise ValueError\n", r["test"], r["entry_point"], 10.0) for r in humaneval
    ]
    results = run_batch(good + broken + raising)
    elapsed = time.monotonic() - t
    n = len(humaneval)
    failures = [
        (r["task_id"], res.status, res.reason)
        for r, res in zip(humaneval, results[:n], strict=True)
        if not res.passed
    ]
    assert n == 164 and failures == []
    assert not any(res.passed for res in results[n:]), [r.reason for r in results[n:] if r.passed]
    print(f"HumanEval: {n} canonical passed, {2 * n} broken failed, {3 * n} runs in {elapsed:.1f}s")


@pytest.mark.slow
def test_mbpp_reference_solutions_sample(mbpp):
    sample = mbpp[::10]
    tasks = [CodeTask(r["test_setup_code"] + "\n" + r["code"], r["test_list"], None, 10.0) for r in sample]
    results = run_batch(tasks)
    failed = [(r["task_id"], res.reason) for r, res in zip(sample, results, strict=True) if not res.passed]
    # Two MBPP reference solutions use a class (Node) that the dataset never defines: tasks 367 and 927.
    assert all(task_id in (367, 927) for task_id, _ in failed), failed
