"""Study reports: Findings computed from the numbers, tables, plots, report.md and a self-contained report.html."""

from rlvr_safety.report.analysis import Finding, findings, violations
from rlvr_safety.report.build import build_report, load_summary, summary_headline
from rlvr_safety.report.tables import (
    fmt_rate,
    render_html_table,
    render_markdown_table,
    render_text_table,
)

__all__ = [
    "Finding",
    "build_report",
    "findings",
    "fmt_rate",
    "load_summary",
    "render_html_table",
    "render_markdown_table",
    "render_text_table",
    "summary_headline",
    "violations",
]
