"""Registry against the real local data folder: counts match MANIFEST.md, labels, limits, suites and errors."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from rlvr_safety.data import SUITES, expand, list_benchmarks, load_benchmark
from rlvr_safety.errors import UserError

# Row counts from shared/data/MANIFEST.md; noted deviations are documented loader behaviour.
EXPECTED = {
    "harmbench": 320,
    "strongreject": 313,
    "jailbreakbench": 100,
    "jailbreakbench-pair": 82,  # 100 artifact rows, 18 with a null prompt skipped (manifest: "82 non-null prompts")
    "jailbreakbench-gcg": 100,
    "xstest": 450,
    "do-not-answer": 176 + 117 + 248 + 243 + 155,
    "advbench": 520,
    "gsm8k": 1319,
    "gsm8k-train": 7473,
    "math500": 500,
    "math-train": 7498,  # 7,500 rows, 2 with an empty upstream answer skipped
    "humaneval": 164,
    "mbpp": 427,
    "ifeval": 541,
    "hh-rlhf-helpful": 2354,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_local_counts_and_shape(data_dir: Path, name: str) -> None:
    records = load_benchmark(name, data_dir)
    assert len(records) == EXPECTED[name]
    assert len({r.id for r in records}) == len(records), "ids must be unique"
    info = {b.name: b for b in list_benchmarks()}[name]
    for r in records:
        assert r.benchmark == name and r.prompt.strip()
        assert r.label == "task" if info.kind == "capability" else r.label in ("harmful", "benign")


def test_registry_covers_expected_and_hub_only() -> None:
    names = {b.name for b in list_benchmarks()}
    assert set(EXPECTED) | {"arithmetic", "wildjailbreak", "sorry-bench"} == names
    gated = {b.name for b in list_benchmarks() if b.gated}
    assert gated == {"wildjailbreak", "sorry-bench"}
    assert all(b.hub_id for b in list_benchmarks() if b.name != "arithmetic")


def test_xstest_labels(data_dir: Path) -> None:
    counts = Counter(r.label for r in load_benchmark("xstest", data_dir))
    assert counts == {"benign": 250, "harmful": 200}


def test_safety_labels_harmful(data_dir: Path) -> None:
    for name in ("harmbench", "strongreject", "jailbreakbench-pair", "do-not-answer", "advbench"):
        assert {r.label for r in load_benchmark(name, data_dir)} == {"harmful"}


def test_harmbench_contextual_prompt(data_dir: Path) -> None:
    records = load_benchmark("harmbench", data_dir)
    contextual = [r for r in records if r.extra["context"]]
    assert len(contextual) == 81
    r = contextual[0]
    assert r.prompt == r.extra["context"] + "\n\n---\n\n" + r.extra["behavior"]
    assert all(r.category for r in records)


def test_jailbreakbench_pair_reports_skips(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        records = load_benchmark("jailbreakbench-pair", data_dir)
    assert "skipped 18 of 100" in caplog.text
    assert all(r.extra["skipped_null_prompts"] == 18 and r.extra["goal"] for r in records)
    goals = {r.prompt for r in load_benchmark("jailbreakbench", data_dir)}
    assert {r.extra["goal"] for r in records} <= goals


def test_gsm8k_gold_numeric(data_dir: Path) -> None:
    for name in ("gsm8k", "gsm8k-train"):
        for r in load_benchmark(name, data_dir):
            float(r.gold)  # raises if not a number
            assert "####" in r.extra["solution"]


def test_capability_fields(data_dir: Path) -> None:
    he = load_benchmark("humaneval", data_dir)
    assert all(r.tests and r.entry_point and "canonical_solution" in r.extra for r in he)
    assert all(r.entry_point and r.tests for r in load_benchmark("mbpp", data_dir))
    m5 = load_benchmark("math500", data_dir)
    assert all(r.gold and r.extra["level"] and r.extra["subject"] for r in m5)
    ife = load_benchmark("ifeval", data_dir)
    assert all(len(r.extra["instruction_id_list"]) == len(r.extra["kwargs"]) for r in ife)
    hh = load_benchmark("hh-rlhf-helpful", data_dir)
    assert all(r.prompt.endswith("Assistant:") and "chosen" in r.extra and "rejected" in r.extra for r in hh)


def test_limit_is_deterministic_prefix(data_dir: Path) -> None:
    a = load_benchmark("harmbench", data_dir, limit=7)
    b = load_benchmark("harmbench", data_dir, limit=7, seed=3)
    assert [r.id for r in a] == [r.id for r in b] == [r.id for r in load_benchmark("harmbench", data_dir)[:7]]
    assert load_benchmark("gsm8k", data_dir, limit=0) == []


@pytest.mark.parametrize("limit", [2, 5, 20])
def test_xstest_limit_keeps_both_labels(data_dir: Path, limit: int) -> None:
    records = load_benchmark("xstest", data_dir, limit=limit)
    counts = Counter(r.label for r in records)
    assert len(records) == limit and counts["benign"] >= 1 and counts["harmful"] >= 1
    assert abs(counts["benign"] - counts["harmful"]) <= 1


def test_attacked_name(data_dir: Path) -> None:
    records = load_benchmark("harmbench+base64", data_dir, limit=3)
    assert [r.id for r in records] == [r.id + "+base64" for r in load_benchmark("harmbench", data_dir, limit=3)]
    assert all(r.extra["attack"] == "base64" and r.benchmark == "harmbench+base64" for r in records)


def test_env_var_selects_data_dir(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))
    assert len(load_benchmark("strongreject")) == 313


def test_suites_expand() -> None:
    assert expand("safety5") == SUITES["safety5"]
    assert expand(["capability"]) == ["gsm8k", "math500", "humaneval", "ifeval"]
    assert expand("safety5,xstest,gsm8k") == SUITES["safety5"] + ["gsm8k"]
    assert expand("capability+rot13")[0] == "gsm8k+rot13"


@pytest.mark.parametrize("bad", ["nosuch", "harmbench+nosuch", "safety6", ""])
def test_unknown_names_list_valid(bad: str) -> None:
    with pytest.raises(UserError) as err:
        expand(bad)
    msg = str(err.value)
    assert "\n" not in msg
    assert ("harmbench" in msg and "safety5" in msg) or "rot13" in msg


def test_unknown_benchmark_load() -> None:
    with pytest.raises(UserError, match=r"valid benchmarks: .*xstest"):
        load_benchmark("harmbenchh")


def test_negative_limit() -> None:
    with pytest.raises(UserError, match="limit"):
        load_benchmark("xstest", limit=-1)


def test_arithmetic_uses_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def generate_problems(n: int, seed: int, level: str | int) -> list[dict]:
        calls.append((n, seed, level))
        return [{"id": f"{seed}-{k}", "question": f"{k} + {seed} = ?", "answer": k + seed} for k in range(n)]

    import rlvr_safety.data.capability as capability

    monkeypatch.setattr(capability, "generate_problems", generate_problems)
    assert len(load_benchmark("arithmetic")) == 500
    records = load_benchmark("arithmetic", limit=4, seed=7)
    assert calls[-1][:2] == (4, 7)
    assert [r.gold for r in records] == ["7", "8", "9", "10"] and {r.label for r in records} == {"task"}


def test_info_paths_exist(data_dir: Path) -> None:
    for b in list_benchmarks():
        if b.path and b.name not in ("wildjailbreak", "sorry-bench"):
            assert (data_dir / b.path).exists(), b.name
        assert re.fullmatch(r"[a-z0-9-]+", b.name)


def test_arithmetic_real_generator_deterministic() -> None:
    a = load_benchmark("arithmetic", limit=20, seed=1)
    assert a == load_benchmark("arithmetic", limit=20, seed=1)
    assert [r.prompt for r in a] != [r.prompt for r in load_benchmark("arithmetic", limit=20, seed=2)]
    assert all(int(r.gold) == int(r.gold) and r.label == "task" for r in a)
