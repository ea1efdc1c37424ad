"""benchmarks/gpu_check.py and .sh on a CPU: argument checks, the dry-run plan, a tiny end-to-end run of both arms,
and the shell wrapper's preflight naming a missing package. (The real check needs a GPU; see docs/scaling.md.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu_check  # noqa: E402


@pytest.mark.parametrize("argv,message", [
    (["--steps", "1"], "--steps must be >= 2"),
    (["--arms", "ours,deepspeed"], "--arms: unknown"),
    (["--completions", "60", "--num-generations", "8"], "multiple of --num-generations"),
    (["--vllm-memory", "1.5"], "--vllm-memory"),
])
def test_bad_arguments_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_dry_run_plans_a_half_billion_qwen2_and_validates_each_arm(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_check.main(["--dry-run", "--arms", "ours,trl"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["dry_run"] and plan["model"] == "qwen2-0.5b"
    assert 4.5e8 < plan["params"] < 5.5e8  # Qwen2.5-0.5B's shape, its vocabulary size
    assert plan["arms"]["ours"] == plan["arms"]["trl"]  # the same recipe config for both
    assert "dtype=bf16" in plan["arms"]["ours"] and "kl_mode=loss" in plan["arms"]["ours"]


def test_tiny_run_times_both_arms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = gpu_check.main(["--tiny", "--steps", "2", "--arms", "ours,trl,vllm", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert code == 0, res["arms"]
    for arm in ("ours", "trl"):
        stats = res["arms"][arm]
        assert stats["steps"] == 2 and stats["step_s"] > 0 and stats["completion_tokens_per_s"] > 0, stats
    assert res["arms"]["vllm"]["skipped"].startswith("skipped: needs vllm")
    assert res["ratios"]["ours_step_over_trl"] > 0 and res["ratios"]["vllm_speedup_over_ours"] is None
    assert "ours_step_over_trl" in capsys.readouterr().out


def test_shell_wrapper_names_a_missing_package(tmp_path: Path) -> None:
    bare = tmp_path / "python-without-site"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")  # no site-packages: pydantic etc. missing
    bare.chmod(0o755)
    env = {**os.environ, "PYTHON": str(bare), "OUT": str(tmp_path / "out"), "WHEELS": str(tmp_path / "none")}
    result = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--tiny"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert "preflight failed" in result.stderr and "No module named" in result.stderr
