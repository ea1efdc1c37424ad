"""Gather a finished study's artifacts into OUT/summary.json, the one file the report reads."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_json_atomic
from ..report.schema import ForecastSummary, ModelEntry, Sample, StudyInfo, Summary
from ..store import Store
from .grid import expand_runs, reference_id, slug

if TYPE_CHECKING:
    from .runner import StudyRunner

SAMPLES_PER_MODEL = 3


def _read(path: str | Path | None) -> Any:
    if not path or not Path(path).exists():
        return None
    return json.loads(Path(path).read_text())


def _curves(store_path: str | None) -> dict[str, list[list[float]]]:
    if not store_path or not Path(store_path).exists():
        return {}
    curves: dict[str, list[list[float]]] = {}
    with Store(store_path) as store:
        for row in store.query("SELECT run_id FROM runs"):
            for name, series in store.metric_series(row["run_id"]).items():
                key = name if row["run_id"] in ("rlvr", "rlhf", "sft", "guard") else f"{row['run_id']}/{name}"
                curves[key] = [[float(s), float(v)] for s, v in series]
    return curves


def _samples(eval_dir: Path, model_id: str) -> list[dict[str, Any]]:
    """A few harmful-prompt responses per model, for the report's (escaped) examples section."""
    path = eval_dir / "store.sqlite"
    if not path.exists():
        return []
    with Store(path) as store:
        rows = store.query(
            "SELECT g.benchmark, g.prompt, g.response, j.label FROM generations g JOIN judgments j "
            "ON j.generation_id = g.id WHERE g.benchmark IN ('harmbench', 'strongreject') ORDER BY g.id LIMIT ?",
            (SAMPLES_PER_MODEL,))
    return [{"model_id": model_id, "benchmark": r["benchmark"], "prompt": r["prompt"], "response": r["response"],
             "label": r["label"]} for r in rows]


def certificate_for_report(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """certify's certificate.json (per-group entries wrapping a Certificate) -> the report's flatter schema."""
    if not raw:
        return None
    overall = raw.get("overall") or {}
    return {
        "overall": overall.get("certificate"),
        "per_benchmark": {name: e.get("certificate") for name, e in (raw.get("per_benchmark") or {}).items()},
        "measured": overall.get("measured"),
        "violations": [v.get("message", str(v)) if isinstance(v, dict) else str(v) for v in raw.get("violations", [])],
        "notes": raw.get("notes", []),
    }


def forecast_pairing(method: str, objective: str | None) -> str | None:
    """Why a run's measured drift must not be set against the forecast; None when the forecast describes it.

    The forecast is the drift at the optimum of E[g] - beta KL(pi || pi_ref) with g the task's verifier: the
    exponential tilt, which rlvr with kl_mode "reward" optimises (objective "tilt"). TRL's k3 penalty in the loss,
    a learned reward (rlhf) and likelihood training (sft) are other objectives.
    """
    if method == "sft":
        return "sft maximises likelihood of reference solutions; the forecast describes the RLVR optimum"
    if method == "rlhf":
        return "rlhf optimises a learned reward, not the verifier reward the forecast tilts by"
    if objective is None:
        return "objective unknown (the run was trained before kl_mode was recorded); not paired with the forecast"
    if objective != "tilt":
        return ("trained with kl_mode=loss (TRL's per-token k3 penalty in the loss, with its own reward scaling): "
                "a different objective from the one whose optimum the forecast describes")
    return None


def _train_objective(runner: StudyRunner, run_id: str, train: dict[str, Any]) -> tuple[str | None, str | None]:
    """(kl_mode, objective) recorded by the training stage (train_summary.json for stages recorded before)."""
    if train.get("objective"):
        return train.get("kl_mode"), train.get("objective")
    info = _read(runner.out / "models" / run_id / "train_summary.json") or {}
    return info.get("kl_mode"), info.get("objective")


def _judge_info(models: list[dict[str, Any]]) -> dict[str, Any] | None:
    for m in models:
        for metrics in (m.get("eval") or {}).values():
            if isinstance(metrics, dict) and metrics.get("judge"):
                return metrics["judge"]
    return None


def write_summary(runner: StudyRunner) -> Path:
    spec, out = runner.spec, runner.out
    models: list[dict[str, Any]] = []
    curves: dict[str, Any] = {}
    samples: list[dict[str, Any]] = []
    forecasts: dict[str, Any] = {}
    for stage in runner.stages:
        if stage.kind == "forecast":
            fc = _read(runner.artifacts(stage.id).get("forecast"))
            if fc is not None:  # the report reads the summary numbers at top level, as in Forecast.to_dict()
                forecasts[f"{stage.params['domain']}@b{stage.params['beta']:g}"] = ForecastSummary(**{
                    **(fc.get("summary") or {}), "domain": stage.params["domain"], "beta": stage.params["beta"],
                    "task": fc.get("task"), "k": fc.get("k"), "top_dual_use": fc.get("top_dual_use"),
                    "notes": fc.get("notes")})
    for base in spec.base_models:
        ref = reference_id(base)
        guard = runner.artifacts(f"guard:{slug(base)}")
        evals = _read(runner.artifacts(f"eval:{ref}").get("metrics")) or {}
        models.append({"id": ref, "method": "guard" if guard.get("guarded") else "reference", "algorithm": None,
                       "domain": None, "beta": None, "seed": None, "path": guard.get("reference"),
                       "eval": evals.get("benchmarks", {}), "certificate": None, "forecast_drift": None})
        if guard.get("guarded"):
            curves[ref] = _curves((guard.get("train") or {}).get("store"))
        samples += _samples(out / "evals" / ref, ref)
    for run in expand_runs(spec):
        train = runner.artifacts(f"train:{run.id}")
        evals = _read(runner.artifacts(f"eval:{run.id}").get("metrics")) or {}
        cert = (certificate_for_report(_read(runner.artifacts(f"certify:{run.id}").get("certificate")))
                if spec.certificate.enabled else None)
        fc = forecasts.get(f"{run.domain}@b{run.beta:g}") if run.beta is not None else None
        fc_drift = fc.mean_drift if fc else None
        kl_mode, objective = _train_objective(runner, run.id, train) if run.method != "sft" else (None, None)
        unpaired = forecast_pairing(run.method, objective) if fc else None
        models.append({"id": run.id, "method": run.method, "algorithm": run.algorithm, "domain": run.domain,
                       "beta": run.beta, "seed": run.seed, "path": train.get("model"),
                       "kl_mode": kl_mode, "objective": objective if run.method != "sft" else "likelihood",
                       "eval": evals.get("benchmarks", {}), "certificate": cert,
                       "forecast_drift": fc_drift if unpaired is None else None,
                       "forecast_unpaired": unpaired})
        curves[run.id] = _curves(train.get("store"))
        samples += _samples(out / "evals" / run.id, run.id)
    study_row = runner.store.query("SELECT started FROM runs WHERE run_id='study'")

    summary = Summary(
        study=StudyInfo(name=spec.name, spec=json.loads(spec.model_dump_json()),
                        wall_s=(time.time() - study_row[0]["started"]) if study_row else None),
        judge=_judge_info(models),
        reference_id=reference_id(spec.base_models[0]),
        models=[ModelEntry(**m) for m in models],
        forecast=forecasts or None,
        curves=curves,
        samples=[Sample(**s) for s in samples],
    )
    path = out / "summary.json"
    write_json_atomic(path, summary.model_dump(mode="json"))
    return path
