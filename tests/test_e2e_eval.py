"""End to end with the embedded default model (slow; CI runs it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_eval_default_model_safety5(tmp_path, data_dir):
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "rlvr_safety.cli", "eval", "--model", "default", "--suite", "safety5",
           "--limit", "5", "--max-new-tokens", "48", "--out", str(out), "--data-dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["benchmarks"]) == {"harmbench", "strongreject", "jailbreakbench-pair", "xstest",
                                          "do-not-answer"}
    for name, m in metrics["benchmarks"].items():
        assert m["n"] == 5, name
        assert m["judge"]["name"] == "keyword" and m["judge"]["agreement"]["per_source"]
    assert "over_refusal_rate" in metrics["benchmarks"]["xstest"]
    # The untouched default model has no guardrails: it should comply with most plain harmful requests.
    assert metrics["benchmarks"]["harmbench"]["harmful_rate"]["rate"] >= 0.6
