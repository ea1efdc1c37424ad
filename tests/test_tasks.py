"""One task definition (data/tasks.py) serves training, the forecast and evaluation: the forecast samples the
training prompts byte for byte, evaluation renders the benchmark's own prompt, and the verifier gets its columns."""

from __future__ import annotations

import json

import pytest

from rlvr_safety.data import load_benchmark
from rlvr_safety.data.arithmetic import ANSWER_INSTRUCTION
from rlvr_safety.data.tasks import (
    CODE_PREFIX,
    DOMAINS,
    MATH_SUFFIX,
    TASKS,
    TaskConfig,
    eval_prompt,
    grader_for,
    training_prompt,
    training_reward,
)
from rlvr_safety.evaluation.forecast import forecast_records
from rlvr_safety.rewards.registry import TASK_REWARDS
from rlvr_safety.study.spec import forecast_run, parse_spec
from rlvr_safety.training.task_data import task_items


@pytest.mark.parametrize(("domain", "task_overrides"), [
    ("arithmetic", {}),
    ("arithmetic", {"level": 2, "instruction": "Reply with the number only."}),
    ("gsm8k", {}),
    ("math", {"instruction": ""}),
    ("code", {}),
])
def test_the_forecast_samples_the_training_prompts_byte_for_byte(data_dir, domain, task_overrides):
    spec = parse_spec({"domains": [domain], "methods": ["sft", "rlvr:grpo"], "seeds": [3],
                       "method_overrides": {"rlvr": {"task": task_overrides}}, "forecast": {"limit": 5},
                       "data_dir": str(data_dir)}, "test")
    run = forecast_run(spec, "default", domain, 0.05)
    cfg = spec.run_config(run)
    fc = spec.forecast_config("default", domain, 0.05)  # what the study's forecast stage runs
    assert (fc.task_config, fc.seed, fc.limit) == (cfg.task, run.seed, 5)
    sampled = forecast_records(fc.task, limit=fc.limit, seed=fc.seed, data_dir=fc.data_dir,
                               instruction=fc.instruction, task_config=fc.task_config)
    forecast_prompts = [p for pairs in sampled.values() for _, p in pairs]
    trained = [it.prompt for it in task_items(cfg.task, seed=run.seed, data_dir=str(data_dir))]
    assert len(forecast_prompts) == 5
    assert [p.encode() for p in forecast_prompts] == [p.encode() for p in trained[:5]]


def test_training_and_evaluation_prompts_per_task_kind(data_dir):
    gsm = load_benchmark("gsm8k-train", data_dir=data_dir, limit=1)[0]
    assert eval_prompt(gsm) == gsm.prompt + MATH_SUFFIX
    assert training_prompt(gsm) == f"{gsm.prompt}\n{ANSWER_INSTRUCTION}"
    assert training_prompt(gsm, "") == gsm.prompt
    human = load_benchmark("humaneval", data_dir=data_dir, limit=1)[0]
    assert eval_prompt(human) == CODE_PREFIX + human.prompt == training_prompt(human)
    for name in ("mbpp", "ifeval"):  # no math answer-format line is ever appended to code or IFEval prompts
        record = load_benchmark(name, data_dir=data_dir, limit=1)[0]
        assert training_prompt(record) == eval_prompt(record) == record.prompt
    harmful = load_benchmark("harmbench", data_dir=data_dir, limit=1)[0]
    assert training_prompt(harmful, "anything") == eval_prompt(harmful) == harmful.prompt and grader_for(
        "harmbench") is None


def test_one_task_table_gives_every_reward_map():
    assert {domain: TASK_REWARDS[domain] for domain in DOMAINS} == {
        "arithmetic": "arithmetic", "gsm8k": "gsm8k", "math": "math", "code": "code", "ifeval": "ifeval-rl"}
    assert all(TASK_REWARDS[name] == task.train_reward for name, task in TASKS.items())
    assert grader_for("ifeval") == "ifeval" and training_reward("ifeval") == "ifeval-rl"
    assert grader_for("gsm8k+rot13") == "gsm8k"


def test_code_tasks_train_with_their_tests(data_dir):
    """mbpp has no gold answer: its items carry the tests, and the reward reads them from the dataset column."""
    from rlvr_safety.rewards.base import TASK_EXAMPLE_COLUMN, Reward, RewardVerdict

    items = task_items(TaskConfig(name="mbpp", limit=2), seed=0, data_dir=str(data_dir))
    assert items[0].gold is None and items[0].example["tests"]

    class Seen(Reward):
        def __init__(self) -> None:
            self.examples: list[dict] = []

        def score(self, example, completion):  # type: ignore[no-untyped-def]
            self.examples.append(dict(example))
            return RewardVerdict(1.0)

    seen = Seen()
    seen(["p"], ["c"], **{"id": [items[0].id], TASK_EXAMPLE_COLUMN: [items[0].example_json()]})
    assert seen.examples[0]["tests"] == json.loads(items[0].example_json())["tests"]
    assert seen.examples[0]["entry_point"] == items[0].example["entry_point"]


def test_task_level_is_range_checked_once():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="level"):
        TaskConfig(level=4)
