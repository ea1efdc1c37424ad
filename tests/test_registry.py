"""The one registry: lazy "module:attribute" entries imported on first use, case-insensitive names, one-line
errors, defaults a caller can override; judges, rewards, generation backends and recipes all use it."""

from __future__ import annotations

import sys

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.registry import Registry


def test_lazy_entries_are_imported_on_first_use_only() -> None:
    reg: Registry[object] = Registry("widget")
    reg.add("Dec", "decimal:Decimal")
    reg.add("frac", "fractions:Fraction", numerator=3)
    sys.modules.pop("fractions", None)
    assert reg.names() == ["dec", "frac"] and "FRAC" in reg and "fractions" not in sys.modules
    assert str(reg.build("frac", denominator=4)) == "3/4" and "fractions" in sys.modules
    assert str(reg.build(" DEC ", value="1.5")) == "1.5"


def test_unknown_names_missing_modules_and_bad_options_are_one_line_user_errors() -> None:
    reg: Registry[object] = Registry("widget", "(see docs)")
    reg.add("ok", "decimal:Decimal")
    reg.add("gone", "rlvr_safety_no_such_module:Thing")
    with pytest.raises(UserError, match=r"unknown widget 'nope'; choose one of gone, ok \(see docs\)"):
        reg.get("nope")
    with pytest.raises(UserError, match="module rlvr_safety_no_such_module is missing"):
        reg.get("gone")
    with pytest.raises(UserError, match="bad options for widget 'ok'"):
        reg.build("ok", colour="red")
    with pytest.raises(ValueError, match="twice"):
        reg.add("OK", "decimal:Decimal")


def test_the_projects_registries() -> None:
    from rlvr_safety.generation.base import BACKENDS, GENERATORS
    from rlvr_safety.judges.registry import JUDGES
    from rlvr_safety.rewards.registry import REWARDS
    from rlvr_safety.training import RUNNERS

    assert {"keyword", "learned", "strongreject"} <= set(JUDGES.names())
    assert {"math", "gsm8k", "arithmetic", "code", "ifeval", "ifeval-rl"} <= set(REWARDS.names())
    assert set(BACKENDS) == set(GENERATORS.names()) == {"hf", "vllm", "openai"}
    assert RUNNERS.names() == ["guard", "rlhf", "rlvr", "sft"]
    with pytest.raises(UserError, match="unknown generation backend 'bogus'"):
        GENERATORS.get("bogus")
