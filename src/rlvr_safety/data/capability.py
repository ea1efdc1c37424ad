"""Capability task loaders (label "task"): local files (layout of shared/data) or the Hugging Face hub.

Each loader returns every row in file order with what its verifier needs: `gold` for math, `tests` and
`entry_point` for code, instruction ids and kwargs for IFEval. Hub field names follow the public dataset cards.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from rlvr_safety.data.arithmetic import generate_problems
from rlvr_safety.data.loaders import get, hub_rows, read_json, read_jsonl, require_file
from rlvr_safety.data.records import Record
from rlvr_safety.errors import UserError

log = logging.getLogger(__name__)

GSM8K_TEST = "gsm8k/test.jsonl"
GSM8K_TRAIN = "gsm8k/train.jsonl"
MATH500_FILE = "math500/test.jsonl"
MATH_TRAIN_FILE = "math_train/train.jsonl"
HUMANEVAL_FILE = "humaneval/HumanEval.jsonl.gz"
MBPP_FILE = "mbpp/sanitized-mbpp.json"
IFEVAL_FILE = "ifeval/input_data.jsonl"
HH_HELPFUL_FILE = "hh_rlhf/helpful-base/test.jsonl.gz"

ARITHMETIC_DEFAULT_N = 500
ARITHMETIC_LEVEL = "easy"  # the generator's levels: easy / medium / hard (or 1-3)
ASSISTANT_TAG = "\n\nAssistant:"


def gsm8k_gold(solution: str) -> str | None:
    """The final answer after '####', thousands separators removed; None when the marker is absent."""
    if "####" not in solution:
        return None
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def _load_gsm8k(root: Path | None, name: str, rel: str, split: str) -> list[Record]:
    if root is None:
        rows, where = hub_rows(name, "openai/gsm8k", config="main", split=split), f"openai/gsm8k[{split}]"
    else:
        path = require_file(root, rel)
        rows, where = read_jsonl(path), str(path)
    out = []
    for n, (i, row) in enumerate(rows):
        solution = get(row, "answer", where, i)
        gold = gsm8k_gold(solution)
        if not gold:
            raise UserError(f"{where} row {i}: answer has no '#### <number>' final line; fix or replace the file")
        out.append(
            Record(
                id=f"{name}/{n}",
                prompt=get(row, "question", where, i),
                benchmark=name,
                label="task",
                gold=gold,
                extra={"solution": solution},
            )
        )
    return out


def load_gsm8k(root: Path | None) -> list[Record]:
    """GSM8K test (1,319). Hub: openai/gsm8k, config `main`, fields `question`, `answer`."""
    return _load_gsm8k(root, "gsm8k", GSM8K_TEST, "test")


def load_gsm8k_train(root: Path | None) -> list[Record]:
    """GSM8K train (7,473), for RLVR training; never an evaluation set."""
    return _load_gsm8k(root, "gsm8k-train", GSM8K_TRAIN, "train")


def load_math500(root: Path | None) -> list[Record]:
    """MATH-500 (Lightman et al. split). Hub: HuggingFaceH4/MATH-500, same fields as the local jsonl."""
    if root is None:
        rows, where = hub_rows("math500", "HuggingFaceH4/MATH-500", split="test"), "HuggingFaceH4/MATH-500"
    else:
        path = require_file(root, MATH500_FILE)
        rows, where = read_jsonl(path), str(path)
    return [
        Record(
            id=f"math500/{row.get('unique_id') or i}",
            prompt=get(row, "problem", where, i),
            benchmark="math500",
            category=str(row.get("subject") or ""),
            label="task",
            gold=str(get(row, "answer", where, i)),
            extra={"level": row.get("level"), "subject": row.get("subject"), "solution": row.get("solution", "")},
        )
        for i, row in rows
    ]


def last_boxed(solution: str) -> str | None:
    """Content of the last \\boxed{...} (braces matched), or the token after '\\boxed ' ; None if there is none."""
    start = solution.rfind("\\boxed")
    if start < 0:
        return None
    rest = solution[start + len("\\boxed") :]
    if rest.startswith(" "):
        token = rest.split()
        return token[0].rstrip("$.") if token else None
    if not rest.startswith("{"):
        return None
    depth = 0
    for k, ch in enumerate(rest):
        depth += ch == "{"
        depth -= ch == "}"
        if depth == 0:
            return rest[1:k]
    return None


def load_math_train(root: Path | None) -> list[Record]:
    """MATH train split (7,500 problems; rows with an empty answer are skipped and counted in the log).

    Hub: DigitalLearningGmbH/MATH-lighteval, split `train`, fields `problem`, `level`, `type`, `solution`; the
    answer is taken from the last \\boxed{} of the solution, as the local file's `answer` was.
    """
    if root is None:
        rows = hub_rows("math-train", "DigitalLearningGmbH/MATH-lighteval", split="train")
        where = "DigitalLearningGmbH/MATH-lighteval"
    else:
        path = require_file(root, MATH_TRAIN_FILE)
        rows, where = read_jsonl(path), str(path)
    out, skipped = [], 0
    for i, row in rows:
        solution = get(row, "solution", where, i)
        answer = row["answer"] if root is not None and "answer" in row else last_boxed(solution)
        if answer is None and root is not None:
            raise UserError(f"{where} row {i}: required field 'answer' is missing; fix or replace the file")
        if not answer or not str(answer).strip():
            skipped += 1
            continue
        out.append(
            Record(
                id=f"math-train/{row.get('unique_id') or i}",
                prompt=get(row, "problem", where, i),
                benchmark="math-train",
                category=str(row.get("type") or ""),
                label="task",
                gold=str(answer),
                extra={"level": row.get("level"), "subject": row.get("type"), "solution": solution},
            )
        )
    if skipped:
        log.warning("math-train: skipped %d rows with an empty answer (%s)", skipped, where)
    return out


def load_humaneval(root: Path | None) -> list[Record]:
    """HumanEval (164): prompt = function signature + docstring, tests = the `check` code. Hub: openai/openai_humaneval."""
    if root is None:
        rows, where = hub_rows("humaneval", "openai/openai_humaneval", split="test"), "openai/openai_humaneval"
    else:
        path = require_file(root, HUMANEVAL_FILE)
        rows, where = read_jsonl(path), str(path)
    return [
        Record(
            id=f"humaneval/{get(row, 'task_id', where, i)}",
            prompt=get(row, "prompt", where, i),
            benchmark="humaneval",
            label="task",
            tests=get(row, "test", where, i),
            entry_point=get(row, "entry_point", where, i),
            extra={"canonical_solution": row.get("canonical_solution", "")},
        )
        for i, row in rows
    ]


def mbpp_split(task_id: int) -> str:
    """MBPP's task-id ranges (upstream README): 1-10 prompt, 11-510 test, 511-600 validation, 601-974 train."""
    if task_id <= 10:
        return "prompt"
    if task_id <= 510:
        return "test"
    return "validation" if task_id <= 600 else "train"


def _entry_point(code: str, first_test: str) -> str | None:
    """The function the tests call: the first name defined in the reference code that the first test uses."""
    for name in re.findall(r"^def\s+(\w+)\s*\(", code, flags=re.M):
        if re.search(rf"\b{re.escape(name)}\s*\(", first_test):
            return name
    return None


def load_mbpp(root: Path | None) -> list[Record]:
    """MBPP sanitized (427 hand-verified tasks; the full 974-task file is not used).

    The prompt shows the asserts, as in the MBPP paper, since they fix the function name and signature.
    extra["split"] follows the task-id ranges; train only on "train" rows if MBPP is also evaluated. Hub:
    google-research-datasets/mbpp, config `sanitized`, splits prompt/train/validation/test merged by task_id.
    """
    if root is None:
        rows: list[tuple[int, Any]] = []
        for split in ("prompt", "train", "validation", "test"):
            rows += hub_rows("mbpp", "google-research-datasets/mbpp", config="sanitized", split=split)
        rows.sort(key=lambda r: int(r[1].get("task_id") or 0))
        where = "google-research-datasets/mbpp"
    else:
        path = require_file(root, MBPP_FILE)
        doc = read_json(path)
        if not isinstance(doc, list):
            raise UserError(f"{path}: expected a JSON list of tasks; replace it with the file listed in MANIFEST.md")
        rows, where = list(enumerate(doc, start=1)), str(path)
    out = []
    for i, row in rows:
        if not isinstance(row, dict):
            raise UserError(f"{where} row {i}: expected an object; fix or replace the file")
        task_id = int(get(row, "task_id", where, i))
        tests = list(get(row, "test_list", where, i))
        if not tests:
            raise UserError(f"{where} row {i}: 'test_list' is empty; fix or replace the file")
        code = str(row.get("code") or "")
        text = get(row, "prompt", where, i)
        out.append(
            Record(
                id=f"mbpp/{task_id}",
                prompt=f"{text}\nYour code should pass these tests:\n" + "\n".join(tests),
                benchmark="mbpp",
                label="task",
                tests=list(row.get("test_imports") or []) + tests,
                entry_point=_entry_point(code, tests[0]),
                extra={"code": code, "test_imports": list(row.get("test_imports") or []), "split": mbpp_split(task_id)},
            )
        )
    return out


def load_ifeval(root: Path | None) -> list[Record]:
    """IFEval (541): extra holds `instruction_id_list` and `kwargs` (None-valued kwargs dropped; the hub copy pads
    every kwargs dict with all keys). Hub: google/IFEval, split `train`, same fields as the local jsonl."""
    if root is None:
        rows, where = hub_rows("ifeval", "google/IFEval", split="train"), "google/IFEval"
    else:
        path = require_file(root, IFEVAL_FILE)
        rows, where = read_jsonl(path), str(path)
    out = []
    for i, row in rows:
        ids = list(get(row, "instruction_id_list", where, i))
        kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in (row.get("kwargs") or [])]
        if len(kwargs) != len(ids):
            raise UserError(f"{where} row {i}: 'kwargs' and 'instruction_id_list' differ in length; fix the file")
        out.append(
            Record(
                id=f"ifeval/{row.get('key', i)}",
                prompt=get(row, "prompt", where, i),
                benchmark="ifeval",
                label="task",
                extra={"instruction_id_list": ids, "kwargs": kwargs, "key": row.get("key")},
            )
        )
    return out


def split_preference(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(shared prefix up to and including the last common "Assistant:" tag, chosen reply, rejected reply)."""
    common = len(os.path.commonprefix([chosen, rejected]))
    cut = chosen.rfind(ASSISTANT_TAG, 0, common)
    if cut < 0:
        return "", chosen, rejected
    end = cut + len(ASSISTANT_TAG)
    return chosen[:end], chosen[end:].strip(), rejected[end:].strip()


def load_hh_rlhf_helpful(root: Path | None) -> list[Record]:
    """Anthropic HH-RLHF helpful-base test pairs (2,354) for the RLHF reward model.

    prompt = the shared conversation up to the final "Assistant:"; extra["chosen"] / extra["rejected"] = the two
    final replies. Hub: Anthropic/hh-rlhf, data_dir `helpful-base`, split `test`, fields `chosen`, `rejected`.
    """
    if root is None:
        rows = hub_rows("hh-rlhf-helpful", "Anthropic/hh-rlhf", split="test", data_dir="helpful-base")
        where = "Anthropic/hh-rlhf[helpful-base]"
    else:
        path = require_file(root, HH_HELPFUL_FILE)
        rows, where = read_jsonl(path), str(path)
    out = []
    for n, (i, row) in enumerate(rows):
        prompt, chosen, rejected = split_preference(get(row, "chosen", where, i), get(row, "rejected", where, i))
        if not prompt:
            raise UserError(f"{where} row {i}: no shared 'Assistant:' turn in chosen/rejected; fix or replace the file")
        out.append(
            Record(
                id=f"hh-rlhf-helpful/{n}",
                prompt=prompt,
                benchmark="hh-rlhf-helpful",
                category="helpful-base",
                label="task",
                extra={"chosen": chosen, "rejected": rejected},
            )
        )
    return out


def load_arithmetic(n: int, seed: int, level: str | int = ARITHMETIC_LEVEL) -> list[Record]:
    """Procedurally generated arithmetic (data/arithmetic.py), any size, offline."""
    out = []
    for k, item in enumerate(generate_problems(n=n, seed=seed, level=level)):
        try:
            out.append(
                Record(
                    id=f"arithmetic/{item['id']}",
                    prompt=str(item["question"]),
                    benchmark="arithmetic",
                    category=str(item.get("level", level)),
                    label="task",
                    gold=str(item["answer"]),
                    extra={"seed": seed, "level": item.get("level", level), "kind": item.get("kind"),
                           "expression": item.get("expression")},
                )
            )
        except KeyError as exc:
            raise UserError(f"arithmetic generator item {k} lacks {exc}; the generator and loader disagree") from exc
    return out
