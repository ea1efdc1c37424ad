"""The Ray backend on a two-node local cluster started by the test (ray.cluster_utils.Cluster: a head with no GPU,
a worker node declaring one), with fake stage executors and a worker killed mid-chain.

Checks: each chain asks for its stages' resources (GPUs default to 1 on a cluster with GPUs) and Ray places it on
the node that has them; every stage records where it ran; the chain whose worker died is rerun by Ray and only its
unfinished stages run again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from rlvr_safety.study.grid import plan
from rlvr_safety.study.ray_backend import chain_resources, split_plan
from rlvr_safety.study.spec import parse_spec

SPEC = parse_spec({"methods": ["sft", "rlvr:grpo"], "betas": [0.05], "seeds": [0], "guard": {"mode": "off"},
                   "forecast": {"enabled": False},
                   "resources": {"train": {"num_cpus": 1}, "eval": {"memory_gb": 0.25}}}, "test")
CRASH = "eval:default_rlvr-grpo_arithmetic_b0.05_s0"


def executors(calls: Path, crash_marker: Path) -> dict[str, Any]:
    """Each call appends the stage id to `calls`; the first call of CRASH kills its worker process."""

    def make(kind: str) -> Any:
        def run(stage: Any) -> dict[str, Any]:
            with calls.open("a") as fh:
                fh.write(stage.id + "\n")
            if stage.id == CRASH and not crash_marker.exists():
                crash_marker.write_text("crashed once")
                os._exit(1)  # the worker dies mid-stage, like a lost node
            return {"kind": kind, "pid": os.getpid(), "reference": "default", "model": f"/models/{stage.id}"}

        return run

    return {k: make(k) for k in ("guard", "forecast", "train", "eval", "certify", "report")}


def test_chain_resources_from_the_spec() -> None:
    assert chain_resources(SPEC, ["train", "eval", "certify"], cluster_gpus=0) == {
        "num_cpus": 1.0, "num_gpus": 0.0, "memory": 0.25 * 2**30}
    assert chain_resources(SPEC, ["train"], cluster_gpus=8)["num_gpus"] == 1.0  # not 0 on a GPU cluster
    assert chain_resources(SPEC, ["train"], cluster_gpus=8, gpus_per_run=2)["num_gpus"] == 2
    spec = parse_spec({"resources": {"train": {"num_gpus": 4, "num_cpus": 8}, "certify": {"num_gpus": 1}}}, "t")
    assert chain_resources(spec, ["train", "eval", "certify"], cluster_gpus=0) == {"num_cpus": 8.0, "num_gpus": 4.0}


@pytest.mark.slow
def test_two_node_cluster_places_by_resources_and_survives_a_lost_worker(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from rlvr_safety.store import Store
    from rlvr_safety.study.ray_backend import run_with_ray

    monkeypatch.setenv("HOME", str(tmp_path))  # Ray writes nothing of ours to the real home folder
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.time()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0,
                                                            "include_dashboard": False})
    try:
        gpu_node = cluster.add_node(num_cpus=2, num_gpus=1)
        cluster.wait_for_nodes()
        out, calls, marker = tmp_path / "study", tmp_path / "calls.txt", tmp_path / "crashed"
        result = run_with_ray(SPEC, out, executors=executors(calls, marker), address=cluster.address,
                              progress=False)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert marker.exists()  # the fault was injected
    ran = calls.read_text().splitlines()
    _, chains, _ = split_plan(plan(SPEC))
    crashed_chain = next(c for c in chains if CRASH in c)
    # Ray reran the chain; its train stage (done before the crash) did not run again, the killed stage did
    assert ran.count(crashed_chain[0]) == 1 and ran.count(CRASH) == 2 and ran.count(crashed_chain[2]) == 1
    assert all(ran.count(s) == 1 for c in chains if c is not crashed_chain for s in c)
    stages = result["stages"]
    with Store(out / "study.sqlite") as store:
        assert all(store.stage_status(s) == "done" for c in chains for s in c)
    for chain in chains:
        for sid in chain:
            where = stages[sid]["placement"]
            # GPUs defaulted to 1 per chain on this GPU cluster: every chain ran on the node that has the GPU
            assert where["node_id"] == gpu_node.node_id and where["gpu_ids"] == ["0"], sid
            assert where["hostname"] and where["pid"] != os.getpid()
    assert time.time() - t0 < 120
