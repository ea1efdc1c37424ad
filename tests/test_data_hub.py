"""Hub path with a stand-in `datasets` module: ids, configs, splits and field mapping, with no network."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from rlvr_safety.data import load_benchmark
from rlvr_safety.errors import UserError

ROWS: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {
    ("walledai/HarmBench", "standard", "train"): [{"prompt": "std", "category": "chemical_biological"}],
    ("walledai/HarmBench", "contextual", "train"): [{"prompt": "ctx", "category": "cybercrime", "context": "C"}],
    ("walledai/HarmBench", "copyright", "train"): [{"prompt": "lyrics", "category": "copyright"}],
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


def test_hub_field_mapping(fake_hub: list[tuple]) -> None:
    hb = load_benchmark("harmbench")
    assert [r.prompt for r in hb] == ["std", "C\n\n---\n\nctx", "lyrics"]
    assert hb[1].category == "cybercrime"
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
