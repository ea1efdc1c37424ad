"""Hub path with a stand-in `datasets` module: ids, configs, splits and field mapping, with no network."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from rlvr_safety.data import load_benchmark
from rlvr_safety.errors import UserError

ROWS: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {
    ("Paul/XSTest", None, "train"): [
        {"id": 1, "prompt": "kill a process", "type": "homonyms", "label": "safe"},
        {"id": 2, "prompt": "kill a person", "type": "contrast_homonyms", "label": "unsafe"},
    ],
    ("openai/gsm8k", "main", "test"): [{"question": "q", "answer": "work\n#### 1,234"}],
    ("LibrAI/do-not-answer", None, "train"): [
        {"id": 0, "question": "q", "risk_area": "Human-Chatbot Interaction Harms", "types_of_harm": "t"}
    ],
    ("google/IFEval", None, "train"): [
        {"key": 1, "prompt": "p", "instruction_id_list": ["a"], "kwargs": [{"n": 3, "m": None}]}
    ],
    ("JailbreakBench/JBB-Behaviors", "behaviors", "harmful"): [{"Goal": "g", "Category": "c", "Behavior": "b"}],
    ("DigitalLearningGmbH/MATH-lighteval", None, "train"): [
        {"problem": "p", "solution": "so $\\boxed{\\frac{1}{2}}$.", "level": "Level 1", "type": "Algebra"}
    ],
}


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    calls: list[tuple] = []

    def load_dataset(path: str, name: str | None = None, split: str | None = None, **kwargs: Any) -> list:
        calls.append((path, name, split, kwargs))
        if (path, name, split) not in ROWS:
            raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")
        return ROWS[(path, name, split)]

    fake = types.ModuleType("datasets")
    fake.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "RLVR_SAFETY_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    return calls


HARMBENCH_CSV = (
    "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\n"
    "std,standard,chemical_biological,,,b_std\n"
    "ctx,contextual,cybercrime,context,C,b_ctx\n"
)


def test_hub_field_mapping(fake_hub: list[tuple], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlvr_safety.data import safety

    urls: list[str] = []

    def fetch_url(name: str, url: str, cache: Any) -> Any:  # HarmBench's official test CSV, not walledai's 400
        urls.append(url)
        path = tmp_path / "harmbench_behaviors_text_test.csv"
        path.write_text(HARMBENCH_CSV)
        return path

    monkeypatch.setattr(safety, "fetch_url", fetch_url)
    hb = load_benchmark("harmbench")
    assert [r.prompt for r in hb] == ["std", "C\n\n---\n\nctx"] and [r.id for r in hb] == ["harmbench/b_std",
                                                                                           "harmbench/b_ctx"]
    assert hb[1].category == "cybercrime" and hb[1].extra["behavior"] == "ctx" and hb[1].extra["context"] == "C"
    assert urls == [safety.HARMBENCH_TEST_URL] and urls[0].endswith("harmbench_behaviors_text_test.csv")
    assert not [c for c in fake_hub if "HarmBench" in c[0]]
    xs = load_benchmark("xstest", limit=2)
    assert [r.label for r in xs] == ["benign", "harmful"]
    assert load_benchmark("gsm8k")[0].gold == "1234"
    assert load_benchmark("do-not-answer")[0].category == "human_chatbox"
    assert load_benchmark("ifeval")[0].extra["kwargs"] == [{"n": 3}]
    assert load_benchmark("jailbreakbench")[0].prompt == "g"
    assert load_benchmark("math-train")[0].gold == "\\frac{1}{2}"
    assert ("openai/gsm8k", "main", "test", {}) in fake_hub


def test_hub_failure_is_one_line(fake_hub: list[tuple]) -> None:
    with pytest.raises(UserError) as err:
        load_benchmark("wildjailbreak")
    msg = str(err.value)
    assert "allenai/wildjailbreak" in msg and "HF_TOKEN" in msg and "--data-dir" in msg and "\n" not in msg
    assert fake_hub[-1][3] == {"delimiter": "\t", "keep_default_na": False}


class GatedRepoError(Exception):
    """Stands in for huggingface_hub's error of the same name (matched by name, as the loader does)."""


@pytest.mark.parametrize("exc", [GatedRepoError("Access to dataset walledai/StrongREJECT is restricted"),
                                 OSError("401 Client Error: Unauthorized for url")])
def test_refused_access_names_the_terms_page_and_token(fake_hub: list[tuple], monkeypatch: pytest.MonkeyPatch,
                                                       exc: Exception) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr(sys.modules["datasets"], "load_dataset", refuse)
    with pytest.raises(UserError) as err:
        load_benchmark("strongreject")
    msg = str(err.value)
    assert "accept the terms at https://huggingface.co/datasets/walledai/StrongREJECT and set HF_TOKEN" in msg
    assert "\n" not in msg


def test_missing_repo_is_not_called_gated(fake_hub: list[tuple]) -> None:
    with pytest.raises(UserError) as err:
        load_benchmark("advbench")  # not in ROWS: "doesn't exist on the Hub", no access refusal
    assert "accept the terms" not in str(err.value) and "walledai/AdvBench" in str(err.value)


def test_registry_counts_match_their_sources() -> None:
    from rlvr_safety.data.registry import REGISTRY

    assert "(320;" in REGISTRY["harmbench"].description and REGISTRY["harmbench"].hub_id.startswith("github:")
    assert "(450, 45 categories)" in REGISTRY["sorry-bench"].description and REGISTRY["sorry-bench"].gated
