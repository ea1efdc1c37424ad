"""The frontier section: points pooled and paired with the reference, the floor curve equal to the certificate's
own floor, the first lines' verdict on "capability gained while certified", the figure and the headline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlvr_safety.report import build_report, summary_headline
from rlvr_safety.report.frontier import certifiable_kl, floor_curve, frontier_lines, frontier_points
from rlvr_safety.theory import certify

N = 30  # harmful prompts per benchmark, 60 pooled
BENCHES = ("harmbench", "xstest")


def _safety(refused: list[int]) -> dict[str, Any]:
    out = {}
    for b, part in zip(BENCHES, (refused[:N], refused[N:]), strict=True):
        k = sum(part)
        out[b] = {"n": N, "judged": N, "judge_errors": 0,
                  "refusal_rate": {"n": N, "k": k, "rate": k / N, "ci_low": 0.0, "ci_high": 1.0},
                  "harmful_rate": {"n": N, "k": N - k, "rate": 1 - k / N, "ci_low": 0.0, "ci_high": 1.0},
                  "refused_by_item": {"harmful": {f"{b}/{i}": v for i, v in enumerate(part)}, "benign": {}},
                  "judge": {"name": "keyword", "version": "1"}}
    return out


def _task(correct: list[int]) -> dict[str, Any]:
    k = sum(correct)
    return {"arithmetic": {"n": len(correct), "accuracy": {"n": len(correct), "k": k, "rate": k / len(correct),
                                                           "ci_low": 0.0, "ci_high": 1.0},
                           "correct_by_item": {f"arithmetic/{i}": v for i, v in enumerate(correct)}}}


def _cert(kl: float) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    s_ref = [1.0] * 57 + [0.0] * 3
    c = certify(s_ref, seq_log_ratios=rng.normal(kl, 0.05, 2 * N), n_resamples=200).to_dict()
    return {"overall": c, "per_benchmark": {}, "measured": {"drift": -0.01, "drift_ci": [-0.05, 0.03]},
            "violations": [], "notes": []}


def _summary(rlvr_correct: list[int], kl: float) -> dict[str, Any]:
    ref_refused = [1] * 57 + [0] * 3
    ref_correct = [1] * 12 + [0] * 48
    models = [
        {"id": "ref", "method": "guard", "eval": {**_safety(ref_refused), **_task(ref_correct)}},
        {"id": "sft", "method": "sft", "domain": "arithmetic", "eval": {**_safety([0] * 60), **_task(ref_correct)},
         "certificate": _cert(30.0)},
        {"id": "rlvr_b1", "method": "rlvr", "algorithm": "grpo", "beta": 1.0, "domain": "arithmetic",
         "eval": {**_safety(ref_refused), **_task(rlvr_correct)}, "certificate": _cert(kl), "forecast_drift": 0.0},
    ]
    return {"study": {"name": "t"}, "reference_id": "ref", "models": models, "judge": {"name": "keyword"}}


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
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    paths = build_report(tmp_path)
    assert paths["frontier"].exists() and paths["frontier"].stat().st_size > 5000
    md = paths["markdown"].read_text()
    assert md.index("## Frontier") < md.index("## Findings")
    assert "- Yes: RLVR grpo beta=1" in md
    head = summary_headline(summary)
    assert any(line.startswith("Reference (guarded model)") for line in head.splitlines())
