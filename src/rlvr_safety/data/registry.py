"""The named-benchmark registry: one place that says what each benchmark is, where it comes from, how to load it.

Names may carry attacks (`harmbench+base64`, applied left to right) and suites expand to member names, so the CLI,
configs and the study runner all speak the same small language.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rlvr_safety.data import capability, safety
from rlvr_safety.data.attacks import ATTACKS, apply_attack
from rlvr_safety.data.loaders import DATA_FIX
from rlvr_safety.data.records import Record
from rlvr_safety.errors import UserError
from rlvr_safety.paths import data_dir as resolve_data_dir

Kind = Literal["safety", "capability"]


@dataclass(frozen=True)
class BenchmarkInfo:
    """What a benchmark is and where it comes from.

    `path` is relative to the data folder (None when there is no local file: generated or hub-only); `hub_id` is the
    Hugging Face dataset used when no data folder is given; `gated` means the hub copy needs accepted terms + HF_TOKEN.
    """

    name: str
    kind: Kind
    description: str
    path: str | None
    hub_id: str | None
    gated: bool
    license: str


def _jbb(attack: str) -> Callable[[Path | None], list[Record]]:
    return lambda root: safety.load_jailbreakbench_attack(root, attack)


_JBB = safety.JBB_ARTIFACT_DIR
_ENTRIES: list[tuple[BenchmarkInfo, Callable[[Path | None], list[Record]] | None]] = [
    (BenchmarkInfo("harmbench", "safety", "HarmBench text behaviours, test split (320; contextual ones carry their context)",
                   safety.HARMBENCH_FILE, "github:centerforaisafety/HarmBench", False, "MIT"), safety.load_harmbench),
    (BenchmarkInfo("strongreject", "safety", "StrongREJECT forbidden prompts (313, 6 categories)",
                   safety.STRONGREJECT_FILE, "walledai/StrongREJECT", False, "MIT"), safety.load_strongreject),
    (BenchmarkInfo("jailbreakbench", "safety", "JailbreakBench's 100 harmful behaviours, plain goals",
                   f"{_JBB}/{safety.JBB_ARTIFACTS['pair']}", "JailbreakBench/JBB-Behaviors", False, "MIT"),
     safety.load_jailbreakbench),
    (BenchmarkInfo("jailbreakbench-pair", "safety",
                   "JailbreakBench goals as published PAIR prompts on Vicuna-13B (rows with no prompt skipped: 82 of 100)",
                   f"{_JBB}/{safety.JBB_ARTIFACTS['pair']}", "github:JailbreakBench/artifacts", False, "MIT"),
     _jbb("pair")),
    (BenchmarkInfo("jailbreakbench-gcg", "safety", "JailbreakBench goals as published GCG prompts on Vicuna-13B (100)",
                   f"{_JBB}/{safety.JBB_ARTIFACTS['gcg']}", "github:JailbreakBench/artifacts", False, "MIT"),
     _jbb("gcg")),
    (BenchmarkInfo("xstest", "safety", "XSTest: 250 safe prompts (benign, over-refusal) + 200 unsafe contrasts (harmful)",
                   safety.XSTEST_FILE, "Paul/XSTest", False, "CC-BY-4.0"), safety.load_xstest),
    (BenchmarkInfo("do-not-answer", "safety", "Do-Not-Answer questions (939, 5 risk areas)",
                   f"{safety.DNA_DIR}/", "LibrAI/do-not-answer", False, "Apache-2.0"), safety.load_do_not_answer),
    (BenchmarkInfo("advbench", "safety", "AdvBench harmful behaviours (520); guard-stage training source, not evaluated",
                   safety.ADVBENCH_FILE, "walledai/AdvBench", False, "MIT"), safety.load_advbench),
    (BenchmarkInfo("wildjailbreak", "safety", "WildJailbreak eval: 2,000 adversarial harmful + 210 adversarial benign",
                   safety.WILDJAILBREAK_FILE, "allenai/wildjailbreak", True, "ODC-BY"), safety.load_wildjailbreak),
    (BenchmarkInfo("sorry-bench", "safety", "SORRY-Bench 2024/06 base prompts (450, 45 categories)",
                   safety.SORRYBENCH_FILE, "sorry-bench/sorry-bench-202406", True, "SORRY-Bench terms (gated)"),
     safety.load_sorry_bench),
    (BenchmarkInfo("gsm8k", "capability", "GSM8K test (1,319); gold = number after '####'",
                   capability.GSM8K_TEST, "openai/gsm8k", False, "MIT"), capability.load_gsm8k),
    (BenchmarkInfo("gsm8k-train", "capability", "GSM8K train (7,473), for RLVR training",
                   capability.GSM8K_TRAIN, "openai/gsm8k", False, "MIT"), capability.load_gsm8k_train),
    (BenchmarkInfo("math500", "capability", "MATH-500 test problems with final answers",
                   capability.MATH500_FILE, "HuggingFaceH4/MATH-500", False, "MIT"), capability.load_math500),
    (BenchmarkInfo("math-train", "capability", "MATH train split (7,500; 2 with an empty answer skipped), for training",
                   capability.MATH_TRAIN_FILE, "DigitalLearningGmbH/MATH-lighteval", False, "MIT"),
     capability.load_math_train),
    (BenchmarkInfo("humaneval", "capability", "HumanEval Python function completion (164) with unit tests",
                   capability.HUMANEVAL_FILE, "openai/openai_humaneval", False, "MIT"), capability.load_humaneval),
    (BenchmarkInfo("mbpp", "capability", "MBPP sanitized (427) Python tasks with assert tests",
                   capability.MBPP_FILE, "google-research-datasets/mbpp", False, "CC-BY-4.0"), capability.load_mbpp),
    (BenchmarkInfo("ifeval", "capability", "IFEval verifiable instruction following (541)",
                   capability.IFEVAL_FILE, "google/IFEval", False, "Apache-2.0"), capability.load_ifeval),
    (BenchmarkInfo("arithmetic", "capability",
                   f"Generated arithmetic, offline, any size (limit, default {capability.ARITHMETIC_DEFAULT_N}; seeded)",
                   None, None, False, "generated"), None),
    (BenchmarkInfo("hh-rlhf-helpful", "capability", "HH-RLHF helpful-base test preference pairs (2,354) for reward models",
                   capability.HH_HELPFUL_FILE, "Anthropic/hh-rlhf", False, "MIT"), capability.load_hh_rlhf_helpful),
]

REGISTRY: dict[str, BenchmarkInfo] = {info.name: info for info, _ in _ENTRIES}
_LOADERS = {info.name: loader for info, loader in _ENTRIES}

SUITES: dict[str, list[str]] = {
    "safety5": ["harmbench", "strongreject", "jailbreakbench-pair", "xstest", "do-not-answer"],
    "capability": ["gsm8k", "math500", "humaneval", "ifeval"],
}


def list_benchmarks() -> list[BenchmarkInfo]:
    """Every registered benchmark, safety first, in a stable order."""
    return [info for info, _ in _ENTRIES]


def _split_name(name: str) -> tuple[BenchmarkInfo, list[str]]:
    """Validate `base[+attack...]` and return its info and attacks; UserError lists what is valid."""
    base, *attacks = [part.strip() for part in name.strip().split("+")]
    if base not in REGISTRY:
        raise UserError(
            f"unknown benchmark {base!r}; valid benchmarks: {', '.join(REGISTRY)}; suites: {', '.join(SUITES)}"
        )
    for attack in attacks:
        if attack not in ATTACKS:
            raise UserError(f"unknown attack {attack!r} in {name!r}; valid attacks: {', '.join(ATTACKS)}")
    return REGISTRY[base], attacks


def expand(names_or_suites: str | Iterable[str]) -> list[str]:
    """Benchmark names from names, suites and comma-separated lists; `suite+attack` attacks every member.

    Order is kept and duplicates dropped, so `safety5,xstest` runs XSTest once.
    """
    items = [names_or_suites] if isinstance(names_or_suites, str) else list(names_or_suites)
    out: list[str] = []
    for item in items:
        for token in (t.strip() for t in item.split(",")):
            if not token:
                continue
            base, _, suffix = token.partition("+")
            members = SUITES.get(base.strip(), [base.strip()])
            for member in members:
                full = f"{member}+{suffix}" if suffix else member
                _split_name(full)
                if full not in out:
                    out.append(full)
    if not out:
        raise UserError(f"no benchmark named; valid benchmarks: {', '.join(REGISTRY)}; suites: {', '.join(SUITES)}")
    return out


def take(records: list[Record], limit: int | None) -> list[Record]:
    """The first `limit` records in file order; with mixed labels, labels take turns so each stays represented.

    That keeps e.g. XSTest's safe and unsafe prompts both present under a small limit, so over-refusal and refusal
    can still be measured; within a label, file order is kept.
    """
    if limit is None or limit >= len(records):
        return list(records)
    groups: dict[str, list[Record]] = {}
    for rec in records:
        groups.setdefault(rec.label, []).append(rec)
    if len(groups) == 1:
        return records[:limit]
    out: list[Record] = []
    queues = [iter(g) for g in groups.values()]
    while len(out) < limit:
        for q in queues:
            nxt = next(q, None)
            if nxt is not None and len(out) < limit:
                out.append(nxt)
    return out


def load_benchmark(
    name: str, data_dir: str | Path | None = None, limit: int | None = None, seed: int = 0
) -> list[Record]:
    """Records of benchmark `name` (optionally `name+attack[+attack]`).

    `data_dir` (else RLVR_SAFETY_DATA_DIR) selects a local folder laid out like shared/data; without one, data
    comes from the Hugging Face hub. `limit` keeps the first N rows in file order (see `take`) and is deterministic;
    `seed` only matters for generated sets (arithmetic, where `limit` is the number generated, default 500).
    """
    info, attacks = _split_name(name)
    if limit is not None and limit < 0:
        raise UserError(f"limit must be zero or positive, got {limit}")
    root = resolve_data_dir(data_dir)
    if root is not None and not root.is_dir():
        raise UserError(f"data folder not found: {root}; {DATA_FIX}, or leave both unset to load from the hub")
    loader = _LOADERS[info.name]
    if loader is None:
        n = capability.ARITHMETIC_DEFAULT_N if limit is None else limit
        records = capability.load_arithmetic(n=n, seed=seed)
    else:
        records = take(loader(root), limit)
    for attack in attacks:
        records = apply_attack(records, attack)
    return records
