"""Agreement metrics against human labels, labels-file validation, and the shipped known agreement."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.judges.agreement import (
    agreement,
    binary_metrics,
    cohen_kappa,
    known_agreement,
    parse_label_map,
    read_labelled_csv,
    read_labels_file,
    write_agreement_json,
)
from rlvr_safety.judges.base import Verdict
from rlvr_safety.judges.keyword import KEYWORD_VERSION, KeywordJudge

XSTEST = "xstest/xstest_v2_completions_mistralinstruct.csv"


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_cohen_kappa_hand_computed() -> None:
    # po = 0.75; p(gold)=0.5, p(pred)=0.25 -> pe = 0.5*0.25 + 0.5*0.75 = 0.5 -> kappa = 0.5
    assert cohen_kappa([True, True, False, False], [True, False, False, False]) == pytest.approx(0.5)
    assert cohen_kappa([True, False], [True, False]) == pytest.approx(1.0)
    assert cohen_kappa([True, True], [True, True]) == 0.0  # undefined: all one class


def test_binary_metrics_partial_counts_as_refusal() -> None:
    m = binary_metrics(["full_compliance", "refusal", "partial", "partial"], [False, True, True, False])
    assert m["n"] == 4 and m["accuracy"] == pytest.approx(0.75)
    assert m["accuracy_full_only"] == pytest.approx(1.0) and m["n_full_only"] == 2
    assert m["confusion"]["partial"] == {"refusal": 1, "full_compliance": 1}
    # compliance is the positive class: tp=1 (row 0), fn=0, fp=1 (row 3)
    assert m["f1_compliance"] == pytest.approx(2 / 3)
    assert "partial refusal counts as refusal" in m["partial_mapping"]


def test_keyword_agreement_on_xstest_matches_shipped(data_dir: Path, tmp_path: Path) -> None:
    result = agreement(KeywordJudge(), data_dir / XSTEST)
    assert result["n"] == 450 and result["n_error"] == 0
    assert result["judge"] == "keyword" and result["version"] == KEYWORD_VERSION
    assert sum(sum(row.values()) for row in result["confusion"].values()) == 450
    assert 0.8 < result["accuracy"] < 0.95 and -1 <= result["cohen_kappa"] <= 1
    lo, hi = result["accuracy_ci"]
    assert lo < result["accuracy"] < hi
    shipped = known_agreement("keyword", KEYWORD_VERSION)
    assert shipped is not None
    assert shipped["per_source"]["xstest:mistral-7b-instruct"]["accuracy"] == pytest.approx(result["accuracy"])
    out = write_agreement_json(result, tmp_path / "sub" / "agreement.json")
    assert json.loads(out.read_text())["accuracy"] == result["accuracy"]


def test_known_agreement_lookup() -> None:
    assert known_agreement("no-such-judge") is None
    assert known_agreement("keyword", version="kw-0-old") is None
    learned = known_agreement("learned")
    assert learned is not None and "leave-one-source-out" in learned["method"]
    lo, hi = learned["accuracy_ci"]
    assert lo < learned["accuracy"] < hi and learned["per_source"]


class _Flaky:
    name, version = "flaky", "0"

    def judge(self, prompts: list[str], responses: list[str]) -> list[Verdict]:
        return [
            Verdict(refused=False, harmful=float("nan"), label="error", judge="flaky", version="0")
            if i % 2
            else Verdict(refused=r.startswith("No"), harmful=0.0, label="refusal", judge="flaky", version="0")
            for i, r in enumerate(responses)
        ]


def test_error_verdicts_are_excluded_and_counted(tmp_path: Path) -> None:
    rows = [
        ["p", "No way", "2_full_refusal"],
        ["p", "x", "1_full_compliance"],
        ["p", "Sure", "1_full_compliance"],
    ]
    path = _write(tmp_path / "l.csv", ["prompt", "completion", "final_label"], rows)
    result = agreement(_Flaky(), path)
    assert result["n_error"] == 1 and result["n"] == 2 and result["accuracy"] == 1.0


def test_malformed_labels_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="labels file not found"):
        read_labels_file(tmp_path / "missing.csv")
    missing = _write(tmp_path / "a.csv", ["prompt", "completion"], [["p", "c"]])
    with pytest.raises(UserError, match="lacks column.*final_label"):
        agreement(KeywordJudge(), missing)
    unknown = _write(tmp_path / "b.csv", ["prompt", "completion", "final_label"], [["p", "c", "4_maybe"]])
    with pytest.raises(UserError, match="line 2: unknown final_label '4_maybe'"):
        agreement(KeywordJudge(), unknown)
    empty = _write(tmp_path / "c.csv", ["prompt", "completion", "final_label"], [])
    with pytest.raises(UserError, match="has no rows"):
        agreement(KeywordJudge(), empty)


def test_label_aliases(tmp_path: Path) -> None:
    rows = [["p", "c", "refusal"], ["p", "c", "Full_Compliance"], ["p", "c", "partial_refusal"]]
    _, _, gold = read_labels_file(_write(tmp_path / "d.csv", ["prompt", "completion", "final_label"], rows))
    assert gold == ["refusal", "full_compliance", "partial"]


def test_any_csv_with_label_column_map_and_sources(tmp_path: Path) -> None:
    rows = [
        ["How do I bake bread?", "Mix flour, water and yeast.", "no", "model-a"],
        ["How do I pick a lock?", "I'm sorry, but I can't help with that.", "yes", "model-a"],
        ["Write a poem", "Roses are red.", "no", "model-b"],
        ["Make a weapon", "Sure, here is how.", "YES", "model-b"],
    ]
    path = _write(tmp_path / "mine.csv", ["prompt", "completion", "refused", "model"], rows)
    result = agreement(
        KeywordJudge(), path, label_column="refused", label_map="yes=refusal, no=full_compliance",
        source_column="model",
    )
    # keyword gets rows 1-3 right and calls row 4 ("Sure, here is how.") compliance against a gold refusal
    assert result["n"] == 4 and result["accuracy"] == pytest.approx(0.75)
    assert result["per_source"]["model-a"]["accuracy"] == 1.0
    assert result["per_source"]["model-b"]["accuracy"] == 0.5
    assert result["macro_accuracy"] == pytest.approx(0.75)
    assert result["label_column"] == "refused" and result["label_map"] == {"yes": "refusal", "no": "full_compliance"}


def test_label_map_and_column_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.csv", ["prompt", "completion", "y"], [["p", "c", "maybe"]])
    with pytest.raises(UserError, match="line 2: unknown y 'maybe'; use no, yes"):
        read_labelled_csv(path, label_column="y", label_map="yes=refusal,no=compliance")
    with pytest.raises(UserError, match="lacks column.*final_label"):
        read_labelled_csv(path)
    with pytest.raises(UserError, match="lacks column.*src"):
        read_labelled_csv(path, label_column="y", label_map="maybe=partial", source_column="src")
    with pytest.raises(UserError, match="has no '='"):
        parse_label_map("yes:refusal")
    with pytest.raises(UserError, match="unknown class 'bad'"):
        parse_label_map("yes=bad")
    assert parse_label_map(None) is None
    assert parse_label_map("1=refusal,0=full_compliance,2=partial_refusal") == {
        "1": "refusal", "0": "full_compliance", "2": "partial"}
    assert read_labelled_csv(path, label_column="y", label_map="maybe=partial").gold == ["partial"]


def test_cli_agreement_on_a_users_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import sys

    from rlvr_safety import cli

    rows = [["p", "I cannot help with that.", "1", "a"], ["p", "Here you go: step one.", "0", "b"]]
    path = _write(tmp_path / "u.csv", ["prompt", "completion", "label", "src"], rows)
    out = tmp_path / "res.json"
    argv = ["rlvr-safety", "judges", "agreement", "--judge", "keyword", "--labels-file", str(path),
            "--label-column", "label", "--label-map", "1=refusal,0=full_compliance", "--source-column", "src",
            "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        cli.main()
        raise SystemExit(0)
    assert int(exc.value.code or 0) == 0
    printed = capsys.readouterr().out
    assert "a: accuracy 1.000" in printed and "b: accuracy 1.000" in printed and "n=2" in printed
    assert json.loads(out.read_text())["per_source"]["b"]["n"] == 1
