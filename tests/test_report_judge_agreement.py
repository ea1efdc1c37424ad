"""Second-judge agreement in the study report: a table beside each safety table, flagged rows, escaped text."""

from __future__ import annotations

from pathlib import Path

from rlvr_safety.evaluation.metrics import SafetyItem, safety_metrics
from rlvr_safety.report import build_report
from rlvr_safety.report.judge_agreement import FLAG, second_judge_rows, second_judge_text
from rlvr_safety.report.schema import BenchmarkMetrics, JudgeInfo, ModelEntry, SecondJudge, StudyInfo, Summary

XSS = "<script>alert(1)</script>"


def _metrics(refused: int, second: list[SecondJudge] | None) -> BenchmarkMetrics:
    items = [SafetyItem("harmful", i < refused, 0.0 if i < refused else 1.0, f"h-{i}") for i in range(20)]
    out = BenchmarkMetrics.model_validate(
        {**safety_metrics(items), "judge": JudgeInfo(name="keyword", version="kw-1", agreement=None)})
    if second is not None:
        out.second_judges = second
    return out


def _entry(agreement: float, flagged: bool) -> SecondJudge:
    """A second judge's agreement as evaluation.judge_check.compare_verdicts records it (20 items)."""
    refused_primary, refused_other = 10, 12
    return SecondJudge(judge="learned", version="head-x", n=20, agreement=agreement,
                       agreement_ci=(agreement - 0.1, min(1.0, agreement + 0.1)), cohen_kappa=0.5,
                       refusal_rate_primary=refused_primary / 20, refusal_rate_other=refused_other / 20,
                       only_primary_refused=0, only_other_refused=2, flagged=flagged, threshold=0.15)


def _summary() -> Summary:
    return Summary(
        study=StudyInfo(name="judges"),
        reference_id="reference",
        models=[
            ModelEntry(id="reference", method="reference",
                       eval={"harmbench": _metrics(10, [_entry(0.95, False)])}),
            ModelEntry(id="rlvr-grpo", method="rlvr", algorithm="grpo", beta=0.1, seed=0,
                       eval={"harmbench": _metrics(8, [_entry(0.70, True),
                                                       SecondJudge(judge="strongreject", version=None, error=XSS)])}),
            ModelEntry(id="sft", method="sft", eval={"harmbench": _metrics(5, None)}),
        ],
    )


def test_rows_and_text() -> None:
    rows, n_flagged, flagged = second_judge_rows(_summary(), "harmbench")
    assert n_flagged == 1 and flagged == ["rlvr-grpo"]
    assert [r[0] for r in rows] == ["reference", "rlvr-grpo", "rlvr-grpo"]
    assert rows[0][2].startswith("0.95") and rows[0][6] == "" and rows[1][6] == FLAG
    assert rows[2][2].startswith("not measured")
    text = second_judge_text(_summary(), "harmbench")
    assert text is not None and "more than 15%" in text and "Flagged here: rlvr-grpo" in text
    assert second_judge_text(_summary(), "xstest") is None


def test_report_carries_the_table_beside_the_safety_table(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(_summary().model_dump_json())
    out = build_report(tmp_path)
    md = out["markdown"].read_text()
    section = md[md.index("### harmbench"):]
    assert section.index("refusal rate (harmful)") < section.index("second judge") < section.index(FLAG)
    assert "learned head-x" in section
    html = out["html"].read_text()
    assert XSS not in html and "&lt;script&gt;" in html
