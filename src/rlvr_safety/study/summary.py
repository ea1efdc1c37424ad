"""Gather a finished study's artifacts into OUT/summary.json, the one file the report reads.

Every part is built as the schema's typed object (report/schema.py) from the stage files it comes from
(metrics_all.json, certificate.json, forecast.json, each read through a typed view below), and the whole summary is
validated once more, as the report will read it, before the file is written: a producer that drifts from the schema
fails here, naming the field, not later in the report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..atomic import write_json_atomic
from ..config import one_line
from ..errors import UserError
from ..report.schema import (
    BenchmarkMetrics,
    Certificate,
    CertificateSummary,
    DualUsePrompt,
    ForecastSummary,
    JudgeInfo,
    Measured,
    ModelEntry,
    Sample,
    StudyInfo,
    Summary,
)
from ..store import Store
from .grid import expand_runs, reference_id, slug

if TYPE_CHECKING:
    from .runner import StudyRunner

SAMPLES_PER_MODEL = 3


class _View(BaseModel):
    """The part of another stage's JSON file the summary takes (other keys are that stage's own record)."""

    model_config = ConfigDict(extra="ignore")


class EvalFile(_View):
    """evals/<model>/metrics_all.json (study.runner's eval stage)."""

    benchmarks: dict[str, BenchmarkMetrics] = Field(default_factory=dict)


class ForecastFile(_View):
    """forecast/.../forecast.json (evaluation/forecast.py)."""

    summary: dict[str, Any] = Field(default_factory=dict)  # ForecastSummary's numbers, checked there
    task: str | None = None
    k: int | None = None
    top_dual_use: list[DualUsePrompt] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class CertifyGroup(_View):
    """One group (a benchmark, or "overall") of certificate.json: its certificate and measured drift."""

    certificate: Certificate | None = None
    measured: Measured | None = None


class CertifyViolation(_View):
    message: str


class CertifyFile(_View):
    """certificates/<run>/certificate.json (evaluation/certify.py)."""

    overall: CertifyGroup | None = None
    per_benchmark: dict[str, CertifyGroup] = Field(default_factory=dict)
    violations: list[CertifyViolation | str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class TrainSummary(_View):
    """models/<run>/train_summary.json (the train stage's record, for stages recorded before the ledger kept the
    objective)."""

    kl_mode: str | None = None
    objective: str | None = None


_V = TypeVar("_V", bound=BaseModel)


def _read(path: str | Path | None, view: type[_V]) -> _V | None:
    """A stage's JSON file through its typed view; None when the stage wrote none."""
    if not path or not Path(path).exists():
        return None
    try:
        return view.model_validate(json.loads(Path(path).read_text()))
    except ValidationError as exc:
        raise UserError(one_line(exc, f"{path} does not match the summary schema (report/schema.py)",
                                 "rerun its stage to rewrite it")) from None


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


def _samples(eval_dir: Path, model_id: str) -> list[Sample]:
    """A few harmful-prompt responses per model, for the report's (escaped) examples section."""
    path = eval_dir / "store.sqlite"
    if not path.exists():
        return []
    with Store(path) as store:
        rows = store.query(
            "SELECT g.benchmark, g.prompt, g.response, j.label FROM generations g JOIN judgments j "
            "ON j.generation_id = g.id WHERE g.benchmark IN ('harmbench', 'strongreject') ORDER BY g.id LIMIT ?",
            (SAMPLES_PER_MODEL,))
    return [Sample(model_id=model_id, benchmark=r["benchmark"], prompt=r["prompt"], response=r["response"],
                   label=r["label"]) for r in rows]


def certificate_for_report(raw: CertifyFile | None) -> CertificateSummary | None:
    """certify's certificate.json (per-group entries wrapping a Certificate) -> the report's flatter schema."""
    if raw is None:
        return None
    overall = raw.overall or CertifyGroup()
    return CertificateSummary(
        overall=overall.certificate,
        per_benchmark={name: e.certificate for name, e in raw.per_benchmark.items()},
        measured=overall.measured,
        violations=[v if isinstance(v, str) else v.message for v in raw.violations],
        notes=raw.notes,
    )


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
    info = _read(runner.out / "models" / run_id / "train_summary.json", TrainSummary) or TrainSummary()
    return info.kl_mode, info.objective


def _judge_info(models: list[ModelEntry]) -> JudgeInfo | None:
    for m in models:
        for metrics in (m.eval or {}).values():
            if metrics.judge is not None:
                return metrics.judge
    return None


def _forecast(fc: ForecastFile, domain: str, beta: float) -> ForecastSummary:
    """A forecast stage's entry: forecast.json's summary numbers at top level, with what it was run on."""
    return ForecastSummary.model_validate({**fc.summary, "domain": domain, "beta": beta, "task": fc.task,
                                           "k": fc.k, "top_dual_use": fc.top_dual_use, "notes": fc.notes})


def _evals(runner: StudyRunner, model_id: str) -> dict[str, BenchmarkMetrics]:
    evals = _read(runner.artifacts(f"eval:{model_id}").get("metrics"), EvalFile)
    return evals.benchmarks if evals else {}


def build_summary(runner: StudyRunner) -> Summary:
    """The study's summary as the schema types it, from the stage ledger and the files each stage wrote.

    Stage artifacts (runner.artifacts: the ledger's record of what a stage returned) are plain dicts whose keys
    depend on the stage and on the executor that ran it, so they are read with defaults.
    """
    spec, out = runner.spec, runner.out
    models: list[ModelEntry] = []
    curves: dict[str, dict[str, list[list[float]]]] = {}
    samples: list[Sample] = []
    forecasts: dict[str, ForecastSummary] = {}
    for stage in runner.stages:
        if stage.kind == "forecast":
            fc_file = _read(runner.artifacts(stage.id).get("forecast"), ForecastFile)
            if fc_file is not None:
                domain, beta = stage.params["domain"], stage.params["beta"]
                forecasts[f"{domain}@b{beta:g}"] = _forecast(fc_file, domain, beta)
    for base in spec.base_models:
        ref = reference_id(base)
        guard = runner.artifacts(f"guard:{slug(base)}")
        guarded = bool(guard.get("guarded"))
        models.append(ModelEntry(id=ref, method="guard" if guarded else "reference", path=guard.get("reference"),
                                 eval=_evals(runner, ref)))
        if guarded:
            curves[ref] = _curves((guard.get("train") or {}).get("store"))
        samples += _samples(out / "evals" / ref, ref)
    for run in expand_runs(spec):
        train = runner.artifacts(f"train:{run.id}")
        cert = (certificate_for_report(_read(runner.artifacts(f"certify:{run.id}").get("certificate"), CertifyFile))
                if spec.certificate.enabled else None)
        fc = forecasts.get(f"{run.domain}@b{run.beta:g}") if run.beta is not None else None
        kl_mode, objective = _train_objective(runner, run.id, train) if run.method != "sft" else (None, None)
        unpaired = forecast_pairing(run.method, objective) if fc else None
        models.append(ModelEntry(
            id=run.id, method=run.method, algorithm=run.algorithm, domain=run.domain, beta=run.beta, seed=run.seed,
            path=train.get("model"), kl_mode=kl_mode, objective=objective if run.method != "sft" else "likelihood",
            eval=_evals(runner, run.id), certificate=cert,
            forecast_drift=fc.mean_drift if fc and unpaired is None else None, forecast_unpaired=unpaired))
        curves[run.id] = _curves(train.get("store"))
        samples += _samples(out / "evals" / run.id, run.id)
    study_row = runner.store.query("SELECT started FROM runs WHERE run_id='study'")
    return Summary(
        study=StudyInfo(name=spec.name, spec=json.loads(spec.model_dump_json()),
                        wall_s=(time.time() - study_row[0]["started"]) if study_row else None),
        judge=_judge_info(models),
        reference_id=reference_id(spec.base_models[0]),
        models=models,
        forecast=forecasts or None,
        curves=curves,
        samples=samples,
    )


def write_summary(runner: StudyRunner) -> Path:
    """OUT/summary.json, validated as the report reads it (report.build.load_summary) before it is written."""
    data = build_summary(runner).model_dump(mode="json")
    Summary.model_validate(data)  # the file round-trips: what is written is what the report will accept
    path = runner.out / "summary.json"
    write_json_atomic(path, data)
    return path
