"""Run a study's stages in order, each recorded in OUT/study.sqlite; `--resume` skips what is done.

Every stage is itself resumable (training from its last checkpoint, eval/forecast/certify from their stores), so a
SIGKILL at any point costs at most the work in flight. Artifacts (model folders, JSON results) are written
atomically, and a stage is marked done only after its artifacts exist.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_json_atomic
from ..errors import UserError
from ..store import Store
from ..training.config import RLConfig
from .grid import RunSpec, Stage, check_order, expand_runs, plan, reference_id, slug
from .spec import StudySpec

if TYPE_CHECKING:
    from ..training.config import CommonConfig

log = logging.getLogger(__name__)
STORE = "study.sqlite"


class StudyRunner:
    def __init__(self, spec: StudySpec, out: Path, resume: bool = False, progress: bool = True,
                 executors: dict[str, Callable[[Stage], dict[str, Any]]] | None = None) -> None:
        self.spec, self.out, self.progress = spec, Path(out), progress
        spec.check_configs()  # a spec built in code gets the same checks as one loaded from YAML
        self.stages = plan(spec)
        check_order(self.stages)
        self._check_out(resume)
        self.out.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.out / STORE)
        self.executors: dict[str, Callable[[Stage], dict[str, Any]]] = {
            "guard": self._guard, "forecast": self._forecast, "train": self._train, "eval": self._eval,
            "certify": self._certify, "report": self._report, **(executors or {})}

    def _check_out(self, resume: bool) -> None:
        spec_file = self.out / "spec.json"
        if not spec_file.exists():
            return
        if not resume:
            raise UserError(f"{self.out} already holds a study; pass --resume to continue it or choose a new --out")
        old = json.loads(spec_file.read_text())
        if old != json.loads(self.spec.model_dump_json()):
            raise UserError(f"{self.out} holds a study with a different spec; use a new --out (or the same spec)")

    # driver ------------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        write_json_atomic(self.out / "spec.json", json.loads(self.spec.model_dump_json()))
        started = time.time()
        self.store.start_run("study", "study", json.loads(self.spec.model_dump_json()))
        self.run_stages([s.id for s in self.stages])
        self.store.finish_run("study")
        return {"out": str(self.out), "seconds": time.time() - started,
                "stages": {s.id: self.store.stage_artifacts(s.id) for s in self.stages}}

    def run_stages(self, stage_ids: list[str]) -> None:
        """Run the named stages in plan order, skipping those the ledger marks done.

        Split out of run() so another driver (the Ray backend) can hand disjoint parts of the plan to separate
        processes that share one ledger. A stage whose dependency is not done is refused rather than run on
        missing inputs.
        """
        wanted = set(stage_ids)
        unknown = wanted - {s.id for s in self.stages}
        if unknown:
            raise ValueError(f"stages not in this study's plan: {sorted(unknown)}")
        for i, stage in enumerate(self.stages, 1):
            if stage.id not in wanted:
                continue
            if self.store.stage_status(stage.id) == "done":
                log.info("[%d/%d] %s: done earlier, skipped", i, len(self.stages), stage.id)
                continue
            pending = [d for d in stage.deps if self.store.stage_status(d) != "done"]
            if pending:
                raise RuntimeError(f"stage {stage.id} needs {pending} done first")
            self._say(f"[{i}/{len(self.stages)}] {stage.id}")
            self.store.set_stage(stage.id, "running")
            t0 = time.time()
            try:
                artifacts = self.executors[stage.kind](stage)
            except BaseException as exc:
                self.store.set_stage(stage.id, "failed", error=f"{type(exc).__name__}: {exc}")
                raise
            artifacts = {**artifacts, "seconds": round(time.time() - t0, 2)}
            self.store.set_stage(stage.id, "done", artifacts=artifacts)

    def _say(self, message: str) -> None:
        if self.progress:
            from rich.console import Console
            from rich.text import Text

            # a Text, not markup: stage ids carry model names from the spec
            Console(stderr=True).print(Text.assemble(("study", "bold cyan"), f" {message}"), highlight=False)

    def artifacts(self, stage_id: str) -> dict[str, Any]:
        return self.store.stage_artifacts(stage_id)

    def reference(self, base: str) -> str:
        return str(self.artifacts(f"guard:{slug(base)}")["reference"])

    # stages ------------------------------------------------------------------------------------------------------
    def _guard(self, stage: Stage) -> dict[str, Any]:
        base = stage.params["base"]
        g = self.spec.guard
        if g.mode == "off":
            return {"reference": base, "guarded": False, "reason": "guard: off"}
        base_rate = None
        cfg = self.spec.guard_config(base)
        if g.mode == "auto":
            base_rate = self._refusal_rate(base, g.probe_benchmark, g.probe_n, self.out / "guard" / slug(base),
                                           cfg.judge)
            if base_rate >= g.threshold:
                return {"reference": base, "guarded": False, "base_refusal_rate": base_rate, "judge": cfg.judge,
                        "reason": f"base refuses {base_rate:.2f} >= threshold {g.threshold}: guard not needed"}
        out = self.out / "models" / f"{slug(base)}_guard"
        info = self._train_recipe(cfg, out)
        return {"reference": info["model"], "guarded": True, "base_refusal_rate": base_rate, "judge": cfg.judge,
                "train": info}

    def _refusal_rate(self, model: str, benchmark: str, n: int, out: Path, judge: str) -> float:
        """Refusal rate on the LAST n prompts of the guard's harmful source (its training split is seeded
        and shuffled, so this is only a decision probe, not a reported metric)."""
        from ..data import load_benchmark
        from ..evaluation.runner import evaluate_records
        from ..generation.base import GenerationParams, get_generator
        from ..judges.registry import build_judge
        from ..models import model_fingerprint

        records = load_benchmark(benchmark, data_dir=self.spec.data_dir)[-n:]
        params = GenerationParams(max_new_tokens=48, batch_size=self.spec.eval.batch_size)
        with Store(out / "store.sqlite") as store:
            m = evaluate_records(store, model_fingerprint(model), benchmark, records,
                                 lambda: get_generator("hf", model), lambda: build_judge(judge),
                                 params, params, progress=self.progress)
        return float(m["refusal_rate"]["rate"])

    def _train_recipe(self, cfg: CommonConfig, out: Path) -> dict[str, Any]:
        """Train a validated config (no file round trip); config.json records what was trained."""
        from ..training import run_config

        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", cfg.model_dump(mode="json"))
        if (out / "model" / "config.json").exists() and (out / "train_summary.json").exists():
            return json.loads((out / "train_summary.json").read_text())
        info = run_config(cfg, out, resume=True)
        write_json_atomic(out / "train_summary.json", info)
        return info

    def _run_config(self, run: RunSpec) -> CommonConfig:
        """The run's validated recipe config, starting from the guard stage's reference."""
        return self.spec.run_config(run, model=self.reference(run.base))

    def _train(self, stage: Stage) -> dict[str, Any]:
        run: RunSpec = stage.params["run"]
        info = self._train_recipe(self._run_config(run), self.out / "models" / run.id)
        return {"model": info["model"], "store": info.get("store"), "steps": info.get("steps"),
                "stopped_by": info.get("stopped_by"), "kl_mode": info.get("kl_mode"),
                "objective": info.get("objective"), "run": asdict(run)}

    def _eval(self, stage: Stage) -> dict[str, Any]:
        from ..evaluation.runner import EvalSpec, run_eval
        from ..generation.base import GenerationParams

        model_id = stage.params["model_id"]
        if "run" in stage.params:
            model = self.artifacts(f"train:{model_id}")["model"]
        else:
            model = self.reference(stage.params["base"])
        e = self.spec.eval
        out = self.out / "evals" / model_id
        # Capability suites get their own (usually smaller) limit: long answers dominate CPU time.
        payload: dict[str, Any] = {"benchmarks": {}}
        safety = [s for s in e.suites if s != "capability"]
        capability = (["capability"] if "capability" in e.suites else []) + e.extra_benchmarks
        groups = [(safety, e.limit), (capability, e.capability_limit or e.limit)]
        for names, limit in groups:
            if not names:
                continue
            spec = EvalSpec(model=model, benchmarks=names, out=out, limit=limit, data_dir=_path(self.spec.data_dir),
                            judge=e.judge or self.spec.judge, second_judges=list(e.second_judges),
                            safety_params=GenerationParams(max_new_tokens=e.max_new_tokens, batch_size=e.batch_size),
                            capability_params=GenerationParams(max_new_tokens=e.capability_max_new_tokens,
                                                               batch_size=e.batch_size))
            result = run_eval(spec, progress=self.progress)
            payload["benchmarks"].update(result["benchmarks"])
        write_json_atomic(out / "metrics_all.json", payload)
        return {"model": model, "metrics": str(out / "metrics_all.json")}

    def _forecast(self, stage: Stage) -> dict[str, Any]:
        from ..evaluation.forecast import run_forecast

        p = stage.params
        f = self.spec.forecast
        out = self.out / "forecast" / f"{slug(p['base'])}_{p['domain']}_b{p['beta']:g}"
        run = forecast_run(self.spec, p["base"], p["domain"], p["beta"])
        cfg = self.spec.run_config(run)
        assert isinstance(cfg, RLConfig)
        task = cfg.task  # the run's own task: the forecast samples its training prompts
        result = run_forecast(model=self.reference(p["base"]), task=task.name, beta=p["beta"], seed=run.seed,
                              k=f.k, limit=f.limit, judge=f.judge or self.spec.judge, out=out,
                              data_dir=_path(self.spec.data_dir), max_new_tokens=f.max_new_tokens,
                              task_config=task)
        return {"forecast": str(out / "forecast.json"), "mean_drift": (result.get("summary") or {}).get("mean_drift")}

    def _certify(self, stage: Stage) -> dict[str, Any]:
        from ..evaluation.certify import run_certify

        run: RunSpec = stage.params["run"]
        c = self.spec.certificate
        out = self.out / "certificates" / run.id
        run_certify(policy=self.artifacts(f"train:{run.id}")["model"], reference=self.reference(run.base),
                    suite="safety5", limit=c.limit, judge=c.judge or self.spec.judge, measure=c.measure, out=out,
                    data_dir=_path(self.spec.data_dir), max_new_tokens=c.max_new_tokens)
        return {"certificate": str(out / "certificate.json")}

    def _report(self, stage: Stage) -> dict[str, Any]:
        from .summary import write_summary

        summary_path = write_summary(self)
        from ..report import build_report

        paths = build_report(self.out)
        return {"summary": str(summary_path), **{k: str(v) for k, v in paths.items()}}


def forecast_run(spec: StudySpec, base: str, domain: str, beta: float) -> RunSpec:
    """The RL run whose training prompts a forecast stage samples: the first rlvr run (else rlhf) of the grid with
    that base model, domain and beta."""
    runs = [r for r in expand_runs(spec) if (r.base, r.domain, r.beta) == (base, domain, beta)]
    return next((r for r in runs if r.method == "rlvr"), runs[0])


def _path(value: str | None) -> Path | None:
    from ..paths import data_dir

    return data_dir(value)


def training_backends(spec: StudySpec, runs: list[Any]) -> dict[str, str]:
    """Train stage id -> the engine it runs on, for runs not on the default TRL backend (e.g. ppo on verl)."""
    from ..training.config import RLConfig
    from ..training.verl import describe

    out: dict[str, str] = {}
    for run in runs:
        cfg = spec.run_config(run)
        if isinstance(cfg, RLConfig) and cfg.backend == "verl":
            out[f"train:{run.id}"] = describe(cfg)
    return out


def describe_plan(spec: StudySpec) -> dict[str, Any]:
    """What `--dry-run` prints: every stage with the judge(s) it uses, and a rough cost in training steps and
    generations (steps from each run's validated recipe config)."""
    stages = plan(spec)
    runs = expand_runs(spec)
    steps = sum(spec.run_config(run).max_steps for run in runs)
    n_models = len(runs) + len(spec.base_models)
    per_model_prompts = (spec.eval.limit or 0) * 5 + (spec.eval.capability_limit or spec.eval.limit or 0) * 4
    judges = {s.id: spec.stage_judges(s.kind, run=s.params.get("run"), base=s.params.get("base"))
              for s in stages}
    return {"runs": [r.id for r in runs], "stages": [s.id for s in stages], "judges": judges,
            "backends": training_backends(spec, runs),
            "cost": {"training_runs": len(runs), "training_steps": steps, "models_evaluated": n_models,
                     "eval_generations": n_models * per_model_prompts,
                     "references": [reference_id(b) for b in spec.base_models]}}
