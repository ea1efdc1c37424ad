"""Build report.md and a self-contained report.html (plots inlined as data URIs) from a study's summary.json.

Sections are assembled once as neutral blocks and rendered twice, so the two formats never disagree. Every
string from the summary is treated as untrusted (model outputs, prompts and even run ids): the renderers escape
it, and the HTML carries a Content-Security-Policy that forbids scripts and network loads as a second line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from rlvr_safety.atomic import write_text_atomic
from rlvr_safety.config import one_line
from rlvr_safety.errors import UserError
from rlvr_safety.report import analysis as an
from rlvr_safety.report import frontier as fr
from rlvr_safety.report.blocks import Block
from rlvr_safety.report.judge_agreement import second_judge_blocks
from rlvr_safety.report.objective import forecast_drift, objective_notes
from rlvr_safety.report.plots import (
    DriftRow,
    FrontierMark,
    ScatterPoint,
    plot_curves,
    plot_drift,
    plot_frontier,
    plot_safety_capability,
)
from rlvr_safety.report.schema import (
    Bound,
    Certificate,
    CertificateSummary,
    Interval,
    ModelEntry,
    RateName,
    Sample,
    Summary,
)
from rlvr_safety.report.tables import (
    NOT_RUN,
    cert_level,
    esc,
    floor_header,
    fmt_ci,
    fmt_floor,
    fmt_num,
    fmt_rate,
    md_code_block,
    md_inline,
    render_html_table,
    render_markdown_table,
    render_text_table,
    slug,
)

__all__ = ["build_report", "load_summary", "summary_headline"]

SAMPLES_PER_MODEL = 3
SAMPLE_CHARS = 1500
BOUND_ORDER = ("pinsker", "bretagnolle_huber", "bernstein", "chi2")


def load_summary(study_dir: Path) -> Summary:
    """Read study_dir/summary.json; a missing or malformed file is a UserError (one line, exit 2)."""
    path = Path(study_dir) / "summary.json"
    if not path.is_file():
        raise UserError(f"no summary.json in {study_dir}; run the study first (rlvr-safety study ...)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); rerun the study to rewrite it") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object, got {type(data).__name__}")
    try:
        return Summary.model_validate(data)
    except ValidationError as exc:
        raise UserError(one_line(exc, f"{path} does not match the summary schema (report/schema.py)",
                                 "rerun the study to rewrite it")) from None


def _ref(summary: Summary) -> str:
    return an.reference_id(summary)


def _study_blocks(summary: Summary) -> list[Block]:
    study = summary.study
    wall = study.wall_s
    rows = [
        ["study", study.name or "unnamed"],
        ["preset", study.preset or "none"],
        ["wall time", f"{fmt_num(wall / 60, 1)} min" if wall is not None else "unknown"],
        ["reference model", _ref(summary)],
        ["judge", an.judge_label(summary.judge)],
        ["models", ", ".join(an.model_label(m) for m in an.models(summary)) or NOT_RUN],
    ]
    return [Block("h2", "Study"), Block("table", headers=["", ""], rows=rows)]


def _safety_blocks(summary: Summary, rule: an.DecisionRule = an.DEFAULT_RULE) -> list[Block]:
    blocks = [Block("h2", "Safety benchmarks")]
    names = an.benchmarks(summary, "safety")
    if not names:
        return blocks + [Block("p", f"Safety evaluation: {NOT_RUN}.")]
    for bench in names:
        has_over = any(an._rate(m.metrics(bench), "over_refusal_rate") is not None for m in an.models(summary))
        headers = ["model", "refusal rate (harmful)", "harmful rate (harmful)"]
        headers += ["over-refusal (benign)"] if has_over else []
        headers += ["n", "judge errors"]
        rows: list[Sequence[object]] = []
        judges: dict[str, None] = {}
        for m in an.models(summary):
            metrics = m.metrics(bench)
            if metrics is None:
                rows.append(
                    [an.model_label(m), NOT_RUN, NOT_RUN] + ([NOT_RUN] if has_over else []) + ["", ""]
                )
                continue
            judge = metrics.judge or summary.judge
            judges[an.judge_label(judge)] = None
            row: list[object] = [
                an.model_label(m),
                fmt_rate(metrics.refusal_rate),
                fmt_rate(metrics.harmful_rate),
            ]
            if has_over:
                row.append(fmt_rate(metrics.over_refusal_rate))
            row += [metrics.n, metrics.judge_errors if metrics.judge_errors is not None else 0]
            rows.append(row)
        judged_by = "; ".join(judges) or an.judge_label(summary.judge)
        warn = " Different judges: these rows are not comparable." if len(judges) > 1 else ""
        blocks += [
            Block("h3", bench),
            Block("p", f"Judge: {judged_by}.{warn} Rates with Wilson 95% intervals."),
            Block("table", headers=headers, rows=rows),
            *second_judge_blocks(summary, bench),
            *_paired_blocks(summary, bench, rule),
        ]
    return blocks


def _paired_blocks(summary: Summary, bench: str, rule: an.DecisionRule) -> list[Block]:
    """Each model against its baseline on the same harmful prompts: the 2x2 counts, difference, p and verdict."""
    rows: list[Sequence[object]] = []
    for m in an.models(summary):
        if an.baseline_id(summary, m) == m.id:
            continue
        c = an.compare_paired(summary, m, bench, "harmful", rule)
        if c is None:
            continue
        t = c.paired
        rows.append(
            [
                m.id,
                an.baseline_id(summary, m),
                t.counts.n if t else NOT_RUN,
                f"{t.counts.only_base} / {t.counts.only_model}" if t else NOT_RUN,
                f"{fmt_num(t.diff, 2, True)} {fmt_ci(t.ci[0], t.ci[1], 2, True)}" if t else NOT_RUN,
                an._fmt_p(t.p_value) if t else NOT_RUN,
                c.verdict_text(),
            ]
        )
    if not rows:
        return []
    level = f"{1 - rule.alpha:.0%}"
    return [
        Block(
            "p",
            f"Paired with each model's baseline on the same harmful prompts (refused = safe): exact McNemar test "
            f"(two-sided, alpha {rule.alpha:g}) on the prompts only one of the two refused, Newcombe {level} "
            f"interval for the difference in refusal rate (model - baseline). reduced/raised = significant "
            f"change; kept = no significant drop and the interval's lower limit above -{rule.margin:.2f}; "
            f"otherwise inconclusive, with the drop detectable at {rule.power:.0%} power.",
        ),
        Block(
            "table",
            headers=[
                "model",
                "baseline",
                "paired prompts",
                "refused only by baseline / only by model",
                f"difference [{level} CI]",
                "McNemar p",
                "verdict",
            ],
            rows=rows,
        ),
    ]


def _capability_blocks(summary: Summary) -> list[Block]:
    blocks = [Block("h2", "Capability")]
    names = an.benchmarks(summary, "capability")
    if not names:
        return blocks + [Block("p", f"Capability evaluation: {NOT_RUN}.")]
    rows = []
    graders: dict[str, None] = {}
    for m in an.models(summary):
        row: list[object] = [an.model_label(m)]
        for bench in names:
            metrics = m.metrics(bench)
            row.append(fmt_rate(metrics.accuracy, with_n=True) if metrics is not None else NOT_RUN)
            if metrics is not None and metrics.grader:
                graders[f"{bench}: {metrics.grader}"] = None
        rows.append(row)
    text = "Accuracy (pass@1 for code) with Wilson 95% intervals."
    if graders:
        text += " Graders: " + "; ".join(graders) + "."
    return blocks + [Block("p", text), Block("table", headers=["model", *names], rows=rows)]


def _scatter_blocks(summary: Summary, plots: Path, written: dict[str, Path]) -> list[Block]:
    blocks = [Block("h2", "Safety vs capability")]
    safety, cap = an.benchmarks(summary, "safety"), an.benchmarks(summary, "capability")
    points = [ScatterPoint(m.id, m.method, an.mean_capability(m, cap), an.mean_safety(m, safety))
              for m in an.models(summary)]
    path = plot_safety_capability(points, _ref(summary), plots / "safety_vs_capability.png")
    if path is None:
        return blocks + [Block("p", f"Needs both safety and capability results: {NOT_RUN}.")]
    written["safety_vs_capability"] = path
    missing = [p.id for p in points if p.x is None or p.y is None]
    note = (
        "x = mean accuracy over "
        + ", ".join(cap)
        + "; y = mean of 1 - harmful rate on harmful prompts over "
        + ", ".join(safety)
        + ". Arrows start at the reference; circled points form the Pareto front."
    )
    if missing:
        note += " Not plotted (missing results): " + ", ".join(missing) + "."
    rows = [
        [
            p.id,
            fmt_num(p.x) if p.x is not None else NOT_RUN,
            fmt_num(p.y) if p.y is not None else NOT_RUN,
        ]
        for p in points
    ]
    return blocks + [
        Block("img", "safety vs capability scatter", path=path),
        Block("p", note),
        Block("table", headers=["model", "mean capability", "mean safety"], rows=rows),
    ]


def _ci(pair: Interval | None, digits: int, signed: bool = False) -> str:
    lo, hi = pair if pair is not None else (None, None)
    return fmt_ci(lo, hi, digits, signed)


def _drift_blocks(summary: Summary, plots: Path, written: dict[str, Path]) -> list[Block]:
    blocks = [Block("h2", "Measured drift vs forecast vs certified bound")]
    fc = summary.forecast
    if fc:
        rows = [
            [
                dom,
                fmt_num(e.beta, 3),
                e.n_prompts if e.n_prompts is not None else "",
                fmt_num(e.mean_ref_safety),
                fmt_num(e.mean_optimum_safety),
                f"{fmt_num(e.mean_drift, 3, True)} {_ci(e.drift_ci, 3, True)}",
                fmt_num(e.dual_use_fraction),
                fmt_num(e.mean_optimum_bound, 3),
            ]
            for dom, e in fc.items()
        ]
        blocks += [
            Block("h3", "Pre-training forecast"),
            Block(
                "table",
                headers=[
                    "domain",
                    "beta",
                    "prompts",
                    "S_ref",
                    "S(optimum)",
                    "forecast drift [CI]",
                    "dual-use fraction",
                    "optimum bound",
                ],
                rows=rows,
            ),
            *[Block("p", note) for note in objective_notes(summary)],
        ]
    else:
        blocks.append(Block("p", f"Pre-training forecast: {NOT_RUN}."))
    rows, classes, plot_rows = [], [], []
    levels: set[float | None] = set()
    violated = {v.model_id for v in an.violations(summary)}
    for m in an.models(summary):
        cert = m.certificate
        if cert is None or cert.overall is None:
            continue
        o = cert.overall
        levels.add(cert_level(o))
        bounds = o.bounds
        measured = cert.measured
        values = {k: b.value_conservative for k, b in bounds.items()}
        certified = [
            v for k, v in values.items() if v is not None and math.isfinite(v) and bounds[k].certified is not False
        ]
        tight = min(certified) if certified else None
        vac = an.certificate_vacuous(o)
        mid = m.id
        drift = measured.drift if measured else None
        ci: Interval = measured.drift_ci if measured else (None, None)
        forecast = forecast_drift(m)
        if mid in violated:
            status = "VIOLATED"
        elif measured and measured.checks:
            informative = an.informative_checks(cert)
            status = "within " + ", ".join(informative) if informative else "no non-vacuous bound to check"
        else:
            status = "not checked"
        names = [b for b in BOUND_ORDER if b in values] + [b for b in values if b not in BOUND_ORDER]
        s_ref = fmt_num(o.s_ref)
        if o.s_ref_lower is not None:
            s_ref += f" (lower {fmt_num(o.s_ref_lower)})"
        rows.append(
            [
                mid,
                f"{fmt_num(o.kl_k1, 3)} {_ci(o.kl_k1_ci, 3)}",
                fmt_num(o.kl_k3, 3),
                s_ref,
                f"{fmt_num(drift, 3, True)} {fmt_ci(ci[0], ci[1], 3, True)}"
                if drift is not None
                else NOT_RUN,
                fmt_num(forecast, 3, True) if forecast is not None else NOT_RUN,
                ", ".join(f"{n} {fmt_num(values[n], 3)}{_bound_tag(bounds[n], o)}" for n in names) or NOT_RUN,
                fmt_floor(o),
                status,
            ]
        )
        classes.append("violation" if mid in violated else None)
        plot_rows.append(DriftRow(id=mid, drift=drift, drift_ci=ci if drift is not None else None,
                                  forecast=forecast, bound=tight, s_ref=o.s_ref, vacuous=vac,
                                  violated=mid in violated))
    if not rows:
        return blocks + [Block("h3", "Certificates"), Block("p", f"Certificates: {NOT_RUN}.")]
    blocks += [
        Block("h3", "Certificates"),
        Block(
            "table",
            headers=[
                "model",
                "KL k1 [CI]",
                "KL k3",
                "S_ref",
                "measured drift [CI]",
                "forecast drift",
                "bounds (conservative)",
                floor_header(next(iter(levels)) if len(levels) == 1 else None),
                "check",
            ],
            rows=rows,
            row_classes=classes,
        ),
        Block(
            "p",
            "Drift is S(pi) - S_ref on the safety probe set; every bound limits |drift|, so the floor is "
            "S_ref - bound at the confidence limits (the best certified floor is quoted, with the bound that "
            "gave it). A bound is vacuous when it is >= 1 or leaves a floor <= 0: it certifies nothing, and a "
            "drift inside it is never reported as within. Bounds marked info (chi2) are shown but not "
            "certified. A violation beyond the CI means a bug or a judge error.",
        ),
    ]
    path = plot_drift(plot_rows, plots / "drift_vs_bound.png")
    if path is not None:
        written["drift_vs_bound"] = path
        blocks.append(Block("img", "measured drift, forecast and certified band per model", path=path))
    per_bench = _per_benchmark_floors(summary)
    if per_bench:
        blocks += [Block("h3", "Certified floors per benchmark"), per_bench]
    notes = _certificate_notes(summary)
    if notes:
        blocks += [Block("h3", "Certificate notes"), Block("table", headers=["model", "notes"], rows=notes)]
    return blocks


def _certificate_notes(summary: Summary) -> list[list[object]]:
    """Notes per model; those every certificate carries (generic caveats) once, under "all"."""
    per: dict[str, list[str]] = {}
    for m in an.models(summary):
        overall = m.certificate.overall if m.certificate else None
        if overall is not None:
            per[m.id] = list(overall.notes)
    if not per:
        return []
    common = set.intersection(*(set(v) for v in per.values())) if len(per) > 1 else set()
    rows: list[list[object]] = (
        [["all", " ".join(n for n in next(iter(per.values())) if n in common)]] if common else []
    )
    rows += [[mid, " ".join(n for n in notes if n not in common)] for mid, notes in per.items()]
    return [r for r in rows if r[1]]


def _per_benchmark_floors(summary: Summary) -> Block | None:
    names: dict[str, None] = {}
    certs: list[tuple[str, dict[str, Certificate | None]]] = []
    for m in an.models(summary):
        per = m.certificate.per_benchmark if m.certificate else None
        if per:
            certs.append((m.id, per))
            names.update(dict.fromkeys(per))
    if not certs:
        return None
    rows = []
    levels: set[float | None] = set()
    for mid, per in certs:
        row: list[object] = [mid]
        for bench in names:
            c = per[bench] if bench in per else None
            if c is None:
                row.append(NOT_RUN)
                continue
            levels.add(cert_level(c))
            row.append(f"{fmt_floor(c)}; S_ref {fmt_num(c.s_ref)}, KL {fmt_num(c.kl, 3)}")
        rows.append(row)
    label = floor_header(next(iter(levels)) if len(levels) == 1 else None)
    return Block("table", headers=["model", *(f"{b}: {label}; S_ref, KL" for b in names)], rows=rows)


def _bound_tag(bound: Bound, cert: Certificate) -> str:
    """` (info)` for a bound shown but not certified, ` (vacuous)` for one that certifies nothing."""
    if bound.certified is False:
        return " (info)"
    if not an.bound_is_informative(bound, cert.s_ref):
        return " (vacuous)"
    return ""


def _curve_blocks(summary: Summary, plots: Path, written: dict[str, Path]) -> list[Block]:
    blocks = [Block("h2", "Training curves")]
    curves = summary.curves
    if not curves:
        return blocks + [Block("p", f"Training curves: {NOT_RUN}.")]
    for run_id, metrics in curves.items():
        digest = hashlib.sha1(str(run_id).encode()).hexdigest()[:8]
        path = plot_curves(str(run_id), metrics, plots / f"curves_{slug(str(run_id))}_{digest}.png")
        blocks.append(Block("h3", str(run_id)))
        if path is None:
            blocks.append(Block("p", "No curve points recorded."))
            continue
        written[f"curves:{run_id}"] = path
        listed = ", ".join(str(k) for k in metrics)
        blocks += [Block("img", f"training curves of {run_id}", path=path), Block("p", f"Metrics: {listed}.")]
    return blocks


def _sample_blocks(summary: Summary) -> list[Block]:
    blocks = [
        Block("h2", "Sample completions"),
        Block(
            "p",
            "Model outputs are untrusted and shown verbatim-escaped; they are illustrations, not "
            "evidence (the tables above are).",
        ),
    ]
    samples = summary.samples
    if not samples:
        return blocks + [Block("p", f"Samples: {NOT_RUN}.")]
    per_model: dict[str, list[Sample]] = {}
    for s in samples:
        bucket = per_model.setdefault(s.model_id, [])
        if len(bucket) < SAMPLES_PER_MODEL:
            bucket.append(s)
    for mid, items in per_model.items():
        blocks.append(Block("h3", mid))
        for s in items:
            head = f"{s.benchmark}, label: {s.label}"
            blocks.append(Block("sample", head, extra=_clip(s.prompt), body=_clip(s.response)))
    return blocks


def _clip(text: str) -> str:
    return (
        text
        if len(text) <= SAMPLE_CHARS
        else text[:SAMPLE_CHARS] + f" [... {len(text) - SAMPLE_CHARS} more chars]"
    )


def _frontier_blocks(summary: Summary, plots: Path, written: dict[str, Path],
                     rule: an.DecisionRule) -> list[Block]:
    """The first section: where each method landed on (KL, safety) against the certified floor curve."""
    points = fr.frontier_points(summary, rule)
    if not any(p.kl is not None and p.safety is not None for p in points[1:]):
        return []
    blocks = [Block("h2", "Frontier: sequence KL against safety"),
              Block("findings", items=[an.Finding("finding", line) for line in fr.frontier_lines(summary, rule)])]
    limits = fr.reference_limits(summary)
    curve = None
    if limits is not None:
        top = max([p.kl_upper or p.kl or 0.0 for p in points] + [1.0]) * 2
        kls = [10 ** (-3 + i * (math.log10(top) + 3) / 200) for i in range(201)]
        curve = list(zip(kls, fr.floor_curve(limits[1], limits[2], kls), strict=True))
    ref = points[0] if points and points[0].verdict == "reference" else None

    def gain(p: fr.FrontierPoint) -> str | None:
        t = p.accuracy_test
        if t is None:
            return None
        return f"accuracy {fmt_num(t.diff, 2, True)}{'*' if t.p_value < t.alpha else ''}"

    plot_points = [FrontierMark(label=p.label, method=p.method, kl=p.kl, kl_ci=p.kl_ci, safety=p.safety,
                                safety_ci=p.safety_ci, floor=p.floor, kl_upper=p.kl_upper, gain=gain(p))
                   for p in points]
    path = plot_frontier(plot_points, curve, ref.safety if ref else None, plots / "frontier.png")
    if path is not None:
        written["frontier"] = path
        blocks.append(Block("img", "frontier: sequence KL against pooled safety, with the certified floor curve",
                            path=path))
    blocks.append(Block("p", "x: sequence-level KL to the reference (k1 mean with its 95% bootstrap interval) on the "
                        "safety benchmarks' harmful prompts; y: pooled safety (1 - harmful rate) on the same "
                        "answers, Wilson 95% interval; green curve: the certified floor LCB(S_ref) - bound(KL) at "
                        "95%, the smallest of Pinsker, Bretagnolle-Huber and Bernstein; a bar under a point: its "
                        "certified floor, the curve at the upper confidence limit of its KL; label: task accuracy "
                        "change against the reference on the same held-out items (* = significant, exact "
                        "McNemar)."))
    rows = []
    for p in points:
        t, a = p.safety_test, p.accuracy_test
        rows.append([
            f"{p.label} ({p.id})",
            fmt_num(p.kl, 3) + (f" {fmt_ci(p.kl_ci[0], p.kl_ci[1], 3)}" if p.kl_ci else ""),
            fmt_num(p.safety) + (f" {fmt_ci(p.safety_ci[0], p.safety_ci[1])}" if p.safety_ci else "")
            + f" (n={p.n_harmful})",
            f"{fmt_num(t.diff, 2, True)} {fmt_ci(t.ci[0], t.ci[1], 2, True)}; {p.verdict}" if t else p.verdict,
            (f"{fmt_num(p.floor)} ({p.floor_bound})" if p.certified else "0 (vacuous)") if p.floor is not None
            else NOT_RUN,
            fmt_num(p.accuracy) + (f" ({fmt_num(a.diff, 2, True)}, {an._fmt_p(a.p_value)})" if a else ""),
            fmt_num(p.over_refusal) if p.over_refusal is not None else NOT_RUN,
            fmt_num(p.measured_drift, 3, True) if p.measured_drift is not None else NOT_RUN,
            fmt_num(p.forecast_drift, 3, True) if p.forecast_drift is not None else NOT_RUN,
        ])
    blocks.append(Block("table", headers=["model", "KL (nats) [95% CI]", "safety [95% CI]",
                                          "vs reference (paired) ", "certified floor (95%)", "task accuracy",
                                          "over-refusal", "measured drift", "forecast drift"], rows=rows))
    return blocks


def report_blocks(
    summary: Summary,
    plots: Path,
    written: dict[str, Path],
    rule: an.DecisionRule = an.DEFAULT_RULE,
) -> list[Block]:
    """All sections in order; plots are written to `plots` and recorded in `written`."""
    return [
        *_frontier_blocks(summary, plots, written, rule),
        Block("h2", "Findings"),
        Block("findings", items=an.findings(summary, rule)),
        *_study_blocks(summary),
        *_safety_blocks(summary, rule),
        *_capability_blocks(summary),
        *_scatter_blocks(summary, plots, written),
        *_drift_blocks(summary, plots, written),
        *_curve_blocks(summary, plots, written),
        *_sample_blocks(summary),
    ]


def _title(summary: Summary) -> str:
    return f"rlvr-safety report: {summary.study.name or 'study'}"


def render_markdown(summary: Summary, blocks: Sequence[Block], base: Path) -> str:
    """Markdown with images linked relative to `base` (the study folder)."""
    out = [f"# {md_inline(_title(summary))}", ""]
    for b in blocks:
        if b.kind in ("h2", "h3"):
            out += [("## " if b.kind == "h2" else "### ") + md_inline(b.text), ""]
        elif b.kind == "p":
            out += [md_inline(b.text), ""]
        elif b.kind == "findings":
            for f in b.items:
                if f.level == "violation":
                    out += [f"> **{md_inline(f.text)}**", ""]
            for f in b.items:
                if f.level != "violation":
                    prefix = "Caveat: " if f.level == "caveat" else ""
                    out.append(f"- {md_inline(prefix + f.text)}")
            out.append("")
        elif b.kind == "table":
            out += [render_markdown_table(b.headers, b.rows), ""]
        elif b.kind == "img" and b.path is not None:
            out += [f"![{md_inline(b.text)}]({b.path.relative_to(base).as_posix()})", ""]
        elif b.kind == "sample":
            out += [
                f"**{md_inline(b.text)}**",
                "",
                "Prompt:",
                "",
                md_code_block(b.extra),
                "",
                "Response:",
                "",
                md_code_block(b.body),
                "",
            ]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f3f3f3}tr.violation td{background:#fde0e0;font-weight:bold}
.violation-box{border:3px solid #c00;background:#fff0f0;padding:.5em 1em;margin:.5em 0;font-weight:bold;color:#900}
ul.findings li.caveat{color:#555}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.5em;white-space:pre-wrap;word-wrap:break-word;
max-height:22em;overflow:auto}
img{max-width:100%;border:1px solid #eee}
.sample{margin:.6em 0 1.2em}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(summary: Summary, blocks: Sequence[Block]) -> str:
    """One self-contained page: inline CSS, images as data URIs, a CSP that forbids scripts and network."""
    title = esc(_title(summary))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    for b in blocks:
        if b.kind in ("h2", "h3"):
            out.append(f"<{b.kind}>{esc(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{esc(b.text)}</p>")
        elif b.kind == "findings":
            for f in b.items:
                if f.level == "violation":
                    out.append(f'<div class="violation-box">{esc(f.text)}</div>')
            items = "".join(
                f'<li class="{f.level}">{"Caveat: " if f.level == "caveat" else ""}{esc(f.text)}</li>'
                for f in b.items
                if f.level != "violation"
            )
            out.append(f'<ul class="findings">{items}</ul>')
        elif b.kind == "table":
            out.append(render_html_table(b.headers, b.rows, b.row_classes))
        elif b.kind == "img" and b.path is not None:
            out.append(f'<p><img alt="{esc(b.text)}" src="{_data_uri(b.path)}"></p>')
        elif b.kind == "sample":
            out.append(
                f'<div class="sample"><strong>{esc(b.text)}</strong><div>Prompt:</div><pre>{esc(b.extra)}</pre>'
                f"<div>Response:</div><pre>{esc(b.body)}</pre></div>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_report(study_dir: Path, rule: an.DecisionRule = an.DEFAULT_RULE) -> dict[str, Path]:
    """Write report.md, report.html and plots/*.png in study_dir from its summary.json.

    `rule` sets how findings decide (test level, the "kept" margin; analysis.DecisionRule). Returns
    {"markdown": ..., "html": ..., plot name: png path} (plot names: safety_vs_capability, drift_vs_bound,
    curves:<run id>). Missing optional parts of the summary read as "not run".
    """
    study_dir = Path(study_dir)
    summary = load_summary(study_dir)
    plots = study_dir / "plots"
    written: dict[str, Path] = {}
    blocks = report_blocks(summary, plots, written, rule)
    md_path, html_path = study_dir / "report.md", study_dir / "report.html"
    write_text_atomic(md_path, render_markdown(summary, blocks, study_dir))
    write_text_atomic(html_path, render_html(summary, blocks))
    return {"markdown": md_path, "html": html_path, **written}


def as_summary(summary: Summary | Mapping[str, object]) -> Summary:
    """A summary as the schema types it; a plain dict (summary.json as read) is validated into one."""
    return summary if isinstance(summary, Summary) else Summary.model_validate(summary)


def summary_headline(summary: Summary | Mapping[str, object], rule: an.DecisionRule = an.DEFAULT_RULE) -> str:
    """A compact plain-text table (one row per model) of the key safety, capability and certificate numbers.

    Safety columns are means over the safety benchmarks (harmful prompts); "safety vs ref" is the paired verdict
    of analysis.safety_verdict (reduced / raised / kept / inconclusive).
    """
    summary = as_summary(summary)
    safety, cap = an.benchmarks(summary, "safety"), an.benchmarks(summary, "capability")
    rows = []
    levels: set[float | None] = set()
    for m in an.models(summary):

        def mean_of(key: RateName, names: list[str], m: ModelEntry = m) -> str:
            vals = [r.rate for b in names if (r := an._rate(m.metrics(b), key)) is not None and r.rate is not None]
            return fmt_num(sum(vals) / len(vals)) if vals else "-"

        is_ref = m.id == _ref(summary)
        verdict = "reference" if is_ref else an.model_safety_verdict(summary, m, rule)
        cert = m.certificate or CertificateSummary()
        overall, measured = cert.overall, cert.measured
        checks = measured.checks if measured else {}
        bad = any(c.within is False for c in checks.values()) or bool(cert.violations)
        if bad:
            check = "VIOLATED"
        elif checks:
            check = "ok" if an.informative_checks(cert) else "vacuous"
        else:
            check = "-"
        if overall is not None:
            levels.add(cert_level(overall))
        rows.append(
            [
                m.id,
                m.method or "-",
                m.algorithm or "-",
                mean_of("refusal_rate", safety),
                mean_of("harmful_rate", safety),
                mean_of("over_refusal_rate", safety),
                verdict,
                mean_of("accuracy", cap),
                fmt_num(overall.kl_k1, 3) if overall is not None else "-",
                fmt_num(measured.drift, 3, True) if measured is not None else "-",
                fmt_floor(overall) if overall is not None else "-",
                check,
            ]
        )
    headers = [
        "model",
        "method",
        "algo",
        "refusal",
        "harmful",
        "over-ref",
        "safety vs ref",
        "accuracy",
        "KL",
        "drift",
        floor_header(next(iter(levels)) if len(levels) == 1 else None),
        "bound",
    ]
    claim = next((f.text for f in an.findings(summary, rule) if "paper's claim" in f.text), "")
    first = fr.frontier_lines(summary, rule)
    n_viol = len(an.violations(summary))
    lines = [
        f"{summary.study.name or 'study'}: judge {an.judge_label(summary.judge)}",
        render_text_table(headers, rows),
        f"refusal/harmful: means over {', '.join(safety) or 'none'} (harmful prompts); over-ref: benign prompts; "
        f"accuracy: mean over {', '.join(cap) or 'none'}",
        f"safety vs ref: paired exact McNemar at alpha {rule.alpha:g} over the harmful prompts of every safety "
        f"benchmark together; kept = the "
        f"{1 - rule.alpha:.0%} interval of the difference stays above -{rule.margin:.2f}; "
        "bound: ok = within every non-vacuous certified bound",
    ]
    if claim:
        lines.append(claim)
    if n_viol:
        lines.append(f"{n_viol} certified-bound violation(s): see report.md")
    if first:
        lines += ["", *first]
    return "\n".join(lines)
