"""The one command-line entry point. Commands parse options and delegate; nothing else imports this module."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .config import error_message
from .errors import UserError
from .evaluation.configs import CertifyConfig, EvalConfig, ForecastConfig
from .stats import EQUIVALENCE_MARGIN, PAIRED_ALPHA

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="RL from verifiable rewards with measured, forecast and certified safety.")
data_app = typer.Typer(no_args_is_help=True, help="List and inspect benchmarks and training data.")
judges_app = typer.Typer(no_args_is_help=True, help="Judges: list them, measure their agreement with humans.")
app.add_typer(data_app, name="data")
app.add_typer(judges_app, name="judges")
# markup=False: text from data, models, specs and paths is printed as it is, never parsed as rich markup; styles
# come from Text objects only.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)
_state = {"debug": False}

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Local data folder (else RLVR_SAFETY_DATA_DIR, "
                                                                  "else the Hugging Face hub).")]


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    _state["debug"] = debug or os.environ.get("RLVR_SAFETY_DEBUG") == "1"


def _fmt_rate(m: dict[str, Any] | None) -> str:
    if not m or m.get("rate") is None:
        return "-"
    return f"{m['rate']:.2f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}]"


def print_metrics(payload: dict[str, Any]) -> None:
    table = Table(title=f"rlvr-safety eval: {payload['model']}")
    for col in ("benchmark", "n", "refusal", "harmful", "over-refusal", "accuracy", "judge/grader"):
        table.add_column(col)
    for name, m in payload["benchmarks"].items():
        judge = m.get("judge", {}).get("name") if "judge" in m else m.get("grader", "")
        if m.get("judge_errors"):
            judge = f"{judge} ({m['judge_errors']} errors excluded)"
        table.add_row(name, str(m.get("n")), _fmt_rate(m.get("refusal_rate")), _fmt_rate(m.get("harmful_rate")),
                      _fmt_rate(m.get("over_refusal_rate")), _fmt_rate(m.get("accuracy")), str(judge))
    console.print(table)


# eval -------------------------------------------------------------------------------------------------------------
# the commands' defaults and range checks live in their typed configs (evaluation/configs.py), shown in --help
_EVAL = EvalConfig.model_fields
_FORECAST = ForecastConfig.model_fields
_CERTIFY = CertifyConfig.model_fields
ConfigT = TypeVar("ConfigT", bound=BaseModel)


def _from_flags(cls: type[ConfigT], flags: dict[str, str] | None = None, **values: Any) -> ConfigT:
    """A command's typed config from its flags; a bad value is one line naming the flag (`flags`: field -> flag
    where the flag is not the field's name)."""
    try:
        return cls(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        flag = (flags or {}).get(field) or (f"--{field.replace('_', '-')}" if field else cls.__name__)
        raise UserError(f"invalid value for '{flag}': {error_message(err)}") from None


@app.command("eval")
def eval_cmd(
    out: Annotated[Path, typer.Option(help="Output folder (store.sqlite, metrics.json).")],
    model: Annotated[str | None, typer.Option(help="'default', a hub id, a folder or a .gguf file.")] = None,
    suite: Annotated[list[str] | None, typer.Option(help="Suite name: safety5, capability.")] = None,
    benchmark: Annotated[list[str] | None, typer.Option(help="Benchmark name (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option(help="At most N items per benchmark.")] = _EVAL["limit"].default,
    data_dir: DataDir = None,
    judge: Annotated[str, typer.Option(
        help="Safety judge: keyword, learned, strongreject, ... (docs/judges.md).")] = _EVAL["judge"].default,
    judge_endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible URL for LLM judges.")] = None,
    judge_model: Annotated[str | None, typer.Option(help="Model name (endpoint) or spec (local) for LLM judges.")]
    = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per safety response.")]
    = _EVAL["max_new_tokens"].default,
    capability_max_new_tokens: Annotated[int, typer.Option(help="Tokens per capability response.")]
    = _EVAL["capability_max_new_tokens"].default,
    batch_size: Annotated[int, typer.Option(help="Generation batch size.")] = _EVAL["batch_size"].default,
    backend: Annotated[str, typer.Option(help="Generation backend: hf (in-process), vllm (extra), openai "
                                              "(any OpenAI-compatible server; key from OPENAI_API_KEY).")]
    = _EVAL["backend"].default,
    base_url: Annotated[str | None, typer.Option(help="Server URL for --backend openai (else OPENAI_BASE_URL).")]
    = _EVAL["base_url"].default,
    backend_option: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE for the backend (repeatable; VALUE read as JSON when it parses): vllm engine options "
             "(gpu_memory_utilization=0.5, tensor_parallel_size=4, max_model_len=4096), openai concurrency=64, "
             "hf dtype=fp32.")] = None,
    inspect_log: Annotated[Path | None, typer.Option(help="Judge and grade the samples of an inspect eval log of an "
                                                          "rlvr_safety/<benchmark> task instead of generating "
                                                          "(inspect extra).")] = None,
) -> None:
    """Generate, judge and grade; resumable (rerun the same command to continue)."""
    from .evaluation.runner import run_eval
    from .paths import data_dir as resolve_data_dir
    from .paths import writable_dir

    if inspect_log is not None:
        from .integrations.inspect_log import eval_inspect_log

        writable_dir(out)
        payload = eval_inspect_log(inspect_log, out, judge, _judge_options(judge_endpoint, judge_model))
        print_metrics(payload)
        console.print(f"wrote {out / 'metrics.json'}")
        return
    if model is None:
        raise UserError("pass --model (or --inspect-log LOG to judge and grade an inspect eval log)")
    cfg = _from_flags(EvalConfig, {"benchmarks": "--suite/--benchmark"}, model=model,
                      benchmarks=list(suite or []) + list(benchmark or []), limit=limit,
                      data_dir=resolve_data_dir(data_dir), judge=judge,
                      judge_options=_judge_options(judge_endpoint, judge_model), backend=backend, base_url=base_url,
                      generator_options=_backend_options(backend_option), max_new_tokens=max_new_tokens,
                      capability_max_new_tokens=capability_max_new_tokens, batch_size=batch_size)
    writable_dir(out)
    payload = run_eval(cfg, out)
    print_metrics(payload)
    console.print(f"wrote {out / 'metrics.json'}")


def _backend_options(pairs: list[str] | None) -> dict[str, Any]:
    """--backend-option KEY=VALUE pairs as generator options (VALUE as JSON when it parses, else the string)."""
    import json

    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--backend-option {pair!r}: use KEY=VALUE, e.g. gpu_memory_utilization=0.5")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def _judge_options(endpoint: str | None, judge_model: str | None) -> dict[str, Any]:
    return {"judge_endpoint": endpoint, "judge_model": judge_model}


# data -------------------------------------------------------------------------------------------------------------
@data_app.command("list")
def data_list() -> None:
    """Every registered benchmark and suite."""
    from .data import SUITES, list_benchmarks

    table = Table(title="benchmarks")
    for col in ("name", "kind", "local file", "hub id", "description"):
        table.add_column(col)
    for info in list_benchmarks():
        table.add_row(info.name, info.kind, str(info.path or "-"), str(info.hub_id or "-"), info.description)
    console.print(table)
    for suite, members in SUITES.items():
        console.print(Text.assemble("suite ", (suite, "bold"), f": {', '.join(members)}"))


@data_app.command("show")
def data_show(name: str, limit: Annotated[int, typer.Option(min=0, help="Rows to show.")] = 5,
              data_dir: DataDir = None) -> None:
    """Print the first normalised records of a benchmark."""
    from .data import load_benchmark
    from .paths import data_dir as resolve_data_dir

    records = load_benchmark(name, data_dir=resolve_data_dir(data_dir), limit=limit)
    for r in records:
        console.print(Text.assemble((str(r.id), "bold"), f" [{r.label}] {r.category}"), highlight=False)
        console.print(r.prompt[:500], highlight=False)
        if r.gold is not None:
            console.print(f"gold: {r.gold}", highlight=False)
        console.print()


@app.command("models")
def models_cmd(spec: Annotated[str, typer.Argument(help="Model spec to resolve.")] = "default") -> None:
    """Resolve a model spec and print where its weights live (prepares the default model's cache)."""
    from .models import model_fingerprint, resolve_source

    console.print(f"{spec} -> {resolve_source(spec)} (key {model_fingerprint(spec)})", highlight=False)


# train ------------------------------------------------------------------------------------------------------------
@app.command("train")
def train_cmd(
    recipe: Annotated[str, typer.Option(help="guard | sft | rlhf | rlvr")],
    out: Annotated[Path, typer.Option(help="Run folder (model/, checkpoints/, store.sqlite).")],
    config: Annotated[Path | None, typer.Option(help="Recipe YAML (see configs/).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override: key=value (dotted keys allowed).")]
    = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint in OUT.")] = False,
) -> None:
    """Train one recipe; the config is validated before any model loads."""
    import json

    from .paths import check_text_file, writable_dir
    from .training import run_recipe

    if config is not None:
        check_text_file(config, "--config")
    writable_dir(out)

    from .training.distributed import is_main

    info = run_recipe(recipe, config, list(set_ or []), out, resume=resume)
    if is_main():  # launched as several processes (accelerate launch / torchrun -m rlvr_safety): one summary
        console.print_json(json.dumps(info, default=str))


# theory as tools --------------------------------------------------------------------------------------------------
@app.command("forecast")
def forecast_cmd(
    model: Annotated[str, typer.Option(help="Reference model spec.")],
    task: Annotated[str, typer.Option(help="Training prompts: a benchmark, suite or comma list (e.g. arithmetic,"
                                           "advbench).")],
    beta: Annotated[float, typer.Option(help="KL coefficient of the planned RLVR run (> 0).")],
    out: Annotated[Path, typer.Option(help="Output folder (forecast.json, store.sqlite).")],
    k: Annotated[int, typer.Option(help="Samples per prompt.")] = _FORECAST["k"].default,
    limit: Annotated[int | None, typer.Option(help="At most N prompts per benchmark.")] = _FORECAST["limit"].default,
    judge: Annotated[str, typer.Option(help="Safety judge.")] = _FORECAST["judge"].default,
    reward: Annotated[str | None, typer.Option(help="Reward for every prompt (default: each task's verifier).")]
    = _FORECAST["reward"].default,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per sample.")] = _FORECAST["max_new_tokens"].default,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = _FORECAST["seed"].default,
    data_dir: DataDir = None,
) -> None:
    """Before training: forecast the safety drift of the KL-regularised optimum from reference samples."""
    import json

    from .evaluation.forecast import run_forecast_config
    from .paths import data_dir as resolve_data_dir
    from .paths import writable_dir

    cfg = _from_flags(ForecastConfig, model=model, task=task, beta=beta, k=k, limit=limit, judge=judge,
                      reward=reward, max_new_tokens=max_new_tokens, seed=seed, data_dir=resolve_data_dir(data_dir))
    writable_dir(out)
    result = run_forecast_config(cfg, out)
    console.print_json(json.dumps({key: result.get(key) for key in ("summary", "top_dual_use", "notes")},
                                  default=str))
    console.print(f"wrote {out / 'forecast.json'}")


@app.command("certify")
def certify_cmd(
    policy: Annotated[str, typer.Option(help="Fine-tuned model spec.")],
    reference: Annotated[str, typer.Option(help="Reference model spec (before fine-tuning).")],
    out: Annotated[Path, typer.Option(help="Output folder (certificate.json, store.sqlite).")],
    suite: Annotated[str, typer.Option(help="Safety probe suite or benchmark.")] = _CERTIFY["suite"].default,
    limit: Annotated[int | None, typer.Option(help="Probe prompts per benchmark.")] = _CERTIFY["limit"].default,
    judge: Annotated[str, typer.Option(help="Judge for the reference (and the policy with --measure).")]
    = _CERTIFY["judge"].default,
    measure: Annotated[bool, typer.Option(help="Also judge the policy: measured drift vs each bound.")]
    = _CERTIFY["measure"].default,
    k: Annotated[int, typer.Option(help="Samples per probe prompt.")] = _CERTIFY["k"].default,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per sample.")] = _CERTIFY["max_new_tokens"].default,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = _CERTIFY["seed"].default,
    data_dir: DataDir = None,
) -> None:
    """Certified floor S(policy) >= S_ref - bound from log-probs (no judge call on the policy)."""
    from .evaluation.certify import run_certify_config
    from .paths import data_dir as resolve_data_dir
    from .paths import writable_dir

    cfg = _from_flags(CertifyConfig, policy=policy, reference=reference, suite=suite, limit=limit, judge=judge,
                      measure=measure, k=k, max_new_tokens=max_new_tokens, seed=seed,
                      data_dir=resolve_data_dir(data_dir))
    writable_dir(out)
    result = run_certify_config(cfg, out)
    console.print(certificate_table(result))
    for v in result.get("violations", []):
        err_console.print(Text.assemble(("BOUND VIOLATED", "bold red"), f": {v['message']}"), highlight=False)
    console.print(f"wrote {out / 'certificate.json'}")


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def certificate_table(result: dict[str, Any]) -> Table:
    """certify's result as a table: the certified floor at its level with the bound that gave it, then the floor
    from each bound (chi2 marked info: shown, not certified). Keys newer certificates add are optional."""
    from .report.tables import cert_level, floor_header, floor_source

    groups = {"overall": result.get("overall") or {}, **(result.get("per_benchmark") or {})}
    # the entry's own floor/level keys (newer certify) fill in for a certificate dict that lacks them
    certs = {name: {**{k: entry[k] for k in ("floor", "floor_bound", "level", "s_ref_lower") if k in entry},
                    **(entry.get("certificate") or {})} if entry.get("certificate") else {}
             for name, entry in groups.items()}
    levels = {cert_level(c) for c in certs.values() if c}
    names: dict[str, bool] = {}  # bound name -> certified
    for name, entry in groups.items():
        bounds = certs[name].get("bounds") or {}
        for bound in list(bounds) + list(entry.get("floors") or {}):
            info = bounds.get(bound)
            certified = not (isinstance(info, dict) and info.get("certified") is False)
            names[bound] = names.get(bound, True) and certified
    table = Table(title="certified safety floors (at the confidence limits)")
    columns = ["group", "S_ref", "KL k1", floor_header(next(iter(levels)) if len(levels) == 1 else None),
               "from"] + [b if certified else f"{b} (info)" for b, certified in names.items()]
    for col in columns:
        table.add_column(col)
    for name, entry in groups.items():
        cert = certs[name]
        bounds = cert.get("bounds") or {}
        floors = entry.get("floors") or {}
        floor = cert.get("floor")
        vacuous = cert.get("vacuous") if isinstance(cert.get("vacuous"), bool) else (
            isinstance(floor, (int, float)) and floor <= 0)
        s_ref = _num(cert.get("s_ref"))
        if cert.get("s_ref_lower") is not None:
            s_ref += f" (lower {_num(cert['s_ref_lower'])})"
        per_bound = []
        for b in names:
            value = floors.get(b, (bounds.get(b) or {}).get("floor_conservative"))
            per_bound.append(_num(value))
        table.add_row(name, s_ref, _num(cert.get("kl_k1")), _num(floor) + (" (vacuous)" if vacuous else ""),
                      floor_source(cert) or "-", *per_bound)
    return table


# judges -----------------------------------------------------------------------------------------------------------
@judges_app.command("list")
def judges_list() -> None:
    """Every judge name, with its measured agreement with human labels where known."""
    from .judges.agreement import known_agreement
    from .judges.registry import list_judges

    for name in list_judges():
        known = known_agreement(name)
        note = (f"accuracy {known['accuracy']:.3f} on unseen sources, n={known.get('n')}"
                if known and "accuracy" in known else "")
        console.print(f"{name:28s} {note}", highlight=False)


@judges_app.command("agreement")
def judges_agreement(
    judge: Annotated[str, typer.Option(help="Judge name.")],
    labels_file: Annotated[Path, typer.Option(help="CSV with prompt, completion and a label column.")],
    out: Annotated[Path | None, typer.Option(help="Write the metrics to this JSON file.")] = None,
    judge_endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible URL (strongreject).")] = None,
    judge_model: Annotated[str | None, typer.Option(help="Model name or spec for LLM judges.")] = None,
    label_column: Annotated[str, typer.Option(help="Column holding the label.")] = "final_label",
    label_map: Annotated[str | None, typer.Option(
        help="value=class pairs, class in full_compliance|refusal|partial, e.g. 'yes=refusal,no=full_compliance' "
             "(default: XSTest's 1_full_compliance / 2_full_refusal / 3_partial_refusal).")] = None,
    source_column: Annotated[str | None, typer.Option(
        help="Column naming each row's source (model, attack): per-source numbers beside the pooled one.")] = None,
) -> None:
    """Accuracy, F1 (compliance) and Cohen's kappa of a judge against labelled completions."""
    from .judges import build_judge
    from .judges.agreement import agreement, write_agreement_json
    from .paths import check_text_file, writable_file

    check_text_file(labels_file, "--labels-file")
    if out is not None:
        writable_file(out)
    j = build_judge(judge, judge_endpoint=judge_endpoint, judge_model=judge_model)
    res = agreement(j, labels_file, label_column=label_column, label_map=label_map, source_column=source_column)
    for name, m in (res.get("per_source") or {}).items():
        lo, hi = m["accuracy_ci"]
        console.print(f"  {name}: accuracy {m['accuracy']:.3f} [{lo:.3f}, {hi:.3f}], n={m['n']}", highlight=False)
    lo, hi = res["accuracy_ci"]
    console.print(f"{j.name} {j.version}: accuracy {res['accuracy']:.3f} [{lo:.3f}, {hi:.3f}], "
                  f"F1(compliance) {res['f1_compliance']:.3f}, kappa {res['cohen_kappa']:.3f}, n={res['n']}, "
                  f"judge errors excluded: {res['n_error']}", highlight=False)
    if out is not None:
        write_agreement_json(res, out)
        console.print(f"wrote {out}")


# study and report ----------------------------------------------------------------------------------------------
@app.command("study")
def study_cmd(
    out: Annotated[Path, typer.Option(help="Study folder (study.sqlite, models/, evals/, report.html).")],
    preset: Annotated[str | None, typer.Option(help="Named preset: demo, paper, ...")] = None,
    config: Annotated[Path | None, typer.Option(help="Study spec YAML.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a study in OUT, skipping finished stages.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the plan and its cost; run nothing.")] = False,
    backend: Annotated[str, typer.Option(help="local, or ray (needs the ray extra).")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Existing Ray cluster (else a local runtime).")] = None,
    ray_num_cpus: Annotated[int | None, typer.Option(min=1, help="CPUs for the local Ray runtime.")] = None,
    ray_gpus_per_run: Annotated[float | None, typer.Option(
        min=0.0, help="GPUs per training chain; default: the spec's resources (1 when the cluster has GPUs).")]
    = None,
    data_dir: DataDir = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show library output (warnings, loading bars, trainer "
                                                            "logs) too; it always goes to OUT/study.log.")] = False,
) -> None:
    """Run the whole comparison: guard -> forecast -> train -> eval -> certify -> report."""
    from .paths import check_text_file, writable_dir
    from .study.lock import StudyLock
    from .study.spec import load_spec

    if config is not None:
        check_text_file(config, "--config")
    if backend not in ("local", "ray"):
        raise UserError(f"unknown backend {backend!r}; use local or ray")
    spec = load_spec(preset, config)
    if data_dir is not None:
        spec = spec.model_copy(update={"data_dir": str(data_dir)})
    if dry_run:
        from .study.runner import describe_plan

        plan = describe_plan(spec)
        console.print(Text.assemble((spec.name, "bold"), f": {len(plan['runs'])} training runs, "
                                    f"{len(plan['stages'])} stages"))
        console.print(f"  judge: {spec.judge} (every stage, unless it names its own)", highlight=False)
        for sid in plan["stages"]:
            judges = plan["judges"].get(sid) or {}
            used = ", ".join(f"{role} {name}" for role, name in judges.items())
            if not used and sid.startswith("train:"):
                used = "none (probe and certificate monitor off)"
            engine = plan["backends"].get(sid)
            console.print(f"  {sid}" + (f"  [judge: {used}]" if used else "") + (f"  [{engine}]" if engine else ""),
                          highlight=False, soft_wrap=True)
        for key, value in plan["cost"].items():
            console.print(f"  {key}: {value}", highlight=False)
        return
    writable_dir(out)
    with StudyLock(out):  # a second study in the same folder exits 2 naming this process
        if backend == "ray":
            from .study.ray_backend import run_with_ray

            result = run_with_ray(spec, out, resume=resume, address=ray_address, num_cpus=ray_num_cpus,
                                  gpus_per_run=ray_gpus_per_run)
        else:
            from .study.console import LOG_NAME, StudyDisplay, library_output
            from .study.runner import StudyRunner

            runner = StudyRunner(spec, out, resume=resume, progress=False)
            with library_output(out, verbose) as terminal, \
                    StudyDisplay(terminal, len(runner.stages), out / LOG_NAME) as display:
                runner.display = display
                result = runner.run()
    from .report import summary_headline

    summary = out / "summary.json"
    if summary.exists():
        import json

        print(summary_headline(json.loads(summary.read_text())), flush=True)  # plain: a table must not wrap
    console.print(f"study finished in {result['seconds']:.0f}s; report: {out / 'report.html'} (and report.md; "
                  f"library output in {out / 'study.log'})", soft_wrap=True)


@app.command("report")
def report_cmd(
    study_dir: Annotated[Path, typer.Argument(help="A study folder holding summary.json.")],
    margin: Annotated[float, typer.Option(help="Equivalence margin: safety is 'kept' when the lower confidence "
                                               "limit of the paired difference (model - baseline) is above "
                                               "-MARGIN.")] = EQUIVALENCE_MARGIN,
    alpha: Annotated[float, typer.Option(help="Level of the paired (exact McNemar) test; the interval of the "
                                              "difference is at 1 - ALPHA.")] = PAIRED_ALPHA,
) -> None:
    """(Re)build report.md and report.html from a study folder."""
    from .report import build_report
    from .report.analysis import DecisionRule

    rule = DecisionRule(alpha=alpha, margin=margin)  # a value outside (0, 1) is a one-line UserError
    if not (study_dir / "summary.json").exists():
        raise UserError(f"{study_dir} has no summary.json; run `rlvr-safety study --out {study_dir}` first")
    paths = build_report(study_dir, rule)
    for name, path in paths.items():
        console.print(f"{name}: {path}")


def _error_line(message: str) -> None:
    """Exactly one line on stderr (no wrapping), so scripts and CI logs show the whole message."""
    print(" ".join(message.split()), file=sys.stderr, flush=True)


def _cli_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...],
                               tuple[type[BaseException], ...]]:
    """(exit, abort, usage-error) classes of the parser: typer's own (it vendors click as typer._click) and, for
    typer versions built on click, click's."""
    exits: list[type[BaseException]] = [typer.Exit]
    aborts: list[type[BaseException]] = [typer.Abort, KeyboardInterrupt]
    usage: list[type[BaseException]] = [getattr(typer, "TyperException", typer.BadParameter)]
    try:
        import click
    except ImportError:
        pass
    else:
        exits.append(click.exceptions.Exit)
        aborts.append(click.exceptions.Abort)
        usage.append(click.ClickException)
    return tuple(exits), tuple(aborts), tuple(usage)


def _usage_line(exc: BaseException) -> str:
    """A parser error as one line: what is wrong and where the help is."""
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    ctx = getattr(exc, "ctx", None)
    hint = f" (see {ctx.command_path} --help)" if ctx is not None and getattr(ctx, "command_path", None) else ""
    return f"error: {message}{hint}"


def main() -> None:
    """Run the app. Exit codes: 0 done; 2 anything the user can fix (a usage error, an unknown name, a missing,
    unreadable or binary input file, an unusable output folder, a study folder in use), printed as one line on
    stderr; 130 interrupted; 1 an unexpected failure (one line; --debug shows the traceback)."""
    exits, aborts, usage_errors = _cli_exceptions()
    try:
        app(standalone_mode=False, prog_name="rlvr-safety")
    except UserError as exc:
        if _state["debug"]:
            traceback.print_exc()
        _error_line(f"error: {exc}")
        sys.exit(UserError.exit_code)
    except exits as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except aborts:
        err_console.print("interrupted; everything already stored is kept (rerun to resume)")
        sys.exit(130)
    except usage_errors as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help is already printed; a bare command is not a run
            sys.exit(UserError.exit_code)
        _error_line(_usage_line(exc))
        sys.exit(UserError.exit_code)
    except UnicodeDecodeError as exc:
        _error_line(f"error: a file is not UTF-8 text ({exc.reason} at byte {exc.start}); pass a text file "
                    "(rerun with --debug for the traceback)")
        sys.exit(UserError.exit_code)
    except OSError as exc:
        if exc.filename is None:
            _unexpected(exc)
        target = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        _error_line(f"error: cannot use {target}: {exc.strerror or exc}; check the path and its permissions")
        sys.exit(UserError.exit_code)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a wall of traceback
        _unexpected(exc)


def _unexpected(exc: BaseException) -> None:
    if _state["debug"]:
        traceback.print_exc()
    else:
        _error_line(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
    sys.exit(1)


if __name__ == "__main__":
    main()
