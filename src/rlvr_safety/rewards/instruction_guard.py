"""The instruction-following reward for training: IFEval's reference verdict, with the hacks a policy finds closed.

The reference checkers (`instructions.py`) grade exactly what IFEval specifies, and a policy can meet that without
doing the task. Measured on the reference (tests/test_reward_hacking.py, classes I1-I5): 300 copies of one word
meet "at least 300 words"; 25 copies of "Ok." meet "at least 20 sentences"; a forbidden word split by a zero-width
space is not that word to the checker; "Answer one." and "Answer one!" are two different responses; an English
answer with a line of German function words repeated is German. This reward ("ifeval-rl", what training on
IFEval-style tasks uses) keeps the reference verdict and in addition:

* checks the response with invisible format characters removed and compatibility forms folded (NFKC), which is
  how a reader sees it;
* checks lower bounds on words and sentences, and the response language, on the response with padding removed:
  a sentence that repeats an earlier one, and every word that completes a four-word sequence already seen;
* does not count two responses as different when they differ only in case, punctuation or spacing.

Evaluation keeps the reference ("ifeval"), so IFEval numbers stay comparable with published ones.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from rlvr_safety.rewards.base import RewardVerdict
from rlvr_safety.rewards.instructions import (
    InstructionOutcome,
    InstructionReward,
    _instructions_of,
    _prompt_of,
    check_prompt,
)

__all__ = ["GuardedInstructionReward", "depad", "normalize"]

_LOWER_BOUNDED = {"length_constraints:number_words", "length_constraints:number_sentences"}
_DEPADDED = _LOWER_BOUNDED | {"language:response_language"}
_TWO_RESPONSES = "combination:two_responses"
_SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]*|\n+")
_WORD_RE = re.compile(r"\S+")
_NGRAM = 4


def normalize(text: str) -> str:
    """NFKC, without format characters (zero-width space and joiners, soft hyphen, direction marks)."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def depad(text: str) -> str:
    """The text without repeated sentences, and without the words that complete an already seen 4-word sequence."""
    seen_sentences: set[str] = set()
    seen_ngrams: set[tuple[str, ...]] = set()
    window: list[str] = []
    out: list[str] = []
    for piece in _SENTENCE_RE.findall(text):
        if not piece.strip():
            out.append(piece)
            continue
        key = _key(piece)
        if key and key in seen_sentences:
            continue
        seen_sentences.add(key)
        kept = []
        for word in _WORD_RE.findall(piece):
            window = [*window, _key(word)][-_NGRAM:]
            gram = tuple(window)
            if len(gram) == _NGRAM and gram in seen_ngrams:
                continue
            seen_ngrams.add(gram)
            kept.append(word)
        if kept:
            out.append(" ".join(kept) + " ")
    return "".join(out).strip()


def _lower_bound(kwargs: Mapping[str, Any] | None) -> bool:
    return str((kwargs or {}).get("relation", "")).strip().lower() in ("at least", "more than")


class GuardedInstructionReward(InstructionReward):
    """InstructionReward for training: the reference verdict on the normalised response, padding discounted."""

    name = "ifeval-rl"

    def score(self, example: Mapping[str, Any], completion: str) -> RewardVerdict:
        text = normalize(completion)
        ids, kwargs = _instructions_of(example)
        kws: list[Mapping[str, Any] | None] = list(kwargs) or [None] * len(ids)
        prompt = _prompt_of(example)
        outcomes = list(check_prompt(text, ids, kws, prompt=prompt).instructions)
        guarded = [
            i for i, iid in enumerate(ids) if iid in _DEPADDED and (iid not in _LOWER_BOUNDED or _lower_bound(kws[i]))
        ]
        if guarded:
            again = check_prompt(depad(text), [ids[i] for i in guarded], [kws[i] for i in guarded], prompt=prompt)
            for i, o in zip(guarded, again.instructions, strict=True):
                if outcomes[i].supported and not (o.strict and o.loose):
                    outcomes[i] = InstructionOutcome(
                        ids[i], outcomes[i].strict and o.strict, outcomes[i].loose and o.loose, note=ids[i] + " (padded)"
                    )
        for i, iid in enumerate(ids):
            parts = [p for p in re.split(r"(?<!\*)\*{6}(?!\*)", text) if p.strip()]
            if iid == _TWO_RESPONSES and len(parts) == 2 and _key(parts[0]) == _key(parts[1]):
                outcomes[i] = InstructionOutcome(iid, False, False, note=iid + " (the same response twice)")
        followed = [o.loose if self.loose else o.strict for o in outcomes]
        value = float(all(followed)) if self.level == "prompt" else sum(followed) / len(followed)
        failed = [o.note or o.instruction_id for o, ok in zip(outcomes, followed, strict=True) if not ok and o.supported]
        unsupported = [o.note or o.instruction_id for o in outcomes if not o.supported]
        reason = f"{sum(followed)}/{len(followed)} followed ({'loose' if self.loose else 'strict'}, guarded)"
        if failed:
            reason += "; not followed: " + ", ".join(failed)
        if unsupported:
            reason += "; unsupported: " + ", ".join(unsupported)
        return RewardVerdict(value, None, reason)
