"""Evaluation: metrics from stored verdicts, resume without regeneration, and the metrics.json contract."""

from __future__ import annotations

import json

import pytest

from rlvr_safety.evaluation import runner
from rlvr_safety.evaluation.configs import EvalConfig
from rlvr_safety.evaluation.metrics import SafetyItem, accuracy_metrics, safety_metrics
from rlvr_safety.evaluation.runner import run_eval
from rlvr_safety.stats import wilson_interval
from rlvr_safety.store import Store


def test_wilson_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_safety_metrics_excludes_judge_errors_and_splits_labels():
    items = [SafetyItem("harmful", True, 0.0), SafetyItem("harmful", False, 1.0), SafetyItem("harmful", None, None),
             SafetyItem("benign", True, 0.0), SafetyItem("benign", False, 1.0), SafetyItem("benign", False, 1.0)]
    m = safety_metrics(items)
    assert m["n"] == 6 and m["judged"] == 5 and m["judge_errors"] == 1
    assert m["refusal_rate"]["rate"] == 0.5 and m["refusal_rate"]["n"] == 2
    assert m["harmful_rate"]["rate"] == 0.5
    assert m["over_refusal_rate"]["rate"] == pytest.approx(1 / 3)
    assert m["safety_score"] == 0.5


def test_accuracy_metrics():
    m = accuracy_metrics([1.0, 0.0, 1.0, 1.0])
    assert m["accuracy"]["rate"] == 0.75 and m["n"] == 4


def _spec(tiny_model_dir, tmp_path, data_dir, benchmarks, limit=4):
    return EvalConfig(model=str(tiny_model_dir), benchmarks=benchmarks, limit=limit, data_dir=data_dir,
                      judge="keyword", max_new_tokens=6, capability_max_new_tokens=6, batch_size=4), tmp_path / "ev"


def test_eval_end_to_end_tiny_and_resume(tiny_model_dir, tmp_path, data_dir, monkeypatch):
    spec, out = _spec(tiny_model_dir, tmp_path, data_dir, ["xstest", "gsm8k", "harmbench"])
    payload = run_eval(spec, out, progress=False)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["benchmarks"].keys() == {"xstest", "gsm8k", "harmbench"}
    x = on_disk["benchmarks"]["xstest"]
    assert x["n"] == 4 and "over_refusal_rate" in x and "refusal_rate" in x
    assert x["judge"]["name"] == "keyword" and x["judge"]["version"]
    g = on_disk["benchmarks"]["gsm8k"]
    assert g["n"] == 4 and g["grader"] == "gsm8k" and 0 <= g["accuracy"]["rate"] <= 1
    h = on_disk["benchmarks"]["harmbench"]
    assert h["refusal_rate"]["n"] == 4
    assert h["refusal_rate"]["rate"] + h["harmful_rate"]["rate"] == pytest.approx(1.0)
    with Store(out / "store.sqlite") as store:
        assert store.query("SELECT COUNT(*) AS c FROM generations")[0]["c"] == 12
        assert store.query("SELECT COUNT(*) AS c FROM judgments")[0]["c"] == 8
        assert store.query("SELECT COUNT(*) AS c FROM grades")[0]["c"] == 4

    def no_generation(*a, **k):
        raise AssertionError("a fully stored run must not load a model")

    monkeypatch.setattr(runner, "get_generator", no_generation)
    again = run_eval(spec, out, progress=False)
    assert again["benchmarks"] == payload["benchmarks"]


def test_eval_killed_midway_resumes_only_missing(tiny_model_dir, tmp_path, data_dir, monkeypatch):
    """A crash after the first chunk keeps that chunk; the rerun generates exactly the rest."""
    spec, out = _spec(tiny_model_dir, tmp_path, data_dir, ["strongreject"], limit=10)
    real = runner.get_generator
    calls: list[int] = []

    class Crashing:
        def __init__(self, inner):
            self.inner, self.backend = inner, inner.backend

        def generate(self, prompts, params, progress=True):
            if calls:
                raise KeyboardInterrupt
            calls.append(len(prompts))
            return self.inner.generate(prompts, params, progress)

    monkeypatch.setattr(runner, "get_generator", lambda *a, **k: Crashing(real(*a, **k)))
    with pytest.raises(KeyboardInterrupt):
        run_eval(spec, out, progress=False)
    with Store(out / "store.sqlite") as store:
        stored = store.query("SELECT COUNT(*) AS c FROM generations")[0]["c"]
    assert stored == calls[0] == 8  # one chunk = 2 x batch_size

    seen: list[int] = []

    class Counting(Crashing):
        def generate(self, prompts, params, progress=True):
            seen.append(len(prompts))
            return self.inner.generate(prompts, params, progress)

    monkeypatch.setattr(runner, "get_generator", lambda *a, **k: Counting(real(*a, **k)))
    payload = run_eval(spec, out, progress=False)
    assert sum(seen) == 2
    assert payload["benchmarks"]["strongreject"]["n"] == 10
