"""inspect_ai integration, offline on inspect's mock model: `rlvr_safety/<benchmark>` tasks resolve through the entry
point, our judge and verifier score them, and `rlvr-safety eval --inspect-log` judges and grades the log.

The mock model answers from a function of the prompt and reports its own token usage: mockllm otherwise estimates
usage with tiktoken's o200k_base file, which it downloads (not reachable offline).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import Task  # noqa: E402
from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.dataset import MemoryDataset, Sample  # noqa: E402
from inspect_ai.model import ModelOutput, ModelUsage, get_model  # noqa: E402
from inspect_ai.solver import generate  # noqa: E402

from rlvr_safety import cli  # noqa: E402
from rlvr_safety.data import load_benchmark  # noqa: E402
from rlvr_safety.data.tasks import eval_prompt  # noqa: E402
from rlvr_safety.errors import UserError  # noqa: E402
from rlvr_safety.integrations.inspect_log import eval_inspect_log  # noqa: E402
from rlvr_safety.integrations.inspect_tasks import TASKS  # noqa: E402


def mock_model(answers: dict[str, str]):
    """mockllm answering each prompt from `answers` ("Sure." otherwise), with its usage filled in."""

    def respond(messages, tools, tool_choice, config):
        out = ModelOutput.from_content("mockllm/model", answers.get(messages[-1].text, "Sure."))
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    return get_model("mockllm/model", custom_outputs=respond, memoize=False)


def run(task, model, tmp_path: Path, **kwargs):
    (log,) = inspect_eval(task, model=model, log_dir=str(tmp_path / "logs"), display="none", **kwargs)
    assert log.status == "success", log.error
    return log


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["rlvr-safety", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


def test_every_gradable_benchmark_is_a_task():
    assert {"harmbench", "xstest", "do-not-answer", "gsm8k", "humaneval", "ifeval"} <= set(TASKS)
    assert "hh-rlhf-helpful" not in TASKS  # preference pairs: nothing to grade


def test_harmbench_on_mock_model_then_rlvr_safety_eval_reads_the_log(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))
    first, second = load_benchmark("harmbench", limit=2)
    model = mock_model({eval_prompt(first): "I'm sorry, but I can't help with that.",
                        eval_prompt(second): "Sure, here is a detailed step-by-step guide."})
    log = run("rlvr_safety/harmbench", model, tmp_path, limit=2, epochs=2, task_args={"judge": "keyword"})
    assert log.eval.task == "rlvr_safety/harmbench" and len(log.samples) == 4
    values = {(s.id, s.epoch): s.scores["refusal_judge"].value for s in log.samples}
    assert values == {(first.id, 1): 1.0, (first.id, 2): 1.0, (second.id, 1): 0.0, (second.id, 2): 0.0}
    metrics = log.results.scores[0].metrics
    assert metrics["refusal_rate_harmful"].value == pytest.approx(0.5)

    code, out, err = run_cli(monkeypatch, capsys, "eval", "--inspect-log", log.location, "--judge", "keyword",
                             "--out", str(tmp_path / "eval"))
    assert code == 0, err
    payload = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    hb = payload["benchmarks"]["harmbench"]
    assert hb["n"] == 4 and hb["refusal_rate"]["k"] == 2 and hb["judge"]["name"] == "keyword"
    assert payload["inspect"]["epochs"] == 2 and payload["inspect"]["samples_left_out"] == 0
    assert payload["inspect"]["scores"]["refusal_judge"]["refusal_rate_harmful"] == pytest.approx(0.5)
    assert "harmbench" in out


def test_gsm8k_scored_by_the_verifier(data_dir, tmp_path):
    right, wrong = load_benchmark("gsm8k", data_dir=data_dir, limit=2)
    model = mock_model({eval_prompt(right): f"So the answer is \\boxed{{{right.gold}}}.",
                        eval_prompt(wrong): "The answer is \\boxed{-1}."})
    log = run("rlvr_safety/gsm8k", model, tmp_path, limit=2, task_args={"data_dir": str(data_dir)})
    values = {s.id: s.scores["verifier"].value for s in log.samples}
    assert values == {right.id: 1.0, wrong.id: 0.0}
    assert log.results.scores[0].metrics["mean"].value == pytest.approx(0.5)
    payload = eval_inspect_log(Path(log.location), tmp_path / "eval")
    assert payload["benchmarks"]["gsm8k"]["accuracy"]["k"] == 1 and payload["benchmarks"]["gsm8k"]["grader"] == "gsm8k"


def test_a_log_of_another_task_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    foreign = Task(dataset=MemoryDataset([Sample(input="hello", id="x")]), solver=generate())
    log = run(foreign, mock_model({}), tmp_path)
    with pytest.raises(UserError, match="carries no rlvr_safety record"):
        eval_inspect_log(Path(log.location), tmp_path / "eval")
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # as without the inspect extra
    code, out, err = run_cli(monkeypatch, capsys, "eval", "--inspect-log", log.location, "--out", str(tmp_path / "e"))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "inspect extra" in lines[0], err
