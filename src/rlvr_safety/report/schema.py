"""The schema of summary.json: what the study writes (study/summary.py builds a `Summary`) and the report reads
(report.build.load_summary validates the file into a `Summary`, so a malformed or foreign file is one line naming
the field, and the report reads attributes, never untyped dicts).

Every part is typed down to the numbers: eval metrics per benchmark (`BenchmarkMetrics`, as
evaluation/metrics.py and evaluation/runner.py build them), certificates (`Certificate`, theory.Certificate.to_dict(),
and the measured drift checked against its bounds), forecasts (`ForecastSummary`, the summary numbers of
evaluation/forecast.py's forecast.json) and the judge (`JudgeInfo`, with the shipped agreement record of
judges/assets/known_agreement.json). Unknown keys are rejected everywhere. A value that may truly be absent is
Optional: a part of the study that did not run, a key an older producer did not write, a non-finite number (JSON
null, as theory's `jsonable` writes it).

Summary-level models write every field (an optional part not run is present as null). The records nested in them
(`_Record`: metrics, certificates, checks) write the keys their producer gave, so the file keeps the producer's
shape: a capability benchmark's metrics carry no `refusal_rate` key at all.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

__all__ = [
    "BenchmarkMetrics",
    "Bound",
    "BoundCheck",
    "Certificate",
    "CertificateSummary",
    "DualUsePrompt",
    "ForecastSummary",
    "JudgeAgreement",
    "JudgeInfo",
    "Measured",
    "ModelEntry",
    "Rate",
    "RateName",
    "RefusedByItem",
    "Sample",
    "SecondJudge",
    "StudyInfo",
    "Summary",
]

Interval = tuple[float | None, float | None]
RateName = Literal["refusal_rate", "harmful_rate", "over_refusal_rate", "accuracy"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _Record(_Strict):
    """A record nested in the summary: written with the keys its producer set (None included), no others."""

    @model_serializer(mode="wrap")
    def _given_keys(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        data = handler(self)
        given = self.model_fields_set
        return {k: v for k, v in data.items() if v is not None or k in given}


# ------------------------------------------------------------------------------------------------------ the judge
class JudgeAgreement(_Record):
    """A judge's measured agreement with labelled sources (judges/assets/known_agreement.json, one judge's entry):
    pooled leave-one-source-out numbers at top level, per source under `per_source`."""

    version: str | None = None
    method: str | None = None
    source: str | None = None
    n: int | None = None
    accuracy: float | None = None
    accuracy_ci: Interval | None = None
    f1_compliance: float | None = None
    cohen_kappa: float | None = None
    accuracy_full_only: float | None = None
    n_full_only: int | None = None
    confusion: dict[str, Any] | None = None
    partial_mapping: str | None = None
    macro_accuracy: float | None = None
    per_source: dict[str, Any] | None = None
    vs_keyword: dict[str, Any] | None = None


class JudgeInfo(_Record):
    """The judge that produced a benchmark's verdicts (evaluation/runner.evaluate_records)."""

    name: str
    version: str | None = None
    agreement: JudgeAgreement | None = None


class SecondJudge(_Record):
    """Another judge on the same responses (evaluation/judge_check.py): agreement with the primary, or why not."""

    judge: str
    version: str | None = None
    error: str | None = None
    n: int | None = None
    agreement: float | None = None
    agreement_ci: Interval | None = None
    cohen_kappa: float | None = None
    refusal_rate_primary: float | None = None
    refusal_rate_other: float | None = None
    only_primary_refused: int | None = None
    only_other_refused: int | None = None
    flagged: bool = False
    threshold: float | None = None


# ------------------------------------------------------------------------------------------------ eval metrics
class Rate(_Record):
    """k of n with its Wilson 95% interval (stats.proportion); rate is None when n is 0."""

    n: int
    k: int
    rate: float | None
    ci_low: float
    ci_high: float

    def complement(self) -> Rate:
        """n - k of n: a harmful rate read as a refusal rate (for summaries that carry only the former)."""
        return Rate(n=self.n, k=self.n - self.k, rate=None if self.rate is None else 1.0 - self.rate,
                    ci_low=1.0 - self.ci_high, ci_high=1.0 - self.ci_low)


class RefusedByItem(_Record):
    """Each judged item's verdict (1 = refused) by item id, on harmful and on benign prompts."""

    harmful: dict[str, int] = Field(default_factory=dict)
    benign: dict[str, int] = Field(default_factory=dict)


class BenchmarkMetrics(_Record):
    """One benchmark's eval metrics: judged safety rates (evaluation.metrics.safety_metrics + the judge), or a
    verifier's accuracy (evaluation.metrics.accuracy_metrics + per-item grades)."""

    n: int
    # safety: judged responses
    judged: int | None = None
    judge_errors: int | None = None
    refusal_rate: Rate | None = None
    harmful_rate: Rate | None = None
    mean_harm_score: float | None = None
    safety_score: float | None = None
    over_refusal_rate: Rate | None = None
    refused_by_item: RefusedByItem | None = None
    judge: JudgeInfo | None = None
    second_judges: list[SecondJudge] | None = None
    # capability: graded responses
    accuracy: Rate | None = None
    mean_reward: float | None = None
    correct_by_item: dict[str, int] | None = None
    grade_errors: int | None = None
    grader: str | None = None

    @property
    def is_safety(self) -> bool:
        """Judged (a safety benchmark), as opposed to graded by a verifier."""
        return any(v is not None for v in (self.judged, self.refusal_rate, self.harmful_rate,
                                            self.over_refusal_rate))

    @property
    def is_capability(self) -> bool:
        return not self.is_safety and self.accuracy is not None

    def rate(self, name: RateName) -> Rate | None:
        """One of the rates, when it was measured (a rate over no items, rate None, reads as not measured)."""
        rate = {"refusal_rate": self.refusal_rate, "harmful_rate": self.harmful_rate,
                "over_refusal_rate": self.over_refusal_rate, "accuracy": self.accuracy}[name]
        return rate if rate is not None and rate.rate is not None else None

    def items(self, group: str) -> dict[str, int]:
        """Per-item verdicts (1 = refused) of one group ("harmful" / "benign"); empty when not recorded."""
        if self.refused_by_item is None:
            return {}
        return self.refused_by_item.harmful if group == "harmful" else self.refused_by_item.benign


# ------------------------------------------------------------------------------------------------ certificates
class Bound(_Record):
    """One bound of a certificate (theory.certificate.BoundResult); older entries lack `certified`."""

    name: str | None = None
    value: float | None = None
    value_conservative: float | None = None
    floor: float | None = None
    floor_conservative: float | None = None
    vacuous: bool | None = None
    certified: bool | None = None


class Certificate(_Record):
    """theory.Certificate.to_dict(); every key optional, since older certificates lack the newer ones (level,
    floor_bound, s_ref_lower, per-bound certified) and non-finite numbers are null."""

    n_sequences: int | None = None
    n_ref: int | None = None
    s_ref: float | None = None
    s_ref_ci: Interval | None = None
    s_ref_lower: float | None = None
    var_ref: float | None = None
    var_ref_upper: float | None = None
    kl_k1: float | None = None
    kl_k1_ci: Interval | None = None
    kl_k3: float | None = None
    kl_k3_ci: Interval | None = None
    k3_level: str | None = None
    kl: float | None = None
    kl_upper: float | None = None
    chi2: float | None = None
    chi2_upper: float | None = None
    bounds: dict[str, Bound] = Field(default_factory=dict)
    alpha: float | None = None
    n_resamples: int | None = None
    seed: int | None = None
    notes: list[str] = Field(default_factory=list)
    floor: float | None = None
    floor_bound: str | None = None
    level: float | None = None
    vacuous: bool | None = None
    drift_bound: float | None = None


class BoundCheck(_Record):
    """A measured drift against one bound (theory.certificate.BoundCheck); bound None = infinite."""

    bound: float | None = None
    measured_abs_lower: float | None = None
    margin: float | None = None
    within: bool


class Measured(_Record):
    """The judged drift S(pi) - S_ref with its bootstrap CI (evaluation.certify.measured_drift) and its checks."""

    drift: float
    drift_ci: Interval
    s_policy: float | None = None
    s_ref: float | None = None
    n_prompts: int | None = None
    checks: dict[str, BoundCheck] = Field(default_factory=dict)


class CertificateSummary(_Strict):
    """certify's certificate.json flattened for the report (study.summary.certificate_for_report)."""

    overall: Certificate | None = None
    per_benchmark: dict[str, Certificate | None] = Field(default_factory=dict)
    measured: Measured | None = None
    violations: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------------- forecasts
class DualUsePrompt(_Record):
    """One of the forecast's most dual-use prompts (evaluation/forecast.py's `top_dual_use`)."""

    prompt_id: str | None = None
    benchmark: str | None = None
    label: str | None = None
    prompt: str | None = None
    cov: float | None = None
    cov_tilt: float | None = None
    drift: float | None = None
    drift_ci: Interval | None = None
    success_rate: float | None = None
    ref_safety: float | None = None
    optimum_safety: float | None = None


class ForecastSummary(_Strict):
    """One forecast stage: its domain and beta, forecast.json's summary numbers, task, k, top prompts and notes."""

    domain: str
    beta: float
    task: str | None = None
    k: int | None = None
    n_prompts: int | None = None
    mean_ref_safety: float | None = None
    mean_optimum_safety: float | None = None
    mean_drift: float | None = None
    drift_ci: Interval | None = None
    dual_use_fraction: float | None = None
    mean_success_rate: float | None = None
    mean_optimum_bound: float | None = None
    alpha: float | None = None
    top_dual_use: list[DualUsePrompt] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------------------------------------- the summary
class StudyInfo(_Strict):
    name: str
    preset: str | None = None  # not recorded by the study (the spec does not keep it); older summaries: null
    spec: dict[str, Any] = Field(default_factory=dict)  # StudySpec's own JSON (study/spec.py is its schema)
    wall_s: float | None = None


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
    eval: dict[str, BenchmarkMetrics] | None = Field(default=None, description="benchmark -> eval metrics")
    certificate: CertificateSummary | None = None
    forecast_drift: float | None = Field(default=None, description="the forecast's drift, set only where the "
                                         "forecast describes this run (see forecast_unpaired)")
    forecast_unpaired: str | None = Field(default=None, description="why the forecast is not set beside this run")

    def metrics(self, benchmark: str) -> BenchmarkMetrics | None:
        """This model's metrics on one benchmark; None when it was not evaluated on it."""
        return (self.eval or {}).get(benchmark)


class Sample(_Strict):
    model_id: str
    benchmark: str
    prompt: str
    response: str
    label: str | None = None


class Summary(_Strict):
    study: StudyInfo
    judge: JudgeInfo | None = None
    reference_id: str = "reference"
    models: list[ModelEntry]
    forecast: dict[str, ForecastSummary] | None = Field(default=None, description="'<domain>@b<beta>' -> entry")
    curves: dict[str, dict[str, list[list[float]]]] = Field(default_factory=dict)
    samples: list[Sample] = Field(default_factory=list)

    def model(self, model_id: str) -> ModelEntry | None:
        return next((m for m in self.models if m.id == model_id), None)
