"""The services page and the service graph in headless Chromium, on windows a real worker made
from spans sent with the SDK: each service's box on the graph shows the services page's RED
numbers, the rendered edge labels (real fonts) overlap neither each other nor a box, a click on
an edge opens its row of the edges table and a click there or on a service opens the search for
its traces. Both pages say what their rates are over.

With TRACEPIPE_WEB_SCREENSHOT_GRAPH=<path> the test also saves the graph page as the README's
screenshot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from streams.query import worker_url
from streams.worker_process import WorkerProcess
from tests.integration.web.browser import chromium
from tests.integration.web.test_browser import count, produce
from tests.integration.web.test_browser import web_worker as web_worker  # the fixture

pytestmark = pytest.mark.integration

SCREENSHOT_ENV = "TRACEPIPE_WEB_SCREENSHOT_GRAPH"
WINDOWS = (
    "SELECT (SELECT count() FROM tracepipe_latency) + (SELECT count() FROM tracepipe_edges) AS n"
)

# Every label's and every box's rendered bounding box in the SVG's coordinates (getBBox), with
# the label's text box: what the fonts really drew, not the layout's estimate.
GEOMETRY = """
const box = e => { const b = e.getBBox(); return [b.x, b.y, b.width, b.height]; };
return {
  labels: [...document.querySelectorAll('g.edge-label')].map(g => ({
    rect: box(g.querySelector('rect.label')), text: box(g.querySelector('text'))})),
  nodes: [...document.querySelectorAll('g.node')].map(g => ({
    rect: box(g.querySelector('rect')),
    texts: [...g.querySelectorAll('text')].map(box)})),
};
"""


def overlap(a: list[float], b: list[float]) -> bool:
    """Whether two (x, y, width, height) boxes share any area."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def inside(inner: list[float], outer: list[float]) -> bool:
    """Whether `inner` lies within `outer` (half a pixel of rounding allowed)."""
    return (
        inner[0] >= outer[0] - 0.5
        and inner[1] >= outer[1] - 0.5
        and inner[0] + inner[2] <= outer[0] + outer[2] + 0.5
        and inner[1] + inner[3] <= outer[1] + outer[3] + 0.5
    )


def settled_windows(worker: WorkerProcess) -> None:
    """Wait until the web shop's final windows are stored and no more arrive for a while, so the
    two pages read the same windows."""
    seen_counts: list[int] = []

    def settled() -> bool:
        seen_counts.append(count(worker, WINDOWS))
        return (
            count(worker, "SELECT count() AS n FROM tracepipe_edges WHERE Client = 'frontend'") > 0
            and len(seen_counts) >= 6
            and len(set(seen_counts[-6:])) == 1
        )

    worker.wait_for(settled, 180, "the final latency and edge windows, settled")


def test_graph_nodes_show_red_labels_do_not_overlap_and_clicks_open_rows_and_traces(
    web_worker: WorkerProcess, tmp_path: Path
) -> None:
    worker = web_worker
    produce(worker)
    settled_windows(worker)
    base = worker_url(worker.settings)
    with chromium(tmp_path / "chromium") as browser:
        wait = WebDriverWait(browser, 30)
        browser.get(f"{base}/ui/services")
        assert browser.find_element(By.ID, "coverage").text.startswith("rates over ")
        services: dict[str, list[str]] = {}
        for row in browser.find_elements(By.CSS_SELECTOR, "table.data")[0].find_elements(
            By.CSS_SELECTOR, "tbody tr"
        ):
            texts = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
            services[texts[0]] = texts

        browser.get(f"{base}/ui/graph")
        assert browser.find_element(By.ID, "coverage").text.startswith(("rates over ", "edge "))
        # Each service's RED line is the services page's row: rate, error %, p99.
        checked = 0
        for node in browser.find_elements(By.CSS_SELECTOR, "g.node"):
            name = node.get_attribute("data-service") or ""
            red = node.find_elements(By.CSS_SELECTOR, "text.red")
            if name in services:
                rate, errors, p99 = (services[name][i] for i in (2, 3, 6))
                assert [t.text for t in red] == [f"{rate}/s · {errors}% · p99 {p99} ms"]
                checked += 1
                # It reports what it serves, so it is instrumented: it links to its traces.
                assert node.find_elements(By.CSS_SELECTOR, "a")
            else:  # a peer nobody instruments serves nothing it reports
                assert red == []
        assert checked >= 5

        geometry: dict[str, Any] = browser.execute_script(GEOMETRY)
        labels, nodes = geometry["labels"], geometry["nodes"]
        assert len(labels) >= 8
        for i, label in enumerate(labels):
            assert inside(label["text"], label["rect"])  # the width estimate holds the text
            assert not [n for n in nodes if overlap(label["rect"], n["rect"])]
            assert not [o for o in labels[i + 1 :] if overlap(label["rect"], o["rect"])]
        for node in nodes:
            assert all(inside(t, node["rect"]) for t in node["texts"])

        # A click on an edge's label opens its row of the edges table, highlighted.
        edge = browser.find_element(
            By.CSS_SELECTOR, 'g.edge-label[data-client="frontend"][data-server="checkout"] a'
        )
        edge.click()
        wait.until(seen.url_contains("#edge-"))
        anchor = browser.current_url.rsplit("#", 1)[1]
        row = browser.find_element(By.ID, anchor)
        cells = row.find_elements(By.TAG_NAME, "td")
        assert [c.text for c in cells[:2]] == ["frontend", "checkout"]
        assert browser.execute_script("return document.querySelector('tr:target').id") == anchor
        assert cells[0].value_of_css_property("background-color") == "rgba(255, 247, 214, 1)"
        # ... whose server opens the search for that service's traces.
        cells[1].find_element(By.TAG_NAME, "a").click()
        wait.until(seen.url_contains("service=checkout"))
        assert browser.find_elements(By.CSS_SELECTOR, "a.trace-link")

        # A click on a service's box opens the search for its traces.
        browser.get(f"{base}/ui/graph")
        browser.find_element(By.CSS_SELECTOR, 'g.node[data-service="frontend"] a rect').click()
        wait.until(seen.url_contains("service=frontend"))
        results = browser.find_elements(By.CSS_SELECTOR, "a.trace-link")
        assert results and all(r.text.startswith("frontend: ") for r in results)

        screenshot = os.environ.get(SCREENSHOT_ENV, "").strip()
        if screenshot:
            save_graph_screenshot(browser, base, Path(screenshot))


def save_graph_screenshot(browser: webdriver.Chrome, base: str, path: Path) -> None:
    """The README's picture of the service graph: the page as wide as its drawing."""
    browser.get(f"{base}/ui/graph")
    width = int(
        browser.execute_script("return document.querySelector('.graph svg').width.baseVal.value")
    )
    # As wide as the drawing unscaled, as tall as the page (the edges table included).
    browser.set_window_size(max(1000, width + 80), 1000)
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(max(1000, width + 80), height)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(path))
