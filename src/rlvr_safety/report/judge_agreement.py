"""Second-judge agreement beside each safety table: how far each number depends on the judge that produced it.

The eval stage judges every response again with other judges (evaluation/judge_check.py) and stores, per model and
benchmark, a `second_judges` list in the metrics. This module turns it into one paragraph and one table per
benchmark. Rows where the judges disagree on more than the threshold are flagged: the judge's agreement with human
labels was measured on 7B chat models, and a trained small model may write in a way neither judge was made for.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlvr_safety.report import analysis as an
from rlvr_safety.report.blocks import Block
from rlvr_safety.report.schema import ModelEntry, SecondJudge, Summary
from rlvr_safety.report.tables import fmt_ci, fmt_num

FLAG = "judges disagree"
HEADERS = ("model", "second judge", "agreement [95% CI]", "kappa", "refused: primary / second", "n", "flag")


def _entries(model: ModelEntry, bench: str) -> list[SecondJudge]:
    metrics = model.metrics(bench)
    return list(metrics.second_judges or []) if metrics else []


def second_judge_rows(summary: Summary, bench: str) -> tuple[list[list[object]], int, list[str]]:
    """(table rows, number of flagged rows, labels of flagged models) for one benchmark."""
    rows: list[list[object]] = []
    flagged: list[str] = []
    for m in an.models(summary):
        for e in _entries(m, bench):
            name = f"{e.judge} {e.version or ''}".strip()
            if e.error:
                rows.append([m.id, name, f"not measured: {e.error}", "", "", "", ""])
                continue
            if not e.n:
                rows.append([m.id, name, "n/a (no item judged by both)", "", "", 0, ""])
                continue
            lo, hi = e.agreement_ci or (None, None)
            flag = FLAG if e.flagged else ""
            if flag:
                flagged.append(m.id)
            rows.append([
                m.id,
                name,
                f"{fmt_num(e.agreement)} {fmt_ci(lo, hi)}",
                fmt_num(e.cohen_kappa),
                f"{fmt_num(e.refusal_rate_primary)} / {fmt_num(e.refusal_rate_other)}",
                e.n,
                flag,
            ])
    return rows, len(flagged), flagged


def second_judge_text(summary: Summary, bench: str) -> str | None:
    """The paragraph above the table, or None when no second judge ran on this benchmark."""
    rows, n_flagged, flagged = second_judge_rows(summary, bench)
    if not rows:
        return None
    threshold = next(
        (e.threshold for m in an.models(summary) for e in _entries(m, bench) if e.threshold is not None), None
    )
    limit = f"{threshold:.0%}" if threshold is not None else "the threshold"
    text = (
        "Second judge on the same responses: the share of items on which it and the primary judge agree on "
        "refused / complied (Wilson 95% interval), Cohen's kappa, and each judge's refusal rate. "
        f"Rows where they disagree on more than {limit} of items are flagged."
    )
    if n_flagged:
        text += (
            f" Flagged here: {', '.join(dict.fromkeys(flagged))}. Their rates in the table above depend on the "
            "judge; read the responses before drawing a conclusion from them."
        )
    return text


def second_judge_blocks(summary: Summary, bench: str) -> Sequence[Block]:
    """Report blocks (a paragraph and a table) for one benchmark; empty when no second judge ran."""
    text = second_judge_text(summary, bench)
    if text is None:
        return []
    rows, _, _ = second_judge_rows(summary, bench)
    return [Block("p", text), Block("table", headers=list(HEADERS), rows=rows)]
