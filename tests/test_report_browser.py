"""report.html in a real browser (headless Chromium): every image loads, the findings come first, the tables are there
and none is wider than the window.

Needs a Chromium on PATH (Debian's `chromium`) and Playwright (the `test` extra); without them the test is skipped,
unless CNNBENCH_REQUIRE_BROWSER is set, as .ci/run sets it, and then it fails.
"""
import json
import os
import shutil
from pathlib import Path

import pytest

from bench.report.__main__ import main as report_main

FIXTURE = Path(__file__).parent / "fixtures" / "smoke_run.json"
WINDOW = {"width": 1440, "height": 900}
# an XLA cluster's op name as a trace of the zoo had it: a table of such names was 1,647 px wide in a 1,440 px window
LONG_OP = "__inference_step_2817_xla_cluster_0_compiled_fused_convolution_add_relu_multiply_" + "0123456789" * 6


def _browser_or_skip():
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable and sync_playwright:
        return executable, sync_playwright
    missing = "a chromium on PATH" if not executable else "playwright (pip install -e '.[test]')"
    if os.environ.get("CNNBENCH_REQUIRE_BROWSER"):
        pytest.fail(f"the browser test needs {missing}")
    pytest.skip(f"the browser test needs {missing}")


def _two_runs_with_long_names(tmp_path) -> list[str]:
    """The fixture, its top operations renamed as long as a real trace's, and a second run beside it."""
    data = json.loads(FIXTURE.read_text())
    for bench in data["benchmarks"]:
        for op in bench["extra_info"].get("top_ops") or []:
            op["name"], op["type"] = LONG_OP, "_XlaRun" + "Fused" * 8
    paths = []
    for name in ("first", "second"):
        data["cnnbench"]["run_name"] = f"20261202T000000Z-a-host-with-a-long-name-{name}"
        paths.append(str(tmp_path / f"{name}.json"))
        Path(paths[-1]).write_text(json.dumps(data))
    return paths


def test_report_html_renders_in_chromium_with_every_image_and_table(tmp_path):
    executable, sync_playwright = _browser_or_skip()
    assert report_main([*_two_runs_with_long_names(tmp_path), "--out", str(tmp_path), "--format", "html"]) == 0
    page_path = tmp_path / "report.html"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=WINDOW)
            page.goto(page_path.as_uri(), wait_until="load")
            images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.alt, i.complete, i.naturalWidth])")
            headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
            tables = page.eval_on_selector_all("table caption", "cs => cs.map(c => c.textContent)")
            findings = page.eval_on_selector_all("ul li", "lis => lis.map(li => li.textContent)")
            first_screen = page.evaluate("document.querySelector('h2').getBoundingClientRect().top")
            overflowing = page.eval_on_selector_all("table", f"""ts => ts.filter(t => t.getBoundingClientRect().right
                > {WINDOW['width']}).map(t => [t.caption.textContent.slice(0, 60), t.getBoundingClientRect().right])""")
            page_width = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(path=str(tmp_path / "report-screenshot.png"), full_page=True)
        finally:
            browser.close()
    assert images and all(complete and width > 0 for _, complete, width in images), images
    assert {"Throughput against batch size, by family", "Roofline", "MACs against measured latency"} <= {
        alt for alt, _, _ in images}
    assert headings == ["Findings", "Plots", "Tables", "Every case"] and first_screen < 900
    assert any(line.startswith("What XLA") for line in findings)
    assert any(caption.startswith("Throughput, inference (samples/s") for caption in tables)  # a row per model
    assert any(caption.startswith("Throughput (samples/s") for caption in tables)  # a row per case, folded
    assert any(caption.startswith("The fastest model of each family") for caption in tables)
    assert not overflowing and page_width <= WINDOW["width"], (overflowing, page_width)
