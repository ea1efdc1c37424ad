"""The schema of summary.json: what the study writes (study/summary.py builds a `Summary`) and the report reads
(report.build.load_summary validates the file against it, so a malformed or foreign file is one line naming the
field, and every optional part the report looks for is present, as null when not run).

Evaluation metrics (per benchmark) and certificates keep the shapes evaluation/ and theory/ give them: they are
typed here as mappings and read by the report's helpers. Forecast entries carry the forecast's summary numbers
(theory.forecast.Forecast.to_dict() without the per-prompt arrays) plus what they were run on.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CertificateSummary", "ForecastSummary", "ModelEntry", "Sample", "StudyInfo", "Summary"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class StudyInfo(_Strict):
    name: str
    preset: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)
    wall_s: float | None = None


class CertificateSummary(_Open):
    """certify's certificate.json flattened for the report (study.summary.certificate_for_report)."""

    overall: dict[str, Any] | None = None
    per_benchmark: dict[str, dict[str, Any] | None] = Field(default_factory=dict)
    measured: dict[str, Any] | None = None
    violations: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class ForecastSummary(_Open):
    """One forecast stage: its domain and beta, and the forecast's summary numbers."""

    domain: str | None = None
    beta: float | None = None
    task: str | None = None
    k: int | None = None
    n_prompts: int | None = None
    mean_ref_safety: float | None = None
    mean_optimum_safety: float | None = None
    mean_drift: float | None = None
    drift_ci: list[float] | None = None
    mean_optimum_bound: float | None = None
    dual_use_fraction: float | None = None
    top_dual_use: list[Any] | None = None
    notes: list[str] | None = None


class ModelEntry(_Strict):
    """One evaluated model: the reference (or guarded reference) or a trained run."""

    id: str
    method: str  # reference | guard | sft | rlhf | rlvr
    algorithm: str | None = None
    domain: str | None = None
    beta: float | None = None
    seed: int | None = None
    path: str | None = None
    kl_mode: str | None = None
    objective: str | None = None
    eval: dict[str, dict[str, Any]] | None = Field(default=None, description="benchmark -> eval metrics")
    certificate: CertificateSummary | None = None
    forecast_drift: float | None = None
    forecast_unpaired: str | None = Field(default=None, description="why the forecast is not set beside this run")


class Sample(_Strict):
    model_id: str
    benchmark: str
    prompt: str
    response: str
    label: str | None = None


class Summary(_Strict):
    study: StudyInfo
    judge: dict[str, Any] | None = None
    reference_id: str = "reference"
    models: list[ModelEntry]
    forecast: dict[str, ForecastSummary] | None = Field(default=None, description="'<domain>@b<beta>' -> entry")
    curves: dict[str, dict[str, list[list[float]]]] = Field(default_factory=dict)
    samples: list[Sample] = Field(default_factory=list)
