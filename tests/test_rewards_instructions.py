"""IFEval verdicts by the reference (lm-eval): identical to lm-eval's own scoring on all 541 prompts, the reference's
quirks pinned, arguments left to chance reported, the reward and the aggregates."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.rewards import instructions as ins
from rlvr_safety.rewards.instructions import (
    InstructionReward,
    check_instruction,
    check_prompt,
    count_sentences,
    count_words,
    coverage,
    detect_language,
    evaluate,
    reference,
    supported_types,
)
from rlvr_safety.rewards.registry import get_reward

CHANCE_KEYS = {1122, 1129}  # letter_frequency with letter '#' / '!': the reference would check a random letter


@pytest.fixture(scope="module")
def ifeval(data_dir):
    with open(data_dir / "ifeval" / "input_data.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("make", [lambda p: p, lambda p: p[: len(p) // 2].upper() + "\n**P.S.** x"])
def test_identical_to_lm_eval_scoring_on_all_prompts(ifeval, make):
    """Our verdicts equal lm-eval's process_results (its IFEval task's scoring) instruction by instruction."""
    utils = reference().utils
    for row in ifeval:
        response = make(row["prompt"])
        ours = check_prompt(response, row["instruction_id_list"], row["kwargs"], prompt=row["prompt"])
        if row["key"] in CHANCE_KEYS:
            assert ours.unsupported and not ours.strict, row["key"]
            continue
        theirs = utils.process_results(row, [response])
        assert [o.strict for o in ours.instructions] == theirs["inst_level_strict_acc"], row["key"]
        assert [o.loose for o in ours.instructions] == theirs["inst_level_loose_acc"], row["key"]
        assert (ours.strict, ours.loose) == (theirs["prompt_level_strict_acc"], theirs["prompt_level_loose_acc"])


# (instruction id, kwargs, follows, violates): the reference's behaviour, quirks included, so that an lm-eval
# upgrade that changes a verdict shows up here.
CASES = [
    ("punctuation:no_comma", {}, "No commas here. None at all!", "Well, there is one."),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 5}, "one two three four five", "a b c"),
    # \w+ tokens: "Don't" is two words
    ("length_constraints:number_words", {"relation": "less than", "num_words": 4}, "Stop me.", "Don't stop me."),
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3},
     "Mr. Smith left. He came back!", "One. Two. Three."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3},
     "First part.\n***\nSecond part.\n***\nThird part.", "First.\n***\nSecond."),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "president"},
     'Intro text.\n\n"President Jones spoke.\n\nThe end.', "Intro text.\n\nThe president spoke.\n\nThe end."),
    # substring match: "doggy days" contains "day"
    ("keywords:existence", {"keywords": ["dog", "day"]}, "Every dog has its moment; doggy days.", "Every cat."),
    ("keywords:forbidden_words", {"forbidden_words": ["art", "bad"]}, "Start the party; badge please.",
     "That was bad."),
    ("keywords:frequency", {"keyword": "might", "frequency": 2, "relation": "at least"}, "I might, you Might.",
     "I might go."),
    ("keywords:letter_frequency", {"letter": "q", "let_frequency": 2, "let_relation": "at least"}, "Quick quiz",
     "Quick"),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', "{'a': 1}"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "List:\n* one\n- two", "* one\n* two\n* three"),
    ("detectable_format:title", {}, "<<My Title>>\nBody", "My Title\n<< >>"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and **two**", "*one* only"),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION 1\nA\nSECTION 2\nB", "SECTION 1\nA"),
    # any of the options anywhere counts, even two of them
    ("detectable_format:constrained_response", {}, "My answer is yes. My answer is no.", "my answer is yes."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [].", "Dear [name]."),
    # a marker anywhere in the text counts, not only at a line start
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Bye. p.s. see you", "Bye. PS see you"),
    ("change_case:english_lowercase", {}, "all of this is lowercase and it is english.", "All of this is english."),
    ("change_case:english_capital", {}, "THIS IS ALL IN CAPITALS AND IT IS ENGLISH.", "THIS IS MOSTLY Capitals."),
    ("change_case:capital_word_frequency", {"capital_relation": "less than", "capital_frequency": 2},
     "Use CAPS here", "USE CAPS here"),
    # quotes around the text are stripped before the end phrase is looked for
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, '"Done. Any other questions?"',
     "Any other questions? Bye."),
    ("startend:quotation", {}, '"Wrapped in quotes."', 'Not "wrapped".'),
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", "Same.\n******\nSame."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "Write a poem. Roses are red.",
     "Sure! Write a poem."),
    ("language:response_language", {"language": "de"}, "Der Hund ist nicht hier, und die Katze auch nicht.",
     "The dog is not here and neither is the cat."),
]


@pytest.mark.parametrize(("iid", "kwargs", "follows", "violates"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_reference_behaviour(iid, kwargs, follows, violates):
    good = check_instruction(iid, follows, kwargs)
    bad = check_instruction(iid, violates, kwargs)
    assert good.supported and good.strict and good.loose and not good.note, good
    assert bad.supported and not bad.strict, bad


def test_every_registered_type_has_a_case():
    assert {c[0] for c in CASES} == set(supported_types()) and len(supported_types()) == 25


def test_loose_is_lm_evals_loose():
    text = "Sure, here it is:\n**this is the answer and it is short**"
    out = check_instruction("change_case:english_lowercase", text)
    assert not out.strict and out.loose  # without the first line and the asterisks it is all lowercase
    assert not check_instruction("punctuation:no_comma", "").strict  # an empty response follows nothing
    assert not check_instruction("keywords:forbidden_words", "  ", {"forbidden_words": ["x"]}).loose


def test_measures_are_the_references():
    assert count_words("Don't stop-me now, 42 times") == 7
    assert count_sentences("Dr. Who arrived at 3.30 p.m. today. Then what? Nothing!") == 3
    assert detect_language("Der Hund ist nicht hier, und die Katze auch nicht.") == "de"
    assert detect_language("12345 !!!") is None


def test_language_verdicts_are_deterministic():
    for text in ("ok fine sure", "yes no"):  # short and ambiguous: unseeded, langdetect varies across calls
        assert len({detect_language(text) for _ in range(20)}) == 1


def test_arguments_left_to_chance_are_unsupported_never_graded():
    hashes = {"letter": "#", "let_frequency": 4, "let_relation": "at least"}
    out = check_instruction("keywords:letter_frequency", "#### zzzz", hashes)
    assert not out.supported and not out.loose and "letter='#' left to chance" in out.note
    missing = check_instruction("keywords:frequency", "a", {"keyword": "a"})  # frequency and relation missing
    assert not missing.supported and "frequency=None, relation=None" in missing.note
    bad = check_instruction("keywords:frequency", "a", {"keyword": "a", "frequency": 1, "relation": "around"})
    assert bad.supported and not bad.loose and bad.note.startswith("bad kwargs: ValueError")
    unknown = check_prompt("hello", ["punctuation:no_comma", "made_up:type"], [{}, {}])
    assert not unknown.strict and unknown.unsupported == ["made_up:type"]


def test_dataset_coverage(ifeval):
    full, total, gaps = coverage(ifeval)
    assert (full, total) == (539, 541)
    assert gaps == {
        "keywords:letter_frequency[letter='#' left to chance]": 1,
        "keywords:letter_frequency[letter='!' left to chance]": 1,
    }


def test_evaluate_aggregates(ifeval):
    recs = [r for r in ifeval if r["instruction_id_list"] == ["punctuation:no_comma"]][:2]
    fake = [*recs, {"instruction_id_list": ["nope:nope"], "kwargs": [{}]}]
    scores = evaluate(fake, ["no commas here", "a, b", "anything"])
    assert scores.n_prompts == 3 and scores.n_instructions == 3
    assert scores.prompt_strict == pytest.approx(1 / 3) and scores.instruction_loose == pytest.approx(1 / 3)
    assert scores.n_unsupported == 1 and scores.unsupported == {"nope:nope": 1}


def test_missing_punkt_is_one_clear_error(monkeypatch):
    import nltk

    def nowhere(*args, **kwargs):
        raise LookupError("punkt_tab")

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(nltk.data, "find", nowhere)
    monkeypatch.setattr(ins.metadata, "distribution", not_installed)
    with pytest.raises(UserError, match="punkt_tab"):
        ins._ensure_punkt()


def test_instruction_reward_levels_and_inputs():
    reward = get_reward("ifeval")
    assert isinstance(reward, InstructionReward) and reward.name == "ifeval"
    ex = {
        "instruction_id_list": ["punctuation:no_comma", "keywords:existence"],
        "kwargs": [{"num_words": None}, {"keywords": ["cat"]}],  # HF-style None padding is ignored
    }
    assert reward.score(ex, "a cat sat").value == 1.0
    half = reward.score(ex, "a dog, sat")
    assert half.value == 0.0 and "0/2 followed" in half.reason
    partial = InstructionReward(level="instruction").score(ex, "a cat, sat")
    assert partial.value == 0.5 and "punctuation:no_comma" in partial.reason
    nested = {
        "extra": {
            "instruction_id_list": json.dumps(ex["instruction_id_list"]),
            "kwargs": json.dumps(ex["kwargs"]),
        }
    }
    assert reward.score(nested, "a cat sat").value == 1.0
    loose = InstructionReward(loose=True)
    example = {"instruction_id_list": ["change_case:english_lowercase"]}
    assert loose.score(example, "Sure:\nall lowercase here and it is fine").value == 1.0
    assert reward.score(example, "Sure:\nall lowercase here and it is fine").value == 0.0
    unsupported = reward.score({"instruction_id_list": ["x:y"], "kwargs": [{}]}, "text")
    assert unsupported.value == 0.0 and "unsupported: x:y" in unsupported.reason
    values = reward(
        prompts=["p", "p"],
        completions=["a cat", "a, dog"],
        instruction_id_list=[ex["instruction_id_list"]] * 2,
        kwargs=[ex["kwargs"]] * 2,
    )
    assert values == [1.0, 0.0]
    with pytest.raises(UserError):
        InstructionReward(level="word")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="instruction_id_list"):
        reward.score({"prompt": "x"}, "y")
    with pytest.raises(UserError, match="kwargs"):
        check_prompt("x", ["punctuation:no_comma"], [{}, {}])
