"""Verifiable instruction constraints (IFEval-style): one checker per instruction type, written from the spec.

Each checker answers "does this response follow the instruction?" from the response text and the instruction's
kwargs alone. The strict verdict checks the response as given; the loose verdict (as in the IFEval paper) also
accepts the response with its first line, its last line, or both removed, each with and without markdown
asterisks, so that a polite preamble or bold formatting does not fail an otherwise compliant answer.

An instruction type without a checker is never passed silently: it counts as not followed and is listed as
unsupported in the verdict and in the aggregate.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rlvr_safety.errors import UserError
from rlvr_safety.rewards.base import Reward, RewardVerdict

__all__ = [
    "CHECKERS",
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
    "loose_variants",
    "supported_types",
]

Checker = Callable[[str, Mapping[str, Any]], bool]
CHECKERS: dict[str, Checker] = {}


def _register(name: str) -> Callable[[Checker], Checker]:
    def deco(fn: Checker) -> Checker:
        CHECKERS[name] = fn
        return fn

    return deco


def supported_types() -> list[str]:
    """Instruction ids that have a checker."""
    return sorted(CHECKERS)


# --------------------------------------------------------------------------------------------- text measures

_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e a.m p.m u.s u.k no fig inc ltd co jan feb mar apr jun jul aug sep "
    "sept oct nov dec approx dept est".split()
)


def count_words(text: str) -> int:
    """Words = runs of letters/digits, an apostrophe inside a word keeping it whole ("don't" is one word)."""
    return len(_WORD_RE.findall(text))


def count_sentences(text: str) -> int:
    """Sentences end with . ! ? (or their CJK/Devanagari forms) before whitespace or the end of the text.

    A period after a common abbreviation or a single letter (initials) does not end a sentence; decimals never
    qualify because no whitespace follows their point. Bullet points and lines without end punctuation count
    as one sentence each when they hold words.
    """
    count = 0
    for line in re.split(r"\n\s*\n|\n(?=\s*(?:[*\-•]|\d+[.)])\s)", text):
        pieces = re.split(r"(?<=[.!?।])[\"'”’)\]]*\s+|(?<=[。！？])\s*", line.strip())
        merged: list[str] = []
        for piece in pieces:
            if merged and _ends_with_abbreviation(merged[-1]):
                merged[-1] += " " + piece
            else:
                merged.append(piece)
        count += sum(1 for p in merged if _WORD_RE.search(p))
    return count


def _ends_with_abbreviation(piece: str) -> bool:
    if not piece.endswith("."):
        return False
    if re.fullmatch(
        r"\(?(?:\d{1,3}|[A-Za-z]|[ivxIVX]{1,4})[.)]", piece.strip()
    ):  # enumerator: "1.", "b.", "iv."
        return True
    last = piece.rsplit(None, 1)[-1].rstrip(".").lower().lstrip("(\"'")
    dotted = re.fullmatch(r"(?:\w\.)+\w", last) is not None  # D.C., U.S.A.
    return last in _ABBREVIATIONS or dotted or (len(last) == 1 and last.isalpha())


def _compare(value: int, relation: str, target: int) -> bool:
    rel = relation.strip().lower()
    if rel == "at least":
        return value >= target
    if rel == "less than":
        return value < target
    if rel == "at most":
        return value <= target
    if rel == "more than":
        return value > target
    if rel in ("exactly", "equal to"):
        return value == target
    raise ValueError(f"unknown relation {relation!r}")


def _phrase_re(phrase: str) -> re.Pattern[str]:
    """Case-insensitive match of a word or phrase, not inside a longer word."""
    body = re.escape(phrase.strip())
    left = r"(?<!\w)" if phrase.strip()[:1].isalnum() else ""
    right = r"(?!\w)" if phrase.strip()[-1:].isalnum() else ""
    return re.compile(left + body + right, re.IGNORECASE)


# ------------------------------------------------------------------------------------------------- checkers


@_register("punctuation:no_comma")
def _no_comma(text: str, kw: Mapping[str, Any]) -> bool:
    return not any(c in text for c in ",，、﹐،")


@_register("length_constraints:number_words")
def _number_words(text: str, kw: Mapping[str, Any]) -> bool:
    return _compare(count_words(text), kw["relation"], int(kw["num_words"]))


@_register("length_constraints:number_sentences")
def _number_sentences(text: str, kw: Mapping[str, Any]) -> bool:
    return _compare(count_sentences(text), kw["relation"], int(kw["num_sentences"]))


def _divider_paragraphs(text: str) -> list[str] | None:
    """Paragraphs separated by the markdown divider ***; None if one of them is empty (a doubled divider)."""
    parts = [p.strip() for p in re.split(r"^\s*\*\*\*+\s*$|\s\*\*\*\s", text.strip(), flags=re.M)]
    if parts and not parts[0]:
        parts = parts[1:]
    if parts and not parts[-1]:
        parts = parts[:-1]
    return None if any(not p for p in parts) else parts


@_register("length_constraints:number_paragraphs")
def _number_paragraphs(text: str, kw: Mapping[str, Any]) -> bool:
    parts = _divider_paragraphs(text)
    return parts is not None and len(parts) == int(kw["num_paragraphs"])


@_register("length_constraints:nth_paragraph_first_word")
def _nth_paragraph_first_word(text: str, kw: Mapping[str, Any]) -> bool:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    n, nth = int(kw["num_paragraphs"]), int(kw["nth_paragraph"])
    if len(paragraphs) != n or not 1 <= nth <= n:
        return False
    first = _WORD_RE.search(paragraphs[nth - 1])
    return first is not None and first.group(0).lower() == str(kw["first_word"]).strip().lower()


@_register("keywords:existence")
def _keywords_existence(text: str, kw: Mapping[str, Any]) -> bool:
    return all(_phrase_re(k).search(text) for k in kw["keywords"])


@_register("keywords:forbidden_words")
def _forbidden_words(text: str, kw: Mapping[str, Any]) -> bool:
    return not any(_phrase_re(w).search(text) for w in kw["forbidden_words"])


@_register("keywords:frequency")
def _keyword_frequency(text: str, kw: Mapping[str, Any]) -> bool:
    found = len(_phrase_re(kw["keyword"]).findall(text))
    return _compare(found, kw["relation"], int(kw["frequency"]))


@_register("keywords:letter_frequency")
def _letter_frequency(text: str, kw: Mapping[str, Any]) -> bool:
    letter = str(kw["letter"]).lower()
    if len(letter) != 1:
        raise ValueError(f"letter must be one character, got {letter!r}")
    return _compare(text.lower().count(letter), kw["let_relation"], int(kw["let_frequency"]))


@_register("detectable_format:json_format")
def _json_format(text: str, kw: Mapping[str, Any]) -> bool:
    body = text.strip()
    fenced = re.fullmatch(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?```", body, re.DOTALL)
    if fenced:
        body = fenced.group(1).strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


_BULLET_RE = re.compile(r"^[ \t]*(?:[*\-+•])[ \t]+\S", re.M)


@_register("detectable_format:number_bullet_lists")
def _number_bullets(text: str, kw: Mapping[str, Any]) -> bool:
    return len(_BULLET_RE.findall(text)) == int(kw["num_bullets"])


@_register("detectable_format:title")
def _title(text: str, kw: Mapping[str, Any]) -> bool:
    return any(m.strip() for m in re.findall(r"<<([^<>\n]+)>>", text))


@_register("detectable_format:number_highlighted_sections")
def _highlighted_sections(text: str, kw: Mapping[str, Any]) -> bool:
    # Markdown emphasis: no space just inside the asterisks (so bullet markers are not highlights).
    bold_re = r"\*\*(?!\s)([^*\n]+?)(?<!\s)\*\*"
    bold = re.findall(bold_re, text)
    italic = re.findall(r"(?<!\*)\*(?![\s*])([^*\n]+?)(?<!\s)\*(?!\*)", re.sub(bold_re, "", text))
    return sum(1 for s in [*bold, *italic] if s.strip()) >= int(kw["num_highlights"])


@_register("detectable_format:multiple_sections")
def _multiple_sections(text: str, kw: Mapping[str, Any]) -> bool:
    splitter = str(kw["section_spliter"]).strip()
    headers = re.findall(rf"(?<!\w){re.escape(splitter)}\s*\d+", text)
    return len(headers) >= int(kw["num_sections"])


_CONSTRAINED = ("my answer is yes.", "my answer is no.", "my answer is maybe.")


@_register("detectable_format:constrained_response")
def _constrained_response(text: str, kw: Mapping[str, Any]) -> bool:
    low = text.lower()
    return sum(opt in low for opt in _CONSTRAINED) == 1


@_register("detectable_content:number_placeholders")
def _placeholders(text: str, kw: Mapping[str, Any]) -> bool:
    return len([p for p in re.findall(r"\[([^\[\]\n]*)\]", text) if p.strip()]) >= int(kw["num_placeholders"])


@_register("detectable_content:postscript")
def _postscript(text: str, kw: Mapping[str, Any]) -> bool:
    marker = str(kw["postscript_marker"]).strip()
    letters = [c for c in marker if c.isalpha()]
    pattern = r"[\s.]*".join(re.escape(c) for c in letters) + r"\.?"
    return re.search(rf"^[ \t>*_]*{pattern}(?!\w)", text, re.M | re.IGNORECASE) is not None


@_register("change_case:english_lowercase")
def _english_lowercase(text: str, kw: Mapping[str, Any]) -> bool:
    return text == text.lower() and any(c.isalpha() for c in text) and detect_language(text) == "en"


@_register("change_case:english_capital")
def _english_capital(text: str, kw: Mapping[str, Any]) -> bool:
    return text == text.upper() and any(c.isalpha() for c in text) and detect_language(text) == "en"


@_register("change_case:capital_word_frequency")
def _capital_words(text: str, kw: Mapping[str, Any]) -> bool:
    capitals = sum(1 for w in _WORD_RE.findall(text) if w.isupper())
    return _compare(capitals, kw["capital_relation"], int(kw["capital_frequency"]))


@_register("startend:end_checker")
def _end_checker(text: str, kw: Mapping[str, Any]) -> bool:
    return text.strip().lower().endswith(str(kw["end_phrase"]).strip().lower())


@_register("startend:quotation")
def _quotation(text: str, kw: Mapping[str, Any]) -> bool:
    body = text.strip()
    return len(body) >= 2 and body[0] in '"“' and body[-1] in '"”'


@_register("combination:two_responses")
def _two_responses(text: str, kw: Mapping[str, Any]) -> bool:
    parts = [p.strip() for p in re.split(r"(?<!\*)\*{6}(?!\*)", text)]
    return len(parts) == 2 and all(parts) and parts[0] != parts[1]


@_register("combination:repeat_prompt")
def _repeat_prompt(text: str, kw: Mapping[str, Any]) -> bool:
    return text.strip().lower().startswith(str(kw["prompt_to_repeat"]).strip().lower())


@_register("language:response_language")
def _response_language(text: str, kw: Mapping[str, Any]) -> bool:
    wanted = str(kw["language"]).strip().lower()
    if wanted not in _KNOWN_LANGUAGES:
        raise _Unsupported(f"language:response_language[{wanted}]")
    return detect_language(text) == wanted


# ------------------------------------------------------------------------------------------------- language

# Unicode blocks -> script. Script-unique languages are decided by script alone; shared scripts by function
# words (the most frequent short words of each language, listed here from general knowledge).
_SCRIPTS: list[tuple[int, int, str]] = [
    (0x0041, 0x024F, "latin"),
    (0x1E00, 0x1EFF, "latin"),
    (0x0370, 0x03FF, "greek"),
    (0x0400, 0x04FF, "cyrillic"),
    (0x0530, 0x058F, "armenian"),
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"),
    (0x0750, 0x077F, "arabic"),
    (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFF, "arabic"),
    (0x0900, 0x097F, "devanagari"),
    (0x0980, 0x09FF, "bengali"),
    (0x0A00, 0x0A7F, "gurmukhi"),
    (0x0A80, 0x0AFF, "gujarati"),
    (0x0B00, 0x0B7F, "oriya"),
    (0x0B80, 0x0BFF, "tamil"),
    (0x0C00, 0x0C7F, "telugu"),
    (0x0C80, 0x0CFF, "kannada"),
    (0x0D00, 0x0D7F, "malayalam"),
    (0x0D80, 0x0DFF, "sinhala"),
    (0x0E00, 0x0E7F, "thai"),
    (0x10A0, 0x10FF, "georgian"),
    (0x1100, 0x11FF, "hangul"),
    (0x3130, 0x318F, "hangul"),
    (0xAC00, 0xD7AF, "hangul"),
    (0x3040, 0x30FF, "kana"),
    (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"),
    (0x1200, 0x137F, "ethiopic"),
]
_UNIQUE_SCRIPT = {
    "greek": "el",
    "armenian": "hy",
    "hebrew": "he",
    "bengali": "bn",
    "gurmukhi": "pa",
    "gujarati": "gu",
    "oriya": "or",
    "tamil": "ta",
    "telugu": "te",
    "kannada": "kn",
    "malayalam": "ml",
    "sinhala": "si",
    "thai": "th",
    "georgian": "ka",
    "hangul": "ko",
    "kana": "ja",
    "han": "zh",
    "ethiopic": "am",
}
_FUNCTION_WORDS: dict[str, dict[str, str]] = {
    "latin": {
        "en": "the and of to is in that it for you with on are this as be was have not but they your or at by "
        "from can will an we",
        "de": "der die und das ist nicht ich sie es zu den mit ein eine von auf für dem sich auch wir du wie aber "
        "im oder werden einen sind noch",
        "fr": "le la les de des et est un une en du que qui pour dans pas sur au avec ce il elle nous vous sont "
        "plus par je ne mais",
        "es": "el la los las de que y en es un una por con para del se no al lo como más pero su sus está muy son "
        "yo también hay",
        "it": "il lo la gli le di che e è un una per con non del della sono si ma come anche questo nel alla più "
        "ho io al dei delle",
        "pt": "o os as de que e é um uma para com não do da dos das em no na se por mais mas como você eu ao "
        "são também",
        "nl": "de het een en van is dat niet ik je met op te voor zijn die er maar ook als aan om wat bij nog "
        "naar heb wij zo kan",
        "fi": "ja on ei se että hän oli ovat mutta kun niin myös tai kuin minä sinä me te he tämä mitä joka jos "
        "vain ole olen sitä siitä voi",
        "sw": "na ya wa kwa ni za la katika kama hii hiyo lakini pia sana kuwa au yake wako yetu hapa watu "
        "kwamba ili baada bila hata mimi wewe sisi huo",
        "vi": "và của là có không được trong những một các cho với này người để đã khi từ như cũng thì đến rất "
        "nhưng tôi bạn đó ra về sẽ",
        "id": "yang dan di ini itu dengan untuk tidak dari dalam akan pada juga ke saya anda ada bisa atau "
        "karena kami mereka sudah oleh",
        "tr": "ve bir bu da de için ile çok ne daha ama olarak var değil ben sen biz mi gibi kadar sonra her "
        "şey onun",
        "pl": "i w nie na się z że do to jest jak ale po co tak za od jej jego są być czy już może tylko przez "
        "oraz",
    },
    "cyrillic": {
        "ru": "и в не на что я с он как это по но они к у же вы за бы так от все его только был мы для из ещё "
        "или",
        "bg": "и в не на че да се с за от това как са ще по но е съм той тя те ние вие към при или много има "
        "след само",
        "uk": "і в не на що з та це як до але ми ви він вона є для від так було її його вони або теж",
        "sr": "и у да је се на не за од са то као што али они ми ви он она јер или само",
    },
    "arabic": {
        "ar": "في من على إلى أن هذا التي الذي عن مع كان ما لا هو هي هذه ذلك كل قد بين عند لم إن",
        "fa": "و در به از که این را با است برای آن یک می ها شد هم تا بر خود شده کرد نیز",
        "ur": "کے میں کی ہے اور کو سے کا یہ نے ہیں پر بھی ایک تھا کہ جو اس ہو",
    },
    "devanagari": {
        "hi": "है के में की और से को का एक यह हैं पर भी नहीं तो कि था लिए ही आप",
        "mr": "आहे आणि या व हे ला मध्ये नाही करण्यासाठी आहेत तो ती ते होते केले पण म्हणून त्यांच्या",
        "ne": "छ हो र को मा गर्न भएको छन् यो पनि लागि गरेको हुन्छ थियो त्यो तर भने आफ्नो",
    },
}
_FUNCTION_SETS = {
    script: {lang: frozenset(words.split()) for lang, words in langs.items()}
    for script, langs in _FUNCTION_WORDS.items()
}
# Letters that only (or almost only) one language of a shared script uses.
_MARKER_LETTERS = {
    "ru": "ыэё",
    "uk": "їєґі",
    "sr": "ђјљњћџ",
    "bg": "ъ",
    "fa": "پچژگ",
    "ur": "ٹڈڑںےھ",
    "ar": "ةى",
    "vi": "ăđơư" + "".join(chr(c) for c in range(0x1EA0, 0x1EFA)),
    "de": "ßü",
    "fi": "äö",
    "pt": "ãõ",
    "es": "ñ¿¡",
}
_KNOWN_LANGUAGES = frozenset(_UNIQUE_SCRIPT.values()) | {lang for s in _FUNCTION_WORDS.values() for lang in s}
_TOKEN_RE = re.compile(r"[^\s\d.,;:!?\"'()\[\]{}<>«»“”‘’।॥،؛؟*#_\-—–/\\|]+")


def _script(ch: str) -> str | None:
    code = ord(ch)
    for lo, hi, name in _SCRIPTS:
        if lo <= code <= hi:
            return name
    return None


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language by script, then function words; None when undecidable.

    A heuristic for verifying "answer in language X", not a general identifier: it knows the languages listed
    in `_FUNCTION_WORDS` plus those with a script of their own.
    """
    scripts = Counter(s for ch in text if ch.isalpha() and (s := _script(ch)))
    if not scripts:
        return None
    if scripts["kana"] and scripts["kana"] >= 0.1 * scripts["han"]:
        return "ja"
    script = scripts.most_common(1)[0][0]
    if script in _UNIQUE_SCRIPT:
        return _UNIQUE_SCRIPT[script]
    candidates = _FUNCTION_SETS.get(script)
    if not candidates:
        return None
    low = unicodedata.normalize("NFC", text.lower())
    tokens = Counter(_TOKEN_RE.findall(low))
    scores: dict[str, float] = {lang: sum(tokens[w] for w in words) for lang, words in candidates.items()}
    for lang, letters in _MARKER_LETTERS.items():
        if lang in scores:
            scores[lang] += sum(low.count(c) for c in letters)
    best, top = max(scores.items(), key=lambda kv: kv[1])
    return best if top > 0 else None


# -------------------------------------------------------------------------------------------- verdicts


class _Unsupported(Exception):
    """A known instruction type whose kwargs ask for something the checker cannot verify."""


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


def loose_variants(response: str) -> list[str]:
    """The response, without its first line, last line or both; each also with asterisks removed."""
    lines = response.split("\n")
    cuts = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    return [v for cut in cuts for v in (cut, cut.replace("*", ""))]


def _clean_kwargs(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (kwargs or {}).items() if v is not None}


def check_instruction(
    instruction_id: str, response: str, kwargs: Mapping[str, Any] | None = None
) -> InstructionOutcome:
    """Strict and loose verdicts for one instruction. Unsupported types are reported, never passed."""
    checker = CHECKERS.get(instruction_id)
    if checker is None:
        return InstructionOutcome(instruction_id, False, False, supported=False, note=instruction_id)
    kw = _clean_kwargs(kwargs)
    try:
        strict = bool(response.strip()) and checker(response, kw)
        loose = strict or any(v.strip() and checker(v, kw) for v in loose_variants(response)[1:])
    except _Unsupported as exc:
        return InstructionOutcome(instruction_id, False, False, supported=False, note=str(exc))
    except (KeyError, TypeError, ValueError) as exc:
        return InstructionOutcome(
            instruction_id, False, False, note=f"bad kwargs: {type(exc).__name__}: {exc}"
        )
    return InstructionOutcome(instruction_id, strict, bool(loose))


def check_prompt(
    response: str,
    instruction_ids: Sequence[str],
    kwargs_list: Sequence[Mapping[str, Any] | None] | None = None,
) -> PromptOutcome:
    """Every instruction of a prompt; `kwargs_list` aligns with `instruction_ids` (missing = no kwargs)."""
    kwargs_list = list(kwargs_list or [])
    if len(kwargs_list) not in (0, len(instruction_ids)):
        raise UserError(f"{len(instruction_ids)} instructions but {len(kwargs_list)} kwargs entries")
    kws = kwargs_list or [None] * len(instruction_ids)
    return PromptOutcome(
        tuple(check_instruction(i, response, k) for i, k in zip(instruction_ids, kws, strict=True))
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
    outcomes = [check_prompt(r, *_instructions_of(rec)) for rec, r in zip(records, responses, strict=True)]
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
    """(prompts whose instructions are all checkable, prompts, unsupported instruction -> count)."""
    total = full = 0
    missing: Counter[str] = Counter()
    for rec in records:
        total += 1
        ids, kws = _instructions_of(rec)
        gaps = check_prompt("x", ids, kws).unsupported
        missing.update(gaps)
        full += not gaps
    return full, total, dict(missing)


def _extra(example: Mapping[str, Any]) -> Mapping[str, Any]:
    value = example.get("extra")
    return value if isinstance(value, Mapping) else {}


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
    """IFEval-style reward. `level="prompt"`: 1.0 iff every instruction is followed; `"instruction"`: the fraction.

    `loose=True` grades with the loose variants. Unsupported instruction types count as not followed and are
    named in the verdict's reason.
    """

    name = "ifeval"

    def __init__(self, level: Literal["prompt", "instruction"] = "prompt", loose: bool = False) -> None:
        if level not in ("prompt", "instruction"):
            raise UserError(f"level must be 'prompt' or 'instruction', got {level!r}")
        self.level = level
        self.loose = loose

    def score(self, example: Mapping[str, Any], completion: str) -> RewardVerdict:
        outcome = check_prompt(completion, *_instructions_of(example))
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
