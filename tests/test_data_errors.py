"""Loader failure modes: missing folder or file, malformed rows, and the hub path offline; all are UserErrors."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from rlvr_safety.data import list_benchmarks, load_benchmark
from rlvr_safety.errors import UserError

HARMBENCH_HEADER = "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\n"


def test_missing_data_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UserError, match=r"data folder not found: .*nope.*--data-dir"):
        load_benchmark("harmbench", missing)


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"harmbench_behaviors_text_test\.csv"):
        load_benchmark("harmbench", tmp_path)


def test_malformed_csv_row(tmp_path: Path) -> None:
    folder = tmp_path / "harmbench"
    folder.mkdir()
    (folder / "harmbench_behaviors_text_test.csv").write_text(
        HARMBENCH_HEADER + "Do a bad thing,standard,cybercrime,,,bad_1\n,standard,cybercrime,,,bad_2\n"
    )
    with pytest.raises(UserError, match=r"harmbench_behaviors_text_test\.csv row 3: .*'Behavior'"):
        load_benchmark("harmbench", tmp_path)


def test_malformed_jsonl(tmp_path: Path) -> None:
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    good = json.dumps({"question": "1+1?", "answer": "2\n#### 2"})
    (folder / "test.jsonl").write_text(good + "\n{not json\n")
    with pytest.raises(UserError, match=r"test\.jsonl row 2: invalid JSON"):
        load_benchmark("gsm8k", tmp_path)
    (folder / "test.jsonl").write_text(good + "\n" + json.dumps({"question": "q", "answer": "no marker"}) + "\n")
    with pytest.raises(UserError, match=r"row 2: .*####"):
        load_benchmark("gsm8k", tmp_path)
    (folder / "test.jsonl").write_text(json.dumps({"answer": "#### 3"}) + "\n")
    with pytest.raises(UserError, match=r"row 1: .*'question'"):
        load_benchmark("gsm8k", tmp_path)


def test_malformed_gzip_and_artifact(tmp_path: Path) -> None:
    he = tmp_path / "humaneval"
    he.mkdir()
    with gzip.open(he / "HumanEval.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"task_id": "HumanEval/0", "prompt": "def f():\n", "entry_point": "f"}) + "\n")
    with pytest.raises(UserError, match=r"HumanEval\.jsonl\.gz row 1: .*'test'"):
        load_benchmark("humaneval", tmp_path)
    art = tmp_path / "jailbreakbench/attack-artifacts/PAIR/black_box"
    art.mkdir(parents=True)
    (art / "vicuna-13b-v1.5.json").write_text(json.dumps({"jailbreaks": [{"goal": "g", "prompt": "p"}, {"prompt": "x"}]}))
    with pytest.raises(UserError, match=r"vicuna-13b-v1\.5\.json row 2: .*'goal'"):
        load_benchmark("jailbreakbench-pair", tmp_path)


def test_xstest_bad_label(tmp_path: Path) -> None:
    folder = tmp_path / "xstest"
    folder.mkdir()
    (folder / "xstest_prompts.csv").write_text("id,prompt,type,label,focus,note\n1,hi,homonyms,maybe,,\n")
    with pytest.raises(UserError, match="label must be"):
        load_benchmark("xstest", tmp_path)


@pytest.mark.parametrize("name", [b.name for b in list_benchmarks() if b.name != "arithmetic"])
def test_hub_offline_is_user_error(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RLVR_SAFETY_DATA_DIR", raising=False)
    monkeypatch.setenv("RLVR_SAFETY_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        load_benchmark(name)
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert "--data-dir" in msg and "RLVR_SAFETY_DATA_DIR" in msg and "\n" not in msg
    if name in ("wildjailbreak", "sorry-bench"):
        assert "HF_TOKEN" in msg


def test_hub_only_falls_back_to_hub_from_local_folder(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="sorry-bench/sorry-bench-202406.*HF_TOKEN"):
        load_benchmark("sorry-bench", data_dir)
