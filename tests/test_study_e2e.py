"""The study end to end on a tiny random model: a SIGKILL mid-run followed by --resume gives the same numbers as an
uninterrupted run and redoes no finished stage or stored generation."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml


def tiny_spec(model_dir: Path, data_dir: Path) -> dict:
    return {
        "name": "tiny",
        "base_models": [str(model_dir)],
        "guard": {"mode": "off"},
        "domains": ["arithmetic"],
        "methods": ["sft", "rlvr:grpo"],
        "betas": [0.05],
        "seeds": [0],
        "train": {"max_steps": 2, "per_device_train_batch_size": 4, "save_steps": 1, "learning_rate": 1e-3,
                  "probe": {"enabled": False}},
        "method_overrides": {"rlvr": {"num_generations": 4, "max_completion_length": 8, "task": {"limit": 16}},
                             "sft": {"task": {"limit": 16}, "max_length": 96}},
        "eval": {"suites": ["safety5"], "limit": 2, "judge": "keyword", "max_new_tokens": 8,
                 "extra_benchmarks": ["arithmetic"], "capability_limit": 2, "capability_max_new_tokens": 8},
        "forecast": {"enabled": True, "k": 2, "limit": 2, "max_new_tokens": 8},
        "certificate": {"enabled": True, "limit": 1, "measure": True, "max_new_tokens": 8},
        "data_dir": str(data_dir),
    }


def study_cmd(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rlvr_safety.cli", "study", "--config", str(cfg), "--out", str(out), *extra]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def stages(out: Path) -> dict[str, str]:
    db = out / "study.sqlite"
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=1) as c:
            return dict(c.execute("SELECT stage_id, status FROM stages").fetchall())
    except sqlite3.Error:
        return {}


def started_times(out: Path) -> dict[str, float]:
    with sqlite3.connect(out / "study.sqlite") as c:
        return dict(c.execute("SELECT stage_id, started FROM stages WHERE status='done'").fetchall())


def numbers(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return {m["id"]: m["eval"] for m in summary["models"]}


def generation_count(out: Path) -> int:
    total = 0
    for db in out.glob("evals/*/store.sqlite"):
        with sqlite3.connect(db) as c:
            total += c.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    return total


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, tiny_model_dir, data_dir):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_spec(tiny_model_dir, data_dir)))

    full = tmp_path / "full"
    done = subprocess.run(study_cmd(cfg, full), env=env(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (full / "report.html").exists() and (full / "summary.json").exists()

    killed = tmp_path / "killed"
    proc = subprocess.Popen(study_cmd(cfg, killed), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 900
    target = "train:" + next(s for s in stages(full) if s.startswith("train:") and "rlvr" in s).split(":", 1)[1]
    while time.time() < deadline and stages(killed).get(target) != "done":
        time.sleep(0.2)
    assert stages(killed).get(target) == "done", "the study never reached the kill point"
    time.sleep(1.0)  # let it get into the evaluation stages
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = started_times(killed)
    gens_before = generation_count(killed)
    assert "report" not in before

    resumed = subprocess.run(study_cmd(cfg, killed, "--resume"), env=env(), capture_output=True, text=True,
                             timeout=1200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = started_times(killed)
    assert before and all(after[k] == t for k, t in before.items())  # finished stages were not run again
    assert generation_count(killed) == generation_count(full) >= gens_before
    assert numbers(killed) == numbers(full)

    again = subprocess.run(study_cmd(cfg, killed), env=env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--resume" in again.stderr
