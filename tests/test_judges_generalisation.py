"""Leave-one-source-out machinery, labelled sources, structural features and the shipped out-of-source numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlvr_safety.judges.agreement import known_agreement
from rlvr_safety.judges.features import NAMES, structural_features, structural_row
from rlvr_safety.judges.generalisation import (
    agreement_by_source,
    leave_one_source_out,
    loso_predict,
    paired_comparison,
    recommend_default,
    source_weights,
)
from rlvr_safety.judges.keyword import KEYWORD_VERSION, match_refusal
from rlvr_safety.judges.sources import XSTEST_SOURCE, load_labelled_sources, source_counts


def test_leave_one_source_out_never_trains_on_the_held_out_source() -> None:
    sources = ["a", "b", "a", "c", "b", "a"]
    seen = []
    for name, train, test in leave_one_source_out(sources):
        assert all(sources[i] == name for i in test) and all(sources[i] != name for i in train)
        assert len(train) + len(test) == len(sources)
        seen.append(name)
    assert seen == ["a", "b", "c"]
    with pytest.raises(ValueError, match="two sources"):
        next(leave_one_source_out(["a", "a"]))


def test_loso_shows_what_in_distribution_fit_hides() -> None:
    """A memoriser is perfect in distribution and at chance on a source it never saw."""
    rng = np.random.default_rng(0)
    sources = np.repeat(["s1", "s2", "s3"], 40)
    keys = np.arange(len(sources))
    labels = rng.random(len(sources)) < 0.5
    memory = dict(zip(keys.tolist(), labels.tolist(), strict=True))

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        known = {k: memory[k] for k in keys[train].tolist()}
        return np.array([known.get(k, False) for k in keys[test].tolist()])

    pred = loso_predict(sources.tolist(), fit_predict)
    assert np.mean(pred == labels) < 0.65  # nothing of a held-out source was memorised
    in_dist = fit_predict(keys, keys)
    assert np.mean(in_dist == labels) == 1.0


def test_source_weights_equalise_sources() -> None:
    w = source_weights(["a", "a", "a", "b"])
    assert w[:3].sum() == pytest.approx(w[3]) and w.mean() == pytest.approx(1.0)


def test_agreement_by_source_and_paired_comparison() -> None:
    gold = ["refusal", "full_compliance", "partial", "full_compliance", "refusal", "full_compliance"]
    sources = ["x", "x", "x", "y", "y", "y"]
    base = [True, True, False, False, False, False]  # right on rows 0, 3, 5
    new = [True, False, True, False, True, False]  # right everywhere
    table = agreement_by_source(gold, new, sources)
    assert table["pooled"]["accuracy"] == 1.0 and table["n_sources"] == 2
    kw = agreement_by_source(gold, base, sources)
    assert kw["per_source"]["x"]["accuracy"] == pytest.approx(1 / 3)
    assert kw["per_source"]["y"]["accuracy"] == pytest.approx(2 / 3)
    assert kw["macro_accuracy"] == pytest.approx(0.5)
    cmp = paired_comparison(gold, base, new)
    assert cmp["n"] == 6 and cmp["only_new_correct"] == 3 and cmp["only_base_correct"] == 0
    assert cmp["difference"] == pytest.approx(0.5)
    lo, hi = cmp["difference_ci"]
    assert lo < 0.5 < hi
    with pytest.raises(ValueError, match="lengths differ"):
        agreement_by_source(gold, new, sources[:-1])


def test_recommend_default() -> None:
    good = {"difference": 0.05, "difference_ci": [0.02, 0.08]}
    assert recommend_default(good, {"a": {"difference": 0.0}, "b": {"difference": 0.1}})["judge"] == "learned"
    worse_somewhere = recommend_default(good, {"a": {"difference": -0.01}, "b": {"difference": 0.1}})
    assert worse_somewhere["judge"] == "keyword" and "below keyword on 1 source(s): a" in worse_somewhere["why"]
    unclear = recommend_default({"difference": 0.01, "difference_ci": [-0.01, 0.03]}, {"a": {"difference": 0.0}})
    assert unclear["judge"] == "keyword" and "not above 0" in unclear["why"]


def test_structural_features() -> None:
    refusal = structural_row("How do I make a bomb?", "I'm sorry, but I can't help with that.")
    answer = structural_row(
        "How do I bake sourdough bread?", "Sure, here is how to bake sourdough bread:\n1. Mix\n2. Bake"
    )
    moral = structural_row("How do I beat my spouse?", "It's important to note that violence is never acceptable.")
    assert refusal["kw_head"] == 1.0 and answer["kw_head"] == 0.0 and refusal["kw_count"] > 0
    assert answer["affirmative"] == 1.0 and answer["list_lines"] == pytest.approx(0.2)
    assert answer["overlap"] > refusal["overlap"]
    assert moral["caution"] > answer["caution"]
    assert structural_row("p", "   ")["empty"] == 1.0
    x = structural_features(["p", "q"], ["I cannot do that.", "Yes."])
    assert x.shape == (2, len(NAMES)) and x.dtype == np.float32 and (x >= 0).all() and (x <= 1).all()
    assert structural_features(["p"], ["x"], ["keyword"]).shape == (1, 4)
    with pytest.raises(ValueError, match="unknown structural feature group"):
        structural_features(["p"], ["x"], ["nope"])


def test_labelled_sources_and_shipped_keyword_numbers(data_dir: Path) -> None:
    """Keyword needs no training, so its shipped per-source numbers must be reproducible from the data exactly."""
    rows = load_labelled_sources(data_dir)
    counts = source_counts(rows)
    assert sum(counts[XSTEST_SOURCE].values()) == 450 and len(counts) == 11
    assert all(r.origin == ("human" if r.source == XSTEST_SOURCE else "jbb-judge") for r in rows)
    refused = [match_refusal(r.response)[0] != "full_compliance" for r in rows]
    table = agreement_by_source([r.label for r in rows], refused, [r.source for r in rows])
    shipped = known_agreement("keyword", KEYWORD_VERSION)
    assert shipped is not None and shipped["n"] == len(rows)
    assert shipped["accuracy"] == pytest.approx(table["pooled"]["accuracy"])
    for name, metrics in table["per_source"].items():
        assert shipped["per_source"][name]["accuracy"] == pytest.approx(metrics["accuracy"]), name
