"""The Ray study backend on a real local Ray runtime, with fake stage executors (no models).

The executors are closures, so Ray pickles them by value and the workers need not import this test module.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.study.grid import plan
from rlvr_safety.study.ray_backend import split_plan
from rlvr_safety.study.spec import parse_spec

SPEC = parse_spec({"methods": ["sft", "rlvr:grpo"], "betas": [0.05], "seeds": [0]}, "test")
FAILING = "eval:default_rlvr-grpo_arithmetic_b0.05_s0"


def fake_executors(token: str, fail_at: str | None = None):
    """Artifacts record the process and the call that ran each stage."""
    def make(kind):
        def run(stage):
            if stage.id == fail_at:
                raise ValueError(f"boom at {stage.id}")
            return {"kind": kind, "pid": os.getpid(), "token": token, "reference": "default",
                    "model": f"/models/{stage.id}"}
        return run
    return {k: make(k) for k in ("guard", "forecast", "train", "eval", "certify", "report")}


def test_missing_ray_is_a_user_error(tmp_path, monkeypatch):
    from rlvr_safety.study.ray_backend import run_with_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserError, match=r"pip install 'rlvr-safety\[ray\]'"):
        run_with_ray(SPEC, tmp_path / "study", executors=fake_executors("x"))


def test_split_plan_groups_each_run_into_one_chain():
    before, chains, after = split_plan(plan(SPEC))
    assert before == ["guard:default", "forecast:default:arithmetic:b0.05"]
    assert chains == [[f"{k}:default_sft_arithmetic_s0" for k in ("train", "eval", "certify")],
                      [f"{k}:default_rlvr-grpo_arithmetic_b0.05_s0" for k in ("train", "eval", "certify")]]
    assert after == ["eval:default_reference", "report"]


def test_chains_run_in_ray_workers_and_resume(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    from rlvr_safety.study.ray_backend import run_with_ray

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    out = tmp_path / "study"
    _, chains, _ = split_plan(plan(SPEC))
    ok_chain, bad_chain = chains
    t0 = time.time()

    # First call: one chain fails; the other chain still finishes, the report does not run.
    with pytest.raises(RuntimeError, match="rerun with --resume") as exc:
        run_with_ray(SPEC, out, executors=fake_executors("first", fail_at=FAILING), num_cpus=2, progress=False)
    assert FAILING in str(exc.value) and "boom" in str(exc.value)
    logs = re.search(r"worker logs under (\S+);", str(exc.value))
    if logs and "rlvr-ray-" in logs.group(1):
        shutil.rmtree(logs.group(1), ignore_errors=True)
    from rlvr_safety.store import Store

    with Store(out / "study.sqlite") as store:
        assert all(store.stage_status(s) == "done" for s in ok_chain)
        assert store.stage_status(FAILING) == "failed" and store.stage_status("report") is None

    # Resume: only the failed stage and what follows it in its chain run, then the driver's stages.
    result = run_with_ray(SPEC, out, resume=True, executors=fake_executors("second"), num_cpus=2,
                          progress=False)
    stages = result["stages"]
    assert set(stages) == {s.id for s in plan(SPEC)} and result["seconds"] > 0
    driver = os.getpid()
    for sid in ok_chain + bad_chain:
        assert stages[sid]["pid"] != driver, sid  # ran in a Ray worker
    for sid in ("guard:default", "forecast:default:arithmetic:b0.05", "eval:default_reference", "report"):
        assert stages[sid]["pid"] == driver, sid
    assert {stages[s]["token"] for s in ok_chain} == {"first"}
    assert [stages[s]["token"] for s in bad_chain] == ["first", "second", "second"]
    assert stages["report"]["token"] == "second"

    # Everything done: nothing reruns and Ray is not even started.
    again = run_with_ray(SPEC, out, resume=True, executors=fake_executors("third"), progress=False)
    assert {a["token"] for a in again["stages"].values()} <= {"first", "second"}
    assert not any(home.iterdir()), "nothing may be written to the home folder"
    assert time.time() - t0 < 90
