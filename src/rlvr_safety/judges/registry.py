"""Judge registry: one name -> one judge, so every stored verdict can be traced back to how it was made.

Heavy judges are imported lazily: asking for "keyword" never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlvr_safety.errors import UserError
from rlvr_safety.judges.base import Judge

# Short name -> HF model id of the classifier families in judges.hf_classifiers.
HF_JUDGE_IDS: dict[str, str] = {
    "llama-guard-3-1b": "meta-llama/Llama-Guard-3-1B",
    "llama-guard-3-8b": "meta-llama/Llama-Guard-3-8B",
    "wildguard": "allenai/wildguard",
    "harmbench-cls": "cais/HarmBench-Llama-2-13b-cls",
    "harmbench-cls-mistral": "cais/HarmBench-Mistral-7b-val-cls",
}


def hf_family(model_id: str) -> str | None:
    """Which prompt format a classifier id speaks ("llama-guard", "wildguard", "harmbench"), from its name."""
    lowered = model_id.lower()
    for family in ("llama-guard", "wildguard", "harmbench"):
        if family in lowered.replace("_", "-"):
            return family
    return None


def _keyword(**options: Any) -> Judge:
    from rlvr_safety.judges.keyword import KeywordJudge

    if options:
        raise UserError(f"judge 'keyword' takes no options, got {sorted(options)}; remove them")
    return KeywordJudge()


def _learned(**options: Any) -> Judge:
    from rlvr_safety.judges.learned import LearnedJudge

    return LearnedJudge(**options)


def _strongreject(**options: Any) -> Judge:
    from rlvr_safety.judges.strongreject import StrongRejectJudge

    return StrongRejectJudge(**options)


def _hf(model_id: str) -> Callable[..., Judge]:
    def make(**options: Any) -> Judge:
        from rlvr_safety.judges.hf_classifiers import make_hf_classifier

        return make_hf_classifier(options.pop("model_id", model_id), **options)

    return make


_FACTORIES: dict[str, Callable[..., Judge]] = {
    "keyword": _keyword,
    "learned": _learned,
    "strongreject": _strongreject,
    **{name: _hf(model_id) for name, model_id in HF_JUDGE_IDS.items()},
}


def list_judges() -> list[str]:
    """Names `get_judge` accepts (plus "hf:<model_id>" for a known classifier family)."""
    return sorted(_FACTORIES)


def get_judge(name: str, **options: Any) -> Judge:
    """Build a judge by name; options go to its constructor. Unknown names raise UserError listing the known ones."""
    key = name.strip().lower()
    if key in _FACTORIES:
        return _FACTORIES[key](**options)
    if key.startswith("hf:") and hf_family(name[3:]) is not None:
        return _hf(name[3:].strip())(**options)
    raise UserError(
        f"unknown judge {name!r}; choose one of {', '.join(list_judges())} or hf:<model_id> "
        "(a Llama Guard, WildGuard or HarmBench classifier id)"
    )
