"""The study's frontier: where each fine-tuning method landed on the (sequence KL, safety) plane, against the
certified floor curve S_ref - bound(KL), with its capability gain. Everything here is computed from the summary.

Safety is pooled over the harmful prompts of every safety benchmark: 1 - the judged harmful rate, one answer per
prompt. When the study samples those answers at temperature 1 and certifies the same samples
(`certificate.source: eval`), the KL, the floor and the safety of a point all describe the same responses, and the
floor curve is the certificate's own: LCB(S_ref) - min over certified bounds of B(KL, Var_ref upper limit), with
S_ref's lower limit and the variance limit of the reference's answers. A point's certified floor is that curve at
the upper confidence limit of its KL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rlvr_safety.report import analysis as an
from rlvr_safety.report.schema import Certificate, ModelEntry, RateName, Summary
from rlvr_safety.stats import PairedTest, paired_counts, paired_test, wilson_interval
from rlvr_safety.theory import bernstein_bound, bretagnolle_huber_bound, pinsker_bound

__all__ = ["FrontierPoint", "certifiable_kl", "floor_curve", "frontier_lines", "frontier_points",
           "reference_limits", "task_benchmarks"]

NONVACUOUS = 0.0  # a floor above this certifies something


@dataclass(frozen=True)
class FrontierPoint:
    id: str
    method: str
    algorithm: str | None
    beta: float | None
    safety: float | None
    safety_ci: tuple[float, float] | None
    n_harmful: int
    safety_test: PairedTest | None  # pooled, paired with the reference (refused = safe)
    verdict: str  # reference | raised | reduced | kept | inconclusive | not compared
    kl: float | None
    kl_ci: tuple[float, float] | None
    kl_upper: float | None
    floor: float | None
    floor_bound: str | None
    accuracy: float | None
    accuracy_n: int
    accuracy_test: PairedTest | None  # paired with the reference on the same held-out items
    over_refusal: float | None
    measured_drift: float | None
    forecast_drift: float | None

    @property
    def label(self) -> str:
        if self.method in ("guard", "reference"):
            return "reference"
        name = self.method.upper() if self.method != "rlvr" else "RLVR"
        if self.algorithm and self.method == "rlhf":
            name = f"RLHF ({self.algorithm})"
        elif self.algorithm:
            name = f"RLVR {self.algorithm}"
        if self.beta is not None and self.method != "sft":
            name += f" beta={self.beta:g}"
        return name

    @property
    def certified(self) -> bool:
        return self.floor is not None and self.floor > NONVACUOUS

    @property
    def gained_capability(self) -> bool:
        t = self.accuracy_test
        return t is not None and t.diff > 0 and t.p_value < t.alpha


def task_benchmarks(summary: Summary) -> list[str]:
    """The capability benchmarks a study trained on (its domains' tasks; arithmetic for the demo)."""
    names = an.benchmarks(summary, "capability")
    domains = {m.domain for m in an.models(summary) if m.domain}
    trained = [n for n in names if n in domains or n.removesuffix("-train") in domains]
    return trained or names


def _pooled_rate(model: ModelEntry, safety: Sequence[str], key: RateName) -> tuple[int, int]:
    k = n = 0
    for bench in safety:
        r = an._rate(model.metrics(bench), key)
        if r is not None:
            k, n = k + r.k, n + r.n
    return k, n


def _correct(model: ModelEntry, tasks: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for bench in tasks:
        metrics = model.metrics(bench)
        for key, v in ((metrics.correct_by_item if metrics else None) or {}).items():
            out[f"{bench}::{key}"] = int(v)
    return out


def _num(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def frontier_points(summary: Summary, rule: an.DecisionRule = an.DEFAULT_RULE) -> list[FrontierPoint]:
    """One point per model (the reference first), pooled over the safety benchmarks, paired with the reference."""
    safety = an.benchmarks(summary, "safety")
    tasks = task_benchmarks(summary)
    ref_id = an.reference_id(summary)
    models = an.models(summary)
    ref = summary.model(ref_id)
    ref_correct = _correct(ref, tasks) if ref else {}
    points = []
    for m in sorted(models, key=lambda m: m.id != ref_id):
        is_ref = m.id == ref_id
        refused, n = _pooled_rate(m, safety, "refusal_rate")
        safety_rate = refused / n if n else None
        test = None if is_ref or ref is None else an.pooled_safety_test(summary, m, rule)
        verdict = "reference" if is_ref else an.decide(test, rule) if test is not None else "not compared"
        k_ok, n_acc = _pooled_rate(m, tasks, "accuracy")
        acc_test = None
        if not is_ref and ref_correct:
            counts = paired_counts(ref_correct, _correct(m, tasks))
            if counts.n:
                acc_test = paired_test(counts, rule.alpha, rule.power)
        over_k, over_n = _pooled_rate(m, safety, "over_refusal_rate")
        cert = m.certificate
        overall = (cert.overall if cert else None) or Certificate()
        measured = cert.measured if cert else None
        kl_lo, kl_hi = overall.kl_k1_ci or (None, None)
        points.append(FrontierPoint(
            id=m.id, method=m.method or "?", algorithm=m.algorithm, beta=m.beta,
            safety=safety_rate, safety_ci=wilson_interval(refused, n) if n else None, n_harmful=n,
            safety_test=test, verdict=verdict,
            kl=0.0 if is_ref else _num(overall.kl_k1),
            kl_ci=(kl_lo, kl_hi) if kl_lo is not None and kl_hi is not None else None,
            kl_upper=_num(overall.kl_upper), floor=_num(overall.floor), floor_bound=overall.floor_bound,
            accuracy=k_ok / n_acc if n_acc else None, accuracy_n=n_acc, accuracy_test=acc_test,
            over_refusal=over_k / over_n if over_n else None,
            measured_drift=_num(measured.drift if measured else None), forecast_drift=_num(m.forecast_drift)))
    return points


def reference_limits(summary: Summary) -> tuple[float, float, float] | None:
    """(S_ref, its lower confidence limit, the upper limit of Var_ref(s)) from any certificate (all share the
    reference's answers), or None without one."""
    for m in an.models(summary):
        overall = m.certificate.overall if m.certificate else None
        lower = _num(overall.s_ref_lower) if overall else None
        if overall is not None and overall.s_ref is not None and lower is not None:
            return (overall.s_ref, lower, overall.var_ref_upper or 0.25)
    return None


def floor_curve(s_lower: float, var_upper: float, kls: Sequence[float]) -> list[float]:
    """The certified floor as a function of the KL's upper limit: LCB(S_ref) minus the smallest certified bound."""
    out = []
    for kl in kls:
        bound = min(pinsker_bound(kl), bretagnolle_huber_bound(kl), bernstein_bound(var_upper, kl))
        out.append(min(1.0, max(0.0, s_lower - bound)))
    return out


def certifiable_kl(s_lower: float, var_upper: float) -> float:
    """The largest KL upper limit at which the floor curve is still above 0 (0 when none is)."""
    if floor_curve(s_lower, var_upper, [0.0])[0] <= 0:
        return 0.0
    lo, hi = 0.0, 1.0
    while floor_curve(s_lower, var_upper, [hi])[0] > 0 and hi < 1e3:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if floor_curve(s_lower, var_upper, [mid])[0] > 0 else (lo, mid)
    return lo


def _fmt(x: float | None, digits: int = 2, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _kl_text(p: FrontierPoint) -> str:
    if p.kl is None:
        return "KL not measured"
    text = f"KL {_fmt(p.kl, 3)}"
    if p.kl_ci:
        text += f" [{_fmt(p.kl_ci[0], 3)}, {_fmt(p.kl_ci[1], 3)}]"
    return text + " nats"


def _acc_text(p: FrontierPoint, ref: FrontierPoint | None) -> str:
    if p.accuracy is None:
        return "task accuracy not measured"
    t = p.accuracy_test
    if t is None or ref is None or ref.accuracy is None:
        return f"task accuracy {_fmt(p.accuracy)}"
    sig = "significant" if t.p_value < t.alpha else "not significant"
    return (f"task accuracy {_fmt(ref.accuracy)} -> {_fmt(p.accuracy)} ({_fmt(t.diff, 2, True)} "
            f"[{_fmt(t.ci[0], 2, True)}, {_fmt(t.ci[1], 2, True)}], {sig}, McNemar {an._fmt_p(t.p_value)})")


def _safety_text(p: FrontierPoint, ref: FrontierPoint | None, rule: an.DecisionRule) -> str:
    if p.safety is None:
        return "safety not measured"
    text = f"safety {_fmt(p.safety)}"
    t = p.safety_test
    if t is not None and ref is not None and ref.safety is not None:
        verdict = rule.kept_text if p.verdict == "kept" else p.verdict
        text += (f" (reference {_fmt(ref.safety)}; paired {_fmt(t.diff, 2, True)} [{_fmt(t.ci[0], 2, True)}, "
                 f"{_fmt(t.ci[1], 2, True)}] over {t.counts.n} prompts: {verdict})")
    return text


def _floor_text(p: FrontierPoint) -> str:
    if p.floor is None:
        return "no certificate"
    if p.certified:
        return f"certified floor {_fmt(p.floor)} ({p.floor_bound}): non-vacuous"
    return "certified floor 0: vacuous"


def frontier_lines(summary: Summary, rule: an.DecisionRule = an.DEFAULT_RULE) -> list[str]:
    """The report's first lines: per method where it landed (KL, safety against the reference, certificate,
    capability), then whether any RLVR run gained capability while its certificate was non-vacuous."""
    points = frontier_points(summary, rule)
    if not points:
        return []
    ref = points[0] if points[0].verdict == "reference" else None
    lines = []
    if ref is not None and ref.safety is not None:
        limits = reference_limits(summary)
        reach = ""
        if limits is not None:
            k_star = certifiable_kl(limits[1], limits[2])
            reach = (f"; its certificate's floor curve stays above 0 up to a sequence KL of {_fmt(k_star, 3)} nats "
                     f"(S_ref lower limit {_fmt(limits[1])})" if k_star > 0 else
                     f"; S_ref's lower limit {_fmt(limits[1])} leaves no KL certifiable")
        lines.append(f"Reference (guarded model): safety {_fmt(ref.safety)} on {ref.n_harmful} harmful prompts "
                     f"pooled over the safety benchmarks, task accuracy {_fmt(ref.accuracy)} on {ref.accuracy_n} "
                     f"held-out items{reach}.")
    for p in points[1:]:
        lines.append(f"{p.label}: {_kl_text(p)}; {_safety_text(p, ref, rule)}; {_floor_text(p)}; "
                     f"{_acc_text(p, ref)}.")
    rlvr = [p for p in points if p.method == "rlvr"]
    both = [p for p in rlvr if p.gained_capability and p.certified]
    if not rlvr:
        lines.append("No RLVR run in this study.")
    elif both:
        lines.append("Yes: " + ", ".join(f"{p.label} (floor {_fmt(p.floor)}, accuracy {_fmt(p.accuracy_test.diff, 2, True) if p.accuracy_test else '-'})" for p in both)
                     + " gained task accuracy significantly while its certificate was non-vacuous.")
    else:
        gained = [p.label for p in rlvr if p.gained_capability]
        certified = [p.label for p in rlvr if p.certified]
        why = []
        why.append("significant accuracy gains: " + (", ".join(gained) if gained else "none"))
        why.append("non-vacuous certificates: " + (", ".join(certified) if certified else "none"))
        lines.append("No RLVR run gained task accuracy significantly while its certificate was non-vacuous ("
                     + "; ".join(why) + ").")
    return lines
