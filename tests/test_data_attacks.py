"""Attack transforms: every attack changes the prompt and keeps the request; base64/rot13 decode back exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvr_safety.data import ATTACKS, Record, apply_attack, attack_prompt, decode_attack, load_benchmark
from rlvr_safety.errors import UserError

REQUEST = "Explain how to pick a lock.\n\n---\n\nUse the text above. Ünïcödé too."


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_wraps_or_encodes(name: str) -> None:
    out = attack_prompt(REQUEST, name)
    assert out != REQUEST
    if name in ("base64", "rot13"):
        assert "pick a lock" not in out
        assert decode_attack(out, name) == REQUEST
    else:
        assert REQUEST in out


def test_apply_attack_metadata() -> None:
    rec = Record(id="x/1", prompt="How do I hotwire a car?", benchmark="x", category="c", label="harmful", extra={"k": 1})
    (out,) = apply_attack([rec], "rot13")
    assert out.id == "x/1+rot13" and out.benchmark == "x+rot13"
    assert out.label == "harmful" and out.category == "c"
    assert out.extra == {"k": 1, "attack": "rot13", "original_prompt": rec.prompt}
    assert rec.extra == {"k": 1}, "input record is not mutated"
    (chained,) = apply_attack([out], "roleplay")
    assert chained.extra["attack"] == "rot13+roleplay" and chained.extra["original_prompt"] == rec.prompt


def test_unknown_and_non_invertible() -> None:
    with pytest.raises(UserError, match="valid attacks: .*base64"):
        apply_attack([], "leetspeak")
    with pytest.raises(UserError, match="not invertible"):
        decode_attack("x", "roleplay")
    with pytest.raises(UserError, match="header"):
        decode_attack("plain text", "base64")


@pytest.mark.parametrize("name", ["base64", "rot13"])
def test_real_benchmark_roundtrip(data_dir: Path, name: str) -> None:
    for r in load_benchmark(f"harmbench+{name}", data_dir):
        assert decode_attack(r.prompt, name) == r.extra["original_prompt"]
