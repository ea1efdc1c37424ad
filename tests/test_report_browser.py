"""The HTML report opened in a real browser (headless Debian chromium driven by Playwright).

Checks what only a browser can: no console errors, every figure decodes and has a size, a script injected
through a model completion does not run (escaping plus the page's CSP), and the page makes no network request.
`.ci/run` installs chromium and sets RLVR_SAFETY_REQUIRE_BROWSER=1, so in CI a missing browser fails the test
instead of skipping it. RLVR_SAFETY_SCREENSHOT=path also saves the screenshot there (docs/report.png).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from rlvr_safety.report import build_report
from test_report import _write, make_summary

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
INJECTED = ('<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
            '<iframe src="https://example.com/"></iframe>')
# The flags the machine notes require on a closed network (no background connections, no first-run work).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _browser_or_skip() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = sync_playwright is None or not Path(CHROMIUM).exists()
    if missing:
        if os.environ.get("RLVR_SAFETY_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but playwright or chromium ({CHROMIUM}) is missing")
        pytest.skip("playwright or Debian chromium not installed (CI installs both)")
    return sync_playwright


def test_report_renders_in_chromium_without_errors_scripts_or_network(tmp_path: Path) -> None:
    sync_playwright = _browser_or_skip()
    summary = make_summary(violate=True)
    for s in summary.samples:
        s.response = INJECTED
        s.prompt = "</pre><script>window.__pwned = 3</script>"
    out = build_report(_write(tmp_path, summary))
    html = out["html"]
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def record(route: Any) -> None:
                url = route.request.url
                if url.startswith(("file:", "data:")):
                    route.continue_()
                else:
                    requests.append(url)
                    route.abort()

            page.route("**/*", record)
            page.goto(html.resolve().as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth, e.naturalHeight])")
            pwned = page.evaluate("window.__pwned === undefined ? null : window.__pwned")
            text = page.inner_text("body")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    assert errors == [], errors
    assert requests == [], requests
    assert pwned is None  # neither the <script> nor the onerror handler ran
    figures = [img for img in images if img[0] != "x"]
    assert len(figures) >= 2, images  # at least the safety-vs-capability and drift-vs-bound figures
    for alt, complete, width, height in figures:
        assert complete and width > 100 and height > 100, alt
    assert "window.__pwned = 1" in text  # the injected markup is shown as text, not interpreted
    assert shot.stat().st_size > 10_000
    target = os.environ.get("RLVR_SAFETY_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
