"""summary.json's schema (report/schema.py) on the write side: the study builds typed objects from its stage files,
validates the whole summary before writing it, and a stage file off the schema is one line naming the field; the
shipped records it embeds (the judges' agreement) fit the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.evaluation.metrics import SafetyItem, accuracy_metrics, safety_metrics
from rlvr_safety.judges.agreement import KNOWN_AGREEMENT_FILE, known_agreement
from rlvr_safety.report import load_summary, summary_headline
from rlvr_safety.report.schema import BenchmarkMetrics, JudgeAgreement, Summary
from rlvr_safety.study.runner import StudyRunner
from rlvr_safety.study.spec import parse_spec


def test_every_shipped_agreement_record_fits_the_schema() -> None:
    entries = json.loads(KNOWN_AGREEMENT_FILE.read_text(encoding="utf-8"))
    judges = [name for name, e in entries.items() if isinstance(e, dict) and "accuracy" in e]
    assert judges
    for name in judges:
        record = known_agreement(name)
        assert record is not None
        assert JudgeAgreement.model_validate(record).model_dump(mode="json") == json.loads(json.dumps(record))


def test_metrics_keep_their_producers_shape() -> None:
    """A nested record is written with exactly the keys its producer gave: capability metrics get no safety keys."""
    acc = {**accuracy_metrics([1.0, 0.0]), "correct_by_item": {"a": 1, "b": 0}, "grade_errors": 0, "grader": "math"}
    assert BenchmarkMetrics.model_validate(acc).model_dump(mode="json") == acc
    safety = {**safety_metrics([SafetyItem("harmful", True, None, "x")]), "judge": {"name": "keyword",
                                                                                   "version": "1",
                                                                                   "agreement": None}}
    assert safety["mean_harm_score"] is None  # given as None: kept as null
    assert BenchmarkMetrics.model_validate(safety).model_dump(mode="json") == safety


def _study(tmp_path: Path, metrics: dict[str, Any]) -> tuple[StudyRunner, Path]:
    spec = parse_spec({"methods": ["rlvr:grpo"], "betas": [0.05], "seeds": [0],
                       "certificate": {"enabled": False}, "forecast": {"enabled": False}}, "schema")
    out = tmp_path / "study"

    def evaluate(stage: Any) -> dict[str, Any]:
        folder = out / "evals" / stage.params["model_id"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics_all.json").write_text(json.dumps({"benchmarks": metrics, "safety_sampling": {}}))
        return {"metrics": str(folder / "metrics_all.json")}

    def nothing(stage: Any) -> dict[str, Any]:
        if stage.kind == "guard":
            return {"guarded": False, "reference": "default"}
        return {"model": str(out / "models" / "m")} if stage.kind == "train" else {}

    executors = {"guard": nothing, "train": nothing, "forecast": nothing, "certify": nothing, "eval": evaluate}
    return StudyRunner(spec, out, progress=False, executors=executors), out


def test_the_study_writes_a_summary_the_report_reads(tmp_path: Path) -> None:
    items = [SafetyItem("harmful", i < 3, 0.0, f"h{i}") for i in range(4)]
    harmbench = {**safety_metrics(items), "judge": {"name": "keyword", "version": "1", "agreement": None}}
    runner, out = _study(tmp_path, {"harmbench": harmbench})
    runner.run()
    summary = load_summary(out)
    assert isinstance(summary, Summary) and summary.judge is not None and summary.judge.name == "keyword"
    written = json.loads((out / "summary.json").read_text())
    assert written["models"][0]["eval"]["harmbench"] == harmbench  # the producer's shape, nothing added
    assert summary_headline(written) == summary_headline(summary)  # the CLI passes the file's dict


def test_a_stage_file_off_the_schema_fails_the_summary_naming_the_field(tmp_path: Path) -> None:
    items = [SafetyItem("harmful", True, 0.0, "h0")]
    bad = {**safety_metrics(items), "refusal_ratio": 0.5}  # a key no producer writes
    runner, out = _study(tmp_path, {"harmbench": bad})
    with pytest.raises(UserError) as exc:
        runner.run()
    message = str(exc.value)
    assert "metrics_all.json" in message and "benchmarks.harmbench.refusal_ratio" in message
    assert "\n" not in message and not (out / "summary.json").exists()
