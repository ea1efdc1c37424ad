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
from ..models import release_memory
from ..progress import reporting
from ..store import Store
from .grid import RunSpec, Stage, check_order, expand_runs, plan, reference_id, slug
from .spec import StudySpec

if TYPE_CHECKING:
    from ..training.config import CommonConfig, GuardConfig

log = logging.getLogger(__name__)
STORE = "study.sqlite"


class StudyRunner:
    def __init__(self, spec: StudySpec, out: Path, resume: bool = False, progress: bool = True,
                 executors: dict[str, Callable[[Stage], dict[str, Any]]] | None = None) -> None:
        self.spec, self.out, self.progress = spec, Path(out), progress
        self.display: Any = None  # a study.console.StudyDisplay, set by the CLI
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
                if self.display is not None:
                    self.display.skip(i, stage.id)
                continue
            pending = [d for d in stage.deps if self.store.stage_status(d) != "done"]
            if pending:
                raise RuntimeError(f"stage {stage.id} needs {pending} done first")
            if self.display is not None:
                self.display.start(i, stage.id, stage_summary(self.spec, stage))
            else:
                self._say(f"[{i}/{len(self.stages)}] {stage.id}")
            log.info("[%d/%d] %s: started", i, len(self.stages), stage.id)
            self.store.set_stage(stage.id, "running")
            t0, cpu0 = time.time(), _cpu_seconds()
            try:
                with reporting(self.display.sink if self.display is not None else None):
                    artifacts = self.executors[stage.kind](stage)
            except BaseException as exc:
                self.store.set_stage(stage.id, "failed", error=f"{type(exc).__name__}: {exc}")
                if self.display is not None:
                    self.display.fail(i, stage.id, type(exc).__name__)
                raise
            finally:
                release_memory()  # what the stage loaded (trainer, models, judge) is freed before the next loads
            # CPU seconds beside wall seconds: on a shared machine the wall time is inflated by other processes,
            # the CPU time much less (docs/demo-results.md compares stages by it)
            artifacts = {**artifacts, "seconds": round(time.time() - t0, 2), "cpu_seconds": round(_cpu_seconds() - cpu0, 2)}
            self.store.set_stage(stage.id, "done", artifacts=artifacts)
            log.info("[%d/%d] %s: done in %.1f s", i, len(self.stages), stage.id, artifacts["seconds"])
            if self.display is not None:
                self.display.finish(i, stage.id)

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
        adapter = None if g.mode == "train" else self._guard_adapter(base)
        if adapter is not None:
            return {**self._check_guard_adapter(base, adapter, cfg, out), "base_refusal_rate": base_rate}
        info = self._train_recipe(cfg, out)
        return {"reference": info["model"], "guarded": True, "base_refusal_rate": base_rate, "judge": cfg.judge,
                "train": info}

    def _guard_adapter(self, base: str) -> Path | None:
        """The adapter the guard stage checks instead of training: the shipped one, or the folder `guard.adapter`
        names (None: train)."""
        name = self.spec.guard.adapter
        if name is None:
            return None
        if name == "shipped":
            from ..assets import guard_adapter

            return guard_adapter(base)
        folder = Path(name).expanduser()
        if not (folder / "adapter_config.json").is_file():
            raise UserError(f"guard.adapter: {folder} holds no adapter_config.json; name a LoRA adapter folder, "
                            "'shipped', or null to train")
        return folder

    def _check_guard_adapter(self, base: str, adapter: Path, cfg: GuardConfig, out: Path) -> dict[str, Any]:
        """Copy the adapter into the study (over `base`) and check it: greedy refusal on the first `probe_n`
        prompts its recipe held out (the check, not a reported metric) must reach `guard.threshold`."""
        import shutil

        from ..atomic import replace_dir_atomic
        from ..data.records import Record
        from ..evaluation.runner import evaluate_records
        from ..generation.base import GenerationParams, get_generator
        from ..judges.registry import build_judge
        from ..models import model_fingerprint
        from ..training.guard import split_harmful

        g = self.spec.guard
        target = out / "model"
        if not (target / "adapter_config.json").exists():
            def fill(tmp: Path) -> None:
                for f in adapter.iterdir():
                    if f.is_file():
                        shutil.copy2(f, tmp / f.name)
                meta = json.loads((tmp / "adapter_config.json").read_text())
                meta["base_model_name_or_path"] = base
                (tmp / "adapter_config.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

            replace_dir_atomic(target, fill)
        provenance = json.loads((adapter / "provenance.json").read_text()) if (
            adapter / "provenance.json").is_file() else {}
        _, heldout = split_harmful(cfg)
        records = [Record(id=f"guard-heldout/{i}", prompt=p, benchmark=cfg.harmful, label="harmful")
                   for i, p in enumerate(heldout[:g.probe_n])]
        params = GenerationParams(max_new_tokens=48, batch_size=self.spec.eval.batch_size)
        model = str(target)
        with Store(out / "check.sqlite") as store:
            m = evaluate_records(store, model_fingerprint(model), cfg.harmful, records,
                                 lambda: get_generator("hf", model), lambda: build_judge(cfg.judge),
                                 params, params, progress=False)
        rate = float(m["refusal_rate"]["rate"])
        if rate < g.threshold:
            raise UserError(f"guard adapter {adapter} refuses only {rate:.2f} of {len(records)} held-out harmful "
                            f"prompts (< guard.threshold {g.threshold}); set guard.mode: train to train one")
        shipped_cfg = provenance.get("config") or {}
        same = all(shipped_cfg.get(k) == v for k, v in cfg.model_dump(mode="json").items()
                   if k in shipped_cfg and k not in ("data_dir", "model", "save_adapter"))
        return {"reference": model, "guarded": True, "judge": cfg.judge, "adapter": str(adapter),
                "check": {"refusal_rate": rate, "n": len(records), "greedy": True, "max_new_tokens": 48},
                "adapter_heldout_refusal": provenance.get("heldout_refusal"),
                "config_matches_guard_config": same}

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
        from ..evaluation.runner import run_eval

        model_id = stage.params["model_id"]
        if "run" in stage.params:
            model = self.artifacts(f"train:{model_id}")["model"]
        else:
            model = self.reference(stage.params["base"])
        cfg = self.spec.eval_config(model)
        out = self.out / "evals" / model_id
        _, capability, limits = self.spec.eval_plan()
        # one model load for every benchmark; generated task items come held out from every run's training items
        records = {n: self._heldout_task_records(n, limits[n]) for n in capability if n == "arithmetic"}
        result = run_eval(cfg, out, records=records, progress=self.progress)
        payload: dict[str, Any] = {"benchmarks": result["benchmarks"],
                                   "safety_sampling": {"temperature": cfg.temperature, "seed": cfg.seed,
                                                       "max_new_tokens": cfg.max_new_tokens}}
        if records:
            payload["heldout_tasks"] = {n: {"seed": self.spec.eval.task_seed, "n": len(r)} for n, r in records.items()}
        write_json_atomic(out / "metrics_all.json", payload)
        return {"model": model, "metrics": str(out / "metrics_all.json")}

    def _heldout_task_records(self, name: str, limit: int | None) -> list[Any]:
        """Generated task items for evaluation (seed eval.task_seed), minus any question a run trains on, put to
        the model exactly as training puts them (with the answer instruction)."""
        from dataclasses import replace

        from ..data import load_benchmark
        from ..data.arithmetic import generate_problems

        n = limit or 100
        trained: set[str] = set()
        for run in expand_runs(self.spec):
            task = getattr(self.spec.run_config(run), "task", None)
            if task is not None and task.name == name:
                trained.update(p["question"] for p in generate_problems(n=task.limit or 256, seed=run.seed,
                                                                        level=task.level))
        pool = load_benchmark(name, limit=2 * n + 50, seed=self.spec.eval.task_seed)
        from ..data.arithmetic import ANSWER_INSTRUCTION

        kept = [replace(r, prompt=f"{r.prompt}\n{ANSWER_INSTRUCTION}") for r in pool if r.prompt not in trained]
        return kept[:n]

    def _forecast(self, stage: Stage) -> dict[str, Any]:
        from ..evaluation.forecast import run_forecast_config

        p = stage.params
        # one folder (one store) per base model and domain: the reference samples do not depend on beta, so the
        # forecasts at every beta reweight the same samples; each beta's result is kept as forecast_b<beta>.json
        out = self.out / "forecast" / f"{slug(p['base'])}_{p['domain']}"
        # the run's own task and seed: the forecast samples its training prompts
        cfg = self.spec.forecast_config(p["base"], p["domain"], p["beta"], model=self.reference(p["base"]))
        result = run_forecast_config(cfg, out)
        kept = out / f"forecast_b{p['beta']:g}.json"
        write_json_atomic(kept, json.loads((out / "forecast.json").read_text()))
        return {"forecast": str(kept), "mean_drift": (result.get("summary") or {}).get("mean_drift")}

    def _certify(self, stage: Stage) -> dict[str, Any]:
        from ..evaluation.certify import certify_from_eval, run_certify_config

        run: RunSpec = stage.params["run"]
        policy = self.artifacts(f"train:{run.id}")["model"]
        cfg = self.spec.certify_config(run, policy=policy, reference=self.reference(run.base))
        out = self.out / "certificates" / run.id
        if self.spec.certificate.source == "eval":
            from ..data import load_benchmark

            safety, _, limits = self.spec.eval_plan()
            items = {n: [r.id for r in load_benchmark(n, data_dir=_path(self.spec.data_dir), limit=limits[n])
                         if r.label == "harmful"] for n in safety}
            ref_id = reference_id(run.base)
            ev = self.spec.eval_config(policy)  # the eval's sampling and judge: the certificate scores its samples
            certify_from_eval(policy=cfg.policy, reference=cfg.reference,
                              policy_eval=self.out / "evals" / run.id, reference_eval=self.out / "evals" / ref_id,
                              items={n: ids for n, ids in items.items() if ids}, params=ev.safety_params(),
                              out=out, judge=ev.judge, measure=cfg.measure, n_resamples=cfg.n_resamples,
                              alpha=cfg.alpha, logprob_batch_size=cfg.logprob_batch_size)
            return {"certificate": str(out / "certificate.json"), "source": "eval"}
        run_certify_config(cfg, out)
        return {"certificate": str(out / "certificate.json")}

    def _report(self, stage: Stage) -> dict[str, Any]:
        from .summary import write_summary

        summary_path = write_summary(self)
        from ..report import build_report

        paths = build_report(self.out)
        return {"summary": str(summary_path), **{k: str(v) for k, v in paths.items()}}


def stage_summary(spec: StudySpec, stage: Stage) -> str:
    """What a stage does, in a few words, for the progress display."""
    p = stage.params
    if stage.kind == "guard":
        g = spec.guard
        if g.mode == "off":
            return "no guard"
        return "train the guard recipe" if g.mode == "train" or g.adapter is None else "check the guard adapter"
    if stage.kind == "forecast":
        return f"forecast at beta {p['beta']:g}"
    if stage.kind == "train":
        run: RunSpec = p["run"]
        beta = f" beta={run.beta:g}" if run.beta is not None else ""
        return f"train {run.label}{beta}"
    if stage.kind == "eval":
        return "safety and task eval"
    if stage.kind == "certify":
        return "certificate from the eval's samples" if spec.certificate.source == "eval" else "certificate"
    return "summary and report"


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


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
    per_model_prompts = sum(n or 0 for n in spec.eval_plan()[2].values())
    judges = {s.id: spec.stage_judges(s.kind, run=s.params.get("run"), base=s.params.get("base"))
              for s in stages}
    return {"runs": [r.id for r in runs], "stages": [s.id for s in stages], "judges": judges,
            "backends": training_backends(spec, runs),
            "cost": {"training_runs": len(runs), "training_steps": steps, "models_evaluated": n_models,
                     "eval_generations": n_models * per_model_prompts,
                     "references": [reference_id(b) for b in spec.base_models]}}
