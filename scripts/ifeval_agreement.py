"""Agreement of IFEval verdicts between the in-house checkers (as of a git revision) and the reference.

    python scripts/ifeval_agreement.py --old-rev 407017e \
        [--responses input_response_data_gpt4_20231107_145030.jsonl] \
        [--reference-results eval_results_strict.jsonl eval_results_loose.jsonl]

The reference is lm-eval's IFEval (`lm_eval.tasks.ifeval.utils.test_instruction_following_strict/_loose`, the
Google checkers with langdetect and NLTK's punkt). Every one of the 541 IFEval prompts gets several responses:
the prompt itself, its first half, upper- and lower-cased copies, a response synthesised from the instruction
kwargs to follow them (and therefore to exercise each checker's positive side), and, with `--responses`, real
model responses in the {"prompt", "response"} jsonl layout of the IFEval release. `--reference-results` also checks
lm-eval against the verdicts that Google's own evaluation_main wrote for those responses.

The numbers in docs/ifeval.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import types
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OLD_PATH = "src/rlvr_safety/rewards/instructions.py"


def load_old(rev: str) -> types.ModuleType:
    """The in-house checker module as it was at `rev` (it imports only rlvr_safety.errors and rewards.base)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{OLD_PATH}"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType("ifeval_inhouse_old")
    module.__file__ = f"{rev}:{OLD_PATH}"
    sys.modules[module.__name__] = module  # dataclasses look their module up by name
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own file at a revision
    if not hasattr(module, "CHECKERS"):
        raise SystemExit(f"{rev}:{OLD_PATH} has no in-house CHECKERS; pass the revision before the switch")
    return module


def synthesise(prompt: str, ids: list[str], kwargs: list[Mapping[str, Any]]) -> str:
    """A response built from the kwargs so that most instructions are followed (language ones are not)."""
    kw_all = dict(zip(ids, kwargs, strict=True))
    filler = "the garden keeps growing slowly under the morning light"
    paragraphs: list[str] = [f"{filler} today."]
    head: list[str] = []
    tail: list[str] = []
    if "detectable_format:title" in kw_all:
        head.append("<<a fitting title>>")
    for iid, kw in kw_all.items():
        if iid == "keywords:existence":
            paragraphs.append(" ".join(kw["keywords"]) + " are all here.")
        elif iid == "keywords:frequency":
            n = int(kw["frequency"]) + (1 if kw["relation"] == "at least" else -1)
            paragraphs.append(" ".join([str(kw["keyword"])] * max(n, 0 if kw["relation"] != "at least" else 1)))
        elif iid == "keywords:letter_frequency" and kw["let_relation"] == "at least":
            paragraphs.append(str(kw["letter"]) * (int(kw["let_frequency"]) + 1))
        elif iid == "length_constraints:number_words" and kw["relation"] == "at least":
            paragraphs.append(" ".join(["word"] * (int(kw["num_words"]) + 5)) + ".")
        elif iid == "length_constraints:number_sentences" and kw["relation"] == "at least":
            paragraphs.append(" ".join(["This is a sentence."] * (int(kw["num_sentences"]) + 1)))
        elif iid == "detectable_format:number_bullet_lists":
            paragraphs.append("\n".join(f"* point {k}" for k in range(int(kw["num_bullets"]))))
        elif iid == "detectable_format:number_highlighted_sections":
            paragraphs.append(" ".join(f"*part {k}*" for k in range(int(kw["num_highlights"]))))
        elif iid == "detectable_format:multiple_sections":
            paragraphs.extend(f"{kw['section_spliter']} {k + 1}\n{filler}." for k in range(int(kw["num_sections"])))
        elif iid == "detectable_content:number_placeholders":
            paragraphs.append(" ".join(f"[slot{k}]" for k in range(int(kw["num_placeholders"]))))
        elif iid == "detectable_content:postscript":
            tail.append(f"{kw['postscript_marker']} see you soon.")
        elif iid == "detectable_format:constrained_response":
            paragraphs = ["My answer is yes."]
        elif iid == "change_case:capital_word_frequency" and kw["capital_relation"] == "at least":
            paragraphs.append(" ".join(["LOUD"] * (int(kw["capital_frequency"]) + 1)))
    body_sep = "\n\n"
    if "length_constraints:number_paragraphs" in kw_all:
        n = int(kw_all["length_constraints:number_paragraphs"]["num_paragraphs"])
        paragraphs = (paragraphs + [f"{filler}."] * n)[:n] if len(paragraphs) < n else paragraphs[: n - 1] + [
            " ".join(paragraphs[n - 1 :])
        ]
        body_sep = "\n***\n"
    if "length_constraints:nth_paragraph_first_word" in kw_all:
        kw = kw_all["length_constraints:nth_paragraph_first_word"]
        n, nth = int(kw["num_paragraphs"]), int(kw["nth_paragraph"])
        paragraphs = (paragraphs + [f"{filler}."] * n)[:n]
        if 1 <= nth <= n:
            paragraphs[nth - 1] = f"{kw['first_word']} {paragraphs[nth - 1]}"
    text = "\n".join(head + [body_sep.join(paragraphs)] + tail)
    if "combination:two_responses" in kw_all:
        text = f"{text}\n******\nAnother answer: {filler}."
    if "change_case:english_lowercase" in kw_all:
        text = text.lower()
    if "change_case:english_capital" in kw_all:
        text = text.upper()
    if "punctuation:no_comma" in kw_all:
        text = text.replace(",", "")
    if "detectable_format:json_format" in kw_all:
        text = "```json\n" + json.dumps({"answer": text}) + "\n```"
    if "combination:repeat_prompt" in kw_all:
        text = f"{kw_all['combination:repeat_prompt']['prompt_to_repeat']} {text}"
    if "startend:end_checker" in kw_all:
        text = f"{text}\n{kw_all['startend:end_checker']['end_phrase']}"
    if "startend:quotation" in kw_all:
        text = f'"{text}"'
    return text


RESPONSES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "prompt": lambda r: r["prompt"],
    "first half": lambda r: r["prompt"][: len(r["prompt"]) // 2],
    "upper-cased": lambda r: r["prompt"].upper(),
    "lower-cased": lambda r: r["prompt"].lower(),
    "synthesised to follow": lambda r: synthesise(r["prompt"], r["instruction_id_list"], r["kwargs"]),
}


def reference_verdicts(row: Mapping[str, Any], response: str) -> tuple[list[bool], list[bool]]:
    from lm_eval.tasks.ifeval import utils

    inp = utils.InputExample(
        key=row["key"], instruction_id_list=row["instruction_id_list"], prompt=row["prompt"], kwargs=row["kwargs"]
    )
    strict = utils.test_instruction_following_strict(inp, response).follow_instruction_list
    loose = utils.test_instruction_following_loose(inp, response).follow_instruction_list
    return strict, loose


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-rev", required=True, help="git revision holding the in-house checkers")
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/ifeval/input_data.jsonl"))
    parser.add_argument("--responses", help="jsonl of {prompt, response} (e.g. the IFEval release's GPT-4 file)")
    parser.add_argument("--reference-results", nargs=2, metavar=("STRICT", "LOOSE"),
                        help="Google evaluation_main outputs for --responses (eval_results_strict/loose.jsonl)")
    parser.add_argument("--json", help="also write every count here")
    args = parser.parse_args()

    # the project's own loader finds punkt_tab and seeds langdetect before lm-eval is imported
    from rlvr_safety.rewards.instructions import reference

    reference()
    random.seed(0)  # two IFEval prompts make the reference check a random letter (docs/ifeval.md); fix the draw

    old = load_old(args.old_rev)
    rows = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").splitlines() if line.strip()]
    kinds = dict(RESPONSES)
    real: dict[str, str] = {}
    if args.responses:
        for line in Path(args.responses).read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                real[item["prompt"]] = item["response"]
        kinds[f"real ({Path(args.responses).name})"] = lambda r: real[r["prompt"]]

    report: dict[str, Any] = {"old_rev": args.old_rev, "prompts": len(rows), "kinds": {}}
    by_type: Counter[str] = Counter()
    by_type_n: Counter[str] = Counter()
    ref_by_prompt: dict[str, tuple[list[bool], list[bool]]] = {}
    print(f"{len(rows)} prompts; in-house checkers at {args.old_rev} vs lm-eval reference")
    print("| responses | instructions | strict agree | loose agree | prompt strict agree | prompt loose agree "
          "| accuracy strict in-house / ref | accuracy loose in-house / ref |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, make in kinds.items():
        n_inst = agree_s = agree_l = p_agree_s = p_agree_l = 0
        acc = Counter()
        for row in rows:
            if kind.startswith("real") and row["prompt"] not in real:
                continue
            response = make(row)
            kws = [{k: v for k, v in kw.items() if v is not None} for kw in row["kwargs"]]
            mine = old.check_prompt(response, row["instruction_id_list"], kws)
            ref_s, ref_l = reference_verdicts(row, response)
            if kind.startswith("real"):
                ref_by_prompt[row["prompt"]] = (ref_s, ref_l)
            old_s = [o.strict for o in mine.instructions]
            old_l = [o.loose for o in mine.instructions]
            for iid, a, b, c, d in zip(row["instruction_id_list"], old_s, ref_s, old_l, ref_l, strict=True):
                n_inst += 1
                agree_s += a == b
                agree_l += c == d
                by_type_n[iid] += 2
                by_type[iid] += (a != b) + (c != d)
            p_agree_s += all(old_s) == all(ref_s)
            p_agree_l += all(old_l) == all(ref_l)
            acc["old_s"] += all(old_s)
            acc["ref_s"] += all(ref_s)
            acc["old_l"] += all(old_l)
            acc["ref_l"] += all(ref_l)
        n = sum(1 for row in rows if not kind.startswith("real") or row["prompt"] in real)
        report["kinds"][kind] = {
            "prompts": n, "instructions": n_inst, "strict_agree": agree_s, "loose_agree": agree_l,
            "prompt_strict_agree": p_agree_s, "prompt_loose_agree": p_agree_l, **dict(acc),
        }
        print(f"| {kind} | {n_inst} | {agree_s / n_inst:.3f} | {agree_l / n_inst:.3f} | {p_agree_s / n:.3f} "
              f"| {p_agree_l / n:.3f} | {acc['old_s'] / n:.3f} / {acc['ref_s'] / n:.3f} "
              f"| {acc['old_l'] / n:.3f} / {acc['ref_l'] / n:.3f} |")
    print("\nDisagreements by instruction type (strict + loose verdicts, all responses):")
    rates = {iid: by_type[iid] / by_type_n[iid] for iid in by_type_n}
    for iid, rate in sorted(rates.items(), key=lambda kv: -kv[1]):
        print(f"  {iid}: {by_type[iid]}/{by_type_n[iid]} = {rate:.3f}")
    report["disagreements_by_type"] = {iid: [by_type[iid], by_type_n[iid]] for iid in by_type_n}

    if args.reference_results:
        google: dict[str, list[list[bool]]] = {}
        for path in args.reference_results:
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                if line.strip():
                    item = json.loads(line)
                    google.setdefault(item["prompt"], []).append(item["follow_instruction_list"])
        same = total = missing = 0
        for prompt, (ref_s, ref_l) in ref_by_prompt.items():
            if prompt not in google or len(google[prompt]) != 2:
                missing += 1
                continue
            g_s, g_l = google[prompt]
            same += sum(a == b for a, b in zip(ref_s + ref_l, g_s + g_l, strict=True))
            total += len(ref_s) + len(ref_l)
        print(f"\nlm-eval vs Google's recorded verdicts: {same}/{total} instruction verdicts identical "
              f"({missing} prompts without a recorded verdict)")
        report["lm_eval_vs_google"] = {"same": same, "total": total, "missing_prompts": missing}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
