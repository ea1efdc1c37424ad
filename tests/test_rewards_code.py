"""Code reward: extraction, program assembly, sandbox verdicts, and HumanEval/MBPP reference solutions."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from rlvr_safety.data.registry import load_benchmark
from rlvr_safety.data.tasks import CODE_PREFIX, TASKS, grading_example
from rlvr_safety.errors import UserError
from rlvr_safety.rewards.code import (
    CodeResult,
    CodeReward,
    CodeTask,
    build_program,
    example_tests,
    extract_code,
    run_batch,
    run_tests,
    trusted_context,
)
from rlvr_safety.rewards.registry import get_reward


def timed_out(r: CodeResult) -> bool:
    """A timeout: final, or (on a machine busy with other work) an infrastructure error to redo later."""
    return r.status == "timeout" or (r.infra_error and "timeout under load" in r.reason)


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
    assert trusted_context(ex) == ex["prompt"]  # HumanEval's prompt also runs on the trusted side, before the tests


def test_an_english_prompt_is_never_put_in_front_of_the_program():
    """MBPP's prompt is English (plus the asserts): prepending it made every MBPP item a SyntaxError."""
    ex = {"prompt": "Write a function to add two numbers.\nYour code should pass these tests:\nassert add(1, 2) == 3",
          "entry_point": "add", "tests": ["assert add(1, 2) == 3"]}
    code = "```python\ndef add(a, b):\n    return a + b\n```"
    assert build_program(ex, code) == "def add(a, b):\n    return a + b\n"
    assert trusted_context(ex) == ""
    assert CodeReward().score(ex, code).value == 1.0
    # The prompt as eval shows it to the model (an English line, then HumanEval's code): only the code is used.
    humaneval_style = {"prompt": CODE_PREFIX + 'import math\n\ndef f(x):\n    """doc"""\n', "entry_point": "f"}
    assert build_program(humaneval_style, "    return math.floor(x)\n").startswith("import math\n")
    assert trusted_context(humaneval_style).startswith("import math\n")


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
    assert timed_out(run_tests("while True: pass", ["assert True"], timeout_s=1.0))
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


def test_plain_data_crosses_and_program_objects_do_not():
    program = (
        "import re\nfrom collections import Counter, OrderedDict, namedtuple, defaultdict\n"
        "P = namedtuple('P', 'x y')\n"
        "def f():\n    return [Counter('aab'), OrderedDict(a=1), P(1, 2), (1.5, None, {'k': {1, 2}}), b'x', 10**5000,\n"
        "            float('inf'), -0.0, 'caf\\u00e9', {(1, 2): frozenset({3})}, range(3), 2j, defaultdict(int, a=1)]\n"
        "def g():\n    return (i * i for i in range(3))\n"
        "def h(s):\n    return re.match('a', s)\n"
    )
    tests = [
        "r = f()",
        "assert r[0] == {'a': 2, 'b': 1} and r[1] == {'a': 1} and r[2] == (1, 2) and r[3][2]['k'] == {1, 2}",
        "assert r[4] == b'x' and r[5] == 10**5000 and r[6] == float('inf') and str(r[7]) == '-0.0' and r[8] == 'café'",
        "assert r[9] == {(1, 2): frozenset({3})} and r[10] == range(3) and r[11] == 2j and type(r[12]) is dict",
        "assert g() != [0, 1, 4] and list(g()) == [0, 1, 4]",  # an iterator stays an iterator
        "assert h('abc') and not h('xyz') and h('abc') != h('abc')",  # a match: truthy, equal to nothing else
    ]
    res = run_tests(program, tests)
    assert res.passed, res.reason
    for value, why in [("A()", "A object"), ("Fraction(1, 2)", "Fraction object"), ("[object()]", "object")]:
        prog = f"from fractions import Fraction\nclass A:\n    pass\ndef f():\n    return {value}\n"
        res = run_tests(prog, ["assert f() is not None"])
        assert res.status == "failed" and "not plain data" in res.reason and why in res.reason, res.reason


def test_calls_forward_arguments_keywords_and_exceptions():
    program = (
        "def f(a, *rest, k=0, **kw):\n"
        "    if a == 'boom':\n        raise ValueError('no boom')\n"
        "    if a == 'stop':\n        raise StopIteration\n"
        "    return [a, list(rest), k, sorted(kw.items())]\n"
    )
    tests = [
        "assert f(1, 2, (3,), k={4}, z=None) == [1, [2, (3,)], {4}, [('z', None)]]",
        "try:\n    f('boom')\nexcept ValueError as e:\n    assert 'no boom' in str(e)\nelse:\n    assert False",
        # StopIteration would end map() early and silently: it arrives as a RuntimeError.
        "try:\n    list(map(f, ['stop']))\nexcept RuntimeError:\n    pass\nelse:\n    assert False",
    ]
    res = run_tests(program, tests)
    assert res.passed, res.reason
    res = run_tests(program, ["f(lambda: 1)"])  # the tests cannot pass code to the program either
    assert res.status == "failed" and "cannot pass this argument" in res.reason


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


# ------------------------------------------------------------------------------------------------ grading paths
# As users run them: records from the registry -> grading_example -> CodeReward (the code path of eval,
# forecast and the study). Gold solutions pass, broken ones fail, for every benchmark with code tasks.

CODE_BENCHMARKS = sorted(name for name, task in TASKS.items() if task.grader == "code")


def _gold_completion(record) -> str:
    if record.benchmark == "humaneval":
        return "```python\n" + record.prompt + record.extra["canonical_solution"] + "```"
    return "```python\n" + record.extra["code"] + "\n```"


def _broken_completions(record) -> list[str]:
    return [
        f"```python\ndef {record.entry_point}(*args, **kwargs):\n    return None\n```",
        f"```python\ndef {record.entry_point}(*args, **kwargs):\n    raise ValueError\n```",
    ]


def test_every_code_benchmark_is_covered_here():
    assert CODE_BENCHMARKS == ["humaneval", "mbpp"]


@pytest.mark.parametrize("benchmark", CODE_BENCHMARKS)
def test_grading_path_sample(benchmark):
    """A few items per benchmark, fast: the MBPP SyntaxError (English prompt prepended) fails this at once."""
    records = load_benchmark(benchmark)[::60]
    examples = [grading_example(r) for r in records]
    reward = CodeReward(timeout=10.0)
    good = reward.score_batch(examples, [_gold_completion(r) for r in records])
    assert [(r.id, v.reason) for r, v in zip(records, good, strict=True) if v.value != 1.0] == []
    broken = reward.score_batch(examples, [_broken_completions(r)[0] for r in records])
    assert [v.value for v in broken] == [0.0] * len(records)


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", CODE_BENCHMARKS)
def test_grading_path_gold_solutions_pass_and_broken_ones_fail(benchmark):
    t = time.monotonic()
    records = load_benchmark(benchmark)
    examples = [grading_example(r) for r in records]
    reward = CodeReward(timeout=10.0)
    good = reward.score_batch(examples, [_gold_completion(r) for r in records])
    failures = [(r.id, v.reason) for r, v in zip(records, good, strict=True) if v.value != 1.0]
    # Every third item gets both broken variants (all of them would double the run time for little).
    sample = records[::3]
    broken = reward.score_batch(
        [grading_example(r) for r in sample for _ in range(2)], [c for r in sample for c in _broken_completions(r)]
    )
    elapsed = time.monotonic() - t
    assert failures == []  # MBPP sanitized: all 427 (tasks 367 and 927, broken upstream, are not in this file)
    assert [v.reason for v in broken if v.value != 0.0] == []
    print(f"{benchmark}: {len(records)}/{len(records)} gold passed, {len(broken)} broken failed, {elapsed:.1f}s")
