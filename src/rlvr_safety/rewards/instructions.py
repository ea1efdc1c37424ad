"""IFEval instruction-following verdicts by the reference implementation: lm-eval's IFEval instruction registry.

Every verdict comes from `lm_eval.tasks.ifeval` (the checkers of the IFEval paper's release, with langdetect and
NLTK's punkt), called through lm-eval's own `test_instruction_following_strict` / `_loose`, so strict and loose
mean exactly what they mean in lm-eval and in published IFEval numbers: strict checks the response as given
(an empty response follows nothing); loose also accepts it with its first line, its last line or both removed,
each with and without `*`. This module only adapts the calls to the project's types and makes two things explicit
that the reference leaves implicit:

* an instruction id the registry does not know is reported as unsupported (never passed);
* an instruction whose kwargs leave an argument to chance is reported as unsupported. The reference builds its
  instructions for prompt generation too: a missing argument, or one it cannot use, is replaced by a random draw,
  and the grade becomes random. In IFEval itself this hits two prompts (keys 1122 and 1129), whose
  letter_frequency "letter" is '#' or '!': the reference checks a random letter a-z instead (docs/ifeval.md).

langdetect is seeded (`DetectorFactory.seed = 0`) so a language verdict is the same on every call; the reference
leaves it unseeded, where a borderline text may be judged differently from run to run. NLTK's `punkt_tab` data is
found where NLTK looks, or in the `llama-index-core` wheel that ships it (installed without its dependencies,
see the Makefile); nothing is downloaded. docs/ifeval.md records how the in-house checkers that this replaced
agreed with the reference.
"""

from __future__ import annotations

import functools
import json
import random
import types
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from rlvr_safety.errors import UserError
from rlvr_safety.rewards.base import Reward, RewardVerdict

__all__ = [
    "IFEvalScores",
    "InstructionOutcome",
    "InstructionReward",
    "PromptOutcome",
    "check_instruction",
    "check_prompt",
    "count_sentences",
    "count_words",
    "coverage",
    "detect_language",
    "evaluate",
    "reference",
    "supported_types",
]

_PUNKT = "tokenizers/punkt_tab/english/"
# A PyPI wheel that ships NLTK's punkt_tab (MIT, Jan Strunk) under this folder; used for its data only.
_PUNKT_WHEEL = ("llama-index-core", "llama_index/core/_static/nltk_cache")
_CHANCE_SEEDS = 4  # a random draw (a letter of 52, a count of up to 20) repeats under 4 seeds with tiny odds
PUNKT_FIX = (
    "IFEval grading needs NLTK's punkt_tab data: `pip install --no-deps llama-index-core==0.14.25` (ships it), "
    "or `python -m nltk.downloader punkt_tab` where the NLTK data server is reachable"
)


def _ensure_punkt() -> None:
    """Make NLTK find punkt_tab before lm-eval is imported (its import would otherwise try a download)."""
    import nltk

    try:
        nltk.data.find(_PUNKT)
        return
    except LookupError:
        pass
    try:
        root = Path(str(metadata.distribution(_PUNKT_WHEEL[0]).locate_file(_PUNKT_WHEEL[1])))
    except metadata.PackageNotFoundError:
        root = None
    if root is not None and (root / _PUNKT).is_dir():
        nltk.data.path.append(str(root))
        return
    raise UserError(PUNKT_FIX)


@functools.cache
def reference() -> types.SimpleNamespace:
    """lm-eval's IFEval modules: `registry` (INSTRUCTION_DICT), `utils` (strict/loose tests), `util` (measures)."""
    try:
        import langdetect
        import nltk  # noqa: F401
    except ModuleNotFoundError as exc:
        raise UserError(f"IFEval grading needs {exc.name}: pip install 'lm-eval[ifeval]' langdetect") from exc
    _ensure_punkt()
    try:
        from lm_eval.tasks.ifeval import instructions_registry, instructions_util, utils
    except ModuleNotFoundError as exc:
        raise UserError(f"IFEval grading needs lm-eval ({exc.name} is missing): pip install 'lm-eval[ifeval]'") from exc
    langdetect.DetectorFactory.seed = 0
    return types.SimpleNamespace(registry=instructions_registry, utils=utils, util=instructions_util)


def supported_types() -> list[str]:
    """Instruction ids the reference registry can check."""
    return sorted(reference().registry.INSTRUCTION_DICT)


def count_words(text: str) -> int:
    """The reference's word count (NLTK `\\w+` tokens), as number_words uses it."""
    return int(reference().util.count_words(text))


def count_sentences(text: str) -> int:
    """The reference's sentence count (NLTK punkt, English), as number_sentences uses it."""
    return int(reference().util.count_sentences(text))


def detect_language(text: str) -> str | None:
    """langdetect's language code (seeded, as the checkers use it); None when it cannot decide."""
    import langdetect

    reference()
    try:
        return str(langdetect.detect(text))
    except langdetect.LangDetectException:
        return None


# -------------------------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class InstructionOutcome:
    """One instruction: followed strictly / loosely, or unsupported (then both False), or bad kwargs."""

    instruction_id: str
    strict: bool
    loose: bool
    supported: bool = True
    note: str = ""


@dataclass(frozen=True)
class PromptOutcome:
    """All instructions of one prompt."""

    instructions: tuple[InstructionOutcome, ...]

    @property
    def strict(self) -> bool:
        return all(o.strict for o in self.instructions)

    @property
    def loose(self) -> bool:
        return all(o.loose for o in self.instructions)

    @property
    def unsupported(self) -> list[str]:
        return [o.note or o.instruction_id for o in self.instructions if not o.supported]


def check_instruction(
    instruction_id: str, response: str, kwargs: Mapping[str, Any] | None = None, prompt: str = ""
) -> InstructionOutcome:
    """Strict and loose verdicts of the reference for one instruction (`prompt`: the IFEval prompt, if known)."""
    ref = reference()
    cls = ref.registry.INSTRUCTION_DICT.get(instruction_id)
    if cls is None:
        return InstructionOutcome(instruction_id, False, False, supported=False, note=instruction_id)
    kw = {k: v for k, v in (kwargs or {}).items() if v}  # the reference drops falsy kwargs the same way
    example = ref.utils.InputExample(key=0, instruction_id_list=[instruction_id], prompt=prompt, kwargs=[kw])
    try:
        chance = _drawn_at_random(cls, instruction_id, kw)
        if chance:
            note = f"{instruction_id}[{', '.join(f'{k}={kw.get(k)!r}' for k in chance)} left to chance]"
            return InstructionOutcome(instruction_id, False, False, supported=False, note=note)
        strict = ref.utils.test_instruction_following_strict(example, response).follow_instruction_list[0]
        loose = ref.utils.test_instruction_following_loose(example, response).follow_instruction_list[0]
    except (KeyError, TypeError, ValueError) as exc:
        return InstructionOutcome(instruction_id, False, False, note=f"bad kwargs: {type(exc).__name__}: {exc}")
    return InstructionOutcome(instruction_id, bool(strict), bool(loose))


def _drawn_at_random(cls: Any, instruction_id: str, kw: Mapping[str, Any]) -> list[str]:
    """Arguments the reference would draw at random for these kwargs: built under several seeds, they differ."""
    state = random.getstate()
    try:
        drawn = []
        for seed in range(_CHANCE_SEEDS):
            random.seed(seed)
            instruction = cls(instruction_id)
            instruction.build_description(**kw)
            drawn.append(instruction.get_instruction_args() or {})
    finally:
        random.setstate(state)
    keys = sorted({k for args in drawn for k in args})
    missing = [k for k in cls(instruction_id).get_instruction_args_keys() if k not in kw]
    return sorted(set(missing) | {k for k in keys if any(args.get(k) != drawn[0].get(k) for args in drawn)})


def check_prompt(
    response: str,
    instruction_ids: Sequence[str],
    kwargs_list: Sequence[Mapping[str, Any] | None] | None = None,
    prompt: str = "",
) -> PromptOutcome:
    """Every instruction of a prompt; `kwargs_list` aligns with `instruction_ids` (missing = no kwargs)."""
    kwargs_list = list(kwargs_list or [])
    if len(kwargs_list) not in (0, len(instruction_ids)):
        raise UserError(f"{len(instruction_ids)} instructions but {len(kwargs_list)} kwargs entries")
    kws = kwargs_list or [None] * len(instruction_ids)
    return PromptOutcome(
        tuple(check_instruction(i, response, k, prompt) for i, k in zip(instruction_ids, kws, strict=True))
    )


@dataclass(frozen=True)
class IFEvalScores:
    """The four IFEval accuracies plus what could not be checked."""

    prompt_strict: float
    prompt_loose: float
    instruction_strict: float
    instruction_loose: float
    n_prompts: int
    n_instructions: int
    n_unsupported: int = 0
    unsupported: dict[str, int] = field(default_factory=dict)


def evaluate(records: Iterable[Mapping[str, Any]], responses: Iterable[str]) -> IFEvalScores:
    """Prompt- and instruction-level accuracy (strict and loose) over IFEval-style records and responses."""
    outcomes = [
        check_prompt(r, *_instructions_of(rec), prompt=_prompt_of(rec))
        for rec, r in zip(records, responses, strict=True)
    ]
    flat = [o for p in outcomes for o in p.instructions]
    missing = Counter(name for p in outcomes for name in p.unsupported)
    n, m = len(outcomes), len(flat)
    return IFEvalScores(
        prompt_strict=sum(p.strict for p in outcomes) / n if n else 0.0,
        prompt_loose=sum(p.loose for p in outcomes) / n if n else 0.0,
        instruction_strict=sum(o.strict for o in flat) / m if m else 0.0,
        instruction_loose=sum(o.loose for o in flat) / m if m else 0.0,
        n_prompts=n,
        n_instructions=m,
        n_unsupported=sum(missing.values()),
        unsupported=dict(missing),
    )


def coverage(records: Iterable[Mapping[str, Any]]) -> tuple[int, int, dict[str, int]]:
    """(prompts whose instructions are all checkable, prompts, unsupported or ill-specified instruction -> count)."""
    total = full = 0
    missing: Counter[str] = Counter()
    for rec in records:
        total += 1
        ids, kws = _instructions_of(rec)
        outcome = check_prompt("x", ids, kws)
        gaps = [o.note or o.instruction_id for o in outcome.instructions if not o.supported or o.note]
        missing.update(gaps)
        full += not gaps
    return full, total, dict(missing)


def _extra(example: Mapping[str, Any]) -> Mapping[str, Any]:
    value = example.get("extra")
    return value if isinstance(value, Mapping) else {}


def _prompt_of(example: Mapping[str, Any]) -> str:
    value = example.get("prompt")
    return value if isinstance(value, str) else ""


def _instructions_of(example: Mapping[str, Any]) -> tuple[list[str], list[Mapping[str, Any] | None]]:
    """instruction_id_list and kwargs from the top level or from `extra`; kwargs may be a JSON string."""
    extra = _extra(example)
    ids = example.get("instruction_id_list", extra.get("instruction_id_list"))
    kws = example.get("kwargs", extra.get("kwargs"))
    if isinstance(ids, str):
        ids = json.loads(ids)
    if isinstance(kws, str):
        kws = json.loads(kws)
    if not ids:
        raise UserError("instruction example has no instruction_id_list (top level or under 'extra')")
    return [str(i) for i in ids], list(kws or [])


class InstructionReward(Reward):
    """IFEval reward. `level="prompt"`: 1.0 iff every instruction is followed; `"instruction"`: the fraction.

    `loose=True` grades with the reference's loose verdict. Unsupported instruction types and ill-specified kwargs
    count as not followed and are named in the verdict's reason.
    """

    name = "ifeval"

    def __init__(self, level: Literal["prompt", "instruction"] = "prompt", loose: bool = False) -> None:
        if level not in ("prompt", "instruction"):
            raise UserError(f"level must be 'prompt' or 'instruction', got {level!r}")
        self.level = level
        self.loose = loose
        reference()  # fail at construction, with the fix, when lm-eval or its data is missing

    def score(self, example: Mapping[str, Any], completion: str) -> RewardVerdict:
        outcome = check_prompt(completion, *_instructions_of(example), prompt=_prompt_of(example))
        followed = [o.loose if self.loose else o.strict for o in outcome.instructions]
        n = len(followed)
        value = float(all(followed)) if self.level == "prompt" else sum(followed) / n
        failed = [
            o.note or o.instruction_id
            for o, ok in zip(outcome.instructions, followed, strict=True)
            if not ok and o.supported
        ]
        reason = f"{sum(followed)}/{n} followed ({'loose' if self.loose else 'strict'})"
        if failed:
            reason += "; not followed: " + ", ".join(failed)
        if outcome.unsupported:
            reason += "; unsupported: " + ", ".join(outcome.unsupported)
        return RewardVerdict(value, None, reason)
