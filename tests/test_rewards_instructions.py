"""Instruction-following checkers: each type on hand-written positives and negatives, loose mode, coverage."""

from __future__ import annotations

import json

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.rewards.instructions import (
    CHECKERS,
    InstructionReward,
    check_instruction,
    check_prompt,
    count_sentences,
    count_words,
    coverage,
    detect_language,
    evaluate,
    loose_variants,
    supported_types,
)
from rlvr_safety.rewards.registry import get_reward


@pytest.fixture(scope="module")
def ifeval(data_dir):
    with open(data_dir / "ifeval" / "input_data.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# (instruction id, kwargs, follows, violates)
CASES = [
    ("punctuation:no_comma", {}, "No commas here. None at all!", "Well, there is one."),
    (
        "length_constraints:number_words",
        {"relation": "at least", "num_words": 5},
        "one two three four five",
        "one two three",
    ),
    (
        "length_constraints:number_words",
        {"relation": "less than", "num_words": 4},
        "Don't stop me.",
        "This has five words now.",
    ),
    (
        "length_constraints:number_sentences",
        {"relation": "less than", "num_sentences": 3},
        "Mr. Smith left. He came back!",
        "One. Two. Three.",
    ),
    (
        "length_constraints:number_sentences",
        {"relation": "at least", "num_sentences": 3},
        "It is 3.5 km. Go! Why?",
        "One sentence only, e.g. this one.",
    ),
    (
        "length_constraints:number_paragraphs",
        {"num_paragraphs": 3},
        "First part.\n***\nSecond part.\n***\nThird part.",
        "First.\n***\nSecond.",
    ),
    (
        "length_constraints:number_paragraphs",
        {"num_paragraphs": 2},
        "A paragraph. *** Another one.",
        "One.\n***\n***\nTwo.",
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "President"},
        'Intro text.\n\n"President Jones spoke.\n\nThe end.',
        "Intro text.\n\nThe president spoke.\n\nThe end.",
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "weekend"},
        "**Weekend** plans are set.\n\nSee you.",
        "Weekend plans.\n\nSee you.\n\nBye.",  # three paragraphs, not two
    ),
    (
        "keywords:existence",
        {"keywords": ["dog", "day"]},
        "Every DOG has its day.",
        "Every dog has its moment; doggy days.",
    ),
    (
        "keywords:forbidden_words",
        {"forbidden_words": ["art", "bad"]},
        "Start the party; badge please.",
        "That was bad.",
    ),
    (
        "keywords:frequency",
        {"keyword": "might", "frequency": 2, "relation": "at least"},
        "I might, you Might.",
        "I might go.",
    ),
    (
        "keywords:frequency",
        {"keyword": "ice", "frequency": 2, "relation": "less than"},
        "Ice is nice, price too.",
        "Ice, ice baby.",
    ),
    (
        "keywords:letter_frequency",
        {"letter": "q", "let_frequency": 2, "let_relation": "at least"},
        "Quick quiz",
        "Quick",
    ),
    (
        "keywords:letter_frequency",
        {"letter": "e", "let_frequency": 1, "let_relation": "less than"},
        "Hot sun, warm road",
        "The sun",
    ),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', "{'a': 1}"),
    (
        "detectable_format:number_bullet_lists",
        {"num_bullets": 2},
        "List:\n* one\n- two\n***",
        "* one\n* two\n* three",
    ),
    ("detectable_format:title", {}, "<<My Title>>\nBody", "My Title\n<< >>"),
    (
        "detectable_format:number_highlighted_sections",
        {"num_highlights": 2},
        "*one* and **two**",
        "* bullet\n* other bullet *",
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "SECTION", "num_sections": 2},
        "SECTION 1\nA\nSECTION 2\nB",
        "Section 1\nA\nSection 2\nB",
    ),
    (
        "detectable_format:constrained_response",
        {},
        "Hmm. My answer is maybe.",
        "My answer is yes. My answer is no.",
    ),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 2},
        "Dear [name], at [address].",
        "Dear [name], at [].",
    ),
    (
        "detectable_content:postscript",
        {"postscript_marker": "P.S."},
        "Bye.\n\nP.S. See you",
        "Bye. PS see you",
    ),
    (
        "detectable_content:postscript",
        {"postscript_marker": "P.P.S"},
        "Bye.\n**P.P.S.** more",
        "Bye.\nP.S. more",
    ),
    (
        "change_case:english_lowercase",
        {},
        "all of this is lowercase and it is english.",
        "All of this is english.",
    ),
    (
        "change_case:english_lowercase",
        {},
        "all of this is lowercase and it is english.",
        "der hund ist nicht hier und die katze auch.",
    ),
    (
        "change_case:english_capital",
        {},
        "THIS IS ALL IN CAPITALS AND IT IS ENGLISH.",
        "THIS IS MOSTLY Capitals.",
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_relation": "at least", "capital_frequency": 2},
        "USE CAPS here",
        "Use CAPS here",
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_relation": "less than", "capital_frequency": 2},
        "Use CAPS here",
        "USE CAPS here",
    ),
    (
        "startend:end_checker",
        {"end_phrase": "Is there anything else I can help with?"},
        "Done.\nIs there anything else I can help with?  ",
        "Is there anything else I can help with? Bye.",
    ),
    ("startend:quotation", {}, '"Wrapped in quotes."', 'Not "wrapped".'),
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", "Same.\n******\nSame."),
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", "One.\n*******\nTwo."),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": "Write a poem."},
        "Write a poem. Roses are red.",
        "Sure! Write a poem. Roses...",
    ),
    (
        "language:response_language",
        {"language": "de"},
        "Der Hund ist nicht hier, und die Katze auch nicht.",
        "The dog is not here and neither is the cat.",
    ),
    (
        "language:response_language",
        {"language": "hi"},
        "यह एक अच्छा दिन है और हम खुश हैं।",
        "मांजर टेबलावर आहे आणि ती खाली येत नाही कारण ती घाबरली आहे.",
    ),
    ("language:response_language", {"language": "ko"}, "고양이가 탁자 위에 있어요.", "猫在桌子上。"),
]


@pytest.mark.parametrize(
    ("iid", "kwargs", "follows", "violates"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_checker_positive_and_negative(iid, kwargs, follows, violates):
    good = check_instruction(iid, follows, kwargs)
    bad = check_instruction(iid, violates, kwargs)
    assert good.supported and good.strict and good.loose, good
    assert bad.supported and not bad.strict, bad


def test_every_checker_has_cases():
    assert {c[0] for c in CASES} == set(CHECKERS) and len(supported_types()) >= 20


def test_measures():
    assert count_words("Don't stop-me now, 42 times") == 6
    assert count_sentences("Dr. Who arrived at 3.30 p.m. today. Then what? Nothing!") == 3
    assert count_sentences("1. First item.\n2. Second item.\n\n* bullet without stop") == 3
    assert count_sentences("") == 0
    assert detect_language("") is None and detect_language("12345 !!!") is None
    assert detect_language("Кошка сидит на столе и не хочет спускаться, потому что она боится.") == "ru"
    assert detect_language("Котката е на масата и не иска да слезе, защото се страхува.") == "bg"
    assert detect_language("گربه روی میز است و نمی‌خواهد پایین بیاید چون از سگ می‌ترسد.") == "fa"
    assert detect_language("Con mèo đang ở trên bàn và không muốn xuống vì nó sợ.") == "vi"
    assert detect_language("Kissa on pöydällä ja se ei halua tulla alas, koska se pelkää.") == "fi"


def test_loose_mode_forgives_preamble_and_asterisks():
    text = "Sure, here it is:\n**this is the answer and it is short**"
    strict = check_instruction("change_case:english_lowercase", text)
    assert not strict.strict and strict.loose  # without the first line (and asterisks) it is all lowercase
    outcome = check_instruction("startend:end_checker", "**The end.**", {"end_phrase": "The end."})
    assert not outcome.strict and outcome.loose
    assert len(loose_variants("a\nb\nc")) == 8 and loose_variants("a\n*b*\nc")[7] == "b"


def test_empty_response_follows_nothing():
    assert not check_instruction("punctuation:no_comma", "").strict
    assert not check_instruction("keywords:forbidden_words", "  ", {"forbidden_words": ["x"]}).loose


def test_unsupported_types_are_reported_not_passed():
    out = check_prompt(
        "hello, world",
        ["punctuation:no_comma", "made_up:type", "language:response_language"],
        [{}, {}, {"language": "xx"}],
    )
    assert not out.strict and not out.loose
    assert out.unsupported == ["made_up:type", "language:response_language[xx]"]
    bad = check_instruction("keywords:frequency", "a", {"keyword": "a"})  # relation missing
    assert bad.supported and not bad.loose and bad.note.startswith("bad kwargs")
    assert check_instruction(
        "length_constraints:number_words", "a b", {"relation": "around", "num_words": 2}
    ).note


def test_dataset_coverage(ifeval):
    full, total, missing = coverage(ifeval)
    print(f"IFEval coverage: {full}/{total} prompts fully checkable; unsupported: {missing}")
    types = {i for rec in ifeval for i in rec["instruction_id_list"]}
    assert total == 541 and types <= set(CHECKERS) and full == total and missing == {}


def test_evaluate_aggregates(ifeval):
    recs = [r for r in ifeval if r["instruction_id_list"] == ["punctuation:no_comma"]][:2]
    fake = [*recs, {"instruction_id_list": ["nope:nope"], "kwargs": [{}]}]
    scores = evaluate(fake, ["no commas here", "a, b", "anything"])
    assert scores.n_prompts == 3 and scores.n_instructions == 3
    assert scores.prompt_strict == pytest.approx(1 / 3) and scores.instruction_loose == pytest.approx(1 / 3)
    assert scores.n_unsupported == 1 and scores.unsupported == {"nope:nope": 1}


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
    assert (
        loose.score(
            {"instruction_id_list": ["change_case:english_lowercase"]},
            "Sure:\nall lowercase here and it is fine",
        ).value
        == 1.0
    )
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
