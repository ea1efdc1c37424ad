"""The frontier section: points pooled and paired with the reference, the floor curve equal to the certificate's
own floor, the first lines' verdict on "capability gained while certified", the figure and the headline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlvr_safety.evaluation.metrics import SafetyItem, accuracy_metrics, safety_metrics
from rlvr_safety.report import build_report, summary_headline
from rlvr_safety.report.frontier import certifiable_kl, floor_curve, frontier_lines, frontier_points
from rlvr_safety.report.schema import (
    BenchmarkMetrics,
    Certificate,
    CertificateSummary,
    JudgeInfo,
    Measured,
    ModelEntry,
    StudyInfo,
    Summary,
)
from rlvr_safety.theory import certify

N = 30  # harmful prompts per benchmark, 60 pooled
BENCHES = ("harmbench", "xstest")


def _safety(refused: list[int]) -> dict[str, BenchmarkMetrics]:
    """Judged metrics as evaluation.metrics.safety_metrics computes them, N harmful prompts per benchmark."""
    out = {}
    for b, part in zip(BENCHES, (refused[:N], refused[N:]), strict=True):
        items = [SafetyItem("harmful", bool(v), 0.0 if v else 1.0, f"{b}/{i}") for i, v in enumerate(part)]
        out[b] = BenchmarkMetrics.model_validate(
            {**safety_metrics(items), "judge": {"name": "keyword", "version": "1", "agreement": None}})
    return out


def _task(correct: list[int]) -> dict[str, BenchmarkMetrics]:
    """Graded metrics as evaluation.metrics.accuracy_metrics computes them, with the per-item grades."""
    return {"arithmetic": BenchmarkMetrics.model_validate({
        **accuracy_metrics([float(v) for v in correct]),
        "correct_by_item": {f"arithmetic/{i}": v for i, v in enumerate(correct)}, "grade_errors": 0,
        "grader": "arithmetic"})}


def _cert(kl: float) -> CertificateSummary:
    rng = np.random.default_rng(0)
    s_ref = [1.0] * 57 + [0.0] * 3
    c = certify(s_ref, seq_log_ratios=rng.normal(kl, 0.05, 2 * N), n_resamples=200).to_dict()
    return CertificateSummary(overall=Certificate.model_validate(c),
                              measured=Measured(drift=-0.01, drift_ci=(-0.05, 0.03)))


def _summary(rlvr_correct: list[int], kl: float) -> Summary:
    ref_refused = [1] * 57 + [0] * 3
    ref_correct = [1] * 12 + [0] * 48
    models = [
        ModelEntry(id="ref", method="guard", eval={**_safety(ref_refused), **_task(ref_correct)}),
        ModelEntry(id="sft", method="sft", domain="arithmetic", eval={**_safety([0] * 60), **_task(ref_correct)},
                   certificate=_cert(30.0)),
        ModelEntry(id="rlvr_b1", method="rlvr", algorithm="grpo", beta=1.0, domain="arithmetic",
                   eval={**_safety(ref_refused), **_task(rlvr_correct)}, certificate=_cert(kl), forecast_drift=0.0),
    ]
    return Summary(study=StudyInfo(name="t"), reference_id="ref", models=models, judge=JudgeInfo(name="keyword"))


def test_floor_curve_is_the_certificates_floor() -> None:
    c = certify([1.0] * 50 + [0.0] * 10, seq_log_ratios=np.full(40, 0.2) + np.linspace(-0.1, 0.1, 40),
                n_resamples=200)
    assert floor_curve(c.s_ref_lower, c.var_ref_upper, [c.kl_upper])[0] == pytest.approx(c.floor)
    curve = floor_curve(c.s_ref_lower, c.var_ref_upper, [0.0, 0.01, 0.1, 1.0, 10.0])
    assert curve[0] == pytest.approx(c.s_ref_lower) and all(a >= b for a, b in zip(curve, curve[1:], strict=False))
    k = certifiable_kl(c.s_ref_lower, c.var_ref_upper)
    assert floor_curve(c.s_ref_lower, c.var_ref_upper, [0.99 * k])[0] > 0
    assert floor_curve(c.s_ref_lower, c.var_ref_upper, [1.01 * k])[0] == 0


def test_points_are_pooled_and_paired() -> None:
    pts = {p.id: p for p in frontier_points(_summary([1] * 30 + [0] * 30, 0.05))}
    assert pts["ref"].verdict == "reference" and pts["ref"].kl == 0.0 and pts["ref"].n_harmful == 60
    assert pts["sft"].verdict == "reduced" and pts["sft"].safety == 0.0 and not pts["sft"].certified
    rl = pts["rlvr_b1"]
    assert rl.safety == pytest.approx(57 / 60) and rl.safety_test is not None and rl.safety_test.diff == 0
    assert rl.accuracy_test is not None and rl.accuracy_test.diff == pytest.approx(18 / 60)
    assert rl.gained_capability and rl.certified and rl.floor is not None and 0 < rl.floor < rl.safety


def test_first_lines_answer_the_question_both_ways() -> None:
    yes = frontier_lines(_summary([1] * 30 + [0] * 30, 0.05))
    assert yes[0].startswith("Reference (guarded model): safety 0.95 on 60 harmful prompts")
    assert "nats" in yes[0] and yes[-1].startswith("Yes: RLVR grpo beta=1")
    no_gain = frontier_lines(_summary([1] * 12 + [0] * 48, 0.05))
    assert no_gain[-1].startswith("No RLVR run gained") and "significant accuracy gains: none" in no_gain[-1]
    vacuous = frontier_lines(_summary([1] * 30 + [0] * 30, 40.0))
    assert "non-vacuous certificates: none" in vacuous[-1]


def test_report_opens_with_the_frontier(tmp_path: Path) -> None:
    summary = _summary([1] * 30 + [0] * 30, 0.05)
    (tmp_path / "summary.json").write_text(summary.model_dump_json())
    paths = build_report(tmp_path)
    assert paths["frontier"].exists() and paths["frontier"].stat().st_size > 5000
    md = paths["markdown"].read_text()
    assert md.index("## Frontier") < md.index("## Findings")
    assert "- Yes: RLVR grpo beta=1" in md
    head = summary_headline(summary)
    assert any(line.startswith("Reference (guarded model)") for line in head.splitlines())
