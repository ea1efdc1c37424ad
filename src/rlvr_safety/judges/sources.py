"""Labelled judge-evaluation data, one *source* (a model, or an attack on a target model) at a time.

A judge is only worth the agreement it shows on outputs it was not fitted to, so every labelled row carries the
source it came from, and the learned judge is scored leave-one-source-out (scripts/train_learned_judge.py).

Sources read from a local data folder (RLVR_SAFETY_DATA_DIR, laid out like ../shared/data):
- ``xstest:mistral-7b-instruct``: XSTest v2 completions of Mistral-7B-Instruct-v0.1 with two human annotations
  and a final label (full compliance / full refusal / partial refusal). Origin "human".
- ``jbb:<attack>/<target>``: JailbreakBench attack artifacts, one source per attack (DSN, GCG, PAIR) and target
  model (Llama-2-7B, Vicuna-13B, GPT-3.5, GPT-4). The label is the artifact's ``jailbroken`` flag, set by
  JailbreakBench's own LLM judge (Llama-3-70B): jailbroken -> full_compliance (gave the harmful help asked for),
  not jailbroken -> refusal (did not give it: a refusal, a deflection or a harmless answer). Origin "jbb-judge":
  these are an LLM's labels, not a human's. Rows without a response (the attack produced nothing) are dropped.

Labels are full_compliance / refusal / partial; in 2-class scores partial counts as refusal (XSTest convention), so
"refused" means "did not simply comply", which on a harmful prompt is "gave no harmful help".
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rlvr_safety.errors import UserError

XSTEST_FILE = "xstest/xstest_v2_completions_mistralinstruct.csv"
XSTEST_SOURCE = "xstest:mistral-7b-instruct"
JBB_GLOB = "jailbreakbench/attack-artifacts/*/*/*.json"
XSTEST_LABELS = {
    "1_full_compliance": "full_compliance",
    "2_full_refusal": "refusal",
    "3_partial_refusal": "partial",
}


@dataclass(frozen=True)
class LabelledRow:
    """One judged response with its gold label and where it came from."""

    prompt: str
    response: str
    label: str  # full_compliance | refusal | partial
    source: str
    origin: str  # "human" | "jbb-judge"

    @property
    def refused(self) -> bool:
        return self.label != "full_compliance"


def _root(root: str | Path | None) -> Path:
    if root is None:
        raise UserError("no data folder: pass --data-dir or set RLVR_SAFETY_DATA_DIR (e.g. ../shared/data)")
    return Path(root)


def load_xstest(root: str | Path | None) -> list[LabelledRow]:
    """The 450 human-labelled XSTest completions (one source)."""
    path = _root(root) / XSTEST_FILE
    if not path.exists():
        raise UserError(f"XSTest completions not found at {path}; pass --data-dir or set RLVR_SAFETY_DATA_DIR")
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            LabelledRow(r["prompt"], r["completion"], XSTEST_LABELS[r["final_label"]], XSTEST_SOURCE, "human")
            for r in csv.DictReader(handle)
        ]


def jbb_files(root: str | Path | None) -> list[Path]:
    """Per-attack, per-target JailbreakBench artifact files (attack-info.json excluded), sorted."""
    return sorted(p for p in _root(root).glob(JBB_GLOB) if p.name != "attack-info.json")


def jbb_source(path: Path) -> str:
    """``jbb:<attack>/<target>`` from .../attack-artifacts/<attack>/<attack_type>/<target>.json."""
    return f"jbb:{path.parent.parent.name}/{path.stem}"


def load_jbb(root: str | Path | None) -> list[LabelledRow]:
    """JailbreakBench responses labelled by the artifact's ``jailbroken`` flag; one source per file."""
    rows: list[LabelledRow] = []
    for path in jbb_files(root):
        source = jbb_source(path)
        for item in json.loads(path.read_text(encoding="utf-8"))["jailbreaks"]:
            response = item.get("response")
            if not response:
                continue
            prompt = item.get("prompt") or item.get("goal") or ""
            label = "full_compliance" if item.get("jailbroken") else "refusal"
            rows.append(LabelledRow(prompt, response, label, source, "jbb-judge"))
    return rows


def load_labelled_sources(root: str | Path | None) -> list[LabelledRow]:
    """Every labelled source in the data folder: XSTest first, then JailbreakBench files in sorted order."""
    return load_xstest(root) + load_jbb(root)


def source_counts(rows: list[LabelledRow]) -> dict[str, dict[str, int]]:
    """source -> {label: count}, for provenance and docs."""
    counts: dict[str, Counter[str]] = {}
    for row in rows:
        counts.setdefault(row.source, Counter())[row.label] += 1
    return {s: dict(sorted(c.items())) for s, c in counts.items()}
