"""EvalConfig is the one home of the eval command's settings: the CLI flags show its defaults and build it, a bad
value is one line naming the flag (exit 2), and the study's eval stage hands run_eval a validated EvalConfig built
from the spec's `eval` settings, which re-declare none of its defaults unless they say the study differs. The same
holds for the study's forecast and certify stages (ForecastConfig, CertifyConfig)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel

from rlvr_safety import cli
from rlvr_safety.errors import UserError
from rlvr_safety.evaluation import certify as certify_module
from rlvr_safety.evaluation import forecast as forecast_module
from rlvr_safety.evaluation import runner as eval_runner
from rlvr_safety.evaluation.configs import CertifyConfig, EvalConfig, ForecastConfig, eval_config
from rlvr_safety.study.runner import StudyRunner
from rlvr_safety.study.spec import CertificateSettings, EvalSettings, ForecastSettings, parse_spec


def _eval_flags() -> dict[str, Any]:
    command = typer.main.get_command(cli.app).commands["eval"]  # type: ignore[attr-defined]
    return {p.name: p.default for p in command.params}


def test_eval_flag_defaults_are_the_config_defaults() -> None:
    flags = _eval_flags()
    shared = set(flags) & set(EvalConfig.model_fields)
    # every flag that is a setting of the config (the rest: out, suite/benchmark, judge endpoint/model, inspect_log)
    assert shared >= {"limit", "judge", "max_new_tokens", "capability_max_new_tokens", "batch_size", "backend",
                      "base_url"}
    for name in shared - {"model", "data_dir"}:  # required / resolved from the environment
        assert flags[name] == EvalConfig.model_fields[name].default, name


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["rlvr-safety", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
        raise SystemExit(0)
    return int(exc.value.code or 0), capsys.readouterr().err


def test_the_eval_command_runs_the_config_its_flags_build(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    seen: list[tuple[EvalConfig, Path]] = []

    def fake_run_eval(cfg: EvalConfig, out: Path, records: Any = None, progress: bool = True) -> dict[str, Any]:
        seen.append((cfg, out))
        return {"model": cfg.model, "benchmarks": {}}

    monkeypatch.setattr(eval_runner, "run_eval", fake_run_eval)
    code, err = run_cli(monkeypatch, capsys, "eval", "--model", "m", "--suite", "safety5", "--benchmark", "gsm8k",
                        "--out", str(tmp_path / "o"))
    assert code == 0, err
    ((cfg, out),) = seen
    assert out == tmp_path / "o" and cfg.model == "m" and cfg.benchmarks == ["safety5", "gsm8k"]
    default = EvalConfig(model="m", benchmarks=["safety5", "gsm8k"])
    skip = {"data_dir", "judge_options"}  # from the environment; the judge flags' (unset) values
    assert cfg.model_dump(exclude=skip) == default.model_dump(exclude=skip)
    code, err = run_cli(monkeypatch, capsys, "eval", "--model", "m", "--benchmark", "xstest", "--out",
                        str(tmp_path / "p"), "--max-new-tokens", "7", "--capability-max-new-tokens", "9",
                        "--batch-size", "3", "--limit", "0", "--judge", "learned")
    assert code == 0, err
    cfg = seen[-1][0]
    assert (cfg.max_new_tokens, cfg.capability_max_new_tokens, cfg.batch_size, cfg.limit, cfg.judge) == (
        7, 9, 3, 0, "learned")
    assert cfg.safety_params().max_new_tokens == 7 and cfg.capability_params().max_new_tokens == 9


@pytest.mark.parametrize(("flags", "needle"), [
    (["--batch-size", "0"], "invalid value for '--batch-size': Input should be greater than or equal to 1"),
    (["--max-new-tokens", "0"], "invalid value for '--max-new-tokens'"),
    (["--capability-max-new-tokens", "-2"], "invalid value for '--capability-max-new-tokens'"),
    (["--limit", "-1"], "invalid value for '--limit': Input should be greater than or equal to 0"),
    (["--judge", "nosuch"], "invalid value for '--judge': unknown judge 'nosuch'"),
    (["--backend", "bogus"], "invalid value for '--backend': unknown generation backend 'bogus'"),
    (["--base-url", "http://localhost:8000/v1"], "invalid value for '--base-url': base_url is for backend openai"),
])
def test_a_bad_eval_flag_exits_2_with_one_line_naming_it(flags: list[str], needle: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setattr(eval_runner, "run_eval", lambda *a, **k: pytest.fail("a bad flag must stop before the run"))
    code, err = run_cli(monkeypatch, capsys, "eval", "--model", "m", "--benchmark", "xstest",
                        "--out", str(tmp_path / "o"), *flags)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]
    assert not (tmp_path / "o").exists()  # nothing written before the config is valid


def test_nothing_to_evaluate_names_the_flags(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    code, err = run_cli(monkeypatch, capsys, "eval", "--model", "m", "--out", str(tmp_path / "o"))
    assert code == 2 and "'--suite/--benchmark': nothing to evaluate" in err and len(err.strip().splitlines()) == 1


def test_eval_config_helper_is_one_line_naming_the_field() -> None:
    with pytest.raises(UserError) as exc:
        eval_config(model="m", benchmarks=["xstest"], limits={"xstest": -1})
    assert str(exc.value).startswith("eval: limits.xstest: Input should be greater") and "\n" not in str(exc.value)
    with pytest.raises(UserError, match="eval: unknown key 'max_tokens'"):
        eval_config(model="m", benchmarks=["xstest"], max_tokens=3)


# the study ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("section", "settings", "config", "command"), [
    ("eval", EvalSettings, EvalConfig, "eval"),
    ("forecast", ForecastSettings, ForecastConfig, "forecast"),
    ("certificate", CertificateSettings, CertifyConfig, "certify"),
])
def test_study_stage_settings_take_the_command_defaults_unless_they_say_they_differ(
        section: str, settings: type[BaseModel], config: type[BaseModel], command: str) -> None:
    shared = set(settings.model_fields) & set(config.model_fields) - {"judge"}  # None: the study's judge
    assert shared
    for name in shared:
        field = settings.model_fields[name]
        study = field.get_default(call_default_factory=True)
        if study != config.model_fields[name].get_default(call_default_factory=True):
            assert f"{command} command" in (field.description or ""), f"{section}.{name} differs without saying so"


@pytest.mark.parametrize(("bad", "needle"), [
    ({"eval": {"batch_size": 0}}, "eval.batch_size: Input should be greater than or equal to 1 (eval stage)"),
    ({"eval": {"max_new_tokens": 0}}, "eval.max_new_tokens: Input should be greater than or equal to 1"),
    ({"eval": {"limits": {"xstest": -1}}}, "eval.limits.xstest: Input should be greater than or equal to 0"),
    ({"eval": {"seed": -1}}, "eval.seed"),
    ({"eval": {"temperature": -0.5}}, "eval.temperature"),
    ({"eval": {"suites": ["nosuchsuite"]}}, "nosuchsuite"),
    ({"forecast": {"k": 1}}, "forecast.k: Input should be greater than or equal to 2 (forecast stage of default"),
    ({"forecast": {"limit": 0}}, "forecast.limit: Input should be greater than or equal to 1"),
    ({"forecast": {"max_new_tokens": 0}}, "forecast.max_new_tokens: Input should be greater than or equal to 1"),
    ({"forecast": {"judge": "nosuch"}}, "forecast.judge"),
    ({"certificate": {"limit": 0}}, "certificate.limit: Input should be greater than or equal to 1 (certify stage"),
    ({"certificate": {"max_new_tokens": -1}}, "certificate.max_new_tokens: Input should be greater than or equal"),
])
def test_a_bad_eval_setting_fails_when_the_spec_loads(bad: dict[str, Any], needle: str) -> None:
    with pytest.raises(UserError) as exc:
        parse_spec(bad, "test")
    assert needle in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_the_study_eval_stage_passes_a_validated_eval_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[EvalConfig, Path, dict[str, Any]]] = []

    def fake_run_eval(cfg: EvalConfig, out: Path, records: Any = None, progress: bool = True) -> dict[str, Any]:
        seen.append((cfg, out, dict(records or {})))
        return {"model": cfg.model, "benchmarks": {}}

    monkeypatch.setattr(eval_runner, "run_eval", fake_run_eval)
    spec = parse_spec({"methods": ["sft"], "judge": "learned", "data_dir": str(tmp_path / "data"),
                       "eval": {"suites": ["safety5"], "extra_benchmarks": ["arithmetic"], "limit": 3,
                                "limits": {"xstest": 4}, "capability_limit": 5, "temperature": 1.0,
                                "max_new_tokens": 11, "second_judges": []},
                       "certificate": {"enabled": False}, "forecast": {"enabled": False}}, "test")

    def done(stage: Any) -> dict[str, Any]:
        return {"reference": "/guarded", "model": f"/models/{stage.id}"}

    executors = {kind: done for kind in ("guard", "forecast", "train", "certify", "report")}
    StudyRunner(spec, tmp_path / "st", progress=False, executors=executors).run()
    assert len(seen) == 2  # the reference and the one sft run
    by_model = {cfg.model: (cfg, out, records) for cfg, out, records in seen}
    assert set(by_model) == {"/guarded", "/models/train:default_sft_arithmetic_s0"}
    for cfg, out, records in seen:
        assert type(cfg) is EvalConfig and EvalConfig.model_validate(cfg.model_dump()) == cfg
        assert out.parent == tmp_path / "st" / "evals"
        assert cfg.judge == "learned" and cfg.second_judges == [] and cfg.data_dir == tmp_path / "data"
        assert cfg.benchmarks[-1] == "arithmetic" and cfg.limit is None
        assert cfg.limits["xstest"] == 4 and cfg.limits["harmbench"] == 3 and cfg.limits["arithmetic"] == 5
        assert (cfg.max_new_tokens, cfg.temperature, cfg.record_tokens) == (11, 1.0, True)
        # not set by the spec: the study's own default, or the command's where the study does not differ
        assert cfg.capability_max_new_tokens == EvalSettings.model_fields["capability_max_new_tokens"].default
        assert cfg.batch_size == EvalConfig.model_fields["batch_size"].default
        assert cfg == spec.eval_config(cfg.model)
        assert [len(v) for v in records.values()] == [5]  # held-out generated items, given directly


def test_stage_settings_are_checked_only_for_stages_the_study_plans() -> None:
    assert parse_spec({"forecast": {"enabled": False, "k": 0}, "certificate": {"enabled": False, "limit": 0}},
                      "test").forecast.k == 0
    # sft alone: no positive beta, no forecast stage; a certify stage per run still checks its settings
    parse_spec({"methods": ["sft"], "forecast": {"k": 0}}, "test")
    with pytest.raises(UserError, match="certificate.limit"):
        parse_spec({"methods": ["sft"], "certificate": {"limit": 0}}, "test")


def test_the_study_forecast_and_certify_stages_pass_validated_configs(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    forecasts: list[tuple[ForecastConfig, Path]] = []
    certificates: list[tuple[CertifyConfig, Path]] = []

    def fake_forecast(cfg: ForecastConfig, out: Path, progress: bool = True) -> dict[str, Any]:
        forecasts.append((cfg, out))
        out.mkdir(parents=True, exist_ok=True)
        (out / "forecast.json").write_text("{}")
        return {}

    def fake_certify(cfg: CertifyConfig, out: Path, progress: bool = True) -> dict[str, Any]:
        certificates.append((cfg, out))
        return {}

    monkeypatch.setattr(forecast_module, "run_forecast_config", fake_forecast)
    monkeypatch.setattr(certify_module, "run_certify_config", fake_certify)
    spec = parse_spec({"methods": ["sft", "rlvr:grpo"], "betas": [0.1, 0.2], "seeds": [3], "judge": "learned",
                       "data_dir": str(tmp_path / "data"), "forecast": {"k": 3, "limit": 5},
                       "certificate": {"limit": 4, "max_new_tokens": 9},
                       "method_overrides": {"rlvr": {"task": {"level": 2}}}}, "test")

    def done(stage: Any) -> dict[str, Any]:
        return {"reference": "/guarded", "model": f"/models/{stage.id}"}

    executors = {kind: done for kind in ("guard", "train", "eval", "report")}
    StudyRunner(spec, tmp_path / "st", progress=False, executors=executors).run()

    assert sorted(cfg.beta for cfg, _ in forecasts) == [0.1, 0.2]
    for cfg, out in forecasts:
        assert type(cfg) is ForecastConfig and ForecastConfig.model_validate(cfg.model_dump()) == cfg
        assert cfg == spec.forecast_config("default", "arithmetic", cfg.beta, model="/guarded")
        assert out == tmp_path / "st" / "forecast" / "default_arithmetic"
        assert (cfg.model, cfg.k, cfg.limit, cfg.seed, cfg.judge) == ("/guarded", 3, 5, 3, "learned")
        assert cfg.data_dir == tmp_path / "data"
        assert cfg.task_config is not None and cfg.task_config.level == 2  # the rlvr run's own task
        assert cfg.max_new_tokens == ForecastSettings.model_fields["max_new_tokens"].default  # the study's
        assert cfg.batch_size == ForecastConfig.model_fields["batch_size"].default  # the command's
    assert len(certificates) == 3  # one per run: sft and rlvr at two betas
    for cfg, out in certificates:
        assert type(cfg) is CertifyConfig and CertifyConfig.model_validate(cfg.model_dump()) == cfg
        assert cfg.policy == f"/models/train:{out.name}" and cfg.reference == "/guarded"
        assert (cfg.suite, cfg.limit, cfg.max_new_tokens, cfg.judge, cfg.measure) == ("safety5", 4, 9, "learned",
                                                                                      True)
        assert cfg.k == CertifyConfig.model_fields["k"].default
        assert out.parent == tmp_path / "st" / "certificates"
