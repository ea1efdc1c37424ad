"""The study records which objective each run optimised and pairs the forecast only with runs it describes (rlvr
with kl_mode=reward); the report says why the others are not paired."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlvr_safety.report import load_summary
from rlvr_safety.report.objective import forecast_drift, objective_notes
from rlvr_safety.report.schema import ModelEntry, StudyInfo, Summary
from rlvr_safety.study.runner import StudyRunner
from rlvr_safety.study.spec import parse_spec
from rlvr_safety.study.summary import forecast_pairing


def test_pairing_rules() -> None:
    assert forecast_pairing("rlvr", "tilt") is None
    assert "kl_mode=loss" in (forecast_pairing("rlvr", "trl_k3_loss") or "")
    assert "unknown" in (forecast_pairing("rlvr", None) or "")
    assert "learned reward" in (forecast_pairing("rlhf", "tilt") or "")
    assert "likelihood" in (forecast_pairing("sft", None) or "")


def _run_study(tmp_path: Path) -> Summary:
    spec = parse_spec({"methods": ["sft", "rlhf:grpo", "rlvr:grpo", "rlvr:rloo", "rlvr:dr_grpo"], "betas": [0.05],
                       "seeds": [0], "certificate": {"enabled": False},
                       "method_overrides": {"rlvr:rloo": {"kl_mode": "loss"}}}, "objective")
    out = tmp_path / "study"

    def forecast(stage: Any) -> dict[str, Any]:
        folder = out / "forecast"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "forecast.json"
        path.write_text(json.dumps({"summary": {"mean_drift": -0.07, "drift_ci": [-0.1, -0.04], "n_prompts": 4},
                                    "task": "arithmetic", "k": 4, "top_dual_use": [], "notes": []}))
        return {"forecast": str(path)}

    def train(stage: Any) -> dict[str, Any]:
        run = stage.params["run"]
        folder = out / "models" / run.id
        folder.mkdir(parents=True, exist_ok=True)
        kl_mode = runner._run_config(run).kl_mode if run.method != "sft" else None
        info = {"model": str(folder / "model"), "kl_mode": kl_mode,
                "objective": {"reward": "tilt", "loss": "trl_k3_loss"}.get(str(kl_mode))}
        if run.algorithm == "dr_grpo":  # a stage recorded before kl_mode was: the objective is in train_summary.json
            (folder / "train_summary.json").write_text(json.dumps(info))
            return {"model": info["model"]}
        return info

    def nothing(stage: Any) -> dict[str, Any]:
        return {"guarded": False, "reference": "default"} if stage.kind == "guard" else {}

    runner = StudyRunner(spec, out, progress=False,
                         executors={"guard": nothing, "eval": nothing, "certify": nothing, "forecast": forecast,
                                    "train": train})
    runner.run()
    return load_summary(out)


def test_summary_pairs_the_forecast_only_with_the_tilt(tmp_path: Path) -> None:
    summary = _run_study(tmp_path)
    by_algo = {(m.method, m.algorithm): m for m in summary.models if m.method != "reference"}
    grpo, dr = by_algo[("rlvr", "grpo")], by_algo[("rlvr", "dr_grpo")]
    rloo, rlhf, sft = by_algo[("rlvr", "rloo")], by_algo[("rlhf", "grpo")], by_algo[("sft", None)]
    assert grpo.objective == dr.objective == "tilt" and grpo.kl_mode == "reward"
    assert grpo.forecast_drift == dr.forecast_drift == -0.07 and grpo.forecast_unpaired is None
    assert rloo.kl_mode == "loss" and rloo.objective == "trl_k3_loss"
    assert rloo.forecast_drift is None and "kl_mode=loss" in (rloo.forecast_unpaired or "")
    assert rlhf.forecast_drift is None and "learned reward" in (rlhf.forecast_unpaired or "")
    assert sft.objective == "likelihood"
    forecast = (summary.forecast or {})["arithmetic@b0.05"]
    assert (forecast.domain, forecast.beta, forecast.task, forecast.k) == ("arithmetic", 0.05, "arithmetic", 4)

    assert forecast_drift(grpo) == -0.07
    assert forecast_drift(rloo) is None
    # sft has no beta, so no forecast describes it: none is set beside its drift, though one exists for its domain
    assert sft.domain == "arithmetic" and forecast_drift(sft) is None
    notes = objective_notes(summary)
    assert any(rloo.id in n and "TRL's per-token k3" in n for n in notes)
    assert not any(grpo.id in n for n in notes)
    md = (tmp_path / "study" / "report.md").read_text()
    assert "only rlvr with kl_mode=reward optimises" in md and f"{rloo.id}: forecast not shown" in md


def test_no_notes_without_a_forecast() -> None:
    summary = Summary(study=StudyInfo(name="x"), forecast=None,
                      models=[ModelEntry(id="x", method="rlvr", forecast_unpaired="why")])
    assert objective_notes(summary) == []
