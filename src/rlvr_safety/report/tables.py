"""Small, reusable formatting helpers: numbers, rates with intervals, and tables in Markdown, HTML and text.

Every string that reaches a table may come from a model or a user-written config, so each renderer escapes its
cells for its own format: callers pass plain text, never markup.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rlvr_safety.report.schema import Certificate, Rate

__all__ = [
    "NOT_RUN",
    "as_certificate",
    "esc",
    "cert_level",
    "fmt_ci",
    "fmt_floor",
    "fmt_num",
    "fmt_rate",
    "floor_header",
    "floor_source",
    "md_code_block",
    "md_inline",
    "render_html_table",
    "render_markdown_table",
    "render_text_table",
    "slug",
]

NOT_RUN = "not run"
_MD_SPECIAL = re.compile(r"([\\`*|~]|\](?=[(\[:])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_MD_BLOCK_START = re.compile(r"^([#+-](?=\s|$)|[-=]+$)")
_MD_ORDERED = re.compile(r"^(\d+)([.)])(?=\s|$)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def esc(text: object) -> str:
    """HTML-escape anything (quotes included, so the result is safe in attributes too)."""
    return html.escape(_CONTROL.sub("", str(text)), quote=True)


def md_inline(text: object) -> str:
    """Neutralise text for inline Markdown: HTML escaped, Markdown punctuation backslashed, one line."""
    one_line = " ".join(_CONTROL.sub("", str(text)).split())
    escaped = _MD_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))
    escaped = _MD_BLOCK_START.sub(r"\\\1", escaped)
    return _MD_ORDERED.sub(r"\1\\\2", escaped)


def md_code_block(text: str) -> str:
    """A fenced block no content can close (fence longer than any backtick run); HTML escaped for lax renderers."""
    body = html.escape(_CONTROL.sub("", text.replace("\r\n", "\n")), quote=False)
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def fmt_num(value: Any, digits: int = 2, signed: bool = False) -> str:
    """A float with fixed digits; None (a non-finite value in JSON) reads as infinity, NaN as n/a."""
    if value is None:
        return "inf"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_ci(lo: Any, hi: Any, digits: int = 2, signed: bool = False) -> str:
    """An interval as [lo, hi]."""
    return f"[{fmt_num(lo, digits, signed)}, {fmt_num(hi, digits, signed)}]"


def fmt_rate(rate: Rate | None, digits: int = 2, with_n: bool = False) -> str:
    """A rate (n, k, rate, ci_low, ci_high) as `0.45 [0.35, 0.55]`; missing -> "not run"."""
    if rate is None:
        return NOT_RUN
    if rate.rate is None:
        return "n/a (n=0)"
    text = f"{fmt_num(rate.rate, digits)} {fmt_ci(rate.ci_low, rate.ci_high, digits)}"
    return f"{text} (n={rate.n})" if with_n else text


def as_certificate(cert: Certificate | Mapping[str, Any] | None) -> Certificate | None:
    """A certificate as the schema types it; a plain dict (certify's result, as the CLI's table reads it) is
    validated into one."""
    if cert is None or isinstance(cert, Certificate):
        return cert
    return Certificate.model_validate(cert)


def _unit(value: float | None) -> bool:
    return value is not None and 0 < value < 1


def cert_level(cert: Certificate | Mapping[str, Any] | None) -> float | None:
    """A certificate's confidence level: its `level`, else 1 - its `alpha`, else None (older dicts)."""
    c = as_certificate(cert)
    if c is None:
        return None
    if _unit(c.level):
        return c.level
    if c.alpha is not None and _unit(c.alpha):
        return 1.0 - c.alpha
    return None


def floor_header(level: float | None) -> str:
    """`floor (95%)` for a certified floor at that level; plain `floor` when the level is unknown."""
    return "floor" if level is None else f"floor ({level * 100:.4g}%)"


def floor_source(cert: Certificate | Mapping[str, Any] | None) -> str | None:
    """Name of the bound behind a certificate's floor: its `floor_bound`, else the bound whose conservative floor
    equals `floor` (older dicts), else None."""
    c = as_certificate(cert)
    if c is None:
        return None
    if c.floor_bound:
        return c.floor_bound
    if c.floor is not None:
        for name, b in c.bounds.items():
            if b.certified is not False and b.floor_conservative == c.floor:
                return name
    return None


def fmt_floor(cert: Certificate | None, digits: int = 2) -> str:
    """A certificate's floor with the bound that produced it, e.g. `0.62 (pinsker)`; `0.00 (vacuous)` at 0."""
    if cert is None:
        return NOT_RUN
    if cert.floor is None:
        return "n/a"
    vacuous = cert.vacuous if cert.vacuous is not None else cert.floor <= 0
    if vacuous:
        return f"{fmt_num(cert.floor, digits)} (vacuous)"
    source = floor_source(cert)
    return f"{fmt_num(cert.floor, digits)} ({source})" if source else fmt_num(cert.floor, digits)


def slug(text: str, max_len: int = 48) -> str:
    """A file-name-safe version of an untrusted id (collisions are the caller's to resolve)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "run"
    return cleaned[:max_len]


def render_markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; every cell is neutralised with md_inline."""
    head = "| " + " | ".join(md_inline(h) for h in headers) + " |"
    rule = "|" + "|".join("---" for _ in headers) + "|"
    body = ["| " + " | ".join(md_inline(c) for c in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def render_html_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    row_classes: Sequence[str | None] | None = None,
) -> str:
    """An HTML table with every cell escaped; row_classes (trusted, ours) can flag rows, e.g. violations."""
    classes = list(row_classes) if row_classes is not None else [None] * len(rows)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row, cls in zip(rows, classes, strict=True):
        attr = f' class="{esc(cls)}"' if cls else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with aligned columns, for terminals and docs."""
    cells = [[str(h) for h in headers]] + [[" ".join(str(c).split()) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
