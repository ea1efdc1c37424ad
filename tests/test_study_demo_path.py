"""The demo's study path on a tiny model: per-benchmark limits, held-out task items, sampled safety answers that
the certificate scores itself (no certificate sampling), one RLHF beta beside an RLVR sweep, the frontier report;
and the CLI keeps library output in OUT/study.log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rlvr_safety.evaluation import certify as certify_mod
from rlvr_safety.study.grid import plan
from rlvr_safety.study.runner import StudyRunner
from rlvr_safety.study.spec import expand_runs, parse_spec


def demo_like(model_dir: Path, data_dir: Path) -> dict[str, Any]:
    return {
        "name": "tiny-demo",
        "base_models": [str(model_dir)],
        "guard": {"mode": "off"},
        "domains": ["arithmetic"],
        "methods": ["sft", "rlhf:grpo", "rlvr:grpo"],
        "betas": [0.05, 1.0],
        "method_betas": {"rlhf:grpo": [1.0]},
        "train": {"max_steps": 1, "per_device_train_batch_size": 4, "save_steps": 1, "learning_rate": 1e-3,
                  "save_adapter": True, "probe": {"enabled": False}},
        "method_overrides": {"rlvr": {"num_generations": 4, "max_completion_length": 6, "task": {"limit": 16}},
                             "rlhf": {"num_generations": 4, "max_completion_length": 6, "task": {"limit": 16},
                                      "reward_model": {"limit": 8, "max_steps": 1, "max_length": 48,
                                                       "per_device_train_batch_size": 2,
                                                       "lora": {"enabled": True}}},
                             "sft": {"task": {"limit": 16}, "max_length": 96}},
        "eval": {"suites": ["safety5"], "limit": 2, "limits": {"xstest": 4}, "judge": "keyword",
                 "max_new_tokens": 6, "temperature": 1.0, "extra_benchmarks": ["arithmetic"], "capability_limit": 3,
                 "capability_max_new_tokens": 6, "second_judges": []},
        "forecast": {"enabled": False},
        "certificate": {"enabled": True, "source": "eval", "measure": True},
        "data_dir": str(data_dir),
    }


def test_spec_rules() -> None:
    spec = parse_spec(demo_like(Path("m"), Path("d")) | {"base_models": ["default"]}, "test")
    runs = expand_runs(spec)
    assert [(r.method, r.beta) for r in runs] == [("sft", None), ("rlhf", 1.0), ("rlvr", 0.05), ("rlvr", 1.0)]
    certify = {s.id: s.deps for s in plan(spec) if s.kind == "certify"}
    assert all(f"eval:{sid.removeprefix('certify:')}" in deps and "eval:default_reference" in deps
               for sid, deps in certify.items())
    bad = demo_like(Path("m"), Path("d")) | {"base_models": ["default"]}
    bad["eval"] = {**bad["eval"], "temperature": 0.0}
    with pytest.raises(Exception, match="certificate.source: eval needs eval.temperature: 1"):
        parse_spec(bad, "test")
    with pytest.raises(Exception, match="method_betas.rlvr:rloo: not an RL method"):
        parse_spec(demo_like(Path("m"), Path("d")) | {"method_betas": {"rlvr:rloo": [1.0]}}, "test")


def test_tiny_demo_path(tiny_model_dir: Path, data_dir: Path, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))

    def no_generation(*a: Any, **k: Any) -> Any:
        raise AssertionError("the certificate must score the eval's samples, not draw its own")

    monkeypatch.setattr(certify_mod._Lazy, "generator", no_generation)
    cfg = demo_like(tiny_model_dir, data_dir)
    cfg["forecast"] = {"enabled": True, "k": 2, "limit": 2, "max_new_tokens": 4}
    spec = parse_spec(cfg, "test")
    StudyRunner(spec, tmp_path, progress=False).run()
    # the forecasts at both betas reweight one set of reference samples
    fc = next((tmp_path / "forecast").iterdir())
    assert {f.name for f in fc.glob("forecast_b*.json")} == {"forecast_b0.05.json", "forecast_b1.json"}
    import sqlite3

    with sqlite3.connect(fc / "store.sqlite") as c:
        assert c.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 2 * 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    models = {m["id"]: m for m in summary["models"]}
    rl = next(m for m in models.values() if m["method"] == "rlvr" and m["beta"] == 0.05)
    assert (Path(rl["path"]) / "adapter_config.json").exists()  # runs are adapters over the reference
    ev = rl["eval"]
    assert ev["harmbench"]["refusal_rate"]["n"] == 2 and ev["xstest"]["refusal_rate"]["n"] == 2
    assert ev["xstest"]["over_refusal_rate"]["n"] == 2 and ev["arithmetic"]["accuracy"]["n"] == 3
    assert set(ev["arithmetic"]["correct_by_item"]) and all(k.startswith("arithmetic/") for k in
                                                              ev["arithmetic"]["correct_by_item"])
    # held out: no evaluated arithmetic question is one the runs trained on (seed 0, 16 items)
    from rlvr_safety.data.arithmetic import generate_problems

    trained = {p["question"] for p in generate_problems(n=16, seed=0, level=1)}
    metrics = json.loads((tmp_path / "evals" / rl["id"] / "metrics_all.json").read_text())
    assert metrics["heldout_tasks"]["arithmetic"]["seed"] == 4242
    with sqlite3.connect(tmp_path / "evals" / rl["id"] / "store.sqlite") as c:
        prompts = [r[0] for r in c.execute("SELECT prompt FROM generations WHERE benchmark='arithmetic'")]
    assert len(prompts) == 3 and not any(p.split("\n")[0] in trained for p in prompts)
    cert = rl["certificate"]["overall"]
    assert cert["n_sequences"] == 2 * 5 - 2 + 2 - 2 or cert["n_sequences"] == 10  # 2 harmful per benchmark
    assert rl["certificate"]["measured"]["s_policy"] == pytest.approx(
        sum(ev[b]["refusal_rate"]["k"] for b in ev if "refusal_rate" in ev[b]) / 10)
    md = (tmp_path / "report.md").read_text()
    assert md.index("## Frontier") < md.index("## Findings") and (tmp_path / "plots" / "frontier.png").exists()


def test_cli_keeps_library_output_in_the_log(tiny_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    cfg = demo_like(tiny_model_dir, data_dir)
    cfg["methods"], cfg["betas"], cfg["method_betas"] = ["rlvr:grpo"], [1.0], {}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "rlvr_safety.cli", "study", "--config", str(tmp_path / "spec.yaml"),
                          "--out", str(out)], capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    terminal = res.stdout + res.stderr
    for noise in ("Warning", "Loading weights", "{'loss'", "'train_runtime'", "it/s]"):
        assert noise not in terminal, noise
    log = (out / "study.log").read_text()
    assert "train_runtime" in log  # the trainer's log dicts went to the log file
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    assert "report:" in lines[-1] and str(out / "report.html") in lines[-1]
    assert any(line.startswith("Reference") for line in lines)


def test_guard_stage_checks_an_adapter_instead_of_training(tiny_model_dir: Path, data_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from rlvr_safety.errors import UserError
    from rlvr_safety.training import run_recipe

    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))
    adapter = Path(run_recipe("sft", None, [f"model={tiny_model_dir}", "max_steps=1", "per_device_train_batch_size=2",
                                            "task.limit=2", "probe.enabled=false", "save_adapter=true"],
                              tmp_path / "adapter")["model"])
    (adapter / "provenance.json").write_text(json.dumps({"heldout_refusal": [{"rate": 1.0}], "config": {}}))
    cfg = demo_like(tiny_model_dir, data_dir)
    cfg["guard"] = {"mode": "on", "adapter": str(adapter), "threshold": 0.0, "probe_n": 3,
                    "config": {"heldout": 4, "n_harmful": 8}}

    def no_training(*a: Any, **k: Any) -> Any:
        raise AssertionError("the guard stage must check the adapter, not train")

    runner = StudyRunner(parse_spec(cfg, "test"), tmp_path / "study", progress=False)
    monkeypatch.setattr(runner, "_train_recipe", no_training)
    runner.run_stages([runner.stages[0].id])
    art = runner.artifacts(runner.stages[0].id)
    assert art["guarded"] and art["check"]["n"] == 3 and art["adapter"] == str(adapter)
    ref = Path(art["reference"])
    assert json.loads((ref / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)
    # a guard that does not refuse enough fails with one line naming the way out
    from rlvr_safety.judges import registry
    from rlvr_safety.judges.base import Verdict

    class Complies:
        name, version = "complies", "1"

        def judge(self, prompts: list[str], responses: list[str]) -> list[Verdict]:
            return [Verdict(False, 1.0, "full_compliance", self.name, self.version) for _ in prompts]

    monkeypatch.setattr(registry, "build_judge", lambda *a, **k: Complies())
    cfg["guard"]["threshold"] = 0.5
    runner = StudyRunner(parse_spec(cfg, "test"), tmp_path / "study2", progress=False)
    with pytest.raises(UserError, match="guard.mode: train"):
        runner.run_stages([runner.stages[0].id])
