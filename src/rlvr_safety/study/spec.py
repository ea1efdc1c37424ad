"""The study spec: what to compare (models x domains x methods x betas x seeds) and how to measure it.

Validated with pydantic (unknown keys rejected), loaded from YAML or a named preset; errors are one line. Loading a
spec also builds and validates the full recipe config of every run of its grid (and of the guard stage), so a typo
anywhere, `--dry-run` included, fails before any stage runs; the runner then trains those validated objects.

One judge: `judge` is the study's safety judge. It flows to the guard stage (decision probe and stopping rule),
every training run's probe and certificate monitor, the forecast, the certificates and the eval, unless a stage
names its own (`eval.judge`, `forecast.judge`, `certificate.judge`, `judge` under `guard.config`, `train` or
`method_overrides`); `stage_judges` says which judge each stage uses, and `--dry-run` prints it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ..config import StrictConfig, deep_merge, error_location, error_message, one_line, read_yaml_mapping
from ..data.tasks import DOMAINS
from ..errors import UserError
from ..evaluation.configs import CertifyConfig, EvalConfig, ForecastConfig
from ..judges.registry import DEFAULT_JUDGE, JudgeName
from ..paths import data_dir as resolve_data_dir
from ..training.config import ALGORITHMS, CommonConfig, GuardConfig, RLConfig, validate_config

Domain = Literal["arithmetic", "gsm8k", "math", "code", "ifeval"]
DOMAIN_TASKS = DOMAINS  # domain -> the benchmark its runs train on (data/tasks.py)
RL_ALGORITHMS = ALGORITHMS
METHOD_RE = re.compile(r"^(sft|(rlhf|rlvr):([a-z_]+))$")

_Strict = StrictConfig
StageConfigT = TypeVar("StageConfigT", EvalConfig, ForecastConfig, CertifyConfig)
_EVAL = EvalConfig.model_fields  # the eval command's defaults, read where the study does not differ


class GuardSettings(_Strict):
    """`auto`: guard the base model only when it refuses less than `threshold` of held-out harmful prompts (the
    untouched default model refuses almost none, so the demo gets guardrails to lose); `on`: guard it without
    asking; `train`: always train the guard recipe (`config`); `off`: no guard stage.

    Guarding means: with an `adapter` for this base (the default model ships one, trained by the guard recipe with
    the demo's `config`: src/rlvr_safety/assets/guard), load it and check it refuses at least `threshold` of
    `probe_n` prompts the recipe held out; otherwise (or with `train`) train the guard recipe."""

    mode: Literal["auto", "on", "off", "train"] = "auto"
    adapter: str | None = Field(default="shipped", description="'shipped': the package's adapter for the default "
                                "model; a folder: a LoRA adapter over the base; null: always train")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    probe_benchmark: str = "advbench"
    probe_n: int = Field(default=16, ge=1)
    config: dict[str, Any] = Field(default_factory=dict, description="guard recipe settings (training/config.py), "
                                   "validated as a GuardConfig when the spec loads")


class EvalSettings(_Strict):
    """The eval stage of every model: which benchmarks and how many items (the study's own settings), and the eval
    command's settings (EvalConfig, evaluation/configs.py). When the spec loads they are built into a validated
    EvalConfig (StudySpec.eval_config), so the range checks are EvalConfig's; a setting the study leaves out takes
    the eval command's default, except where its description says the study differs."""

    suites: list[str] = Field(default_factory=lambda: ["safety5", "capability"])
    limit: int | None = Field(default=20, ge=1, description="items per safety benchmark (the eval command: all); "
                              "None = all")
    capability_limit: int | None = Field(default=None, ge=1, description="None = same as limit")
    judge: JudgeName | None = Field(default=None, description="None: the study's judge")
    max_new_tokens: int = Field(default=96, description="tokens per safety response; the study's default is "
                                "shorter than the eval command's: it evaluates every model of the grid")
    capability_max_new_tokens: int = Field(default=256, description="tokens per capability response; the study's "
                                           "default is shorter than the eval command's: it evaluates every model")
    batch_size: int = Field(default=_EVAL["batch_size"].default, description="generation batch size (also of the "
                            "guard stage's refusal checks)")
    extra_benchmarks: list[str] = Field(default_factory=list, description="e.g. arithmetic (the training domain)")
    limits: dict[str, int] = Field(default_factory=dict, description="per-benchmark limits (else limit / "
                                   "capability_limit); a limit on xstest counts its safe and unsafe prompts together")
    temperature: float = Field(default=_EVAL["temperature"].default, description="safety prompts: 0 = greedy; 1 = "
                               "one sampled answer per prompt, which the certificate can score itself "
                               "(certificate.source: eval)")
    seed: int = Field(default=_EVAL["seed"].default, description="sampling seed of the safety answers")
    task_seed: int = Field(default=4242, description="seed of the generated task items (arithmetic) evaluated: "
                           "held out from the training seeds, and any item also in a run's training set is dropped")
    second_judges: list[str] = Field(
        default_factory=lambda: ["auto"],
        description="judges run again on the same responses, their agreement with `judge` reported per benchmark "
        "('auto' = keyword, or learned when judge is keyword; [] = none); the study differs from the eval command "
        "(none): it reports every judge's agreement")


class ForecastSettings(_Strict):
    """The forecast stage (one per base model, domain and beta). When the spec loads, every forecast stage's
    settings are built into a validated ForecastConfig (StudySpec.forecast_config), so the range checks are
    ForecastConfig's (evaluation/configs.py); the study's defaults are smaller than the forecast command's, as each
    field says, to keep a study's stages cheap."""

    enabled: bool = True
    k: int = Field(default=4, description="samples per prompt; fewer than the forecast command's default")
    limit: int = Field(default=16, description="prompts per benchmark; fewer than the forecast command's default")
    max_new_tokens: int = Field(default=48, description="tokens per sample; shorter than the forecast command's "
                                "default")
    judge: JudgeName | None = Field(default=None, description="None: the study's judge")


class CertificateSettings(_Strict):
    """`source: sample` draws the certificate's own samples (`limit` harmful prompts per safety5 benchmark, `k`=1,
    `max_new_tokens`); `source: eval` certifies the eval's own sampled answers to its harmful prompts (needs
    `eval.temperature: 1`, and takes the eval's judge): one draw per prompt serves the safety numbers, the measured
    drift and the certificate, and only the log-prob passes are added (the reference's; the policy's too where the
    eval could not record them while sampling). When the spec loads, every certify stage's settings are built into a
    validated CertifyConfig (StudySpec.certify_config), so the range checks are CertifyConfig's
    (evaluation/configs.py); the study's defaults differ from the certify command's where a field says so."""

    enabled: bool = True
    source: Literal["sample", "eval"] = "sample"
    limit: int = Field(default=8, description="probe prompts per safety benchmark; fewer than the certify "
                       "command's default (source: sample)")
    measure: bool = Field(default=True, description="also judge the policy (measured drift vs each bound); unlike "
                          "the certify command's default, a study always reports it")
    max_new_tokens: int = Field(default=48, description="tokens per sample (source: sample); shorter than the "
                                "certify command's default")
    judge: JudgeName | None = Field(default=None, description="None: the study's judge")


class StageResources(_Strict):
    """What one stage needs from a Ray cluster (`--backend ray`); the local backend runs stages in-process."""

    num_gpus: float | None = Field(default=None, ge=0.0, description="None: 1 when the Ray cluster has GPUs, else "
                                   "0 (chosen once per study and printed)")
    num_cpus: float = Field(default=1.0, gt=0.0)
    memory_gb: float | None = Field(default=None, gt=0.0, description="RAM Ray reserves for it; None: none")


class ResourceSettings(_Strict):
    """Per stage kind. A training run's chain (train -> eval -> certify) is one Ray task that asks for the largest
    of its stages' needs, so the run's model never has to move between nodes."""

    train: StageResources = Field(default_factory=StageResources)
    eval: StageResources = Field(default_factory=StageResources)
    certify: StageResources = Field(default_factory=StageResources)
    max_retries: int = Field(default=2, ge=0, description="Ray reruns a chain whose worker or node died this many "
                             "times; the rerun skips the stages the ledger has done")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "model"


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid. Its id depends only on its own coordinates, so adding a beta or a seed to a
    spec keeps every existing run's id, folder and stored results."""

    base: str
    domain: str
    method: str  # sft | rlhf | rlvr
    algorithm: str | None
    beta: float | None
    seed: int

    @property
    def id(self) -> str:
        name = self.method if self.algorithm is None else f"{self.method}-{self.algorithm}"
        beta = "" if self.beta is None else f"_b{self.beta:g}"
        return f"{slug(self.base)}_{name}_{self.domain}{beta}_s{self.seed}"

    @property
    def label(self) -> str:
        return self.method if self.algorithm is None else f"{self.method}:{self.algorithm}"


class StudySpec(_Strict):
    name: str = "study"
    base_models: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    judge: JudgeName = Field(default=DEFAULT_JUDGE, description="the study's safety judge: every stage uses it "
                             "unless it names its own")
    guard: GuardSettings = Field(default_factory=GuardSettings)
    domains: list[Domain] = Field(default_factory=lambda: list[Domain](["arithmetic"]), min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["sft", "rlvr:grpo"], min_length=1)
    betas: list[float] = Field(default_factory=lambda: [0.05], min_length=1,
                               description="KL coefficients (checked by the RL recipe config: >= 0)")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    method_betas: dict[str, list[float]] = Field(
        default_factory=dict, description="per method (e.g. 'rlhf:grpo'): its own betas instead of `betas`, e.g. one "
        "RLHF baseline beside an RLVR beta sweep")
    train: dict[str, Any] = Field(default_factory=dict, description="settings shared by every training recipe")
    method_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per method ('sft', 'rlhf', 'rlvr' or e.g. 'rlvr:rloo') settings")
    eval: EvalSettings = Field(default_factory=EvalSettings)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    certificate: CertificateSettings = Field(default_factory=CertificateSettings)
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    data_dir: str | None = None

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods: list[str]) -> list[str]:
        for m in methods:
            match = METHOD_RE.match(m)
            if not match:
                raise ValueError(f"method {m!r} must be 'sft', 'rlhf:<algorithm>' or 'rlvr:<algorithm>'")
            if match.group(3) and match.group(3) not in RL_ALGORITHMS:
                raise ValueError(f"unknown algorithm {match.group(3)!r} in {m!r}; choose from {', '.join(RL_ALGORITHMS)}")
        if len(set(methods)) != len(methods):
            raise ValueError("methods are listed twice")
        return methods

    @model_validator(mode="after")
    def _method_betas(self) -> StudySpec:
        for key, betas in self.method_betas.items():
            if key not in self.methods or key == "sft":
                raise ValueError(f"method_betas.{key}: not an RL method of this study; use one of "
                                 f"{', '.join(m for m in self.methods if m != 'sft')}")
            if not betas:
                raise ValueError(f"method_betas.{key}: give at least one beta")
        return self

    @model_validator(mode="after")
    def _certificate_source(self) -> StudySpec:
        if self.certificate.enabled and self.certificate.source == "eval" and self.eval.temperature != 1.0:
            raise ValueError("certificate.source: eval needs eval.temperature: 1 (the certificate's log-probs must "
                             "describe the sampler); or use certificate.source: sample")
        eval_judge = self.eval.judge or self.judge
        if (self.certificate.enabled and self.certificate.source == "eval" and self.certificate.judge is not None
                and self.certificate.judge != eval_judge):
            raise ValueError(f"certificate.judge: {self.certificate.judge} is not used with certificate.source: eval "
                             f"(the certificate takes the eval's verdicts, judged by {eval_judge}); drop it, or set "
                             "eval.judge, or use certificate.source: sample")
        return self

    @model_validator(mode="after")
    def _overrides_name_methods(self) -> StudySpec:
        known = {"sft", "rlhf", "rlvr", *self.methods}
        for key in self.method_overrides:
            if key not in known:
                raise ValueError(f"method_overrides.{key}: not a method of this study; use one of "
                                 f"{', '.join(sorted(known))}")
        return self

    # the grid and its configs ----------------------------------------------------------------------------------
    def runs(self) -> list[RunSpec]:
        return expand_runs(self)

    def _sources(self, run: RunSpec) -> list[tuple[str, dict[str, Any]]]:
        """The spec sections a run's recipe config is made of, lowest priority first."""
        sources: list[tuple[str, dict[str, Any]]] = [("train", self.train)]
        for key in dict.fromkeys((run.method, run.label)):
            if key in self.method_overrides:
                sources.append((f"method_overrides.{key}", self.method_overrides[key]))
        return sources

    def run_config(self, run: RunSpec, model: str | None = None) -> CommonConfig:
        """The run's validated recipe config; `model` is the reference it starts from (the guard stage's output,
        known only at run time; until then the base model stands in). Raises UserError naming the spec key."""
        data: dict[str, Any] = {"model": model or run.base, "seed": run.seed, "judge": self.judge,
                                "task": {"name": DOMAIN_TASKS[run.domain]}}
        if self.data_dir is not None:
            data["data_dir"] = self.data_dir
        if run.method != "sft":
            data.update(algorithm=run.algorithm, beta=run.beta)
        sources = self._sources(run)
        for _, section in sources:
            data = deep_merge(data, section)
        return _validated(run.method, data, sources, f"run {run.id}")

    def guard_config(self, base: str) -> GuardConfig:
        """The guard stage's validated recipe config for `base` (from `guard.config`, with the study's judge)."""
        data: dict[str, Any] = {"model": base, "judge": self.judge}
        if self.data_dir is not None:
            data["data_dir"] = self.data_dir
        sources = [("guard.config", self.guard.config)]
        cfg = _validated("guard", deep_merge(data, self.guard.config), sources, f"guard stage of {base}")
        assert isinstance(cfg, GuardConfig)
        return cfg

    def eval_plan(self) -> tuple[list[str], list[str], dict[str, int | None]]:
        """(safety benchmarks, capability benchmarks, limit of each) of every eval stage."""
        from ..data import expand

        e = self.eval
        safety_names = [s for s in e.suites if s != "capability"]
        cap_names = (["capability"] if "capability" in e.suites else []) + e.extra_benchmarks
        safety = expand(safety_names) if safety_names else []
        capability = expand(cap_names) if cap_names else []
        # Capability suites get their own (usually smaller) limit: long answers dominate CPU time.
        limits: dict[str, int | None] = {n: e.limit for n in safety}
        limits.update({n: e.capability_limit or e.limit for n in capability})
        limits.update({n: v for n, v in e.limits.items() if n in limits})
        return safety, capability, limits

    def eval_config(self, model: str) -> EvalConfig:
        """The eval stage's validated EvalConfig for `model`: the spec's `eval` settings over the eval command's
        defaults. Raises UserError naming the spec key."""
        e = self.eval
        safety, capability, limits = self.eval_plan()
        values: dict[str, Any] = {
            "model": model, "benchmarks": safety + capability, "limit": None,
            "limits": {n: v for n, v in limits.items() if v is not None}, "data_dir": resolve_data_dir(self.data_dir),
            "judge": e.judge or self.judge, "second_judges": list(e.second_judges), "max_new_tokens": e.max_new_tokens,
            "capability_max_new_tokens": e.capability_max_new_tokens, "batch_size": e.batch_size,
            "temperature": e.temperature, "seed": e.seed,
            # sampled answers keep their token ids: the certificate can score them (certificate.source: eval)
            "record_tokens": e.temperature == 1.0}
        spec_keys = {"model": "base_models", "benchmarks": "eval.suites", "data_dir": "data_dir",
                     "record_tokens": "eval.temperature", "judge": "eval.judge" if e.judge else "judge"}
        return _stage_config(EvalConfig, values, "eval", spec_keys, "eval stage")

    def forecast_points(self) -> list[tuple[str, str, float]]:
        """(base model, domain, beta) of every forecast stage: each positive beta of the RL runs of that base."""
        if not self.forecast.enabled:
            return []
        runs = self.runs()
        return [(base, domain, beta) for base in self.base_models for domain in self.domains
                for beta in sorted({r.beta for r in runs if r.base == base and r.beta is not None and r.beta > 0})]

    def forecast_config(self, base: str, domain: str, beta: float, model: str | None = None) -> ForecastConfig:
        """The validated ForecastConfig of the forecast stage of (`base`, `domain`, `beta`): the spec's `forecast`
        settings over the forecast command's defaults, sampling the training prompts of the run forecast_run
        names (its task and seed); `model` is the reference (the guard stage's output, known only at run time;
        until then the base model stands in). Raises UserError naming the spec key."""
        f = self.forecast
        run = forecast_run(self, base, domain, beta)
        recipe = self.run_config(run)
        assert isinstance(recipe, RLConfig)
        values: dict[str, Any] = {
            "model": model or base, "task": recipe.task.name, "beta": beta, "seed": run.seed, "k": f.k,
            "limit": f.limit, "judge": f.judge or self.judge, "data_dir": resolve_data_dir(self.data_dir),
            "max_new_tokens": f.max_new_tokens, "task_config": recipe.task}
        spec_keys = {"model": "base_models", "task": "domains", "task_config": "domains", "beta": "betas",
                     "seed": "seeds", "data_dir": "data_dir", "judge": "forecast.judge" if f.judge else "judge"}
        return _stage_config(ForecastConfig, values, "forecast", spec_keys,
                             f"forecast stage of {base}, {domain}, beta {beta:g}")

    def certify_config(self, run: RunSpec, policy: str | None = None, reference: str | None = None) -> CertifyConfig:
        """The validated CertifyConfig of `run`'s certify stage: the spec's `certificate` settings over the certify
        command's defaults; `policy` (the run's trained model) and `reference` (the guard stage's output) are known
        only at run time, until then the base model stands in for both. With `source: eval` the stage certifies
        the eval's samples and takes the judge and sampling from the eval stage (eval_config); this config then
        gives `measure` and the bootstrap settings. Raises UserError naming the spec key."""
        c = self.certificate
        values: dict[str, Any] = {
            "policy": policy or run.base, "reference": reference or run.base, "suite": "safety5", "limit": c.limit,
            "judge": c.judge or self.judge, "measure": c.measure, "data_dir": resolve_data_dir(self.data_dir),
            "max_new_tokens": c.max_new_tokens}
        spec_keys = {"policy": "base_models", "reference": "base_models", "data_dir": "data_dir",
                     "judge": "certificate.judge" if c.judge else "judge"}
        return _stage_config(CertifyConfig, values, "certificate", spec_keys, f"certify stage of run {run.id}")

    def check_configs(self) -> None:
        """Build every recipe config of the grid once (the guard's too, unless it is off) and the configs of the
        eval, forecast and certify stages: UserError on the first problem, naming its key."""
        for base in self.base_models:
            if self.guard.mode != "off":
                self.guard_config(base)
        runs = self.runs()
        for run in runs:
            self.run_config(run)
        self.eval_config(self.base_models[0])
        for point in self.forecast_points():
            self.forecast_config(*point)
        if self.certificate.enabled:
            for run in runs:
                self.certify_config(run)

    def stage_judges(self, stage_kind: str, run: RunSpec | None = None, base: str | None = None) -> dict[str, str]:
        """Which judge a stage uses, by role (e.g. {"probe": "keyword", "certificate": "keyword"} for a train)."""
        if stage_kind == "guard":
            return {"guard": self.guard_config(base or self.base_models[0]).judge}
        if stage_kind == "forecast":
            return {"forecast": self.forecast.judge or self.judge}
        if stage_kind == "certify":  # from the eval's samples, the certificate takes the eval's verdicts
            if self.certificate.source == "eval":
                return {"certify": self.eval_config(base or self.base_models[0]).judge}
            return {"certify": self.certificate.judge or self.judge}
        if stage_kind == "eval":
            return {"eval": self.eval_config(base or self.base_models[0]).judge}
        if stage_kind == "train" and run is not None:
            cfg = self.run_config(run)
            judges = {"probe": cfg.probe_judge} if cfg.probe.enabled else {}
            if isinstance(cfg, RLConfig) and cfg.certificate.enabled:
                judges["certificate"] = cfg.certificate_judge
            return judges
        return {}


def forecast_run(spec: StudySpec, base: str, domain: str, beta: float) -> RunSpec:
    """The RL run whose training prompts a forecast stage samples: the first rlvr run (else rlhf) of the grid with
    that base model, domain and beta."""
    runs = [r for r in expand_runs(spec) if (r.base, r.domain, r.beta) == (base, domain, beta)]
    return next((r for r in runs if r.method == "rlvr"), runs[0])


def _stage_config(cls: type[StageConfigT], values: dict[str, Any], section: str, spec_keys: dict[str, str],
                  what: str) -> StageConfigT:
    """`cls(**values)`, a command config a stage runs; a bad value is one UserError line naming the spec key (a
    field in `spec_keys` comes from there, any other from the spec's `section`)."""
    try:
        return cls(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        head = str(err["loc"][0]) if err["loc"] else ""
        key = spec_keys.get(head, f"{section}.{error_location(err)}")
        more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise UserError(f"{key}: {error_message(err)} ({what}){more}") from None


def expand_runs(spec: StudySpec) -> list[RunSpec]:
    """The grid; SFT has no KL coefficient, so it is expanded over seeds only (no duplicate runs per beta)."""
    runs: list[RunSpec] = []
    seen: set[str] = set()
    for base in spec.base_models:
        for domain in spec.domains:
            for method in spec.methods:
                kind, _, algorithm = method.partition(":")
                for beta in spec.method_betas.get(method, spec.betas):
                    for seed in spec.seeds:
                        run = RunSpec(base, domain, kind, algorithm or None, None if kind == "sft" else beta, seed)
                        if run.id not in seen:
                            seen.add(run.id)
                            runs.append(run)
    return runs


# where a recipe key that the spec did not write comes from
_DERIVED = {"beta": "betas", "seed": "seeds", "algorithm": "methods", "model": "base_models", "judge": "judge"}


def _validated(recipe: str, data: dict[str, Any], sources: list[tuple[str, dict[str, Any]]],
               what: str) -> CommonConfig:
    try:
        return validate_config(recipe, data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = error_location(err)
        head = str(err["loc"][0]) if err["loc"] else ""
        origin = next((name for name, section in reversed(sources) if head in section), None)
        key = f"{origin}.{loc}" if origin else (_DERIVED.get(head, loc) if head else "")
        more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        if err["type"] == "extra_forbidden":
            raise UserError(f"{key}: unknown key for the {recipe} recipe ({what}); check the spelling "
                            f"(docs/training.md){more}") from None
        where = f"{key}: " if key else ""
        raise UserError(f"{where}{error_message(err)} ({recipe} recipe, {what}){more}") from None


def parse_spec(data: dict[str, Any], origin: str) -> StudySpec:
    """A validated spec, every run's recipe config included; any problem is one UserError line naming the key."""
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise UserError(one_line(exc, f"invalid study spec {origin}")) from None
    try:
        spec.check_configs()
    except UserError as exc:
        raise UserError(f"invalid study spec {origin}: {exc}") from None
    return spec


def list_presets() -> list[str]:
    folder = resources.files("rlvr_safety.study") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_spec(preset: str | None = None, config: str | Path | None = None) -> StudySpec:
    """Exactly one of preset / config; the YAML's keys are StudySpec's fields."""
    if (preset is None) == (config is None):
        raise UserError("pass exactly one of --preset NAME or --config FILE")
    if preset is not None:
        if preset not in list_presets():
            raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(list_presets())}")
        text = (resources.files("rlvr_safety.study") / "presets" / f"{preset}.yaml").read_text()
        origin = f"preset {preset}"
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:  # a shipped preset: a bug, but still one line
            raise UserError(f"cannot parse {origin} as YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise UserError(f"{origin} must be a YAML mapping of study settings")
    else:
        origin = str(config)
        data = read_yaml_mapping(config, "study config")  # type: ignore[arg-type]
    return parse_spec(data, origin)
