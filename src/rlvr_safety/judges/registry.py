"""Judge registry: one name -> one judge, so every stored verdict can be traced back to how it was made.

Heavy judges are imported lazily: asking for "keyword" never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator

from rlvr_safety.errors import UserError
from rlvr_safety.judges.base import Judge
from rlvr_safety.judges.hf_ids import HF_JUDGE_IDS, hf_family
from rlvr_safety.registry import Registry

# The judge every command and stage uses unless told otherwise (docs/judges.md says why keyword): the one default.
DEFAULT_JUDGE = "keyword"


def _keyword(**options: Any) -> Judge:
    from rlvr_safety.judges.keyword import KeywordJudge

    if options:
        raise UserError(f"judge 'keyword' takes no options, got {sorted(options)}; remove them")
    return KeywordJudge()


def _hf(model_id: str) -> Callable[..., Judge]:
    def make(**options: Any) -> Judge:
        from rlvr_safety.judges.hf_classifiers import make_hf_classifier

        # the family (prompt format) and name come from the registered id, even when model_id points at a local copy
        family = hf_family(model_id)
        name = next((n for n, known in HF_JUDGE_IDS.items() if known == model_id), None)
        return make_hf_classifier(options.pop("model_id", model_id), family=family, name=name, **options)

    return make


JUDGES: Registry[Callable[..., Judge]] = Registry(
    "judge", "or hf:<model_id> (a Llama Guard, WildGuard or HarmBench classifier id)")
JUDGES.add("keyword", _keyword)
JUDGES.add("learned", "rlvr_safety.judges.learned:LearnedJudge")
JUDGES.add("strongreject", "rlvr_safety.judges.strongreject:StrongRejectJudge")
for _name, _model_id in HF_JUDGE_IDS.items():
    JUDGES.add(_name, _hf(_model_id))


def list_judges() -> list[str]:
    """Names `get_judge` accepts (plus "hf:<model_id>" for a known classifier family)."""
    return JUDGES.names()


def _is_hf_id(name: str) -> bool:
    return name.strip().lower().startswith("hf:") and hf_family(name.strip()[3:]) is not None


def check_judge_name(name: str) -> str:
    """`name` if get_judge knows it (nothing is built or imported), else a UserError listing the known names."""
    if not _is_hf_id(name):
        JUDGES.check(name)
    return name


def _valid_judge_name(name: str) -> str:
    try:
        return check_judge_name(name)
    except UserError as exc:
        raise ValueError(str(exc)) from None


# A judge name in a config: checked when the config is validated, so a typo fails before any work starts.
JudgeName = Annotated[str, AfterValidator(_valid_judge_name)]


def get_judge(name: str, **options: Any) -> Judge:
    """Build a judge by name; options go to its constructor. Unknown names raise UserError listing the known ones."""
    if _is_hf_id(name):
        return _hf(name.strip()[3:].strip())(**options)
    judge: Judge = JUDGES.build(name, **options)
    return judge


def build_judge(
    name: str,
    judge_endpoint: str | None = None,
    judge_model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
) -> Judge:
    """What the CLI calls for --judge / --judge-endpoint / --judge-model: flags mapped onto get_judge options.

    strongreject: --judge-endpoint URL --judge-model NAME (OpenAI-compatible server), or --judge-model SPEC alone
    (local model). HF classifiers: --judge-model overrides the model id (e.g. a local copy). Flags a judge cannot use
    raise UserError rather than being silently ignored.
    """
    key = name.strip().lower()
    if key == "strongreject":
        return get_judge(key, endpoint=judge_endpoint, model=judge_model, api_key_env=api_key_env)
    if judge_endpoint:
        raise UserError(f"--judge-endpoint only applies to --judge strongreject, not {name!r}; remove it")
    if judge_model:
        if key in HF_JUDGE_IDS or key.startswith("hf:"):
            return get_judge(key, model_id=judge_model)
        raise UserError(f"--judge-model does not apply to --judge {name!r}; remove it")
    return get_judge(name)
