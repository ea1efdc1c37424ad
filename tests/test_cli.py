"""Every user-facing failure: one clear line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import json
import sys

import pytest

from rlvr_safety import cli


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["rlvr-safety", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err.replace("\n", " ")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["eval", "--model", "default", "--benchmark", "nope", "--out", "{tmp}"], ["nope"]),
        (["eval", "--model", "default", "--suite", "nosuchsuite", "--out", "{tmp}"], ["nosuchsuite"]),
        (["eval", "--model", "/no/such/model", "--benchmark", "xstest", "--out", "{tmp}"], ["/no/such/model"]),
        (["eval", "--model", "default", "--out", "{tmp}"], ["--suite"]),
        (["data", "show", "nope"], ["nope"]),
        (["train", "--recipe", "nope", "--out", "{tmp}"], ["nope"]),
        (["train", "--recipe", "rlvr", "--set", "bogus=1", "--out", "{tmp}"], ["bogus"]),
        (["study", "--preset", "nope", "--out", "{tmp}"], ["nope"]),
        (["study", "--out", "{tmp}"], ["--preset"]),
        (["forecast", "--model", "default", "--task", "arithmetic", "--beta", "0", "--out", "{tmp}"], ["--beta"]),
        (["report", "{tmp}"], ["summary.json"]),
    ],
)
def test_bad_input_exits_2_with_one_line(monkeypatch, capsys, tmp_path, data_dir, args, needles):
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))
    args = [a.replace("{tmp}", str(tmp_path / "out")) for a in args]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert_one_line_error(code, err, *needles)


def test_missing_data_folder(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "data", "show", "harmbench", "--data-dir", str(tmp_path / "nope"))
    assert_one_line_error(code, err, "nope")


def test_unknown_judge_fails_before_generation(monkeypatch, capsys, tmp_path, data_dir, tiny_model_dir):
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--model", str(tiny_model_dir), "--benchmark", "xstest",
                           "--judge", "nosuchjudge", "--out", str(tmp_path / "o"), "--data-dir", str(data_dir))
    assert_one_line_error(code, err, "nosuchjudge")
    assert not (tmp_path / "o" / "store.sqlite").exists()


def test_malformed_rows(monkeypatch, capsys, tmp_path):
    bad = tmp_path / "data" / "strongreject"
    bad.mkdir(parents=True)
    (bad / "strongreject_dataset.csv").write_text("category,source\nx,y\n")
    code, _, err = run_cli(monkeypatch, capsys, "data", "show", "strongreject", "--data-dir", str(tmp_path / "data"))
    assert_one_line_error(code, err, "strongreject_dataset.csv")


def test_data_list_and_show(monkeypatch, capsys, data_dir):
    code, out, _ = run_cli(monkeypatch, capsys, "data", "list")
    assert code == 0 and "harmbench" in out and "safety5" in out
    code, out, _ = run_cli(monkeypatch, capsys, "data", "show", "gsm8k", "--limit", "2", "--data-dir", str(data_dir))
    assert code == 0 and "gold:" in out


def test_eval_cli_writes_metrics(monkeypatch, capsys, tmp_path, data_dir, tiny_model_dir):
    out = tmp_path / "ev"
    code, stdout, err = run_cli(monkeypatch, capsys, "eval", "--model", str(tiny_model_dir), "--benchmark", "xstest",
                                "--limit", "2", "--max-new-tokens", "4", "--out", str(out),
                                "--data-dir", str(data_dir))
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["benchmarks"]["xstest"]["n"] == 2
    assert "xstest" in stdout


def test_study_dry_run_prints_plan(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "study", "--preset", "paper", "--out", "/nonexistent/x", "--dry-run")
    assert code == 0, err
    assert "training_runs: 234" in out and "report" in out


def test_study_dry_run_rejects_a_typo_in_train_naming_it(monkeypatch, capsys, tmp_path):
    spec = tmp_path / "typo.yaml"
    spec.write_text("methods: [sft, 'rlvr:grpo']\ntrain:\n  max_steps: 5\n  lerning_rate: 0.1\n")
    code, out, err = run_cli(monkeypatch, capsys, "study", "--config", str(spec), "--out", str(tmp_path / "o"),
                             "--dry-run")
    assert_one_line_error(code, err, "train.lerning_rate: unknown key")
    assert out == "" and not (tmp_path / "o").exists()


@pytest.mark.parametrize(("setting", "needle"), [
    ("forecast:\n  k: 0\n", "forecast.k: Input should be greater than or equal to 2"),
    ("certificate:\n  limit: 0\n", "certificate.limit: Input should be greater than or equal to 1"),
])
def test_study_dry_run_rejects_a_bad_stage_setting_naming_it(monkeypatch, capsys, tmp_path, setting, needle):
    spec = tmp_path / "bad.yaml"
    spec.write_text("methods: [sft, 'rlvr:grpo']\n" + setting)
    code, out, err = run_cli(monkeypatch, capsys, "study", "--config", str(spec), "--out", str(tmp_path / "o"),
                             "--dry-run")
    assert_one_line_error(code, err, needle)
    assert out == "" and not (tmp_path / "o").exists()


def test_study_dry_run_shows_the_judge_of_every_stage(monkeypatch, capsys, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("judge: learned\nmethods: ['rlvr:grpo']\ntrain:\n  certificate: {enabled: true}\n")
    code, out, err = run_cli(monkeypatch, capsys, "study", "--config", str(spec), "--out", str(tmp_path / "o"),
                             "--dry-run")
    assert code == 0, err
    stage_lines = [ln.strip() for ln in out.splitlines() if ln.strip().startswith(("guard:", "forecast:", "train:",
                                                                                   "eval:", "certify:"))]
    assert len(stage_lines) == 6
    assert all("[judge: " in ln and "learned" in ln and "keyword" not in ln for ln in stage_lines)
    assert "probe learned, certificate learned" in out
