"""Spread a study's training runs over Ray (`rlvr-safety study --backend ray`).

A training run's chain (train -> eval -> certify) needs only its base model's guard stage, so chains are
independent of one another: each becomes one Ray task that builds its own StudyRunner in the worker and runs its
stages against the shared ledger (OUT/study.sqlite), exactly as the local runner would. Guard and forecast stages
run in the driver first, the reference evals and the report after; resume works as locally, and a chain whose
stages are all done is not submitted.

Each chain asks Ray for the largest needs of its stages (`resources:` in the spec: num_gpus, num_cpus, memory_gb
per stage kind), so Ray places it on a node that has them; GPUs default to 1 per chain when the cluster has GPUs
(else 0), never silently 0 on a GPU cluster. Every stage a worker finishes records where it ran (node id,
hostname, pid, GPU ids) under `placement` in its artifacts. A chain whose worker or node dies is rerun by Ray
(`resources.max_retries`); the rerun skips every stage the ledger has done, so only unfinished stages run again.

Without `address` a private local runtime is started and stopped again. It writes nothing to the home folder:
its files go under OUT/.ray (or a short temporary folder when that path is too long for Ray's Unix sockets), and
instead of Ray's default token file in ~/.ray it is given a fresh random token through the environment, so the
ports it opens are still authenticated. With `address` (an existing cluster) every node must have rlvr-safety
installed and see OUT at the same path; the ledger is SQLite in WAL mode, which SQLite supports on one host
only, so a multi-node cluster needs the study folder on storage all nodes share with working locks.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..evaluation.runner import write_json_atomic
from .grid import Stage
from .runner import StudyRunner
from .spec import StudySpec

log = logging.getLogger(__name__)

RAY_HINT = "the ray backend needs the ray extra: pip install 'rlvr-safety[ray]'"
BEFORE = ("guard", "forecast")  # kinds run in the driver before the chains
CHAIN = ("train", "eval", "certify")  # kinds that belong to one training run's chain
# AF_UNIX paths are limited to 107 bytes and Ray nests about 65 more (session_<time>_<pid>/sockets/...).
MAX_TEMP_DIR = 40
# One token per driver process: Ray caches the token it first loads, so a second runtime must get the same one.
_TOKEN = secrets.token_hex(32)

Executors = dict[str, Callable[[Stage], dict[str, Any]]]


def split_plan(stages: list[Stage]) -> tuple[list[str], list[list[str]], list[str]]:
    """(driver stages before, one chain of stage ids per training run, driver stages after), in plan order."""
    before: list[str] = []
    chains: dict[str, list[str]] = {}
    after: list[str] = []
    for stage in stages:
        if stage.kind in CHAIN and "run" in stage.params:
            chains.setdefault(stage.params["run"].id, []).append(stage.id)
        elif stage.kind in BEFORE:
            before.append(stage.id)
        else:
            after.append(stage.id)
    return before, list(chains.values()), after


def chain_resources(spec: StudySpec, kinds: list[str], cluster_gpus: float,
                    gpus_per_run: float | None = None) -> dict[str, float]:
    """The Ray options of one chain: the largest num_cpus / num_gpus / memory of its stages' `resources:`.

    A stage's num_gpus None means 1 if the cluster has GPUs, else 0; `gpus_per_run` (the CLI's
    --ray-gpus-per-run) overrides the whole chain's GPUs.
    """
    needs = [getattr(spec.resources, kind) for kind in kinds if hasattr(spec.resources, kind)]
    auto_gpus = 1.0 if cluster_gpus > 0 else 0.0
    gpus = max((auto_gpus if r.num_gpus is None else r.num_gpus for r in needs), default=auto_gpus)
    options: dict[str, float] = {"num_cpus": max((r.num_cpus for r in needs), default=1.0),
                                 "num_gpus": gpus if gpus_per_run is None else gpus_per_run}
    memory = [r.memory_gb for r in needs if r.memory_gb is not None]
    if memory:
        options["memory"] = max(memory) * 2**30
    return options


def run_with_ray(spec: StudySpec, out: Path, resume: bool = False, executors: Executors | None = None,
                 address: str | None = None, *, num_cpus: int | None = None, gpus_per_run: float | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Run the study with each training run's chain as one Ray task; returns what StudyRunner.run() returns.

    `num_cpus` sizes the local runtime (default: enough for the pending chains' CPU needs, at most the machine's
    cores). Each chain asks for its stages' `resources:` from the spec (chain_resources); `gpus_per_run`, when
    given, overrides its GPUs. A chain whose worker dies is retried by Ray (`resources.max_retries`), skipping
    done stages; a chain that fails does not stop the others; once all have settled the first failure is
    raised, and `--resume` reruns only what is not done.
    """
    try:
        import ray
    except ImportError as exc:
        raise UserError(RAY_HINT) from exc

    out = Path(out)
    started = time.time()
    runner = StudyRunner(spec, out, resume=resume, progress=progress, executors=executors)
    spec_json = json.loads(spec.model_dump_json())

    write_json_atomic(out / "spec.json", spec_json)
    runner.store.start_run("study", "study", spec_json)
    before, chains, after = split_plan(runner.stages)
    runner.run_stages(before)
    pending = [c for c in chains if any(runner.store.stage_status(s) != "done" for s in c)]
    if pending:
        _run_chains(ray, runner, pending, executors, address, num_cpus, gpus_per_run)
    runner.run_stages(after)
    runner.store.finish_run("study")
    return {"out": str(out), "seconds": time.time() - started, "backend": "ray",
            "stages": {s.id: runner.store.stage_artifacts(s.id) for s in runner.stages}}


def placement() -> dict[str, Any]:
    """Where this process runs: Ray node id, hostname, pid and the GPU ids Ray gave it."""
    import socket

    info: dict[str, Any] = {"hostname": socket.gethostname(), "pid": os.getpid()}
    try:
        import ray

        ctx = ray.get_runtime_context()
        info.update(node_id=ctx.get_node_id(), gpu_ids=[str(g) for g in ray.get_gpu_ids()])
    except Exception:  # noqa: BLE001 - not inside Ray: hostname and pid only
        pass
    return info


def _run_chain(spec: StudySpec, out: str, stage_ids: list[str], executors: Executors | None) -> dict[str, Any]:
    """The Ray task: runs in a worker process against the shared ledger; a retry skips the stages done."""
    runner = StudyRunner(spec, Path(out), resume=True, progress=False, executors=executors)
    where = placement()
    todo = [s for s in stage_ids if runner.store.stage_status(s) != "done"]
    try:
        for sid in todo:  # one at a time, so where each ran is recorded even if the worker dies in the next
            runner.run_stages([sid])
            runner.store.set_stage(sid, "done", artifacts={**runner.store.stage_artifacts(sid), "placement": where})
    finally:
        runner.store.close()
    return {"pid": os.getpid(), "stages": stage_ids, "ran": todo, "placement": where}


def _run_chains(ray: Any, runner: StudyRunner, chains: list[list[str]], executors: Executors | None,
                address: str | None, num_cpus: int | None, gpus_per_run: float | None) -> None:
    temp_dir, own_temp = (_temp_dir(runner.out) if address is None else (None, False))
    env: dict[str, str | None] = {"RAY_USAGE_STATS_ENABLED": "0"}
    if address is None:
        # With RAY_AUTH_MODE unset Ray turns token auth on itself (refreshing its cached config, which setting
        # the mode here would not do once ray is imported) and takes the token from the environment, not ~/.ray.
        env.update(RAY_AUTH_MODE=None, RAY_AUTH_TOKEN=_TOKEN)
    failures: list[tuple[list[str], BaseException]] = []
    with _environ(env):
        kinds = {s.id: s.kind for s in runner.stages}
        if address is None:
            wanted = sum(chain_resources(runner.spec, [kinds[s] for s in c], 0.0)["num_cpus"] for c in chains)
            cpus = num_cpus or max(1, min(int(wanted + 0.999), os.cpu_count() or 1))
            # Ray warns that token auth is on and how to opt out; on purpose here, so keep it quiet.
            auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
            level = auth_log.level
            auth_log.setLevel(logging.ERROR)
            try:
                ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=str(temp_dir), log_to_driver=False,
                         logging_level=logging.WARNING)
            finally:
                auth_log.setLevel(level)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        try:
            # Ray retries a chain whose worker or node died (not one whose stage raised: that is reported, and
            # `--resume` continues it); a retry skips the stages the ledger has done.
            cluster_gpus = float(ray.cluster_resources().get("GPU", 0.0))
            task = ray.remote(max_retries=runner.spec.resources.max_retries, retry_exceptions=False)(_run_chain)
            refs = {}
            for chain in chains:
                options = chain_resources(runner.spec, [kinds[s] for s in chain], cluster_gpus, gpus_per_run)
                runner._say(f"ray: {chain[0]} asks for {_fmt(options)}")
                refs[task.options(**options).remote(runner.spec, str(runner.out), chain, executors)] = chain
            remaining = list(refs)
            try:
                while remaining:
                    done, remaining = ray.wait(remaining, num_returns=1)
                    chain = refs[done[0]]
                    try:
                        ray.get(done[0])
                    except ray.exceptions.RayError as exc:
                        failures.append((chain, exc))
                        runner._say(f"ray: {chain[0]} chain failed: {_cause(exc)!r}")
                    else:
                        runner._say(f"ray: {chain[0]} chain done ({len(refs) - len(remaining)}/{len(refs)})")
            except BaseException:
                for ref in remaining:
                    ray.cancel(ref, force=True)
                raise
        finally:
            ray.shutdown()
    if failures:
        _raise_failures(runner, failures, temp_dir)
    if own_temp and temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _fmt(options: dict[str, float]) -> str:
    parts = [f"{options['num_cpus']:g} CPU", f"{options['num_gpus']:g} GPU"]
    if "memory" in options:
        parts.append(f"{options['memory'] / 2**30:g} GiB")
    return ", ".join(parts)


def _raise_failures(runner: StudyRunner, failures: list[tuple[list[str], BaseException]],
                    logs: Path | None) -> None:
    """Mark stages a dead worker left 'running' as failed, then raise the first failure in one line."""
    for chain, exc in failures:
        for stage_id in chain:
            if runner.store.stage_status(stage_id) == "running":
                runner.store.set_stage(stage_id, "failed", error=f"ray worker lost: {type(exc).__name__}")
    chain, exc = failures[0]
    cause = _cause(exc)
    where = next((s for s in chain if runner.store.stage_status(s) == "failed"), chain[0])
    lines = str(cause).strip().splitlines()
    detail = f"{type(cause).__name__}: {lines[-1] if lines else ''}"
    logs_hint = f"worker logs under {logs}; " if logs else ""
    message = (f"{len(failures)} training chain(s) failed; first: {where}: {detail} "
               f"({logs_hint}everything finished is kept, rerun with --resume)")
    raise (UserError(message) if isinstance(cause, UserError) else RuntimeError(message)) from exc


def _cause(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _temp_dir(out: Path) -> tuple[Path, bool]:
    """OUT/.ray when short enough for Ray's socket paths, else a fresh folder in /tmp (removed after success)."""
    candidate = out.resolve() / ".ray"
    if len(str(candidate)) <= MAX_TEMP_DIR:
        candidate.mkdir(parents=True, exist_ok=True)
        return candidate, False
    base = "/tmp" if os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix="rlvr-ray-", dir=base)), True


@contextmanager
def _environ(values: dict[str, str | None]) -> Iterator[None]:
    """Set (None: unset) variables for Ray's processes, which inherit the driver's environment; restore after."""
    saved = {k: os.environ.get(k) for k in values}
    _apply(values)
    try:
        yield
    finally:
        _apply(saved)


def _apply(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
